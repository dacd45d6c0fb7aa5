//! Adam (Kingma & Ba) with PyTorch's formulation:
//! `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g²`,
//! `p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)`, `bc = 1 - beta^t`.
//! Weight decay is L2 (added to `g`) for Adam, decoupled for AdamW (`p *= 1 - lr wd` first).
//!
//! AdamW (Loshchilov & Hutter) is this same code and `shaders/adam.wgsl`, specialised with
//! `DECOUPLED = 1` ([`AdamHyper::decoupled`]).

use super::{Optimizer, PackedUpdate, finite_nonneg};
use crate::elementwise::wgsl_f32;
use crate::gpu::{Dispatch, GpuError, KernelBuilder};

const WGSL: &str = include_str!("../../../shaders/adam.wgsl");

/// Hyperparameters shared by Adam and AdamW.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// AdamW: decay `p` directly instead of adding `weight_decay * p` to the gradient.
    pub decoupled: bool,
}

/// Bias corrections `(1 - beta1^t, 1 - beta2^t)` as the host writes them to the step uniform.
pub fn bias_corrections(beta1: f32, beta2: f32, t: u64) -> (f32, f32) {
    let t = t.min(i32::MAX as u64) as i32;
    (
        (1.0 - (beta1 as f64).powi(t)) as f32,
        (1.0 - (beta2 as f64).powi(t)) as f32,
    )
}

/// ln beta for the device's bias corrections after a skipped update, finite for beta = 0
/// (`exp(t * -1e4)` is 0, as `0^t` is; WGSL may assume no infinities).
fn ln_beta(beta: f32) -> f32 {
    ((beta as f64).ln() as f32).max(-1.0e4)
}

/// `1 - exp(x)` for `x <= 0` as the WGSL's `one_minus_exp` computes it.
fn one_minus_exp(x: f32) -> f32 {
    if x > -0.25 {
        -x * (1.0 + x / 2.0 * (1.0 + x / 3.0 * (1.0 + x / 4.0 * (1.0 + x / 5.0 * (1.0 + x / 6.0)))))
    } else {
        1.0 - x.exp()
    }
}

/// CPU reference; `state` is `[m (len), v (len)]`.
pub fn step_cpu(
    params: &mut [f32],
    grads: &[f32],
    state: &mut [f32],
    lr: f32,
    t: u64,
    h: &AdamHyper,
) {
    let AdamHyper {
        beta1,
        beta2,
        eps,
        weight_decay,
        decoupled,
    } = *h;
    let n = params.len();
    let (bc1, bc2) = bias_corrections(beta1, beta2, t);
    let (m, v) = state.split_at_mut(n);
    for i in 0..n {
        let mut g = grads[i];
        let mut p = params[i];
        if decoupled {
            p *= 1.0 - lr * weight_decay;
        } else {
            g += weight_decay * p;
        }
        m[i] = beta1 * m[i] + (1.0 - beta1) * g;
        v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
        let denom = v[i].sqrt() / bc2.sqrt() + eps;
        params[i] = p - (lr / bc1) * (m[i] / denom);
    }
}

/// Adam, or AdamW with [`AdamHyper::decoupled`]: one kernel, `shaders/adam.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam(pub AdamHyper);

impl Optimizer for Adam {
    fn kind(&self) -> &'static str {
        // The pipeline's name; the WGSL is the same.
        if self.0.decoupled { "adamw" } else { "adam" }
    }

    fn state_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }

    fn flops_per_param(&self) -> u64 {
        16
    }

    fn check(&self) -> Result<(), String> {
        let h = &self.0;
        for (n, b) in [("beta1", h.beta1), ("beta2", h.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("{n} must be in [0, 1), found {b}"));
            }
        }
        finite_nonneg("eps", h.eps)?;
        finite_nonneg("weight_decay", h.weight_decay)
    }

    fn bias_corrections(&self, t: u64) -> (f32, f32) {
        bias_corrections(self.0.beta1, self.0.beta2, t)
    }

    fn step_cpu(&self, params: &mut [f32], grads: &[f32], state: &mut [f32], lr: f32, t: u64) {
        step_cpu(params, grads, state, lr, t, &self.0)
    }

    fn skips_flagged_updates(&self) -> bool {
        true
    }
    fn dispatch(&self, k: &mut KernelBuilder, update: &PackedUpdate) -> Result<Dispatch, GpuError> {
        let h = &self.0;
        let state = update
            .state()
            .ok_or_else(|| GpuError::InvalidConfig("adam needs a state buffer".into()))?;
        update.compute(
            k,
            self.kind(),
            WGSL,
            state,
            &[
                ("BETA1", wgsl_f32(h.beta1)),
                ("BETA2", wgsl_f32(h.beta2)),
                ("EPS", wgsl_f32(h.eps)),
                ("WEIGHT_DECAY", wgsl_f32(h.weight_decay)),
                ("DECOUPLED", (h.decoupled as u32).to_string()),
                (
                    "COUNTS_SKIPPED",
                    ((k.precision() == crate::Precision::F16) as u32).to_string(),
                ),
                ("LN_BETA1", wgsl_f32(ln_beta(h.beta1))),
                ("LN_BETA2", wgsl_f32(ln_beta(h.beta2))),
            ],
        )
    }
}

