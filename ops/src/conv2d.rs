//! 2-D convolution over `[channels, height, width]` samples, weight `[out, in, kh, kw]`.
//! GPU, square kernel, stride and padding (see `conv2d_direct`): the forward reads the
//! input directly (no im2col buffer), with
//! an optional fused relu; the weight and bias gradients are per-chunk partial sums in the
//! layer's scratch, folded in a fixed order; the input gradient is, for stride 1, the same
//! direct kernel over `dy` with the transposed, flipped weights, and otherwise the column
//! gradient `Wᵀ · dy` (tiled GEMM into the scratch) gathered back by col2im. No atomics.
//! Rectangular kernels, strides or paddings (and conv1d, a conv over `[C, 1, L]`) run as
//! im2col + GEMM: the columns in the layer's scratch, `y = W · col` and `dW += dy · colᵀ`
//! through the tiled GEMM, `dx` = col2im of `Wᵀ · dy`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conv2d_direct::{DirectConv, WeightGrad};
use crate::gpu::{AdapterSummary, BufferRef, Dispatch, GpuError, KernelBuilder, LayerIo, grid_1d};
use crate::linear::default_true;
use crate::matmul::Gemm;
use crate::op::{CpuCtx, FusionTraits, Op, ParamFill, ParamSpec, ShapeError, Size2};
use crate::tensor::Tensor;

const COL2IM_WGSL: &str = include_str!("../../shaders/conv2d_col2im.wgsl");
const IM2COL_WGSL: &str = include_str!("../../shaders/conv2d_im2col.wgsl");
const BIAS_RELU_WGSL: &str = include_str!("../../shaders/conv2d_bias_relu.wgsl");

/// Attributes of a 2-D convolution. Input samples are `[channels, height, width]`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Conv2dAttrs {
    /// Number of output channels (filters).
    pub out_channels: usize,
    /// Kernel size: `3` for 3x3, or `[height, width]` (`[1, 5]`).
    pub kernel: Size2,
    /// Step between kernel positions (default 1), or `[height, width]`.
    #[serde(default = "default_one")]
    pub stride: Size2,
    /// Zeros added on each side of the input (default 0), or `[height, width]` (added
    /// above and below, left and right).
    #[serde(default = "default_zero")]
    pub padding: Size2,
    /// Learn one additive bias per output channel (default true).
    #[serde(default = "default_true")]
    pub bias: bool,
}

fn default_one() -> Size2 {
    Size2::Both(1)
}

fn default_zero() -> Size2 {
    Size2::Both(0)
}

/// The conv2d op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub attrs: Conv2dAttrs,
}

/// Resolved sizes of one convolution. `k`, `s`, `p` are the square path's kernel side,
/// stride and padding (meaningful only when [`Geometry::square`]).
#[derive(Clone, Copy, Debug)]
struct Geometry {
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    k: usize,
    s: usize,
    p: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    /// Square kernel, stride and padding: the tiled direct kernels run it.
    fn square(&self) -> bool {
        self.kh == self.kw && self.sh == self.sw && self.ph == self.pw
    }
    fn col_rows(&self) -> usize {
        self.c * self.kh * self.kw
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
        let ((kh, kw), (sh, sw), (ph, pw)) = (a.kernel.hw(), a.stride.hw(), a.padding.hw());
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 || hp < kh || wp < kw {
            let least = |k: usize, p: usize| k.saturating_sub(2 * p).max(1);
            return Err(ShapeError::new(
                "conv2d",
                if (kh, ph) == (kw, pw) {
                    format!(
                        "height and width of at least {} (kernel {kh} with padding {ph})",
                        least(kh, ph)
                    )
                } else {
                    format!(
                        "a height of at least {} and a width of at least {} (kernel [{kh}, {kw}] with padding [{ph}, {pw}])",
                        least(kh, ph),
                        least(kw, pw)
                    )
                },
                input,
            ));
        }
        Ok(Geometry {
            c,
            h,
            w,
            co: a.out_channels,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            k: kh,
            s: sh,
            p: ph,
            ho: (hp - kh) / sh + 1,
            wo: (wp - kw) / sw + 1,
        })
    }

