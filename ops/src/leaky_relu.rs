//! Leaky ReLU: `y = x` for `x > 0`, `slope * x` otherwise.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::elementwise::{self, wgsl_f32};
use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../shaders/leaky_relu.wgsl");

/// Attributes of a leaky ReLU layer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LeakyReluAttrs {
    /// Slope for negative inputs (default 0.01).
    #[serde(default = "default_slope")]
    pub slope: f32,
}

fn default_slope() -> f32 {
    0.01
}

impl Default for LeakyReluAttrs {
    fn default() -> Self {
        LeakyReluAttrs {
            slope: default_slope(),
        }
    }
}

/// The leaky ReLU op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyRelu {
    pub attrs: LeakyReluAttrs,
}

impl Op for LeakyRelu {
    fn kind(&self) -> &'static str {
        "leaky_relu"
    }
    fn check_attrs(&self) -> Result<(), String> {
        if self.attrs.slope.is_finite() {
            Ok(())
        } else {
            Err(format!(
                "leaky_relu slope must be finite, found {}",
                self.attrs.slope
            ))
        }
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        Ok(input.to_vec())
    }
    fn params(&self, _input: &[usize]) -> Vec<ParamSpec> {
        vec![]
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        numel(input) as u64
    }
    fn is_elementwise(&self) -> bool {
        true
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        use crate::onnx::Attr;
        ctx.with_params("LeakyRelu", vec![("alpha", Attr::Float(self.attrs.slope))]);
        Ok(())
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let s = self.attrs.slope;
        elementwise::map_cpu(x, |v| if v > 0.0 { v } else { s * v })
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        _params: &[Tensor],
        y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let s = self.attrs.slope;
        (
            elementwise::map_backward_cpu(x, y, dy, |x, _, d| if x > 0.0 { d } else { s * d }),
            vec![],
        )
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_forward(
            k,
            io,
            "leaky_relu",
            WGSL,
            &[("SLOPE", wgsl_f32(self.attrs.slope))],
        )
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_backward(
            k,
            io,
            "leaky_relu",
            WGSL,
            &[("SLOPE", wgsl_f32(self.attrs.slope))],
        )
    }
}

/// The native (cpu backend) forward kernel: the CPU reference's arithmetic.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> elementwise::NativeResult {
    let s = c.f32_bits("SLOPE")?;
    elementwise::native_map(c, move |v| if v > 0.0 { v } else { s * v })
}

/// The native (cpu backend) backward kernel.
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> elementwise::NativeResult {
    let s = c.f32_bits("SLOPE")?;
    elementwise::native_map_backward(c, move |x, _, d| if x > 0.0 { d } else { s * d })
}
