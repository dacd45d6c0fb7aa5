//! 2-D convolution over `[channels, height, width]` samples, weight `[out, in, k, k]`.
//! GPU: im2col into a per-layer scratch `[batch, in*k*k, out_h*out_w]`, then the tiled GEMM;
//! backward reuses the scratch for the column gradient and folds it back with a gather
//! (col2im), so no atomics are needed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo, grid_1d};
use crate::linear::default_true;
use crate::matmul::{Bias, Gemm};
use crate::op::{CpuCtx, Op, ParamFill, ParamSpec, ShapeError};
use crate::reduce::bias_grad;
use crate::tensor::Tensor;

const IM2COL_WGSL: &str = include_str!("../../shaders/conv2d_im2col.wgsl");
const COL2IM_WGSL: &str = include_str!("../../shaders/conv2d_col2im.wgsl");

/// Attributes of a 2-D convolution. Input samples are `[channels, height, width]`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Conv2dAttrs {
    /// Number of output channels (filters).
    pub out_channels: usize,
    /// Side of the square kernel, e.g. 3 for 3x3.
    pub kernel: usize,
    /// Step between kernel positions (default 1).
    #[serde(default = "default_one")]
    pub stride: usize,
    /// Zeros added on every side of the input (default 0).
    #[serde(default)]
    pub padding: usize,
    /// Learn one additive bias per output channel (default true).
    #[serde(default = "default_true")]
    pub bias: bool,
}

fn default_one() -> usize {
    1
}

/// The conv2d op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub attrs: Conv2dAttrs,
}

/// Resolved sizes of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    k: usize,
    s: usize,
    p: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn col_rows(&self) -> usize {
        self.c * self.k * self.k
    }
    fn col_cols(&self) -> usize {
        self.ho * self.wo
    }
}

impl Conv2d {
    fn geometry(&self, input: &[usize]) -> Result<Geometry, ShapeError> {
        let a = self.attrs;
        let [c, h, w] = *input else {
            return Err(ShapeError::new(
                "conv2d",
                "[channels, height, width]",
                input,
            ));
        };
        if c == 0 || h == 0 || w == 0 {
            return Err(ShapeError::new(
                "conv2d",
                "[channels, height, width] with no zero dims",
                input,
            ));
        }
        let (hp, wp) = (h + 2 * a.padding, w + 2 * a.padding);
        if a.kernel == 0 || a.stride == 0 || hp < a.kernel || wp < a.kernel {
            return Err(ShapeError::new(
                "conv2d",
                format!(
                    "height and width of at least {} (kernel {} with padding {})",
                    a.kernel.saturating_sub(2 * a.padding).max(1),
                    a.kernel,
                    a.padding
                ),
                input,
            ));
        }
        Ok(Geometry {
            c,
            h,
            w,
            co: a.out_channels,
            k: a.kernel,
            s: a.stride,
            p: a.padding,
            ho: (hp - a.kernel) / a.stride + 1,
            wo: (wp - a.kernel) / a.stride + 1,
        })
    }

    /// Input pixel feeding output `(oy, ox)` at kernel offset `(ky, kx)`, if inside the image.
    fn source(g: &Geometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let iy = (oy * g.s + ky).checked_sub(g.p)?;
        let ix = (ox * g.s + kx).checked_sub(g.p)?;
        (iy < g.h && ix < g.w).then_some((iy, ix))
    }
}

