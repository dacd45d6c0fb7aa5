//! References to data sets and models, the format version, and accumulation against the
//! number of batches per epoch.

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, did_you_mean};
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::{SplitSpec, Stage};

use super::DatasetInfo;
use super::graph::field_path;

struct Ctx<'a> {
    parsed: &'a ParsedPipeline,
    out: &'a mut Vec<Diagnostic>,
}

pub(super) fn check(parsed: &ParsedPipeline, out: &mut Vec<Diagnostic>) {
    let p = &parsed.pipeline;
    if p.version != 1 {
        out.push(
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
    for (name, model) in &p.models {
        // Checkpoints keep accumulated gradients as `grads.<tensor>`; with several models a
        // tensor is `<model>.<tensor>`, so a model named `grads` would be ambiguous.
        if name == "grads" {
            out.push(
                Diagnostic::new("reserved-name", "a model may not be named `grads`")
                    .at(
                        parsed.span(&[Seg::Key("models".into()), Seg::Key(name.clone())]),
                        "reserved",
                    )
                    .hint(
                        "checkpoints name accumulated gradients `grads.<tensor>`; rename the model",
                    ),
            );
        }
        let Some(path) = &model.init_from else {
            continue;
        };
        let full = parsed.base_dir.join(path);
        if !full.exists() {
            out.push(
                Diagnostic::new(
                    "bad-init-from",
                    format!("model `{name}` starts from `{path}`, which does not exist"),
                )
                .at(
                    parsed.span(&[
                        Seg::Key("models".into()),
                        Seg::Key(name.clone()),
                        Seg::Key("init_from".into()),
                    ]),
                    "no such file or directory",
                )
                .expected_found(
                    "a checkpoint directory or a `.safetensors` file, relative to the pipeline file",
                    format!("`{}`", full.display()),
                )
                .hint("write the path relative to the pipeline file, e.g. the output of `engine export`"),
            );
        }
    }
    let mut c = Ctx { parsed, out };
    for (i, stage) in p.stages.iter().enumerate() {
        match stage {
            Stage::Load(l) => dataset_ref(&mut c, &l.dataset, i, stage, l.split),
            Stage::Eval(e) => {
                dataset_ref(&mut c, &e.dataset, i, stage, e.split);
                model_ref(&mut c, &e.model, i, stage);
            }
            Stage::Forward(f) => model_ref(&mut c, &f.model, i, stage),
            _ => {}
        }
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

/// Batches per epoch of the training load stage: at least one, and at least the
/// accumulation that follows it.
pub(super) fn check_batches(
    parsed: &ParsedPipeline,
    chain: &super::TrainChain,
    datasets: &BTreeMap<String, DatasetInfo>,
    out: &mut Vec<Diagnostic>,
) {
    let stages = &parsed.pipeline.stages;
    let Stage::Load(load) = &stages[chain.load] else {
        return;
    };
    let Some(&samples) = datasets
        .get(&load.dataset)
        .and_then(|d| d.splits.get(&load.split))
    else {
        return;
    };
    if load.batch_size == 0 {
        return;
    }
    let batches = crate::data::batches_per_epoch(samples, load.batch_size, load.drop_last);
    if batches == 0 {
        out.push(
            Diagnostic::new(
                "empty-epoch",
                format!("load stage `{}` yields no batch in an epoch", load.id),
            )
            .at(
                parsed.span(&field_path(chain.load, "batch_size")),
                "larger than the split",
            )
            .stage(&load.id)
            .expected_found(
                format!(
                    "a batch size of at most {samples} (the {} split's samples)",
                    load.split.as_str()
                ),
                load.batch_size.to_string(),
            )
            .hint("lower `batch_size`, or set `drop_last: false` to keep the partial batch"),
        );
        return;
    }
    if let Some(a) = chain.accumulate
        && let Stage::Accumulate(acc) = &stages[a]
        && acc.steps as usize > batches
    {
        out.push(
            Diagnostic::new(
                "accumulation-too-long",
                format!(
                    "accumulating {} micro-batches, but an epoch has only {batches}",
                    acc.steps
                ),
            )
            .at(
                parsed.span(&field_path(a, "steps")),
                "more than one epoch of batches",
            )
            .stage(&acc.id)
            .expected_found(
                format!(
                    "at most {batches} ({samples} samples / batch size {})",
                    load.batch_size
                ),
                acc.steps.to_string(),
            )
            .hint("lower `steps` or the load stage's `batch_size`"),
        );
    }
}
