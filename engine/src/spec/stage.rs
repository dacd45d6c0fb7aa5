use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::tagged::tagged_enum;
use super::{
    CallbackSpec, EvalMetric, LossFn, OptimizerSpec, PortRef, SplitName, StageId, Trigger,
};

/// A stage of the training graph. The `kind` key selects its fields.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Stage {
    /// Reads batches of a data set split. Outputs `features` and `labels`.
    Load(LoadStage),
    /// Runs a model on a tensor. Outputs `logits`.
    Forward(ForwardStage),
    /// Compares model outputs with targets. Outputs `loss`.
    Loss(LossStage),
    /// Differentiates a loss with respect to the model's parameters. Outputs `grads`.
    Backward(BackwardStage),
    /// Sums gradients over several micro-batches before a step. Outputs `grads`.
    Accumulate(AccumulateStage),
    /// Updates parameters from gradients with an optimizer. Outputs `params` and `grad_norm`.
    Step(StepStage),
    /// Evaluates a model over a split at its triggers. Outputs `loss`, `accuracy`, `top5`.
    Eval(EvalStage),
    /// Runs a callback (log, metrics, checkpoint, ...) at its triggers.
    Callback(CallbackStage),
}
tagged_enum!(Stage, "kind", {
    "load" => Load(LoadStage),
    "forward" => Forward(ForwardStage),
    "loss" => Loss(LossStage),
    "backward" => Backward(BackwardStage),
    "accumulate" => Accumulate(AccumulateStage),
    "step" => Step(StepStage),
    "eval" => Eval(EvalStage),
    "callback" => Callback(CallbackStage),
});

impl Stage {
    /// The stage's id.
    pub fn id(&self) -> &StageId {
        match self {
            Stage::Load(s) => &s.id,
            Stage::Forward(s) => &s.id,
            Stage::Loss(s) => &s.id,
            Stage::Backward(s) => &s.id,
            Stage::Accumulate(s) => &s.id,
            Stage::Step(s) => &s.id,
            Stage::Eval(s) => &s.id,
            Stage::Callback(s) => &s.id,
        }
    }

    /// The kind as written in pipelines.
    pub fn kind(&self) -> &'static str {
        self.name()
    }

    /// Data inputs: (field name in the YAML, referenced output).
    pub fn inputs(&self) -> Vec<(&'static str, &PortRef)> {
        match self {
            Stage::Load(_) | Stage::Eval(_) => vec![],
            Stage::Forward(s) => vec![("input", &s.input)],
            Stage::Loss(s) => {
                let mut inputs = vec![("logits", &s.logits), ("target", &s.target)];
                inputs.extend(s.teacher.iter().map(|t| ("teacher", t)));
                inputs
            }
            Stage::Backward(s) => vec![("loss", &s.loss)],
            Stage::Accumulate(s) => vec![("grads", &s.grads)],
            Stage::Step(s) => vec![("grads", &s.grads)],
            Stage::Callback(s) => s.watch.iter().map(|w| ("watch", w)).collect(),
        }
    }
}

/// A `load` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadStage {
    /// Unique id of this stage.
    pub id: StageId,
    /// Name of a data set under `datasets:`.
    pub dataset: String,
    /// Which split to read.
    #[serde(default = "train")]
    pub split: SplitName,
    /// Samples per batch (> 0).
    #[schemars(range(min = 1))]
    pub batch_size: usize,
    /// Reshuffle the split every epoch (seeded).
    #[serde(default = "yes")]
    pub shuffle: bool,
    /// Drop the last batch of an epoch when it is smaller than `batch_size`.
    #[serde(default)]
    pub drop_last: bool,
}

impl LossStage {
    /// The distillation temperature, default applied.
    pub fn temperature(&self) -> f64 {
        self.temperature
            .unwrap_or(crate::losses::DISTILL_TEMPERATURE)
    }

    /// The distillation weight, default applied.
    pub fn alpha(&self) -> f64 {
        self.alpha.unwrap_or(crate::losses::DISTILL_ALPHA)
    }
}

fn train() -> SplitName {
    SplitName::Train
}

fn yes() -> bool {
    true
}

/// A `forward` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardStage {
    /// Unique id of this stage.
    pub id: StageId,
    /// Name of a model under `models:`.
    pub model: String,
    /// The tensor fed to the model, e.g. `batch.features`.
    pub input: PortRef,
}

