//! Callbacks decide, the runner acts: each callback sees the moment it fires at and
//! returns an [`Action`]; only the runner touches the device and files.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use ops::train::NamedTensor;
use serde::{Deserialize, Serialize};

use crate::plan::{CallbackId, Plan, Watched};
use crate::spec::{CallbackSpec, EvalMetric, Mode, NanAction, Trigger};

use super::checkpoint::MetricSums;
use super::{RunError, StepMetricsSummary};

/// What the runner should do after a callback.
pub(super) enum Action {
    Continue,
    Stop,
    /// Load these weights (early stopping with `restore_best`).
    RestoreBest(Vec<NamedTensor>),
    /// Read the weights and hand them to [`Callbacks::store_best`].
    SnapshotBest,
    /// Save a checkpoint once the trigger's hooks have all run.
    Checkpoint(CheckpointRequest),
    /// Time every kernel and write the profile.
    Profile,
    /// Write a `steps` metrics record of the training since the previous one.
    RecordSteps,
    /// Run a command (an `exec` callback).
    Exec(super::exec::ExecRequest),
    /// Reload the newest checkpoint older than `before_step` and continue with the
    /// learning rate multiplied by `lr_factor`.
    Rollback {
        before_step: u64,
        lr_factor: f64,
    },
}

/// A checkpoint to save.
pub(super) struct CheckpointRequest {
    /// Directory under the run's output directory.
    pub dir: String,
    /// Keep only this many newest checkpoints.
    pub keep_last: Option<u32>,
    /// Keep the best checkpoint: `Some(true)` when larger is better.
    pub keep_best_max: Option<bool>,
    /// The monitored metric.
    pub monitor: Option<Watched>,
}

/// When a callback fires.
pub(super) struct Moment<'m> {
    pub trigger: Trigger,
    /// The run's step clock (the lead chain's optimizer steps).
    pub step: u64,
    pub epoch: u64,
    pub elapsed: f64,
    /// Training samples of every chain since this process started.
    pub samples: u64,
    /// Each training chain, in plan order.
    pub chains: &'m [ChainMoment<'m>],
}

/// Where one training chain stands when a callback fires.
pub(super) struct ChainMoment<'m> {
    /// The chain's name (its step stage).
    pub name: &'m str,
    /// Its loss stage (`<loss>.loss` names its training loss).
    pub loss: &'m str,
    /// Its optimizer steps.
    pub step: u64,
    /// At an `every_n_steps` trigger: its training sums since that period's last report.
    pub window: MetricSums,
    /// Global gradient norm at the last read of its device sums.
    pub grad_norm: f32,
    /// Learning rate of its last step.
    pub lr: f64,
}

/// Early-stopping counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct EarlyStop {
    best: Option<f64>,
    bad: u32,
    seen: u32,
    /// Number of the last evaluation counted (an eval that has not run again since is
    /// not a new evaluation).
    #[serde(default)]
    last_eval: u64,
}

/// A monitor's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct MonitorState {
    best: Option<f64>,
    bad: u32,
    rollbacks: u32,
    /// Step of the last check at which the condition did not hold.
    last_healthy: Option<u64>,
    /// Number of the last evaluation counted (see [`EarlyStop`]).
    #[serde(default)]
    last_eval: u64,
}

/// What callbacks remember, saved in checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Memory {
    /// Last epoch's training metrics of each chain.
    train: BTreeMap<String, StepMetricsSummary>,
    evals: BTreeMap<String, StepMetricsSummary>,
    early: BTreeMap<String, EarlyStop>,
    #[serde(default)]
    monitors: BTreeMap<String, MonitorState>,
    /// How many times each eval has run.
    #[serde(default)]
    eval_runs: BTreeMap<String, u64>,
    /// Product of the learning-rate reductions monitors made.
    #[serde(default = "one")]
    lr_scale: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            train: BTreeMap::new(),
            evals: BTreeMap::new(),
            early: BTreeMap::new(),
            monitors: BTreeMap::new(),
            eval_runs: BTreeMap::new(),
            lr_scale: 1.0,
        }
    }
}

/// The run's callbacks and what they remember between triggers.
pub(super) struct Callbacks<'p> {
    plan: &'p Plan,
    progress: Option<ProgressBar>,
    quiet: bool,
    memory: Memory,
    best_params: Option<Vec<NamedTensor>>,
}

