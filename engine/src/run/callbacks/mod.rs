//! Callbacks decide, the runner acts: each callback sees the moment it fires at and
//! returns an [`Action`]; only the runner touches the device, files and processes.
//!
//! Each callback is one file of `crate::callbacks`; this module holds what they share
//! (the memory saved in checkpoints, the progress bar) and hands a trigger to each.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use ops::train::NamedTensor;
use serde::{Deserialize, Serialize};

use crate::callbacks::{EarlyStop, MonitorState};
use crate::extend::{Decision, ErasedCallback, Event};
use crate::plan::{CallbackId, Plan, Watched};
use crate::spec::{EvalMetric, Trigger};

use super::checkpoint::MetricSums;
use super::{RunError, StepMetricsSummary};

/// What the runner should do after a callback.
pub enum Action {
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
    Exec(crate::run::exec::ExecRequest),
    /// Hand the event to a callback the binary registered, then act on its decision.
    Extension(ExtensionRequest),
    /// Reload the newest checkpoint older than `before_step` and continue with the
    /// learning rate multiplied by `lr_factor`.
    Rollback {
        before_step: u64,
        lr_factor: f64,
    },
}

/// A checkpoint to save.
pub struct CheckpointRequest {
    /// Directory under the run's output directory.
    pub dir: String,
    /// Keep only this many newest checkpoints.
    pub keep_last: Option<u32>,
    /// Keep the best checkpoint: `Some(true)` when larger is better.
    pub keep_best_max: Option<bool>,
    /// The monitored metric.
    pub monitor: Option<Watched>,
}

/// An event for a registered callback; the runner adds the newest checkpoint.
pub struct ExtensionRequest {
    /// The callback stage's id.
    pub name: String,
    pub event: Event,
}

/// A callback at one of its triggers: what its decision reads besides the run's memory.
pub struct Hook<'h> {
    /// The callback stage's id.
    pub name: &'h str,
    /// The metric it watches, resolved by the plan.
    pub watches: Option<Watched>,
    pub at: &'h Moment<'h>,
}

/// When a callback fires.
pub struct Moment<'m> {
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
pub struct ChainMoment<'m> {
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

/// What callbacks remember, saved in checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Memory {
    /// Last epoch's training metrics of each chain.
    pub train: BTreeMap<String, StepMetricsSummary>,
    /// Each eval's latest result.
    pub evals: BTreeMap<String, StepMetricsSummary>,
    /// Early stopping's counters, by stage id.
    pub early: BTreeMap<String, EarlyStop>,
    /// Monitors' states, by stage id.
    #[serde(default)]
    pub monitors: BTreeMap<String, MonitorState>,
    /// How many times each eval has run.
    #[serde(default)]
    pub eval_runs: BTreeMap<String, u64>,
    /// Product of the learning-rate reductions monitors made.
    #[serde(default = "one")]
    pub lr_scale: f64,
    /// What each callback the binary registered saved, by stage id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    extensions: BTreeMap<String, serde_json::Value>,
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
            extensions: BTreeMap::new(),
        }
    }
}

/// The run's callbacks and what they remember between triggers.
pub struct Callbacks<'p> {
    pub(crate) plan: &'p Plan,
    /// The live progress bar (a `log` callback on a terminal).
    pub(crate) progress: Option<ProgressBar>,
    quiet: bool,
    pub(crate) memory: Memory,
    /// Early stopping's best weights, when it restores them.
    pub(crate) best_params: Option<Vec<NamedTensor>>,
    /// The registered callbacks, started, by stage id.
    extensions: BTreeMap<String, Box<dyn ErasedCallback>>,
}

impl<'p> Callbacks<'p> {
    /// The plan's callbacks; the ones the binary registered are started here, so that a
    /// start that fails ends the run before its first step.
    pub fn new(
        plan: &'p Plan,
        quiet: bool,
        run: &crate::extend::RunInfo,
    ) -> Result<Self, RunError> {
        let has_log = plan.callbacks.iter().any(|c| c.spec.shows_progress());
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
        Ok(Callbacks {
            plan,
            progress,
            quiet: quiet || !has_log,
            memory: Memory::default(),
            best_params: None,
            extensions: start_all(plan, run)?,
        })
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
        let mut memory = self.memory.clone();
        memory.extensions = self
            .extensions
            .iter()
            .filter_map(|(id, c)| Some((id.clone(), c.save()?)))
            .collect();
        serde_json::to_value(&memory).unwrap_or_default()
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
        for (id, saved) in std::mem::take(&mut self.memory.extensions) {
            if let Some(callback) = self.extensions.get_mut(&id) {
                callback
                    .restore(saved)
                    .map_err(|why| format!("callback `{id}` did not restore its state: {why}"))?;
            }
        }
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
        let hook = Hook {
            name: &callback.name,
            watches: callback.watches,
            at,
        };
        callback.spec.on_hook(self, &hook)
    }

    /// Hands `event` to the registered callback `name`; its error ends the run.
    pub fn fire_extension(&mut self, name: &str, event: &Event) -> Result<Decision, RunError> {
        let callback = self
            .extensions
            .get_mut(name)
            .ok_or_else(|| RunError::Hook(format!("callback `{name}` was not started")))?;
        callback
            .on_event(event)
            .map_err(|why| RunError::Hook(format!("callback `{name}`: {why}")))
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
    }
}

/// Starts every callback of the plan that keeps its own state (those the binary
/// registered), by stage id, so that a start that fails ends the run before its first step.
fn start_all(
    plan: &Plan,
    run: &crate::extend::RunInfo,
) -> Result<BTreeMap<String, Box<dyn ErasedCallback>>, RunError> {
    let mut started = BTreeMap::new();
    for c in &plan.callbacks {
        let callback = c
            .spec
            .start(run)
            .map_err(|why| RunError::Hook(format!("callback `{}` did not start: {why}", c.name)))?;
        if let Some(callback) = callback {
            started.insert(c.name.clone(), callback);
        }
    }
    Ok(started)
}

/// One of an eval's metrics out of its summary (NaN for one it did not compute, which
/// the check refuses to watch).
pub fn metric_of(m: &StepMetricsSummary, metric: EvalMetric) -> f64 {
    metric.of(m)
}