/// A `loss` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LossStage {
    /// Unique id of this stage.
    pub id: StageId,
    /// The loss function.
    #[serde(rename = "fn")]
    pub function: LossFn,
    /// Label smoothing for `cross_entropy`, in [0, 1).
    #[serde(default)]
    #[schemars(range(min = 0), extend("exclusiveMaximum" = 1))]
    pub label_smoothing: f64,
    /// `huber`: where the loss turns from squared to linear (> 0); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// Per-class weights of `cross_entropy`, one per class in class order (for imbalanced
    /// data): each sample's loss and gradient are multiplied by its label's weight (the
    /// mean stays over samples, unlike PyTorch's weighted mean over the weights' sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weights: Option<Vec<f64>>,
    /// `distill`: the teacher's outputs, e.g. `teacher_fwd.logits` (a frozen model's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<PortRef>,
    /// `distill`: softmax temperature T (> 0) of both outputs in the KL term; default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// `distill`: weight α in [0, 1] of the KL term (scaled by T²); cross entropy on the
    /// labels gets 1 − α. Default 0.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Settings of a loss the binary registered (`engine::extend`), checked against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
    /// Model outputs, e.g. `fwd.logits`.
    pub logits: PortRef,
    /// Targets, e.g. `batch.labels`.
    pub target: PortRef,
}

/// A `backward` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackwardStage {
    /// Unique id of this stage.
    pub id: StageId,
    /// The loss to differentiate, e.g. `loss.loss`.
    pub loss: PortRef,
}

/// An `accumulate` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccumulateStage {
    /// Unique id of this stage.
    pub id: StageId,
    /// Gradients to accumulate, e.g. `grads.grads`.
    pub grads: PortRef,
    /// Micro-batches summed per optimizer step (> 0). The sum is divided by `steps`.
    #[schemars(range(min = 1))]
    pub steps: u32,
}

/// A `step` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepStage {
    /// Unique id of this stage.
    pub id: StageId,
    /// Gradients to apply, e.g. `grads.grads` or `accum.grads`.
    pub grads: PortRef,
    /// The optimizer.
    pub optimizer: OptimizerSpec,
    /// Rescale gradients so their global L2 norm is at most this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub clip_grad_norm: Option<f64>,
    /// `f32` (default) or `f16`: mixed precision. The operands of every matrix product
    /// (linear layers and convolutions, forward and backward) are rounded to f16 and their
    /// products summed in f32; master weights, optimizer state and everything else stay
    /// f32; the loss is scaled dynamically (PyTorch's GradScaler: 2^16, x2 after 2000
    /// finite updates, x0.5 and the update skipped on inf/NaN). Needs an adapter with f16
    /// shaders (`engine devices`).
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// What `precision: f16` does on an adapter without f16 shaders: `refuse` (default:
    /// the run stops before training, pointing here) or `f32` (train in f32, with a
    /// warning).
    #[serde(default, skip_serializing_if = "F16Fallback::is_refuse")]
    pub f16_fallback: F16Fallback,
}

/// The arithmetic of a training step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats throughout.
    #[default]
    F32,
    /// Mixed precision: f16 matrix-product operands, f32 accumulation, loss scaling.
    F16,
}

impl Precision {
    fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

/// What `precision: f16` does where the adapter has no f16 shaders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum F16Fallback {
    /// Stop before training, with the location of `precision: f16`.
    #[default]
    Refuse,
    /// Train in f32 and say so.
    F32,
}

impl F16Fallback {
    fn is_refuse(&self) -> bool {
        *self == F16Fallback::Refuse
    }
}

/// An `eval` stage: a routine over a split, with the model in eval mode (dropout off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalStage {
    /// Unique id of this stage; its metrics are referred to as `<id>.accuracy` etc.
    pub id: StageId,
    /// Name of a model under `models:`.
    pub model: String,
    /// Name of a data set under `datasets:`.
    pub dataset: String,
    /// Which split to evaluate.
    pub split: SplitName,
    /// Samples per batch (> 0).
    #[serde(default = "eval_batch")]
    #[schemars(range(min = 1))]
    pub batch_size: usize,
    /// When to evaluate.
    #[serde(default = "eval_triggers")]
    pub on: Vec<Trigger>,
    /// Metrics to compute. Default: `[loss, accuracy]` for classification, `[loss, mae,
    /// rmse, r2]` for regression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<EvalMetric>>,
    /// Run after these callbacks or evals at the same trigger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<StageId>,
    /// Run before these callbacks or evals at the same trigger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<StageId>,
}

fn eval_batch() -> usize {
    256
}

fn eval_triggers() -> Vec<Trigger> {
    vec![Trigger::EpochEnd]
}

/// A `callback` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackStage {
    /// Unique id of this stage.
    pub id: StageId,
    /// What the callback does; `type:` selects it.
    pub callback: CallbackSpec,
    /// When it fires. Each callback type has a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<Vec<Trigger>>,
    /// Fire after these callbacks or evals at the same trigger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<StageId>,
    /// Fire before these callbacks or evals at the same trigger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<StageId>,
    /// Outputs this callback reads, e.g. `loss.loss` or `step.grad_norm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<PortRef>,
}

impl CallbackStage {
    /// The triggers, defaults applied.
    pub fn triggers(&self, federated: bool) -> Vec<Trigger> {
        self.on.clone().unwrap_or_else(|| {
            if federated {
                self.callback.federated_default_triggers()
            } else {
                self.callback.default_triggers()
            }
        })
    }
}
