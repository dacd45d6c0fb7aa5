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

/// How the learning rate changes with the optimizer step. Factors multiply the
/// optimizer's `lr`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// The optimizer's `lr` throughout.
    Constant,
    /// Multiply by `gamma` every `every` steps.
    Step(StepDecay),
    /// Cosine decay from `lr` to `min_lr` over the whole run.
    Cosine(Cosine),
    /// Linear ramp from 0 to `lr` over `warmup_steps`, then constant.
    LinearWarmup(Warmup),
    /// Linear warmup, then cosine decay to `min_lr` over the rest of the run.
    WarmupCosine(WarmupCosine),
}
tagged_enum!(LrSchedule, "kind", {
    "constant" => Constant,
    "step" => Step(StepDecay),
    "cosine" => Cosine(Cosine),
    "linear_warmup" => LinearWarmup(Warmup),
    "warmup_cosine" => WarmupCosine(WarmupCosine),
});

/// Step decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDecay {
    /// Decay period in optimizer steps (> 0).
    pub every: u64,
    /// Multiplicative factor applied each period, in (0, 1].
    pub gamma: f64,
}

/// Cosine decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cosine {
    /// Learning rate reached at the last step.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_lr: f64,
}

/// Linear warmup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    /// Steps of the linear ramp (> 0).
    pub warmup_steps: u64,
}

/// Linear warmup then cosine decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmupCosine {
    /// Steps of the linear ramp (> 0).
    pub warmup_steps: u64,
    /// Learning rate reached at the last step.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_lr: f64,
}

impl LrSchedule {
    /// Learning rate at optimizer step `step` (0-based) of `total` steps.
    pub fn lr_at(&self, base: f64, step: u64, total: u64) -> f64 {
        let cosine = |from: u64, min_lr: f64| {
            let span = total.saturating_sub(from).max(1) as f64;
            let t = (step.saturating_sub(from) as f64 / span).min(1.0);
            min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        };
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Step(s) => base * s.gamma.powi((step / s.every.max(1)) as i32),
            LrSchedule::Cosine(c) => cosine(0, c.min_lr),
            LrSchedule::LinearWarmup(w) => {
                base * ((step + 1) as f64 / w.warmup_steps.max(1) as f64).min(1.0)
            }
            LrSchedule::WarmupCosine(w) if step < w.warmup_steps => {
                base * (step + 1) as f64 / w.warmup_steps as f64
            }
            LrSchedule::WarmupCosine(w) => cosine(w.warmup_steps, w.min_lr),
        }
    }

    /// The step at which warmup ends, if the schedule has one.
    pub fn warmup_steps(&self) -> Option<u64> {
        match self {
            LrSchedule::LinearWarmup(w) => Some(w.warmup_steps),
            LrSchedule::WarmupCosine(w) => Some(w.warmup_steps),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_cosine_ramps_then_decays() {
        let s = LrSchedule::WarmupCosine(WarmupCosine {
            warmup_steps: 10,
            min_lr: 0.0,
        });
        assert!((s.lr_at(1.0, 0, 100) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(1.0, 9, 100) - 1.0).abs() < 1e-12);
        assert!((s.lr_at(1.0, 10, 100) - 1.0).abs() < 1e-12);
        assert!(s.lr_at(1.0, 55, 100) < 0.51 && s.lr_at(1.0, 55, 100) > 0.49);
        assert!(s.lr_at(1.0, 100, 100).abs() < 1e-12);
    }

    #[test]
    fn step_decay_multiplies_per_period() {
        let s = LrSchedule::Step(StepDecay {
            every: 10,
            gamma: 0.5,
        });
        assert_eq!(s.lr_at(1.0, 9, 100), 1.0);
        assert_eq!(s.lr_at(1.0, 10, 100), 0.5);
        assert_eq!(s.lr_at(1.0, 25, 100), 0.25);
    }
}
