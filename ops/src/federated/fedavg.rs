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
