//! Flatten: `[d0, d1, ...]` per sample becomes `[d0 * d1 * ...]`. On the GPU it is a view:
//! the output aliases the input buffer and no kernel runs.

use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

/// The flatten op.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flatten;

impl Op for Flatten {
    fn kind(&self) -> &'static str {
        "flatten"
    }
    fn check_attrs(&self) -> Result<(), String> {
        Ok(())
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        if input.is_empty() {
            return Err(ShapeError::new("flatten", "at least 1 dim", input));
        }
        Ok(vec![numel(input)])
    }
    fn params(&self, _input: &[usize]) -> Vec<ParamSpec> {
        vec![]
    }
    fn forward_flops(&self, _input: &[usize]) -> u64 {
        0
    }
    fn is_elementwise(&self) -> bool {
        true
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        use crate::onnx::Attr;
        ctx.with_params("Flatten", vec![("axis", Attr::Int(1))]);
        Ok(())
    }
    fn is_view(&self) -> bool {
        true
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let batch = x.batch();
        x.clone().reshaped(&[batch, numel(x.sample_shape())])
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        _params: &[Tensor],
        _y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        (dy.clone().reshaped(&x.shape), vec![])
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        // The model aliases y to x; copy only when it did not.
        if io.x.buffer == io.y.buffer && io.x.offset == io.y.offset {
            Ok(vec![])
        } else {
            Ok(vec![Dispatch::copy(k.gpu(), "flatten_copy", &io.x, &io.y)])
        }
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        match &io.dx {
            Some(dx) if !(dx.buffer == io.dy.buffer && dx.offset == io.dy.offset) => {
                Ok(vec![Dispatch::copy(k.gpu(), "flatten_copy", &io.dy, dx)])
            }
            _ => Ok(vec![]),
        }
    }
}
