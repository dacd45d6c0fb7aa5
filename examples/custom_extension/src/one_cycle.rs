//! `one_cycle`: the 1cycle policy (Smith & Topin 2018) as PyTorch's `OneCycleLR` with
//! cosine annealing: from `lr / div_factor` up to `lr` over the first `pct_start` of the
//! run, then down to `lr / (div_factor * final_div_factor)` at its last step.

use engine::extend::{Bounds, LrRule};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Settings of `kind: one_cycle` in an `lr_schedule` callback.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OneCycleSpec {
    /// Share of the run spent increasing the rate, in (0, 1).
    #[serde(default = "pct_start")]
    pub pct_start: f64,
    /// The first rate is the optimizer's `lr` divided by this.
    #[serde(default = "div_factor")]
    pub div_factor: f64,
    /// The last rate is the first divided by this.
    #[serde(default = "final_div_factor")]
    pub final_div_factor: f64,
}

fn pct_start() -> f64 {
    0.3
}

fn div_factor() -> f64 {
    25.0
}

fn final_div_factor() -> f64 {
    1e4
}

/// The 1cycle schedule.
pub struct OneCycle;

/// Cosine from `start` (at `pct` 0) to `end` (at `pct` 1).
fn anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
}

impl LrRule for OneCycle {
    type Spec = OneCycleSpec;
    const NAME: &'static str = "one_cycle";
    const DESCRIPTION: &'static str = "1cycle (PyTorch's OneCycleLR, cosine): up from lr / div_factor to lr, then down to lr / (div_factor * final_div_factor).";

    fn check(s: &OneCycleSpec, r: &mut Bounds) {
        let pct = s.pct_start;
        r.rule(
            "pct_start",
            pct > 0.0 && pct < 1.0,
            "in (0, 1)",
            pct,
            "0.3 is PyTorch's default",
        );
        r.rule(
            "div_factor",
            s.div_factor >= 1.0,
            ">= 1",
            s.div_factor,
            "25 is PyTorch's default",
        );
        let f = s.final_div_factor;
        r.rule(
            "final_div_factor",
            f >= 1.0,
            ">= 1",
            f,
            "1e4 is PyTorch's default",
        );
    }

    fn lr_at(s: &OneCycleSpec, base: f64, step: u64, total: u64) -> f64 {
        let initial = base / s.div_factor;
        let min = initial / s.final_div_factor;
        // PyTorch's phase ends: the peak at step pct_start * total - 1, the end at total - 1.
        let up = s.pct_start * total as f64 - 1.0;
        let end = total as f64 - 1.0;
        let step = step as f64;
        if step <= up {
            anneal(initial, base, step / up.max(1.0))
        } else {
            anneal(base, min, ((step - up) / (end - up).max(1.0)).min(1.0))
        }
    }
}
