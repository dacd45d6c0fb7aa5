//! `exec`: asks the runner to run a command with the event as JSON on its stdin (the
//! runner adds the newest checkpoint and the output directory). Runs only with
//! `engine run --allow-exec`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Action, CallbackRule, Callbacks, Hook, HookCommand};
use crate::run::RunError;
use crate::run::exec::ExecRequest;
use crate::spec::Bounds;

/// A command run at the callback's triggers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// The program and its arguments, run without a shell in the pipeline's directory,
    /// e.g. `[python3, hooks/notify.py]`. It reads the event as one JSON object on stdin.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Seconds it may run before it is killed and counts as failed (> 0).
    #[serde(default = "default_exec_timeout")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub timeout_s: f64,
    /// What a failure (exit status other than 0, timeout, cannot start) does.
    #[serde(default)]
    pub on_failure: ExecFailure,
}

fn default_exec_timeout() -> f64 {
    60.0
}

/// What a failed `exec` command does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecFailure {
    /// Print a warning and go on.
    #[default]
    Warn,
    /// End the run with an error.
    Stop,
}

/// A command run at triggers.
pub struct Exec;

impl CallbackRule for Exec {
    type Spec = ExecSpec;
    const NAME: &'static str = "exec";
    const DESCRIPTION: &'static str = "Run a command with the event (trigger, step, epoch, latest metrics, checkpoint) as\nJSON on its stdin; `engine run` needs `--allow-exec`.";

    #[rustfmt::skip]
    fn check(e: &ExecSpec, r: &mut Bounds) {
        r.rule("timeout_s", e.timeout_s > 0.0 && e.timeout_s.is_finite(), "> 0", e.timeout_s, "give the command the seconds it needs, e.g. 60");
        r.rule("command", !e.command.is_empty(), "a program and its arguments", "[]", "e.g. `command: [python3, hooks/notify.py]`");
    }

    fn command(e: &ExecSpec) -> Option<HookCommand<'_>> {
        Some(HookCommand {
            argv: &e.command,
            timeout_s: e.timeout_s,
            on_failure: e.on_failure,
        })
    }

    fn on_hook(e: &ExecSpec, cb: &mut Callbacks, hook: &Hook) -> Result<Action, RunError> {
        let (name, at) = (hook.name, hook.at);
        Ok(Action::Exec(ExecRequest {
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
                "train": cb.memory.train,
                "evals": cb.memory.evals,
            }),
        }))
    }
}
