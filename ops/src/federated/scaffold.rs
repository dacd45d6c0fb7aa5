//! SCAFFOLD (Karimireddy et al. 2020, option II): every local gradient is corrected by
//! `c − c_i` (server and client control variates); after its K local steps at learning
//! rate η a client sets `c_i' = c_i − c + (global − w) / (K η)`; the server moves
//! `global += η_g · mean(w_k − global)` and `c += Σ (c_i' − c_i) / N` over all N clients.
//! Client controls are the one per-client state on the device (`[N, P]`).

use super::{COMMON_WGSL, ServerBindings};
use crate::elementwise::wgsl_f32;
use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder};

const WGSL: &str = include_str!("../../../shaders/scaffold.wgsl");
const CORRECT_WGSL: &str = include_str!("../../../shaders/scaffold_correct.wgsl");
const CLIENT_WGSL: &str = include_str!("../../../shaders/scaffold_client.wgsl");

/// CPU reference of the local correction of a mean gradient.
pub fn correct_cpu(grads: &mut [f32], server: &[f32], client: &[f32]) {
    for i in 0..grads.len() {
        grads[i] += server[i] - client[i];
    }
}

/// CPU reference of a client's control update; returns `c_i' − c_i` and sets `client`.
pub fn client_control_cpu(
    client: &mut [f32],
    server: &[f32],
    global: &[f32],
    params: &[f32],
    steps: u64,
    lr: f32,
) -> Vec<f32> {
    let scale = 1.0 / (steps as f32 * lr);
    (0..client.len())
        .map(|i| {
            let next = client[i] - server[i] + (global[i] - params[i]) * scale;
            let change = next - client[i];
            client[i] = next;
            change
        })
        .collect()
}

/// CPU reference of the server step: `global += lr · delta` (`delta` the mean update).
pub fn step_cpu(global: &mut [f32], delta: &[f32], lr: f32) {
    for (g, d) in global.iter_mut().zip(delta) {
        *g += lr * d;
    }
}

/// CPU reference of the server control's move by the round's summed control changes.
pub fn server_control_cpu(server: &mut [f32], change_sum: &[f32], clients: u32) {
    let inv = 1.0 / clients as f32;
    for (c, d) in server.iter_mut().zip(change_sum) {
        *c += d * inv;
    }
}

pub(crate) fn correct_dispatch(
    k: &mut KernelBuilder,
    step: &BufferRef,
    fed: &BufferRef,
    server: &BufferRef,
    controls: &BufferRef,
    grads: &BufferRef,
    n: usize,
) -> Result<Dispatch, GpuError> {
    k.compute_1d(
        "scaffold_correct",
        &[COMMON_WGSL, CORRECT_WGSL],
        n,
        &[],
        &[step, fed, server, controls, grads],
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn client_dispatch(
    k: &mut KernelBuilder,
    fed: &BufferRef,
    params: &BufferRef,
    global: &BufferRef,
    server: &BufferRef,
    controls: &BufferRef,
    acc_c: &BufferRef,
    n: usize,
) -> Result<Dispatch, GpuError> {
    k.compute_1d(
        "scaffold_client",
        &[COMMON_WGSL, CLIENT_WGSL],
        n,
        &[],
        &[fed, params, global, server, controls, acc_c],
    )
}

pub(crate) fn dispatch(
    k: &mut KernelBuilder,
    b: &ServerBindings,
    n: usize,
    lr: f32,
) -> Result<Dispatch, GpuError> {
    let server = b
        .state
        .ok_or_else(|| GpuError::InvalidConfig("scaffold needs its server control".into()))?;
    let acc_c = b
        .acc_c
        .ok_or_else(|| GpuError::InvalidConfig("scaffold needs its control sum".into()))?;
    k.compute_1d(
        "scaffold",
        &[COMMON_WGSL, WGSL],
        n,
        &[
            ("LR", wgsl_f32(lr)),
            ("INV_CLIENTS", wgsl_f32(1.0 / b.clients as f32)),
        ],
        &[b.uniform, b.acc, acc_c, server, b.global],
    )
}
