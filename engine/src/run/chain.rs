//! The models of a run: each training chain's compiled step and split, the frozen models,
//! and which checkpoint tensors belong to which.

use std::path::Path;

use ops::gpu::{Gpu, GpuError};
use ops::model::Sequential;
use ops::train::{ChainInputs, EvalStep, LossKind, ModelParams, NamedTensor, TrainStep};

use crate::data::{Batch, Split};
use crate::plan::{ChainPlan, EvalPlan, EvalTarget, FrozenPlan, Plan};

use super::RunError;
use super::checkpoint::{self, ChainState};

/// A chain's device step and data.
pub(super) struct ChainRun {
    pub plan: ChainPlan,
    pub train: TrainStep,
    pub split: Split,
    /// One-hot targets of the current batch (mse), reused.
    pub targets: Vec<f32>,
}

/// A frozen model's parameters.
pub(super) struct FrozenRun {
    pub plan: FrozenPlan,
    pub params: ModelParams,
}

impl FrozenRun {
    pub fn new(gpu: &Gpu, plan: &FrozenPlan, seed: u64) -> Result<FrozenRun, RunError> {
        let mut params = ModelParams::new(gpu, &plan.model_def, seed, plan.layer_names.as_deref())?;
        params.set_fusion(plan.fusion.clone())?;
        if let Some(path) = &plan.init_from {
            let tensors = model_tensors(path, &plan.name, plan.prefixed)?;
            params
                .load(gpu, &tensors)
                .map_err(mismatch(path, &plan.name))?;
        }
        Ok(FrozenRun {
            plan: plan.clone(),
            params,
        })
    }

    /// Its tensors out of a checkpoint's.
    pub fn own(&self, tensors: &[NamedTensor]) -> Vec<NamedTensor> {
        own(tensors, self.plan.prefixed, &[&self.plan.name], None)
    }
}

impl ChainRun {
    pub fn new(
        gpu: &Gpu,
        plan: &ChainPlan,
        split: Split,
        frozen: &[FrozenRun],
    ) -> Result<ChainRun, RunError> {
        Ok(ChainRun {
            train: train_step(gpu, plan, frozen)?,
            split,
            targets: Vec::new(),
            plan: plan.clone(),
        })
    }

    /// A fresh position at the start of training.
    pub fn start_state(&self) -> ChainState {
        ChainState {
            name: self.plan.name.clone(),
            ..ChainState::default()
        }
    }

    /// This chain's tensors out of a checkpoint's (its models' and its step counter).
    pub fn own(&self, tensors: &[NamedTensor]) -> Vec<NamedTensor> {
        let models: Vec<&str> = self.plan.models.iter().map(String::as_str).collect();
        own(
            tensors,
            self.plan.prefixed,
            &models,
            Some(&self.plan.step_tensor),
        )
    }

    /// Uploads one micro-batch.
    pub fn upload(&mut self, gpu: &Gpu, batch: &Batch) -> Result<(), ops::GpuError> {
        let target = loss_targets(
            self.plan.classes,
            self.plan.one_hot_targets,
            batch,
            &mut self.targets,
        );
        self.train
            .upload_batch(gpu, &batch.features, &batch.labels, target, batch.rows)
    }
}

/// Every frozen model of the plan, initialised and loaded from its `init_from:`.
pub(super) fn frozen_runs(gpu: &Gpu, plan: &Plan) -> Result<Vec<FrozenRun>, RunError> {
    plan.frozen
        .iter()
        .map(|f| FrozenRun::new(gpu, f, plan.seed))
        .collect()
}

/// An eval's compiled step: over its chain's step (`chains[i]` is chain `i`'s), or over a
/// frozen model with cross entropy (mse on a regression data set).
pub(super) fn eval_step(
    gpu: &Gpu,
    plan: &Plan,
    eval: &EvalPlan,
    chains: &[&TrainStep],
    frozen: &[FrozenRun],
) -> Result<EvalStep, RunError> {
    Ok(match eval.target {
        EvalTarget::Chain(c) => EvalStep::new(gpu, chains[c.0], eval.batch_size)?,
        EvalTarget::Frozen(f) => EvalStep::for_params(
            gpu,
            &frozen[f.0].params,
            if plan.datasets[eval.dataset.0].targets.is_some() {
                LossKind::Fused(ops::loss::mse::mse())
            } else {
                LossKind::CrossEntropy {
                    label_smoothing: 0.0,
                }
            },
            None,
            eval.batch_size,
        )?,
    })
}

