//! Knowledge distillation (Hinton et al. 2015), fused forward + backward: the student's
//! loss mixes cross entropy on the labels with the KL divergence to a teacher's outputs
//! softened by a temperature `T`, scaled by `T²` so its gradient keeps its size as `T`
//! changes:
//!
//! `loss = α T² KL(softmax(t / T) ‖ softmax(z / T)) + (1 − α) CE(z, label)`,
//! `dz_j = α T (softmax(z / T)_j − softmax(t / T)_j) + (1 − α) (softmax(z)_j − [j = label])`.
//!
//! Accuracy and top-5 are the student's against the labels. A label `>= C` contributes
//! nothing (zero loss and gradient), as in cross entropy.

use super::LossOutput;
use crate::elementwise::wgsl_f32;
use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, grid_1d};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../../shaders/distill.wgsl");

/// `softmax(z / temperature)` and its log, in f64.
fn softened(z: &[f32], temperature: f64) -> (Vec<f64>, Vec<f64>) {
    let max = z
        .iter()
        .fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64 / temperature));
    let sum: f64 = z
        .iter()
        .map(|&v| (v as f64 / temperature - max).exp())
        .sum();
    let log_p: Vec<f64> = z
        .iter()
        .map(|&v| v as f64 / temperature - max - sum.ln())
        .collect();
    (log_p.iter().map(|l| l.exp()).collect(), log_p)
}

/// CPU reference over the first `rows` rows of the student's `logits` and the
/// `teacher`'s, both `[batch, classes]`.
pub fn distill_cpu(
    logits: &Tensor,
    teacher: &Tensor,
    labels: &[u32],
    rows: usize,
    temperature: f32,
    alpha: f32,
) -> LossOutput {
    let batch = logits.batch();
    let classes = logits.len() / batch.max(1);
    let mut grad = Tensor::zeros(&logits.shape);
    let (mut loss_sum, mut correct, mut top5) = (0.0f64, 0u64, 0u64);
    let (t, a) = (temperature as f64, alpha as f64);
    for r in 0..rows.min(batch) {
        let z = &logits.data[r * classes..(r + 1) * classes];
        let zt = &teacher.data[r * classes..(r + 1) * classes];
        let label = labels.get(r).copied().unwrap_or(u32::MAX) as usize;
        if label >= classes {
            continue;
        }
        let (p, log_p) = softened(z, 1.0);
        let (ps, log_ps) = softened(z, t);
        let (pt, log_pt) = softened(zt, t);
        let kl: f64 = (0..classes).map(|j| pt[j] * (log_pt[j] - log_ps[j])).sum();
        loss_sum += a * t * t * kl - (1.0 - a) * log_p[label];
        for j in 0..classes {
            let hard = p[j] - if j == label { 1.0 } else { 0.0 };
            grad.data[r * classes + j] = (a * t * (ps[j] - pt[j]) + (1.0 - a) * hard) as f32;
        }
        let (hit, hit5) = super::rank_hits(z, label);
        correct += hit;
        top5 += hit5;
    }
    LossOutput {
        loss_sum,
        correct,
        top5_correct: top5,
        grad,
    }
}

/// The fused kernel: per row, writes `dlogits` and `row_stats[3r..3r+3] = (loss, correct, top5)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatch(
    k: &mut KernelBuilder,
    step: &BufferRef,
    logits: &BufferRef,
    teacher: &BufferRef,
    labels: &BufferRef,
    dlogits: &BufferRef,
    row_stats: &BufferRef,
    batch: usize,
    classes: usize,
    temperature: f32,
    alpha: f32,
) -> Result<Dispatch, GpuError> {
    let (groups, stride) = grid_1d(batch);
    k.compute(
        "distill",
        &[WGSL],
        &[
            ("BATCH", batch.to_string()),
            ("C", classes.to_string()),
            ("STRIDE", stride.to_string()),
            ("TEMPERATURE", wgsl_f32(temperature)),
            ("ALPHA", wgsl_f32(alpha)),
        ],
        &[step, logits, teacher, labels, dlogits, row_stats],
        groups,
    )
}

/// The native (cpu backend) `distill`: the WGSL's per-row arithmetic (its maxima, its three
/// sums and the KL term in `j` order, all in f32), rows in fixed pieces on rayon's threads.
pub(crate) fn native(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeDistill {
        batch: c.usize("BATCH")?,
        classes: c.usize("C")?,
        temperature: c.f32_bits("TEMPERATURE")?,
        alpha: c.f32_bits("ALPHA")?,
    }))
}

