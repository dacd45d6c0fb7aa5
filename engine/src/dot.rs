//! Graphviz DOT output of the stage graph and of a model's graph (`engine graph`).

use std::fmt::Write as _;

use petgraph::visit::EdgeRef;

use crate::check::{CheckedPipeline, Edge, ModelShapes};
use crate::spec::Stage;

/// The checked stage graph as DOT: data edges solid and labelled, order edges dashed.
pub fn to_dot(checked: &CheckedPipeline) -> String {
    let stages = &checked.parsed.pipeline.stages;
    let g = &checked.graph.graph;
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
        checked.parsed.pipeline.name
    );
    for n in g.node_indices() {
        let stage = &stages[g[n]];
        let shape = match stage {
            Stage::Callback(_) | Stage::Eval(_) => "note",
            Stage::Load(_) => "cylinder",
            _ => "box",
        };
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n({})\", shape={shape}];",
            stage.id(),
            stage.id(),
            stage.kind()
        );
    }
    for e in g.edge_references() {
        let (a, b) = (stages[g[e.source()]].id(), stages[g[e.target()]].id());
        match e.weight() {
            Edge::Data { port, field } => {
                let _ = writeln!(out, "  \"{a}\" -> \"{b}\" [label=\"{port} -> {field}\"];");
            }
            Edge::Order => {
                let _ = writeln!(out, "  \"{a}\" -> \"{b}\" [style=dashed];");
            }
        }
    }
    out.push_str("}\n");
    out
}

/// Model `name`'s layers as DOT: one box per node (or layer) with its op and output shape,
/// an edge per tensor read. `None` when the pipeline has no such model.
pub fn model_to_dot(checked: &CheckedPipeline, name: &str) -> Option<String> {
    let model: &ModelShapes = checked.models.get(name)?;
    let mut out = format!(
        "digraph \"{name}\" {{\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n  \"input\" [label=\"input\\n{:?}\", shape=ellipse];\n",
        model.input
    );
    let id = |t: usize| -> String {
        match t.checked_sub(1) {
            None => "input".to_string(),
            Some(i) => model.layers[i]
                .name
                .clone()
                .unwrap_or_else(|| format!("layers.{i}")),
        }
    };
    for (i, l) in model.layers.iter().enumerate() {
        let node = id(i + 1);
        let _ = writeln!(
            out,
            "  \"{node}\" [label=\"{node}\\n{}\\n{:?}\"];",
            l.describe.replace('"', "'"),
            l.output
        );
        for &t in &l.inputs {
            let _ = writeln!(out, "  \"{}\" -> \"{node}\";", id(t.0));
        }
    }
    out.push_str("}\n");
    Some(out)
}
