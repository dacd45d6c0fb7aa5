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

/// The native (cpu backend) `bias_grad`: per channel, samples in order, each sample's
/// positions summed in eight interleaved lanes (a fixed order of the cpu backend's own);
/// channels in fixed groups on rayon's threads.
pub(crate) fn native_bias_grad(
    c: &crate::gpu::cpu::Constants,
) -> Result<Box<dyn crate::gpu::cpu::NativeKernel>, GpuError> {
    Ok(Box::new(NativeBiasGrad {
        outer: c.usize("OUTER")?,
        channels: c.usize("CHANNELS")?,
        inner: c.usize("INNER")?,
    }))
}

struct NativeBiasGrad {
    outer: usize,
    channels: usize,
    inner: usize,
}

/// Channels per piece of the native bias gradient.
const BIAS_GROUP: usize = 64;

impl crate::gpu::cpu::NativeKernel for NativeBiasGrad {
    fn bindings(&self) -> (usize, usize) {
        (2, 2)
    }

    fn writes(&self, i: usize) -> bool {
        i == 1
    }

    fn check(&self, lens: &[usize], _grid: [u32; 3]) -> Result<(), String> {
        let dy = self.outer * self.channels * self.inner;
        if lens[0] < dy || lens[1] < self.channels {
            return Err(format!(
                "needs {dy} and {} words, {} and {} are bound",
                self.channels, lens[0], lens[1]
            ));
        }
        Ok(())
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use crate::gpu::cpu::{SendPtr, for_pieces_sized};
        let dy = io.f32(0);
        let db = SendPtr(io.f32_mut(1).as_mut_ptr());
        let (ch, inner) = (self.channels, self.inner);
        // Long planes (convolutions) get a piece per channel, short ones share pieces.
        let group = (BIAS_GROUP / inner.max(1)).clamp(1, BIAS_GROUP);
        for_pieces_sized(ch.div_ceil(group), self.outer * ch * inner, |g| {
            let c0 = g * group;
            let width = group.min(ch - c0);
            let mut acc = [0f32; BIAS_GROUP];
            for n in 0..self.outer {
                for (j, a) in acc[..width].iter_mut().enumerate() {
                    let base = (n * ch + c0 + j) * inner;
                    *a += lane_sum(&dy[base..base + inner]);
                }
            }
            // SAFETY: pieces own disjoint channel groups of `db` (bound with `channels` words).
            let out = unsafe { std::slice::from_raw_parts_mut(db.get().add(c0), width) };
            for (o, a) in out.iter_mut().zip(&acc) {
                *o += a;
            }
        });
    }
}

/// Sum of `v` in a fixed order that vectorises: eight interleaved partial sums, then
/// those in order (the same bits under any thread count).
fn lane_sum(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    let mut total = lanes.iter().fold(0.0, |a, l| a + l);
    for x in rest {
        total += x;
    }
    total
}
