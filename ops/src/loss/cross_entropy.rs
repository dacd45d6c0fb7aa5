//! Softmax cross entropy with label smoothing, fused forward + backward.
//!
//! With `q_j = eps / C + (1 - eps) [j == label]`: `loss = logsumexp(z) - sum_j q_j z_j`,
//! `dz_j = softmax(z)_j - q_j`. A label `>= C` contributes nothing (zero loss and gradient).

use super::LossOutput;
use crate::elementwise::wgsl_f32;
use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, grid_1d};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../../shaders/cross_entropy.wgsl");

/// CPU reference over the first `rows` rows of `logits` `[batch, classes]`.
pub fn cross_entropy_cpu(
    logits: &Tensor,
    labels: &[u32],
    rows: usize,
    label_smoothing: f32,
) -> LossOutput {
    cross_entropy_weighted_cpu(logits, labels, rows, label_smoothing, None)
}

/// [`cross_entropy_cpu`] with each row's loss and gradient scaled by `weights[label]`.
#[allow(clippy::needless_range_loop)]
pub fn cross_entropy_weighted_cpu(
    logits: &Tensor,
    labels: &[u32],
    rows: usize,
    label_smoothing: f32,
    weights: Option<&[f32]>,
) -> LossOutput {
    let batch = logits.batch();
    let classes = logits.len() / batch.max(1);
    let mut grad = Tensor::zeros(&logits.shape);
    let (mut loss_sum, mut correct, mut top5) = (0.0f64, 0u64, 0u64);
    let eps = label_smoothing as f64;
    for r in 0..rows.min(batch) {
        let z = &logits.data[r * classes..(r + 1) * classes];
        let label = labels.get(r).copied().unwrap_or(u32::MAX) as usize;
        if label >= classes {
            continue;
        }
        let max = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let sum: f64 = z.iter().map(|&v| (v as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        let zsum: f64 = z.iter().map(|&v| v as f64).sum();
        let w = weights.map_or(1.0, |w| f64::from(w.get(label).copied().unwrap_or(1.0)));
        loss_sum += w * (lse - (eps / classes as f64 * zsum + (1.0 - eps) * z[label] as f64));
        for j in 0..classes {
            let q = eps / classes as f64 + if j == label { 1.0 - eps } else { 0.0 };
            grad.data[r * classes + j] = (w * ((z[j] as f64 - max).exp() / sum - q)) as f32;
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
    labels: &BufferRef,
    dlogits: &BufferRef,
    row_stats: &BufferRef,
    batch: usize,
    classes: usize,
    label_smoothing: f32,
    class_weights: Option<&[f32]>,
) -> Result<Dispatch, GpuError> {
    let (groups, stride) = grid_1d(batch);
    // Unweighted, the shader multiplies by nothing (the same kernel as before weights).
    let (weights, weight) = match class_weights {
        Some(w) => (
            format!(
                "const WEIGHTS = array<f32, {}>({});",
                w.len(),
                w.iter()
                    // Rust's shortest round-trip decimal: WGSL reads back the same f32.
                    .map(|&v| format!("{v:?}f"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "WEIGHTS[label]".to_string(),
        ),
        None => (String::new(), "1.0".to_string()),
    };
    if class_weights.is_some_and(|w| w.len() != classes) {
        return Err(GpuError::InvalidConfig(format!(
            "cross_entropy has {classes} classes but {} class weights",
            class_weights.map_or(0, <[f32]>::len)
        )));
    }
    k.compute(
        "cross_entropy",
        &[WGSL],
        &[
            ("BATCH", batch.to_string()),
            ("C", classes.to_string()),
            ("STRIDE", stride.to_string()),
            ("SMOOTHING", wgsl_f32(label_smoothing)),
            ("WEIGHTS_DECL", weights),
            ("WEIGHT", weight),
            // Read by the native kernel only.
            (
                "CLASS_WEIGHTS",
                class_weights
                    .unwrap_or_default()
                    .iter()
                    .map(|w| wgsl_f32(*w))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ],
        &[step, logits, labels, dlogits, row_stats],
        groups,
    )
}

/// The native (cpu backend) `cross_entropy`: the WGSL's per-row arithmetic, rows in fixed
/// groups on rayon's threads.
pub(crate) fn native(
    c: &crate::gpu::cpu::Constants,
) -> Result<Box<dyn crate::gpu::cpu::NativeKernel>, GpuError> {
    Ok(Box::new(NativeCrossEntropy {
        batch: c.usize("BATCH")?,
        classes: c.usize("C")?,
        smoothing: c.f32_bits("SMOOTHING")?,
        weights: c.f32_list("CLASS_WEIGHTS")?,
    }))
}

struct NativeCrossEntropy {
    batch: usize,
    classes: usize,
    smoothing: f32,
    weights: Vec<f32>,
}

/// Rows per piece of the native cross entropy.
const ROWS_PER_PIECE: usize = 64;

impl crate::gpu::cpu::NativeKernel for NativeCrossEntropy {
    fn bindings(&self) -> (usize, usize) {
        (5, 5)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 3
    }

    fn check(&self, lens: &[usize], _grid: [u32; 3]) -> Result<(), String> {
        let z = self.batch * self.classes;
        if lens[1] < z || lens[2] < self.batch || lens[3] < z || lens[4] < 3 * self.batch {
            return Err(format!(
                "a batch of {} rows of {} classes does not fit the bound buffers",
                self.batch, self.classes
            ));
        }
        Ok(())
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use crate::gpu::cpu::{SendPtr, for_pieces};
        let rows = io.step(0).rows as usize;
        let logits = io.f32(1);
        let labels = io.u32(2);
        let dlogits = SendPtr(io.f32_mut(3).as_mut_ptr());
        let stats = SendPtr(io.f32_mut(4).as_mut_ptr());
        let (cc, eps) = (self.classes, self.smoothing);
        for_pieces(self.batch.div_ceil(ROWS_PER_PIECE), |piece| {
            let r0 = piece * ROWS_PER_PIECE;
            for r in r0..self.batch.min(r0 + ROWS_PER_PIECE) {
                // SAFETY: pieces own disjoint rows of `dlogits` [batch, C] and `row_stats`
                // [batch, 3], bound at those sizes.
                let (dz, st) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(dlogits.get().add(r * cc), cc),
                        std::slice::from_raw_parts_mut(stats.get().add(3 * r), 3),
                    )
                };
                let label = labels[r] as usize;
                if r >= rows || label >= cc {
                    dz.fill(0.0);
                    st.fill(0.0);
                    continue;
                }
                let z = &logits[r * cc..(r + 1) * cc];
                let (mut mx, mut arg, mut zsum) = (z[0], 0, 0.0f32);
                for (j, &v) in z.iter().enumerate() {
                    zsum += v;
                    if v > mx {
                        mx = v;
                        arg = j;
                    }
                }
                let sum: f32 = z.iter().map(|v| (v - mx).exp()).sum();
                let zl = z[label];
                let lse = mx + sum.ln();
                let w = self.weights.get(label).copied().unwrap_or(1.0);
                let mut above = 0;
                for (j, (&v, d)) in z.iter().zip(dz.iter_mut()).enumerate() {
                    let mut q = eps / cc as f32;
                    if j == label {
                        q += 1.0 - eps;
                    }
                    *d = w * ((v - mx).exp() / sum - q);
                    above += usize::from(v > zl);
                }
                st[0] = w * (lse - (eps / cc as f32 * zsum + (1.0 - eps) * zl));
                st[1] = if arg == label { 1.0 } else { 0.0 };
                st[2] = if above < 5 { 1.0 } else { 0.0 };
            }
        });
    }
}
