//! Shared plumbing for element-wise activations: each activation's WGSL file defines
//! `act_forward` / `act_backward`, composed with the generic drivers here.

use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo, grid_1d};
use crate::op::numel;
use crate::tensor::Tensor;

const FORWARD_WGSL: &str = include_str!("../../shaders/elementwise_forward.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../shaders/elementwise_backward.wgsl");

/// An `f32` as the decimal of its bit pattern, for `bitcast<f32>({{X}}u)` in WGSL (exact).
pub fn wgsl_f32(v: f32) -> String {
    v.to_bits().to_string()
}

/// `y = f(x)` element by element.
pub fn map_cpu(x: &Tensor, f: impl Fn(f32) -> f32) -> Tensor {
    Tensor {
        shape: x.shape.clone(),
        data: x.data.iter().map(|&v| f(v)).collect(),
    }
}

/// `dx = g(x, y, dy)` element by element.
pub fn map_backward_cpu(
    x: &Tensor,
    y: &Tensor,
    dy: &Tensor,
    g: impl Fn(f32, f32, f32) -> f32,
) -> Tensor {
    let data = x
        .data
        .iter()
        .zip(&y.data)
        .zip(&dy.data)
        .map(|((&a, &b), &c)| g(a, b, c))
        .collect();
    Tensor {
        shape: x.shape.clone(),
        data,
    }
}

/// Forward dispatch of an activation whose WGSL is `act_wgsl`.
pub fn gpu_forward(
    k: &mut KernelBuilder,
    io: &LayerIo,
    kind: &str,
    act_wgsl: &str,
    subst: &[(&str, String)],
) -> Result<Vec<Dispatch>, GpuError> {
    let n = io.batch * numel(&io.input_shape);
    let (groups, stride) = grid_1d(n);
    let mut s = vec![("N", n.to_string()), ("STRIDE", stride.to_string())];
    s.extend(subst.iter().cloned());
    let d = k.compute(
        &format!("{kind}_forward"),
        &[act_wgsl, FORWARD_WGSL],
        &s,
        &[&io.x, &io.y],
        groups,
    )?;
    Ok(vec![d])
}

/// Backward dispatch of an activation (nothing when the input gradient is not needed).
pub fn gpu_backward(
    k: &mut KernelBuilder,
    io: &LayerIo,
    kind: &str,
    act_wgsl: &str,
    subst: &[(&str, String)],
) -> Result<Vec<Dispatch>, GpuError> {
    let Some(dx) = &io.dx else { return Ok(vec![]) };
    let n = io.batch * numel(&io.input_shape);
    let (groups, stride) = grid_1d(n);
    let mut s = vec![("N", n.to_string()), ("STRIDE", stride.to_string())];
    s.extend(subst.iter().cloned());
    let d = k.compute(
        &format!("{kind}_backward"),
        &[act_wgsl, BACKWARD_WGSL],
        &s,
        &[&io.x, &io.y, &io.dy, dx],
        groups,
    )?;
    Ok(vec![d])
}

/// What a native kernel factory returns.
pub(crate) type NativeResult = Result<Box<dyn crate::gpu::cpu::NativeKernel>, GpuError>;

/// The native (cpu backend) `{kind}_forward`: `y[i] = f(x[i])` over `{{N}}` elements.
pub(crate) fn native_map(
    c: &crate::gpu::cpu::Constants,
    f: impl Fn(f32) -> f32 + Send + Sync + 'static,
) -> NativeResult {
    Ok(Box::new(NativeMap {
        n: c.usize("N")?,
        f,
    }))
}

/// The native (cpu backend) `{kind}_backward`: `dx[i] = g(x[i], y[i], dy[i])`.
pub(crate) fn native_map_backward(
    c: &crate::gpu::cpu::Constants,
    g: impl Fn(f32, f32, f32) -> f32 + Send + Sync + 'static,
) -> NativeResult {
    Ok(Box::new(NativeMapBackward {
        n: c.usize("N")?,
        g,
    }))
}

struct NativeMap<F> {
    n: usize,
    f: F,
}

impl<F: Fn(f32) -> f32 + Send + Sync> crate::gpu::cpu::NativeKernel for NativeMap<F> {
    fn bindings(&self) -> (usize, usize) {
        (2, 2)
    }

    fn writes(&self, i: usize) -> bool {
        i == 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let piece = crate::native::ELEMENTS_PER_PIECE;
        io.f32_mut(1)[..self.n]
            .par_chunks_mut(piece)
            .zip(io.f32(0)[..self.n].par_chunks(piece))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = (self.f)(x);
                }
            });
    }
}

struct NativeMapBackward<G> {
    n: usize,
    g: G,
}

impl<G: Fn(f32, f32, f32) -> f32 + Send + Sync> crate::gpu::cpu::NativeKernel
    for NativeMapBackward<G>
{
    fn bindings(&self) -> (usize, usize) {
        (4, 4)
    }

    fn writes(&self, i: usize) -> bool {
        i == 3
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let piece = crate::native::ELEMENTS_PER_PIECE;
        let n = self.n;
        io.f32_mut(3)[..n]
            .par_chunks_mut(piece)
            .zip(io.f32(0)[..n].par_chunks(piece))
            .zip(
                io.f32(1)[..n]
                    .par_chunks(piece)
                    .zip(io.f32(2)[..n].par_chunks(piece)),
            )
            .for_each(|((dx, x), (y, dy))| {
                for (((dx, &x), &y), &dy) in dx.iter_mut().zip(x).zip(y).zip(dy) {
                    *dx = (self.g)(x, y, dy);
                }
            });
    }
}
