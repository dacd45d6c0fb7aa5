//! Slice: positions `start..end` of the first per-sample dimension (features of `[F]`,
//! channels of `[C, H, W]`), the rest kept: `[F]` becomes `[end - start]`. How a model
//! reads part of its input — the id features an `embedding` takes, the numeric ones a
//! `linear` takes. Its gradient is `dy` in the slice and zero elsewhere.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

// The forward is the concat backward's copy: y[s, j] = x[s, OFFSET + j].
const FORWARD_WGSL: &str = include_str!("../../shaders/concat_backward.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../shaders/slice_backward.wgsl");

/// Slice attributes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SliceAttrs {
    /// First position kept (0-based).
    pub start: usize,
    /// One past the last position kept.
    pub end: usize,
}

/// The slice op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// Its attributes.
    pub attrs: SliceAttrs,
}

impl Slice {
    /// `(offset, len, total)` of the kept values within a sample of shape `input`.
    fn layout(&self, input: &[usize]) -> (usize, usize, usize) {
        let inner = numel(&input[1..]);
        (
            self.attrs.start * inner,
            (self.attrs.end - self.attrs.start) * inner,
            numel(input),
        )
    }
}

impl Op for Slice {
    fn kind(&self) -> &'static str {
        "slice"
    }
    fn check_attrs(&self) -> Result<(), String> {
        let SliceAttrs { start, end } = self.attrs;
        if start >= end {
            return Err(format!(
                "slice start must be below end, found start {start} and end {end}"
            ));
        }
        Ok(())
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        let SliceAttrs { start, end } = self.attrs;
        match input.first() {
            Some(&first) if start < end && end <= first => {
                let mut out = input.to_vec();
                out[0] = end - start;
                Ok(out)
            }
            _ => Err(ShapeError::new(
                "slice",
                format!("a first dimension of at least end = {end} (positions {start}..{end})"),
                input,
            )),
        }
    }
    fn params(&self, _input: &[usize]) -> Vec<ParamSpec> {
        vec![]
    }
    fn forward_flops(&self, _input: &[usize]) -> u64 {
        0
    }
    fn is_elementwise(&self) -> bool {
        false
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let (offset, len, total) = self.layout(x.sample_shape());
        let mut shape = x.shape.clone();
        shape[1] = self.attrs.end - self.attrs.start;
        let data = (0..x.batch())
            .flat_map(|s| {
                x.data[s * total + offset..s * total + offset + len]
                    .iter()
                    .copied()
            })
            .collect();
        Tensor { shape, data }
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        _params: &[Tensor],
        _y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let (offset, len, total) = self.layout(x.sample_shape());
        let mut dx = Tensor::zeros(&x.shape);
        for s in 0..x.batch() {
            dx.data[s * total + offset..s * total + offset + len]
                .copy_from_slice(&dy.data[s * len..(s + 1) * len]);
        }
        (dx, vec![])
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let (offset, len, total) = self.layout(&io.input_shape);
        let d = k.compute_1d(
            "slice_forward",
            &[FORWARD_WGSL],
            io.batch * len,
            &[
                ("LEN", len.to_string()),
                ("TOTAL", total.to_string()),
                ("OFFSET", offset.to_string()),
            ],
            &[&io.x, &io.y],
        )?;
        Ok(vec![d])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let Some(dx) = &io.dx else { return Ok(vec![]) };
        let (offset, len, total) = self.layout(&io.input_shape);
        let d = k.compute_1d(
            "slice_backward",
            &[BACKWARD_WGSL],
            io.batch * total,
            &[
                ("LEN", len.to_string()),
                ("TOTAL", total.to_string()),
                ("OFFSET", offset.to_string()),
            ],
            &[&io.dy, dx],
        )?;
        Ok(vec![d])
    }
}

/// The native (cpu backend) `slice_backward`: each sample's gradient at its slice, zero
/// elsewhere.
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeSliceBackward {
        n: c.usize("N")?,
        len: c.usize("LEN")?,
        total: c.usize("TOTAL")?,
        offset: c.usize("OFFSET")?,
    }))
}

struct NativeSliceBackward {
    n: usize,
    len: usize,
    total: usize,
    offset: usize,
}

impl crate::gpu::cpu::NativeKernel for NativeSliceBackward {
    fn bindings(&self) -> (usize, usize) {
        (2, 2)
    }

    fn writes(&self, i: usize) -> bool {
        i == 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let dy = io.f32(0);
        io.f32_mut(1)[..self.n]
            .par_chunks_mut(self.total.max(1))
            .enumerate()
            .for_each(|(s, dx)| {
                dx.fill(0.0);
                dx[self.offset..self.offset + self.len]
                    .copy_from_slice(&dy[s * self.len..(s + 1) * self.len]);
            });
    }
}
