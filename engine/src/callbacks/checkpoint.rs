//! `checkpoint`: asks the runner to save a checkpoint once the trigger's hooks have run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Action, CallbackCheck, CallbackRule, Callbacks, Hook, Mode, Output, OutputRole};
use crate::run::RunError;
use crate::run::callbacks::CheckpointRequest;
use crate::spec::{Bounds, PortRef};

/// Checkpoint settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Directory inside the run's output directory.
    #[serde(default = "default_checkpoint_dir")]
    pub dir: String,
    /// Keep only the newest N checkpoints (the best is kept as well).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<u32>,
    /// Also keep the checkpoint with the best value of a metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_best: Option<Monitor>,
}

/// The checkpoint directory of a run without a `checkpoint` callback.
pub fn default_checkpoint_dir() -> String {
    "checkpoints".into()
}

/// A metric to watch and which direction is better.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    /// An eval stage's metric, e.g. `val.accuracy` or `val.loss`.
    pub monitor: PortRef,
    /// Whether smaller (`min`) or larger (`max`) is better.
    pub mode: Mode,
}

/// Checkpoints.
pub struct Checkpoint;

impl CallbackRule for Checkpoint {
    type Spec = CheckpointSpec;
    const NAME: &'static str = "checkpoint";
    const DESCRIPTION: &'static str = "Save weights and the full training state.";

    fn once_per(_: &CheckpointSpec) -> Option<String> {
        Some(String::new())
    }

    #[rustfmt::skip]
    fn check(k: &CheckpointSpec, r: &mut Bounds) {
        if let Some(n) = k.keep_last {
            r.rule("keep_last", n > 0, "> 0", n, "keep at least one checkpoint");
        }
    }

    fn check_pipeline(k: &CheckpointSpec, cx: &mut CallbackCheck) {
        if let Some(best) = &k.keep_best {
            cx.eval_metric(&best.monitor, &["keep_best", "monitor"]);
        }
    }

    fn watches(k: &CheckpointSpec) -> Option<&PortRef> {
        k.keep_best.as_ref().map(|b| &b.monitor)
    }

    fn output(k: &CheckpointSpec) -> Option<Output<'_>> {
        Some(Output {
            key: "dir",
            path: &k.dir,
            role: OutputRole::Checkpoints,
        })
    }

    fn on_hook(k: &CheckpointSpec, _: &mut Callbacks, hook: &Hook) -> Result<Action, RunError> {
        Ok(Action::Checkpoint(CheckpointRequest {
            dir: k.dir.clone(),
            keep_last: k.keep_last,
            keep_best_max: k.keep_best.as_ref().map(|b| b.mode == Mode::Max),
            monitor: hook.watches,
        }))
    }
}
