//! Callbacks the binary registered (`engine::extend`): started with the run, handed the
//! same event an `exec` command reads, and their decision passed to the runner.

use std::collections::BTreeMap;

use super::{Action, Callbacks, Moment};
use crate::extend::{Decision, ErasedCallback, Event, RunInfo};
use crate::plan::Plan;
use crate::run::RunError;
use crate::spec::CallbackSpec;

/// An event for a registered callback; the runner adds the newest checkpoint.
pub(in crate::run) struct ExtensionRequest {
    /// The callback stage's id.
    pub name: String,
    pub event: Event,
}

/// Starts every registered callback of the plan, by stage id.
pub(super) fn start_all(
    plan: &Plan,
    run: &RunInfo,
) -> Result<BTreeMap<String, Box<dyn ErasedCallback>>, RunError> {
    let mut started = BTreeMap::new();
    for c in &plan.callbacks {
        let CallbackSpec::Extension(e) = &c.spec else {
            continue;
        };
        let callback = crate::extend::start_callback(e, run)
            .map_err(|why| RunError::Hook(format!("callback `{}` did not start: {why}", c.name)))?;
        started.insert(c.name.clone(), callback);
    }
    Ok(started)
}

impl Callbacks<'_> {
    pub(super) fn extension(&self, name: &str, at: &Moment) -> Action {
        Action::Extension(ExtensionRequest {
            name: name.to_string(),
            event: Event {
                callback: name.to_string(),
                trigger: at.trigger.to_string(),
                step: at.step,
                epoch: at.epoch,
                elapsed_s: at.elapsed,
                train: self.memory.train.clone(),
                evals: self.memory.evals.clone(),
                checkpoint: None,
                out_dir: String::new(),
            },
        })
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
}
