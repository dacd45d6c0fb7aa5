//! The task check: losses, class weights and eval metrics fit what the data sets hold
//! (class labels or regression targets), each misfit located where it is written.

use std::collections::BTreeMap;

use super::data::DatasetInfo;
use super::graph::{StageGraph, field_path};
use ops::loss::LossTargets;

use crate::diag::Diagnostic;
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::{EvalMetric, EvalStage, LossFn, LossStage, SplitSpec, Stage};

/// The metrics an eval computes: those it lists, else its data set's task defaults.
pub fn eval_metrics(datasets: &BTreeMap<String, DatasetInfo>, e: &EvalStage) -> Vec<EvalMetric> {
    e.metrics.clone().unwrap_or_else(|| {
        EvalMetric::defaults(
            datasets
                .get(&e.dataset)
                .is_some_and(DatasetInfo::is_regression),
        )
    })
}

pub(super) fn check(
    parsed: &ParsedPipeline,
    graph: &StageGraph,
    datasets: &BTreeMap<String, DatasetInfo>,
    out: &mut Vec<Diagnostic>,
) {
    for (name, spec) in &parsed.pipeline.datasets {
        let Some(ds) = datasets.get(name) else {
            continue;
        };
        if let SplitSpec::Fraction(f) = &spec.split
            && ds.is_regression()
            && f.stratified == Some(true)
        {
            let path = [
                Seg::Key("datasets".into()),
                Seg::Key(name.clone()),
                Seg::Key("split".into()),
                Seg::Key("stratified".into()),
            ];
            out.push(
                Diagnostic::new(
                    "task-mismatch",
                    format!("data set `{name}` holds regression targets, which have no classes to stratify by"),
                )
                .at(parsed.span(&path), "needs class labels")
                .hint("remove `stratified` (a regression split is a seeded shuffle)"),
            );
        }
    }
    for (i, stage) in parsed.pipeline.stages.iter().enumerate() {
        match stage {
            Stage::Loss(l) => {
                let ds = graph.source_of(i, "target").and_then(|(t, _)| {
                    match &parsed.pipeline.stages[t] {
                        Stage::Load(load) => {
                            datasets.get(&load.dataset).map(|d| (&load.dataset, d))
                        }
                        _ => None,
                    }
                });
                loss(parsed, i, l, ds, out);
            }
            Stage::Eval(e) => {
                let Some(ds) = datasets.get(&e.dataset) else {
                    continue;
                };
                for (k, metric) in e.metrics.iter().flatten().enumerate() {
                    let at = || {
                        let mut p = field_path(i, "metrics");
                        p.push(Seg::Index(k));
                        parsed.span(&p)
                    };
                    let targets = if ds.is_regression() {
                        LossTargets::Values
                    } else {
                        LossTargets::Classes
                    };
                    if !metric.fits(targets) {
                        let holds = if ds.is_regression() {
                            "regression targets"
                        } else {
                            "class labels"
                        };
                        let fits = EvalMetric::all()
                            .filter(|m| m.fits(targets))
                            .map(|m| format!("`{}`", m.as_str()))
                            .collect::<Vec<_>>()
                            .join(", ");
                        out.push(
                            Diagnostic::new(
                                "task-mismatch",
                                format!("`{}` does not measure data set `{}`, which holds {holds}", metric.as_str(), e.dataset),
                            )
                            .at(at(), "not for this task")
                            .stage(&e.id)
                            .expected_found(format!("one of {fits}"), format!("`{}`", metric.as_str()))
                            .hint("metrics follow the data set's task: a `label` column is classification, `target` columns regression"),
                        );
                    } else if metric.row().binary_only && ds.classes != 2 {
                        out.push(
                            Diagnostic::new(
                                "task-mismatch",
                                format!(
                                    "`{}` needs a binary task, data set `{}` has {} classes",
                                    metric.as_str(),
                                    e.dataset,
                                    ds.classes
                                ),
                            )
                            .at(at(), "binary tasks only")
                            .stage(&e.id)
                            .expected_found("2 classes", format!("{} classes", ds.classes))
                            .hint("use `f1` (macro-averaged) or `confusion` for more classes"),
                        );
                    }
                }
            }
            Stage::Callback(c) => {
                for (k, watched) in c.watch.iter().enumerate() {
                    let Some((id, port)) = watched.split() else {
                        continue;
                    };
                    let eval = parsed.pipeline.stages.iter().find_map(|s| match s {
                        Stage::Eval(e) if e.id.0 == id => Some(e),
                        _ => None,
                    });
                    let Some(e) = eval else { continue };
                    let computed = eval_metrics(datasets, e);
                    if computed.iter().any(|m| m.as_str() == port) {
                        continue;
                    }
                    let mut p = field_path(i, "watch");
                    p.push(Seg::Index(k));
                    let list: Vec<String> = computed
                        .iter()
                        .filter(|m| m.is_scalar())
                        .map(|m| format!("`{id}.{}`", m.as_str()))
                        .collect();
                    out.push(
                        Diagnostic::new(
                            "unknown-metric",
                            format!("eval `{id}` does not compute `{port}`"),
                        )
                        .at(parsed.span(&p), "not among its metrics")
                        .stage(&c.id)
                        .expected_found(
                            format!("one of {}", list.join(", ")),
                            format!("`{watched}`"),
                        )
                        .hint(format!("add `{port}` to the `metrics:` of eval `{id}`")),
                    );
                }
            }
            _ => {}
        }
    }
}

