//! The stage graph: one node per stage, typed data edges between ports, ordering edges
//! between callbacks.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::diag::{Diagnostic, did_you_mean};
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::{PortRef, Stage, StageId};

/// What flows along a data edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortType {
    /// A batch of feature tensors.
    Tensor,
    /// A batch of model outputs.
    Logits,
    /// A batch of class labels.
    Labels,
    /// A scalar loss that can be differentiated.
    Loss,
    /// Gradients of a model's parameters.
    Grads,
    /// Updated parameters.
    Params,
    /// A scalar value observed by callbacks (gradient norm, metrics).
    Scalar,
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortType::Tensor => "features (`load.features`)",
            PortType::Logits => "model outputs (`forward.logits`)",
            PortType::Labels => "labels (`load.labels`)",
            PortType::Loss => "a loss (`loss.loss`)",
            PortType::Grads => "gradients (`backward.grads` or `accumulate.grads`)",
            PortType::Params => "parameters (`step.params`)",
            PortType::Scalar => "a scalar",
        })
    }
}

/// The output ports of a stage kind.
pub fn outputs(stage: &Stage) -> Vec<(&'static str, PortType)> {
    match stage {
        Stage::Load(_) => vec![("features", PortType::Tensor), ("labels", PortType::Labels)],
        Stage::Forward(_) => vec![("logits", PortType::Logits)],
        Stage::Loss(_) => vec![("loss", PortType::Loss)],
        Stage::Backward(_) | Stage::Accumulate(_) => vec![("grads", PortType::Grads)],
        Stage::Step(_) => vec![
            ("params", PortType::Params),
            ("grad_norm", PortType::Scalar),
        ],
        // Every scalar metric (which ones an eval computes is checked where it is read).
        Stage::Eval(_) => crate::metrics::EvalMetric::all()
            .filter(|m| m.is_scalar())
            .map(|m| (m.as_str(), PortType::Scalar))
            .collect(),
        Stage::Callback(_) => Vec::new(),
    }
}

/// The types an input field accepts; empty accepts anything.
fn accepts(stage: &Stage, field: &str) -> &'static [PortType] {
    match (stage, field) {
        (Stage::Forward(_), _) => &[PortType::Tensor, PortType::Logits],
        (Stage::Loss(_), "logits" | "teacher") => &[PortType::Logits],
        (Stage::Loss(_), _) => &[PortType::Labels],
        (Stage::Backward(_), _) => &[PortType::Loss],
        (Stage::Accumulate(_) | Stage::Step(_), _) => &[PortType::Grads],
        _ => &[],
    }
}

/// A graph edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edge {
    /// Data from an output port to an input field.
    Data {
        /// Output port of the source stage.
        port: String,
        /// Input field of the target stage.
        field: &'static str,
    },
    /// The source fires before the target at a shared trigger.
    Order,
}

/// The stages as a petgraph graph, indexed by id.
#[derive(Debug, Clone, Default)]
pub struct StageGraph {
    /// Nodes are indices into `pipeline.stages`.
    pub graph: DiGraph<usize, Edge>,
    /// Node of each stage id.
    pub ids: BTreeMap<StageId, NodeIndex>,
}

impl StageGraph {
    /// The node of a stage id.
    pub fn node(&self, id: &str) -> Option<NodeIndex> {
        self.ids.get(&StageId(id.to_string())).copied()
    }

    /// The stage index that feeds `field` of stage `index`.
    pub fn source_of(&self, index: usize, field: &str) -> Option<(usize, String)> {
        let node = self
            .graph
            .node_indices()
            .find(|n| self.graph[*n] == index)?;
        self.graph
            .edges_directed(node, petgraph::Direction::Incoming)
            .find_map(|e| match e.weight() {
                Edge::Data { port, field: f } if *f == field => {
                    Some((self.graph[e.source()], port.clone()))
                }
                _ => None,
            })
    }
}

