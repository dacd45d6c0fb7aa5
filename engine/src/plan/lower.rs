//! Lowering: the spec-to-runtime translation. Each training chain, eval, callback and
//! data set of a checked pipeline becomes a typed entry of the plan, with everything the
//! executor needs resolved (models, optimizer and loss configuration, data paths); the
//! hook table lists them per trigger by id. The executor reads only these.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ops::fusion::{Fusion, fuse};
use ops::gpu::{BackendChoice, DeviceRequest};
use ops::model::Sequential;
use ops::model::TensorId;
use ops::train::{LossKind, ModelDef, TrainConfig};
use serde::Serialize;

use crate::card::{CARD_FORMAT, EvalLoss, InputCard, ModelCard, Scaling, TaskCard};
use crate::check::{CheckedPipeline, eval_metrics, model_of, trained_models};
use crate::data::{self, BatchConfig, Configure, DataConfig, Fractions, SplitBy};
use crate::losses::LossSettings;
use crate::spec::{
    self, Backend, CallbackSpec, EvalMetric, LrSchedule, SourceSpec, SplitName, SplitSpec, Stage,
    Trigger,
};

use super::{SchedulePlan, StepWrapper, fire_order, schedule_of};

/// Index of a training chain in [`super::Plan::chains`] (file order of the step stages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ChainId(pub usize);

/// Index of an eval in [`super::Plan::evals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EvalId(pub usize);

/// Index of a callback in [`super::Plan::callbacks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CallbackId(pub usize);

/// Index of a frozen model in [`super::Plan::frozen`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FrozenId(pub usize);

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
    /// The model whose outputs the loss reads (evals of it evaluate this chain).
    pub model: String,
    /// The models it trains, input side first (several for a chained model: an encoder
    /// and a head trained end to end); their layers run as one model.
    pub models: Vec<String>,
    /// Their layers, in order.
    #[serde(skip)]
    pub model_def: ModelDef,
    /// Names of those layers in parameter names (`<model>.layers.<i>` when the run has
    /// several models, `<node id>` for a model written as nodes); `None` keeps
    /// `layers.<i>`.
    #[serde(skip)]
    pub layer_names: Option<Vec<String>>,
    /// Whether parameter names start with the model's name (the run has several models).
    pub prefixed: bool,
    /// How those layers run fused (the fusion pass; the adapter settles what depends on it).
    pub fusion: Fusion,
    /// Each trained model's own layers and init, to initialise it as if it stood alone.
    #[serde(skip)]
    pub model_defs: Vec<(String, ModelDef)>,
    /// Weights to start trained models from (`models.<name>.init_from`).
    pub init_from: Vec<(String, PathBuf)>,
    /// A frozen model in front of the trained ones (a pre-trained encoder).
    pub encoder: Option<FrozenId>,
    /// The frozen teacher of a distillation loss.
    pub teacher: Option<FrozenId>,
    /// The name of its optimizer update counter in checkpoints.
    pub step_tensor: String,
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
    /// The data set holds regression targets (no accuracy in its records).
    pub regression: bool,
    /// Classes of the data set.
    pub classes: usize,
    /// How its optimizer step is composed, outermost first.
    pub step: Vec<StepWrapper>,
    /// `precision: f16` on an adapter without f16 shaders trains in f32 (with a warning)
    /// instead of stopping.
    pub f16_fallback: bool,
    /// Its length and batching.
    pub schedule: SchedulePlan,
    /// The card of its model, statistics still empty (the run fills them); `None` for a
    /// model behind a frozen encoder.
    #[serde(skip)]
    pub card: Option<ModelCard>,
}

impl ChainPlan {
    /// Learning rate at this chain's optimizer step `step` of `total`, before monitors'
    /// reductions.
    pub fn lr_at(&self, step: u64) -> f64 {
        self.lr_schedule
            .lr_at(self.base_lr, step, self.schedule.total_steps)
    }
}

/// A model no step stage updates: a pre-trained encoder, a distillation teacher.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrozenPlan {
    /// Its id.
    pub id: FrozenId,
    /// Its name under `models:`.
    pub name: String,
    /// Its layers.
    #[serde(skip)]
    pub model_def: ModelDef,
    /// Names of its layers in parameter names (see [`ChainPlan::layer_names`]).
    #[serde(skip)]
    pub layer_names: Option<Vec<String>>,
    /// Whether parameter names start with the model's name.
    pub prefixed: bool,
    /// How its layers run fused.
    pub fusion: Fusion,
    /// Its weights (`models.<name>.init_from`); without them it keeps its init.
    pub init_from: Option<PathBuf>,
}

