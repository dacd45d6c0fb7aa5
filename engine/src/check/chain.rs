//! The training chain: load → forward → loss → backward → [accumulate] → step, traced
//! back from the step stage. The planner and the executor both use it, so what the plan
//! says is what runs; what the executor cannot run is reported here, located.

use crate::diag::Diagnostic;
use crate::parse::ParsedPipeline;
use crate::spec::Stage;

use super::graph::{StageGraph, field_path, stage_path};

/// Stage indices of the training chain.
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

/// Traces the chain; reports a second step stage, chained models, loads that feed
/// nothing, and evals of a model other than the trained one.
pub(super) fn trace(
    parsed: &ParsedPipeline,
    g: &StageGraph,
    out: &mut Vec<Diagnostic>,
) -> Option<TrainChain> {
    let stages = &parsed.pipeline.stages;
    let steps: Vec<usize> = (0..stages.len())
        .filter(|&i| matches!(stages[i], Stage::Step(_)))
        .collect();
    for &extra in steps.iter().skip(1) {
        out.push(
            Diagnostic::new(
                "unsupported",
                format!(
                    "a second step stage `{}`: the engine runs one training chain",
                    stages[extra].id()
                ),
            )
            .at(parsed.span(&stage_path(extra)), "second step stage")
            .stage(stages[extra].id())
            .expected_found("one step stage", format!("{} step stages", steps.len()))
            .hint("train one model per pipeline; split the others into their own pipelines"),
        );
    }
    let &step = steps.first()?;
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
    let Stage::Forward(trained) = &stages[forward] else {
        return None;
    };
    for (i, stage) in stages.iter().enumerate() {
        match stage {
            Stage::Load(_) if i != load => out.push(
                Diagnostic::new("unused-stage", format!("load stage `{}` feeds nothing that trains", stage.id()))
                    .at(parsed.span(&stage_path(i)), "not on the training chain")
                    .stage(stage.id())
                    .hint("evals read their own split (`kind: eval`, `split: ...`); remove this load stage"),
            ),
            Stage::Eval(e) if e.model != trained.model => out.push(
                Diagnostic::new("unsupported", format!("eval `{}` evaluates model `{}`, which this pipeline does not train", e.id, e.model))
                    .at(parsed.span(&field_path(i, "model")), "not the trained model")
                    .stage(stage.id())
                    .expected_found(format!("`{}` (trained by `{}`)", trained.model, stages[forward].id()), format!("`{}`", e.model))
                    .hint(format!("evaluate `{}`", trained.model)),
            ),
            _ => {}
        }
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
