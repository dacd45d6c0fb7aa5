use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::tagged::{Extension, tagged_enum};
use super::{LrSchedule, PortRef, StageId};

/// A point in the training lifecycle at which callbacks and evals fire.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// Once, before the first batch.
    FitStart,
    /// Before each epoch's first batch.
    EpochStart,
    /// Before each batch is uploaded.
    BatchStart,
    /// After each batch's forward pass and loss. A training step is one GPU submission,
    /// so this fires once it is submitted, like `after_backward` and `batch_end`.
    AfterForward,
    /// After each batch's backward pass (once the step is submitted; see `after_forward`).
    AfterBackward,
    /// After each batch's step, including the optimizer update when its accumulation
    /// group completes.
    BatchEnd,
    /// After each epoch's last batch.
    EpochEnd,
    /// Once, after training ends.
    FitEnd,
    /// After every N optimizer steps, e.g. `{every_n_steps: 100}`.
    EveryNSteps(u64),
    /// Federated: after each round's aggregation.
    RoundEnd,
    /// Federated: after every N rounds' aggregation, e.g. `{every_n_rounds: 10}`.
    EveryNRounds(u32),
}

impl Trigger {
    /// Lifecycle scope the trigger belongs to: run, epoch or batch.
    pub fn scope(self) -> &'static str {
        match self {
            Trigger::FitStart | Trigger::FitEnd => "run",
            Trigger::EpochStart | Trigger::EpochEnd => "epoch",
            Trigger::RoundEnd | Trigger::EveryNRounds(_) => "round",
            _ => "batch",
        }
    }

    /// Order of the trigger within one pass of its scope.
    pub fn rank(self) -> u8 {
        match self {
            Trigger::FitStart => 0,
            Trigger::EpochStart => 1,
            Trigger::BatchStart => 2,
            Trigger::AfterForward => 3,
            Trigger::AfterBackward => 4,
            Trigger::BatchEnd => 5,
            Trigger::EveryNSteps(_) => 6,
            Trigger::EpochEnd => 7,
            Trigger::RoundEnd => 8,
            Trigger::EveryNRounds(_) => 9,
            Trigger::FitEnd => 10,
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::FitStart => f.write_str("fit_start"),
            Trigger::EpochStart => f.write_str("epoch_start"),
            Trigger::BatchStart => f.write_str("batch_start"),
            Trigger::AfterForward => f.write_str("after_forward"),
            Trigger::AfterBackward => f.write_str("after_backward"),
            Trigger::BatchEnd => f.write_str("batch_end"),
            Trigger::EpochEnd => f.write_str("epoch_end"),
            Trigger::FitEnd => f.write_str("fit_end"),
            Trigger::EveryNSteps(n) => write!(f, "every {n} steps"),
            Trigger::RoundEnd => f.write_str("round_end"),
            Trigger::EveryNRounds(n) => write!(f, "every {n} rounds"),
        }
    }
}

/// What a callback does. The `type` key selects it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallbackSpec {
    /// Progress on the terminal: a live bar on a TTY, plain lines otherwise.
    Log,
    /// Append loss and metrics per split to `<out>/metrics.jsonl`.
    Metrics(MetricsCallback),
    /// Save weights and the full training state.
    Checkpoint(CheckpointCallback),
    /// Stop when a monitored metric stops improving.
    EarlyStopping(EarlyStopping),
    /// Set the learning rate of a `step` stage every optimizer step.
    LrSchedule(LrScheduleCallback),
    /// Stop or skip the step when the loss or gradient norm is not finite.
    NanGuard(NanGuard),
    /// Time each stage and kernel; writes `<out>/profile.json`.
    Profile,
    /// Watch a metric for a condition (non-finite, divergence, plateau) and act on it.
    Monitor(MonitorCallback),
    /// Run a command with the event (trigger, step, epoch, latest metrics, checkpoint) as
    /// JSON on its stdin; `engine run` needs `--allow-exec`.
    Exec(ExecCallback),
    /// A callback the binary registered (`engine::extend`); the schema lists each one.
    #[schemars(skip)]
    #[serde(untagged)]
    Extension(Extension),
}
tagged_enum!(CallbackSpec, "type", {
    "log" => Log,
    "metrics" => Metrics(MetricsCallback),
    "checkpoint" => Checkpoint(CheckpointCallback),
    "early_stopping" => EarlyStopping(EarlyStopping),
    "lr_schedule" => LrSchedule(LrScheduleCallback),
    "nan_guard" => NanGuard(NanGuard),
    "profile" => Profile,
    "monitor" => Monitor(MonitorCallback),
    "exec" => Exec(ExecCallback),
}, extensions: Extension(crate::extend::callback_family()));