    fn weight_grad(&self, g: &Geometry, batch: usize) -> WeightGrad {
        WeightGrad {
            batch,
            c: g.c,
            co: g.co,
            h: g.h,
            w: g.w,
            ho: g.ho,
            wo: g.wo,
            k: g.k,
            s: g.s,
            p: g.p,
            bias: self.attrs.bias,
        }
    }

    /// The input gradient runs as a direct convolution of `dy` (stride 1, padding < kernel);
    /// otherwise through the column-gradient GEMM and col2im.
    fn direct_dx(g: &Geometry) -> bool {
        g.s == 1 && g.p < g.k
    }

    /// Forward dispatches; `relu` fuses a following relu (`y = max(conv + bias, 0)`).
    pub(crate) fn forward_dispatches(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
        relu: bool,
    ) -> Result<Vec<Dispatch>, GpuError> {
        let g = self
            .geometry(&io.input_shape)
            .map_err(|e| GpuError::InvalidModel(e.to_string()))?;
        // Native code: im2col + a packed GEMM beats a direct loop nest.
        if !g.square() || k.gpu().adapter().is_native() {
            return self.generic_forward(k, io, &g, relu);
        }
        let conv = self.direct(&io.input_shape, io.batch)?;
        Ok(vec![conv.dispatch(
            k,
            &io.x,
            &io.params[0],
            self.bias(io),
            &io.y,
            relu,
        )?])
    }

    fn direct(&self, input: &[usize], batch: usize) -> Result<DirectConv, GpuError> {
        let g = self
            .geometry(input)
            .map_err(|e| GpuError::InvalidModel(e.to_string()))?;
        if !g.square() {
            return Err(GpuError::InvalidModel(
                "the direct conv2d kernels need a square kernel, stride and padding".into(),
            ));
        }
        Ok(DirectConv {
            batch,
            ci: g.c,
            co: g.co,
            h: g.h,
            w: g.w,
            ho: g.ho,
            wo: g.wo,
            k: g.k,
            s: g.s,
            p: g.p as i64,
            w_co: g.col_rows(),
            w_ci: g.k * g.k,
            flip: false,
        })
    }

