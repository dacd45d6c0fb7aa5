//! Callback checks: ordering references and cycles, scheduled step stages, monitored
//! metrics.

use std::collections::BTreeMap;

use petgraph::graph::DiGraph;

use crate::diag::{Diagnostic, did_you_mean};
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::{CallbackSpec, PortRef, Stage, StageId, Trigger};

use super::data::DatasetInfo;
use super::graph::{StageGraph, field_path, list};
use super::task::eval_metrics;

fn ordering(stage: &Stage) -> Option<(&[StageId], &[StageId])> {
    match stage {
        Stage::Callback(c) => Some((&c.after, &c.before)),
        Stage::Eval(e) => Some((&e.after, &e.before)),
        _ => None,
    }
}

/// Triggers the executor cannot honour, and `on:` lists a callback does not read.
fn triggers(parsed: &ParsedPipeline, out: &mut Vec<Diagnostic>) {
    for (i, stage) in parsed.pipeline.stages.iter().enumerate() {
        let (on, explicit) = match stage {
            Stage::Eval(e) => (e.on.clone(), true),
            Stage::Callback(c) => (
                c.triggers(parsed.pipeline.federated.is_some()),
                c.on.is_some(),
            ),
            _ => continue,
        };
        for (k, t) in on.iter().enumerate() {
            if matches!(t, Trigger::AfterForward | Trigger::AfterBackward) && explicit {
                out.push(
                    Diagnostic::new(
                        "unsupported-trigger",
                        format!("`{t}` cannot fire where it says: a training step is one device submission, so nothing runs between its forward, backward and update"),
                    )
                    .at(parsed.span(&[field_path(i, "on"), vec![Seg::Index(k)]].concat()), "inside the step")
                    .stage(stage.id())
                    .expected_found("`batch_start`, `batch_end`, `every_n_steps`, `epoch_start`, `epoch_end`, `fit_start` or `fit_end`", format!("`{t}`"))
                    .hint("use `batch_end`: it fires after the step, with the updated weights"),
                );
            }
        }
        if let Stage::Callback(c) = stage
            && c.on.is_some()
        {
            let ignored = match &c.callback {
                CallbackSpec::LrSchedule(_) => Some((
                    "the schedule sets the learning rate of every micro-batch of its step stage; `on:` is not read",
                    "remove `on:`",
                )),
                CallbackSpec::Metrics(_)
                    if on.iter().any(|t| {
                        !matches!(
                            t,
                            Trigger::EpochEnd
                                | Trigger::FitEnd
                                | Trigger::EveryNSteps(_)
                                | Trigger::RoundEnd
                                | Trigger::EveryNRounds(_)
                        )
                    }) =>
                {
                    Some((
                        "train records are written at every epoch end and eval records at every evaluation (at `fit_end` too); `every_n_steps` triggers add steps records; other triggers mean nothing here",
                        "keep only `epoch_end`, `fit_end` and `every_n_steps` triggers in `on:`",
                    ))
                }
                _ => None,
            };
            if let Some((why, hint)) = ignored {
                out.push(
                    Diagnostic::new(
                        "ignored-trigger",
                        format!("callback `{}` would not fire as its `on:` says", c.id),
                    )
                    .at(
                        parsed.span(&field_path(i, "on")),
                        "not what this callback does",
                    )
                    .stage(stage.id())
                    .note(why)
                    .hint(hint),
                );
            }
        }
    }
}

