//! Lowering: the spec-to-runtime translation. Each training chain, eval, callback and
//! data set of a checked pipeline becomes a typed entry of the plan, with everything the
//! executor needs resolved (models, optimizer and loss configuration, data paths); the
//! hook table lists them per trigger by id. The executor reads only these.

use std::collections::BTreeMap;

use ops::gpu::{BackendChoice, DeviceRequest};
use ops::train::{LossKind, ModelDef, OptimizerKind, TrainConfig};
use serde::Serialize;

use crate::check::CheckedPipeline;
use crate::data::{
    self, BatchConfig, Columns, CsvSource, DataConfig, Fractions, IdxSource, NpySource, Source,
    SplitBy, SyntheticSource, Task,
};
use crate::spec::{
    self, Backend, CallbackSpec, EvalMetric, LossFn, LrSchedule, OptimizerSpec, SourceSpec,
    SplitName, SplitSpec, Stage, Trigger,
};

use super::{SchedulePlan, fire_order, schedule_of};

/// Index of a training chain in [`super::Plan::chains`] (file order of the step stages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ChainId(pub usize);

/// Index of an eval in [`super::Plan::evals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EvalId(pub usize);

/// Index of a callback in [`super::Plan::callbacks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CallbackId(pub usize);

/// Index of a data set in [`super::Plan::datasets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DatasetId(pub usize);

/// What fires at a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HookId {
    /// An eval routine.
    Eval(EvalId),
    /// A callback.
    Callback(CallbackId),
}

/// One training chain: load → forward → loss → backward → [accumulate] → step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainPlan {
    /// Its id.
    pub id: ChainId,
    /// The step stage's id: the chain's name in metrics, logs and checkpoints.
    pub name: String,
    /// The load stage's id.
    pub load: String,
    /// The loss stage's id (`<loss>.loss` names the chain's training loss).
    pub loss: String,
    /// The data set it reads.
    pub dataset: DatasetId,
    /// The split it trains on.
    pub split: SplitName,
    /// How the split is cut into batches.
    #[serde(skip)]
    pub batches: BatchConfig,
    /// The model it trains.
    pub model: String,
    /// The model's layers.
    #[serde(skip)]
    pub model_def: ModelDef,
    /// Loss, optimizer, clipping and accumulation.
    #[serde(skip)]
    pub train: TrainConfig,
    /// The optimizer's name.
    pub optimizer: &'static str,
    /// The optimizer's learning rate before any schedule.
    pub base_lr: f64,
    /// Its learning-rate schedule (constant unless an `lr_schedule` names this step).
    #[serde(skip)]
    pub lr_schedule: LrSchedule,
    /// Targets are one-hot rows (mse) rather than class indices.
    pub one_hot_targets: bool,
    /// Classes of the data set.
    pub classes: usize,
    /// Its length and batching.
    pub schedule: SchedulePlan,
}

impl ChainPlan {
    /// Learning rate at this chain's optimizer step `step` of `total`, before monitors'
    /// reductions.
    pub fn lr_at(&self, step: u64) -> f64 {
        self.lr_schedule
            .lr_at(self.base_lr, step, self.schedule.total_steps)
    }
}

/// One eval routine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalPlan {
    /// Its id.
    pub id: EvalId,
    /// The eval stage's id.
    pub name: String,
    /// The chain whose model (and loss) it evaluates.
    pub chain: ChainId,
    /// The data set it reads.
    pub dataset: DatasetId,
    /// The split.
    pub split: SplitName,
    /// Samples per batch.
    pub batch_size: usize,
    /// Metrics it reports.
    pub metrics: Vec<EvalMetric>,
}

/// One callback with its settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackPlan {
    /// Its id.
    pub id: CallbackId,
    /// The callback stage's id.
    pub name: String,
    /// What it does.
    #[serde(skip)]
    pub spec: CallbackSpec,
}

/// One data set the run reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataPlan {
    /// Its id.
    pub id: DatasetId,
    /// Its name under `datasets:`.
    pub name: String,
    /// Source, split and normalisation, paths resolved.
    #[serde(skip)]
    pub config: DataConfig,
}

/// The executable parts of a plan.
pub(super) struct Program {
    pub chains: Vec<ChainPlan>,
    pub evals: Vec<EvalPlan>,
    pub callbacks: Vec<CallbackPlan>,
    pub datasets: Vec<DataPlan>,
    pub hook_table: Vec<(Trigger, Vec<HookId>)>,
    pub device_request: DeviceRequest,
}

