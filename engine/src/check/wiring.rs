//! Model wiring: a model's `layers:` (a chain) or `nodes:` (a graph) as one list of layers
//! in an order where each reads only earlier tensors, with the tensors each reads. Reports
//! unknown, duplicate and unused nodes, wrong input counts and cycles, located.

use ops::layer::LayerSpec;

use crate::diag::Diagnostic;
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
    let errors = out.len();
    let nodes = super::blocks::expand(parsed, name, model, base, out)?;
    for node in &nodes {
        let op = node.op.build();
        let count = node.reads.len();
        let (min, max) = op.arity();
        if count < min || count > max {
            let takes = if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            };
            let plural = if count == 1 { "" } else { "s" };
            out.push(
                Diagnostic::new(
                    "wrong-input-count",
                    format!(
                        "node `{}` ({}) of model `{name}` reads {count} input{plural} but takes {takes}",
                        node.id,
                        op.kind(),
                    ),
                )
                .at(
                    parsed.span(&node.at(&[Seg::Key("inputs".into())])),
                    format!("{count} input{plural}"),
                )
                .expected_found(
                    format!("{takes} inputs"),
                    node.reads
                        .iter()
                        .map(|r| format!("`{}`", r.map_or(INPUT, |i| nodes[i].id.as_str())))
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
    }
    let reads: Vec<Vec<Option<usize>>> = nodes.iter().map(|n| n.reads.clone()).collect();
    if out.len() > errors {
        return None;
    }
    let n = nodes.len();
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
            .map(|&j| format!("`{}`", nodes[j].id))
            .collect();
        let slot = reads[reader].iter().position(|&i| i == Some(read));
        let location = match (nodes[reader].inputs_written, slot) {
            (true, Some(k)) => nodes[reader].at(&[Seg::Key("inputs".into()), Seg::Index(k)]),
            _ => nodes[reader].at(&[Seg::Key("id".into())]),
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
                    nodes[read].id
                ),
            )
            .hint("a node may read only nodes that do not read it back; a model computes each node once"),
        );
        return None;
    }
    for (j, node) in nodes.iter().enumerate().take(n - 1) {
        if readers[j].is_empty() {
            out.push(
                Diagnostic::new(
                    "unused-node",
                    format!(
                        "node `{}` of model `{name}` is not read by any node, and only the last node is the model's output",
                        node.id
                    ),
                )
                .at(parsed.span(&node.at(&[Seg::Key("id".into())])), "not read")
                .hint(format!(
                    "read it from another node's `inputs`, or remove it (the output is `{}`, the last node)",
                    nodes[n - 1].id
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
                name: Some(nodes[j].id.clone()),
                spec: nodes[j].op.clone(),
                inputs: reads[j]
                    .iter()
                    .map(|i| i.map_or(0, |i| tensor[i]))
                    .collect(),
                path: nodes[j].at(&[Seg::Key("op".into())]),
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
