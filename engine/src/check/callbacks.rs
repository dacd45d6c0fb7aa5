//! Callback checks: ordering references and cycles, scheduled step stages, monitored
//! metrics.

use std::collections::BTreeMap;

use petgraph::graph::DiGraph;

use crate::callbacks::OutputRole;
use crate::diag::{Diagnostic, did_you_mean};
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::{PortRef, Stage, StageId, Trigger};

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
        let kind = cb.callback.name();
        let Some(scope) = cb.callback.once_per() else {
            continue;
        };
        let key = format!("{kind}{scope}");
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
        let mut cx = CallbackCheck {
            parsed,
            graph,
            datasets,
            index: i,
            explicit_on: cb.on.as_deref(),
            out,
        };
        cb.callback.check_pipeline(&mut cx);
    }
}

/// What a callback's [`check_pipeline`](crate::callbacks::CallbackRule::check_pipeline)
/// reads of the pipeline, and where its diagnostics go (located in its own settings).
pub struct CallbackCheck<'a> {
    parsed: &'a ParsedPipeline,
    graph: &'a StageGraph,
    datasets: &'a BTreeMap<String, DatasetInfo>,
    /// The callback stage's index.
    index: usize,
    explicit_on: Option<&'a [Trigger]>,
    out: &'a mut Vec<Diagnostic>,
}

impl CallbackCheck<'_> {
    fn stage(&self) -> &Stage {
        &self.parsed.pipeline.stages[self.index]
    }

    /// The path of `keys` inside the callback's settings.
    fn at(&self, keys: &[&str]) -> Vec<Seg> {
        let mut p = field_path(self.index, "callback");
        p.extend(keys.iter().map(|k| Seg::Key((*k).into())));
        p
    }

    /// The stage's `on:` when it gives one.
    pub fn explicit_on(&self) -> Option<&[Trigger]> {
        self.explicit_on
    }

    /// Reports `diagnostic` at `keys` of the callback's settings, labelled `label`.
    pub fn report(&mut self, keys: &[&str], label: &str, diagnostic: Diagnostic) {
        let span = self.parsed.span(&self.at(keys));
        let id = self.stage().id().clone();
        self.out.push(diagnostic.at(span, label).stage(&id));
    }

    /// Reports that the callback would not fire as its `on:` says: `why`, and `hint`.
    pub fn ignored_on(&mut self, why: &str, hint: &str) {
        let stage = self.stage();
        let diagnostic = Diagnostic::new(
            "ignored-trigger",
            format!("callback `{}` would not fire as its `on:` says", stage.id()),
        )
        .at(
            self.parsed.span(&field_path(self.index, "on")),
            "not what this callback does",
        )
        .stage(stage.id())
        .note(why)
        .hint(hint);
        self.out.push(diagnostic);
    }

    /// Whether `reference` names a loss stage's training loss (`<loss stage>.loss`).
    pub fn is_train_loss(&self, reference: &PortRef) -> bool {
        reference.split().is_some_and(|(stage, port)| {
            port == "loss"
                && self
                    .parsed
                    .pipeline
                    .stages
                    .iter()
                    .any(|s| matches!(s, Stage::Loss(_)) && s.id().0 == stage)
        })
    }

    /// Whether some callback saves checkpoints.
    pub fn saves_checkpoints(&self) -> bool {
        self.parsed.pipeline.stages.iter().any(|s| {
            matches!(s, Stage::Callback(c)
                if c.callback.output().is_some_and(|o| o.role == OutputRole::Checkpoints))
        })
    }

    /// `reference` (at `keys`) must be `<eval id>.<metric it computes>`.
    pub fn eval_metric(&mut self, reference: &PortRef, keys: &[&str]) {
        let path = self.at(keys);
        let stage = &self.parsed.pipeline.stages[self.index];
        monitor(self.parsed, self.datasets, reference, path, stage, self.out);
    }

    /// `id` (at `keys`) must name a step stage.
    pub fn step_stage(&mut self, id: &StageId, keys: &[&str]) {
        let stages = &self.parsed.pipeline.stages;
        let target = self.graph.node(&id.0).map(|n| &stages[self.graph.graph[n]]);
        if matches!(target, Some(Stage::Step(_))) {
            return;
        }
        let steps: Vec<&str> = stages
            .iter()
            .filter(|s| matches!(s, Stage::Step(_)))
            .map(|s| s.id().0.as_str())
            .collect();
        let kind = match self.stage() {
            Stage::Callback(c) => c.callback.name(),
            _ => "callback",
        };
        let diagnostic = Diagnostic::new(
            "bad-schedule-target",
            format!(
                "`{kind}` must name a step stage, but `{id}` is {}",
                target.map_or("not a stage".to_string(), |s| format!(
                    "a {} stage",
                    s.kind()
                ))
            ),
        )
        .expected_found(format!("one of {}", list(&steps)), format!("`{id}`"))
        .maybe_hint(did_you_mean(&id.0, steps.iter().copied()));
        self.report(keys, "not a step stage", diagnostic);
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
