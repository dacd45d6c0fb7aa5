//! Hyperparameter ranges, references to data sets and models, and accumulation against
//! the number of batches per epoch.

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, did_you_mean};
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::{
    CallbackSpec, LrSchedule, OptimizerSpec, Schedule, SourceSpec, SplitSpec, Stage,
};

use super::DatasetInfo;
use super::graph::field_path;

struct Ctx<'a> {
    parsed: &'a ParsedPipeline,
    out: &'a mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    // One call per rule reads as a table row: condition, place, what, expected, found, hint.
    #[allow(clippy::too_many_arguments)]
    fn range(
        &mut self,
        ok: bool,
        path: Vec<Seg>,
        stage: Option<&Stage>,
        what: &str,
        expected: &str,
        found: String,
        hint: &str,
    ) {
        if ok {
            return;
        }
        let mut d = Diagnostic::new("invalid-hyperparameter", format!("{what} is out of range"))
            .at(self.parsed.span(&path), format!("must be {expected}"))
            .expected_found(expected, found)
            .hint(hint);
        if let Some(stage) = stage {
            d = d.stage(stage.id());
        }
        self.out.push(d);
    }
}

fn join(base: &[Seg], keys: &[&str]) -> Vec<Seg> {
    let mut p = base.to_vec();
    p.extend(keys.iter().map(|k| Seg::Key((*k).into())));
    p
}

