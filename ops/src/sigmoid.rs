//! Logistic sigmoid `1 / (1 + exp(-x))`.

use crate::elementwise;
use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../shaders/sigmoid.wgsl");

/// Logistic sigmoid `1 / (1 + exp(-x))`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sigmoid;

impl Op for Sigmoid {
    fn kind(&self) -> &'static str {
        "sigmoid"
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
        ctx.with_params("Sigmoid", Vec::new());
        Ok(())
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        elementwise::map_cpu(x, sigmoid)
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
            elementwise::map_backward_cpu(x, y, dy, sigmoid_backward),
            vec![],
        )
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_forward(k, io, "sigmoid", WGSL, &[])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        elementwise::gpu_backward(k, io, "sigmoid", WGSL, &[])
    }
}

fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + (-(x as f64)).exp())) as f32
}

fn sigmoid_backward(_x: f32, y: f32, dy: f32) -> f32 {
    dy * y * (1.0 - y)
}

/// The native (cpu backend) forward kernel: the CPU reference's arithmetic.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> elementwise::NativeResult {
    elementwise::native_map(c, sigmoid)
}

/// The native (cpu backend) backward kernel.
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> elementwise::NativeResult {
    elementwise::native_map_backward(c, sigmoid_backward)
}
