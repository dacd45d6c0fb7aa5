//! Hyperbolic tangent.

use crate::elementwise;
use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../shaders/tanh.wgsl");

/// Hyperbolic tangent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tanh;

impl Op for Tanh {
    fn kind(&self) -> &'static str {
        "tanh"
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
        4 * numel(input) as u64
    }
    fn is_elementwise(&self) -> bool {
        true
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        ctx.with_params("Tanh", Vec::new());
        Ok(())
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        elementwise::map_cpu(x, f32::tanh)
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
            elementwise::map_backward_cpu(x, y, dy, tanh_backward),
            vec![],
        )
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_forward(k, io, "tanh", WGSL, &[])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_backward(k, io, "tanh", WGSL, &[])
    }
}

fn tanh_backward(_x: f32, y: f32, dy: f32) -> f32 {
    dy * (1.0 - y * y)
}

/// The native (cpu backend) forward kernel: the CPU reference's arithmetic.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> elementwise::NativeResult {
    elementwise::native_map(c, f32::tanh)
}

/// The native (cpu backend) backward kernel.
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> elementwise::NativeResult {
    elementwise::native_map_backward(c, tanh_backward)
}
