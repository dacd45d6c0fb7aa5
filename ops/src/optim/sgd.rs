//! SGD with momentum (PyTorch semantics: `buf = momentum * buf + g`, no dampening),
//! optional Nesterov (`g + momentum * buf`) and L2 weight decay (`g + wd * p`).

use super::PackedUpdate;
use crate::elementwise::wgsl_f32;
use crate::gpu::{Dispatch, GpuError, KernelBuilder};

const WGSL: &str = include_str!("../../../shaders/sgd.wgsl");

/// CPU reference (same operation order as the kernel).
pub fn step_cpu(
    params: &mut [f32],
    grads: &[f32],
    state: &mut [f32],
    lr: f32,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
) {
    for i in 0..params.len() {
        let mut g = grads[i];
        if weight_decay != 0.0 {
            g += weight_decay * params[i];
        }
        if momentum != 0.0 {
            let buf = momentum * state[i] + g;
            state[i] = buf;
            g = if nesterov { g + momentum * buf } else { buf };
        }
        params[i] -= lr * g;
    }
}

pub(crate) fn dispatch(
    k: &mut KernelBuilder,
    update: &PackedUpdate,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
) -> Result<Dispatch, GpuError> {
    // Without momentum there is no state: bind the gradients again (never read).
    let state = update.state.unwrap_or(update.grads);
    update.compute(
        k,
        "sgd",
        WGSL,
        state,
        &[
            ("MOMENTUM", wgsl_f32(momentum)),
            ("NESTEROV", (nesterov as u32).to_string()),
            ("WEIGHT_DECAY", wgsl_f32(weight_decay)),
            ("HAS_STATE", ((momentum != 0.0) as u32).to_string()),
        ],
    )
}