impl Op for Conv2d {
    fn kind(&self) -> &'static str {
        "conv2d"
    }
    fn check_attrs(&self) -> Result<(), String> {
        let a = self.attrs;
        if a.out_channels == 0 {
            return Err("conv2d out_channels must be at least 1, found 0".into());
        }
        if a.kernel == 0 {
            return Err("conv2d kernel must be at least 1, found 0".into());
        }
        if a.stride == 0 {
            return Err("conv2d stride must be at least 1, found 0".into());
        }
        Ok(())
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        let g = self.geometry(input)?;
        Ok(vec![g.co, g.ho, g.wo])
    }
    fn params(&self, input: &[usize]) -> Vec<ParamSpec> {
        let c = input.first().copied().unwrap_or(0);
        let (co, k) = (self.attrs.out_channels, self.attrs.kernel);
        let mut p = vec![ParamSpec {
            name: "weight",
            shape: vec![co, c, k, k],
            fan_in: c * k * k,
            fan_out: co * k * k,
            fill: ParamFill::Random,
        }];
        if self.attrs.bias {
            p.push(ParamSpec {
                name: "bias",
                shape: vec![co],
                fan_in: c * k * k,
                fan_out: co * k * k,
                fill: ParamFill::Zeros,
            });
        }
        p
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        match self.geometry(input) {
            Ok(g) => 2 * (g.co * g.col_rows() * g.col_cols()) as u64,
            Err(_) => 0,
        }
    }
    fn is_elementwise(&self) -> bool {
        false
    }
    fn scratch_words(&self, input: &[usize], batch: usize) -> usize {
        self.geometry(input)
            .map_or(0, |g| batch * g.col_rows() * g.col_cols())
    }
    fn forward_cpu(&self, x: &Tensor, params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let Ok(g) = self.geometry(x.sample_shape()) else {
            return Tensor::zeros(&[0]);
        };
        let batch = x.batch();
        let w = &params[0].data;
        let mut y = Tensor::zeros(&[batch, g.co, g.ho, g.wo]);
        for n in 0..batch {
            for o in 0..g.co {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let mut acc = if self.attrs.bias {
                            params[1].data[o] as f64
                        } else {
                            0.0
                        };
                        for ci in 0..g.c {
                            for ky in 0..g.k {
                                for kx in 0..g.k {
                                    if let Some((iy, ix)) = Self::source(&g, oy, ox, ky, kx) {
                                        let xv = x.data[((n * g.c + ci) * g.h + iy) * g.w + ix];
                                        let wv = w[((o * g.c + ci) * g.k + ky) * g.k + kx];
                                        acc += xv as f64 * wv as f64;
                                    }
                                }
                            }
                        }
                        y.data[((n * g.co + o) * g.ho + oy) * g.wo + ox] = acc as f32;
                    }
                }
            }
        }
        y
    }
    #[allow(clippy::needless_range_loop)]
    fn backward_cpu(
        &self,
        x: &Tensor,
        params: &[Tensor],
        _y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let Ok(g) = self.geometry(x.sample_shape()) else {
            return (Tensor::zeros(&[0]), vec![]);
        };
        let batch = x.batch();
        let w = &params[0].data;
        let mut dx = vec![0.0f64; x.len()];
        let mut dw = vec![0.0f64; params[0].len()];
        let mut db = vec![0.0f64; g.co];
        for n in 0..batch {
            for o in 0..g.co {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let d = dy.data[((n * g.co + o) * g.ho + oy) * g.wo + ox] as f64;
                        db[o] += d;
                        for ci in 0..g.c {
                            for ky in 0..g.k {
                                for kx in 0..g.k {
                                    if let Some((iy, ix)) = Self::source(&g, oy, ox, ky, kx) {
                                        let xi = ((n * g.c + ci) * g.h + iy) * g.w + ix;
                                        let wi = ((o * g.c + ci) * g.k + ky) * g.k + kx;
                                        dx[xi] += d * w[wi] as f64;
                                        dw[wi] += d * x.data[xi] as f64;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect::<Vec<_>>();
        let mut grads = vec![Tensor {
            shape: params[0].shape.clone(),
            data: f(dw),
        }];
        if self.attrs.bias {
            grads.push(Tensor {
                shape: vec![g.co],
                data: f(db),
            });
        }
        (
            Tensor {
                shape: x.shape.clone(),
                data: f(dx),
            },
            grads,
        )
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let g = self
            .geometry(&io.input_shape)
            .map_err(|e| GpuError::InvalidModel(e.to_string()))?;
        let col = io
            .scratch
            .as_ref()
            .ok_or_else(|| GpuError::InvalidModel("conv2d needs scratch".into()))?;
        let (kr, hw) = (g.col_rows(), g.col_cols());
        let n = io.batch * kr * hw;
        let (groups, stride) = grid_1d(n);
        let im2col = k.compute(
            "conv2d_im2col",
            &[IM2COL_WGSL],
            &[
                ("N", n.to_string()),
                ("STRIDE", stride.to_string()),
                ("GEOM", geometry_consts(&g)),
            ],
            &[&io.x, col],
            groups,
        )?;
        // y[n][co, hw] = W[co, kr] · col[n][kr, hw] (+ bias[co])
        let gemm = Gemm {
            batch: io.batch,
            b_batch: kr * hw,
            c_batch: g.co * hw,
            bias: if self.attrs.bias {
                Bias::PerRow
            } else {
                Bias::None
            },
            ..Gemm::nn(g.co, hw, kr)
        };
        let mm = gemm.dispatch(k, &io.params[0], col, io.params.get(1), &io.y)?;
        Ok(vec![im2col, mm])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let g = self
            .geometry(&io.input_shape)
            .map_err(|e| GpuError::InvalidModel(e.to_string()))?;
        let col = io
            .scratch
            .as_ref()
            .ok_or_else(|| GpuError::InvalidModel("conv2d needs scratch".into()))?;
        let (kr, hw) = (g.col_rows(), g.col_cols());
        let mut d = Vec::new();
        // dW[co, kr] += sum_n dy[n][co, hw] · col[n][kr, hw]ᵀ (batch summed inside the kernel)
        let dw = Gemm {
            reduce: io.batch,
            a_reduce: g.co * hw,
            b_reduce: kr * hw,
            accumulate: true,
            ..Gemm::nt(g.co, kr, hw)
        };
        d.push(dw.dispatch(k, &io.dy, col, None, &io.grads[0])?);
        if self.attrs.bias {
            d.push(bias_grad(k, &io.dy, &io.grads[1], io.batch, g.co, hw)?);
        }
        if let Some(dx) = &io.dx {
            // dcol[n][kr, hw] = W[co, kr]ᵀ · dy[n][co, hw], written over the (now consumed) col.
            let dcol = Gemm {
                batch: io.batch,
                b_batch: g.co * hw,
                c_batch: kr * hw,
                ..Gemm::tn(kr, hw, g.co)
            };
            d.push(dcol.dispatch(k, &io.params[0], &io.dy, None, col)?);
            let n = io.batch * g.c * g.h * g.w;
            let (groups, stride) = grid_1d(n);
            d.push(k.compute(
                "conv2d_col2im",
                &[COL2IM_WGSL],
                &[
                    ("N", n.to_string()),
                    ("STRIDE", stride.to_string()),
                    ("GEOM", geometry_consts(&g)),
                ],
                &[col, dx],
                groups,
            )?);
        }
        Ok(d)
    }
}

/// WGSL constants describing the geometry (substituted for `{{GEOM}}`).
fn geometry_consts(g: &Geometry) -> String {
    format!(
        "const C: u32 = {}u; const H: u32 = {}u; const W: u32 = {}u; const KS: u32 = {}u; const S: u32 = {}u; const P: u32 = {}u; const HO: u32 = {}u; const WO: u32 = {}u;",
        g.c, g.h, g.w, g.k, g.s, g.p, g.ho, g.wo
    )
}
