//! Callbacks the binary registered (`engine::extend`): their registry rows, and the
//! adapter that starts them with the run and hands each trigger's event to them; the
//! runner acts on their decision.

use std::sync::Arc;

use serde_json::Value;

use super::{Action, CallbackEntry, CallbackSpec, Callbacks, ErasedRule, Hook};
use crate::callbacks::{CallbackCheck, HookCommand, Output};
use crate::extend::{ErasedCallback, Event, RegisteredCallback, RunInfo};
use crate::run::RunError;
use crate::run::callbacks::ExtensionRequest;
use crate::spec::{Bounds, LrSchedule, PortRef, StageId, Trigger};

/// The registry row of a registered callback.
pub(crate) fn extension_row(c: &RegisteredCallback) -> CallbackEntry {
    CallbackEntry {
        name: c.name,
        description: c.description,
        federated: true,
        schema: c.schema,
        parse,
    }
}

fn parse(name: &'static str, settings: Value) -> Result<CallbackSpec, String> {
    let entry = crate::extend::registry()
        .callback(name)
        .ok_or_else(|| format!("no callback `{name}` is registered"))?;
    (entry.check)(settings.clone())?;
    Ok(CallbackSpec::from_erased(Arc::new(Registered {
        name: entry.name,
        settings,
        default_triggers: entry.default_triggers,
        start: entry.start,
    })))
}

/// A registered callback with its settings as written (checked when parsed).
struct Registered {
    name: &'static str,
    settings: Value,
    default_triggers: fn() -> Vec<Trigger>,
    start: crate::extend::StartFn,
}

impl ErasedRule for Registered {
    fn name(&self) -> &'static str {
        self.name
    }
    fn settings(&self) -> Value {
        self.settings.clone()
    }
    fn federated(&self) -> bool {
        true
    }
    fn shows_progress(&self) -> bool {
        false
    }
    fn default_triggers(&self) -> Vec<Trigger> {
        (self.default_triggers)()
    }
    fn once_per(&self) -> Option<String> {
        None
    }
    // Its own check ran when it was parsed.
    fn check(&self, _: &mut Bounds) {}
    fn check_pipeline(&self, _: &mut CallbackCheck) {}
    fn watches(&self) -> Option<&PortRef> {
        None
    }
    fn schedule(&self) -> Option<(&StageId, &LrSchedule)> {
        None
    }
    fn output(&self) -> Option<Output<'_>> {
        None
    }
    fn command(&self) -> Option<HookCommand<'_>> {
        None
    }
    fn start(&self, run: &RunInfo) -> Result<Option<Box<dyn ErasedCallback>>, String> {
        (self.start)(&self.settings, run).map(Some)
    }
    fn on_hook(&self, cb: &mut Callbacks, hook: &Hook) -> Result<Action, RunError> {
        let (name, at) = (hook.name, hook.at);
        Ok(Action::Extension(ExtensionRequest {
            name: name.to_string(),
            event: Event {
                callback: name.to_string(),
                trigger: at.trigger.to_string(),
                step: at.step,
                epoch: at.epoch,
                elapsed_s: at.elapsed,
                train: cb.memory.train.clone(),
                evals: cb.memory.evals.clone(),
                checkpoint: None,
                out_dir: String::new(),
            },
        }))
    }
}
