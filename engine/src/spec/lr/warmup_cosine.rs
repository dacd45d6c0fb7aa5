//! `warmup_cosine`: a linear warmup, then cosine decay to `min_lr` over the rest.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LrRule;
use super::cosine::cosine;
use crate::spec::Bounds;

/// Linear warmup then cosine decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmupCosineSpec {
    /// Steps of the linear ramp (> 0).
    #[schemars(range(min = 1))]
    pub warmup_steps: u64,
    /// Learning rate reached at the last step.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_lr: f64,
}

/// Linear warmup then cosine decay.
pub struct WarmupCosine;

impl LrRule for WarmupCosine {
    type Spec = WarmupCosineSpec;
    const NAME: &'static str = "warmup_cosine";
    const DESCRIPTION: &'static str =
        "Linear warmup, then cosine decay to `min_lr` over the rest of the run.";

    #[rustfmt::skip]
    fn check(w: &WarmupCosineSpec, r: &mut Bounds) {
        r.rule("warmup_steps", w.warmup_steps > 0, "> 0", w.warmup_steps, "warm up over at least one step");
        r.rule("min_lr", w.min_lr >= 0.0, ">= 0", w.min_lr, "0 decays fully");
    }

    fn lr_at(w: &WarmupCosineSpec, base: f64, step: u64, total: u64) -> f64 {
        if step < w.warmup_steps {
            base * (step + 1) as f64 / w.warmup_steps as f64
        } else {
            cosine(base, w.min_lr, step, w.warmup_steps, total)
        }
    }

    fn warmup_steps(w: &WarmupCosineSpec) -> Option<u64> {
        Some(w.warmup_steps)
    }
}
