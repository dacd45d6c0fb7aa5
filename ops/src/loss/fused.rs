//! A loss as one fused kernel over the outputs and the labels or targets: its WGSL, its
//! parameters and its CPU reference. The regression losses (`mse`, `l1`, `huber`) and
//! every loss a program using this crate supplies are such losses; cross entropy (class
//! weights) and distillation (a teacher) bind more and have kernels of their own.
//!
//! The kernel runs one invocation per row (grid-stride: `{{BATCH}}` rows, `{{STRIDE}}`)
//! over `{{D}}` outputs per row and binds, in order: `S: Step` (uniform; `S.rows` valid
//! rows), `y` (the model's outputs), `labels: array<u32>` (class targets) or
//! `targets: array<f32>` (value targets, `D` per row), `dy` (read_write: the gradient of
//! the summed loss, not divided by the batch) and `row_stats` (read_write: per row, the
//! loss, 1.0 when its arg-max is the label, 1.0 when the label is among its 5 largest
//! outputs — zeros for value targets). Rows `>= S.rows` are padding: zero gradient and
//! statistics.

use std::fmt;
use std::sync::Arc;

use super::LossOutput;
use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, grid_1d};
use crate::tensor::Tensor;

/// What a loss compares the outputs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossTargets {
    /// Integer class ids (a classification data set).
    Classes,
    /// Float values, as many per sample as the model has outputs (regression).
    Values,
}

/// The targets a CPU reference reads.
#[derive(Clone, Copy, Debug)]
pub enum Truth<'a> {
    /// One class id per row.
    Classes(&'a [u32]),
    /// `D` values per row.
    Values(&'a [f32]),
}

/// The CPU reference: outputs `[batch, D]`, the targets, the number of valid rows.
pub type CpuLoss = Arc<dyn Fn(&Tensor, Truth<'_>, usize) -> LossOutput + Send + Sync>;

/// A loss computed by one fused kernel with the common bindings.
#[derive(Clone)]
pub struct FusedLoss {
    /// Its name (the kernel's name in plans and profiles).
    pub name: &'static str,
    pub targets: LossTargets,
    /// The kernel's WGSL (`shaders/common.wgsl`'s `Step` is in scope).
    pub wgsl: &'static str,
    /// Substitutions for its parameters, e.g. `("GAMMA", "2.0")` for `{{GAMMA}}`.
    pub defines: Vec<(&'static str, String)>,
    pub cpu: CpuLoss,
}

impl fmt::Debug for FusedLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FusedLoss")
            .field("name", &self.name)
            .field("targets", &self.targets)
            .field("defines", &self.defines)
            .finish_non_exhaustive()
    }
}

impl PartialEq for FusedLoss {
    /// Same name and parameters: the same loss (the kernel and reference come with the name).
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.targets == other.targets && self.defines == other.defines
    }
}

impl FusedLoss {
    /// The CPU reference over the first `rows` rows.
    pub fn cpu(&self, y: &Tensor, truth: Truth<'_>, rows: usize) -> LossOutput {
        (self.cpu)(y, truth, rows)
    }

    /// Its fused kernel over `batch` rows of `d` outputs; `truth` is the labels or the
    /// targets buffer, as [`FusedLoss::targets`] says.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dispatch(
        &self,
        k: &mut KernelBuilder,
        step: &BufferRef,
        y: &BufferRef,
        truth: &BufferRef,
        dy: &BufferRef,
        row_stats: &BufferRef,
        batch: usize,
        d: usize,
    ) -> Result<Dispatch, GpuError> {
        let (groups, stride) = grid_1d(batch);
        let mut defines = vec![
            ("BATCH", batch.to_string()),
            ("D", d.to_string()),
            ("STRIDE", stride.to_string()),
        ];
        defines.extend(self.defines.iter().cloned());
        k.compute(
            self.name,
            &[self.wgsl],
            &defines,
            &[step, y, truth, dy, row_stats],
            groups,
        )
    }
}

/// What the kernel computed for one batch, read back (see [`FusedLoss::run_gpu`]).
#[derive(Clone, Debug, PartialEq)]
pub struct KernelOutput {
    /// Gradient of the summed loss, `[batch, D]`.
    pub grad: Vec<f32>,
    /// Per row: loss, arg-max hit, top-5 hit.
    pub row_stats: Vec<f32>,
}