/// Path of a stage's `id` value: diagnostics about a whole stage point there.
pub(super) fn stage_path(index: usize) -> Vec<Seg> {
    vec![
        Seg::Key("stages".into()),
        Seg::Index(index),
        Seg::Key("id".into()),
    ]
}

pub(super) fn field_path(index: usize, field: &str) -> Vec<Seg> {
    vec![
        Seg::Key("stages".into()),
        Seg::Index(index),
        Seg::Key(field.into()),
    ]
}

/// Builds the graph: duplicate ids, unknown stages and ports, wrong port types.
pub(super) fn build(parsed: &ParsedPipeline, diagnostics: &mut Vec<Diagnostic>) -> StageGraph {
    let stages = &parsed.pipeline.stages;
    let mut g = StageGraph::default();
    let mut first_seen: HashMap<&StageId, usize> = HashMap::new();
    for (i, stage) in stages.iter().enumerate() {
        if let Some(&first) = first_seen.get(stage.id()) {
            diagnostics.push(
                Diagnostic::new(
                    "duplicate-id",
                    format!("stage id `{}` is used twice", stage.id()),
                )
                .at(
                    parsed.span(&field_path(i, "id")),
                    "second stage with this id",
                )
                .stage(stage.id())
                .note(format!(
                    "first used by the {} stage `stages[{first}]`",
                    stages[first].kind()
                ))
                .hint("give every stage a unique id"),
            );
            continue;
        }
        let id = &stage.id().0;
        if !is_well_formed_id(id) {
            diagnostics.push(
                Diagnostic::new(
                    "invalid-id",
                    format!("stage id `{id}` cannot be referred to"),
                )
                .at(parsed.span(&field_path(i, "id")), "not a valid id")
                .stage(stage.id())
                .expected_found(
                    "letters, digits, `_` and `-`, starting with a letter or `_`",
                    format!("`{id}`"),
                )
                .hint("references are written `stage.port`, so ids cannot contain `.` or spaces"),
            );
        }
        first_seen.insert(stage.id(), i);
        let node = g.graph.add_node(i);
        g.ids.insert(stage.id().clone(), node);
    }
    let all_ids: Vec<&str> = g.ids.keys().map(|k| k.0.as_str()).collect();
    for (i, stage) in stages.iter().enumerate() {
        let Some(&target) = g.ids.get(stage.id()) else {
            continue;
        };
        if g.graph[target] != i {
            continue;
        }
        for (field, input) in stage.inputs() {
            let path = match stage {
                Stage::Callback(c) => {
                    let k = c.watch.iter().position(|w| w == input).unwrap_or(0);
                    vec![
                        Seg::Key("stages".into()),
                        Seg::Index(i),
                        Seg::Key("watch".into()),
                        Seg::Index(k),
                    ]
                }
                _ => field_path(i, field),
            };
            if let Some((source, port)) = resolve(
                parsed,
                stages,
                &g,
                &all_ids,
                stage,
                field,
                input,
                &path,
                diagnostics,
            ) {
                g.graph.add_edge(source, target, Edge::Data { port, field });
            }
        }
    }
    g
}

