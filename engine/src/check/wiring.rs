//! Model wiring: a model's `layers:` (a chain) or `nodes:` (a graph) as one list of layers
//! in an order where each reads only earlier tensors, with the tensors each reads. Reports
//! unknown, duplicate and unused nodes, wrong input counts and cycles, located.

use std::collections::BTreeMap;

use ops::layer::LayerSpec;

use crate::diag::{Diagnostic, did_you_mean};
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::ModelSpec;

/// The name by which nodes read the model's input.
pub const INPUT: &str = "input";

/// One layer of a wired model.
#[derive(Debug, Clone, PartialEq)]
pub struct WiredLayer {
    /// The node's id (`None` in a `layers:` list).
    pub name: Option<String>,
    /// What it applies.
    pub spec: LayerSpec,
    /// The tensors it reads: `0` the model's input, `i + 1` the output of layer `i` of
    /// this list.
    pub inputs: Vec<usize>,
    /// Where it is written.
    pub path: Vec<Seg>,
}

impl WiredLayer {
    /// `node `sum`` or `layer 3`, for messages.
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(n) => format!("node `{n}`"),
            None => format!("layer {index}"),
        }
    }
}

/// The layers of model `name` in execution order, or `None` after reporting why it
/// cannot be wired.
pub(super) fn wire(
    parsed: &ParsedPipeline,
    name: &str,
    model: &ModelSpec,
    base: &[Seg],
    out: &mut Vec<Diagnostic>,
) -> Option<Vec<WiredLayer>> {
    let at = |tail: &[Seg]| parsed.span(&[base, tail].concat());
    match (model.layers.is_empty(), model.nodes.is_empty()) {
        (false, false) => {
            out.push(
                Diagnostic::new(
                    "layers-and-nodes",
                    format!("model `{name}` has both `layers:` and `nodes:`"),
                )
                .at(at(&[Seg::Key("nodes".into())]), "a second description")
                .hint("write the model either as a list of `layers:` or as a graph of `nodes:`"),
            );
            return None;
        }
        (true, true) => {
            out.push(
                Diagnostic::new("empty-model", format!("model `{name}` has no layers"))
                    .at(at(&[]), "no `layers:` or `nodes:`")
                    .hint("add `layers:` (e.g. `- linear: {out: 10}`) or `nodes:`"),
            );
            return None;
        }
        (false, true) => {
            let errors = out.len();
            for (i, spec) in model.layers.iter().enumerate() {
                let op = spec.build();
                if op.arity().0 > 1 {
                    out.push(
                        Diagnostic::new(
                            "wrong-input-count",
                            format!(
                                "layer {i} ({}) of model `{name}` merges {} inputs, but in a `layers:` list each layer reads the one before",
                                op.kind(),
                                op.arity().0
                            ),
                        )
                        .at(at(&[Seg::Key("layers".into()), Seg::Index(i)]), "reads one input here")
                        .hint("write the model as `nodes:` and give this node `inputs: [a, b]`"),
                    );
                }
            }
            if out.len() > errors {
                return None;
            }
            return Some(
                model
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(i, spec)| WiredLayer {
                        name: None,
                        spec: spec.clone(),
                        inputs: vec![i],
                        path: [base, &[Seg::Key("layers".into()), Seg::Index(i)]].concat(),
                    })
                    .collect(),
            );
        }
        (true, false) => {}
    }
    let node_path = |j: usize, tail: &[Seg]| -> Vec<Seg> {
        [base, &[Seg::Key("nodes".into()), Seg::Index(j)], tail].concat()
    };
    let errors = out.len();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (j, node) in model.nodes.iter().enumerate() {
        let id_path = node_path(j, &[Seg::Key("id".into())]);
        // Parameter names are `<node>.<param>` (`<model>.<node>.<param>` with several
        // models); checkpoints keep gradients as `grads.<tensor>` and tell a model's
        // tensors by their `<model>.` prefix, so neither may be a node id.
        let reserved = if node.id == INPUT {
            Some(format!("`{INPUT}` names the model's input"))
        } else if node.id == "grads" {
            Some("checkpoints keep accumulated gradients as `grads.<tensor>`".to_string())
        } else if parsed.pipeline.models.contains_key(&node.id) {
            Some(format!(
                "`{}` is a model's name, and tensors named `{}.<...>` are that model's",
                node.id, node.id
            ))
        } else {
            None
        };
        if !super::graph::is_well_formed_id(&node.id) {
            out.push(
                Diagnostic::new(
                    "invalid-id",
                    format!(
                        "node id `{}` in model `{name}` cannot be referred to",
                        node.id
                    ),
                )
                .at(parsed.span(&id_path), "not a valid id")
                .expected_found(
                    "letters, digits, `_` and `-`, starting with a letter or `_`",
                    format!("`{}`", node.id),
                )
                .hint("node ids name parameters (`<id>.weight`); use e.g. `block1_fc`"),
            );
        } else if let Some(why) = reserved {
            out.push(
                Diagnostic::new(
                    "reserved-name",
                    format!("node id `{}` in model `{name}` is reserved", node.id),
                )
                .at(parsed.span(&id_path), "reserved")
                .hint(format!("{why}; pick another id")),
            );
        }
        // Indexed whatever its id, so that nodes reading it are not reported too.
        if let Some(first) = index.insert(&node.id, j) {
            out.push(
                Diagnostic::new(
                    "duplicate-node",
                    format!("model `{name}` has two nodes with id `{}`", node.id),
                )
                .at(parsed.span(&id_path), "second node with this id")
                .note(format!("the first is node {first}"))
                .hint("give each node its own id"),
            );
            index.insert(&node.id, first);
        }
    }
    // Each node's inputs as node indices (`None` for the model's input).
    let mut reads: Vec<Vec<Option<usize>>> = Vec::new();
    for (j, node) in model.nodes.iter().enumerate() {
        let op = node.op.build();
        let names: Vec<String> = match &node.inputs {
            Some(names) => names.clone(),
            None if j == 0 => vec![INPUT.to_string()],
            None => vec![model.nodes[j - 1].id.clone()],
        };
        let (min, max) = op.arity();
        if names.len() < min || names.len() > max {
            let takes = if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            };
            out.push(
                Diagnostic::new(
                    "wrong-input-count",
                    format!(
                        "node `{}` ({}) of model `{name}` reads {} input{} but takes {takes}",
                        node.id,
                        op.kind(),
                        names.len(),
                        if names.len() == 1 { "" } else { "s" }
                    ),
                )
                .at(
                    parsed.span(&node_path(j, &[Seg::Key("inputs".into())])),
                    format!(
                        "{} input{}",
                        names.len(),
                        if names.len() == 1 { "" } else { "s" }
                    ),
                )
                .expected_found(
                    format!("{takes} inputs"),
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                )
                .hint(if min > 1 {
                    format!("write `inputs: [a, b]` with the {min} nodes it merges")
                } else {
                    "list one node (or `input`)".to_string()
                }),
            );
        }
        let mut row = Vec::new();
        for (k, input) in names.iter().enumerate() {
            if input == INPUT {
                row.push(None);
            } else if let Some(&i) = index.get(input.as_str()) {
                row.push(Some(i));
            } else {
                let candidates = model
                    .nodes
                    .iter()
                    .map(|n| n.id.as_str())
                    .chain([INPUT])
                    .filter(|c| *c != node.id);
                out.push(
                    Diagnostic::new(
                        "unknown-node",
                        format!(
                            "node `{}` of model `{name}` reads `{input}`, which is not a node of the model",
                            node.id
                        ),
                    )
                    .at(
                        parsed.span(&node_path(j, &[Seg::Key("inputs".into()), Seg::Index(k)])),
                        "unknown node",
                    )
                    .maybe_hint(did_you_mean(input, candidates)),
                );
            }
        }
        reads.push(row);
    }
    if out.len() > errors {
        return None;
    }
    let n = model.nodes.len();
    // Kahn's order, lowest index first; the output (the last node) waits until nothing else
    // is ready, so it comes last whenever every node leads to it.
    let mut pending: Vec<usize> = reads
        .iter()
        .map(|r| r.iter().filter(|i| i.is_some()).count())
        .collect();
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (j, r) in reads.iter().enumerate() {
        for &i in r.iter().flatten() {
            readers[i].push(j);
        }
    }
    let mut order = Vec::new();
    let mut done = vec![false; n];
    loop {
        let ready = |j: &usize| !done[*j] && pending[*j] == 0;
        let Some(next) = (0..n - 1)
            .find(ready)
            .or_else(|| ready(&(n - 1)).then_some(n - 1))
        else {
            break;
        };
        done[next] = true;
        order.push(next);
        for &r in &readers[next] {
            pending[r] -= 1;
        }
    }
    if order.len() < n {
        let mut cycle = find_cycle(&reads, &done);
        // Some node of the cycle reads a node listed after it (indices cannot fall all the
        // way round): the likely mistake. Start the path there and point at that input.
        cycle.pop();
        let back = (0..cycle.len())
            .find(|&k| cycle[k] > cycle[(k + 1) % cycle.len()])
            .map_or(0, |k| (k + 1) % cycle.len());
        cycle.rotate_left(back);
        let reader = cycle.first().copied().unwrap_or(0);
        let read = cycle.last().copied().unwrap_or(0);
        cycle.push(reader);
        let path: Vec<String> = cycle
            .iter()
            .map(|&j| format!("`{}`", model.nodes[j].id))
            .collect();
        let slot = reads[reader].iter().position(|&i| i == Some(read));
        let location = match (&model.nodes[reader].inputs, slot) {
            (Some(_), Some(k)) => node_path(reader, &[Seg::Key("inputs".into()), Seg::Index(k)]),
            _ => node_path(reader, &[Seg::Key("id".into())]),
        };
        out.push(
            Diagnostic::new(
                "node-cycle",
                format!("the nodes of model `{name}` form a cycle: {}", path.join(" -> ")),
            )
            .at(
                parsed.span(&location),
                format!(
                    "reads `{}`, which depends on it",
                    model.nodes[read].id
                ),
            )
            .hint("a node may read only nodes that do not read it back; a model computes each node once"),
        );
        return None;
    }
    for (j, node) in model.nodes.iter().enumerate().take(n - 1) {
        if readers[j].is_empty() {
            out.push(
                Diagnostic::new(
                    "unused-node",
                    format!(
                        "node `{}` of model `{name}` is not read by any node, and only the last node is the model's output",
                        node.id
                    ),
                )
                .at(parsed.span(&node_path(j, &[Seg::Key("id".into())])), "not read")
                .hint(format!(
                    "read it from another node's `inputs`, or remove it (the output is `{}`, the last node)",
                    model.nodes[n - 1].id
                )),
            );
        }
    }
    if out.len() > errors {
        return None;
    }
    let mut tensor = vec![0usize; n];
    for (pos, &j) in order.iter().enumerate() {
        tensor[j] = pos + 1;
    }
    Some(
        order
            .iter()
            .map(|&j| WiredLayer {
                name: Some(model.nodes[j].id.clone()),
                spec: model.nodes[j].op.clone(),
                inputs: reads[j]
                    .iter()
                    .map(|i| i.map_or(0, |i| tensor[i]))
                    .collect(),
                path: node_path(j, &[Seg::Key("op".into())]),
            })
            .collect(),
    )
}

/// A cycle among the nodes not `done`, in data-flow order (each feeds the next; the first
/// is repeated at the end), found by walking inputs until a node repeats.
fn find_cycle(reads: &[Vec<Option<usize>>], done: &[bool]) -> Vec<usize> {
    let Some(start) = (0..reads.len()).find(|&j| !done[j]) else {
        return Vec::new();
    };
    let mut walk = vec![start];
    let mut at = start;
    loop {
        // Every node left over reads another left-over node (else Kahn would have taken it).
        let Some(next) = reads[at].iter().flatten().copied().find(|&i| !done[i]) else {
            return walk;
        };
        if let Some(pos) = walk.iter().position(|&w| w == next) {
            let mut cycle = walk[pos..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0]);
            return cycle;
        }
        walk.push(next);
        at = next;
    }
}
