//! Batch normalisation over the channels of `[C, ...]` (`[F]` features, `[C, L]` or
//! `[C, H, W]` maps; PyTorch's BatchNorm1d and BatchNorm2d): in training each channel is
//! normalised with the mean and biased variance of the batch's valid rows, and the running
//! statistics move towards them with `momentum` (the running variance from the unbiased
//! variance); in evaluation the running statistics are used. `y = (x - mean) /
//! sqrt(var + eps) * weight + bias`. Tensors (PyTorch's names): learnable `weight`,
//! `bias`; buffers `running_mean`, `running_var`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::elementwise::wgsl_f32;
use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamFill, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const STATS_WGSL: &str = include_str!("../../shaders/batch_norm_stats.wgsl");
const FORWARD_WGSL: &str = include_str!("../../shaders/batch_norm_forward.wgsl");
const PARAMS_WGSL: &str = include_str!("../../shaders/batch_norm_backward_params.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../shaders/batch_norm_backward.wgsl");

/// Most workgroups a per-channel kernel launches (one per channel; more channels loop).
const MAX_CHANNEL_GROUPS: usize = 65_535;

/// Attributes of a batch normalisation layer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchNormAttrs {
    /// Weight of the batch's statistics in each update of the running ones:
    /// `running = (1 - momentum) * running + momentum * batch` (default 0.1, PyTorch's).
    #[serde(default = "default_momentum")]
    pub momentum: f32,
    /// Added to the variance before the square root, for stability (default 1e-5).
    #[serde(default = "default_eps")]
    pub eps: f32,
}

fn default_momentum() -> f32 {
    0.1
}

fn default_eps() -> f32 {
    1e-5
}

impl Default for BatchNormAttrs {
    fn default() -> Self {
        BatchNormAttrs {
            momentum: default_momentum(),
            eps: default_eps(),
        }
    }
}

/// The batch-norm op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm {
    pub attrs: BatchNormAttrs,
}

/// `(channels, values per channel per sample)` of a per-sample shape `[C, ...]`.
fn layout(input: &[usize]) -> (usize, usize) {
    (input[0], numel(&input[1..]))
}

/// Per channel, the `(mean, biased variance, count)` over every sample of a CPU batch.
fn batch_stats(x: &Tensor) -> Vec<(f64, f64, usize)> {
    let (c, sp) = layout(x.sample_shape());
    let values = |ch: usize| {
        (0..x.batch()).flat_map(move |n| {
            let at = (n * c + ch) * sp;
            x.data[at..at + sp].iter().map(|&v| v as f64)
        })
    };
    (0..c)
        .map(|ch| {
            let m = x.batch() * sp;
            let mean = values(ch).sum::<f64>() / m.max(1) as f64;
            let var = values(ch).map(|v| (v - mean).powi(2)).sum::<f64>() / m.max(1) as f64;
            (mean, var, m)
        })
        .collect()
}

impl BatchNorm {
    /// CPU reference of the running statistics after one training forward on `x`:
    /// `(running_mean, running_var)` from the current ones.
    pub fn running_update_cpu(
        &self,
        x: &Tensor,
        running_mean: &[f32],
        running_var: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let m = self.attrs.momentum as f64;
        batch_stats(x)
            .iter()
            .enumerate()
            .map(|(c, &(mean, var, count))| {
                let unbiased = if count > 1 {
                    var * count as f64 / (count - 1) as f64
                } else {
                    var
                };
                (
                    ((1.0 - m) * running_mean[c] as f64 + m * mean) as f32,
                    ((1.0 - m) * running_var[c] as f64 + m * unbiased) as f32,
                )
            })
            .unzip()
    }

    /// Per channel `(mean, 1 / sqrt(var + eps))`: the batch's in training, else the
    /// running statistics (`params[2]`, `params[3]`).
    fn norm(&self, x: &Tensor, params: &[Tensor], train: bool) -> Vec<(f64, f64)> {
        let eps = self.attrs.eps as f64;
        if train {
            batch_stats(x)
                .into_iter()
                .map(|(mean, var, _)| (mean, 1.0 / (var + eps).sqrt()))
                .collect()
        } else {
            params[2]
                .data
                .iter()
                .zip(&params[3].data)
                .map(|(&m, &v)| (m as f64, 1.0 / (v as f64 + eps).sqrt()))
                .collect()
        }
    }

    fn subst(&self, io: &LayerIo) -> Vec<(&'static str, String)> {
        let (c, sp) = layout(&io.input_shape);
        vec![
            ("C", c.to_string()),
            ("SPATIAL", sp.to_string()),
            ("EPS", wgsl_f32(self.attrs.eps)),
            ("MOMENTUM", wgsl_f32(self.attrs.momentum)),
            ("GROUPS", c.min(MAX_CHANNEL_GROUPS).to_string()),
            ("EVAL", (!io.train).to_string()),
        ]
    }
}