    fn bias<'a>(&self, io: &'a LayerIo) -> Option<&'a BufferRef> {
        if self.attrs.bias {
            io.params.get(1)
        } else {
            None
        }
    }

    /// Input pixel feeding output `(oy, ox)` at kernel offset `(ky, kx)`, if inside the image.
    fn source(g: &Geometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let iy = (oy * g.sh + ky).checked_sub(g.ph)?;
        let ix = (ox * g.sw + kx).checked_sub(g.pw)?;
        (iy < g.h && ix < g.w).then_some((iy, ix))
    }

    /// Forward of a conv the tiled direct kernels do not run (rectangular kernel, stride or
    /// padding): im2col into the scratch, `y[n] = W · col[n]` (GEMM), then bias and relu.
    fn generic_forward(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
        g: &Geometry,
        relu: bool,
    ) -> Result<Vec<Dispatch>, GpuError> {
        let (kr, hw) = (g.col_rows(), g.col_cols());
        let col = Self::columns(io, g)?;
        let n = io.batch * kr * hw;
        let mut out = vec![k.compute_1d(
            "conv2d_im2col",
            &[IM2COL_WGSL],
            n,
            &[
                ("GEOM", geometry_consts(g)),
                ("X_LEN", (io.batch * g.c * g.h * g.w).to_string()),
            ],
            &[&io.x, &col],
        )?];
        let gemm = Gemm {
            batch: io.batch,
            b_batch: kr * hw,
            c_batch: g.co * hw,
            ..Gemm::nn(g.co, hw, kr)
        };
        out.push(gemm.dispatch(k, &io.params[0], &col, None, &io.y)?);
        if self.attrs.bias || relu {
            out.push(k.compute_1d(
                "conv2d_bias_relu",
                &[BIAS_RELU_WGSL],
                io.batch * g.co * hw,
                &[
                    ("BIAS", self.attrs.bias.to_string()),
                    ("RELU", relu.to_string()),
                    ("PLANE", hw.to_string()),
                    ("CO", g.co.to_string()),
                ],
                &[self.bias(io).unwrap_or(&io.params[0]), &io.y],
            )?);
        }
        Ok(out)
    }

    /// The im2col columns of the generic path: `[batch][C*KH*KW][HO*WO]` in the scratch,
    /// written by the forward and read by the weight gradient (then reused for the column
    /// gradient).
    fn columns(io: &LayerIo, g: &Geometry) -> Result<BufferRef, GpuError> {
        let scratch = io
            .scratch
            .as_ref()
            .ok_or_else(|| GpuError::InvalidModel("conv2d needs scratch".into()))?;
        Ok(scratch.words(0, (io.batch * g.col_rows() * g.col_cols()) as u64))
    }

    /// Backward of a conv the tiled direct kernels do not run: `dW += Σₙ dy[n] · col[n]ᵀ`
    /// (GEMM, batch-reduced in a fixed order), `db` summed per channel, then
    /// `dcol[n] = Wᵀ · dy[n]` (GEMM, over the columns) gathered into `dx` by col2im.
    fn generic_backward(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
        g: &Geometry,
    ) -> Result<Vec<Dispatch>, GpuError> {
        let (kr, hw) = (g.col_rows(), g.col_cols());
        let col = Self::columns(io, g)?;
        let dw = Gemm {
            reduce: io.batch,
            a_reduce: g.co * hw,
            b_reduce: kr * hw,
            accumulate: true,
            ..Gemm::nt(g.co, kr, hw)
        };
        let mut out = vec![dw.dispatch(k, &io.dy, &col, None, &io.grads[0])?];
        if let Some(db) = io.grads.get(1).filter(|_| self.attrs.bias) {
            out.push(crate::reduce::bias_grad(k, &io.dy, db, io.batch, g.co, hw)?);
        }
        if let Some(dx) = &io.dx {
            out.extend(Self::dx_through_columns(k, io, g, &col, dx)?);
        }
        Ok(out)
    }

    /// `dcol[n] = Wᵀ · dy[n]` into `col`, then col2im into `dx`.
    fn dx_through_columns(
        k: &mut KernelBuilder,
        io: &LayerIo,
        g: &Geometry,
        col: &BufferRef,
        dx: &BufferRef,
    ) -> Result<Vec<Dispatch>, GpuError> {
        let (kr, hw) = (g.col_rows(), g.col_cols());
        let dcol = Gemm {
            batch: io.batch,
            b_batch: g.co * hw,
            c_batch: kr * hw,
            ..Gemm::tn(kr, hw, g.co)
        };
        let n = io.batch * g.c * g.h * g.w;
        let (groups, stride) = grid_1d(n);
        Ok(vec![
            dcol.dispatch(k, &io.params[0], &io.dy, None, col)?,
            k.compute(
                "conv2d_col2im",
                &[COL2IM_WGSL],
                &[
                    ("N", n.to_string()),
                    ("STRIDE", stride.to_string()),
                    ("GEOM", geometry_consts(g)),
                ],
                &[col, dx],
                groups,
            )?,
        ])
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
        if a.kernel.has_zero() {
            return Err(format!(
                "conv2d kernel must be at least 1, found {:?}",
                a.kernel.hw()
            ));
        }
        if a.stride.has_zero() {
            return Err(format!(
                "conv2d stride must be at least 1, found {:?}",
                a.stride.hw()
            ));
        }
        Ok(())
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        let g = self.geometry(input)?;
        Ok(vec![g.co, g.ho, g.wo])
    }
    fn params(&self, input: &[usize]) -> Vec<ParamSpec> {
        let c = input.first().copied().unwrap_or(0);
        let (co, (kh, kw)) = (self.attrs.out_channels, self.attrs.kernel.hw());
        let mut p = vec![ParamSpec {
            name: "weight",
            shape: vec![co, c, kh, kw],
            fan_in: c * kh * kw,
            fan_out: co * kh * kw,
            fill: ParamFill::Random,
        }];
        if self.attrs.bias {
            p.push(ParamSpec {
                name: "bias",
                shape: vec![co],
                fan_in: c * kh * kw,
                fan_out: co * kh * kw,
                fill: ParamFill::Bias,
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
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        use crate::onnx::Attr;
        let (kh, kw) = self.attrs.kernel.hw();
        let (sh, sw) = self.attrs.stride.hw();
        let (ph, pw) = self.attrs.padding.hw();
        let i = |v: usize| v as i64;
        ctx.with_params(
            "Conv",
            vec![
                ("kernel_shape", Attr::Ints(vec![i(kh), i(kw)])),
                ("strides", Attr::Ints(vec![i(sh), i(sw)])),
                ("pads", Attr::Ints(vec![i(ph), i(pw), i(ph), i(pw)])),
            ],
        );
        Ok(())
    }
    fn scratch_words(&self, input: &[usize], batch: usize) -> usize {
        self.geometry(input).map_or(0, |g| {
            if !g.square() {
                return batch * g.col_rows() * g.col_cols();
            }
            let dcol = if Self::direct_dx(&g) {
                0
            } else {
                batch * g.col_rows() * g.col_cols()
            };
            self.weight_grad(&g, batch).scratch_words().max(dcol)
        })
    }
    fn scratch_words_on(&self, adapter: &AdapterSummary, input: &[usize], batch: usize) -> usize {
        if !adapter.is_native() {
            return self.scratch_words(input, batch);
        }
        // Native code runs every conv as im2col + GEMM: the columns.
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
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    if let Some((iy, ix)) = Self::source(&g, oy, ox, ky, kx) {
                                        let xv = x.data[((n * g.c + ci) * g.h + iy) * g.w + ix];
                                        let wv = w[((o * g.c + ci) * g.kh + ky) * g.kw + kx];
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
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    if let Some((iy, ix)) = Self::source(&g, oy, ox, ky, kx) {
                                        let xi = ((n * g.c + ci) * g.h + iy) * g.w + ix;
                                        let wi = ((o * g.c + ci) * g.kh + ky) * g.kw + kx;
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
        self.forward_dispatches(k, io, false)
    }
    fn fusion_traits(&self) -> FusionTraits {
        // max(y, 0) in the store; the direct kernels can also store a 2x2 max pool.
        FusionTraits {
            relu_in_store: true,
            stores_pool: true,
            ..FusionTraits::default()
        }
    }
    fn gpu_forward_relu(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
    ) -> Result<Vec<Dispatch>, GpuError> {
        self.forward_dispatches(k, io, true)
    }
    fn can_store_pool(&self, adapter: &AdapterSummary, input: &[usize], batch: usize) -> bool {
        !adapter.is_native()
            && self
                .direct(input, batch)
                .is_ok_and(|conv| conv.stores_pool(adapter))
    }
    /// The forward of this conv, the relu after it and a 2x2, stride-2 max pool after
    /// that, as one dispatch writing the pool's output `pool` and arg-max `arg` (see
    /// [`DirectConv::dispatch_pooled`]). Only where [`Op::can_store_pool`] said so.
    fn gpu_forward_relu_pooled(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
        pool: &BufferRef,
        arg: &BufferRef,
    ) -> Result<Vec<Dispatch>, GpuError> {
        let conv = self.direct(&io.input_shape, io.batch)?;
        conv.dispatch_pooled(k, &io.x, &io.params[0], self.bias(io), pool, arg)?
            .map(|d| vec![d])
            .ok_or_else(|| {
                GpuError::InvalidModel("conv2d cannot store this max pool on this adapter".into())
            })
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let g = self
            .geometry(&io.input_shape)
            .map_err(|e| GpuError::InvalidModel(e.to_string()))?;
        if !g.square() || k.gpu().adapter().is_native() {
            return self.generic_backward(k, io, &g);
        }
        let scratch = io
            .scratch
            .as_ref()
            .ok_or_else(|| GpuError::InvalidModel("conv2d needs scratch".into()))?;
        // dW += sum over samples and pixels of dy ⊗ x (and db += sum dy), via partial sums.
        let mut d = self.weight_grad(&g, io.batch).dispatches(
            k,
            &io.x,
            &io.dy,
            scratch,
            &io.grads[0],
            io.grads.get(1),
        )?;
        let Some(dx) = &io.dx else { return Ok(d) };
        if Self::direct_dx(&g) {
            // dx = dy convolved with the kernel rotated by 180 degrees, channels swapped,
            // padding k - 1 - p (stride 1).
            let conv = DirectConv {
                batch: io.batch,
                ci: g.co,
                co: g.c,
                h: g.ho,
                w: g.wo,
                ho: g.h,
                wo: g.w,
                k: g.k,
                s: 1,
                p: (g.k - 1 - g.p) as i64,
                w_co: g.k * g.k,
                w_ci: g.col_rows(),
                flip: true,
            };
            d.push(conv.dispatch(k, &io.dy, &io.params[0], None, dx, false)?);
            return Ok(d);
        }
        let col = scratch.words(0, (io.batch * g.col_rows() * g.col_cols()) as u64);
        d.extend(Self::dx_through_columns(k, io, &g, &col, dx)?);
        Ok(d)
    }
}

/// WGSL constants describing the geometry (substituted for `{{GEOM}}`).
fn geometry_consts(g: &Geometry) -> String {
    format!(
        "const C: u32 = {}u; const H: u32 = {}u; const W: u32 = {}u; const KH: u32 = {}u; const KW: u32 = {}u; const SH: u32 = {}u; const SW: u32 = {}u; const PH: u32 = {}u; const PW: u32 = {}u; const HO: u32 = {}u; const WO: u32 = {}u;",
        g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.ho, g.wo
    )
}

/// The im2col geometry of the native conv kernels (`{{GEOM}}`).
#[derive(Clone, Copy)]
struct NativeGeom {
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    ho: usize,
    wo: usize,
}

impl NativeGeom {
    fn of(c: &crate::gpu::cpu::Constants) -> Result<NativeGeom, GpuError> {
        let g = c.wgsl_consts("GEOM")?;
        Ok(NativeGeom {
            c: g.get("C")?,
            h: g.get("H")?,
            w: g.get("W")?,
            kh: g.get("KH")?,
            kw: g.get("KW")?,
            sh: g.get("SH")?,
            sw: g.get("SW")?,
            ph: g.get("PH")?,
            pw: g.get("PW")?,
            ho: g.get("HO")?,
            wo: g.get("WO")?,
        })
    }

    fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    fn plane(&self) -> usize {
        self.ho * self.wo
    }
}

/// The native (cpu backend) `conv2d_im2col`: one piece per sample.
pub(crate) fn native_im2col(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeIm2col {
        g: NativeGeom::of(c)?,
        n: c.usize("N")?,
    }))
}

struct NativeIm2col {
    g: NativeGeom,
    n: usize,
}

impl crate::gpu::cpu::NativeKernel for NativeIm2col {
    fn bindings(&self) -> (usize, usize) {
        (2, 2)
    }

    fn writes(&self, i: usize) -> bool {
        i == 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let g = self.g;
        let x = io.f32(0);
        let per_sample = g.rows() * g.plane();
        io.f32_mut(1)[..self.n]
            .par_chunks_mut(per_sample)
            .enumerate()
            .for_each(|(n, col)| {
                for (r, out) in col.chunks_exact_mut(g.plane()).enumerate() {
                    let (c, ky, kx) = (r / (g.kh * g.kw), (r / g.kw) % g.kh, r % g.kw);
                    let plane = &x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
                    for oy in 0..g.ho {
                        let row = &mut out[oy * g.wo..(oy + 1) * g.wo];
                        let iy = (oy * g.sh + ky).wrapping_sub(g.ph);
                        if iy >= g.h {
                            row.fill(0.0);
                            continue;
                        }
                        for (ox, v) in row.iter_mut().enumerate() {
                            let ix = (ox * g.sw + kx).wrapping_sub(g.pw);
                            *v = if ix < g.w { plane[iy * g.w + ix] } else { 0.0 };
                        }
                    }
                }
            });
    }
}

/// The native (cpu backend) `conv2d_col2im`: each input pixel sums its columns in the
/// WGSL's order (ky, then kx); one piece per sample.
pub(crate) fn native_col2im(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeCol2im {
        g: NativeGeom::of(c)?,
        n: c.usize("N")?,
    }))
}

