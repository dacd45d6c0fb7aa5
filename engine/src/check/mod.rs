//! Check: a parsed pipeline to a checked graph with inferred shapes, or every problem
//! found, located. Each pass is a small function over the graph.

mod blocks;
mod callbacks;
mod chain;
mod data;
mod extensions;
mod federated;
mod graph;
mod paths;
mod ranges;
mod refs;
mod shapes;
mod task;
mod wiring;

pub use crate::data::{ProbeFailure, SourceInfo};
pub use callbacks::CallbackCheck;
pub use chain::{TrainChain, model_of, trained_models};
pub use data::{DatasetInfo, ProbeCx};
pub use graph::{Edge, PortType, StageGraph};
pub use shapes::{LayerShape, ModelShapes};
pub use task::eval_metrics;

use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::parse::ParsedPipeline;

/// A pipeline that passed every check, with what the checks learned.
#[derive(Debug, Clone)]
pub struct CheckedPipeline {
    /// The parsed pipeline.
    pub parsed: ParsedPipeline,
    /// The stage graph.
    pub graph: StageGraph,
    /// Shapes through each model.
    pub models: BTreeMap<String, ModelShapes>,
    /// Sizes and shapes of each data set.
    pub datasets: BTreeMap<String, DatasetInfo>,
    /// The training chains, one per step stage in file order (a valid pipeline has at
    /// least one).
    pub chains: Vec<TrainChain>,
}

/// The `exec` callbacks of a checked pipeline, each located at its command: `engine run`
/// refuses them unless `--allow-exec` says the commands may run.
pub fn exec_commands(checked: &CheckedPipeline) -> Vec<Diagnostic> {
    use crate::parse::Seg;
    use crate::spec::Stage;
    let parsed = &checked.parsed;
    parsed
        .pipeline
        .stages
        .iter()
        .enumerate()
        .filter_map(|(i, stage)| {
            let Stage::Callback(c) = stage else {
                return None;
            };
            let command = c.callback.command()?;
            let path = [
                graph::field_path(i, "callback"),
                vec![Seg::Key("command".into())],
            ]
            .concat();
            Some(
                Diagnostic::new(
                    "exec-not-allowed",
                    format!(
                        "callback `{}` runs `{}`; a pipeline's commands run only when you allow them",
                        c.id.0,
                        command.argv.join(" ")
                    ),
                )
                .at(parsed.span(&path), "runs this command")
                .stage(stage.id())
                .hint("read the command, then pass `engine run --allow-exec` (`engine plan` lists every command)"),
            )
        })
        .collect()
}

/// `precision: f16` on step `step_id` located, for an adapter without f16 shaders (the run
/// found out when it opened the adapter).
pub fn f16_unavailable(checked: &CheckedPipeline, step_id: &str, adapter: &str) -> Vec<Diagnostic> {
    use crate::parse::Seg;
    let parsed = &checked.parsed;
    let Some((i, stage)) = parsed
        .pipeline
        .stages
        .iter()
        .enumerate()
        .find(|(_, s)| s.id().0 == step_id)
    else {
        return Vec::new();
    };
    let path = [graph::field_path(i, "precision"), Vec::<Seg>::new()].concat();
    vec![
        Diagnostic::new(
            "f16-unavailable",
            format!(
                "step `{step_id}` trains in mixed precision, but adapter {adapter} has no f16 shaders"
            ),
        )
        .at(parsed.key_span(&path), "needs shader-f16")
        .stage(stage.id())
        .hint("run on an adapter with f16 shaders (`engine devices`; Mesa's lavapipe has them: --device vulkan), or add `f16_fallback: f32` to train in f32 there"),
    ]
}

/// Builds the stage graph and runs every check, collecting all problems.
pub fn check_pipeline(parsed: ParsedPipeline) -> Result<CheckedPipeline, Vec<Diagnostic>> {
    let mut diagnostics = parsed.repaired.clone();
    let graph = graph::build(&parsed, &mut diagnostics);
    let references_ok = diagnostics.len() == parsed.repaired.len();
    graph::check_flow(&parsed, &graph, references_ok, &mut diagnostics);
    let acyclic = !diagnostics.iter().any(|d| d.code == "cycle");
    refs::check(&parsed, &mut diagnostics);
    ranges::check(&parsed, &mut diagnostics);
    extensions::check(&parsed, &mut diagnostics);
    paths::check(&parsed, &mut diagnostics);
    let datasets = data::probe_all(&parsed, &mut diagnostics);
    let models = shapes::check(&parsed, &graph, &datasets, acyclic, &mut diagnostics);
    let chains = if acyclic && references_ok {
        chain::trace(&parsed, &graph, &mut diagnostics)
    } else {
        Vec::new()
    };
    for chain in &chains {
        refs::check_batches(&parsed, chain, &datasets, &mut diagnostics);
    }
    task::check(&parsed, &graph, &datasets, &mut diagnostics);
    federated::check(&parsed, &chains, &datasets, &mut diagnostics);
    callbacks::check(&parsed, &graph, &datasets, &mut diagnostics);
    diagnostics.sort_by_key(|d| d.span.map(|s| (s.source, s.start)));
    diagnostics.dedup();
    if diagnostics.is_empty() {
        Ok(CheckedPipeline {
            parsed,
            graph,
            models,
            datasets,
            chains,
        })
    } else {
        Err(diagnostics)
    }
}