fn scratch(io: &LayerIo) -> Result<&crate::gpu::BufferRef, GpuError> {
    io.scratch
        .as_ref()
        .ok_or_else(|| GpuError::InvalidModel("batch_norm needs scratch".into()))
}

impl Op for BatchNorm {
    fn kind(&self) -> &'static str {
        "batch_norm"
    }
    fn check_attrs(&self) -> Result<(), String> {
        let BatchNormAttrs { momentum, eps } = self.attrs;
        if !(eps.is_finite() && eps > 0.0) {
            return Err(format!("batch_norm eps must be positive, found {eps}"));
        }
        if !(0.0..=1.0).contains(&momentum) {
            return Err(format!(
                "batch_norm momentum must be in [0, 1], found {momentum}"
            ));
        }
        Ok(())
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        if input.is_empty() || input.contains(&0) {
            return Err(ShapeError::new(
                "batch_norm",
                "[features], [channels, length] or [channels, height, width]",
                input,
            ));
        }
        Ok(input.to_vec())
    }
    fn params(&self, input: &[usize]) -> Vec<ParamSpec> {
        let c = input.first().copied().unwrap_or(0);
        let spec = |name, fill| ParamSpec {
            name,
            shape: vec![c],
            fan_in: c,
            fan_out: c,
            fill,
        };
        vec![
            spec("weight", ParamFill::Ones),
            spec("bias", ParamFill::Zeros),
        ]
    }
    fn buffers(&self, input: &[usize]) -> Vec<ParamSpec> {
        let c = input.first().copied().unwrap_or(0);
        let spec = |name, fill| ParamSpec {
            name,
            shape: vec![c],
            fan_in: c,
            fan_out: c,
            fill,
        };
        vec![
            spec("running_mean", ParamFill::Zeros),
            spec("running_var", ParamFill::Ones),
        ]
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        6 * numel(input) as u64
    }
    fn is_elementwise(&self) -> bool {
        false
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        use crate::onnx::Attr;
        // Evaluation mode: the running statistics (the buffers after weight and bias).
        ctx.with_params(
            "BatchNormalization",
            vec![("epsilon", Attr::Float(self.attrs.eps))],
        );
        Ok(())
    }
    fn scratch_words(&self, input: &[usize], _batch: usize) -> usize {
        // Batch mean and rstd, then the backward's two sums, per channel.
        4 * input.first().copied().unwrap_or(1)
    }
    fn forward_cpu(&self, x: &Tensor, params: &[Tensor], ctx: &CpuCtx) -> Tensor {
        let (c, sp) = layout(x.sample_shape());
        let norm = self.norm(x, params, ctx.train);
        let (w, b) = (&params[0].data, &params[1].data);
        let mut y = x.clone();
        for (i, v) in y.data.iter_mut().enumerate() {
            let ch = (i / sp) % c;
            let (mean, rstd) = norm[ch];
            *v = ((*v as f64 - mean) * rstd * w[ch] as f64 + b[ch] as f64) as f32;
        }
        y
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        params: &[Tensor],
        _y: &Tensor,
        dy: &Tensor,
        ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let (c, sp) = layout(x.sample_shape());
        let norm = self.norm(x, params, ctx.train);
        let w = &params[0].data;
        let xhat = |i: usize| {
            let (mean, rstd) = norm[(i / sp) % c];
            (x.data[i] as f64 - mean) * rstd
        };
        let (mut sum_dy, mut sum_dyx) = (vec![0.0f64; c], vec![0.0f64; c]);
        for (i, &g) in dy.data.iter().enumerate() {
            let ch = (i / sp) % c;
            sum_dy[ch] += g as f64;
            sum_dyx[ch] += g as f64 * xhat(i);
        }
        let m = (x.batch() * sp).max(1) as f64;
        let mut dx = x.clone();
        for (i, v) in dx.data.iter_mut().enumerate() {
            let ch = (i / sp) % c;
            let scale = w[ch] as f64 * norm[ch].1;
            let g = dy.data[i] as f64;
            *v = if ctx.train {
                scale * (g - sum_dy[ch] / m - xhat(i) * sum_dyx[ch] / m)
            } else {
                scale * g
            } as f32;
        }
        let f = |v: Vec<f64>| Tensor {
            shape: vec![c],
            data: v.into_iter().map(|a| a as f32).collect(),
        };
        (dx, vec![f(sum_dyx), f(sum_dy)])
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let (c, _) = layout(&io.input_shape);
        let s = self.subst(io);
        let n = io.batch * numel(&io.input_shape);
        let [weight, bias, running_mean, running_var] = io.params.as_slice() else {
            return Err(GpuError::InvalidModel(
                "batch_norm needs weight, bias, running_mean and running_var".into(),
            ));
        };
        if !io.train {
            let d = k.compute_1d(
                "batch_norm_forward",
                &[FORWARD_WGSL],
                n,
                &s,
                &[&io.x, weight, bias, running_mean, running_var, &io.y],
            )?;
            return Ok(vec![d]);
        }
        let stats = scratch(io)?;
        let groups = c.min(MAX_CHANNEL_GROUPS) as u32;
        Ok(vec![
            k.compute(
                "batch_norm_stats",
                &[STATS_WGSL],
                &s,
                &[&io.step, &io.x, stats, running_mean, running_var],
                [groups, 1, 1],
            )?,
            k.compute_1d(
                "batch_norm_forward",
                &[FORWARD_WGSL],
                n,
                &s,
                &[&io.x, weight, bias, stats, stats, &io.y],
            )?,
        ])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let (c, _) = layout(&io.input_shape);
        let s = self.subst(io);
        let scratch = scratch(io)?;
        let [dweight, dbias, ..] = io.grads.as_slice() else {
            return Err(GpuError::InvalidModel(
                "batch_norm needs the gradients of weight and bias".into(),
            ));
        };
        let groups = c.min(MAX_CHANNEL_GROUPS) as u32;
        let mut out = vec![k.compute(
            "batch_norm_backward_params",
            &[PARAMS_WGSL],
            &s,
            &[&io.step, &io.x, &io.dy, scratch, dweight, dbias],
            [groups, 1, 1],
        )?];
        if let Some(dx) = &io.dx {
            let n = io.batch * numel(&io.input_shape);
            out.push(k.compute_1d(
                "batch_norm_backward",
                &[BACKWARD_WGSL],
                n,
                &s,
                &[&io.step, &io.x, &io.params[0], &io.dy, scratch, dx],
            )?);
        }
        Ok(out)
    }
}

