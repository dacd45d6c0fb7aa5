//! `early_stopping`: stops (or restores the best weights) when an eval metric stops
//! improving for `patience` evaluations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Action, CallbackCheck, CallbackRule, Callbacks, Hook, Mode};
use crate::plan::Watched;
use crate::run::RunError;
use crate::run::callbacks::metric_of;
use crate::spec::{Bounds, PortRef};

/// Early stopping settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingSpec {
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

/// Early-stopping counters (kept in checkpoints).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EarlyStop {
    best: Option<f64>,
    bad: u32,
    seen: u32,
    /// Number of the last evaluation counted (an eval that has not run again since is
    /// not a new evaluation).
    #[serde(default)]
    last_eval: u64,
}

/// Early stopping.
pub struct EarlyStopping;

impl CallbackRule for EarlyStopping {
    type Spec = EarlyStoppingSpec;
    const NAME: &'static str = "early_stopping";
    const DESCRIPTION: &'static str = "Stop when a monitored metric stops improving.";

    #[rustfmt::skip]
    fn check(e: &EarlyStoppingSpec, r: &mut Bounds) {
        r.rule("patience", e.patience > 0, "> 0", e.patience, "wait at least one evaluation");
    }

    fn check_pipeline(e: &EarlyStoppingSpec, cx: &mut CallbackCheck) {
        cx.eval_metric(&e.monitor, &["monitor"]);
    }

    fn watches(e: &EarlyStoppingSpec) -> Option<&PortRef> {
        Some(&e.monitor)
    }

    fn on_hook(e: &EarlyStoppingSpec, cb: &mut Callbacks, hook: &Hook) -> Result<Action, RunError> {
        let Some(Watched::Eval { eval, metric }) = hook.watches else {
            return Ok(Action::Continue);
        };
        let stage = cb.plan.evals[eval.0].name.as_str();
        let Some(m) = cb.memory.evals.get(stage) else {
            return Ok(Action::Continue);
        };
        let value = metric_of(m, metric);
        let runs = cb.memory.eval_runs.get(stage).copied().unwrap_or(0);
        let state = cb.memory.early.entry(hook.name.to_string()).or_default();
        if state.last_eval == runs {
            return Ok(Action::Continue); // no new evaluation since the last check
        }
        state.last_eval = runs;
        state.seen += 1;
        if state.seen <= e.warmup {
            return Ok(Action::Continue);
        }
        let improved = state.best.is_none_or(|b| match e.mode {
            Mode::Min => value < b - e.min_delta,
            Mode::Max => value > b + e.min_delta,
        });
        if improved {
            state.best = Some(value);
            state.bad = 0;
            return Ok(if e.restore_best {
                Action::SnapshotBest
            } else {
                Action::Continue
            });
        }
        state.bad += 1;
        if state.bad < e.patience {
            return Ok(Action::Continue);
        }
        let best = state.best.unwrap_or(f64::NAN);
        cb.say(format!(
            "early stopping `{}`: {} did not improve for {} evaluations (best {best:.4})",
            hook.name, e.monitor, e.patience
        ));
        Ok(match (e.restore_best, cb.best_params.take()) {
            (true, Some(params)) => Action::RestoreBest(params),
            _ => Action::Stop,
        })
    }
}