/// What an eval runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EvalTarget {
    /// A chain's model (with the frozen encoder in front of it), with the chain's loss
    /// (cross entropy for a distillation loss).
    Chain(ChainId),
    /// A frozen model, with cross entropy.
    Frozen(FrozenId),
}

/// One eval routine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalPlan {
    /// Its id.
    pub id: EvalId,
    /// The eval stage's id.
    pub name: String,
    /// The model it evaluates.
    pub model: String,
    /// What it runs.
    pub target: EvalTarget,
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
    /// The metric it watches (early stopping, a monitor, a checkpoint keeping its best),
    /// resolved to what computes it.
    pub watches: Option<Watched>,
}

/// A metric a callback watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Watched {
    /// One of an eval's metrics (`<eval>.<metric>`).
    Eval { eval: EvalId, metric: EvalMetric },
    /// A chain's training loss (`<loss stage>.loss`).
    TrainLoss(ChainId),
}

/// One data set the run reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataPlan {
    /// Its id.
    pub id: DatasetId,
    /// Its name under `datasets:`.
    pub name: String,
    /// The class names, sorted (class `i` is `class_names[i]`), when its labels are names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// Regression: the names of its target columns (`None` for classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    /// Source, split and normalisation, paths resolved.
    #[serde(skip)]
    pub config: DataConfig,
}

