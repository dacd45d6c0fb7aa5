//! GELU, tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.

use crate::elementwise;
use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../shaders/gelu.wgsl");

/// GELU, tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gelu;

impl Op for Gelu {
    fn kind(&self) -> &'static str {
        "gelu"
    }
    fn check_attrs(&self) -> Result<(), String> {
        Ok(())
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        Ok(input.to_vec())
    }
    fn params(&self, _input: &[usize]) -> Vec<ParamSpec> {
        vec![]
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        10 * numel(input) as u64
    }
    fn is_elementwise(&self) -> bool {
        true
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        elementwise::map_cpu(x, gelu)
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        _params: &[Tensor],
        y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        (
            elementwise::map_backward_cpu(x, y, dy, gelu_backward),
            vec![],
        )
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_forward(k, io, "gelu", WGSL, &[])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_backward(k, io, "gelu", WGSL, &[])
    }
}

const GELU_C: f64 = 0.797_884_560_802_865_4;

fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + (GELU_C * (x + 0.044715 * x * x * x)).tanh())) as f32
}

fn gelu_backward(x: f32, _y: f32, dy: f32) -> f32 {
    let x = x as f64;
    let t = (GELU_C * (x + 0.044715 * x * x * x)).tanh();
    let dt = GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
    (dy as f64 * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dt)) as f32
}

/// The native (cpu backend) forward kernel: the CPU reference's arithmetic.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> elementwise::NativeResult {
    elementwise::native_map(c, gelu)
}

/// The native (cpu backend) backward kernel.
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> elementwise::NativeResult {
    elementwise::native_map_backward(c, gelu_backward)
}
