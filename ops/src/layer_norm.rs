//! Layer normalisation over the last dimension, with a learnable scale `weight` (γ) and
//! shift `bias` (β), PyTorch's names: `y = (x - mean) / sqrt(var + eps) * weight + bias`
//! (biased variance).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::elementwise::wgsl_f32;
use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo, grid_1d};
use crate::op::{CpuCtx, Op, ParamFill, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const FORWARD_WGSL: &str = include_str!("../../shaders/layer_norm_forward.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../shaders/layer_norm_backward.wgsl");
const PARAMS_WGSL: &str = include_str!("../../shaders/layer_norm_backward_params.wgsl");

/// Attributes of a layer normalisation layer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LayerNormAttrs {
    /// Added to the variance before the square root, for stability (default 1e-5).
    #[serde(default = "default_eps")]
    pub eps: f32,
}

fn default_eps() -> f32 {
    1e-5
}

impl Default for LayerNormAttrs {
    fn default() -> Self {
        LayerNormAttrs { eps: default_eps() }
    }
}

/// The layer-norm op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNorm {
    pub attrs: LayerNormAttrs,
}

impl LayerNorm {
    /// Per row: (mean, rstd) in f64.
    fn stats(&self, row: &[f32]) -> (f64, f64) {
        let d = row.len() as f64;
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d;
        (mean, 1.0 / (var + self.attrs.eps as f64).sqrt())
    }

    fn subst(&self, io: &LayerIo, n: usize) -> Vec<(&'static str, String)> {
        let d = *io.input_shape.last().unwrap_or(&1);
        let rows = io.batch * numel(&io.input_shape) / d.max(1);
        let (_, stride) = grid_1d(n);
        vec![
            ("D", d.to_string()),
            ("ROWS", rows.to_string()),
            ("STRIDE", stride.to_string()),
            ("EPS", wgsl_f32(self.attrs.eps)),
        ]
    }
}

impl Op for LayerNorm {
    fn kind(&self) -> &'static str {
        "layer_norm"
    }
    fn check_attrs(&self) -> Result<(), String> {
        let eps = self.attrs.eps;
        if eps.is_finite() && eps > 0.0 {
            Ok(())
        } else {
            Err(format!("layer_norm eps must be positive, found {eps}"))
        }
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        match input.last() {
            Some(&d) if d > 0 => Ok(input.to_vec()),
            _ => Err(ShapeError::new(
                "layer_norm",
                "at least 1 dim with a non-zero last dim",
                input,
            )),
        }
    }
    fn params(&self, input: &[usize]) -> Vec<ParamSpec> {
        let d = input.last().copied().unwrap_or(0);
        vec![
            ParamSpec {
                name: "weight",
                shape: vec![d],
                fan_in: d,
                fan_out: d,
                fill: ParamFill::Ones,
            },
            ParamSpec {
                name: "bias",
                shape: vec![d],
                fan_in: d,
                fan_out: d,
                fill: ParamFill::Zeros,
            },
        ]
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        8 * numel(input) as u64
    }
    fn is_elementwise(&self) -> bool {
        false
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        use crate::onnx::Attr;
        ctx.with_params(
            "LayerNormalization",
            vec![
                ("axis", Attr::Int(-1)),
                ("epsilon", Attr::Float(self.attrs.eps)),
            ],
        );
        Ok(())
    }
    fn scratch_words(&self, input: &[usize], batch: usize) -> usize {
        let d = input.last().copied().unwrap_or(1).max(1);
        2 * batch * numel(input) / d
    }
    fn forward_cpu(&self, x: &Tensor, params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let d = *x.shape.last().unwrap_or(&1);
        let (gamma, beta) = (&params[0].data, &params[1].data);
        let mut y = x.clone();
        for (row, out) in x.data.chunks(d).zip(y.data.chunks_mut(d)) {
            let (mean, rstd) = self.stats(row);
            for j in 0..d {
                out[j] = ((row[j] as f64 - mean) * rstd * gamma[j] as f64 + beta[j] as f64) as f32;
            }
        }
        y
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        params: &[Tensor],
        _y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let d = *x.shape.last().unwrap_or(&1);
        let gamma = &params[0].data;
        let mut dx = x.clone();
        let mut dgamma = vec![0.0f64; d];
        let mut dbeta = vec![0.0f64; d];
        for ((row, drow), out) in x
            .data
            .chunks(d)
            .zip(dy.data.chunks(d))
            .zip(dx.data.chunks_mut(d))
        {
            let (mean, rstd) = self.stats(row);
            let xhat: Vec<f64> = row.iter().map(|&v| (v as f64 - mean) * rstd).collect();
            let g: Vec<f64> = (0..d).map(|j| drow[j] as f64 * gamma[j] as f64).collect();
            let mean_g = g.iter().sum::<f64>() / d as f64;
            let mean_gx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / d as f64;
            for j in 0..d {
                out[j] = (rstd * (g[j] - mean_g - xhat[j] * mean_gx)) as f32;
                dgamma[j] += drow[j] as f64 * xhat[j];
                dbeta[j] += drow[j] as f64;
            }
        }
        let f = |v: Vec<f64>| Tensor {
            shape: vec![d],
            data: v.into_iter().map(|a| a as f32).collect(),
        };
        (dx, vec![f(dgamma), f(dbeta)])
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let stats = io
            .scratch
            .as_ref()
            .ok_or_else(|| GpuError::InvalidModel("layer_norm needs scratch".into()))?;
        let rows =
            io.batch * numel(&io.input_shape) / io.input_shape.last().copied().unwrap_or(1).max(1);
        let s = self.subst(io, rows);
        let d = k.compute(
            "layer_norm_forward",
            &[FORWARD_WGSL],
            &s,
            &[&io.x, &io.params[0], &io.params[1], &io.y, stats],
            grid_1d(rows).0,
        )?;
        Ok(vec![d])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let stats = io
            .scratch
            .as_ref()
            .ok_or_else(|| GpuError::InvalidModel("layer_norm needs scratch".into()))?;
        let dim = io.input_shape.last().copied().unwrap_or(1);
        let rows = io.batch * numel(&io.input_shape) / dim.max(1);
        let mut out = Vec::new();
        let s = self.subst(io, dim);
        out.push(k.compute(
            "layer_norm_backward_params",
            &[PARAMS_WGSL],
            &s,
            &[&io.x, &io.dy, stats, &io.grads[0], &io.grads[1]],
            grid_1d(dim).0,
        )?);
        if let Some(dx) = &io.dx {
            let s = self.subst(io, rows);
            out.push(k.compute(
                "layer_norm_backward",
                &[BACKWARD_WGSL],
                &s,
                &[&io.x, &io.params[0], &io.dy, stats, dx],
                grid_1d(rows).0,
            )?);
        }
        Ok(out)
    }
}

