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

use std::fmt;
use std::sync::Arc;

use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, grid_1d};
use adam::AdamHyper;

/// What one fused optimizer pass binds (`shaders/sgd.wgsl`, `shaders/adam.wgsl`), and how
/// many vec4s of packed parameters it updates.
pub struct PackedUpdate<'a> {
    step: &'a BufferRef,
    scalars: &'a BufferRef,
    grads: &'a BufferRef,
    state: Option<&'a BufferRef>,
    params: &'a BufferRef,
    vectors: usize,
}

impl PackedUpdate<'_> {
    /// The optimizer state (`state_names().len()` slots of the packed length, one after
    /// the other), when the optimizer keeps any.
    pub fn state(&self) -> Option<&BufferRef> {
        self.state
    }

    /// The packed gradients.
    pub fn grads(&self) -> &BufferRef {
        self.grads
    }

    /// A grid-stride dispatch of `wgsl` over the vec4s, `{{N}}` (vec4s) and `{{STRIDE}}`
    /// filled in besides `subst`, binding, in order: the step uniform (`S: Step`; `S.lr`,
    /// `S.grad_scale`, `S.bias_correction1/2`, `S.opt_t`), the scalars (the gradient factor
    /// at word 0, the skip flag at word 2: see [`Optimizer::skips_flagged_updates`]; under
    /// mixed precision the updates skipped so far at word 3, which an update that depends
    /// on its count subtracts from `S.opt_t`, as `adam` does), the
    /// gradients, `state`, the parameters. The kernel must zero the gradients it reads.
    pub fn compute(
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

/// An optimizer: its state, its fused update kernel and the CPU reference the kernel is
/// tested against. One file each (`sgd.rs`, `adam.rs`) with its WGSL in `shaders/`.
pub trait Optimizer: Send + Sync + fmt::Debug {
    /// Its name (the kernel's, in plans and profiles).
    fn kind(&self) -> &'static str;
    /// State tensors per parameter, e.g. `["exp_avg", "exp_avg_sq"]` (checkpointed).
    fn state_names(&self) -> &'static [&'static str];
    /// Floating-point operations per parameter per update (for throughput reports).
    fn flops_per_param(&self) -> u64;
    /// Checks hyperparameters.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
    /// `(bias_correction1, bias_correction2)` written to the step uniform for the `t`-th
    /// update (1-based); `(1, 1)` for optimizers without.
    fn bias_corrections(&self, _t: u64) -> (f32, f32) {
        (1.0, 1.0)
    }
    /// One CPU reference update. `grads` are already scaled (mean gradient, clipped);
    /// `t` is the 1-based update count; `state` has `state_names().len()` slots of
    /// `params.len()` each, laid out one after the other.
    fn step_cpu(&self, params: &mut [f32], grads: &[f32], state: &mut [f32], lr: f32, t: u64);
    /// The fused update kernel.
    fn dispatch(&self, k: &mut KernelBuilder, update: &PackedUpdate) -> Result<Dispatch, GpuError>;
    /// Whether the kernel skips a flagged update: when scalars word 2 is non-zero (a mixed
    /// precision step whose gradients overflowed) it must leave parameters and state as
    /// they are and only zero the gradients. Mixed precision refuses optimizers without.
    fn skips_flagged_updates(&self) -> bool {
        false
    }
}

/// Which optimizer updates the parameters: a shared [`Optimizer`].
#[derive(Clone)]
pub struct OptimizerKind(Arc<dyn Optimizer>);

impl fmt::Debug for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for OptimizerKind {
    /// The same optimizer with the same hyperparameters (as its `Debug` shows them).
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

impl OptimizerKind {
    /// Wraps an optimizer.
    pub fn new(optimizer: impl Optimizer + 'static) -> OptimizerKind {
        OptimizerKind(Arc::new(optimizer))
    }

    /// SGD with optional momentum (PyTorch semantics, no dampening), Nesterov momentum and
    /// L2 weight decay added to the gradient.
    pub fn sgd(momentum: f32, nesterov: bool, weight_decay: f32) -> OptimizerKind {
        OptimizerKind::new(sgd::Sgd {
            momentum,
            nesterov,
            weight_decay,
        })
    }

    /// Adam with L2 weight decay added to the gradient.
    pub fn adam(beta1: f32, beta2: f32, eps: f32, weight_decay: f32) -> OptimizerKind {
        OptimizerKind::new(adam::Adam(AdamHyper {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled: false,
        }))
    }

    /// Adam with decoupled weight decay (`p *= 1 - lr * weight_decay` before the step).
    pub fn adamw(beta1: f32, beta2: f32, eps: f32, weight_decay: f32) -> OptimizerKind {
        OptimizerKind::new(adam::Adam(AdamHyper {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled: true,
        }))
    }

    /// State tensors per parameter.
    pub fn state_names(&self) -> &'static [&'static str] {
        self.0.state_names()
    }

    /// Kernel name.
    pub fn kernel(&self) -> &'static str {
        self.0.kind()
    }

    /// Whether its kernel skips flagged (overflowed mixed-precision) updates.
    pub fn skips_flagged_updates(&self) -> bool {
        self.0.skips_flagged_updates()
    }

    /// Checks hyperparameters.
    pub fn check(&self) -> Result<(), String> {
        self.0.check()
    }

    /// Floating-point operations per parameter per update.
    pub fn flops_per_param(&self) -> u64 {
        self.0.flops_per_param()
    }

    /// The step uniform's bias corrections for update `t`.
    pub fn bias_corrections(&self, t: u64) -> (f32, f32) {
        self.0.bias_corrections(t)
    }

    /// One CPU reference update (see [`Optimizer::step_cpu`]).
    pub fn step_cpu(&self, params: &mut [f32], grads: &[f32], state: &mut [f32], lr: f32, t: u64) {
        self.0.step_cpu(params, grads, state, lr, t)
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
        self.0.dispatch(k, &update)
    }
}

/// `name` must be a finite non-negative number.
pub(crate) fn finite_nonneg(name: &str, v: f32) -> Result<(), String> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(format!(
            "{name} must be a finite non-negative number, found {v}"
        ))
    }
}
