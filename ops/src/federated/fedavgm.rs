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
