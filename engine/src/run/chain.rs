//! One training chain at run time: its compiled step, its split, and how its tensors are
//! named in checkpoints.

use ops::gpu::Gpu;
use ops::train::{NamedTensor, TrainStep};

use crate::data::{Batch, Split};
use crate::plan::ChainPlan;

use super::RunError;
use super::checkpoint::ChainState;

/// A chain's device step and data.
pub(super) struct ChainRun {
    pub plan: ChainPlan,
    pub train: TrainStep,
    pub split: Split,
    /// One-hot targets of the current batch (mse), reused.
    pub targets: Vec<f32>,
    /// Checkpoint names are `<model>.<tensor>` when the run trains several models, the
    /// bare tensor names (`layers.0.weight`) when it trains one.
    pub prefix: String,
}

impl ChainRun {
    pub fn new(
        gpu: &Gpu,
        plan: &ChainPlan,
        split: Split,
        several: bool,
    ) -> Result<ChainRun, RunError> {
        Ok(ChainRun {
            train: TrainStep::new(gpu, &plan.model_def, &plan.train)?,
            split,
            targets: Vec::new(),
            prefix: if several {
                format!("{}.", plan.model)
            } else {
                String::new()
            },
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

    /// `tensors` with this chain's checkpoint prefix added.
    pub fn named(&self, tensors: Vec<NamedTensor>) -> Vec<NamedTensor> {
        tensors
            .into_iter()
            .map(|mut t| {
                t.name.insert_str(0, &self.prefix);
                t
            })
            .collect()
    }

    /// This chain's tensors out of a checkpoint's (prefix removed).
    pub fn own(&self, tensors: &[NamedTensor]) -> Vec<NamedTensor> {
        tensors
            .iter()
            .filter_map(|t| {
                t.name.strip_prefix(&self.prefix).map(|name| NamedTensor {
                    name: name.to_string(),
                    shape: t.shape.clone(),
                    data: t.data.clone(),
                })
            })
            .collect()
    }

    /// Uploads one micro-batch.
    pub fn upload(&mut self, gpu: &Gpu, batch: &Batch) {
        let target = one_hot(
            self.plan.classes,
            self.plan.one_hot_targets,
            batch,
            &mut self.targets,
        );
        self.train
            .upload_batch(gpu, &batch.features, &batch.labels, target, batch.rows);
    }
}

/// One-hot targets for an mse loss (reusing `buffer`), or `None` for cross-entropy.
pub(super) fn one_hot<'a>(
    classes: usize,
    one_hot_targets: bool,
    batch: &Batch,
    buffer: &'a mut Vec<f32>,
) -> Option<&'a [f32]> {
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
