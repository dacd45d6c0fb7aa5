//! `nan_guard`: checks the training loss and gradient norm read back at its triggers;
//! stops the run, or warns and goes on.

use super::{Action, Callbacks, Moment};
use crate::run::{RunError, StepMetricsSummary};
use crate::spec::{NanAction, NanGuard, Trigger};

impl Callbacks<'_> {
    pub(super) fn nan_guard(
        &self,
        name: &str,
        g: &NanGuard,
        at: &Moment,
    ) -> Result<Action, RunError> {
        for chain in at.chains {
            let loss = match at.trigger {
                Trigger::EveryNSteps(_) => StepMetricsSummary::from(chain.window).loss,
                _ => self.memory.train.get(chain.name).map_or(0.0, |t| t.loss),
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
                "nan_guard `{name}`: non-finite {what} at step {} (stages `{}` and `{}`)",
                chain.step, chain.loss, chain.name
            );
            match g.action {
                NanAction::Stop => return Err(RunError::NonFinite(message)),
                NanAction::SkipStep => self.print(format!("{message}; continuing")),
            }
        }
        Ok(Action::Continue)
    }
}
