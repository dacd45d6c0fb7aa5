//! Callbacks decide, the executor acts: each callback sees events and returns an
//! [`Action`]; only the executor touches the device and files.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use ops::train::NamedTensor;

use crate::plan::{Plan, fire_order};
use crate::spec::{CallbackSpec, LrSchedule, Mode, NanAction, Pipeline, Stage, Trigger};

use super::{RunError, StepMetricsSummary};

/// What the executor should do after a callback.
pub(super) enum Action {
    Continue,
    Stop,
    /// Load these weights (early stopping with `restore_best`).
    RestoreBest(Vec<NamedTensor>),
    /// Read the weights and hand them to [`Callbacks::store_best`].
    SnapshotBest,
}

/// A step-window event between triggers.
pub(super) enum Event {
    Steps { step: u64, epoch: u64, train: StepMetricsSummary, grad_norm: f32, lr: f32, elapsed: f64, samples: u64 },
}

struct EarlyStop {
    best: Option<f64>,
    bad: u32,
    seen: u32,
}

/// The run's callbacks and what they remember between triggers.
pub(super) struct Callbacks<'a> {
    pipeline: &'a Pipeline,
    order: Vec<(Trigger, Vec<String>)>,
    every: Vec<u64>,
    schedule: Option<LrSchedule>,
    progress: Option<ProgressBar>,
    quiet: bool,
    total_steps: u64,
    epochs: Option<u32>,
    train: Option<StepMetricsSummary>,
    evals: BTreeMap<String, StepMetricsSummary>,
    early: BTreeMap<String, EarlyStop>,
    best_params: Option<Vec<NamedTensor>>,
    last_samples_per_s: f64,
}

/// The metrics file name, when a metrics callback exists.
pub(super) fn metrics_file(p: &Pipeline) -> Option<String> {
    p.stages.iter().find_map(|s| match s {
        Stage::Callback(c) => match &c.callback {
            CallbackSpec::Metrics(m) => Some(m.file.clone()),
            _ => None,
        },
        _ => None,
    })
}