impl CallbackSpec {
    /// Triggers used when a callback stage gives no `on:`.
    pub fn default_triggers(&self) -> Vec<Trigger> {
        match self {
            CallbackSpec::Log => vec![Trigger::EveryNSteps(50), Trigger::EpochEnd],
            CallbackSpec::Metrics(_) | CallbackSpec::Checkpoint(_) => vec![Trigger::EpochEnd],
            CallbackSpec::EarlyStopping(_) => vec![Trigger::EpochEnd],
            CallbackSpec::LrSchedule(_) => vec![Trigger::BatchStart],
            // Checking reads the device accumulators back; every 10 steps amortises it.
            CallbackSpec::NanGuard(_) => vec![Trigger::EveryNSteps(10), Trigger::EpochEnd],
            CallbackSpec::Profile => vec![Trigger::FitEnd],
            CallbackSpec::Monitor(_) => vec![Trigger::EpochEnd],
            CallbackSpec::Exec(_) => vec![Trigger::EpochEnd],
            CallbackSpec::Extension(e) => crate::extend::registry()
                .callback(e.name)
                .map_or_else(|| vec![Trigger::EpochEnd], |c| (c.default_triggers)()),
        }
    }

    /// When it fires in a federated pipeline when `on:` is omitted: where an ordinary run
    /// fires at epoch ends, a federated one fires at round ends.
    pub fn federated_default_triggers(&self) -> Vec<Trigger> {
        self.default_triggers()
            .into_iter()
            .filter_map(|t| match t {
                Trigger::EpochEnd => Some(Trigger::RoundEnd),
                Trigger::EveryNSteps(_) => None,
                other => Some(other),
            })
            .collect()
    }
}

/// A command run at the callback's triggers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecCallback {
    /// The program and its arguments, run without a shell in the pipeline's directory,
    /// e.g. `[python3, hooks/notify.py]`. It reads the event as one JSON object on stdin.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Seconds it may run before it is killed and counts as failed (> 0).
    #[serde(default = "default_exec_timeout")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub timeout_s: f64,
    /// What a failure (exit status other than 0, timeout, cannot start) does.
    #[serde(default)]
    pub on_failure: ExecFailure,
}

fn default_exec_timeout() -> f64 {
    60.0
}

/// What a failed `exec` command does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecFailure {
    /// Print a warning and go on.
    #[default]
    Warn,
    /// End the run with an error.
    Stop,
}

/// Metrics file settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsCallback {
    /// File name inside the run's output directory.
    #[serde(default = "default_metrics_file")]
    pub file: String,
}

impl Default for MetricsCallback {
    fn default() -> Self {
        MetricsCallback {
            file: default_metrics_file(),
        }
    }
}

fn default_metrics_file() -> String {
    "metrics.jsonl".into()
}

/// Checkpoint settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointCallback {
    /// Directory inside the run's output directory.
    #[serde(default = "default_checkpoint_dir")]
    pub dir: String,
    /// Keep only the newest N checkpoints (the best is kept as well).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<u32>,
    /// Also keep the checkpoint with the best value of a metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_best: Option<Monitor>,
}

fn default_checkpoint_dir() -> String {
    "checkpoints".into()
}

/// A metric to watch and which direction is better.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    /// An eval stage's metric, e.g. `val.accuracy` or `val.loss`.
    pub monitor: PortRef,
    /// Whether smaller (`min`) or larger (`max`) is better.
    pub mode: Mode,
}

/// Direction of improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Smaller is better (losses).
    Min,
    /// Larger is better (accuracies).
    Max,
}

