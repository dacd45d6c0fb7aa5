//! Element-wise sum of two tensors of equal shape: `y = a + b`, the merge of a residual
//! connection. Its backward copies `dy` into each input's gradient (none where that is
//! `dy` itself). [`sum_dispatches`] also adds up the gradients of a tensor that feeds
//! several ops.

use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../shaders/add.wgsl");
const INTO_WGSL: &str = include_str!("../../shaders/add_into.wgsl");

/// The add op.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Add;

impl Op for Add {
    fn kind(&self) -> &'static str {
        "add"
    }
    fn check_attrs(&self) -> Result<(), String> {
        Ok(())
    }
    fn arity(&self) -> (usize, usize) {
        (2, 2)
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        Err(ShapeError::new("add", "two inputs", input))
    }
    fn output_shape_of(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, ShapeError> {
        match inputs {
            [a, b] if a == b => Ok(a.to_vec()),
            [a, b] => Err(ShapeError::new(
                "add",
                format!("inputs of equal shapes, found {a:?} and {b:?}"),
                b,
            )),
            _ => Err(ShapeError::new("add", "two inputs", &[])),
        }
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
        ctx.merge("Add", Vec::new());
        Ok(())
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        x.clone()
    }
    fn forward_cpu_of(&self, xs: &[&Tensor], _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let mut y = xs[0].clone();
        for x in &xs[1..] {
            for (a, b) in y.data.iter_mut().zip(&x.data) {
                *a += b;
            }
        }
        y
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
        (xs.iter().map(|_| dy.clone()).collect(), vec![])
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let (a, b) = io.pair("add")?;
        Ok(vec![add(k, "add", a, b, &io.y)?])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        Ok(io
            .dxs
            .iter()
            .flatten()
            .filter(|dx| !(dx.buffer == io.dy.buffer && dx.offset == io.dy.offset))
            .map(|dx| Dispatch::copy(k.gpu(), "add_grad_copy", &io.dy, dx))
            .collect())
    }
}

fn add(
    k: &mut KernelBuilder,
    kernel: &str,
    a: &BufferRef,
    b: &BufferRef,
    y: &BufferRef,
) -> Result<Dispatch, GpuError> {
    k.compute_1d(kernel, &[WGSL], y.len_words() as usize, &[], &[a, b, y])
}

/// `total = parts[0] + parts[1] + ...`, in that order: the gradient of a tensor that feeds
/// several ops, from each op's contribution. At least two parts.
pub(crate) fn sum_dispatches(
    k: &mut KernelBuilder,
    parts: &[BufferRef],
    total: &BufferRef,
) -> Result<Vec<Dispatch>, GpuError> {
    let [first, second, rest @ ..] = parts else {
        return Err(GpuError::InvalidModel(
            "a gradient sum needs two or more parts".into(),
        ));
    };
    let mut out = vec![add(k, "grad_sum", first, second, total)?];
    let n = total.len_words() as usize;
    for part in rest {
        out.push(k.compute_1d("grad_sum_into", &[INTO_WGSL], n, &[], &[part, total])?);
    }
    Ok(out)
}

/// The native (cpu backend) `add` and `grad_sum`: `y = a + b`.
pub(crate) fn native_add(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeAdd {
        n: c.usize("N")?,
        into: false,
    }))
}

/// The native (cpu backend) `grad_sum_into`: `y += x`.
pub(crate) fn native_add_into(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeAdd {
        n: c.usize("N")?,
        into: true,
    }))
}

struct NativeAdd {
    n: usize,
    into: bool,
}

impl crate::gpu::cpu::NativeKernel for NativeAdd {
    fn bindings(&self) -> (usize, usize) {
        if self.into { (2, 2) } else { (3, 3) }
    }

    fn writes(&self, i: usize) -> bool {
        i == if self.into { 1 } else { 2 }
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let (n, piece) = (self.n, crate::native::ELEMENTS_PER_PIECE);
        if self.into {
            io.f32_mut(1)[..n]
                .par_chunks_mut(piece)
                .zip(io.f32(0)[..n].par_chunks(piece))
                .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, x)| *y += x));
            return;
        }
        io.f32_mut(2)[..n]
            .par_chunks_mut(piece)
            .zip(
                io.f32(0)[..n]
                    .par_chunks(piece)
                    .zip(io.f32(1)[..n].par_chunks(piece)),
            )
            .for_each(|(y, (a, b))| {
                for ((y, a), b) in y.iter_mut().zip(a).zip(b) {
                    *y = a + b;
                }
            });
    }
}
