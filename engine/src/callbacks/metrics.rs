//! `metrics`: names the metrics file and adds `steps` records at `every_n_steps`
//! triggers (train and eval records are written whatever the callbacks).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Action, CallbackCheck, CallbackRule, Callbacks, Hook, Output, OutputRole};
use crate::run::RunError;
use crate::spec::Trigger;

/// Metrics file settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsSpec {
    /// File name inside the run's output directory.
    #[serde(default = "default_metrics_file")]
    pub file: String,
}

/// The metrics file of a run without a `metrics` callback.
pub fn default_metrics_file() -> String {
    "metrics.jsonl".into()
}

/// Metrics records.
pub struct Metrics;

impl CallbackRule for Metrics {
    type Spec = MetricsSpec;
    const NAME: &'static str = "metrics";
    const DESCRIPTION: &'static str = "Append loss and metrics per split to `<out>/metrics.jsonl`.";

    fn once_per(_: &MetricsSpec) -> Option<String> {
        Some(String::new())
    }

    fn check_pipeline(_: &MetricsSpec, cx: &mut CallbackCheck) {
        let reads = |t: &Trigger| {
            matches!(
                t,
                Trigger::EpochEnd
                    | Trigger::FitEnd
                    | Trigger::EveryNSteps(_)
                    | Trigger::RoundEnd
                    | Trigger::EveryNRounds(_)
            )
        };
        if cx.explicit_on().is_some_and(|on| !on.iter().all(reads)) {
            cx.ignored_on(
                "train records are written at every epoch end and eval records at every evaluation (at `fit_end` too); `every_n_steps` triggers add steps records; other triggers mean nothing here",
                "keep only `epoch_end`, `fit_end` and `every_n_steps` triggers in `on:`",
            );
        }
    }

    fn output(m: &MetricsSpec) -> Option<Output<'_>> {
        Some(Output {
            key: "file",
            path: &m.file,
            role: OutputRole::Metrics,
        })
    }

    fn on_hook(_: &MetricsSpec, _: &mut Callbacks, hook: &Hook) -> Result<Action, RunError> {
        Ok(match hook.at.trigger {
            Trigger::EveryNSteps(_) => Action::RecordSteps,
            _ => Action::Continue,
        })
    }
}
