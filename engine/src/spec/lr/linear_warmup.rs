//! `linear_warmup`: a linear ramp from 0 to `lr` over `warmup_steps`, then constant.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LrRule;
use crate::spec::Bounds;

/// Linear warmup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmupSpec {
    /// Steps of the linear ramp (> 0).
    #[schemars(range(min = 1))]
    pub warmup_steps: u64,
}

/// Linear warmup.
pub struct LinearWarmup;

impl LrRule for LinearWarmup {
    type Spec = WarmupSpec;
    const NAME: &'static str = "linear_warmup";
    const DESCRIPTION: &'static str =
        "Linear ramp from 0 to `lr` over `warmup_steps`, then constant.";

    #[rustfmt::skip]
    fn check(w: &WarmupSpec, r: &mut Bounds) {
        r.rule("warmup_steps", w.warmup_steps > 0, "> 0", w.warmup_steps, "warm up over at least one step");
    }

    fn lr_at(w: &WarmupSpec, base: f64, step: u64, _total: u64) -> f64 {
        base * ((step + 1) as f64 / w.warmup_steps.max(1) as f64).min(1.0)
    }

    fn warmup_steps(w: &WarmupSpec) -> Option<u64> {
        Some(w.warmup_steps)
    }
}
