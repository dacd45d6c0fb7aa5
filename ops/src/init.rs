//! Parameter initialisation schemes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::op::{ParamFill, ParamSpec};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// How weights are initialised. Whatever the scheme, the weights (gamma) of LayerNorm and
/// batch norm start at one and their biases (beta) at zero, and embedding tables from
/// N(0, 1); linear and convolution biases start at zero except under `torch`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// He/Kaiming uniform for ReLU networks: U(-b, b) with b = sqrt(6 / fan_in).
    #[default]
    KaimingUniform,
    /// He/Kaiming normal: N(0, 2 / fan_in).
    KaimingNormal,
    /// Glorot/Xavier uniform: U(-b, b) with b = sqrt(6 / (fan_in + fan_out)).
    XavierUniform,
    /// Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out)).
    XavierNormal,
    /// PyTorch's default for `nn.Linear` and `nn.Conv*d` (kaiming_uniform with a = √5):
    /// weights and biases U(-b, b) with b = 1 / sqrt(fan_in). For reproducing PyTorch
    /// experiments.
    Torch,
}

impl Init {
    /// Fills a parameter tensor described by `spec`, drawing from `rng` when random.
    pub fn fill(self, spec: &ParamSpec, rng: &mut Rng) -> Tensor {
        let len: usize = spec.shape.iter().product();
        let data = match spec.fill {
            ParamFill::Zeros => vec![0.0; len],
            ParamFill::Bias if self == Init::Torch => {
                uniform(rng, len, 1.0 / (spec.fan_in.max(1) as f64).sqrt())
            }
            ParamFill::Bias => vec![0.0; len],
            ParamFill::Ones => vec![1.0; len],
            ParamFill::StandardNormal => normal(rng, len, 1.0),
            ParamFill::Random => {
                let fan_in = spec.fan_in.max(1) as f64;
                let fan_sum = (spec.fan_in + spec.fan_out).max(1) as f64;
                match self {
                    Init::KaimingUniform => uniform(rng, len, (6.0 / fan_in).sqrt()),
                    Init::KaimingNormal => normal(rng, len, (2.0 / fan_in).sqrt()),
                    Init::XavierUniform => uniform(rng, len, (6.0 / fan_sum).sqrt()),
                    Init::XavierNormal => normal(rng, len, (2.0 / fan_sum).sqrt()),
                    Init::Torch => uniform(rng, len, 1.0 / fan_in.sqrt()),
                }
            }
        };
        Tensor {
            shape: spec.shape.clone(),
            data,
        }
    }
}

fn uniform(rng: &mut Rng, len: usize, bound: f64) -> Vec<f32> {
    (0..len)
        .map(|_| rng.uniform_in(-bound, bound) as f32)
        .collect()
}

fn normal(rng: &mut Rng, len: usize, std: f64) -> Vec<f32> {
    (0..len).map(|_| (rng.normal() * std) as f32).collect()
}