/// A chain's compiled training step: its model (each of a chained model's models
/// initialised as it would be alone, then from `init_from:`), its frozen encoder and
/// teacher.
pub(super) fn train_step(
    gpu: &Gpu,
    plan: &ChainPlan,
    frozen: &[FrozenRun],
) -> Result<TrainStep, RunError> {
    let inputs = ChainInputs {
        encoder: plan.encoder.map(|f| &frozen[f.0].params),
        teacher: plan.teacher.map(|f| &frozen[f.0].params),
        layer_names: plan.layer_names.clone(),
        step_tensor: Some(plan.step_tensor.clone()),
        fusion: Some(plan.fusion.clone()),
    };
    let mut train = TrainStep::with_inputs(gpu, &plan.model_def, &plan.train, inputs)?;
    if plan.model_defs.len() > 1 {
        // Each model of a chained model starts as it would alone, with its own init.
        let mut start = Vec::new();
        let all_names = plan.layer_names.as_deref().unwrap_or_default();
        let mut offset = 0;
        for (name, def) in &plan.model_defs {
            let mut seq = Sequential::new(def).map_err(GpuError::InvalidModel)?;
            let names: Vec<String> = match all_names.get(offset..offset + def.layers.len()) {
                Some(own) => own.to_vec(),
                None => (0..def.layers.len())
                    .map(|j| format!("{name}.layers.{j}"))
                    .collect(),
            };
            offset += def.layers.len();
            seq.rename_layers(&names).map_err(GpuError::InvalidModel)?;
            let params = seq.init_params(plan.train.seed);
            start.extend(
                seq.slots
                    .iter()
                    .zip(params.iter().flatten())
                    .map(|(slot, t)| NamedTensor {
                        name: slot.name.clone(),
                        shape: t.shape.clone(),
                        data: t.data.clone(),
                    }),
            );
        }
        train.load_params(gpu, &start)?;
    }
    for (model, path) in &plan.init_from {
        let tensors = model_tensors(path, model, plan.prefixed)?;
        // Every parameter of the model must be in the file, as for a frozen model.
        let prefix = format!("{model}.");
        let missing = train.model().slots.iter().find(|slot| {
            (!plan.prefixed || slot.name.starts_with(&prefix))
                && !tensors.iter().any(|t| t.name == slot.name)
        });
        if let Some(slot) = missing {
            return Err(mismatch(path, model)(GpuError::ParamMismatch {
                name: slot.name.clone(),
                message: format!("missing (expected shape {:?})", slot.shape),
            })
            .into());
        }
        train
            .load_some_params(gpu, &tensors)
            .map_err(mismatch(path, model))?;
    }
    Ok(train)
}

/// The tensors of `models` (named `<model>.…` when `prefixed`, else every tensor) and the
/// step counter `step`.
fn own(
    tensors: &[NamedTensor],
    prefixed: bool,
    models: &[&str],
    step: Option<&str>,
) -> Vec<NamedTensor> {
    tensors
        .iter()
        .filter(|t| {
            !prefixed
                || Some(t.name.as_str()) == step
                || models.iter().any(|m| {
                    t.name
                        .strip_prefix(m)
                        .is_some_and(|rest| rest.starts_with('.'))
                })
        })
        .cloned()
        .collect()
}

/// One model's weights from a checkpoint or `.safetensors` file, named as the run names
/// them: a file written by a run of several models holds `<model>.…` tensors; one of a
/// single model (or `engine export` of it) holds `layers.…`.
fn model_tensors(path: &Path, model: &str, prefixed: bool) -> Result<Vec<NamedTensor>, RunError> {
    let all = checkpoint::load_weights(path)?;
    let prefix = format!("{model}.");
    let mine: Vec<NamedTensor> = all
        .iter()
        .filter(|t| t.name.starts_with(&prefix))
        .cloned()
        .collect();
    let (tensors, has_prefix) = if mine.is_empty() {
        (all, false)
    } else {
        (mine, true)
    };
    Ok(tensors
        .into_iter()
        .map(|mut t| {
            match (prefixed, has_prefix) {
                (true, false) => t.name.insert_str(0, &prefix),
                (false, true) => t.name = t.name[prefix.len()..].to_string(),
                _ => {}
            }
            t
        })
        .collect())
}

/// Names the file and model a parameter mismatch came from.
fn mismatch<'a>(path: &'a Path, model: &'a str) -> impl Fn(GpuError) -> GpuError + 'a {
    move |e| match e {
        GpuError::ParamMismatch { name, message } => GpuError::ParamMismatch {
            name,
            message: format!(
                "{message}; model `{model}` (expected) does not match `init_from: {}` (found)",
                path.display()
            ),
        },
        other => other,
    }
}

/// What a loss compares with besides labels: a regression batch's targets, one-hot rows
/// for an mse loss on classes (reusing `buffer`), or `None` for cross-entropy.
pub(super) fn loss_targets<'a>(
    classes: usize,
    one_hot_targets: bool,
    batch: &'a Batch,
    buffer: &'a mut Vec<f32>,
) -> Option<&'a [f32]> {
    if let Some(targets) = &batch.targets {
        return Some(targets);
    }
    if !one_hot_targets {
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
