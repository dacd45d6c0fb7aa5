//! `profile`: asks the runner to time every stage and kernel and write the profile.

use super::{Action, CallbackRule, Callbacks, Hook, NoSettings};
use crate::run::RunError;
use crate::spec::Trigger;

/// Stage and kernel timings.
pub struct Profile;

impl CallbackRule for Profile {
    type Spec = NoSettings;
    const NAME: &'static str = "profile";
    const DESCRIPTION: &'static str = "Time each stage and kernel; writes `<out>/profile.json`.";
    const FEDERATED: bool = false;

    fn default_triggers(_: &NoSettings) -> Vec<Trigger> {
        vec![Trigger::FitEnd]
    }

    fn once_per(_: &NoSettings) -> Option<String> {
        Some(String::new())
    }

    fn on_hook(_: &NoSettings, _: &mut Callbacks, _: &Hook) -> Result<Action, RunError> {
        Ok(Action::Profile)
    }
}