/// Early stopping settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// An eval stage's metric, e.g. `val.loss`.
    pub monitor: PortRef,
    /// Whether smaller (`min`) or larger (`max`) is better.
    pub mode: Mode,
    /// Evaluations without improvement before stopping.
    #[schemars(range(min = 1))]
    pub patience: u32,
    /// Smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
    /// Evaluations to ignore at the start of training.
    #[serde(default)]
    pub warmup: u32,
    /// Restore the best weights when stopping.
    #[serde(default)]
    pub restore_best: bool,
}

/// Learning rate schedule settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LrScheduleCallback {
    /// The `step` stage whose learning rate is scheduled.
    pub stage: StageId,
    /// The schedule.
    pub schedule: LrSchedule,
}

/// Non-finite value guard settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NanGuard {
    /// What to do on a non-finite loss or gradient norm.
    #[serde(default)]
    pub action: NanAction,
}

/// Reaction to a non-finite value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NanAction {
    /// Stop training with a message naming the step and stage.
    #[default]
    Stop,
    /// Report and continue. The check runs where the device sums are read back (every N
    /// steps, epoch ends), after those steps were applied; to undo them, use a `monitor`
    /// with a `rollback` action.
    SkipStep,
}

/// A monitor: a condition on a metric and what to do when it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorCallback {
    /// The watched value: an eval stage's metric (`val.loss`) or the training loss
    /// (`<loss stage>.loss`, averaged over the epoch or the steps since the last report).
    pub metric: PortRef,
    /// Whether smaller (`min`, losses) or larger (`max`, accuracies) is better.
    #[serde(default = "min_mode")]
    pub mode: Mode,
    /// The condition that triggers the action.
    pub condition: MonitorCondition,
    /// What to do when the condition holds.
    pub action: MonitorAction,
}

fn min_mode() -> Mode {
    Mode::Min
}

/// A condition on a monitored metric.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MonitorCondition {
    /// The value is NaN or infinite.
    NonFinite,
    /// The value is worse than `factor` times its best so far (e.g. loss above 3x best).
    Divergence(Divergence),
    /// No improvement by more than `min_delta` over `patience` checks.
    Plateau(Plateau),
}
tagged_enum!(MonitorCondition, "kind", {
    "non_finite" => NonFinite,
    "divergence" => Divergence(Divergence),
    "plateau" => Plateau(Plateau),
});

/// Divergence settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Divergence {
    /// How many times worse than the best value counts as diverged (> 1).
    pub factor: f64,
    /// The value must also be this much worse than the best, so that noise around a
    /// best near zero is not mistaken for divergence.
    #[serde(default = "tenth")]
    pub margin: f64,
}

fn tenth() -> f64 {
    0.1
}

/// Plateau settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plateau {
    /// Checks without improvement before the action (> 0).
    #[schemars(range(min = 1))]
    pub patience: u32,
    /// Smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
}

/// What a monitor does when its condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MonitorAction {
    /// Stop training with a message naming the metric, its value and the step.
    Stop,
    /// Multiply the learning rate by `factor` from now on.
    ReduceLr(ReduceLr),
    /// Reload the newest checkpoint (weights, optimizer, data position) and continue from
    /// there with the learning rate multiplied by `lr_factor`. Needs a checkpoint callback.
    Rollback(Rollback),
}
tagged_enum!(MonitorAction, "kind", {
    "stop" => Stop,
    "reduce_lr" => ReduceLr(ReduceLr),
    "rollback" => Rollback(Rollback),
});

/// Learning rate reduction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReduceLr {
    /// Multiplier in (0, 1).
    pub factor: f64,
}

/// Rollback settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// Learning-rate multiplier applied after rolling back, in (0, 1]; rolling back with
    /// the same rate would, deterministically, diverge again.
    #[serde(default = "half")]
    pub lr_factor: f64,
    /// Give up (stop) after this many rollbacks.
    #[serde(default = "three")]
    pub max_rollbacks: u32,
}

fn half() -> f64 {
    0.5
}

fn three() -> u32 {
    3
}