pub(super) fn check(parsed: &ParsedPipeline, out: &mut Vec<Diagnostic>) {
    let p = &parsed.pipeline;
    let mut c = Ctx { parsed, out };
    if p.version != 1 {
        c.out.push(
            Diagnostic::new(
                "unsupported-version",
                format!("pipeline format version {} is not supported", p.version),
            )
            .at(
                parsed.span(&[Seg::Key("version".into())]),
                "unknown version",
            )
            .expected_found("1", p.version.to_string())
            .hint("this engine reads pipeline format version 1; write `version: 1`"),
        );
    }
    match p.schedule {
        Schedule::Epochs(n) => c.range(
            n > 0,
            vec![Seg::Key("schedule".into()), Seg::Key("epochs".into())],
            None,
            "`schedule.epochs`",
            "> 0",
            n.to_string(),
            "train for at least one epoch",
        ),
        Schedule::Steps(n) => c.range(
            n > 0,
            vec![Seg::Key("schedule".into()), Seg::Key("steps".into())],
            None,
            "`schedule.steps`",
            "> 0",
            n.to_string(),
            "train for at least one step",
        ),
    }
    for (name, ds) in &p.datasets {
        let base = vec![Seg::Key("datasets".into()), Seg::Key(name.clone())];
        check_source(&mut c, &ds.source, &join(&base, &["source"]));
        if let SplitSpec::Fraction(f) = &ds.split {
            let sp = join(&base, &["split"]);
            for (key, v) in [("train", f.train), ("val", f.val), ("test", f.test)] {
                c.range(
                    (0.0..=1.0).contains(&v),
                    join(&sp, &[key]),
                    None,
                    &format!("split fraction `{key}`"),
                    "in [0, 1]",
                    v.to_string(),
                    "fractions are shares of the data set",
                );
            }
            let sum = f.train + f.val + f.test;
            c.range(
                sum <= 1.0 + 1e-9,
                sp.clone(),
                None,
                "the split fractions' sum",
                "at most 1",
                format!("{sum}"),
                "lower one of `train`, `val`, `test`",
            );
            c.range(
                f.train > 0.0,
                join(&sp, &["train"]),
                None,
                "split fraction `train`",
                "> 0",
                f.train.to_string(),
                "the train split cannot be empty",
            );
        }
        if let crate::spec::Normalize::Scale(s) = &ds.normalize {
            c.range(
                s.factor.is_finite() && s.factor != 0.0,
                join(&base, &["normalize", "factor"]),
                None,
                "`normalize.factor`",
                "a finite non-zero number",
                s.factor.to_string(),
                "e.g. 0.0625 maps 0..16 to 0..1",
            );
        }
    }
    for (i, stage) in p.stages.iter().enumerate() {
        let base = vec![Seg::Key("stages".into()), Seg::Index(i)];
        let s = Some(stage);
        match stage {
            Stage::Load(l) => {
                c.range(
                    l.batch_size > 0,
                    field_path(i, "batch_size"),
                    s,
                    "`batch_size`",
                    "> 0",
                    l.batch_size.to_string(),
                    "a batch holds at least one sample",
                );
                dataset_ref(&mut c, &l.dataset, i, stage, l.split);
            }
            Stage::Eval(e) => {
                c.range(
                    e.batch_size > 0,
                    field_path(i, "batch_size"),
                    s,
                    "`batch_size`",
                    "> 0",
                    e.batch_size.to_string(),
                    "a batch holds at least one sample",
                );
                dataset_ref(&mut c, &e.dataset, i, stage, e.split);
                model_ref(&mut c, &e.model, i, stage);
            }
            Stage::Forward(f) => model_ref(&mut c, &f.model, i, stage),
            Stage::Loss(l) => c.range(
                (0.0..1.0).contains(&l.label_smoothing),
                field_path(i, "label_smoothing"),
                s,
                "`label_smoothing`",
                "in [0, 1)",
                l.label_smoothing.to_string(),
                "0.1 is a common choice",
            ),
            Stage::Accumulate(a) => c.range(
                a.steps > 0,
                field_path(i, "steps"),
                s,
                "`steps`",
                "> 0",
                a.steps.to_string(),
                "accumulate over at least one micro-batch",
            ),
            Stage::Step(st) => {
                check_optimizer(&mut c, &st.optimizer, &join(&base, &["optimizer"]), stage);
                if let Some(clip) = st.clip_grad_norm {
                    c.range(
                        clip > 0.0 && clip.is_finite(),
                        field_path(i, "clip_grad_norm"),
                        s,
                        "`clip_grad_norm`",
                        "> 0",
                        clip.to_string(),
                        "1.0 is a common choice",
                    );
                }
            }
            Stage::Callback(cb) => {
                for (k, t) in cb.triggers().iter().enumerate() {
                    if let crate::spec::Trigger::EveryNSteps(n) = t {
                        c.range(
                            *n > 0,
                            join(&base, &["on"])
                                .into_iter()
                                .chain([Seg::Index(k)])
                                .collect(),
                            s,
                            "`every_n_steps`",
                            "> 0",
                            n.to_string(),
                            "fire every 1 or more steps",
                        );
                    }
                }
                match &cb.callback {
                    CallbackSpec::LrSchedule(l) => check_schedule(
                        &mut c,
                        &l.schedule,
                        &join(&base, &["callback", "schedule"]),
                        stage,
                    ),
                    CallbackSpec::EarlyStopping(e) => c.range(
                        e.patience > 0,
                        join(&base, &["callback", "patience"]),
                        s,
                        "`patience`",
                        "> 0",
                        e.patience.to_string(),
                        "wait at least one evaluation",
                    ),
                    CallbackSpec::Checkpoint(k) => {
                        if let Some(n) = k.keep_last {
                            c.range(
                                n > 0,
                                join(&base, &["callback", "keep_last"]),
                                s,
                                "`keep_last`",
                                "> 0",
                                n.to_string(),
                                "keep at least one checkpoint",
                            );
                        }
                    }
                    _ => {}
                }
            }
            Stage::Backward(_) => {}
        }
    }
}

fn check_source(c: &mut Ctx, source: &SourceSpec, at: &[Seg]) {
    let (classes, path) = match source {
        SourceSpec::Csv(csv) => {
            c.range(
                csv.features.start < csv.features.end,
                join(at, &["features"]),
                None,
                "`features`",
                "a non-empty column range (start < end)",
                format!("{}..{}", csv.features.start, csv.features.end),
                "e.g. {start: 0, end: 64}",
            );
            let overlaps = (csv.features.start..csv.features.end).contains(&csv.label);
            c.range(
                !overlaps,
                join(at, &["label"]),
                None,
                "`label`",
                "a column outside the feature columns",
                csv.label.to_string(),
                "the label column must not also be a feature",
            );
            (csv.classes, join(at, &["classes"]))
        }
        SourceSpec::Idx(idx) => (idx.classes, join(at, &["classes"])),
        SourceSpec::Npy(npy) => (npy.classes, join(at, &["classes"])),
        SourceSpec::Synthetic(s) => {
            c.range(
                s.samples > 0,
                join(at, &["samples"]),
                None,
                "`samples`",
                "> 0",
                s.samples.to_string(),
                "generate at least one sample",
            );
            c.range(
                !s.shape.is_empty() && s.shape.iter().all(|d| *d > 0),
                join(at, &["shape"]),
                None,
                "`shape`",
                "non-empty with every dimension > 0",
                format!("{:?}", s.shape),
                "e.g. [784]",
            );
            (s.classes, join(at, &["classes"]))
        }
    };
    c.range(
        classes >= 2,
        path,
        None,
        "`classes`",
        ">= 2",
        classes.to_string(),
        "classification needs at least two classes",
    );
}

