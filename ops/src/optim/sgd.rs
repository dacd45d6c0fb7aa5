//! SGD with momentum (PyTorch semantics: `buf = momentum * buf + g`, no dampening),
//! optional Nesterov (`g + momentum * buf`) and L2 weight decay (`g + wd * p`).

use super::{Optimizer, PackedUpdate, finite_nonneg};
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

/// SGD's hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
}

impl Optimizer for Sgd {
    fn kind(&self) -> &'static str {
        "sgd"
    }

    fn state_names(&self) -> &'static [&'static str] {
        if self.momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        }
    }

    fn flops_per_param(&self) -> u64 {
        6
    }

    fn check(&self) -> Result<(), String> {
        finite_nonneg("momentum", self.momentum)?;
        finite_nonneg("weight_decay", self.weight_decay)?;
        if self.nesterov && self.momentum == 0.0 {
            return Err("nesterov momentum requires momentum > 0".into());
        }
        Ok(())
    }

    fn step_cpu(&self, params: &mut [f32], grads: &[f32], state: &mut [f32], lr: f32, _t: u64) {
        step_cpu(
            params,
            grads,
            state,
            lr,
            self.momentum,
            self.nesterov,
            self.weight_decay,
        )
    }

    fn skips_flagged_updates(&self) -> bool {
        true
    }
    fn dispatch(&self, k: &mut KernelBuilder, update: &PackedUpdate) -> Result<Dispatch, GpuError> {
        // Without momentum there is no state: bind the gradients again (never read).
        let state = update.state().unwrap_or(update.grads());
        update.compute(
            k,
            "sgd",
            WGSL,
            state,
            &[
                ("MOMENTUM", wgsl_f32(self.momentum)),
                ("NESTEROV", (self.nesterov as u32).to_string()),
                ("WEIGHT_DECAY", wgsl_f32(self.weight_decay)),
                ("HAS_STATE", ((self.momentum != 0.0) as u32).to_string()),
            ],
        )
    }
}

/// The native (cpu backend) `sgd`: the WGSL's update per parameter, in fixed pieces on
/// rayon's threads.
pub(crate) fn native(
    c: &crate::gpu::cpu::Constants,
) -> Result<Box<dyn crate::gpu::cpu::NativeKernel>, GpuError> {
    Ok(Box::new(NativeSgd {
        len: 4 * c.usize("N")?,
        momentum: c.f32_bits("MOMENTUM")?,
        weight_decay: c.f32_bits("WEIGHT_DECAY")?,
        nesterov: c.flag("NESTEROV")?,
        has_state: c.flag("HAS_STATE")?,
    }))
}

struct NativeSgd {
    len: usize,
    momentum: f32,
    weight_decay: f32,
    nesterov: bool,
    has_state: bool,
}

impl crate::gpu::cpu::NativeKernel for NativeSgd {
    fn bindings(&self) -> (usize, usize) {
        (5, 5)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 2
    }

    fn uses(&self, i: usize) -> bool {
        // Without momentum the state binding is the gradients again, never touched.
        i != 3 || self.has_state
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
        let params = &mut io.f32_mut(4)[..self.len];
        let (momentum, wd, lr) = (self.momentum, self.weight_decay, s.lr);
        let piece = crate::native::ELEMENTS_PER_PIECE;
        let state = if self.has_state {
            &mut io.f32_mut(3)[..self.len]
        } else {
            &mut [][..]
        };
        // The options are constants of the loop (`sgd_piece`), so it vectorises.
        let run = match (wd != 0.0, self.has_state, self.nesterov) {
            (false, false, _) => sgd_piece::<false, false, false>,
            (true, false, _) => sgd_piece::<true, false, false>,
            (false, true, false) => sgd_piece::<false, true, false>,
            (true, true, false) => sgd_piece::<true, true, false>,
            (false, true, true) => sgd_piece::<false, true, true>,
            (true, true, true) => sgd_piece::<true, true, true>,
        };
        let h = SgdScalars {
            scale,
            wd,
            momentum,
            lr,
        };
        if self.has_state {
            grads
                .par_chunks_mut(piece)
                .zip(params.par_chunks_mut(piece))
                .zip(state.par_chunks_mut(piece))
                .for_each(|((g, p), b)| run(g, p, b, h));
        } else {
            grads
                .par_chunks_mut(piece)
                .zip(params.par_chunks_mut(piece))
                .for_each(|(g, p)| run(g, p, &mut [], h));
        }
    }
}

#[derive(Clone, Copy)]
struct SgdScalars {
    scale: f32,
    wd: f32,
    momentum: f32,
    lr: f32,
}

/// The WGSL's update of one piece: g = grad * scale (+ wd p); buf = momentum buf + g;
/// nesterov: g + momentum buf, else buf; p -= lr g; grad = 0.
fn sgd_piece<const WD: bool, const STATE: bool, const NESTEROV: bool>(
    g: &mut [f32],
    p: &mut [f32],
    b: &mut [f32],
    h: SgdScalars,
) {
    // Equal lengths up front: no bounds checks in the loop.
    let n = g.len();
    let p = &mut p[..n];
    let b = if STATE { &mut b[..n] } else { b };
    for j in 0..n {
        let mut v = g[j] * h.scale;
        g[j] = 0.0;
        if WD {
            v += h.wd * p[j];
        }
        if STATE {
            let buf = h.momentum * b[j] + v;
            b[j] = buf;
            v = if NESTEROV { v + h.momentum * buf } else { buf };
        }
        p[j] -= h.lr * v;
    }
}