/// Lanes of the WGSL's workgroup reduction, which the native kernels reproduce bit for bit:
/// lane `t` sums elements `t, t + 256, ...` in order, then the lanes fold as a tree.
const NATIVE_LANES: usize = 256;

/// The WGSL's two-level sum of `f(j)` for `j < m` (see [`NATIVE_LANES`]).
fn lane_tree_sum<T: Copy + Default + std::ops::AddAssign>(m: usize, f: impl Fn(usize) -> T) -> T {
    let mut part = [T::default(); NATIVE_LANES];
    for (t, p) in part.iter_mut().enumerate() {
        let mut acc = T::default();
        let mut j = t;
        while j < m {
            acc += f(j);
            j += NATIVE_LANES;
        }
        *p = acc;
    }
    let mut w = NATIVE_LANES / 2;
    while w > 0 {
        for t in 0..w {
            let v = part[t + w];
            part[t] += v;
        }
        w /= 2;
    }
    part[0]
}

/// A pair summed as the WGSL's `vec2<f32>`.
#[derive(Clone, Copy, Default)]
struct Pair(f32, f32);

impl std::ops::AddAssign for Pair {
    fn add_assign(&mut self, o: Pair) {
        self.0 += o.0;
        self.1 += o.1;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NativePass {
    Stats,
    Forward { eval: bool },
    Backward,
    Params,
}

/// The native (cpu backend) batch norm kernels; one piece per channel (statistics) or per
/// fixed group of elements.
struct NativeBatchNorm {
    c: usize,
    sp: usize,
    eps: f32,
    momentum: f32,
    n: usize,
    pass: NativePass,
}

fn native_of(c: &crate::gpu::cpu::Constants, pass: NativePass) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeBatchNorm {
        c: c.usize("C")?.max(1),
        sp: c.usize("SPATIAL")?.max(1),
        eps: c.f32_bits("EPS")?,
        momentum: c.f32_bits("MOMENTUM")?,
        // The statistics kernels run a workgroup per channel and have no element count.
        n: match pass {
            NativePass::Stats | NativePass::Params => 0,
            _ => c.usize("N")?,
        },
        pass,
    }))
}

/// `batch_norm_stats`.
pub(crate) fn native_stats(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    native_of(c, NativePass::Stats)
}

/// `batch_norm_forward`.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    let eval = c.bool("EVAL")?;
    native_of(c, NativePass::Forward { eval })
}

/// `batch_norm_backward`.
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    native_of(c, NativePass::Backward)
}

