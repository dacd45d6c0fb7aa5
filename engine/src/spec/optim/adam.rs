//! `adam` and `adamw`: Adam (Kingma & Ba) with L2 weight decay, and with decoupled weight
//! decay (Loshchilov & Hutter). One settings struct and one kernel
//! (`ops/src/optim/adam.rs`) serve both.

use ops::train::OptimizerKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::OptimizerRule;
use crate::spec::Bounds;

/// Adam / AdamW hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdamSpec {
    /// Learning rate (> 0).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub lr: f64,
    /// Decay rates of the first and second moment estimates, each in [0, 1).
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// Term added to the denominator for numerical stability.
    #[serde(default = "default_eps")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub eps: f64,
    /// Weight decay: L2 for `adam`, decoupled for `adamw`.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub weight_decay: f64,
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}

fn default_eps() -> f64 {
    1e-8
}

#[rustfmt::skip]
fn check(a: &AdamSpec, r: &mut Bounds) {
    for (k, b) in a.betas.iter().enumerate() {
        r.rule(&format!("betas.{k}"), (0.0..1.0).contains(b), "in [0, 1)", b, "defaults are [0.9, 0.999]");
    }
    r.rule("eps", a.eps > 0.0, "> 0", a.eps, "1e-8 is the default");
    r.rule("weight_decay", a.weight_decay >= 0.0, ">= 0", a.weight_decay, "0.01 is common for adamw");
}

/// Adam (`DECOUPLED = false`: L2 weight decay) and AdamW (`true`: decoupled).
pub struct AdamRule<const DECOUPLED: bool>;

/// Adam with L2 weight decay.
pub type Adam = AdamRule<false>;
/// Adam with decoupled weight decay.
pub type AdamW = AdamRule<true>;

impl<const DECOUPLED: bool> OptimizerRule for AdamRule<DECOUPLED> {
    type Spec = AdamSpec;
    const NAME: &'static str = if DECOUPLED { "adamw" } else { "adam" };
    const DESCRIPTION: &'static str = if DECOUPLED {
        "Adam with decoupled weight decay (Loshchilov & Hutter)."
    } else {
        "Adam with L2 weight decay added to the gradient."
    };

    fn lr(a: &AdamSpec) -> f64 {
        a.lr
    }

    fn check(a: &AdamSpec, r: &mut Bounds) {
        check(a, r)
    }

    fn lower(a: &AdamSpec) -> OptimizerKind {
        let [b1, b2] = a.betas;
        let (b1, b2, eps, wd) = (b1 as f32, b2 as f32, a.eps as f32, a.weight_decay as f32);
        if DECOUPLED {
            OptimizerKind::adamw(b1, b2, eps, wd)
        } else {
            OptimizerKind::adam(b1, b2, eps, wd)
        }
    }
}