struct NativeCol2im {
    g: NativeGeom,
    n: usize,
}

impl crate::gpu::cpu::NativeKernel for NativeCol2im {
    fn bindings(&self) -> (usize, usize) {
        (2, 2)
    }

    fn writes(&self, i: usize) -> bool {
        i == 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let g = self.g;
        let dcol = io.f32(0);
        let (hw, rows) = (g.plane(), g.rows());
        // Scattered row by row of the columns: rows run (c, ky, kx) in order, so every
        // pixel adds its terms in the WGSL gather's order (ky, then kx), from zero.
        io.f32_mut(1)[..self.n]
            .par_chunks_mut(g.c * g.h * g.w)
            .enumerate()
            .for_each(|(n, dx)| {
                dx.fill(0.0);
                for r in 0..rows {
                    let (c, ky, kx) = (r / (g.kh * g.kw), (r / g.kw) % g.kh, r % g.kw);
                    let src = &dcol[(n * rows + r) * hw..][..hw];
                    let plane = &mut dx[c * g.h * g.w..][..g.h * g.w];
                    for oy in 0..g.ho {
                        let iy = (oy * g.sh + ky).wrapping_sub(g.ph);
                        if iy >= g.h {
                            continue;
                        }
                        let row = &src[oy * g.wo..][..g.wo];
                        let out = &mut plane[iy * g.w..][..g.w];
                        if g.sw == 1 {
                            // ix = ox + kx - pw: a contiguous run of the row.
                            let lo = g.pw.saturating_sub(kx);
                            let hi = (g.w + g.pw).saturating_sub(kx).min(g.wo);
                            if lo < hi {
                                let first = lo + kx - g.pw;
                                for (o, v) in
                                    out[first..first + hi - lo].iter_mut().zip(&row[lo..hi])
                                {
                                    *o += v;
                                }
                            }
                        } else {
                            for (ox, v) in row.iter().enumerate() {
                                let ix = (ox * g.sw + kx).wrapping_sub(g.pw);
                                if ix < g.w {
                                    out[ix] += v;
                                }
                            }
                        }
                    }
                }
            });
    }
}

