//! Callbacks: one trait ([`CallbackRule`]), one file per callback, and one registry
//! ([`CALLBACKS`], plus those a binary registers through `engine::extend`).
//!
//! A callback's file owns everything about it: its settings (serde + schemars), their
//! range rules and the checks against the rest of the pipeline, what the plan takes from
//! it (a watched metric, a schedule, an output it writes, a command it runs) and its
//! decision at each trigger, returned as an [`Action`] for the runner to carry out. The
//! parser, the schema, the did-you-mean lists, the checks, the lowering and the runner all
//! read the registry; adding a callback is its file and one line in the table.

mod checkpoint;
mod early_stopping;
mod exec;
mod extension;
mod log;
mod lr_schedule;
mod metrics;
mod monitor;
mod nan_guard;
mod profile;

use std::fmt;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use crate::check::CallbackCheck;
use crate::run::RunError;
pub use crate::run::callbacks::{Action, Callbacks, Hook};
use crate::spec::tagged::{body, registry_member};
use crate::spec::{Bounds, LrSchedule, PortRef, StageId, Trigger};

pub use checkpoint::{Checkpoint, CheckpointSpec, Monitor, default_checkpoint_dir};
pub use early_stopping::{EarlyStop, EarlyStopping, EarlyStoppingSpec};
pub use exec::{Exec, ExecFailure, ExecSpec};
pub(crate) use extension::extension_row;
pub use log::Log;
pub use lr_schedule::{LrScheduleCallback, LrScheduleSpec};
pub use metrics::{Metrics, MetricsSpec, default_metrics_file};
pub use monitor::{
    Divergence, MonitorAction, MonitorCallback, MonitorCondition, MonitorSpec, MonitorState,
    Plateau, ReduceLr, Rollback,
};
pub use nan_guard::{NanAction, NanGuard, NanGuardSpec};
pub use profile::Profile;

/// A callback as a pipeline writes it: a `callback` stage with `type: <NAME>` and the keys
/// of [`CallbackRule::Spec`] beside it.
pub trait CallbackRule: 'static {
    /// Its settings (with `#[serde(deny_unknown_fields)]`; doc comments become the
    /// editor's hover text).
    type Spec: DeserializeOwned + Serialize + JsonSchema + fmt::Debug + Send + Sync;
    /// The `type:` name.
    const NAME: &'static str;
    /// One sentence for the schema and the docs.
    const DESCRIPTION: &'static str;
    /// Whether it runs in a federated pipeline (where it fires at round ends).
    const FEDERATED: bool = true;
    /// Whether it shows the run's progress; a run without such a callback is quiet.
    const SHOWS_PROGRESS: bool = false;

    /// Triggers when the stage gives no `on:`.
    fn default_triggers(_spec: &Self::Spec) -> Vec<Trigger> {
        vec![Trigger::EpochEnd]
    }

    /// `Some(scope)` when a pipeline may hold only one of it per scope: `""` for one per
    /// pipeline, or e.g. " for step stage `train`".
    fn once_per(_spec: &Self::Spec) -> Option<String> {
        None
    }

    /// Range rules of the settings, checked by `engine validate`.
    fn check(_spec: &Self::Spec, _bounds: &mut Bounds) {}

    /// Checks against the rest of the pipeline (referenced stages and metrics, triggers).
    fn check_pipeline(_spec: &Self::Spec, _cx: &mut CallbackCheck) {}

    /// The metric it watches (`<eval>.<metric>` or `<loss stage>.loss`); the plan resolves
    /// it to what computes it and hands it back in [`Hook::watches`].
    fn watches(_spec: &Self::Spec) -> Option<&PortRef> {
        None
    }

    /// The learning-rate schedule it sets for a step stage.
    fn schedule(_spec: &Self::Spec) -> Option<(&StageId, &LrSchedule)> {
        None
    }

    /// A path it writes in the run's output directory (confined to it by the checks).
    fn output(_spec: &Self::Spec) -> Option<Output<'_>> {
        None
    }

    /// The command it runs, which needs `engine run --allow-exec`.
    fn command(_spec: &Self::Spec) -> Option<HookCommand<'_>> {
        None
    }

    /// Its decision at one of its triggers.
    fn on_hook(
        spec: &Self::Spec,
        callbacks: &mut Callbacks,
        hook: &Hook,
    ) -> Result<Action, RunError>;
}

/// A path a callback writes under the run's output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output<'a> {
    /// The settings key that holds it (`file`, `dir`).
    pub key: &'static str,
    /// The path as written.
    pub path: &'a str,
    /// What the run keeps there.
    pub role: OutputRole,
}

