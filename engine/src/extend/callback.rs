//! Callbacks from a user's crate: a settings struct, a start, and a decision per event.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::run::StepMetricsSummary;
use crate::spec::Trigger;
use crate::spec::tagged::{PATH_MARK, body};

/// A callback a binary adds with
/// [`EngineBuilder::register_callback`](super::EngineBuilder::register_callback).
///
/// Written in a pipeline as a `callback` stage with `type: <NAME>` and the keys of
/// [`Callback::Spec`] beside it; `on:` picks the triggers as for any callback.
pub trait Callback: Send + Sized + 'static {
    /// Its settings, as written next to `type:` (a struct with
    /// `#[serde(deny_unknown_fields)]`, so that a misspelt key is reported where it is).
    type Spec: DeserializeOwned + JsonSchema;
    /// The `type:` name (snake_case, not a built-in callback's).
    const NAME: &'static str;
    /// One sentence for `engine schema` (hover and completion in editors).
    const DESCRIPTION: &'static str;

    /// Triggers when the stage gives no `on:`.
    fn default_triggers() -> Vec<Trigger> {
        vec![Trigger::EpochEnd]
    }

    /// Checks settings beyond their types (at `engine validate`, located at the field).
    fn check(_spec: &Self::Spec) -> Result<(), SpecError> {
        Ok(())
    }

    /// Called once, before the callback's first event.
    fn start(spec: Self::Spec, run: &RunInfo) -> Result<Self, String>;

    /// Called at each of its triggers; an error ends the run with the message.
    fn on_event(&mut self, event: &Event) -> Result<Decision, String>;

    /// Its state for a checkpoint (saved with the run's other callback memory), so that a
    /// resumed run continues exactly; `None` keeps nothing.
    fn save(&self) -> Option<serde_json::Value> {
        None
    }

    /// Takes back what [`Callback::save`] returned, after [`Callback::start`], when the run
    /// resumes from a checkpoint or a monitor rolls back to one. An error ends the run.
    fn restore(&mut self, _state: serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// A setting that fails [`Callback::check`] (or a loss's or source's check).
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    /// The key in the settings, e.g. `"columns"` or `"columns[1]"`; empty for the whole.
    pub field: String,
    /// What is wrong, e.g. "`every` must be at least 1, found 0".
    pub message: String,
}

impl SpecError {
    /// An error at `field` of the settings.
    pub fn at(field: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Where a run is, for [`Callback::start`].
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run's output directory: write files here (nowhere else).
    pub out_dir: PathBuf,
    /// The directory of the pipeline file (relative paths in settings start here).
    pub pipeline_dir: PathBuf,
    /// The run continues from a checkpoint (`--resume`): append to what an earlier start
    /// wrote rather than replace it.
    pub resumed: bool,
}

/// The moment a callback fires: the same fields an `exec` callback reads on its stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// The callback stage's id.
    pub callback: String,
    /// The trigger, e.g. `epoch_end` or `every 100 steps`.
    pub trigger: String,
    /// Optimizer steps so far (the lead chain's).
    pub step: u64,
    /// Epochs completed (rounds, in a federated run).
    pub epoch: u64,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Each training chain's last epoch (or round), by chain name.
    pub train: BTreeMap<String, StepMetricsSummary>,
    /// Each eval stage's latest result, by stage id.
    pub evals: BTreeMap<String, StepMetricsSummary>,
    /// The newest checkpoint directory, if one was saved.
    pub checkpoint: Option<String>,
    /// The run's output directory.
    pub out_dir: String,
}

/// What the runner does after [`Callback::on_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go on training.
    Continue,
    /// End the run after this trigger's callbacks (like early stopping).
    Stop,
}

/// A registered callback with its type erased: what the parser, the schema and the
/// runner need of it.
pub(crate) struct RegisteredCallback {
    pub name: &'static str,
    pub description: &'static str,
    /// Its settings' JSON Schema, inline (its `$defs` go to the generator's).
    pub schema: fn(&mut schemars::SchemaGenerator) -> Schema,
    pub default_triggers: fn() -> Vec<Trigger>,
    /// Deserialises and checks settings; errors carry the field path as the parser
    /// expects ([`PATH_MARK`]).
    pub check: fn(serde_json::Value) -> Result<(), String>,
    pub start: StartFn,
}

/// Deserialises settings and starts the callback.
pub(crate) type StartFn =
    fn(&serde_json::Value, &RunInfo) -> Result<Box<dyn ErasedCallback>, String>;

/// A started callback.
pub(crate) trait ErasedCallback: Send {
    fn on_event(&mut self, event: &Event) -> Result<Decision, String>;
    fn save(&self) -> Option<serde_json::Value>;
    fn restore(&mut self, state: serde_json::Value) -> Result<(), String>;
}

struct Started<C: Callback>(C);

impl<C: Callback> ErasedCallback for Started<C> {
    fn on_event(&mut self, event: &Event) -> Result<Decision, String> {
        self.0.on_event(event)
    }
    fn save(&self) -> Option<serde_json::Value> {
        self.0.save()
    }
    fn restore(&mut self, state: serde_json::Value) -> Result<(), String> {
        self.0.restore(state)
    }
}

impl RegisteredCallback {
    pub fn of<C: Callback>() -> RegisteredCallback {
        RegisteredCallback {
            name: C::NAME,
            description: C::DESCRIPTION,
            schema: C::Spec::json_schema,
            default_triggers: C::default_triggers,
            check: |value| checked_spec::<C::Spec>(value, C::check).map(|_| ()),
            start: |value, run| {
                let spec = checked_spec::<C::Spec>(value.clone(), C::check)?;
                Ok(Box::new(Started(C::start(spec, run)?)))
            },
        }
    }
}

/// Settings deserialised and checked, with an error in the parser's marked form.
pub(crate) fn checked_spec<T: DeserializeOwned>(
    value: serde_json::Value,
    check: fn(&T) -> Result<(), SpecError>,
) -> Result<T, String> {
    let spec: T = body::<T, serde_json::Error>(value).map_err(|e| e.to_string())?;
    check(&spec).map_err(|e| format!("{PATH_MARK}{}{PATH_MARK}{}", e.field, e.message))?;
    Ok(spec)
}
