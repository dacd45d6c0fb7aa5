//! `monitor`: watches a metric for a condition (non-finite, divergence, plateau) and
//! stops, reduces the learning rate or rolls back.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Action, CallbackCheck, CallbackRule, Callbacks, Hook, Mode};
use crate::diag::Diagnostic;
use crate::plan::Watched;
use crate::run::callbacks::metric_of;
use crate::run::{RunError, StepMetricsSummary};
use crate::spec::tagged::tagged_enum;
use crate::spec::{Bounds, PortRef, Trigger};

/// A monitor: a condition on a metric and what to do when it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
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

/// A monitor's state (kept in checkpoints).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MonitorState {
    best: Option<f64>,
    bad: u32,
    /// Rollbacks so far (kept across a rollback, which restores the rest).
    pub(crate) rollbacks: u32,
    /// Step of the last check at which the condition did not hold.
    last_healthy: Option<u64>,
    /// Number of the last evaluation counted (see `EarlyStop`).
    #[serde(default)]
    last_eval: u64,
}

/// A watch on a metric.
pub struct MonitorCallback;

impl CallbackRule for MonitorCallback {
    type Spec = MonitorSpec;
    const NAME: &'static str = "monitor";
    const DESCRIPTION: &'static str =
        "Watch a metric for a condition (non-finite, divergence, plateau) and act on it.";
    const FEDERATED: bool = false;

    #[rustfmt::skip]
    fn check(m: &MonitorSpec, r: &mut Bounds) {
        let see = "see the monitor section of docs/pipeline.md";
        match &m.condition {
            MonitorCondition::Divergence(d) => { r.rule("condition.factor", d.factor > 1.0, "> 1", d.factor, see); }
            MonitorCondition::Plateau(p) => { r.rule("condition.patience", p.patience > 0, "> 0", p.patience, see); }
            MonitorCondition::NonFinite => {}
        }
        match &m.action {
            MonitorAction::ReduceLr(a) => { r.rule("action.factor", a.factor > 0.0 && a.factor < 1.0, "in (0, 1)", a.factor, see); }
            MonitorAction::Rollback(a) => { r.rule("action.lr_factor", a.lr_factor > 0.0 && a.lr_factor <= 1.0, "in (0, 1]", a.lr_factor, see); }
            MonitorAction::Stop => {}
        }
    }

    fn check_pipeline(m: &MonitorSpec, cx: &mut CallbackCheck) {
        if !cx.is_train_loss(&m.metric) {
            cx.eval_metric(&m.metric, &["metric"]);
        }
        if matches!(m.action, MonitorAction::Rollback(_)) && !cx.saves_checkpoints() {
            cx.report(
                &["action"],
                "nothing to roll back to",
                Diagnostic::new(
                    "rollback-without-checkpoints",
                    "a monitor rolls back to the last checkpoint, but no checkpoint callback saves any",
                )
                .hint("add a `checkpoint` callback, e.g. `{id: save, kind: callback, callback: {type: checkpoint}}`"),
            );
        }
    }

    fn watches(m: &MonitorSpec) -> Option<&PortRef> {
        Some(&m.metric)
    }

    fn on_hook(m: &MonitorSpec, cb: &mut Callbacks, hook: &Hook) -> Result<Action, RunError> {
        Ok(decide(m, cb, hook))
    }
}

/// The current value of a watched metric: an eval's last, or a chain's training loss
/// (over the period at `every_n_steps`, else its last epoch's). `None` when there is no
/// value yet, or at `every_n_steps` when the chain trained no sample since the last
/// report (a chain whose data ran out waits for the others; its old value is not new).
fn metric_value(cb: &Callbacks, watched: Watched, hook: &Hook) -> Option<f64> {
    let at = hook.at;
    match watched {
        Watched::Eval { eval, metric } => {
            let m = cb.memory.evals.get(&cb.plan.evals[eval.0].name)?;
            Some(metric_of(m, metric))
        }
        Watched::TrainLoss(chain) => {
            let c = at.chains.get(chain.0)?;
            match at.trigger {
                Trigger::EveryNSteps(_) => {
                    (c.window.samples > 0).then(|| StepMetricsSummary::from(c.window).loss)
                }
                _ => Some(cb.memory.train.get(c.name)?.loss),
            }
        }
    }
}

fn decide(m: &MonitorSpec, cb: &mut Callbacks, hook: &Hook) -> Action {
    let (id, at) = (hook.name, hook.at);
    let Some(watched) = hook.watches else {
        return Action::Continue;
    };
    let Some(value) = metric_value(cb, watched, hook) else {
        return Action::Continue;
    };
    let better = |a: f64, b: f64| match m.mode {
        Mode::Min => a < b,
        Mode::Max => a > b,
    };
    let eval_runs = match watched {
        Watched::Eval { eval, .. } => cb
            .memory
            .eval_runs
            .get(&cb.plan.evals[eval.0].name)
            .copied(),
        Watched::TrainLoss(_) => None,
    };
    let state = cb.memory.monitors.entry(id.to_string()).or_default();
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
            cb.say(format!("{what}; stopping"));
            Action::Stop
        }
        MonitorAction::ReduceLr(r) => {
            cb.memory.lr_scale *= r.factor;
            let scale = cb.memory.lr_scale;
            cb.say(format!(
                "{what}; learning rate x{} (now x{scale:.4} of the schedule)",
                r.factor
            ));
            Action::Continue
        }
        MonitorAction::Rollback(r) if state.rollbacks >= r.max_rollbacks => {
            let n = state.rollbacks;
            cb.say(format!("{what}; {n} rollbacks already, stopping"));
            Action::Stop
        }
        MonitorAction::Rollback(r) => {
            state.rollbacks += 1;
            // The weights saved at the last healthy check were already trained on the
            // window that went wrong; return to a checkpoint before it.
            let before_step = state.last_healthy.unwrap_or(0);
            let factor = r.lr_factor;
            cb.say(format!(
                "{what}; rolling back to the last checkpoint with learning rate x{factor}"
            ));
            Action::Rollback {
                before_step,
                lr_factor: factor,
            }
        }
    }
}
