//! `early_stopping`: stops (or restores the best weights) when an eval metric stops
//! improving for `patience` evaluations.

use super::{Action, Callbacks, Watched, metric_of};
use crate::spec::Mode;

impl Callbacks<'_> {
    pub(super) fn early_stopping(
        &mut self,
        id: &str,
        e: &crate::spec::EarlyStopping,
        watches: Option<Watched>,
    ) -> Action {
        let Some(Watched::Eval { eval, metric }) = watches else {
            return Action::Continue;
        };
        let stage = self.plan.evals[eval.0].name.as_str();
        let Some(m) = self.memory.evals.get(stage) else {
            return Action::Continue;
        };
        let value = metric_of(m, metric);
        let runs = self.memory.eval_runs.get(stage).copied().unwrap_or(0);
        let state = self.memory.early.entry(id.to_string()).or_default();
        if state.last_eval == runs {
            return Action::Continue; // no new evaluation since the last check
        }
        state.last_eval = runs;
        state.seen += 1;
        if state.seen <= e.warmup {
            return Action::Continue;
        }
        let improved = state.best.is_none_or(|b| match e.mode {
            Mode::Min => value < b - e.min_delta,
            Mode::Max => value > b + e.min_delta,
        });
        if improved {
            state.best = Some(value);
            state.bad = 0;
            return if e.restore_best {
                Action::SnapshotBest
            } else {
                Action::Continue
            };
        }
        state.bad += 1;
        if state.bad < e.patience {
            return Action::Continue;
        }
        let best = state.best.unwrap_or(f64::NAN);
        self.print(format!(
            "early stopping `{id}`: {} did not improve for {} evaluations (best {best:.4})",
            e.monitor, e.patience
        ));
        match (e.restore_best, self.best_params.take()) {
            (true, Some(params)) => Action::RestoreBest(params),
            _ => Action::Stop,
        }
    }
}
