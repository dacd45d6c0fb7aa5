//! Training chains: load → forward(s) → loss → backward → [accumulate] → step, traced
//! back from each step stage. Lowering turns each into one chain of the plan; what the
//! executor cannot run is reported here, located.

use crate::diag::Diagnostic;
use crate::parse::ParsedPipeline;
use crate::spec::{Pipeline, Stage};

use super::graph::{StageGraph, field_path, stage_path};

/// Stage indices of one training chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainChain {
    /// The load stage feeding the first model.
    pub load: usize,
    /// The forward stage whose outputs the loss reads.
    pub forward: usize,
    /// Every forward stage from the load to the loss, load side first (`forward` last):
    /// a chained model, e.g. an encoder then a head. Only the first may be frozen.
    pub forwards: Vec<usize>,
    /// The frozen teacher's forward stage of a distillation loss.
    pub teacher: Option<usize>,
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
    let p = &parsed.pipeline;
    for step in (0..stages.len()).filter(|&i| matches!(stages[i], Stage::Step(_))) {
        let Some(chain) = trace_one(parsed, g, step, out) else {
            continue;
        };
        let twice = trained_models(p, &chain).into_iter().find_map(|m| {
            chains
                .iter()
                .find(|c| trained_models(p, c).contains(&m))
                .map(|c| (m, c.step))
        });
        if let Some((model, first)) = twice {
            out.push(
                Diagnostic::new(
                    "model-trained-twice",
                    format!(
                        "model `{model}` is updated by two step stages, `{}` and `{}`",
                        stages[first].id(),
                        stages[step].id()
                    ),
                )
                .at(parsed.span(&stage_path(step)), "second step stage of this model")
                .stage(stages[step].id())
                .expected_found(
                    "one step stage per model",
                    format!("`{}` and `{}`", stages[first].id(), stages[step].id()),
                )
                .hint("give each step stage its own model, mark a shared model `frozen: true`, or merge the two chains"),
            );
            continue;
        }
        chains.push(chain);
    }
    // What an eval can evaluate: the model whose outputs a chain's loss reads (with the
    // models in front of it), or a frozen model on its own.
    let heads: Vec<&str> = chains.iter().map(|c| model_of(p, c.forward)).collect();
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
            Stage::Eval(e)
                if !heads.contains(&e.model.as_str())
                    && !p.models.get(&e.model).is_some_and(|m| m.frozen) =>
            {
                let feeds = chains.iter().find_map(|c| {
                    let at = c.forwards.iter().position(|&f| model_of(p, f) == e.model)?;
                    Some(model_of(p, c.forwards[at + 1]))
                });
                let message = match feeds {
                    Some(next) => format!(
                        "eval `{}` evaluates model `{}`, whose outputs feed model `{next}`",
                        e.id, e.model
                    ),
                    None => format!(
                        "eval `{}` evaluates model `{}`, which no step stage trains and is not frozen",
                        e.id, e.model
                    ),
                };
                out.push(
                    Diagnostic::new("unsupported", message)
                        .at(parsed.span(&field_path(i, "model")), "not a model a chain ends in")
                        .stage(stage.id())
                        .expected_found(
                            format!(
                                "one of {}, or a model with `frozen: true`",
                                heads.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
                            ),
                            format!("`{}`", e.model),
                        )
                        .hint(match feeds {
                            Some(next) => format!("evaluate `{next}` (the eval runs the models in front of it too)"),
                            None => format!("evaluate `{}`, add a training chain for `{}`, or mark it `frozen: true` (with `init_from:`)", heads[0], e.model),
                        }),
                );
            }
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
    // Walk back through chained models to the load (the checks found no cycle).
    let mut forwards = vec![forward];
    let load = loop {
        let last = forwards[forwards.len() - 1];
        let (source, _) = g.source_of(last, "input")?;
        match &stages[source] {
            Stage::Load(_) => break source,
            Stage::Forward(_) if forwards.len() < stages.len() => forwards.push(source),
            _ => return None,
        }
    };
    forwards.reverse();
    let p = &parsed.pipeline;
    let frozen = |f: usize| p.models.get(model_of(p, f)).is_some_and(|m| m.frozen);
    // Problems are reported and the chain is still returned, so that evals of its model
    // are not reported as well; the pipeline is invalid either way.
    if forwards.iter().all(|&f| frozen(f)) {
        out.push(
            Diagnostic::new(
                "nothing-to-train",
                format!("every model on the chain of step stage `{}` is frozen", stages[step].id()),
            )
            .at(parsed.span(&stage_path(step)), "updates nothing")
            .stage(stages[step].id())
            .hint("remove `frozen: true` from the model this step should train, or remove the step stage"),
        );
    } else if let Some(at) = (1..forwards.len()).find(|&at| frozen(forwards[at])) {
        let f = forwards[at];
        out.push(
            Diagnostic::new(
                "unsupported",
                format!("frozen model `{}` is behind model `{}` on the chain of `{}`: gradients do not flow through frozen models", model_of(p, f), model_of(p, forwards[at - 1]), stages[step].id()),
            )
            .at(parsed.span(&field_path(f, "model")), "frozen, but not the chain's first model")
            .stage(stages[f].id())
            .hint("only the first model of a chain may be frozen (a pre-trained encoder); unfreeze this one"),
        );
    }
    if let Some(at) = (1..forwards.len()).find(|&at| {
        forwards[..at]
            .iter()
            .any(|&g| model_of(p, g) == model_of(p, forwards[at]))
    }) {
        let f = forwards[at];
        out.push(
            Diagnostic::new(
                "unsupported",
                format!(
                    "model `{}` appears twice on the chain of `{}`",
                    model_of(p, f),
                    stages[step].id()
                ),
            )
            .at(
                parsed.span(&field_path(f, "model")),
                "second use on this chain",
            )
            .stage(stages[f].id())
            .hint("define a second model with the same layers (weights are not shared)"),
        );
    }
    let teacher = teacher_of(parsed, g, loss, load, out).flatten();
    Some(TrainChain {
        load,
        forward,
        forwards,
        teacher,
        loss,
        backward,
        accumulate,
        step,
    })
}