fn check_optimizer(c: &mut Ctx, opt: &OptimizerSpec, at: &[Seg], stage: &Stage) {
    let s = Some(stage);
    let lr = opt.lr();
    c.range(
        lr > 0.0 && lr.is_finite(),
        join(at, &["lr"]),
        s,
        "learning rate `lr`",
        "> 0",
        lr.to_string(),
        "typical values: 0.1 for sgd, 0.001 for adam",
    );
    match opt {
        OptimizerSpec::Sgd(sgd) => {
            c.range(
                (0.0..1.0).contains(&sgd.momentum),
                join(at, &["momentum"]),
                s,
                "`momentum`",
                "in [0, 1)",
                sgd.momentum.to_string(),
                "0.9 is common",
            );
            c.range(
                !sgd.nesterov || sgd.momentum > 0.0,
                join(at, &["nesterov"]),
                s,
                "`nesterov`",
                "only with momentum > 0",
                "nesterov with momentum 0".into(),
                "set `momentum`, e.g. 0.9",
            );
            c.range(
                sgd.weight_decay >= 0.0,
                join(at, &["weight_decay"]),
                s,
                "`weight_decay`",
                ">= 0",
                sgd.weight_decay.to_string(),
                "e.g. 5e-4",
            );
        }
        OptimizerSpec::Adam(a) | OptimizerSpec::Adamw(a) => {
            for (k, b) in a.betas.iter().enumerate() {
                c.range(
                    (0.0..1.0).contains(b),
                    join(at, &["betas"])
                        .into_iter()
                        .chain([Seg::Index(k)])
                        .collect(),
                    s,
                    "`betas`",
                    "in [0, 1)",
                    b.to_string(),
                    "defaults are [0.9, 0.999]",
                );
            }
            c.range(
                a.eps > 0.0,
                join(at, &["eps"]),
                s,
                "`eps`",
                "> 0",
                a.eps.to_string(),
                "1e-8 is the default",
            );
            c.range(
                a.weight_decay >= 0.0,
                join(at, &["weight_decay"]),
                s,
                "`weight_decay`",
                ">= 0",
                a.weight_decay.to_string(),
                "0.01 is common for adamw",
            );
        }
    }
}

fn check_schedule(c: &mut Ctx, schedule: &LrSchedule, at: &[Seg], stage: &Stage) {
    let s = Some(stage);
    match schedule {
        LrSchedule::Step(d) => {
            c.range(
                d.every > 0,
                join(at, &["every"]),
                s,
                "`every`",
                "> 0",
                d.every.to_string(),
                "decay every N optimizer steps",
            );
            c.range(
                d.gamma > 0.0 && d.gamma <= 1.0,
                join(at, &["gamma"]),
                s,
                "`gamma`",
                "in (0, 1]",
                d.gamma.to_string(),
                "0.1 or 0.5 are common",
            );
        }
        LrSchedule::LinearWarmup(w) => c.range(
            w.warmup_steps > 0,
            join(at, &["warmup_steps"]),
            s,
            "`warmup_steps`",
            "> 0",
            w.warmup_steps.to_string(),
            "warm up over at least one step",
        ),
        LrSchedule::WarmupCosine(w) => {
            c.range(
                w.warmup_steps > 0,
                join(at, &["warmup_steps"]),
                s,
                "`warmup_steps`",
                "> 0",
                w.warmup_steps.to_string(),
                "warm up over at least one step",
            );
            c.range(
                w.min_lr >= 0.0,
                join(at, &["min_lr"]),
                s,
                "`min_lr`",
                ">= 0",
                w.min_lr.to_string(),
                "0 decays fully",
            );
        }
        LrSchedule::Cosine(cos) => c.range(
            cos.min_lr >= 0.0,
            join(at, &["min_lr"]),
            s,
            "`min_lr`",
            ">= 0",
            cos.min_lr.to_string(),
            "0 decays fully",
        ),
        LrSchedule::Constant => {}
    }
}