pub(super) fn check(
    parsed: &ParsedPipeline,
    graph: &StageGraph,
    datasets: &BTreeMap<String, DatasetInfo>,
    out: &mut Vec<Diagnostic>,
) {
    triggers(parsed, out);
    let stages = &parsed.pipeline.stages;
    let hooks: Vec<&str> = stages
        .iter()
        .filter(|s| ordering(s).is_some())
        .map(|s| s.id().0.as_str())
        .collect();
    let mut order: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<_> = (0..stages.len()).map(|i| order.add_node(i)).collect();
    for (i, stage) in stages.iter().enumerate() {
        let Some((after, before)) = ordering(stage) else {
            continue;
        };
        for (field, ids, forward) in [("after", after, false), ("before", before, true)] {
            for (k, id) in ids.iter().enumerate() {
                let path = [field_path(i, field), vec![Seg::Index(k)]].concat();
                let target = stages.iter().position(|s| s.id() == id);
                match target {
                    Some(t) if t == i => out.push(
                        Diagnostic::new(
                            "bad-order",
                            format!("stage `{id}` lists itself in `{field}`"),
                        )
                        .at(parsed.span(&path), "itself")
                        .stage(stage.id())
                        .expected_found("another callback or eval", format!("`{id}`"))
                        .hint(format!("remove `{id}` from `{field}`")),
                    ),
                    Some(t) if ordering(&stages[t]).is_some() => {
                        let (a, b) = if forward { (i, t) } else { (t, i) };
                        order.add_edge(nodes[a], nodes[b], ());
                    }
                    Some(t) => out.push(
                        Diagnostic::new(
                            "bad-order",
                            format!("`{field}: {id}` names a {} stage", stages[t].kind()),
                        )
                        .at(parsed.span(&path), "not a callback or eval")
                        .stage(stage.id())
                        .expected_found(
                            format!("a callback or eval id: {}", list(&hooks)),
                            format!("`{id}` ({})", stages[t].kind()),
                        )
                        .hint("ordering applies among callbacks and evals at the same trigger"),
                    ),
                    None => out.push(
                        Diagnostic::new(
                            "unknown-stage",
                            format!("`{field}` refers to unknown stage `{id}`"),
                        )
                        .at(parsed.span(&path), "no stage has this id")
                        .stage(stage.id())
                        .expected_found(format!("one of {}", list(&hooks)), format!("`{id}`"))
                        .maybe_hint(did_you_mean(&id.0, hooks.iter().copied())),
                    ),
                }
            }
        }
    }
    for scc in petgraph::algo::tarjan_scc(&order) {
        if scc.len() < 2 {
            continue;
        }
        let mut ids: Vec<usize> = scc.iter().map(|n| order[*n]).collect();
        ids.sort();
        let names: Vec<String> = ids.iter().map(|i| stages[*i].id().to_string()).collect();
        out.push(
            Diagnostic::new(
                "order-cycle",
                format!("callback ordering is cyclic among {}", names.join(", ")),
            )
            .at(
                parsed.span(&[Seg::Key("stages".into()), Seg::Index(ids[0])]),
                "part of the cycle",
            )
            .stage(stages[ids[0]].id())
            .hint("remove one `after:` or `before:` so that one order exists"),
        );
    }
    // Callbacks that configure one thing for the whole run may appear once.
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        let Stage::Callback(cb) = stage else { continue };
        // One schedule per step stage; the others once per pipeline.
        let kind = cb.callback.name();
        let (key, scope) = match &cb.callback {
            CallbackSpec::LrSchedule(l) => (
                format!("lr_schedule {}", l.stage),
                format!(" for step stage `{}`", l.stage),
            ),
            _ if matches!(kind, "checkpoint" | "metrics" | "profile") => {
                (kind.to_string(), String::new())
            }
            _ => continue,
        };
        match seen.iter().find(|(k, _)| *k == key) {
            Some(&(_, first)) => out.push(
                Diagnostic::new(
                    "duplicate-callback",
                    format!("a second `{kind}` callback `{}`{scope}", stage.id()),
                )
                .at(
                    parsed.span(&[
                        Seg::Key("stages".into()),
                        Seg::Index(i),
                        Seg::Key("callback".into()),
                    ]),
                    "only one is used",
                )
                .stage(stage.id())
                .expected_found(
                    format!("one `{kind}` callback{scope}"),
                    format!("`{}` and `{}`", stages[first].id(), stage.id()),
                )
                .hint(format!("merge them into `{}`", stages[first].id())),
            ),
            None => seen.push((key, i)),
        }
    }
    for (i, stage) in stages.iter().enumerate() {
        let Stage::Callback(cb) = stage else { continue };
        let at = |keys: &[&str]| {
            let mut p = vec![
                Seg::Key("stages".into()),
                Seg::Index(i),
                Seg::Key("callback".into()),
            ];
            p.extend(keys.iter().map(|k| Seg::Key((*k).into())));
            p
        };
        match &cb.callback {
            CallbackSpec::LrSchedule(l) => {
                match graph.node(&l.stage.0).map(|n| &stages[graph.graph[n]]) {
                    Some(Stage::Step(_)) => {}
                    other => {
                        let steps: Vec<&str> = stages
                            .iter()
                            .filter(|s| matches!(s, Stage::Step(_)))
                            .map(|s| s.id().0.as_str())
                            .collect();
                        out.push(
                            Diagnostic::new(
                                "bad-schedule-target",
                                format!(
                                    "`lr_schedule` must name a step stage, but `{}` is {}",
                                    l.stage,
                                    other.map_or("not a stage".to_string(), |s| format!(
                                        "a {} stage",
                                        s.kind()
                                    ))
                                ),
                            )
                            .at(parsed.span(&at(&["stage"])), "not a step stage")
                            .stage(stage.id())
                            .expected_found(
                                format!("one of {}", list(&steps)),
                                format!("`{}`", l.stage),
                            )
                            .maybe_hint(did_you_mean(&l.stage.0, steps.iter().copied())),
                        );
                    }
                }
            }
            CallbackSpec::EarlyStopping(e) => {
                monitor(parsed, datasets, &e.monitor, at(&["monitor"]), stage, out)
            }
            CallbackSpec::Monitor(m) => {
                let is_train_loss = m.metric.split().is_some_and(|(stage, port)| {
                    port == "loss"
                        && stages
                            .iter()
                            .any(|s| matches!(s, Stage::Loss(_)) && s.id().0 == stage)
                });
                if !is_train_loss {
                    monitor(parsed, datasets, &m.metric, at(&["metric"]), stage, out);
                }
                check_monitor(parsed, m, &at, stage, out);
            }
            CallbackSpec::Checkpoint(c) => {
                if let Some(best) = &c.keep_best {
                    monitor(
                        parsed,
                        datasets,
                        &best.monitor,
                        at(&["keep_best", "monitor"]),
                        stage,
                        out,
                    );
                }
            }
            _ => {}
        }
    }
}