/// The native (cpu backend) `adam`: the WGSL's update per parameter, in fixed pieces on
/// rayon's threads. `state` holds m in its first half and v in its second.
pub(crate) fn native(
    c: &crate::gpu::cpu::Constants,
) -> Result<Box<dyn crate::gpu::cpu::NativeKernel>, GpuError> {
    Ok(Box::new(NativeAdam {
        len: 4 * c.usize("N")?,
        beta1: c.f32_bits("BETA1")?,
        beta2: c.f32_bits("BETA2")?,
        eps: c.f32_bits("EPS")?,
        weight_decay: c.f32_bits("WEIGHT_DECAY")?,
        decoupled: c.flag("DECOUPLED")?,
        counts_skipped: c.flag("COUNTS_SKIPPED")?,
        ln_beta: [c.f32_bits("LN_BETA1")?, c.f32_bits("LN_BETA2")?],
    }))
}

struct NativeAdam {
    len: usize,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: bool,
    counts_skipped: bool,
    ln_beta: [f32; 2],
}

impl crate::gpu::cpu::NativeKernel for NativeAdam {
    fn bindings(&self) -> (usize, usize) {
        (5, 5)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 2
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let s = io.step(0);
        let scalars = io.f32(1);
        let grads = &mut io.f32_mut(2)[..self.len];
        if scalars[2] != 0.0 {
            grads.fill(0.0);
            return;
        }
        let scale = s.grad_scale * scalars[0];
        let (m, v) = io.f32_mut(3)[..2 * self.len].split_at_mut(self.len);
        let params = &mut io.f32_mut(4)[..self.len];
        let (b1, b2, eps, wd, lr) = (self.beta1, self.beta2, self.eps, self.weight_decay, s.lr);
        let (mut step_size, mut sqrt_bc2) = (lr / s.bias_correction1, s.bias_correction2.sqrt());
        if self.counts_skipped && scalars[3] > 0.0 {
            let t = (s.opt_t as f32 - scalars[3]).max(1.0);
            step_size = lr / one_minus_exp(t * self.ln_beta[0]);
            sqrt_bc2 = one_minus_exp(t * self.ln_beta[1]).sqrt();
        }
        let piece = crate::native::ELEMENTS_PER_PIECE;
        grads
            .par_chunks_mut(piece)
            .zip(params.par_chunks_mut(piece))
            .zip(m.par_chunks_mut(piece).zip(v.par_chunks_mut(piece)))
            .for_each(|((g, p), (m, v))| {
                for j in 0..g.len() {
                    let mut gj = g[j] * scale;
                    g[j] = 0.0;
                    let mut pj = p[j];
                    if self.decoupled {
                        pj *= 1.0 - lr * wd;
                    } else {
                        gj += wd * pj;
                    }
                    m[j] = b1 * m[j] + (1.0 - b1) * gj;
                    v[j] = b2 * v[j] + (1.0 - b2) * gj * gj;
                    p[j] = pj - step_size * (m[j] / (v[j].sqrt() / sqrt_bc2 + eps));
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_bias_corrections_agree_with_the_hosts_to_a_few_ulps() {
        // What `one_minus_exp(t ln beta)` (after a skipped f16 update) computes against the
        // host's f64 powers, over the betas and counts Adam meets.
        for beta in [0.5f32, 0.9, 0.99, 0.999, 0.9999] {
            for t in [1u64, 2, 3, 5, 10, 30, 100, 1000, 10_000, 100_000] {
                let got = one_minus_exp(t as f32 * ln_beta(beta));
                let (host, _) = bias_corrections(beta, beta, t);
                assert!(
                    ((got - host) / host).abs() < 1e-6,
                    "beta {beta}, t {t}: {got} vs {host}"
                );
            }
        }
        assert_eq!(one_minus_exp(ln_beta(0.0)), 1.0, "beta 0: 1 - 0^t");
    }
}
