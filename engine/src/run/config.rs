//! From checked pipeline to the runtime's configuration: the training chain, the data
//! stages' config, and the device request.

use std::collections::BTreeSet;

use ops::gpu::{BackendChoice, DeviceRequest};
use ops::train::{LossKind, ModelDef, OptimizerKind, TrainConfig};

use crate::check::CheckedPipeline;
use crate::data::{
    self, Batch, Columns, CsvSource, DataConfig, Fractions, IdxSource, NpySource, Source, SplitBy,
    SyntheticSource, Task,
};
use crate::spec::{
    self, Backend, LoadStage, LossFn, OptimizerSpec, Pipeline, SourceSpec, SplitSpec, Stage,
};

use super::RunError;

/// The stages one training step runs: load → forward → loss → backward → [accumulate] → step.
pub(super) struct TrainChain {
    pub load: LoadStage,
    pub model_def: ModelDef,
    pub train_config: TrainConfig,
    pub base_lr: f64,
    pub mse: bool,
    pub classes: usize,
}

impl TrainChain {
    pub fn find(checked: &CheckedPipeline) -> Result<TrainChain, RunError> {
        let p = &checked.parsed.pipeline;
        // The checks traced the chain and reported what cannot run; a checked pipeline
        // has one.
        let unsupported = || RunError::Unsupported("the pipeline has no training chain".into());
        let chain = checked.chain.ok_or_else(unsupported)?;
        let (Stage::Step(step), Stage::Loss(loss), Stage::Forward(fwd), Stage::Load(load)) = (
            &p.stages[chain.step],
            &p.stages[chain.loss],
            &p.stages[chain.forward],
            &p.stages[chain.load],
        ) else {
            return Err(unsupported());
        };
        let accumulation = match chain.accumulate.map(|a| &p.stages[a]) {
            Some(Stage::Accumulate(a)) => a.steps,
            _ => 1,
        };
        let Some(model) = p.models.get(&fwd.model) else {
            return Err(unsupported());
        };
        let classes = checked.datasets.get(&load.dataset).map_or(0, |d| d.classes);
        let optimizer = match &step.optimizer {
            OptimizerSpec::Sgd(s) => OptimizerKind::Sgd {
                momentum: s.momentum as f32,
                nesterov: s.nesterov,
                weight_decay: s.weight_decay as f32,
            },
            OptimizerSpec::Adam(a) => OptimizerKind::Adam {
                beta1: a.betas[0] as f32,
                beta2: a.betas[1] as f32,
                eps: a.eps as f32,
                weight_decay: a.weight_decay as f32,
            },
            OptimizerSpec::Adamw(a) => OptimizerKind::AdamW {
                beta1: a.betas[0] as f32,
                beta2: a.betas[1] as f32,
                eps: a.eps as f32,
                weight_decay: a.weight_decay as f32,
            },
        };
        let loss_kind = match loss.function {
            LossFn::CrossEntropy => LossKind::CrossEntropy {
                label_smoothing: loss.label_smoothing as f32,
            },
            LossFn::Mse => LossKind::Mse,
        };
        Ok(TrainChain {
            load: load.clone(),
            model_def: ModelDef {
                input: model.input.clone(),
                layers: model.layers.clone(),
                init: model.init,
            },
            train_config: TrainConfig {
                batch: load.batch_size,
                loss: loss_kind,
                optimizer,
                clip_grad_norm: step.clip_grad_norm.map(|c| c as f32),
                accumulation_steps: accumulation,
                seed: p.seed,
            },
            base_lr: step.optimizer.lr(),
            mse: loss.function == LossFn::Mse,
            classes,
        })
    }

    /// Data sets the run reads: the train chain's and every eval's.
    pub fn datasets(&self, p: &Pipeline) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = p
            .stages
            .iter()
            .filter_map(|s| {
                if let Stage::Eval(e) = s {
                    Some(e.dataset.clone())
                } else {
                    None
                }
            })
            .collect();
        names.insert(self.load.dataset.clone());
        names
    }
}

/// One-hot targets for an mse loss (reusing `buffer`), or `None` for cross-entropy.
pub(super) fn one_hot<'a>(
    classes: usize,
    mse: bool,
    batch: &Batch,
    buffer: &'a mut Vec<f32>,
) -> Option<&'a [f32]> {
    if !mse {
        return None;
    }
    buffer.clear();
    buffer.resize(batch.rows * classes, 0.0);
    for (row, &label) in batch.labels.iter().enumerate().take(batch.rows) {
        if let Some(v) = buffer.get_mut(row * classes + label as usize) {
            *v = 1.0;
        }
    }
    Some(buffer)
}

pub(super) fn device_request(device: &spec::DeviceSpec) -> DeviceRequest {
    DeviceRequest {
        backend: match device.backend {
            Backend::Auto => BackendChoice::Auto,
            Backend::Vulkan => BackendChoice::Vulkan,
            Backend::Gl => BackendChoice::Gl,
        },
        name: device.adapter.clone(),
    }
}

/// The data stages' configuration of one named data set, paths resolved.
pub(super) fn data_config(checked: &CheckedPipeline, name: &str) -> Result<DataConfig, RunError> {
    let p = &checked.parsed.pipeline;
    let spec = &p.datasets[name];
    let base = &checked.parsed.base_dir;
    let source = |s: &SourceSpec| -> Source {
        match s {
            SourceSpec::Csv(c) => {
                let mut csv = CsvSource::new(base.join(&c.path));
                csv.header = c.header;
                csv.features = Columns::Range {
                    start: c.features.start,
                    end: c.features.end,
                };
                csv.label = Columns::List(vec![c.label]);
                csv.task = Task::Classify {
                    classes: Some(c.classes),
                };
                csv.shape = c.shape.clone();
                Source::Csv(csv)
            }
            SourceSpec::Idx(i) => {
                let mut idx = IdxSource::new(base.join(&i.images), base.join(&i.labels));
                idx.task = Task::Classify {
                    classes: Some(i.classes),
                };
                Source::Idx(idx)
            }
            SourceSpec::Npy(n) => {
                let mut npy = NpySource::new(base.join(&n.features), base.join(&n.labels));
                npy.task = Task::Classify {
                    classes: Some(n.classes),
                };
                Source::Npy(npy)
            }
            SourceSpec::Synthetic(s) => Source::Synthetic(SyntheticSource {
                samples: s.samples,
                shape: s.shape.clone(),
                classes: s.classes,
                seed: p.seed,
                noise: s.noise,
                ..SyntheticSource::default()
            }),
        }
    };
    let split = match &spec.split {
        SplitSpec::Fraction(f) => SplitBy::Fractions {
            source: source(&spec.source),
            fractions: Fractions {
                train: f.train,
                val: f.val,
                test: f.test,
                stratified: f.stratified,
                seed: p.seed,
            },
        },
        SplitSpec::Files(files) => SplitBy::Files {
            train: source(&spec.source),
            val: files.val.as_ref().map(source),
            test: files.test.as_ref().map(source),
        },
    };
    let normalize = match &spec.normalize {
        spec::Normalize::None => data::Normalize::None,
        spec::Normalize::Scale(s) => data::Normalize::Scale { factor: s.factor },
        spec::Normalize::Standardize => data::Normalize::Standardize,
    };
    Ok(DataConfig { split, normalize })
}
