//! `monitor`: watches a metric for a condition (non-finite, divergence, plateau) and
//! stops, reduces the learning rate or rolls back.

use super::{Action, Callbacks, Moment, Watched, metric_of};
use crate::run::StepMetricsSummary;
use crate::spec::{Mode, Trigger};

impl Callbacks<'_> {
    /// The current value of a watched metric: an eval's last, or a chain's training loss
    /// (over the period at `every_n_steps`, else its last epoch's). `None` when there is no
    /// value yet, or at `every_n_steps` when the chain trained no sample since the last
    /// report (a chain whose data ran out waits for the others; its old value is not new).
    fn metric_value(&self, watched: Watched, at: &Moment) -> Option<f64> {
        match watched {
            Watched::Eval { eval, metric } => {
                let m = self.memory.evals.get(&self.plan.evals[eval.0].name)?;
                Some(metric_of(m, metric))
            }
            Watched::TrainLoss(chain) => {
                let c = at.chains.get(chain.0)?;
                match at.trigger {
                    Trigger::EveryNSteps(_) => {
                        (c.window.samples > 0).then(|| StepMetricsSummary::from(c.window).loss)
                    }
                    _ => Some(self.memory.train.get(c.name)?.loss),
                }
            }
        }
    }

    pub(super) fn monitor(
        &mut self,
        id: &str,
        m: &crate::spec::MonitorCallback,
        watches: Option<Watched>,
        at: &Moment,
    ) -> Action {
        use crate::spec::{MonitorAction, MonitorCondition};
        let Some(watched) = watches else {
            return Action::Continue;
        };
        let Some(value) = self.metric_value(watched, at) else {
            return Action::Continue;
        };
        let better = |a: f64, b: f64| match m.mode {
            Mode::Min => a < b,
            Mode::Max => a > b,
        };
        let eval_runs = match watched {
            Watched::Eval { eval, .. } => self
                .memory
                .eval_runs
                .get(&self.plan.evals[eval.0].name)
                .copied(),
            Watched::TrainLoss(_) => None,
        };
        let state = self.memory.monitors.entry(id.to_string()).or_default();
        if let Some(runs) = eval_runs {
            if state.last_eval == runs {
                return Action::Continue; // the watched eval has not run again
            }
            state.last_eval = runs;
        }
        let best = state.best;
        let (holds, why) = match &m.condition {
            MonitorCondition::NonFinite => (!value.is_finite(), "is not finite".to_string()),
            MonitorCondition::Divergence(d) => {
                let diverged = !value.is_finite()
                    || best.is_some_and(|b| match m.mode {
                        Mode::Min => value > b.abs() * d.factor && value > b + d.margin,
                        Mode::Max => value < b / d.factor && value < b - d.margin,
                    });
                (
                    diverged,
                    format!(
                        "diverged: more than {}x from its best {:.4}",
                        d.factor,
                        best.unwrap_or(f64::NAN)
                    ),
                )
            }
            MonitorCondition::Plateau(p) => {
                let improved = best.is_none_or(|b| match m.mode {
                    Mode::Min => value < b - p.min_delta,
                    Mode::Max => value > b + p.min_delta,
                });
                state.bad = if improved { 0 } else { state.bad + 1 };
                (
                    state.bad >= p.patience,
                    format!(
                        "has not improved for {} checks (best {:.4})",
                        state.bad,
                        best.unwrap_or(f64::NAN)
                    ),
                )
            }
        };
        if value.is_finite() && best.is_none_or(|b| better(value, b)) {
            state.best = Some(value);
        }
        if !holds {
            state.last_healthy = Some(at.step);
            return Action::Continue;
        }
        state.bad = 0;
        let what = format!(
            "monitor `{id}`: {} = {value:.4} at step {} {why}",
            m.metric, at.step
        );
        match &m.action {
            MonitorAction::Stop => {
                self.print(format!("{what}; stopping"));
                Action::Stop
            }
            MonitorAction::ReduceLr(r) => {
                self.memory.lr_scale *= r.factor;
                let scale = self.memory.lr_scale;
                self.print(format!(
                    "{what}; learning rate x{} (now x{scale:.4} of the schedule)",
                    r.factor
                ));
                Action::Continue
            }
            MonitorAction::Rollback(r) if state.rollbacks >= r.max_rollbacks => {
                let n = state.rollbacks;
                self.print(format!("{what}; {n} rollbacks already, stopping"));
                Action::Stop
            }
            MonitorAction::Rollback(r) => {
                state.rollbacks += 1;
                // The weights saved at the last healthy check were already trained on
                // the window that went wrong; return to a checkpoint before it.
                let before_step = state.last_healthy.unwrap_or(0);
                let factor = r.lr_factor;
                self.print(format!(
                    "{what}; rolling back to the last checkpoint with learning rate x{factor}"
                ));
                Action::Rollback {
                    before_step,
                    lr_factor: factor,
                }
            }
        }
    }
}