#[allow(clippy::too_many_arguments)]
fn resolve(
    parsed: &ParsedPipeline,
    stages: &[Stage],
    g: &StageGraph,
    all_ids: &[&str],
    stage: &Stage,
    field: &'static str,
    input: &PortRef,
    path: &[Seg],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<(NodeIndex, String)> {
    let span = parsed.span(path);
    let Some((source_id, port)) = input.split() else {
        diagnostics.push(
            Diagnostic::new(
                "bad-reference",
                format!("`{input}` is not a `stage.port` reference"),
            )
            .at(span, "expected `stage.port`")
            .stage(stage.id())
            .expected_found("`stage.port`, e.g. `fwd.logits`", format!("`{input}`"))
            .hint("name the stage that produces the value, a dot, and its output"),
        );
        return None;
    };
    let Some(&source) = g.ids.get(&StageId(source_id.to_string())) else {
        diagnostics.push(
            Diagnostic::new(
                "unknown-stage",
                format!("`{field}` refers to unknown stage `{source_id}`"),
            )
            .at(span, "no stage has this id")
            .stage(stage.id())
            .expected_found(
                format!("one of {}", list(all_ids)),
                format!("`{source_id}`"),
            )
            .maybe_hint(did_you_mean(source_id, all_ids.iter().copied())),
        );
        return None;
    };
    let source_stage = &stages[g.graph[source]];
    let ports = outputs(source_stage);
    let Some(&(_, found_type)) = ports.iter().find(|(name, _)| *name == port) else {
        let names: Vec<&str> = ports.iter().map(|(n, _)| *n).collect();
        diagnostics.push(
            Diagnostic::new(
                "unknown-port",
                format!(
                    "stage `{source_id}` ({}) has no output `{port}`",
                    source_stage.kind()
                ),
            )
            .at(span, "no such output")
            .stage(stage.id())
            .expected_found(
                if names.is_empty() {
                    "nothing: callbacks have no outputs".to_string()
                } else {
                    format!("one of {}", list(&names))
                },
                format!("`{port}`"),
            )
            .maybe_hint(did_you_mean(port, names.iter().copied())),
        );
        return None;
    };
    let accepted = accepts(stage, field);
    if let Some(&expected) = accepted.first()
        && !accepted.contains(&found_type)
    {
        diagnostics.push(
            Diagnostic::new(
                "wrong-port-type",
                format!(
                    "`{field}` of {} stage `{}` cannot take `{input}`",
                    stage.kind(),
                    stage.id()
                ),
            )
            .at(span, format!("this is {found_type}"))
            .stage(stage.id())
            .expected_found(
                accepted
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" or "),
                format!(
                    "{found_type} from {} stage `{source_id}`",
                    source_stage.kind()
                ),
            )
            .hint(port_hint(expected)),
        );
        return None;
    }
    Some((source, port.to_string()))
}

fn port_hint(expected: PortType) -> &'static str {
    match expected {
        PortType::Tensor => "feed a load stage's `features` or a forward stage's `logits`",
        PortType::Logits => {
            "a loss compares model outputs with labels: insert a forward stage and use its `logits`"
        }
        PortType::Labels => "feed a load stage's `labels`",
        PortType::Loss => {
            "a backward stage differentiates a loss: point it at a loss stage's `loss`"
        }
        PortType::Grads => {
            "a step needs gradients: point it at a backward (or accumulate) stage's `grads`"
        }
        PortType::Params | PortType::Scalar => "see docs/pipeline.md for each stage's outputs",
    }
}

