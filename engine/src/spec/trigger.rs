use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