/// Lowers the chains, evals, callbacks, data sets and hook table of a checked pipeline.
pub(super) fn lower_program(checked: &CheckedPipeline) -> Program {
    let p = &checked.parsed.pipeline;
    let mut datasets: Vec<DataPlan> = Vec::new();
    let mut dataset_id = |name: &str| -> DatasetId {
        if let Some(d) = datasets.iter().find(|d| d.name == name) {
            return d.id;
        }
        let id = DatasetId(datasets.len());
        datasets.push(DataPlan {
            id,
            name: name.to_string(),
            config: data_config(checked, name),
        });
        id
    };
    let mut chains = Vec::new();
    for (i, c) in checked.chains.iter().enumerate() {
        let (Stage::Step(step), Stage::Loss(loss), Stage::Forward(fwd), Stage::Load(load)) = (
            &p.stages[c.step],
            &p.stages[c.loss],
            &p.stages[c.forward],
            &p.stages[c.load],
        ) else {
            continue;
        };
        let Some(model) = p.models.get(&fwd.model) else {
            continue;
        };
        let accumulation = match c.accumulate.map(|a| &p.stages[a]) {
            Some(Stage::Accumulate(a)) => a.steps,
            _ => 1,
        };
        let lr_schedule = p
            .stages
            .iter()
            .find_map(|s| match s {
                Stage::Callback(cb) => match &cb.callback {
                    CallbackSpec::LrSchedule(l) if l.stage == step.id => Some(l.schedule.clone()),
                    _ => None,
                },
                _ => None,
            })
            .unwrap_or(LrSchedule::Constant);
        chains.push(ChainPlan {
            id: ChainId(i),
            name: step.id.0.clone(),
            load: load.id.0.clone(),
            loss: loss.id.0.clone(),
            dataset: dataset_id(&load.dataset),
            split: load.split,
            batches: BatchConfig {
                batch_size: load.batch_size,
                shuffle: load.shuffle,
                drop_last: load.drop_last,
                seed: p.seed,
            },
            model: fwd.model.clone(),
            model_def: ModelDef {
                input: model.input.clone(),
                layers: model.layers.clone(),
                init: model.init,
            },
            train: TrainConfig {
                batch: load.batch_size,
                loss: loss_kind(loss),
                optimizer: optimizer_kind(&step.optimizer),
                clip_grad_norm: step.clip_grad_norm.map(|c| c as f32),
                accumulation_steps: accumulation,
                seed: p.seed,
            },
            optimizer: step.optimizer.name(),
            base_lr: step.optimizer.lr(),
            lr_schedule,
            one_hot_targets: loss.function == LossFn::Mse,
            classes: checked.datasets.get(&load.dataset).map_or(0, |d| d.classes),
            schedule: schedule_of(checked, c),
        });
    }
    let mut evals = Vec::new();
    let mut callbacks = Vec::new();
    let mut hook_of: BTreeMap<usize, HookId> = BTreeMap::new();
    for (i, stage) in p.stages.iter().enumerate() {
        match stage {
            Stage::Eval(e) => {
                // The checks refuse evals of models no chain trains.
                let Some(chain) = chains.iter().find(|c| c.model == e.model) else {
                    continue;
                };
                let id = EvalId(evals.len());
                evals.push(EvalPlan {
                    id,
                    name: e.id.0.clone(),
                    chain: chain.id,
                    dataset: dataset_id(&e.dataset),
                    split: e.split,
                    batch_size: e.batch_size,
                    metrics: e.metrics.clone(),
                });
                hook_of.insert(i, HookId::Eval(id));
            }
            Stage::Callback(c) => {
                let id = CallbackId(callbacks.len());
                callbacks.push(CallbackPlan {
                    id,
                    name: c.id.0.clone(),
                    spec: c.callback.clone(),
                });
                hook_of.insert(i, HookId::Callback(id));
            }
            _ => {}
        }
    }
    let hook_table = fire_order(p)
        .into_iter()
        .map(|(t, members)| {
            (
                t,
                members
                    .into_iter()
                    .filter_map(|i| hook_of.get(&i).copied())
                    .collect(),
            )
        })
        .collect();
    Program {
        chains,
        evals,
        callbacks,
        datasets,
        hook_table,
        device_request: device_request(&p.device),
    }
}

fn optimizer_kind(spec: &OptimizerSpec) -> OptimizerKind {
    match spec {
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
    }
}

fn loss_kind(loss: &spec::LossStage) -> LossKind {
    match loss.function {
        LossFn::CrossEntropy => LossKind::CrossEntropy {
            label_smoothing: loss.label_smoothing as f32,
        },
        LossFn::Mse => LossKind::Mse,
    }
}

fn device_request(device: &spec::DeviceSpec) -> DeviceRequest {
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
fn data_config(checked: &CheckedPipeline, name: &str) -> DataConfig {
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
    DataConfig { split, normalize }
}