/// What a callback's [`Output`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputRole {
    /// The metrics records (the report is drawn from them).
    Metrics,
    /// Checkpoints (what `--resume` and rollbacks load).
    Checkpoints,
    /// Anything else.
    Other,
}

/// A command a callback runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HookCommand<'a> {
    /// The program and its arguments.
    pub argv: &'a [String],
    /// Seconds it may run.
    pub timeout_s: f64,
    /// What a failure does.
    pub on_failure: ExecFailure,
}

/// A registry row: a callback with its type erased.
pub struct CallbackEntry {
    pub name: &'static str,
    pub description: &'static str,
    /// Whether it runs in a federated pipeline.
    pub federated: bool,
    /// Its settings' schema, inline.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// Its settings, deserialised and checked (errors located as the parser expects); the
    /// row's name is passed so that one parser can serve every registered callback.
    pub parse: fn(&'static str, Value) -> Result<CallbackSpec, String>,
}

impl CallbackEntry {
    /// The row of callback `R`.
    pub const fn of<R: CallbackRule>() -> CallbackEntry {
        CallbackEntry {
            name: R::NAME,
            description: R::DESCRIPTION,
            federated: R::FEDERATED,
            schema: schema_of::<R>,
            parse: parse_of::<R>,
        }
    }
}

fn schema_of<R: CallbackRule>(generator: &mut SchemaGenerator) -> Schema {
    R::Spec::json_schema(generator)
}

fn parse_of<R: CallbackRule>(_name: &'static str, value: Value) -> Result<CallbackSpec, String> {
    let spec = body::<R::Spec, serde_json::Error>(value).map_err(|e| e.to_string())?;
    Ok(CallbackSpec(Arc::new(Rule::<R>(spec))))
}

/// The built-in callbacks, in the order the docs and the schema list them.
pub static CALLBACKS: &[CallbackEntry] = &[
    CallbackEntry::of::<Log>(),
    CallbackEntry::of::<Metrics>(),
    CallbackEntry::of::<Checkpoint>(),
    CallbackEntry::of::<EarlyStopping>(),
    CallbackEntry::of::<LrScheduleCallback>(),
    CallbackEntry::of::<NanGuard>(),
    CallbackEntry::of::<Profile>(),
    CallbackEntry::of::<MonitorCallback>(),
    CallbackEntry::of::<Exec>(),
];

/// What a callback does: one of the registered callbacks with its settings.
#[derive(Clone)]
pub struct CallbackSpec(Arc<dyn ErasedRule>);

/// A callback with its settings, its type erased (also implemented by the adapter of a
/// callback the binary registered).
pub(crate) trait ErasedRule: Send + Sync {
    fn name(&self) -> &'static str;
    fn settings(&self) -> Value;
    fn federated(&self) -> bool;
    fn shows_progress(&self) -> bool;
    fn default_triggers(&self) -> Vec<Trigger>;
    fn once_per(&self) -> Option<String>;
    fn check(&self, bounds: &mut Bounds);
    fn check_pipeline(&self, cx: &mut CallbackCheck);
    fn watches(&self) -> Option<&PortRef>;
    fn schedule(&self) -> Option<(&StageId, &LrSchedule)>;
    fn output(&self) -> Option<Output<'_>>;
    fn command(&self) -> Option<HookCommand<'_>>;
    /// A callback with its own state outside the runner's memory is started here.
    fn start(
        &self,
        _run: &crate::extend::RunInfo,
    ) -> Result<Option<Box<dyn crate::extend::ErasedCallback>>, String> {
        Ok(None)
    }
    fn on_hook(&self, callbacks: &mut Callbacks, hook: &Hook) -> Result<Action, RunError>;
}

struct Rule<R: CallbackRule>(R::Spec);

impl<R: CallbackRule> ErasedRule for Rule<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }
    fn settings(&self) -> Value {
        // Serialising a settings struct to a JSON value cannot fail.
        serde_json::to_value(&self.0).unwrap_or_default()
    }
    fn federated(&self) -> bool {
        R::FEDERATED
    }
    fn shows_progress(&self) -> bool {
        R::SHOWS_PROGRESS
    }
    fn default_triggers(&self) -> Vec<Trigger> {
        R::default_triggers(&self.0)
    }
    fn once_per(&self) -> Option<String> {
        R::once_per(&self.0)
    }
    fn check(&self, bounds: &mut Bounds) {
        R::check(&self.0, bounds)
    }
    fn check_pipeline(&self, cx: &mut CallbackCheck) {
        R::check_pipeline(&self.0, cx)
    }
    fn watches(&self) -> Option<&PortRef> {
        R::watches(&self.0)
    }
    fn schedule(&self) -> Option<(&StageId, &LrSchedule)> {
        R::schedule(&self.0)
    }
    fn output(&self) -> Option<Output<'_>> {
        R::output(&self.0)
    }
    fn command(&self) -> Option<HookCommand<'_>> {
        R::command(&self.0)
    }
    fn on_hook(&self, callbacks: &mut Callbacks, hook: &Hook) -> Result<Action, RunError> {
        R::on_hook(&self.0, callbacks, hook)
    }
}