/// `batch_norm_backward_params`.
pub(crate) fn native_backward_params(
    c: &crate::gpu::cpu::Constants,
) -> crate::elementwise::NativeResult {
    native_of(c, NativePass::Params)
}

impl crate::gpu::cpu::NativeKernel for NativeBatchNorm {
    fn bindings(&self) -> (usize, usize) {
        match self.pass {
            NativePass::Stats => (5, 5),
            _ => (6, 6),
        }
    }

    fn writes(&self, i: usize) -> bool {
        match self.pass {
            NativePass::Stats => i >= 2,
            NativePass::Forward { .. } | NativePass::Backward => i == 5,
            NativePass::Params => i >= 3,
        }
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let (cc, sp) = (self.c, self.sp);
        let at = |j: usize, c: usize| ((j / sp) * cc + c) * sp + j % sp;
        match self.pass {
            NativePass::Stats => {
                let m = io.step(0).rows as usize * sp;
                let count = m.max(1) as f32;
                let x = io.f32(1);
                let mom = self.momentum;
                io.f32_mut(2)[..2 * cc]
                    .par_chunks_mut(2)
                    .zip(io.f32_mut(3)[..cc].par_iter_mut())
                    .zip(io.f32_mut(4)[..cc].par_iter_mut())
                    .enumerate()
                    .for_each(|(c, ((st, rm), rv))| {
                        let mean = lane_tree_sum(m, |j| x[at(j, c)]) / count;
                        let ss = lane_tree_sum(m, |j| {
                            let d = x[at(j, c)] - mean;
                            d * d
                        });
                        let biased = ss / count;
                        st[0] = mean;
                        st[1] = 1.0 / (biased + self.eps).sqrt();
                        let unbiased = if m > 1 { ss / (m - 1) as f32 } else { biased };
                        *rm = (1.0 - mom) * *rm + mom * mean;
                        *rv = (1.0 - mom) * *rv + mom * unbiased;
                    });
            }
            NativePass::Forward { eval } => {
                let (x, w, b, ms, vs) = (io.f32(0), io.f32(1), io.f32(2), io.f32(3), io.f32(4));
                io.f32_mut(5)[..self.n]
                    .par_chunks_mut(sp)
                    .enumerate()
                    .for_each(|(p, y)| {
                        let c = p % cc;
                        let (mean, rstd) = if eval {
                            (ms[c], 1.0 / (vs[c] + self.eps).sqrt())
                        } else {
                            (ms[2 * c], vs[2 * c + 1])
                        };
                        let x = &x[p * sp..][..sp];
                        for (y, &v) in y.iter_mut().zip(x) {
                            *y = (v - mean) * rstd * w[c] + b[c];
                        }
                    });
            }
            NativePass::Backward => {
                let rows = io.step(0).rows as usize;
                let inv_m = 1.0 / (rows * sp).max(1) as f32;
                let (x, w, dy, s) = (io.f32(1), io.f32(2), io.f32(3), io.f32(4));
                io.f32_mut(5)[..self.n]
                    .par_chunks_mut(sp)
                    .enumerate()
                    .for_each(|(p, dx)| {
                        if p / cc >= rows {
                            dx.fill(0.0);
                            return;
                        }
                        let c = p % cc;
                        let rstd = s[2 * c + 1];
                        let (sum_dy, sum_dyx) = (s[2 * cc + 2 * c], s[2 * cc + 2 * c + 1]);
                        let (x, dy) = (&x[p * sp..][..sp], &dy[p * sp..][..sp]);
                        for ((dx, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                            let xhat = (v - s[2 * c]) * rstd;
                            *dx = w[c] * rstd * (g - sum_dy * inv_m - xhat * sum_dyx * inv_m);
                        }
                    });
            }
            NativePass::Params => {
                let m = io.step(0).rows as usize * sp;
                let (x, dy) = (io.f32(1), io.f32(2));
                let (stats, sums) = io.f32_mut(3)[..4 * cc].split_at_mut(2 * cc);
                sums.par_chunks_mut(2)
                    .zip(io.f32_mut(4)[..cc].par_iter_mut())
                    .zip(io.f32_mut(5)[..cc].par_iter_mut())
                    .enumerate()
                    .for_each(|(c, ((out, dw), db))| {
                        let (mean, rstd) = (stats[2 * c], stats[2 * c + 1]);
                        let s = lane_tree_sum(m, |j| {
                            let i = at(j, c);
                            let g = dy[i];
                            Pair(g, g * (x[i] - mean) * rstd)
                        });
                        out[0] = s.0;
                        out[1] = s.1;
                        *db += s.0;
                        *dw += s.1;
                    });
            }
        }
    }
}