/// The executable parts of a plan.
pub(super) struct Program {
    pub chains: Vec<ChainPlan>,
    pub frozen: Vec<FrozenPlan>,
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
            class_names: checked
                .datasets
                .get(name)
                .and_then(|d| d.class_names.clone()),
            targets: checked.datasets.get(name).and_then(|d| d.targets.clone()),
            config: data_config(checked, name),
        });
        id
    };
    // Parameter names carry the model's name once the run holds several models.
    let in_use = models_in_use(checked);
    let several = in_use.len() > 1;
    let several_chains = checked.chains.len() > 1;
    // A layer's parameters are `layers.<i>.<param>`, or `<node id>.<param>` in a model
    // written as nodes; `<model>.` in front when the run holds several models.
    let layer_names = |models: &[&str]| -> Option<Vec<String>> {
        let nodes = models
            .iter()
            .any(|m| p.models.get(*m).is_some_and(|s| !s.nodes.is_empty()));
        (several || nodes).then(|| {
            models
                .iter()
                .flat_map(|m| {
                    let layers = checked.models.get(*m).map_or(&[][..], |s| &s.layers[..]);
                    layers.iter().enumerate().map(move |(j, l)| {
                        let own = l.name.clone().unwrap_or_else(|| format!("layers.{j}"));
                        if several { format!("{m}.{own}") } else { own }
                    })
                })
                .collect()
        })
    };
    let model_def = |name: &str| -> Option<ModelDef> {
        let (spec, shapes) = (p.models.get(name)?, checked.models.get(name)?);
        Some(ModelDef {
            input: spec.input.clone(),
            layers: shapes.layers.iter().map(|l| l.spec.clone()).collect(),
            inputs: if spec.nodes.is_empty() {
                Vec::new()
            } else {
                shapes.layers.iter().map(|l| l.inputs.clone()).collect()
            },
            init: spec.init,
        })
    };
    let init_from = |name: &str| -> Option<PathBuf> {
        p.models
            .get(name)
            .and_then(|m| m.init_from.as_ref())
            .map(|path| checked.parsed.base_dir.join(path))
    };
    let mut frozen: Vec<FrozenPlan> = Vec::new();
    let mut frozen_id = |name: &str| -> Option<FrozenId> {
        if let Some(f) = frozen.iter().find(|f| f.name == name) {
            return Some(f.id);
        }
        let id = FrozenId(frozen.len());
        let def = model_def(name)?;
        frozen.push(FrozenPlan {
            id,
            name: name.to_string(),
            fusion: fusion_of(&def),
            model_def: def,
            layer_names: layer_names(&[name]),
            prefixed: several,
            init_from: init_from(name),
        });
        Some(id)
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
        let trained = trained_models(p, c);
        let encoder = c
            .forwards
            .first()
            .map(|&f| model_of(p, f))
            .filter(|m| !trained.contains(m))
            .and_then(&mut frozen_id);
        let teacher = c.teacher.map(|t| model_of(p, t)).and_then(&mut frozen_id);
        let model_defs: Vec<(String, ModelDef)> = trained
            .iter()
            .filter_map(|m| Some((m.to_string(), model_def(m)?)))
            .collect();
        let Some((_, first)) = model_defs.first() else {
            continue;
        };
        // One model of all the trained ones: model `k`'s tensor `t` (its input `0`, the
        // previous model's output) is tensor `t + offset` of the whole.
        let mut inputs = Vec::new();
        if model_defs.iter().any(|(_, d)| !d.inputs.is_empty()) {
            let mut offset = 0;
            for (_, d) in &model_defs {
                for j in 0..d.layers.len() {
                    let own = d
                        .inputs
                        .get(j)
                        .cloned()
                        .unwrap_or_else(|| vec![TensorId(j)]);
                    inputs.push(own.into_iter().map(|t| TensorId(t.0 + offset)).collect());
                }
                offset += d.layers.len();
            }
        }
        let composed = ModelDef {
            input: first.input.clone(),
            layers: model_defs
                .iter()
                .flat_map(|(_, d)| d.layers.iter().cloned())
                .collect(),
            inputs,
            init: first.init,
        };
        let accumulation = match c.accumulate.map(|a| &p.stages[a]) {
            Some(Stage::Accumulate(a)) => a.steps,
            _ => 1,
        };
        let lr_schedule = p
            .stages
            .iter()
            .find_map(|s| match s {
                Stage::Callback(cb) => match cb.callback.schedule() {
                    Some((stage, schedule)) if *stage == step.id => Some(schedule.clone()),
                    _ => None,
                },
                _ => None,
            })
            .unwrap_or_else(LrSchedule::constant);
        let regression = checked
            .datasets
            .get(&load.dataset)
            .is_some_and(|d| d.is_regression());
        // A loss that takes class labels or targets compares with one-hot rows of labels.
        let one_hot = loss.function.row().targets.is_none() && !regression;
        let card = encoder.is_none().then(|| {
            let eval_loss = EvalLoss::of(loss, one_hot);
            model_card(
                checked,
                &load.dataset,
                &fwd.model,
                (composed.clone(), layer_names(&trained)),
                eval_loss,
            )
        });
        let precision = match step.precision {
            crate::spec::Precision::F32 => ops::Precision::F32,
            crate::spec::Precision::F16 => ops::Precision::F16,
        };
        chains.push(ChainPlan {
            card,
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
            models: trained.iter().map(|m| m.to_string()).collect(),
            fusion: fusion_of(&composed),
            model_def: composed,
            layer_names: layer_names(&trained),
            prefixed: several,
            init_from: trained
                .iter()
                .filter_map(|m| Some((m.to_string(), init_from(m)?)))
                .collect(),
            model_defs,
            encoder,
            teacher,
            step_tensor: if several_chains {
                format!("{}.optimizer.step", step.id)
            } else {
                "optimizer.step".into()
            },
            train: TrainConfig {
                batch: load.batch_size,
                loss: loss_kind(loss),
                optimizer: step.optimizer.lower(),
                clip_grad_norm: step.clip_grad_norm.map(|c| c as f32),
                accumulation_steps: accumulation,
                seed: p.seed,
                class_weights: loss
                    .class_weights
                    .as_ref()
                    .map(|w| w.iter().map(|&v| v as f32).collect()),
                precision,
            },
            optimizer: step.optimizer.name(),
            base_lr: step.optimizer.lr(),
            lr_schedule,
            one_hot_targets: one_hot,
            regression,
            classes: checked.datasets.get(&load.dataset).map_or(0, |d| d.classes),
            step: super::compose_step(1, accumulation, precision),
            f16_fallback: step.f16_fallback == crate::spec::F16Fallback::F32,
            schedule: schedule_of(checked, c),
        });
    }
    let mut evals = Vec::new();
    let mut callbacks = Vec::new();
    let mut hook_of: BTreeMap<usize, HookId> = BTreeMap::new();
    for (i, stage) in p.stages.iter().enumerate() {
        match stage {
            Stage::Eval(e) => {
                // The checks refuse evals of models that neither end a chain nor are frozen.
                let target = match chains.iter().find(|c| c.model == e.model) {
                    Some(chain) => EvalTarget::Chain(chain.id),
                    None => match frozen_id(&e.model) {
                        Some(f) => EvalTarget::Frozen(f),
                        None => continue,
                    },
                };
                let id = EvalId(evals.len());
                evals.push(EvalPlan {
                    id,
                    name: e.id.0.clone(),
                    model: e.model.clone(),
                    target,
                    dataset: dataset_id(&e.dataset),
                    split: e.split,
                    batch_size: e.batch_size,
                    metrics: eval_metrics(&checked.datasets, e),
                });
                hook_of.insert(i, HookId::Eval(id));
            }
            Stage::Callback(c) => {
                let id = CallbackId(callbacks.len());
                callbacks.push(CallbackPlan {
                    id,
                    name: c.id.0.clone(),
                    spec: c.callback.clone(),
                    watches: None,
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
    if let crate::spec::Schedule::Steps(n) = p.chain_schedule() {
        steps_of_other_chains(&mut chains, n);
    }
    for c in &mut callbacks {
        c.watches = watched(&c.spec, &evals, &chains);
    }
    Program {
        chains,
        frozen,
        evals,
        callbacks,
        datasets,
        hook_table,
        device_request: device_request(&p.device),
    }
}

/// The fusion pass over a model. Checked models always build; were one not to, its empty
/// fusion is refused when the executor builds the model, after the model's own error.
fn fusion_of(def: &ModelDef) -> Fusion {
    Sequential::new(def).map_or(Fusion { layers: Vec::new() }, |seq| fuse(&seq))
}

/// What a callback's monitored metric names. Checking made sure it names an eval's metric
/// or a chain's training loss; a callback watching nothing does nothing.
fn watched(spec: &CallbackSpec, evals: &[EvalPlan], chains: &[ChainPlan]) -> Option<Watched> {
    let reference = spec.watches()?;
    let (stage, port) = reference.split()?;
    if let Some(e) = evals.iter().find(|e| e.name == stage) {
        let metric = e.metrics.iter().copied().find(|m| m.as_str() == port)?;
        return Some(Watched::Eval { eval: e.id, metric });
    }
    chains
        .iter()
        .find(|c| c.loss == stage && port == "loss")
        .map(|c| Watched::TrainLoss(c.id))
}

/// Every model the run holds: on a chain, a teacher, or evaluated.
fn models_in_use(checked: &CheckedPipeline) -> BTreeSet<&str> {
    let p = &checked.parsed.pipeline;
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for c in &checked.chains {
        names.extend(c.forwards.iter().chain(&c.teacher).map(|&f| model_of(p, f)));
    }
    for s in &p.stages {
        if let Stage::Eval(e) = s {
            names.insert(&e.model);
        }
    }
    names
}

/// Under `schedule: {steps: n}` the run ends when the lead chain has made `n` steps; the
/// other chains make as many as their batches in those ticks allow (a chain waits at an
/// epoch end for the others). Their LR schedules run over that count.
fn steps_of_other_chains(chains: &mut [ChainPlan], n: u64) {
    let Some(lead) = chains.first().map(|c| c.schedule.clone()) else {
        return;
    };
    let lead_bpe = lead.batches_per_epoch as u64;
    let micro = n * u64::from(lead.accumulation.max(1));
    if lead_bpe == 0 || micro == 0 {
        return;
    }
    // The lead's last micro-batch is tick `last` of epoch `full` (0-based epochs).
    let full = (micro - 1) / lead_bpe;
    let last = micro - full * lead_bpe;
    for c in chains.iter_mut().skip(1) {
        let bpe = c.schedule.batches_per_epoch as u64;
        let own = full * bpe + last.min(bpe);
        c.schedule.total_steps = own / u64::from(c.schedule.accumulation.max(1));
    }
}

fn loss_kind(loss: &spec::LossStage) -> LossKind {
    // The built-in losses lower from any settings; a registered loss's `params` went
    // through the same deserialisation and check (check/extensions) and the pipeline was
    // refused if they failed, so this cannot fail.
    loss.function
        .lower(&LossSettings::of(loss))
        .expect("loss settings checked by check::extensions")
}

fn device_request(device: &spec::DeviceSpec) -> DeviceRequest {
    DeviceRequest {
        backend: match device.backend {
            Backend::Auto => BackendChoice::Auto,
            Backend::Vulkan => BackendChoice::Vulkan,
            Backend::Gl => BackendChoice::Gl,
            Backend::Cpu => BackendChoice::Cpu,
        },
        name: device.adapter.clone(),
        nth: 0,
        needs_f16: false,
        needs_wgsl: crate::extend::registry().brings_kernels(),
    }
}

/// The static part of a chain's model card: graph, names, input columns, task.
fn model_card(
    checked: &CheckedPipeline,
    dataset: &str,
    model: &str,
    (def, layer_names): (ModelDef, Option<Vec<String>>),
    eval_loss: EvalLoss,
) -> ModelCard {
    let p = &checked.parsed.pipeline;
    let info = checked.datasets.get(dataset);
    let config = data_config(checked, dataset);
    let source = match &config.split {
        SplitBy::Fractions { source, .. } => source,
        SplitBy::Files { train, .. } => train,
    };
    let shape = info.map(|d| d.shape.clone()).unwrap_or_default();
    let input = match source.csv() {
        Some(csv) => InputCard {
            kind: "csv".into(),
            header: csv.header,
            features: Some(csv.features.clone()),
            answer: Some(csv.label.clone()),
            categorical: csv.categorical.clone(),
            shape,
        },
        None => InputCard {
            kind: source.name().to_string(),
            header: false,
            features: None,
            answer: None,
            categorical: Vec::new(),
            shape,
        },
    };
    let task = match info.and_then(|d| d.targets.clone()) {
        Some(targets) => TaskCard::Regress {
            targets,
            scaling: Scaling::default(),
        },
        None => TaskCard::Classify {
            classes: info.map_or(0, |d| d.classes),
            class_names: info.and_then(|d| d.class_names.clone()),
        },
    };
    // The batch of its test eval (so `engine eval` adds up the losses as the run did).
    let evals: Vec<&spec::EvalStage> = p
        .stages
        .iter()
        .filter_map(|s| match s {
            Stage::Eval(e) if e.model == model && e.dataset == dataset => Some(e),
            _ => None,
        })
        .collect();
    let eval_batch = evals
        .iter()
        .find(|e| e.split == SplitName::Test)
        .or(evals.first())
        .map_or(256, |e| e.batch_size);
    ModelCard {
        format: CARD_FORMAT,
        pipeline: p.name.clone(),
        pipeline_hash: String::new(),
        model: model.to_string(),
        // Absolute, so `engine eval` finds the data from any directory (a pipeline run as
        // `engine run p.yaml` has an empty base directory: the current one).
        pipeline_dir: std::path::absolute(match checked.parsed.base_dir.as_os_str().is_empty() {
            true => Path::new("."),
            false => checked.parsed.base_dir.as_path(),
        })
        .unwrap_or_else(|_| checked.parsed.base_dir.clone()),
        def,
        layer_names,
        input,
        normalize: Scaling::default(),
        task,
        eval_batch,
        eval_loss,
    }
}

/// The data stages' configuration of one named data set, paths resolved.
fn data_config(checked: &CheckedPipeline, name: &str) -> DataConfig {
    let p = &checked.parsed.pipeline;
    let spec = &p.datasets[name];
    let base = &checked.parsed.base_dir;
    // The check read the classes (and the names) from the train source's file.
    let info = checked.datasets.get(name);
    let cx = Configure {
        base_dir: base,
        seed: p.seed,
        info,
    };
    let source = |s: &SourceSpec| s.configure(&cx);
    let split = match &spec.split {
        SplitSpec::Fraction(f) => SplitBy::Fractions {
            source: source(&spec.source),
            fractions: Fractions {
                train: f.train,
                val: f.val,
                test: f.test,
                stratified: f.stratified.unwrap_or(
                    !checked
                        .datasets
                        .get(name)
                        .is_some_and(|d| d.is_regression()),
                ),
                seed: p.seed,
            },
        },
        SplitSpec::Files(files) => SplitBy::Files {
            train: source(&spec.source),
            val: files.val.as_ref().map(source),
            test: files.test.as_ref().map(source),
        },
    };
    let lower_normalize = |n: &spec::Normalize| match n {
        spec::Normalize::None => data::Normalize::None,
        spec::Normalize::Scale(s) => data::Normalize::Scale { factor: s.factor },
        spec::Normalize::Standardize => data::Normalize::Standardize,
    };
    let normalize = lower_normalize(&spec.normalize);
    let ids = spec.ids.map(|ids| data::IdFeatures {
        range: ids.start..ids.end,
        count: ids.count,
    });
    let normalize_targets = lower_normalize(&spec.normalize_targets);
    DataConfig {
        split,
        normalize,
        ids,
        normalize_targets,
    }
}