pub(super) fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Flow checks: cycles, reachability from a load, and the train chain's presence.
pub(super) fn check_flow(
    parsed: &ParsedPipeline,
    g: &StageGraph,
    references_ok: bool,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let stages = &parsed.pipeline.stages;
    let data_only = g.graph.filter_map(
        |_, n| Some(*n),
        |_, e| matches!(e, Edge::Data { .. }).then_some(()),
    );
    let mut on_cycle = vec![false; stages.len()];
    for scc in petgraph::algo::tarjan_scc(&data_only) {
        let cyclic = scc.len() > 1 || data_only.contains_edge(scc[0], scc[0]);
        if !cyclic {
            continue;
        }
        scc.iter().for_each(|n| on_cycle[data_only[*n]] = true);
        let cycle = cycle_path(&data_only, &scc);
        let names: Vec<String> = cycle
            .iter()
            .map(|n| stages[data_only[*n]].id().to_string())
            .collect();
        let first = data_only[cycle[0]];
        diagnostics.push(
            Diagnostic::new("cycle", format!("stages form a cycle: {} → {}", names.join(" → "), names[0]))
                .at(parsed.span(&stage_path(first)), "this stage depends on itself through the cycle")
                .stage(stages[first].id())
                .hint("a stage's inputs must come from stages that run before it; break the cycle by feeding one of these stages from upstream"),
        );
    }
    let mut reached = vec![false; stages.len()];
    let mut queue: std::collections::VecDeque<NodeIndex> = g
        .graph
        .node_indices()
        .filter(|n| matches!(stages[g.graph[*n]], Stage::Load(_)))
        .collect();
    for n in &queue {
        reached[g.graph[*n]] = true;
    }
    while let Some(n) = queue.pop_front() {
        for m in data_only.neighbors(n) {
            if !reached[data_only[m]] {
                reached[data_only[m]] = true;
                queue.push_back(m);
            }
        }
    }
    for node in g.graph.node_indices() {
        let i = g.graph[node];
        let stage = &stages[i];
        let in_dataflow = matches!(
            stage,
            Stage::Forward(_)
                | Stage::Loss(_)
                | Stage::Backward(_)
                | Stage::Accumulate(_)
                | Stage::Step(_)
        );
        let has_inputs = g
            .graph
            .edges_directed(node, petgraph::Direction::Incoming)
            .next()
            .is_some();
        if in_dataflow && !reached[i] && has_inputs && !on_cycle[i] {
            diagnostics.push(
                Diagnostic::new(
                    "unreachable",
                    format!(
                        "{} stage `{}` is not reachable from any load stage",
                        stage.kind(),
                        stage.id()
                    ),
                )
                .at(parsed.span(&stage_path(i)), "no data reaches this stage")
                .stage(stage.id())
                .hint("connect its inputs to a chain that starts at a `load` stage"),
            );
        }
    }
    for node in g.graph.node_indices() {
        let stage = &stages[g.graph[node]];
        let computes = matches!(
            stage,
            Stage::Forward(_) | Stage::Loss(_) | Stage::Backward(_) | Stage::Accumulate(_)
        );
        if references_ok
            && computes
            && g.graph
                .edges_directed(node, petgraph::Direction::Outgoing)
                .next()
                .is_none()
        {
            let port = outputs(stage).first().map_or("", |p| p.0);
            diagnostics.push(
                Diagnostic::new("unused-stage", format!("{} stage `{}` computes `{port}` but no stage uses it", stage.kind(), stage.id()))
                    .at(parsed.span(&stage_path(g.graph[node])), "its output goes nowhere")
                    .stage(stage.id())
                    .hint(format!("feed `{}.{port}` to the next stage (or `watch:` it from a callback), or remove the stage", stage.id())),
            );
        }
    }
    if !stages.iter().any(|s| matches!(s, Stage::Step(_))) {
        diagnostics.push(
            Diagnostic::new("no-step", "the pipeline never updates parameters: it has no `step` stage")
                .at(parsed.span(&[Seg::Key("stages".into())]), "stages")
                .hint("add `- {id: step, kind: step, grads: <backward>.grads, optimizer: {kind: adam, lr: 0.001}}`"),
        );
    }
}

/// A shortest cycle through the smallest node of a strongly connected component.
fn cycle_path<N, E>(graph: &DiGraph<N, E>, scc: &[NodeIndex]) -> Vec<NodeIndex> {
    let Some(&start) = scc.iter().min() else {
        return Vec::new();
    };
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.neighbors(n).filter(|s| scc.contains(s)).collect();
        next.sort();
        for s in next {
            if s == start {
                let mut path = vec![n];
                while let Some(&p) = parent.get(path.last().unwrap_or(&start)) {
                    path.push(p);
                }
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(s) {
                e.insert(n);
                queue.push_back(s);
            }
        }
    }
    vec![start]
}

/// Letters, digits, `_` and `-`, starting with a letter or `_`: an id that references,
/// parameter names and file names can carry (stage ids, node ids).
pub(super) fn is_well_formed_id(id: &str) -> bool {
    id.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
