//! Rectified linear unit: `y = max(x, 0)`.

use crate::elementwise;
use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, FusionTraits, Op, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../shaders/relu.wgsl");

/// Rectified linear unit: `y = max(x, 0)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relu;

impl Op for Relu {
    fn kind(&self) -> &'static str {
        "relu"
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
        numel(input) as u64
    }
    fn is_elementwise(&self) -> bool {
        true
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        ctx.with_params("Relu", Vec::new());
        Ok(())
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        elementwise::map_cpu(x, relu)
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
            elementwise::map_backward_cpu(x, y, dy, relu_backward),
            vec![],
        )
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_forward(k, io, "relu", WGSL, &[])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_backward(k, io, "relu", WGSL, &[])
    }
    fn fusion_traits(&self) -> FusionTraits {
        FusionTraits {
            is_relu: true,
            ..FusionTraits::default()
        }
    }
}

fn relu(x: f32) -> f32 {
    x.max(0.0)
}

fn relu_backward(x: f32, _y: f32, dy: f32) -> f32 {
    if x > 0.0 { dy } else { 0.0 }
}

/// The native (cpu backend) forward kernel: the CPU reference's arithmetic.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> elementwise::NativeResult {
    elementwise::native_map(c, relu)
}

/// The native (cpu backend) backward kernel.
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> elementwise::NativeResult {
    elementwise::native_map_backward(c, relu_backward)
}