/// The native (cpu backend) layer norm kernels (`layer_norm_forward`, `_backward`,
/// `_backward_params`): the WGSL's arithmetic and summation orders, rows (or, for the
/// parameter gradients, columns) in fixed pieces.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    NativeLayerNorm::of(c, Pass::Forward)
}

/// See [`native_forward`].
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    NativeLayerNorm::of(c, Pass::Backward)
}

/// See [`native_forward`].
pub(crate) fn native_backward_params(
    c: &crate::gpu::cpu::Constants,
) -> crate::elementwise::NativeResult {
    NativeLayerNorm::of(c, Pass::Params)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Forward,
    Backward,
    Params,
}

struct NativeLayerNorm {
    d: usize,
    rows: usize,
    eps: f32,
    pass: Pass,
}

impl NativeLayerNorm {
    fn of(c: &crate::gpu::cpu::Constants, pass: Pass) -> crate::elementwise::NativeResult {
        Ok(Box::new(NativeLayerNorm {
            d: c.usize("D")?.max(1),
            rows: c.usize("ROWS")?,
            eps: c.f32_bits("EPS")?,
            pass,
        }))
    }
}

impl crate::gpu::cpu::NativeKernel for NativeLayerNorm {
    fn bindings(&self) -> (usize, usize) {
        (5, 5)
    }

    fn writes(&self, i: usize) -> bool {
        match self.pass {
            Pass::Forward => i >= 3,
            Pass::Backward => i == 4,
            Pass::Params => i >= 3,
        }
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let (d, n) = (self.d, self.rows * self.d);
        let df = d as f32;
        match self.pass {
            Pass::Forward => {
                let (x, gamma, beta) = (&io.f32(0)[..n], io.f32(1), io.f32(2));
                io.f32_mut(3)[..n]
                    .par_chunks_mut(d)
                    .zip(io.f32_mut(4)[..2 * self.rows].par_chunks_mut(2))
                    .zip(x.par_chunks(d))
                    .for_each(|((y, st), x)| {
                        let mean = x.iter().fold(0.0f32, |s, &v| s + v) / df;
                        let sq = x.iter().fold(0.0f32, |s, &v| s + (v - mean) * (v - mean));
                        let rstd = 1.0 / (sq / df + self.eps).sqrt();
                        for (j, (y, &v)) in y.iter_mut().zip(x).enumerate() {
                            *y = (v - mean) * rstd * gamma[j] + beta[j];
                        }
                        st[0] = mean;
                        st[1] = rstd;
                    });
            }
            Pass::Backward => {
                let (x, gamma, dy, stats) = (&io.f32(0)[..n], io.f32(1), io.f32(2), io.f32(3));
                io.f32_mut(4)[..n]
                    .par_chunks_mut(d)
                    .enumerate()
                    .for_each(|(row, dx)| {
                        let (x, dy) = (&x[row * d..][..d], &dy[row * d..][..d]);
                        let (mean, rstd) = (stats[2 * row], stats[2 * row + 1]);
                        let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
                        for j in 0..d {
                            let g = dy[j] * gamma[j];
                            sum_g += g;
                            sum_gx += g * (x[j] - mean) * rstd;
                        }
                        let (mean_g, mean_gx) = (sum_g / df, sum_gx / df);
                        for j in 0..d {
                            let xhat = (x[j] - mean) * rstd;
                            dx[j] = rstd * (dy[j] * gamma[j] - mean_g - xhat * mean_gx);
                        }
                    });
            }
            Pass::Params => {
                let (x, dy, stats) = (io.f32(0), io.f32(1), io.f32(2));
                io.f32_mut(3)[..d]
                    .par_iter_mut()
                    .zip(io.f32_mut(4)[..d].par_iter_mut())
                    .enumerate()
                    .for_each(|(j, (dg, db))| {
                        let (mut sg, mut sb) = (0.0f32, 0.0f32);
                        for row in 0..self.rows {
                            let i = row * d + j;
                            let xhat = (x[i] - stats[2 * row]) * stats[2 * row + 1];
                            sg += dy[i] * xhat;
                            sb += dy[i];
                        }
                        *dg += sg;
                        *db += sb;
                    });
            }
        }
    }
}
