//! Graphviz DOT output of the stage graph (`engine graph`).

use std::fmt::Write as _;

use petgraph::visit::EdgeRef;

use crate::check::{CheckedPipeline, Edge};
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
