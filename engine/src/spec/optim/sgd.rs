//! `sgd`: stochastic gradient descent with optional (Nesterov) momentum and L2 weight
//! decay (PyTorch's semantics; the kernel is `ops/src/optim/sgd.rs`).

use ops::train::OptimizerKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::OptimizerRule;
use crate::spec::Bounds;

/// SGD hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SgdSpec {
    /// Learning rate (> 0).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub lr: f64,
    /// Momentum factor in [0, 1).
    #[serde(default)]
    #[schemars(range(min = 0), extend("exclusiveMaximum" = 1))]
    pub momentum: f64,
    /// Use Nesterov momentum (needs momentum > 0).
    #[serde(default)]
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub weight_decay: f64,
}

/// SGD.
pub struct Sgd;

impl OptimizerRule for Sgd {
    type Spec = SgdSpec;
    const NAME: &'static str = "sgd";
    const DESCRIPTION: &'static str =
        "Stochastic gradient descent with optional (Nesterov) momentum.";

    fn lr(s: &SgdSpec) -> f64 {
        s.lr
    }

    #[rustfmt::skip]
    fn check(s: &SgdSpec, r: &mut Bounds) {
        r.rule("momentum", (0.0..1.0).contains(&s.momentum), "in [0, 1)", s.momentum, "0.9 is common");
        r.rule("nesterov", !s.nesterov || s.momentum > 0.0, "only with momentum > 0", "nesterov with momentum 0", "set `momentum`, e.g. 0.9");
        r.rule("weight_decay", s.weight_decay >= 0.0, ">= 0", s.weight_decay, "e.g. 5e-4");
    }

    fn lower(s: &SgdSpec) -> OptimizerKind {
        OptimizerKind::sgd(s.momentum as f32, s.nesterov, s.weight_decay as f32)
    }
}