struct NativeDistill {
    batch: usize,
    classes: usize,
    temperature: f32,
    alpha: f32,
}

/// Rows per piece of the native distillation loss.
const ROWS_PER_PIECE: usize = 64;

impl crate::gpu::cpu::NativeKernel for NativeDistill {
    fn bindings(&self) -> (usize, usize) {
        (6, 6)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 4
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let rows = io.step(0).rows as usize;
        let (batch, cc) = (self.batch, self.classes);
        let n = batch * cc;
        let (logits, teacher) = (&io.f32(1)[..n], &io.f32(2)[..n]);
        let labels = &io.u32(3)[..batch];
        let dlogits = &mut io.f32_mut(4)[..n];
        let stats = &mut io.f32_mut(5)[..3 * batch];
        let row = |r: usize, dz: &mut [f32], st: &mut [f32]| {
            let label = labels[r] as usize;
            if r >= rows || label >= cc {
                dz.fill(0.0);
                st.fill(0.0);
                return;
            }
            self.row(
                &logits[r * cc..(r + 1) * cc],
                &teacher[r * cc..(r + 1) * cc],
                label,
                dz,
                st,
            );
        };
        if cc == 0 {
            // No classes: every label is out of range (a degenerate shape).
            for (r, st) in stats.chunks_exact_mut(3).enumerate() {
                row(r, &mut [], st);
            }
            return;
        }
        let pieces = batch.div_ceil(ROWS_PER_PIECE);
        stats
            .par_chunks_mut(3 * ROWS_PER_PIECE)
            .zip(dlogits.par_chunks_mut(ROWS_PER_PIECE * cc))
            .with_min_len(crate::gpu::cpu::min_pieces(pieces, 4 * n))
            .enumerate()
            .for_each(|(p, (st, dz))| {
                for (k, (st, dz)) in st
                    .chunks_exact_mut(3)
                    .zip(dz.chunks_exact_mut(cc))
                    .enumerate()
                {
                    row(p * ROWS_PER_PIECE + k, dz, st);
                }
            });
    }
}

impl NativeDistill {
    /// One valid row (`label < C`, so `C >= 1`): `dz` and `st` = (loss, hit, top-5 hit).
    fn row(&self, z: &[f32], zt: &[f32], label: usize, dz: &mut [f32], st: &mut [f32]) {
        let (t, alpha) = (self.temperature, self.alpha);
        // Maxima of the student's logits (first maximum: its arg-max) and the teacher's.
        let (mut mx, mut arg, mut mt) = (z[0], 0, zt[0]);
        for (j, (&v, &vt)) in z.iter().zip(zt).enumerate() {
            if v > mx {
                mx = v;
                arg = j;
            }
            mt = mt.max(vt);
        }
        let (mut sum, mut sum_s, mut sum_t) = (0.0f32, 0.0f32, 0.0f32);
        for (&v, &vt) in z.iter().zip(zt) {
            sum += (v - mx).exp();
            sum_s += ((v - mx) / t).exp();
            sum_t += ((vt - mt) / t).exp();
        }
        let (log_sum, log_sum_s, log_sum_t) = (sum.ln(), sum_s.ln(), sum_t.ln());
        let zl = z[label];
        let mut kl = 0.0f32;
        let mut above = 0usize;
        for (j, ((&v, &vt), d)) in z.iter().zip(zt).zip(dz.iter_mut()).enumerate() {
            let log_ps = (v - mx) / t - log_sum_s;
            let log_pt = (vt - mt) / t - log_sum_t;
            let pt = log_pt.exp();
            kl += pt * (log_pt - log_ps);
            let mut hard = (v - mx - log_sum).exp();
            if j == label {
                hard -= 1.0;
            }
            *d = alpha * t * (log_ps.exp() - pt) + (1.0 - alpha) * hard;
            above += usize::from(v > zl);
        }
        st[0] = alpha * t * t * kl + (1.0 - alpha) * (mx + log_sum - zl);
        st[1] = if arg == label { 1.0 } else { 0.0 };
        st[2] = if above < 5 { 1.0 } else { 0.0 };
    }
}