/// The native (cpu backend) `conv2d_bias_relu`: `y = max(y + bias[channel], 0)`.
pub(crate) fn native_bias_relu(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeBiasRelu {
        n: c.usize("N")?,
        plane: c.usize("PLANE")?,
        co: c.usize("CO")?,
        bias: c.bool("BIAS")?,
        relu: c.bool("RELU")?,
    }))
}

struct NativeBiasRelu {
    n: usize,
    plane: usize,
    co: usize,
    bias: bool,
    relu: bool,
}

impl crate::gpu::cpu::NativeKernel for NativeBiasRelu {
    fn bindings(&self) -> (usize, usize) {
        (2, 2)
    }

    fn writes(&self, i: usize) -> bool {
        i == 1
    }

    fn uses(&self, i: usize) -> bool {
        // Without a bias the first binding is a placeholder.
        i != 0 || self.bias
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let bias = if self.bias { io.f32(0) } else { &[] };
        io.f32_mut(1)[..self.n]
            .par_chunks_mut(self.plane)
            .enumerate()
            .for_each(|(p, y)| {
                let b = if self.bias { bias[p % self.co] } else { 0.0 };
                for v in y {
                    let mut t = *v;
                    if self.bias {
                        t += b;
                    }
                    if self.relu {
                        t = t.max(0.0);
                    }
                    *v = t;
                }
            });
    }
}
