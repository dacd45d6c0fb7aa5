//! `lr_schedule`: sets the learning rate of a step stage every optimizer step (the plan
//! folds the schedule into the step; nothing fires at run time).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Action, CallbackCheck, CallbackRule, Callbacks, Hook};
use crate::run::RunError;
use crate::spec::{Bounds, LrSchedule, StageId, Trigger};

/// Learning rate schedule settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LrScheduleSpec {
    /// The `step` stage whose learning rate is scheduled.
    pub stage: StageId,
    /// The schedule.
    pub schedule: LrSchedule,
}

/// A learning-rate schedule.
pub struct LrScheduleCallback;

impl CallbackRule for LrScheduleCallback {
    type Spec = LrScheduleSpec;
    const NAME: &'static str = "lr_schedule";
    const DESCRIPTION: &'static str =
        "Set the learning rate of a `step` stage every optimizer step.";
    const FEDERATED: bool = false;

    fn default_triggers(_: &LrScheduleSpec) -> Vec<Trigger> {
        vec![Trigger::BatchStart]
    }

    fn once_per(l: &LrScheduleSpec) -> Option<String> {
        Some(format!(" for step stage `{}`", l.stage))
    }

    fn check(l: &LrScheduleSpec, r: &mut Bounds) {
        r.nest("schedule", l.schedule.bounds());
    }

    fn check_pipeline(l: &LrScheduleSpec, cx: &mut CallbackCheck) {
        if cx.explicit_on().is_some() {
            cx.ignored_on(
                "the schedule sets the learning rate of every micro-batch of its step stage; `on:` is not read",
                "remove `on:`",
            );
        }
        cx.step_stage(&l.stage, &["stage"]);
    }

    fn schedule(l: &LrScheduleSpec) -> Option<(&StageId, &LrSchedule)> {
        Some((&l.stage, &l.schedule))
    }

    fn on_hook(_: &LrScheduleSpec, _: &mut Callbacks, _: &Hook) -> Result<Action, RunError> {
        Ok(Action::Continue)
    }
}
