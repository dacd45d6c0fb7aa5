//! `step`: multiply the rate by `gamma` every `every` steps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LrRule;
use crate::spec::Bounds;

/// Step decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Decay period in optimizer steps (> 0).
    #[schemars(range(min = 1))]
    pub every: u64,
    /// Multiplicative factor applied each period, in (0, 1].
    #[schemars(range(max = 1.0))]
    pub gamma: f64,
}

/// Step decay.
pub struct StepDecay;

impl LrRule for StepDecay {
    type Spec = StepSpec;
    const NAME: &'static str = "step";
    const DESCRIPTION: &'static str = "Multiply by `gamma` every `every` steps.";

    #[rustfmt::skip]
    fn check(d: &StepSpec, r: &mut Bounds) {
        r.rule("every", d.every > 0, "> 0", d.every, "decay every N optimizer steps");
        r.rule("gamma", d.gamma > 0.0 && d.gamma <= 1.0, "in (0, 1]", d.gamma, "0.1 or 0.5 are common");
    }

    fn lr_at(d: &StepSpec, base: f64, step: u64, _total: u64) -> f64 {
        base * d.gamma.powi((step / d.every.max(1)) as i32)
    }
}
