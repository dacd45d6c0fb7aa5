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
