//! Small fixed-order reductions shared by several ops (`shaders/bias_grad.wgsl`).

use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, grid_1d};

const BIAS_GRAD_WGSL: &str = include_str!("../../shaders/bias_grad.wgsl");

/// `db[c] += sum_{n < outer} sum_{i < inner} dy[(n * channels + c) * inner + i]`, one
/// invocation per channel summing in a fixed order (deterministic, no atomics).
pub(crate) fn bias_grad(
    k: &mut KernelBuilder,
    dy: &BufferRef,
    db: &BufferRef,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<Dispatch, GpuError> {
    let (groups, stride) = grid_1d(channels);
    k.compute(
        "bias_grad",
        &[BIAS_GRAD_WGSL],
        &[
            ("OUTER", outer.to_string()),
            ("CHANNELS", channels.to_string()),
            ("INNER", inner.to_string()),
            ("STRIDE", stride.to_string()),
        ],
        &[dy, db],
        groups,
    )
}
