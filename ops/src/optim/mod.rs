//! Optimizers, gradient clipping and accumulation.
//!
//! Gradients are accumulated as sums over the samples of an accumulation group (backward
//! kernels add into the packed gradient buffer). When a group completes, one fixed-order
//! reduction computes the global norm of the *mean* gradient (`sum * grad_scale`,
//! `grad_scale = 1 / samples`), then one fused kernel over the whole packed parameter
//! buffer applies `scale = grad_scale * clip_factor`, updates parameters and state, and
//! zeroes the gradients.

pub mod adam;
pub mod clip;
pub mod sgd;

use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, grid_1d};
use adam::AdamHyper;

/// What one fused optimizer pass binds (`shaders/sgd.wgsl`, `shaders/adam.wgsl`), and how
/// many vec4s of packed parameters it updates.
pub(crate) struct PackedUpdate<'a> {
    step: &'a BufferRef,
    scalars: &'a BufferRef,
    grads: &'a BufferRef,
    state: Option<&'a BufferRef>,
    params: &'a BufferRef,
    vectors: usize,
}

impl PackedUpdate<'_> {
    /// A grid-stride dispatch of `wgsl` over the vec4s, `{{N}}` and `{{STRIDE}}` filled in
    /// besides `subst`, binding step, scalars, grads, `state`, params.
    fn compute(
        &self,
        k: &mut KernelBuilder,
        kernel: &str,
        wgsl: &str,
        state: &BufferRef,
        subst: &[(&str, String)],
    ) -> Result<Dispatch, GpuError> {
        let (groups, stride) = grid_1d(self.vectors);
        let mut all = vec![
            ("N", self.vectors.to_string()),
            ("STRIDE", stride.to_string()),
        ];
        all.extend(subst.iter().cloned());
        k.compute(
            kernel,
            &[wgsl],
            &all,
            &[self.step, self.scalars, self.grads, state, self.params],
            groups,
        )
    }
}

/// Which optimizer updates the parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// SGD with optional momentum (PyTorch semantics, no dampening), Nesterov momentum and
    /// L2 weight decay added to the gradient.
    Sgd {
        momentum: f32,
        nesterov: bool,
        weight_decay: f32,
    },
    /// Adam with L2 weight decay added to the gradient.
    Adam {
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
    },
    /// Adam with decoupled weight decay (`p *= 1 - lr * weight_decay` before the step).
    AdamW {
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
    },
}

impl OptimizerKind {
    /// State tensors per parameter, e.g. `["exp_avg", "exp_avg_sq"]`.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            OptimizerKind::Sgd { momentum, .. } if *momentum != 0.0 => &["momentum_buffer"],
            OptimizerKind::Sgd { .. } => &[],
            OptimizerKind::Adam { .. } | OptimizerKind::AdamW { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }

    /// Kernel name.
    pub fn kernel(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd { .. } => "sgd",
            OptimizerKind::Adam { .. } => "adam",
            OptimizerKind::AdamW { .. } => "adamw",
        }
    }

    /// Checks hyperparameters.
    pub fn check(&self) -> Result<(), String> {
        let finite_nonneg = |name: &str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{name} must be a finite non-negative number, found {v}"
                ))
            }
        };
        match *self {
            OptimizerKind::Sgd {
                momentum,
                weight_decay,
                nesterov,
            } => {
                finite_nonneg("momentum", momentum)?;
                finite_nonneg("weight_decay", weight_decay)?;
                if nesterov && momentum == 0.0 {
                    return Err("nesterov momentum requires momentum > 0".into());
                }
                Ok(())
            }
            OptimizerKind::Adam { .. } | OptimizerKind::AdamW { .. } => {
                let h = self.adam();
                for (n, b) in [("beta1", h.beta1), ("beta2", h.beta2)] {
                    if !(0.0..1.0).contains(&b) {
                        return Err(format!("{n} must be in [0, 1), found {b}"));
                    }
                }
                finite_nonneg("eps", h.eps)?;
                finite_nonneg("weight_decay", h.weight_decay)
            }
        }
    }

    /// Floating-point operations per parameter per update (for throughput reports).
    pub fn flops_per_param(&self) -> u64 {
        match self {
            OptimizerKind::Sgd { .. } => 6,
            _ => 16,
        }
    }

    /// Adam's and AdamW's hyperparameters (`decoupled` for AdamW); `None` for SGD.
    pub fn adam_hyper(&self) -> Option<AdamHyper> {
        match *self {
            OptimizerKind::Sgd { .. } => None,
            OptimizerKind::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | OptimizerKind::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => Some(AdamHyper {
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled: matches!(self, OptimizerKind::AdamW { .. }),
            }),
        }
    }

    /// [`Self::adam_hyper`] for the match arms that already matched Adam or AdamW.
    fn adam(&self) -> AdamHyper {
        self.adam_hyper().expect("an Adam-family optimizer")
    }

    /// One CPU reference update. `grads` are already scaled (mean gradient, clipped);
    /// `t` is the 1-based update count; `state` has `state_names().len()` slots of
    /// `params.len()` each, laid out one after the other.
    pub fn step_cpu(&self, params: &mut [f32], grads: &[f32], state: &mut [f32], lr: f32, t: u64) {
        match *self {
            OptimizerKind::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => sgd::step_cpu(params, grads, state, lr, momentum, nesterov, weight_decay),
            OptimizerKind::Adam { .. } | OptimizerKind::AdamW { .. } => {
                adam::step_cpu(params, grads, state, lr, t, &self.adam())
            }
        }
    }

    /// The fused update over `len` words of the packed buffers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dispatch(
        &self,
        k: &mut KernelBuilder,
        step: &BufferRef,
        scalars: &BufferRef,
        grads: &BufferRef,
        state: Option<&BufferRef>,
        params: &BufferRef,
        len: usize,
    ) -> Result<Dispatch, GpuError> {
        // The kernels update four parameters per invocation (vec4 loads and stores: on the
        // CPU adapters a vector access costs little more than a scalar one). The packed
        // layout pads every tensor to 64 words, so this holds; the padding stays zero.
        if !len.is_multiple_of(4) {
            return Err(GpuError::InvalidConfig(format!(
                "the optimizer updates parameters in groups of 4; {len} is not a multiple of 4"
            )));
        }
        let update = PackedUpdate {
            step,
            scalars,
            grads,
            state,
            params,
            vectors: len / 4,
        };
        match *self {
            OptimizerKind::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => sgd::dispatch(k, &update, momentum, nesterov, weight_decay),
            OptimizerKind::Adam { .. } | OptimizerKind::AdamW { .. } => {
                adam::dispatch(k, self.kernel(), &update, &self.adam())
            }
        }
    }
}
