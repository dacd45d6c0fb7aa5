//! Shared plumbing for element-wise activations: each activation's WGSL file defines
//! `act_forward` / `act_backward`, composed with the generic drivers here.

use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo, grid_1d};
use crate::op::numel;
use crate::tensor::Tensor;

const FORWARD_WGSL: &str = include_str!("../../shaders/elementwise_forward.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../shaders/elementwise_backward.wgsl");

/// An `f32` as the decimal of its bit pattern, for `bitcast<f32>({{X}}u)` in WGSL (exact).
pub fn wgsl_f32(v: f32) -> String {
    v.to_bits().to_string()
}

/// `y = f(x)` element by element.
pub fn map_cpu(x: &Tensor, f: impl Fn(f32) -> f32) -> Tensor {
    Tensor {
        shape: x.shape.clone(),
        data: x.data.iter().map(|&v| f(v)).collect(),
    }
}

/// `dx = g(x, y, dy)` element by element.
pub fn map_backward_cpu(
    x: &Tensor,
    y: &Tensor,
    dy: &Tensor,
    g: impl Fn(f32, f32, f32) -> f32,
) -> Tensor {
    let data = x
        .data
        .iter()
        .zip(&y.data)
        .zip(&dy.data)
        .map(|((&a, &b), &c)| g(a, b, c))
        .collect();
    Tensor {
        shape: x.shape.clone(),
        data,
    }
}

/// Forward dispatch of an activation whose WGSL is `act_wgsl`.
pub fn gpu_forward(
    k: &mut KernelBuilder,
    io: &LayerIo,
    kind: &str,
    act_wgsl: &str,
    subst: &[(&str, String)],
) -> Result<Vec<Dispatch>, GpuError> {
    let n = io.batch * numel(&io.input_shape);
    let (groups, stride) = grid_1d(n);
    let mut s = vec![("N", n.to_string()), ("STRIDE", stride.to_string())];
    s.extend(subst.iter().cloned());
    let d = k.compute(
        &format!("{kind}_forward"),
        &[act_wgsl, FORWARD_WGSL],
        &s,
        &[&io.x, &io.y],
        groups,
    )?;
    Ok(vec![d])
}

/// Backward dispatch of an activation (nothing when the input gradient is not needed).
pub fn gpu_backward(
    k: &mut KernelBuilder,
    io: &LayerIo,
    kind: &str,
    act_wgsl: &str,
    subst: &[(&str, String)],
) -> Result<Vec<Dispatch>, GpuError> {
    let Some(dx) = &io.dx else { return Ok(vec![]) };
    let n = io.batch * numel(&io.input_shape);
    let (groups, stride) = grid_1d(n);
    let mut s = vec![("N", n.to_string()), ("STRIDE", stride.to_string())];
    s.extend(subst.iter().cloned());
    let d = k.compute(
        &format!("{kind}_backward"),
        &[act_wgsl, BACKWARD_WGSL],
        &s,
        &[&io.x, &io.y, &io.dy, dx],
        groups,
    )?;
    Ok(vec![d])
}
