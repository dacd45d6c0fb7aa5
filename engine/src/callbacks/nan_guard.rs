//! `nan_guard`: checks the training loss and gradient norm read back at its triggers;
//! stops the run, or warns and goes on.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Action, CallbackRule, Callbacks, Hook};
use crate::run::{RunError, StepMetricsSummary};
use crate::spec::Trigger;

/// Non-finite value guard settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NanGuardSpec {
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

/// Non-finite value guard.
pub struct NanGuard;

impl CallbackRule for NanGuard {
    type Spec = NanGuardSpec;
    const NAME: &'static str = "nan_guard";
    const DESCRIPTION: &'static str =
        "Stop or skip the step when the loss or gradient norm is not finite.";

    fn default_triggers(_: &NanGuardSpec) -> Vec<Trigger> {
        // Checking reads the device accumulators back; every 10 steps amortises it.
        vec![Trigger::EveryNSteps(10), Trigger::EpochEnd]
    }

    fn on_hook(g: &NanGuardSpec, cb: &mut Callbacks, hook: &Hook) -> Result<Action, RunError> {
        let at = hook.at;
        for chain in at.chains {
            let loss = match at.trigger {
                Trigger::EveryNSteps(_) => StepMetricsSummary::from(chain.window).loss,
                _ => cb.memory.train.get(chain.name).map_or(0.0, |t| t.loss),
            };
            let norm = chain.grad_norm;
            if loss.is_finite() && norm.is_finite() {
                continue;
            }
            let what = if loss.is_finite() {
                format!("gradient norm {norm}")
            } else {
                format!("loss {loss}")
            };
            let message = format!(
                "nan_guard `{}`: non-finite {what} at step {} (stages `{}` and `{}`)",
                hook.name, chain.step, chain.loss, chain.name
            );
            match g.action {
                NanAction::Stop => return Err(RunError::NonFinite(message)),
                NanAction::SkipStep => cb.say(format!("{message}; continuing")),
            }
        }
        Ok(Action::Continue)
    }
}