impl<'a> Callbacks<'a> {
    pub fn new(pipeline: &'a Pipeline, plan: &Plan, quiet: bool) -> Self {
        let order: Vec<(Trigger, Vec<String>)> = fire_order(pipeline)
            .into_iter()
            .map(|(t, members)| (t, members.into_iter().map(|i| pipeline.stages[i].id().0.clone()).collect()))
            .collect();
        let every = order.iter().filter_map(|(t, _)| if let Trigger::EveryNSteps(n) = t { Some(*n) } else { None }).collect();
        let schedule = pipeline.stages.iter().find_map(|s| match s {
            Stage::Callback(c) => match &c.callback {
                CallbackSpec::LrSchedule(l) => Some(l.schedule.clone()),
                _ => None,
            },
            _ => None,
        });
        let has_log = pipeline.stages.iter().any(|s| matches!(s, Stage::Callback(c) if matches!(c.callback, CallbackSpec::Log)));
        let progress = (has_log && !quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(plan.schedule.total_steps);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} [{elapsed} < {eta}]")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Callbacks {
            pipeline,
            order,
            every,
            schedule,
            progress,
            quiet: quiet || !has_log,
            total_steps: plan.schedule.total_steps,
            epochs: plan.schedule.epochs,
            train: None,
            evals: BTreeMap::new(),
            early: BTreeMap::new(),
            best_params: None,
            last_samples_per_s: 0.0,
        }
    }

    /// Stage ids fired at a trigger, in plan order.
    pub fn order(&self, trigger: Trigger) -> Vec<String> {
        self.order.iter().filter(|(t, _)| *t == trigger).flat_map(|(_, ids)| ids.clone()).collect()
    }

    /// Learning rate for optimizer step `step`.
    pub fn lr(&self, step: u64, total: u64, base: f64) -> f64 {
        self.schedule.as_ref().map_or(base, |s| s.lr_at(base, step, total))
    }

    /// True when an every-N-steps trigger fires after `step` (the executor then reads
    /// the device-side training metrics once).
    pub fn wants_step_read(&self, step: u64) -> bool {
        self.every.iter().any(|n| *n > 0 && step % n == 0)
    }

    pub fn set_train(&mut self, m: StepMetricsSummary) {
        self.train = Some(m);
    }

    pub fn set_eval(&mut self, id: &str, m: StepMetricsSummary) {
        self.evals.insert(id.to_string(), m);
    }

    pub fn store_best(&mut self, params: Vec<NamedTensor>) {
        self.best_params = Some(params);
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

    pub fn on_event(&mut self, event: Event) -> Result<bool, RunError> {
        let Event::Steps { step, epoch, train, grad_norm, lr, elapsed, samples } = event;
        self.last_samples_per_s = samples as f64 / elapsed.max(1e-9);
        if let Some(stop) = self.guard(step, train.loss, grad_norm)? {
            return Ok(stop);
        }
        let line = format!(
            "epoch {:>3}  step {:>6}/{}  loss {:.4}  acc {:>5.1}%  lr {:.2e}  {:.0} samples/s",
            epoch + 1, step, self.total_steps, train.loss, train.accuracy * 100.0, lr, self.last_samples_per_s
        );
        match &self.progress {
            Some(bar) => {
                bar.set_position(step);
                bar.set_message(format!("loss {:.4} {:.0} samples/s", train.loss, self.last_samples_per_s));
            }
            None => self.print(line),
        }
        Ok(false)
    }

    /// `nan_guard`: a non-finite loss or gradient norm stops the run, naming the step.
    fn guard(&self, step: u64, loss: f64, grad_norm: f32) -> Result<Option<bool>, RunError> {
        for s in &self.pipeline.stages {
            let Stage::Callback(c) = s else { continue };
            let CallbackSpec::NanGuard(g) = &c.callback else { continue };
            if loss.is_finite() && grad_norm.is_finite() {
                return Ok(None);
            }
            let what = if loss.is_finite() { format!("gradient norm {grad_norm}") } else { format!("loss {loss}") };
            let message = format!("nan_guard `{}`: non-finite {what} at step {step} (stage `loss`/`step`)", c.id);
            return match g.action {
                NanAction::Stop => Err(RunError::NonFinite(message)),
                NanAction::SkipStep => {
                    self.print(format!("{message}; continuing (skip_step is checked at read-back points only)"));
                    Ok(Some(false))
                }
            };
        }
        Ok(None)
    }

    /// A callback at its trigger.
    pub fn on_hook(&mut self, id: &str, trigger: Trigger, step: u64, epoch: u64, elapsed: f64) -> Result<Action, RunError> {
        let Some(Stage::Callback(c)) = self.pipeline.stages.iter().find(|s| s.id().0 == id) else { return Ok(Action::Continue) };
        match &c.callback {
            CallbackSpec::Log => {
                if matches!(trigger, Trigger::EpochEnd | Trigger::FitEnd) {
                    let mut parts = vec![match trigger {
                        Trigger::FitEnd => format!("done: {step} steps in {elapsed:.1}s"),
                        _ => format!("epoch {}/{}", epoch + 1, self.epochs.map_or("-".into(), |e| e.to_string())),
                    }];
                    if let (Some(t), Trigger::EpochEnd) = (self.train, trigger) {
                        parts.push(format!("train loss {:.4} acc {:.1}%", t.loss, t.accuracy * 100.0));
                    }
                    for (name, m) in &self.evals {
                        parts.push(format!("{name} loss {:.4} acc {:.2}%", m.loss, m.accuracy * 100.0));
                    }
                    self.print(parts.join("  "));
                }
                Ok(Action::Continue)
            }
            CallbackSpec::EarlyStopping(e) => {
                let Some((stage, metric)) = e.monitor.split() else { return Ok(Action::Continue) };
                let Some(m) = self.evals.get(stage) else { return Ok(Action::Continue) };
                let value = match metric {
                    "loss" => m.loss,
                    "accuracy" => m.accuracy,
                    _ => m.top5,
                };
                let state = self.early.entry(id.to_string()).or_insert(EarlyStop { best: None, bad: 0, seen: 0 });
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
                    return Ok(if e.restore_best { Action::SnapshotBest } else { Action::Continue });
                }
                state.bad += 1;
                if state.bad < e.patience {
                    return Ok(Action::Continue);
                }
                let best = state.best.unwrap_or(f64::NAN);
                self.print(format!("early stopping `{id}`: {} did not improve for {} evaluations (best {best:.4})", e.monitor, e.patience));
                Ok(match (e.restore_best, self.best_params.take()) {
                    (true, Some(params)) => Action::RestoreBest(params),
                    _ => Action::Stop,
                })
            }
            CallbackSpec::NanGuard(_) => {
                let loss = self.train.map_or(0.0, |t| t.loss);
                Ok(match self.guard(step, loss, 0.0)? {
                    Some(true) => Action::Stop,
                    _ => Action::Continue,
                })
            }
            CallbackSpec::Metrics(_) | CallbackSpec::LrSchedule(_) | CallbackSpec::Checkpoint(_) | CallbackSpec::Profile => Ok(Action::Continue),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
    }
}