/// A monitored metric must be `<eval id>.<metric it computes>`.
fn monitor(
    parsed: &ParsedPipeline,
    datasets: &BTreeMap<String, DatasetInfo>,
    reference: &PortRef,
    path: Vec<Seg>,
    stage: &Stage,
    out: &mut Vec<Diagnostic>,
) {
    let stages = &parsed.pipeline.stages;
    let evals: Vec<String> = stages
        .iter()
        .filter_map(|s| match s {
            Stage::Eval(e) => Some(
                eval_metrics(datasets, e)
                    .into_iter()
                    .filter(|m| m.is_scalar())
                    .map(|m| format!("{}.{}", e.id, m.as_str()))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    if evals.iter().any(|e| e == &reference.0) {
        return;
    }
    out.push(
        Diagnostic::new(
            "unknown-metric",
            format!("`{reference}` is not a metric any eval stage computes"),
        )
        .at(parsed.span(&path), "unknown metric")
        .stage(stage.id())
        .expected_found(
            if evals.is_empty() {
                "an eval stage's metric (add an eval stage)".into()
            } else {
                format!(
                    "one of {}",
                    evals
                        .iter()
                        .map(|e| format!("`{e}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            format!("`{reference}`"),
        )
        .maybe_hint(did_you_mean(&reference.0, evals.iter().map(String::as_str))),
    );
}

fn check_monitor(
    parsed: &ParsedPipeline,
    m: &crate::spec::MonitorCallback,
    at: &dyn Fn(&[&str]) -> Vec<Seg>,
    stage: &Stage,
    out: &mut Vec<Diagnostic>,
) {
    use crate::spec::{MonitorAction, MonitorCondition};
    let mut bad = |ok: bool, path: &[&str], what: &str, expected: &str, found: String| {
        if !ok {
            out.push(
                Diagnostic::new("invalid-hyperparameter", format!("{what} is out of range"))
                    .at(parsed.span(&at(path)), format!("must be {expected}"))
                    .stage(stage.id())
                    .expected_found(expected, found)
                    .hint("see the monitor section of docs/pipeline.md"),
            );
        }
    };
    match &m.condition {
        MonitorCondition::Divergence(d) => bad(
            d.factor > 1.0,
            &["condition", "factor"],
            "`factor`",
            "> 1",
            d.factor.to_string(),
        ),
        MonitorCondition::Plateau(p) => bad(
            p.patience > 0,
            &["condition", "patience"],
            "`patience`",
            "> 0",
            p.patience.to_string(),
        ),
        MonitorCondition::NonFinite => {}
    }
    match &m.action {
        MonitorAction::ReduceLr(r) => bad(
            r.factor > 0.0 && r.factor < 1.0,
            &["action", "factor"],
            "`factor`",
            "in (0, 1)",
            r.factor.to_string(),
        ),
        MonitorAction::Rollback(r) => {
            bad(
                r.lr_factor > 0.0 && r.lr_factor <= 1.0,
                &["action", "lr_factor"],
                "`lr_factor`",
                "in (0, 1]",
                r.lr_factor.to_string(),
            );
            let has_checkpoints = parsed.pipeline.stages.iter().any(|s| matches!(s, Stage::Callback(c) if matches!(c.callback, CallbackSpec::Checkpoint(_))));
            if !has_checkpoints {
                out.push(
                    Diagnostic::new("rollback-without-checkpoints", "a monitor rolls back to the last checkpoint, but no checkpoint callback saves any")
                        .at(parsed.span(&at(&["action"])), "nothing to roll back to")
                        .stage(stage.id())
                        .hint("add a `checkpoint` callback, e.g. `{id: save, kind: callback, callback: {type: checkpoint}}`"),
                );
            }
        }
        MonitorAction::Stop => {}
    }
}