impl<'p> Callbacks<'p> {
    pub fn new(plan: &'p Plan, quiet: bool) -> Self {
        let has_log = plan
            .callbacks
            .iter()
            .any(|c| matches!(c.spec, CallbackSpec::Log));
        let progress = (has_log && !quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(plan.schedule.total_steps);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps {msg} [{elapsed} < {eta}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Callbacks {
            plan,
            progress,
            quiet: quiet || !has_log,
            memory: Memory::default(),
            best_params: None,
        }
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// The `every_n_steps` periods something fires at.
    pub fn periods(&self) -> Vec<u64> {
        self.plan
            .hook_table
            .iter()
            .filter_map(|(t, hooks)| match t {
                Trigger::EveryNSteps(n) if *n > 0 && !hooks.is_empty() => Some(*n),
                _ => None,
            })
            .collect()
    }

    /// Every-N-steps triggers due after optimizer step `step`, in plan order.
    pub fn every_n_due(&self, step: u64) -> Vec<Trigger> {
        self.plan
            .hook_table
            .iter()
            .filter_map(|(t, _)| match t {
                Trigger::EveryNSteps(n) if *n > 0 && step.is_multiple_of(*n) => Some(*t),
                _ => None,
            })
            .collect()
    }

    /// True when anything fires at this trigger.
    pub fn has(&self, trigger: Trigger) -> bool {
        self.plan
            .hook_table
            .iter()
            .any(|(t, ids)| *t == trigger && !ids.is_empty())
    }

    /// The product of the learning-rate reductions monitors made (applies to every
    /// chain's schedule).
    pub fn lr_scale(&self) -> f64 {
        self.memory.lr_scale
    }

    /// Monitor rollback counters and the learning-rate scale: kept across a rollback,
    /// which otherwise restores the checkpoint's callback memory.
    pub fn rollback_memory(&self) -> (BTreeMap<String, u32>, f64) {
        let counts = self
            .memory
            .monitors
            .iter()
            .map(|(k, v)| (k.clone(), v.rollbacks))
            .collect();
        (counts, self.memory.lr_scale)
    }

    /// Re-applies [`Callbacks::rollback_memory`] after a rollback, scaling the rate.
    pub fn after_rollback(&mut self, counts: BTreeMap<String, u32>, lr_scale: f64) {
        for (id, n) in counts {
            self.memory.monitors.entry(id).or_default().rollbacks = n;
        }
        self.memory.lr_scale = lr_scale;
    }

    pub fn set_train(&mut self, chain: &str, m: StepMetricsSummary) {
        self.memory.train.insert(chain.to_string(), m);
    }

    pub fn set_eval(&mut self, id: &str, m: StepMetricsSummary) {
        self.memory.evals.insert(id.to_string(), m);
        *self.memory.eval_runs.entry(id.to_string()).or_default() += 1;
    }

    pub fn eval_results(&self) -> BTreeMap<String, StepMetricsSummary> {
        self.memory.evals.clone()
    }

    pub fn store_best(&mut self, params: Vec<NamedTensor>) {
        self.best_params = Some(params);
    }

    pub fn best_params(&self) -> Option<Vec<NamedTensor>> {
        self.best_params.clone()
    }

    /// Callback memory for a checkpoint.
    pub fn export_state(&self) -> serde_json::Value {
        serde_json::to_value(&self.memory).unwrap_or_default()
    }

    /// Restores what [`Callbacks::export_state`] saved.
    pub fn import_state(
        &mut self,
        state: &serde_json::Value,
        best: Option<Vec<NamedTensor>>,
    ) -> Result<(), String> {
        self.memory = serde_json::from_value(state.clone())
            .map_err(|e| format!("its callback state does not load: {e}"))?;
        self.best_params = best;
        Ok(())
    }

    /// A callback's message: on the progress bar's terminal, unless quiet.
    pub fn say(&self, line: String) {
        self.print(line);
    }

    fn print(&self, line: String) {
        if self.quiet {
            return;
        }
        match &self.progress {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    /// A callback at its trigger.
    pub fn on_hook(&mut self, id: CallbackId, at: &Moment) -> Result<Action, RunError> {
        let plan = self.plan;
        let callback = &plan.callbacks[id.0];
        let name = callback.name.as_str();
        match &callback.spec {
            CallbackSpec::Log => {
                self.log(at);
                Ok(Action::Continue)
            }
            CallbackSpec::NanGuard(g) => {
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
            CallbackSpec::EarlyStopping(e) => Ok(self.early_stopping(name, e, callback.watches)),
            CallbackSpec::Checkpoint(k) => Ok(Action::Checkpoint(CheckpointRequest {
                dir: k.dir.clone(),
                keep_last: k.keep_last,
                keep_best_max: k.keep_best.as_ref().map(|b| b.mode == Mode::Max),
                monitor: callback.watches,
            })),
            CallbackSpec::Profile => Ok(Action::Profile),
            CallbackSpec::Monitor(m) => Ok(self.monitor(name, m, callback.watches, at)),
            CallbackSpec::Metrics(_) if matches!(at.trigger, Trigger::EveryNSteps(_)) => {
                Ok(Action::RecordSteps)
            }
            CallbackSpec::Metrics(_) | CallbackSpec::LrSchedule(_) => Ok(Action::Continue),
            CallbackSpec::Exec(e) => Ok(Action::Exec(super::exec::ExecRequest {
                name: name.to_string(),
                command: e.command.clone(),
                timeout: std::time::Duration::from_secs_f64(e.timeout_s),
                on_failure: e.on_failure,
                event: serde_json::json!({
                    "callback": name,
                    "trigger": at.trigger.to_string(),
                    "step": at.step,
                    "epoch": at.epoch,
                    "elapsed_s": at.elapsed,
                    "train": self.memory.train,
                    "evals": self.memory.evals,
                }),
            })),
        }
    }

    fn log(&self, at: &Moment) {
        let total = self.plan.schedule.total_steps;
        let several = at.chains.len() > 1;
        if let Trigger::EveryNSteps(_) = at.trigger {
            let rate = at.samples as f64 / at.elapsed.max(1e-9);
            if let Some(bar) = &self.progress {
                let losses: Vec<String> = at
                    .chains
                    .iter()
                    .map(|c| {
                        let w = StepMetricsSummary::from(c.window);
                        if several {
                            format!("{} loss {:.4}", c.name, w.loss)
                        } else {
                            format!("loss {:.4}", w.loss)
                        }
                    })
                    .collect();
                bar.set_position(at.step);
                bar.set_message(format!(
                    "epoch {} {} {rate:.0} samples/s",
                    at.epoch + 1,
                    losses.join(" ")
                ));
                return;
            }
            for c in at.chains {
                let w = StepMetricsSummary::from(c.window);
                let who = if several {
                    format!("  {}", c.name)
                } else {
                    String::new()
                };
                let acc = if self.regression(c.name) {
                    String::new()
                } else {
                    format!("  acc {:>5.1}%", w.accuracy * 100.0)
                };
                self.print(format!(
                    "epoch {:>3}  step {:>6}/{total}{who}  loss {:.4}{acc}  lr {:.2e}  {rate:.0} samples/s",
                    at.epoch + 1, at.step, w.loss, c.lr
                ));
            }
            return;
        }
        let round = matches!(at.trigger, Trigger::RoundEnd | Trigger::EveryNRounds(_));
        if !(round || matches!(at.trigger, Trigger::EpochEnd | Trigger::FitEnd)) {
            return;
        }
        let mut parts = vec![match at.trigger {
            Trigger::FitEnd => format!("done: {} steps in {:.1}s", at.step, at.elapsed),
            _ if round => format!(
                "round {}/{}",
                at.epoch + 1,
                self.plan.federated.as_ref().map_or(0, |f| f.rounds)
            ),
            _ => format!(
                "epoch {}/{}",
                at.epoch + 1,
                self.plan
                    .schedule
                    .epochs
                    .map_or("-".into(), |e| e.to_string())
            ),
        }];
        if at.trigger == Trigger::EpochEnd || round {
            for c in at.chains {
                if let Some(t) = self.memory.train.get(c.name) {
                    let who = if several {
                        format!("{} ", c.name)
                    } else {
                        String::new()
                    };
                    let acc = if self.regression(c.name) {
                        String::new()
                    } else {
                        format!(" acc {:.1}%", t.accuracy * 100.0)
                    };
                    parts.push(format!("{who}train loss {:.4}{acc}", t.loss));
                }
            }
        }
        for e in &self.plan.evals {
            if let Some(m) = self.memory.evals.get(&e.name) {
                let mut part = format!("{} loss {:.4}", e.name, m.loss);
                for metric in &e.metrics {
                    match metric {
                        EvalMetric::Loss | EvalMetric::Confusion => {}
                        EvalMetric::Accuracy => {
                            part.push_str(&format!(" acc {:.2}%", m.accuracy * 100.0));
                        }
                        other => {
                            part.push_str(&format!(
                                " {} {:.4}",
                                other.as_str(),
                                metric_of(m, *other)
                            ));
                        }
                    }
                }
                parts.push(part);
            }
        }
        self.print(parts.join("  "));
    }

    /// Whether chain `name` trains on regression targets (its records have no accuracy).
    fn regression(&self, name: &str) -> bool {
        self.plan
            .chains
            .iter()
            .any(|c| c.name == name && c.regression)
    }

    fn early_stopping(
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

    fn monitor(
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

    pub fn finish(&self) {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
    }
}

/// One of an eval's metrics out of its summary (NaN for one it did not compute, which
/// the check refuses to watch).
pub(super) fn metric_of(m: &StepMetricsSummary, metric: EvalMetric) -> f64 {
    let s = &m.scores;
    let score = |v: Option<f64>| v.unwrap_or(f64::NAN);
    match metric {
        EvalMetric::Loss => m.loss,
        EvalMetric::Accuracy => m.accuracy,
        EvalMetric::Top5 => m.top5,
        EvalMetric::Precision => score(s.precision),
        EvalMetric::Recall => score(s.recall),
        EvalMetric::F1 => score(s.f1),
        EvalMetric::RocAuc => score(s.roc_auc),
        EvalMetric::Mae => score(s.mae),
        EvalMetric::Rmse => score(s.rmse),
        EvalMetric::R2 => score(s.r2),
        EvalMetric::Confusion => f64::NAN,
    }
}