/// The teacher forward of a distillation loss: a frozen model fed the chain's features.
/// `Some(None)` when the loss has no teacher; `None` after reporting a problem.
fn teacher_of(
    parsed: &ParsedPipeline,
    g: &StageGraph,
    loss: usize,
    load: usize,
    out: &mut Vec<Diagnostic>,
) -> Option<Option<usize>> {
    let p = &parsed.pipeline;
    let Stage::Loss(l) = &p.stages[loss] else {
        return None;
    };
    let source = g.source_of(loss, "teacher").map(|(s, _)| s);
    match (l.function.row().needs_teacher, source) {
        (true, None) => {
            out.push(
                Diagnostic::new(
                    "missing-teacher",
                    format!("loss `{}` distils, but names no teacher", l.id),
                )
                .at(parsed.span(&field_path(loss, "fn")), "needs `teacher:`")
                .stage(&l.id)
                .hint("add `teacher: <forward of a frozen model>.logits`"),
            );
            None
        }
        (true, Some(t)) => {
            let model = model_of(p, t);
            if !p.models.get(model).is_some_and(|m| m.frozen) {
                out.push(
                    Diagnostic::new("unsupported", format!("the teacher `{model}` of loss `{}` is not frozen", l.id))
                        .at(parsed.span(&field_path(loss, "teacher")), "a model the run may train")
                        .stage(&l.id)
                        .hint(format!("mark `models.{model}` `frozen: true`, with `init_from:` its trained weights")),
                );
                return None;
            }
            match g.source_of(t, "input").map(|(s, _)| s) {
                Some(source) if source == load => {}
                Some(source) if matches!(p.stages[source], Stage::Forward(_)) => {
                    out.push(
                        Diagnostic::new("unsupported", format!("the teacher `{model}` of loss `{}` reads another model's outputs: a teacher is one frozen model", l.id))
                            .at(parsed.span(&field_path(t, "input")), "another model's outputs")
                            .stage(p.stages[t].id())
                            .hint(format!("teach with one model fed `{}.features` (define it with the layers of the models chained here)", p.stages[load].id())),
                    );
                    return None;
                }
                _ => {
                    out.push(
                        Diagnostic::new(
                            "unsupported",
                            format!(
                                "the teacher of loss `{}` reads other data than the student",
                                l.id
                            ),
                        )
                        .at(
                            parsed.span(&field_path(t, "input")),
                            "not the student's load stage",
                        )
                        .stage(p.stages[t].id())
                        .hint(format!(
                            "feed the teacher `{}.features`",
                            p.stages[load].id()
                        )),
                    );
                    return None;
                }
            }
            Some(Some(t))
        }
        (_, Some(_)) => {
            out.push(
                Diagnostic::new(
                    "unused-teacher",
                    format!(
                        "loss `{}` has a teacher, which only `fn: distill` reads",
                        l.id
                    ),
                )
                .at(
                    parsed.span(&field_path(loss, "teacher")),
                    "ignored by this loss",
                )
                .stage(&l.id)
                .hint("set `fn: distill`, or remove `teacher:`"),
            );
            None
        }
        (_, None) => Some(None),
    }
}

/// The model a forward stage runs.
pub fn model_of(p: &Pipeline, forward: usize) -> &str {
    match &p.stages[forward] {
        Stage::Forward(f) => &f.model,
        _ => "",
    }
}

/// The models a chain's step updates: every model on it but a frozen one.
pub fn trained_models<'p>(p: &'p Pipeline, chain: &TrainChain) -> Vec<&'p str> {
    chain
        .forwards
        .iter()
        .map(|&f| model_of(p, f))
        .filter(|m| !p.models.get(*m).is_some_and(|spec| spec.frozen))
        .collect()
}