fn dataset_ref(c: &mut Ctx, name: &str, i: usize, stage: &Stage, split: crate::spec::SplitName) {
    let datasets = &c.parsed.pipeline.datasets;
    let Some(ds) = datasets.get(name) else {
        let names: Vec<&str> = datasets.keys().map(String::as_str).collect();
        c.out.push(
            Diagnostic::new("unknown-dataset", format!("unknown data set `{name}`"))
                .at(
                    c.parsed.span(&field_path(i, "dataset")),
                    "not defined under `datasets:`",
                )
                .stage(stage.id())
                .expected_found(
                    format!("one of {}", super::graph::list(&names)),
                    format!("`{name}`"),
                )
                .maybe_hint(did_you_mean(name, names.iter().copied())),
        );
        return;
    };
    let has_split = match &ds.split {
        SplitSpec::Fraction(f) => match split {
            crate::spec::SplitName::Train => f.train > 0.0,
            crate::spec::SplitName::Val => f.val > 0.0,
            crate::spec::SplitName::Test => f.test > 0.0,
        },
        SplitSpec::Files(files) => match split {
            crate::spec::SplitName::Train => true,
            crate::spec::SplitName::Val => files.val.is_some(),
            crate::spec::SplitName::Test => files.test.is_some(),
        },
    };
    if !has_split {
        c.out.push(
            Diagnostic::new(
                "unknown-split",
                format!("data set `{name}` has no `{}` split", split.as_str()),
            )
            .at(
                c.parsed.span(&field_path(i, "split")),
                "this split is empty",
            )
            .stage(stage.id())
            .hint(format!(
                "give `datasets.{name}.split` a `{}` fraction or file",
                split.as_str()
            )),
        );
    }
}

fn model_ref(c: &mut Ctx, name: &str, i: usize, stage: &Stage) {
    let models = &c.parsed.pipeline.models;
    if !models.contains_key(name) {
        let names: Vec<&str> = models.keys().map(String::as_str).collect();
        c.out.push(
            Diagnostic::new("unknown-model", format!("unknown model `{name}`"))
                .at(
                    c.parsed.span(&field_path(i, "model")),
                    "not defined under `models:`",
                )
                .stage(stage.id())
                .expected_found(
                    format!("one of {}", super::graph::list(&names)),
                    format!("`{name}`"),
                )
                .maybe_hint(did_you_mean(name, names.iter().copied())),
        );
    }
}

/// Batches per epoch of each load stage against the accumulation that follows it.
pub(super) fn check_accumulation(
    parsed: &ParsedPipeline,
    datasets: &BTreeMap<String, DatasetInfo>,
    out: &mut Vec<Diagnostic>,
) {
    let stages = &parsed.pipeline.stages;
    let Some(load) = stages.iter().find_map(|s| match s {
        Stage::Load(l) => Some(l),
        _ => None,
    }) else {
        return;
    };
    let Some(samples) = datasets
        .get(&load.dataset)
        .and_then(|d| d.splits.get(&load.split))
    else {
        return;
    };
    if load.batch_size == 0 {
        return;
    }
    let batches = if load.drop_last {
        samples / load.batch_size
    } else {
        samples.div_ceil(load.batch_size)
    };
    for (i, stage) in stages.iter().enumerate() {
        if let Stage::Accumulate(a) = stage
            && a.steps as usize > batches
        {
            out.push(
                Diagnostic::new(
                    "accumulation-too-long",
                    format!(
                        "accumulating {} micro-batches, but an epoch has only {batches}",
                        a.steps
                    ),
                )
                .at(
                    parsed.span(&field_path(i, "steps")),
                    "more than one epoch of batches",
                )
                .stage(stage.id())
                .expected_found(
                    format!(
                        "at most {batches} ({samples} samples / batch size {})",
                        load.batch_size
                    ),
                    a.steps.to_string(),
                )
                .hint("lower `steps` or the load stage's `batch_size`"),
            );
        }
    }
}
