//! A 1-D op as its 2-D twin over `[C, 1, L]`: conv1d is conv2d with a `[1, k]` kernel,
//! the 1-D pools are the 2-D pools with `[1, k]` windows. The samples' memory is the same,
//! so only shapes change: `[C, L]` outside, `[C, 1, L]` inside; a conv1d weight is
//! `[out, in, k]` (PyTorch's `Conv1d` layout) outside and `[out, in, 1, k]` inside.

use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, FusionTraits, Op, ParamSpec, ShapeError};
use crate::tensor::Tensor;

/// A 1-D op running `inner` (a 2-D op) over `[C, 1, L]`.
pub(crate) struct Over1d<T> {
    /// The 1-D kind, e.g. `"conv1d"`.
    pub kind: &'static str,
    /// The 2-D op.
    pub inner: T,
    /// The 1-D attributes' own check (messages in their terms).
    pub check: Result<(), String>,
    /// Shortest input length the op takes (for the shape message).
    pub min_len: usize,
}

/// `[C, L]` as `[C, 1, L]`.
fn to_2d(shape: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    s.insert(s.len() - 1, 1);
    s
}

/// `[.., 1, L]` back to `[.., L]` (the 2-D op's outputs and 4-D weights).
fn to_1d(shape: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    if s.len() >= 3 {
        s.remove(s.len() - 2);
    }
    s
}

fn reshaped(t: &Tensor, shape: Vec<usize>) -> Tensor {
    Tensor {
        shape,
        data: t.data.clone(),
    }
}

impl<T: Op> Over1d<T> {
    /// The 2-D parameters for these 1-D ones (a weight gains its height of 1).
    fn inner_params(&self, params: &[Tensor]) -> Vec<Tensor> {
        params
            .iter()
            .map(|p| match p.shape.len() {
                3 => reshaped(p, to_2d(&p.shape)),
                _ => p.clone(),
            })
            .collect()
    }

    fn inner_io(&self, io: &LayerIo) -> LayerIo {
        LayerIo {
            input_shape: to_2d(&io.input_shape),
            output_shape: to_2d(&io.output_shape),
            ..io.clone()
        }
    }
}

impl<T: Op> Op for Over1d<T> {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn check_attrs(&self) -> Result<(), String> {
        self.check.clone()
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        let shape_error = || {
            ShapeError::new(
                self.kind,
                format!(
                    "[channels, length] with a length of at least {}",
                    self.min_len
                ),
                input,
            )
        };
        if input.len() != 2 || input.contains(&0) {
            return Err(shape_error());
        }
        self.inner
            .output_shape(&to_2d(input))
            .map(|s| to_1d(&s))
            .map_err(|_| shape_error())
    }
    fn params(&self, input: &[usize]) -> Vec<ParamSpec> {
        self.inner
            .params(&to_2d(input))
            .into_iter()
            .map(|p| ParamSpec {
                shape: to_1d(&p.shape),
                ..p
            })
            .collect()
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        self.inner.forward_flops(&to_2d(input))
    }
    fn is_elementwise(&self) -> bool {
        false
    }
    fn scratch_words(&self, input: &[usize], batch: usize) -> usize {
        self.inner.scratch_words(&to_2d(input), batch)
    }
    fn scratch_words_on(
        &self,
        adapter: &crate::gpu::AdapterSummary,
        input: &[usize],
        batch: usize,
    ) -> usize {
        self.inner.scratch_words_on(adapter, &to_2d(input), batch)
    }
    fn forward_cpu(&self, x: &Tensor, params: &[Tensor], ctx: &CpuCtx) -> Tensor {
        let y = self.inner.forward_cpu(
            &reshaped(x, to_2d(&x.shape)),
            &self.inner_params(params),
            ctx,
        );
        reshaped(&y, to_1d(&y.shape))
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        params: &[Tensor],
        y: &Tensor,
        dy: &Tensor,
        ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let (dx, dparams) = self.inner.backward_cpu(
            &reshaped(x, to_2d(&x.shape)),
            &self.inner_params(params),
            &reshaped(y, to_2d(&y.shape)),
            &reshaped(dy, to_2d(&dy.shape)),
            ctx,
        );
        (
            reshaped(&dx, x.shape.clone()),
            dparams
                .iter()
                .map(|d| reshaped(d, to_1d(&d.shape)))
                .collect(),
        )
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        self.inner.gpu_forward(k, &self.inner_io(io))
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        self.inner.gpu_backward(k, &self.inner_io(io))
    }
    fn fusion_traits(&self) -> FusionTraits {
        // The 2-D twin's fusions hold over [C, 1, L]; its 1 x k windows are no 2x2 pool.
        FusionTraits {
            stores_pool: false,
            storable_pool: false,
            ..self.inner.fusion_traits()
        }
    }
    fn gpu_forward_relu(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
    ) -> Result<Vec<Dispatch>, GpuError> {
        self.inner.gpu_forward_relu(k, &self.inner_io(io))
    }
    fn gpu_backward_relu_masked(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
    ) -> Result<Vec<Dispatch>, GpuError> {
        self.inner.gpu_backward_relu_masked(k, &self.inner_io(io))
    }
}
