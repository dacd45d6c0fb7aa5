//! Concatenation of two tensors along their first per-sample dimension (channels of
//! `[C, H, W]`, features of `[F]`): `[C1, ...]` and `[C2, ...]` with the same other
//! dimensions become `[C1 + C2, ...]`. Each input's gradient is its slice of `dy`.

use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const FORWARD_WGSL: &str = include_str!("../../shaders/concat_forward.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../shaders/concat_backward.wgsl");

/// The concat op.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Concat;

impl Op for Concat {
    fn kind(&self) -> &'static str {
        "concat"
    }
    fn check_attrs(&self) -> Result<(), String> {
        Ok(())
    }
    fn arity(&self) -> (usize, usize) {
        (2, 2)
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        Err(ShapeError::new("concat", "two inputs", input))
    }
    fn output_shape_of(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, ShapeError> {
        match inputs {
            [a, b] if !a.is_empty() && a.len() == b.len() && a[1..] == b[1..] => {
                let mut out = a.to_vec();
                out[0] += b[0];
                Ok(out)
            }
            [a, b] => Err(ShapeError::new(
                "concat",
                format!("inputs equal in every dimension but the first, found {a:?} and {b:?}"),
                b,
            )),
            _ => Err(ShapeError::new("concat", "two inputs", &[])),
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
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        use crate::onnx::Attr;
        ctx.merge("Concat", vec![("axis", Attr::Int(1))]);
        Ok(())
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        x.clone()
    }
    fn forward_cpu_of(&self, xs: &[&Tensor], _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let (a, b) = (xs[0], xs[1]);
        let (la, lb) = (numel(a.sample_shape()), numel(b.sample_shape()));
        let mut shape = a.shape.clone();
        shape[1] += b.shape[1];
        let mut data = Vec::with_capacity(a.len() + b.len());
        for s in 0..a.batch() {
            data.extend_from_slice(&a.data[s * la..(s + 1) * la]);
            data.extend_from_slice(&b.data[s * lb..(s + 1) * lb]);
        }
        Tensor { shape, data }
    }
    fn backward_cpu(
        &self,
        _x: &Tensor,
        _params: &[Tensor],
        _y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        (dy.clone(), vec![])
    }
    fn backward_cpu_of(
        &self,
        xs: &[&Tensor],
        _params: &[Tensor],
        _y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Vec<Tensor>, Vec<Tensor>) {
        let lens: Vec<usize> = xs.iter().map(|x| numel(x.sample_shape())).collect();
        let total: usize = lens.iter().sum();
        let mut offset = 0;
        let dxs = xs
            .iter()
            .zip(&lens)
            .map(|(x, &len)| {
                let data = (0..x.len())
                    .map(|i| dy.data[(i / len) * total + offset + i % len])
                    .collect();
                offset += len;
                Tensor {
                    shape: x.shape.clone(),
                    data,
                }
            })
            .collect();
        (dxs, vec![])
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let (a, b) = io.pair("concat")?;
        let (la, lb) = (per_sample(a, io.batch), per_sample(b, io.batch));
        let d = k.compute_1d(
            "concat_forward",
            &[FORWARD_WGSL],
            io.y.len_words() as usize,
            &[("A", la.to_string()), ("B", lb.to_string())],
            &[a, b, &io.y],
        )?;
        Ok(vec![d])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let lens: Vec<usize> = io.xs.iter().map(|x| per_sample(x, io.batch)).collect();
        let total: usize = lens.iter().sum();
        let mut out = Vec::new();
        let mut offset = 0;
        for (dx, &len) in io.dxs.iter().zip(&lens) {
            if let Some(dx) = dx {
                out.push(k.compute_1d(
                    "concat_backward",
                    &[BACKWARD_WGSL],
                    dx.len_words() as usize,
                    &[
                        ("LEN", len.to_string()),
                        ("TOTAL", total.to_string()),
                        ("OFFSET", offset.to_string()),
                    ],
                    &[&io.dy, dx],
                )?);
            }
            offset += len;
        }
        Ok(out)
    }
}

/// Values per sample of a `batch`-sample buffer range.
fn per_sample(x: &BufferRef, batch: usize) -> usize {
    x.len_words() as usize / batch.max(1)
}

/// The native (cpu backend) `concat_forward`: each sample's `a` then its `b`.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeConcat {
        n: c.usize("N")?,
        a: c.usize("A")?,
        b: c.usize("B")?,
    }))
}

struct NativeConcat {
    n: usize,
    a: usize,
    b: usize,
}

impl crate::gpu::cpu::NativeKernel for NativeConcat {
    fn bindings(&self) -> (usize, usize) {
        (3, 3)
    }

    fn writes(&self, i: usize) -> bool {
        i == 2
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let (la, lb) = (self.a, self.b);
        let (a, b) = (io.f32(0), io.f32(1));
        io.f32_mut(2)[..self.n]
            .par_chunks_mut(la + lb)
            .enumerate()
            .for_each(|(s, y)| {
                let (ya, yb) = y.split_at_mut(la);
                ya.copy_from_slice(&a[s * la..(s + 1) * la]);
                yb.copy_from_slice(&b[s * lb..(s + 1) * lb]);
            });
    }
}

/// The native (cpu backend) `concat_backward` and `slice_forward`: `dx[s] =
/// dy[s][OFFSET..OFFSET + LEN]` of rows of `TOTAL`.
pub(crate) fn native_take(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeTake {
        n: c.usize("N")?,
        len: c.usize("LEN")?,
        total: c.usize("TOTAL")?,
        offset: c.usize("OFFSET")?,
    }))
}

struct NativeTake {
    n: usize,
    len: usize,
    total: usize,
    offset: usize,
}

impl crate::gpu::cpu::NativeKernel for NativeTake {
    fn bindings(&self) -> (usize, usize) {
        (2, 2)
    }

    fn writes(&self, i: usize) -> bool {
        i == 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let src = io.f32(0);
        io.f32_mut(1)[..self.n]
            .par_chunks_mut(self.len.max(1))
            .enumerate()
            .for_each(|(s, dx)| {
                let at = s * self.total + self.offset;
                dx.copy_from_slice(&src[at..at + dx.len()]);
            });
    }
}
