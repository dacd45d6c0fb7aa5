//! AdamW: Adam with decoupled weight decay (Loshchilov & Hutter). Shares `shaders/adam.wgsl`
//! with [`super::adam`], specialised with `DECOUPLED = 1`.

use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder};

/// CPU reference; `state` is `[m (len), v (len)]`.
#[allow(clippy::too_many_arguments)]
pub fn step_cpu(
    params: &mut [f32],
    grads: &[f32],
    state: &mut [f32],
    lr: f32,
    t: u64,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
) {
    super::adam::step_cpu(
        params,
        grads,
        state,
        lr,
        t,
        beta1,
        beta2,
        eps,
        weight_decay,
        true,
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatch(
    k: &mut KernelBuilder,
    step: &BufferRef,
    scalars: &BufferRef,
    grads: &BufferRef,
    state: Option<&BufferRef>,
    params: &BufferRef,
    len: usize,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
) -> Result<Dispatch, GpuError> {
    super::adam::dispatch(
        k,
        "adamw",
        step,
        scalars,
        grads,
        state,
        params,
        len,
        beta1,
        beta2,
        eps,
        weight_decay,
        true,
    )
}
