//! `exec`: asks the runner to run a command with the event as JSON (the runner adds the
//! newest checkpoint and the output directory).

use super::{Action, Callbacks, Moment};
use crate::spec::ExecCallback;

impl Callbacks<'_> {
    pub(super) fn exec(&self, name: &str, e: &ExecCallback, at: &Moment) -> Action {
        Action::Exec(crate::run::exec::ExecRequest {
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
        })
    }
}
