//! `lion`: the Lion optimizer (Chen et al. 2023, "Symbolic Discovery of Optimization
//! Algorithms"): the sign of an interpolation of momentum and gradient, with decoupled
//! weight decay. One momentum buffer per parameter; a WGSL kernel and its CPU twin.

use engine::extend::{Bounds, OptimizerRule};
use ops::gpu::{Dispatch, GpuError, KernelBuilder};
use ops::optim::{Optimizer, PackedUpdate};
use ops::train::OptimizerKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const WGSL: &str = include_str!("lion.wgsl");

/// Settings of `optimizer: {kind: lion, ...}`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LionSpec {
    /// Learning rate (> 0); 3-10x smaller than AdamW's.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub lr: f64,
    /// Interpolation of momentum and gradient for the update, and the momentum's decay.
    #[serde(default = "betas")]
    pub betas: [f64; 2],
    /// Decoupled weight decay (`p *= 1 - lr * weight_decay`).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub weight_decay: f64,
}

fn betas() -> [f64; 2] {
    [0.9, 0.99]
}

/// The device optimizer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LionUpdate {
    pub beta1: f32,
    pub beta2: f32,
    pub weight_decay: f32,
}

impl Optimizer for LionUpdate {
    fn kind(&self) -> &'static str {
        "lion"
    }

    fn state_names(&self) -> &'static [&'static str] {
        &["exp_avg"]
    }

    fn flops_per_param(&self) -> u64 {
        10
    }

    fn step_cpu(&self, params: &mut [f32], grads: &[f32], state: &mut [f32], lr: f32, _t: u64) {
        for ((p, &g), m) in params.iter_mut().zip(grads).zip(state.iter_mut()) {
            *p *= 1.0 - lr * self.weight_decay;
            let update = self.beta1 * *m + (1.0 - self.beta1) * g;
            let sign = if update > 0.0 {
                1.0
            } else if update < 0.0 {
                -1.0
            } else {
                0.0
            };
            *p -= lr * sign;
            *m = self.beta2 * *m + (1.0 - self.beta2) * g;
        }
    }

    fn dispatch(&self, k: &mut KernelBuilder, update: &PackedUpdate) -> Result<Dispatch, GpuError> {
        let state = update
            .state()
            .ok_or_else(|| GpuError::InvalidConfig("lion needs a state buffer".into()))?;
        let bits = |v: f32| v.to_bits().to_string();
        update.compute(
            k,
            "lion",
            WGSL,
            state,
            &[
                ("BETA1", bits(self.beta1)),
                ("BETA2", bits(self.beta2)),
                ("WEIGHT_DECAY", bits(self.weight_decay)),
            ],
        )
    }
}

/// The Lion optimizer.
pub struct Lion;

impl OptimizerRule for Lion {
    type Spec = LionSpec;
    const NAME: &'static str = "lion";
    const DESCRIPTION: &'static str =
        "Lion (Chen et al. 2023): the sign of interpolated momentum, decoupled weight decay.";

    fn lr(s: &LionSpec) -> f64 {
        s.lr
    }

    fn check(s: &LionSpec, r: &mut Bounds) {
        for (k, b) in s.betas.iter().enumerate() {
            let key = format!("betas.{k}");
            r.rule(
                &key,
                (0.0..1.0).contains(b),
                "in [0, 1)",
                b,
                "defaults are [0.9, 0.99]",
            );
        }
        let wd = s.weight_decay;
        r.rule(
            "weight_decay",
            wd >= 0.0,
            ">= 0",
            wd,
            "3-10x AdamW's, as lr is smaller",
        );
    }

    fn lower(s: &LionSpec) -> OptimizerKind {
        OptimizerKind::new(LionUpdate {
            beta1: s.betas[0] as f32,
            beta2: s.betas[1] as f32,
            weight_decay: s.weight_decay as f32,
        })
    }
}
