//! `cosine`: cosine decay from `lr` to `min_lr` over the whole run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LrRule;
use crate::spec::Bounds;

/// Cosine decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CosineSpec {
    /// Learning rate reached at the last step.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_lr: f64,
}

/// Cosine decay.
pub struct Cosine;

impl LrRule for Cosine {
    type Spec = CosineSpec;
    const NAME: &'static str = "cosine";
    const DESCRIPTION: &'static str = "Cosine decay from `lr` to `min_lr` over the whole run.";

    fn check(c: &CosineSpec, r: &mut Bounds) {
        r.rule(
            "min_lr",
            c.min_lr >= 0.0,
            ">= 0",
            c.min_lr,
            "0 decays fully",
        );
    }

    fn lr_at(c: &CosineSpec, base: f64, step: u64, total: u64) -> f64 {
        cosine(base, c.min_lr, step, 0, total)
    }
}

/// Cosine from `base` at step `from` to `min_lr` at step `total`.
pub(super) fn cosine(base: f64, min_lr: f64, step: u64, from: u64, total: u64) -> f64 {
    let span = total.saturating_sub(from).max(1) as f64;
    let t = (step.saturating_sub(from) as f64 / span).min(1.0);
    min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}
