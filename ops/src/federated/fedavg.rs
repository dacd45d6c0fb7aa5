//! FedAvg (McMahan et al. 2017): the next global model is the mean of the clients' models
//! weighted by their samples, `global += Σ n_k (w_k − global) / Σ n_k`. FedProx shares this
//! server rule (its difference is the local proximal term, [`super::fedprox`]).

use super::{COMMON_WGSL, ServerBindings};
use crate::gpu::{Dispatch, GpuError, KernelBuilder};

pub(crate) const WGSL: &str = include_str!("../../../shaders/fedavg.wgsl");

/// CPU reference: `global += delta` (`delta` the weighted mean client update).
pub fn step_cpu(global: &mut [f32], delta: &[f32]) {
    for (g, d) in global.iter_mut().zip(delta) {
        *g += d;
    }
}

pub(crate) fn dispatch(
    k: &mut KernelBuilder,
    b: &ServerBindings,
    n: usize,
) -> Result<Dispatch, GpuError> {
    k.compute_1d(
        "fedavg",
        &[COMMON_WGSL, WGSL],
        n,
        &[],
        &[b.uniform, b.acc, b.global],
    )
}

/// The native (cpu backend) `fedavg`: `global += acc * inv_total; acc = 0`, in fixed
/// pieces on rayon's threads.
pub(crate) fn native(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeFedAvg { n: c.usize("N")? }))
}

struct NativeFedAvg {
    n: usize,
}

impl crate::gpu::cpu::NativeKernel for NativeFedAvg {
    fn bindings(&self) -> (usize, usize) {
        (3, 3)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let n = self.n;
        let inv_total = super::native_fed(io, 0).inv_total;
        let acc = &mut io.f32_mut(1)[..n];
        let global = &mut io.f32_mut(2)[..n];
        let piece = crate::native::ELEMENTS_PER_PIECE;
        acc.par_chunks_mut(piece)
            .zip(global.par_chunks_mut(piece))
            .with_min_len(super::native_min_len(n))
            .for_each(|(acc, g)| {
                for (acc, g) in acc.iter_mut().zip(g) {
                    *g += *acc * inv_total;
                    *acc = 0.0;
                }
            });
    }
}
