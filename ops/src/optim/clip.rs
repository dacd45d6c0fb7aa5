//! Global gradient norm and clipping, reduced in a fixed order without atomics:
//! `grad_norm_partial` has each of [`PARTIALS`] invocations sum the squares of one contiguous
//! chunk; `grad_norm_final` (one invocation) adds the partials in order, scales by
//! `grad_scale`, and writes `clip = min(1, max_norm / (norm + 1e-6))` (PyTorch's formula) to
//! `scalars[0]` and the norm to `metrics[5]`.

use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder};

const PARTIAL_WGSL: &str = include_str!("../../../shaders/grad_norm_partial.wgsl");
const FINAL_WGSL: &str = include_str!("../../../shaders/grad_norm_final.wgsl");

/// Number of partial sums.
pub const PARTIALS: usize = 256;

/// CPU reference: the clip factor for already-scaled gradients and the global norm.
pub fn clip_factor_cpu(grads: &[f32], max_norm: Option<f32>) -> (f32, f32) {
    let norm = grads
        .iter()
        .map(|&g| g as f64 * g as f64)
        .sum::<f64>()
        .sqrt() as f32;
    let clip = match max_norm {
        Some(m) if m > 0.0 => (m / (norm + 1e-6)).min(1.0),
        _ => 1.0,
    };
    (clip, norm)
}

/// The two reduction dispatches; with `loss_scale` (the scaler's state and the micro-batch
/// size, see `loss_scale_apply.wgsl`) the norm and the optimizer's factor are unscaled.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatches(
    k: &mut KernelBuilder,
    step: &BufferRef,
    grads: &BufferRef,
    partials: &BufferRef,
    scalars: &BufferRef,
    metrics: &BufferRef,
    loss_scale: Option<(&BufferRef, usize)>,
    len: usize,
) -> Result<Vec<Dispatch>, GpuError> {
    let chunk = len.div_ceil(PARTIALS).max(1);
    let partial = k.compute(
        "grad_norm_partial",
        &[PARTIAL_WGSL],
        &[
            ("N", len.to_string()),
            ("CHUNK", chunk.to_string()),
            ("PARTIALS", PARTIALS.to_string()),
        ],
        &[grads, partials],
        [(PARTIALS as u32).div_ceil(64), 1, 1],
    )?;
    let fin = match loss_scale {
        None => k.compute(
            "grad_norm_final",
            &[FINAL_WGSL],
            &[
                ("PARTIALS", PARTIALS.to_string()),
                (
                    "LOSS_SCALE",
                    "const SKIPS_NON_FINITE = false;\nfn loss_scale() -> f32 { return 1.0; }".into(),
                ),
            ],
            &[step, partials, scalars, metrics],
            [1, 1, 1],
        )?,
        Some((state, batch)) => k.compute(
            "grad_norm_final.loss_scaled",
            &[FINAL_WGSL],
            &[
                ("PARTIALS", PARTIALS.to_string()),
                (
                    "LOSS_SCALE",
                    format!(
                        "const SKIPS_NON_FINITE = true;\n@group(0) @binding(4) var<storage, read> scaler: array<f32>;\nfn loss_scale() -> f32 {{ return scaler[0] * bitcast<f32>({}u); }}",
                        crate::loss_scale::inv_batch_bits(batch)
                    ),
                ),
            ],
            &[step, partials, scalars, metrics, state],
            [1, 1, 1],
        )?,
    };
    Ok(vec![partial, fin])
}

/// The native (cpu backend) `grad_norm_partial`: the same chunks, each summed in a fixed
/// order of its own.
pub(crate) fn native_partial(
    c: &crate::gpu::cpu::Constants,
) -> Result<Box<dyn crate::gpu::cpu::NativeKernel>, GpuError> {
    Ok(Box::new(NativePartial {
        n: c.usize("N")?,
        chunk: c.usize("CHUNK")?,
        partials: c.usize("PARTIALS")?,
    }))
}

struct NativePartial {
    n: usize,
    chunk: usize,
    partials: usize,
}

impl crate::gpu::cpu::NativeKernel for NativePartial {
    fn bindings(&self) -> (usize, usize) {
        (2, 2)
    }

    fn writes(&self, i: usize) -> bool {
        i == 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let grads = io.f32(0);
        let out = &mut io.f32_mut(1)[..self.partials];
        // One piece per partial: the pieces are the WGSL's invocations.
        let min = crate::gpu::cpu::min_pieces(self.partials, self.n);
        out.par_iter_mut()
            .with_min_len(min)
            .enumerate()
            .for_each(|(i, p)| {
                let start = (i * self.chunk).min(self.n);
                let end = (start + self.chunk).min(self.n);
                *p = sum_of_squares(&grads[start..end]);
            });
    }
}

/// Σ g² over `g` in a fixed order that vectorises: sixteen interleaved partial sums, then
/// those in order (the cpu backend's own bits: the WGSL sums each chunk serially).
fn sum_of_squares(g: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = g.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += x * x;
        }
    }
    let mut total = lanes.iter().fold(0.0, |a, l| a + l);
    for x in rest {
        total += x * x;
    }
    total
}

/// The native (cpu backend) `grad_norm_final` (f32 steps: the cpu backend has no f16).
pub(crate) fn native_final(
    c: &crate::gpu::cpu::Constants,
) -> Result<Box<dyn crate::gpu::cpu::NativeKernel>, GpuError> {
    Ok(Box::new(NativeFinal {
        partials: c.usize("PARTIALS")?,
    }))
}

struct NativeFinal {
    partials: usize,
}

impl crate::gpu::cpu::NativeKernel for NativeFinal {
    fn bindings(&self) -> (usize, usize) {
        (4, 4)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 2
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        let s = io.step(0);
        let acc = io.f32(1)[..self.partials]
            .iter()
            .fold(0.0f32, |acc, p| acc + p);
        let norm = acc.sqrt() * s.grad_scale;
        let clip = if s.clip_max > 0.0 {
            (s.clip_max / (norm + 1e-6)).min(1.0)
        } else {
            1.0
        };
        let scalars = io.f32_mut(2);
        scalars[0] = clip;
        scalars[1] = norm;
        io.u32_mut(3)[5] = norm.to_bits();
    }
}
