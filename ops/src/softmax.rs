//! `softmax` and `log_softmax` over the last dimension, as layers: a model whose output is
//! probabilities (or log-probabilities). One file for both: they share their kernels, one
//! invocation per row (the row's maximum first, so no exponential overflows).
//! `log_softmax` before `cross_entropy` trains exactly as the logits would (cross entropy
//! of log-probabilities is that of the logits); `softmax` before it is refused by the
//! checks (cross entropy applies softmax itself).

use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const FORWARD_WGSL: &str = include_str!("../../shaders/softmax_forward.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../shaders/softmax_backward.wgsl");

/// The softmax op (`log: false`) or the log-softmax op (`log: true`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Softmax {
    pub log: bool,
}

impl Softmax {
    fn subst(&self, io: &LayerIo) -> Vec<(&'static str, String)> {
        let d = *io.input_shape.last().unwrap_or(&1);
        vec![("D", d.to_string()), ("LOG", self.log.to_string())]
    }

    fn rows(io: &LayerIo) -> usize {
        let d = io.input_shape.last().copied().unwrap_or(1).max(1);
        io.batch * numel(&io.input_shape) / d
    }
}

impl Op for Softmax {
    fn kind(&self) -> &'static str {
        if self.log { "log_softmax" } else { "softmax" }
    }
    fn check_attrs(&self) -> Result<(), String> {
        Ok(())
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        match input.last() {
            Some(&d) if d > 0 => Ok(input.to_vec()),
            _ => Err(ShapeError::new(
                self.kind(),
                "at least 1 dim with a non-zero last dim",
                input,
            )),
        }
    }
    fn params(&self, _input: &[usize]) -> Vec<ParamSpec> {
        vec![]
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        4 * numel(input) as u64
    }
    fn is_elementwise(&self) -> bool {
        false
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        use crate::onnx::Attr;
        let op = if self.log { "LogSoftmax" } else { "Softmax" };
        ctx.with_params(op, vec![("axis", Attr::Int(-1))]);
        Ok(())
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let d = *x.shape.last().unwrap_or(&1);
        let mut y = x.clone();
        for (row, out) in x.data.chunks(d).zip(y.data.chunks_mut(d)) {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            for (o, &v) in out.iter_mut().zip(row) {
                let z = v as f64 - max;
                *o = if self.log {
                    z - sum.ln()
                } else {
                    z.exp() / sum
                } as f32;
            }
        }
        y
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        _params: &[Tensor],
        y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let d = *x.shape.last().unwrap_or(&1);
        let mut dx = x.clone();
        for ((yr, gr), out) in y
            .data
            .chunks(d)
            .zip(dy.data.chunks(d))
            .zip(dx.data.chunks_mut(d))
        {
            if self.log {
                // dx = dy - softmax · Σ dy
                let total: f64 = gr.iter().map(|&g| g as f64).sum();
                for j in 0..d {
                    out[j] = (gr[j] as f64 - (yr[j] as f64).exp() * total) as f32;
                }
            } else {
                // dx = y · (dy - Σ dy·y)
                let dot: f64 = yr.iter().zip(gr).map(|(&a, &b)| a as f64 * b as f64).sum();
                for j in 0..d {
                    out[j] = (yr[j] as f64 * (gr[j] as f64 - dot)) as f32;
                }
            }
        }
        (dx, vec![])
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let d = k.compute_1d(
            "softmax_forward",
            &[FORWARD_WGSL],
            Self::rows(io),
            &self.subst(io),
            &[&io.x, &io.y],
        )?;
        Ok(vec![d])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let Some(dx) = &io.dx else { return Ok(vec![]) };
        let d = k.compute_1d(
            "softmax_backward",
            &[BACKWARD_WGSL],
            Self::rows(io),
            &self.subst(io),
            &[&io.y, &io.dy, dx],
        )?;
        Ok(vec![d])
    }
}

/// The native (cpu backend) `softmax_forward`: the WGSL's per-row arithmetic (log-softmax
/// with `LOG`), rows in fixed pieces.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeSoftmax {
        rows: c.usize("N")?,
        d: c.usize("D")?,
        log: c.bool("LOG")?,
        backward: false,
    }))
}

/// The native (cpu backend) `softmax_backward`.
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeSoftmax {
        rows: c.usize("N")?,
        d: c.usize("D")?,
        log: c.bool("LOG")?,
        backward: true,
    }))
}

struct NativeSoftmax {
    rows: usize,
    d: usize,
    log: bool,
    backward: bool,
}

impl crate::gpu::cpu::NativeKernel for NativeSoftmax {
    fn bindings(&self) -> (usize, usize) {
        if self.backward { (3, 3) } else { (2, 2) }
    }

    fn writes(&self, i: usize) -> bool {
        i == if self.backward { 2 } else { 1 }
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let (d, n) = (self.d.max(1), self.rows * self.d);
        if self.backward {
            let (y, dy) = (&io.f32(0)[..n], &io.f32(1)[..n]);
            io.f32_mut(2)[..n]
                .par_chunks_mut(d)
                .zip(y.par_chunks(d).zip(dy.par_chunks(d)))
                .for_each(|(dx, (y, dy))| {
                    let s = y
                        .iter()
                        .zip(dy)
                        .fold(0.0f32, |s, (&y, &g)| s + if self.log { g } else { g * y });
                    for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(dy) {
                        *dx = if self.log {
                            g - y.exp() * s
                        } else {
                            y * (g - s)
                        };
                    }
                });
            return;
        }
        let x = &io.f32(0)[..n];
        io.f32_mut(1)[..n]
            .par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .for_each(|(y, x)| {
                let m = x[1..].iter().fold(x[0], |m, &v| m.max(v));
                let sum = x.iter().fold(0.0f32, |s, &v| s + (v - m).exp());
                let log_sum = sum.ln();
                for (y, &v) in y.iter_mut().zip(x) {
                    let z = v - m;
                    *y = if self.log { z - log_sum } else { z.exp() / sum };
                }
            });
    }
}
