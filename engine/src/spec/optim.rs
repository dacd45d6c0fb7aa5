use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::tagged::tagged_enum;

/// An optimizer and its hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerSpec {
    /// Stochastic gradient descent with optional (Nesterov) momentum.
    Sgd(Sgd),
    /// Adam with L2 weight decay added to the gradient.
    Adam(Adam),
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    Adamw(Adam),
}
tagged_enum!(OptimizerSpec, "kind", {
    "sgd" => Sgd(Sgd),
    "adam" => Adam(Adam),
    "adamw" => Adamw(Adam),
});

impl OptimizerSpec {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerSpec::Sgd(s) => s.lr,
            OptimizerSpec::Adam(a) | OptimizerSpec::Adamw(a) => a.lr,
        }
    }

    /// Optimizer state tensors kept per parameter tensor.
    pub fn state_per_param(&self) -> usize {
        match self {
            OptimizerSpec::Sgd(s) if s.momentum == 0.0 => 0,
            OptimizerSpec::Sgd(_) => 1,
            OptimizerSpec::Adam(_) | OptimizerSpec::Adamw(_) => 2,
        }
    }
}

/// SGD hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sgd {
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

/// Adam / AdamW hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Adam {
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
