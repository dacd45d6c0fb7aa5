//! FedProx (Li et al. 2020): each client minimises its loss plus μ/2·‖w − w_global‖², so
//! its gradient gains μ(w − w_global); the server averages like FedAvg.

use crate::elementwise::wgsl_f32;
use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder};

const WGSL: &str = include_str!("../../../shaders/fedprox.wgsl");

/// CPU reference: the proximal term's gradient added to a mean gradient `grads`.
pub fn correct_cpu(grads: &mut [f32], params: &[f32], global: &[f32], mu: f32) {
    for i in 0..grads.len() {
        grads[i] += mu * (params[i] - global[i]);
    }
}

pub(crate) fn dispatch(
    k: &mut KernelBuilder,
    step: &BufferRef,
    params: &BufferRef,
    global: &BufferRef,
    grads: &BufferRef,
    n: usize,
    mu: f32,
) -> Result<Dispatch, GpuError> {
    k.compute_1d(
        "fedprox",
        &[WGSL],
        n,
        &[("MU", wgsl_f32(mu))],
        &[step, params, global, grads],
    )
}

/// The native (cpu backend) `fedprox`: `grads += (mu / grad_scale) (params - global)`
/// (nothing when the step's gradient scale is 0, as the WGSL), in fixed pieces on rayon's
/// threads.
pub(crate) fn native(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeFedProx {
        n: c.usize("N")?,
        mu: c.f32_bits("MU")?,
    }))
}

struct NativeFedProx {
    n: usize,
    mu: f32,
}

impl crate::gpu::cpu::NativeKernel for NativeFedProx {
    fn bindings(&self) -> (usize, usize) {
        (4, 4)
    }

    fn writes(&self, i: usize) -> bool {
        i == 3
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let grad_scale = io.step(0).grad_scale;
        if grad_scale == 0.0 {
            return;
        }
        let mu = self.mu / grad_scale;
        let n = self.n;
        let piece = crate::native::ELEMENTS_PER_PIECE;
        io.f32_mut(3)[..n]
            .par_chunks_mut(piece)
            .zip(io.f32(1)[..n].par_chunks(piece))
            .zip(io.f32(2)[..n].par_chunks(piece))
            .with_min_len(super::native_min_len(n))
            .for_each(|((grads, p), g)| {
                for ((grad, &p), &g) in grads.iter_mut().zip(p).zip(g) {
                    *grad += mu * (p - g);
                }
            });
    }
}