impl FusedLoss {
    /// Runs the kernel once over `y` `[batch, D]` (the first `rows` rows valid) and reads
    /// its outputs back: what a test compares with [`FusedLoss::cpu`].
    pub fn run_gpu(
        &self,
        gpu: &crate::gpu::Gpu,
        y: &Tensor,
        truth: Truth<'_>,
        rows: usize,
    ) -> Result<KernelOutput, GpuError> {
        let batch = y.shape.first().copied().unwrap_or(0);
        let d = y.data.len() / batch.max(1);
        let words = |n: usize| (n.max(1) * 4) as u64;
        let step = gpu.uniform_buffer(
            "step",
            std::mem::size_of::<crate::train::StepUniform>() as u64,
        )?;
        let uniform = crate::train::StepUniform {
            rows: rows as u32,
            ..Default::default()
        };
        gpu.write(&step, 0, &[uniform])?;
        let y_buf = gpu.storage_buffer("y", words(y.data.len()))?;
        gpu.write(&y_buf, 0, &y.data)?;
        let truth_buf = match truth {
            Truth::Classes(labels) => {
                let b = gpu.storage_buffer("labels", words(batch))?;
                gpu.write(&b, 0, labels)?;
                b
            }
            Truth::Values(values) => {
                let b = gpu.storage_buffer("targets", words(batch * d))?;
                gpu.write(&b, 0, values)?;
                b
            }
        };
        let dy = gpu.storage_buffer("dy", words(batch * d))?;
        let stats = gpu.storage_buffer("row_stats", words(batch * 3))?;
        // Poisoned, so that a value the kernel does not write is seen.
        gpu.write(&dy, 0, &vec![f32::NAN; batch * d])?;
        gpu.write(&stats, 0, &vec![f32::NAN; batch * 3])?;
        let mut k = KernelBuilder::new(gpu);
        let dispatch = self.dispatch(
            &mut k,
            &BufferRef::whole(&step),
            &BufferRef::whole(&y_buf),
            &BufferRef::whole(&truth_buf),
            &BufferRef::whole(&dy),
            &BufferRef::whole(&stats),
            batch,
            d,
        )?;
        gpu.submit_dispatches([&dispatch])?;
        Ok(KernelOutput {
            grad: gpu.read_f32(&BufferRef::whole(&dy).words(0, (batch * d) as u64))?,
            row_stats: gpu.read_f32(&BufferRef::whole(&stats).words(0, (batch * 3) as u64))?,
        })
    }
}

/// Rows per piece of the native per-value losses: fixed, so the work splits the same way
/// under any thread count (each row's sum runs in one piece, in `j` order).
const ROWS_PER_PIECE: usize = 64;

/// The native (cpu backend) kernel of a per-value loss (`mse`, `l1`, `huber`): per row,
/// `term(diff)` gives each value's loss and its `dy` before the division by `D`, as the
/// WGSL computes them; the row's loss is their sum, in `j` order, over `D`.
pub(crate) fn native_per_value<F>(
    c: &crate::gpu::cpu::Constants,
    term: F,
) -> crate::elementwise::NativeResult
where
    F: Fn(f32) -> (f32, f32) + Send + Sync + 'static,
{
    Ok(Box::new(NativePerValue {
        batch: c.usize("BATCH")?,
        d: c.usize("D")?,
        term,
    }))
}

struct NativePerValue<F> {
    batch: usize,
    d: usize,
    term: F,
}

impl<F: Fn(f32) -> (f32, f32) + Send + Sync> crate::gpu::cpu::NativeKernel for NativePerValue<F> {
    fn bindings(&self) -> (usize, usize) {
        (5, 5)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 3
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let rows = io.step(0).rows as usize;
        let (batch, d) = (self.batch, self.d);
        let n = batch * d;
        let (y, t) = (&io.f32(1)[..n], &io.f32(2)[..n]);
        let dy = &mut io.f32_mut(3)[..n];
        let stats = &mut io.f32_mut(4)[..3 * batch];
        let df = d as f32;
        // One row: its `dy` and statistics, the loss summed in `j` order.
        let row = |r: usize, dy: &mut [f32], st: &mut [f32]| {
            let valid = r < rows;
            let (y, t) = (&y[r * d..(r + 1) * d], &t[r * d..(r + 1) * d]);
            let mut acc = 0.0f32;
            for ((dy, &y), &t) in dy.iter_mut().zip(y).zip(t) {
                let (value, grad) = (self.term)(y - t);
                acc += value;
                *dy = if valid { grad / df } else { 0.0 };
            }
            st[0] = if valid { acc / df } else { 0.0 };
            st[1] = 0.0;
            st[2] = 0.0;
        };
        if d == 0 {
            // No values to split by: statistics only (a degenerate shape).
            for (r, st) in stats.chunks_exact_mut(3).enumerate() {
                row(r, &mut [], st);
            }
            return;
        }
        let pieces = batch.div_ceil(ROWS_PER_PIECE);
        stats
            .par_chunks_mut(3 * ROWS_PER_PIECE)
            .zip(dy.par_chunks_mut(ROWS_PER_PIECE * d))
            .with_min_len(crate::gpu::cpu::min_pieces(pieces, n))
            .enumerate()
            .for_each(|(p, (st, dy))| {
                for (k, (st, dy)) in st
                    .chunks_exact_mut(3)
                    .zip(dy.chunks_exact_mut(d))
                    .enumerate()
                {
                    row(p * ROWS_PER_PIECE + k, dy, st);
                }
            });
    }
}
