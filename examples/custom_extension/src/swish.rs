//! `swish`: `x · sigmoid(beta · x)` (Ramachandran et al. 2017; SiLU with `beta: 1`), an
//! element-wise activation: two WGSL functions and their CPU twins.

use engine::extend::{Layer, SpecError};
use ops::elementwise;
use ops::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use ops::op::numel;
use ops::{CpuCtx, Op, ParamSpec, ShapeError, Tensor};
use schemars::JsonSchema;
use serde::Deserialize;

const WGSL: &str = include_str!("swish.wgsl");

/// Settings of the `swish` layer.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwishSpec {
    /// Slope inside the sigmoid; 1 is SiLU.
    #[serde(default = "one")]
    #[schemars(range(min = 0.0))]
    pub beta: f32,
}

fn one() -> f32 {
    1.0
}

/// The swish activation.
#[derive(Clone, Copy, Debug)]
pub struct Swish {
    beta: f32,
}

impl Layer for Swish {
    type Spec = SwishSpec;
    const NAME: &'static str = "swish";
    const DESCRIPTION: &'static str = "Swish, x * sigmoid(beta * x) (SiLU with beta 1).";

    fn new(spec: SwishSpec) -> Result<Swish, SpecError> {
        if spec.beta.is_nan() || spec.beta < 0.0 {
            return Err(SpecError::at(
                "beta",
                format!("`beta` must be >= 0, found {}", spec.beta),
            ));
        }
        Ok(Swish { beta: spec.beta })
    }
}

impl Swish {
    fn defines(&self) -> [(&'static str, String); 1] {
        [("BETA", elementwise::wgsl_f32(self.beta))]
    }
}

impl Op for Swish {
    fn kind(&self) -> &'static str {
        "swish"
    }
    fn check_attrs(&self) -> Result<(), String> {
        Ok(())
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        Ok(input.to_vec())
    }
    fn params(&self, _input: &[usize]) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        6 * numel(input) as u64
    }
    fn is_elementwise(&self) -> bool {
        true
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        elementwise::map_cpu(x, |v| v * sigmoid(self.beta * v))
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        _params: &[Tensor],
        y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let b = self.beta;
        let dx = elementwise::map_backward_cpu(x, y, dy, |v, _, g| {
            let s = sigmoid(b * v);
            g * (s + b * v * s * (1.0 - s))
        });
        (dx, Vec::new())
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_forward(k, io, "swish", WGSL, &self.defines())
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_backward(k, io, "swish", WGSL, &self.defines())
    }
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}
