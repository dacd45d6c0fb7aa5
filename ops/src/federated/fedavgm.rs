//! FedAvgM (Hsu et al. 2019): server momentum over the weighted mean client update,
//! `m = β m + Δ; global += lr · m`.

use super::{COMMON_WGSL, ServerBindings};
use crate::elementwise::wgsl_f32;
use crate::gpu::{Dispatch, GpuError, KernelBuilder};

const WGSL: &str = include_str!("../../../shaders/fedavgm.wgsl");

/// CPU reference; `state` is the momentum.
pub fn step_cpu(global: &mut [f32], delta: &[f32], state: &mut [f32], lr: f32, momentum: f32) {
    for i in 0..global.len() {
        state[i] = momentum * state[i] + delta[i];
        global[i] += lr * state[i];
    }
}

pub(crate) fn dispatch(
    k: &mut KernelBuilder,
    b: &ServerBindings,
    n: usize,
    lr: f32,
    momentum: f32,
) -> Result<Dispatch, GpuError> {
    let state = b
        .state
        .ok_or_else(|| GpuError::InvalidConfig("fedavgm needs server momentum".into()))?;
    k.compute_1d(
        "fedavgm",
        &[COMMON_WGSL, WGSL],
        n,
        &[("LR", wgsl_f32(lr)), ("MOMENTUM", wgsl_f32(momentum))],
        &[b.uniform, b.acc, state, b.global],
    )
}

/// The native (cpu backend) `fedavgm`: `d = acc * inv_total; acc = 0; m = momentum m + d;
/// global += lr m`, in fixed pieces on rayon's threads.
pub(crate) fn native(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeFedAvgM {
        n: c.usize("N")?,
        lr: c.f32_bits("LR")?,
        momentum: c.f32_bits("MOMENTUM")?,
    }))
}

struct NativeFedAvgM {
    n: usize,
    lr: f32,
    momentum: f32,
}

impl crate::gpu::cpu::NativeKernel for NativeFedAvgM {
    fn bindings(&self) -> (usize, usize) {
        (4, 4)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let n = self.n;
        let inv_total = super::native_fed(io, 0).inv_total;
        let acc = &mut io.f32_mut(1)[..n];
        let state = &mut io.f32_mut(2)[..n];
        let global = &mut io.f32_mut(3)[..n];
        let (lr, beta) = (self.lr, self.momentum);
        let piece = crate::native::ELEMENTS_PER_PIECE;
        acc.par_chunks_mut(piece)
            .zip(state.par_chunks_mut(piece))
            .zip(global.par_chunks_mut(piece))
            .with_min_len(super::native_min_len(n))
            .for_each(|((acc, m), g)| {
                for ((acc, m), g) in acc.iter_mut().zip(m).zip(g) {
                    let d = *acc * inv_total;
                    *acc = 0.0;
                    *m = beta * *m + d;
                    *g += lr * *m;
                }
            });
    }
}