fn loss(
    parsed: &ParsedPipeline,
    i: usize,
    l: &LossStage,
    ds: Option<(&String, &DatasetInfo)>,
    out: &mut Vec<Diagnostic>,
) {
    let name = l.function.as_str();
    if let Some((dataset, ds)) = ds {
        let fits = ds.fits(l.function);
        if !fits {
            let holds = if ds.is_regression() {
                "regression targets"
            } else {
                "class labels"
            };
            let fitting: Vec<String> = LossFn::all()
                .filter(|f| ds.fits(*f))
                .map(|f| format!("`{}`", f.as_str()))
                .collect();
            let use_ = format!("one of {}", fitting.join(", "));
            out.push(
                Diagnostic::new(
                    "task-mismatch",
                    format!("`{name}` does not fit data set `{dataset}`, which holds {holds}"),
                )
                .at(parsed.span(&field_path(i, "fn")), "not for this task")
                .stage(&l.id)
                .expected_found(use_, format!("`{name}`"))
                .hint("a `label` column makes a classification data set, `target` columns a regression one"),
            );
        }
        if let Some(weights) = &l.class_weights
            && !ds.is_regression()
            && weights.len() != ds.classes
        {
            out.push(
                Diagnostic::new(
                    "invalid-hyperparameter",
                    format!(
                        "`class_weights` lists {} weights but data set `{dataset}` has {} classes",
                        weights.len(),
                        ds.classes
                    ),
                )
                .at(
                    parsed.span(&field_path(i, "class_weights")),
                    "one weight per class",
                )
                .stage(&l.id)
                .expected_found(
                    format!("{} weights", ds.classes),
                    format!("{}", weights.len()),
                )
                .hint(match &ds.class_names {
                    Some(names) => format!("weights go in class order: {}", names.join(", ")),
                    None => "weights go in class order: class 0 first".to_string(),
                }),
            );
        }
    }
    // A key another loss reads is refused where it is written, never ignored (`teacher`
    // on another loss is `unused-teacher`, reported with the chain).
    let row = l.function.row();
    let written = [
        ("label_smoothing", l.label_smoothing != 0.0),
        ("class_weights", l.class_weights.is_some()),
        ("delta", l.delta.is_some()),
        ("temperature", l.temperature.is_some()),
        ("alpha", l.alpha.is_some()),
    ];
    for (key, _) in written.iter().filter(|(k, w)| *w && !row.keys.contains(k)) {
        let readers: Vec<String> = LossFn::all()
            .filter(|f| f.row().keys.contains(key))
            .map(|f| format!("`{}`", f.as_str()))
            .collect();
        out.push(
            Diagnostic::new(
                "invalid-hyperparameter",
                format!("`{key}` applies to {}, not `{name}`", readers.join(" or ")),
            )
            .at(parsed.span(&field_path(i, key)), "not used by this loss")
            .stage(&l.id)
            .hint(match readers.first() {
                Some(f) => format!("remove it, or use `fn: {}`", f.trim_matches('`')),
                None => "remove it".to_string(),
            }),
        );
    }
    if let Some(weights) = l
        .class_weights
        .as_ref()
        .filter(|_| row.keys.contains(&"class_weights"))
        && let Some((k, w)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w > 0.0))
    {
        let mut p = field_path(i, "class_weights");
        p.push(Seg::Index(k));
        out.push(
            Diagnostic::new(
                "invalid-hyperparameter",
                format!("class weight {k} must be a positive number, found {w}"),
            )
            .at(parsed.span(&p), "here")
            .stage(&l.id)
            .expected_found("> 0", format!("{w}"))
            .hint("weights scale each class's share of the loss; 1 leaves a class as it is"),
        );
    }
    if let Some(delta) = l.delta.filter(|_| row.keys.contains(&"delta"))
        && !(delta.is_finite() && delta > 0.0)
    {
        out.push(
            Diagnostic::new(
                "invalid-hyperparameter",
                format!("`delta` must be positive, found {delta}"),
            )
            .at(parsed.span(&field_path(i, "delta")), "here")
            .stage(&l.id)
            .expected_found("> 0", format!("{delta}"))
            .hint("PyTorch's default is 1.0"),
        );
    }
}
