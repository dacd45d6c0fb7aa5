//! FedAdagrad (Reddi et al. 2021, Algorithm 2): the weighted mean client update Δ is the
//! server's pseudo-gradient; `m = β1 m + (1 − β1) Δ`, `v = v + Δ²`,
//! `global += lr · m / (√v + τ)`. The shared loop is [`super::Aggregator::server_step_cpu`].

pub(crate) const WGSL: &str = include_str!("../../../shaders/fedadagrad.wgsl");

/// The second-moment rule (CPU reference, as the kernel computes it).
pub fn second_moment(v: f32, d: f32, _beta2: f32) -> f32 {
    v + d * d
}

/// The native (cpu backend) kernel: the shared adaptive step with this rule.
pub(crate) fn native(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    super::native_adaptive(c, second_moment)
}
