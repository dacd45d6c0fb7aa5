//! Training chains: load → forward → loss → backward → [accumulate] → step, traced back
//! from each step stage. Lowering turns each into one chain of the plan; what the
//! executor cannot run is reported here, located.

use crate::diag::Diagnostic;
use crate::parse::ParsedPipeline;
use crate::spec::Stage;

use super::graph::{StageGraph, field_path, stage_path};

/// Stage indices of one training chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainChain {
    /// The load stage feeding the model.
    pub load: usize,
    /// The forward stage.
    pub forward: usize,
    /// The loss stage.
    pub loss: usize,
    /// The backward stage.
    pub backward: usize,
    /// The accumulate stage, if any.
    pub accumulate: Option<usize>,
    /// The step stage.
    pub step: usize,
}

/// Traces one chain per step stage, in file order. Reports chained models, a model two
/// step stages train, loads that feed no chain, and evals of a model no chain trains.
pub(super) fn trace(
    parsed: &ParsedPipeline,
    g: &StageGraph,
    out: &mut Vec<Diagnostic>,
) -> Vec<TrainChain> {
    let stages = &parsed.pipeline.stages;
    let mut chains: Vec<TrainChain> = Vec::new();
    for step in (0..stages.len()).filter(|&i| matches!(stages[i], Stage::Step(_))) {
        let Some(chain) = trace_one(parsed, g, step, out) else {
            continue;
        };
        let model = |c: &TrainChain| match &stages[c.forward] {
            Stage::Forward(f) => f.model.as_str(),
            _ => "",
        };
        if let Some(first) = chains.iter().find(|c| model(c) == model(&chain)) {
            out.push(
                Diagnostic::new(
                    "model-trained-twice",
                    format!(
                        "model `{}` is updated by two step stages, `{}` and `{}`",
                        model(&chain),
                        stages[first.step].id(),
                        stages[step].id()
                    ),
                )
                .at(
                    parsed.span(&stage_path(step)),
                    "second step stage of this model",
                )
                .stage(stages[step].id())
                .expected_found(
                    "one step stage per model",
                    format!("`{}` and `{}`", stages[first.step].id(), stages[step].id()),
                )
                .hint("give each step stage its own model, or merge the two chains"),
            );
            continue;
        }
        chains.push(chain);
    }
    let trained: Vec<&str> = chains
        .iter()
        .filter_map(|c| match &stages[c.forward] {
            Stage::Forward(f) => Some(f.model.as_str()),
            _ => None,
        })
        .collect();
    if chains.is_empty() {
        return chains;
    }
    for (i, stage) in stages.iter().enumerate() {
        match stage {
            Stage::Load(_) if !chains.iter().any(|c| c.load == i) => out.push(
                Diagnostic::new("unused-stage", format!("load stage `{}` feeds nothing that trains", stage.id()))
                    .at(parsed.span(&stage_path(i)), "not on a training chain")
                    .stage(stage.id())
                    .hint("evals read their own split (`kind: eval`, `split: ...`); remove this load stage"),
            ),
            Stage::Eval(e) if !trained.contains(&e.model.as_str()) => out.push(
                Diagnostic::new("unsupported", format!("eval `{}` evaluates model `{}`, which no step stage trains", e.id, e.model))
                    .at(parsed.span(&field_path(i, "model")), "not a trained model")
                    .stage(stage.id())
                    .expected_found(
                        format!("one of {}", trained.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")),
                        format!("`{}`", e.model),
                    )
                    .hint(format!("evaluate `{}`, or add a training chain for `{}`", trained[0], e.model)),
            ),
            _ => {}
        }
    }
    chains
}

/// The chain ending at step stage `step`.
fn trace_one(
    parsed: &ParsedPipeline,
    g: &StageGraph,
    step: usize,
    out: &mut Vec<Diagnostic>,
) -> Option<TrainChain> {
    let stages = &parsed.pipeline.stages;
    let (mut grads, _) = g.source_of(step, "grads")?;
    let accumulate = matches!(stages[grads], Stage::Accumulate(_)).then_some(grads);
    if let Some(a) = accumulate {
        grads = g.source_of(a, "grads")?.0;
    }
    let backward = grads;
    let (loss, _) = g.source_of(backward, "loss")?;
    let (forward, _) = g.source_of(loss, "logits")?;
    let (load, _) = g.source_of(forward, "input")?;
    if !matches!(stages[load], Stage::Load(_)) {
        out.push(
            Diagnostic::new(
                "unsupported",
                "the trained model is fed by another model: chained models are not run yet",
            )
            .at(
                parsed.span(&field_path(forward, "input")),
                "fed by a forward stage",
            )
            .stage(stages[forward].id())
            .hint("feed the forward stage from a load stage's `features`"),
        );
        return None;
    }
    Some(TrainChain {
        load,
        forward,
        loss,
        backward,
        accumulate,
        step,
    })
}
