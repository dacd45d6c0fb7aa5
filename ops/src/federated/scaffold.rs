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

/// The native (cpu backend) `scaffold`: `global += lr acc inv_total; acc = 0; server +=
/// acc_c inv_clients; acc_c = 0`, in fixed pieces on rayon's threads.
pub(crate) fn native(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeScaffold {
        n: c.usize("N")?,
        lr: c.f32_bits("LR")?,
        inv_clients: c.f32_bits("INV_CLIENTS")?,
    }))
}

struct NativeScaffold {
    n: usize,
    lr: f32,
    inv_clients: f32,
}

impl crate::gpu::cpu::NativeKernel for NativeScaffold {
    fn bindings(&self) -> (usize, usize) {
        (5, 5)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let n = self.n;
        let inv_total = super::native_fed(io, 0).inv_total;
        let acc = &mut io.f32_mut(1)[..n];
        let acc_c = &mut io.f32_mut(2)[..n];
        let server = &mut io.f32_mut(3)[..n];
        let global = &mut io.f32_mut(4)[..n];
        let (lr, inv_clients) = (self.lr, self.inv_clients);
        let piece = crate::native::ELEMENTS_PER_PIECE;
        acc.par_chunks_mut(piece)
            .zip(global.par_chunks_mut(piece))
            .zip(
                acc_c
                    .par_chunks_mut(piece)
                    .zip(server.par_chunks_mut(piece)),
            )
            .with_min_len(super::native_min_len(n))
            .for_each(|((acc, g), (acc_c, c))| {
                for (((acc, g), acc_c), c) in acc.iter_mut().zip(g).zip(acc_c).zip(c) {
                    *g += lr * *acc * inv_total;
                    *acc = 0.0;
                    *c += *acc_c * inv_clients;
                    *acc_c = 0.0;
                }
            });
    }
}

/// Row `slot` (`[n]`) of the client controls `[clients, n]`; `None` outside them, which
/// [`super::Federation`] refuses before any dispatch (`check_slot`).
fn control_row(controls: &[f32], slot: u32, n: usize) -> Option<std::ops::Range<usize>> {
    let row = (slot as usize).checked_mul(n)?;
    let end = row.checked_add(n)?;
    (end <= controls.len()).then_some(row..end)
}

/// The native (cpu backend) `scaffold_client`: for client `slot`, `c_i' = c_i - c +
/// (global - params) client_scale; acc_c += c_i' - c_i; c_i = c_i'`, in fixed pieces on
/// rayon's threads.
pub(crate) fn native_client(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeScaffoldClient { n: c.usize("N")? }))
}

struct NativeScaffoldClient {
    n: usize,
}

impl crate::gpu::cpu::NativeKernel for NativeScaffoldClient {
    fn bindings(&self) -> (usize, usize) {
        (6, 6)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 4
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let n = self.n;
        let fed = super::native_fed(io, 0);
        let controls = io.f32_mut(4);
        let Some(row) = control_row(controls, fed.slot, n) else {
            return;
        };
        let controls = &mut controls[row];
        let acc_c = &mut io.f32_mut(5)[..n];
        let (params, global, server) = (&io.f32(1)[..n], &io.f32(2)[..n], &io.f32(3)[..n]);
        let scale = fed.client_scale;
        let piece = crate::native::ELEMENTS_PER_PIECE;
        controls
            .par_chunks_mut(piece)
            .zip(acc_c.par_chunks_mut(piece))
            .zip(
                params
                    .par_chunks(piece)
                    .zip(global.par_chunks(piece))
                    .zip(server.par_chunks(piece)),
            )
            .with_min_len(super::native_min_len(n))
            .for_each(|((ci, acc_c), ((p, g), c))| {
                for ((((ci, acc_c), &p), &g), &c) in ci.iter_mut().zip(acc_c).zip(p).zip(g).zip(c) {
                    let next = *ci - c + (g - p) * scale;
                    *acc_c += next - *ci;
                    *ci = next;
                }
            });
    }
}

/// The native (cpu backend) `scaffold_correct`: `grads += (c - c_i) / grad_scale` for
/// client `slot` (nothing when the step's gradient scale is 0, as the WGSL), in fixed
/// pieces on rayon's threads.
pub(crate) fn native_correct(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeScaffoldCorrect { n: c.usize("N")? }))
}

struct NativeScaffoldCorrect {
    n: usize,
}

impl crate::gpu::cpu::NativeKernel for NativeScaffoldCorrect {
    fn bindings(&self) -> (usize, usize) {
        (5, 5)
    }

    fn writes(&self, i: usize) -> bool {
        i == 4
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let grad_scale = io.step(0).grad_scale;
        if grad_scale == 0.0 {
            return;
        }
        let scale = 1.0 / grad_scale;
        let n = self.n;
        let controls = io.f32(3);
        let Some(row) = control_row(controls, super::native_fed(io, 1).slot, n) else {
            return;
        };
        let piece = crate::native::ELEMENTS_PER_PIECE;
        io.f32_mut(4)[..n]
            .par_chunks_mut(piece)
            .zip(io.f32(2)[..n].par_chunks(piece))
            .zip(controls[row].par_chunks(piece))
            .with_min_len(super::native_min_len(n))
            .for_each(|((grads, c), ci)| {
                for ((grad, &c), &ci) in grads.iter_mut().zip(c).zip(ci) {
                    *grad += scale * (c - ci);
                }
            });
    }
}