impl CallbackSpec {
    pub(crate) fn from_erased(rule: Arc<dyn ErasedRule>) -> CallbackSpec {
        CallbackSpec(rule)
    }

    /// Its `type:` name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Its settings as written (defaults filled in).
    pub fn settings(&self) -> Value {
        self.0.settings()
    }

    /// Whether it runs in a federated pipeline.
    pub fn federated(&self) -> bool {
        self.0.federated()
    }

    /// Whether it shows the run's progress.
    pub fn shows_progress(&self) -> bool {
        self.0.shows_progress()
    }

    /// Triggers used when a callback stage gives no `on:`.
    pub fn default_triggers(&self) -> Vec<Trigger> {
        self.0.default_triggers()
    }

    /// When it fires in a federated pipeline when `on:` is omitted: where an ordinary run
    /// fires at epoch ends, a federated one fires at round ends.
    pub fn federated_default_triggers(&self) -> Vec<Trigger> {
        self.default_triggers()
            .into_iter()
            .filter_map(|t| match t {
                Trigger::EpochEnd => Some(Trigger::RoundEnd),
                Trigger::EveryNSteps(_) => None,
                other => Some(other),
            })
            .collect()
    }

    /// See [`CallbackRule::once_per`].
    pub fn once_per(&self) -> Option<String> {
        self.0.once_per()
    }

    /// Its range rules.
    pub fn bounds(&self) -> Bounds {
        let mut bounds = Bounds::default();
        self.0.check(&mut bounds);
        bounds
    }

    /// Its checks against the rest of the pipeline.
    pub fn check_pipeline(&self, cx: &mut CallbackCheck) {
        self.0.check_pipeline(cx)
    }

    /// The metric it watches.
    pub fn watches(&self) -> Option<&PortRef> {
        self.0.watches()
    }

    /// The schedule it sets for a step stage.
    pub fn schedule(&self) -> Option<(&StageId, &LrSchedule)> {
        self.0.schedule()
    }

    /// A path it writes in the output directory.
    pub fn output(&self) -> Option<Output<'_>> {
        self.0.output()
    }

    /// The command it runs.
    pub fn command(&self) -> Option<HookCommand<'_>> {
        self.0.command()
    }

    /// Starts its own state, for a callback the binary registered.
    pub(crate) fn start(
        &self,
        run: &crate::extend::RunInfo,
    ) -> Result<Option<Box<dyn crate::extend::ErasedCallback>>, String> {
        self.0.start(run)
    }

    /// Its decision at one of its triggers.
    pub(crate) fn on_hook(
        &self,
        callbacks: &mut Callbacks,
        hook: &Hook,
    ) -> Result<Action, RunError> {
        self.0.on_hook(callbacks, hook)
    }

    /// Every callback: the built-in ones, then those the binary registered.
    pub fn entries() -> impl Iterator<Item = &'static CallbackEntry> {
        CALLBACKS
            .iter()
            .chain(crate::extend::registry().callback_rows.iter())
    }

    /// Every name a pipeline can write (did-you-mean lists and messages).
    pub fn names() -> &'static [&'static str] {
        crate::extend::registry().callback_names
    }
}

registry_member!(
    CallbackSpec,
    "type",
    "What a callback does. The `type` key selects it.",
    named
);

/// Direction of improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Smaller is better (losses).
    Min,
    /// Larger is better (accuracies).
    Max,
}

/// Settings of a callback that has none.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(json: Value) -> CallbackSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn round_trips_through_json_with_defaults_filled_in() {
        let c = callback(serde_json::json!({"type": "checkpoint", "keep_last": 2}));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "checkpoint", "dir": "checkpoints", "keep_last": 2})
        );
        assert_eq!(callback(json), c);
        assert_eq!(c.output().map(|o| o.role), Some(OutputRole::Checkpoints));
        let log = callback(serde_json::json!({"type": "log"}));
        assert!(log.shows_progress());
        assert_eq!(
            log.default_triggers(),
            vec![Trigger::EveryNSteps(50), Trigger::EpochEnd]
        );
    }

    #[test]
    fn the_registry_has_unique_names() {
        let names: Vec<&str> = CALLBACKS.iter().map(|e| e.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert_eq!(&CallbackSpec::names()[..names.len()], names.as_slice());
    }
}
