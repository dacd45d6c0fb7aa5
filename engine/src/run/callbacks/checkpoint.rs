//! `checkpoint`: asks the runner to save a checkpoint once the trigger's hooks have run.

use super::{Action, CheckpointRequest, Watched};
use crate::spec::{CheckpointCallback, Mode};

pub(super) fn request(k: &CheckpointCallback, watches: Option<Watched>) -> Action {
    Action::Checkpoint(CheckpointRequest {
        dir: k.dir.clone(),
        keep_last: k.keep_last,
        keep_best_max: k.keep_best.as_ref().map(|b| b.mode == Mode::Max),
        monitor: watches,
    })
}
