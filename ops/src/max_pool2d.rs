//! 2-D max pooling over `[channels, height, width]` samples (no padding, floor mode).
//! Forward records the arg-max of each window in scratch; backward gathers into each input
//! the gradients of the windows whose arg-max it is (no atomics).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, LayerIo, grid_1d};
use crate::op::{CpuCtx, FusionTraits, Op, ParamSpec, ShapeError, Size2};
use crate::tensor::Tensor;

const FORWARD_WGSL: &str = include_str!("../../shaders/max_pool2d_forward.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../shaders/max_pool2d_backward.wgsl");
const BACKWARD_DISJOINT_WGSL: &str =
    include_str!("../../shaders/max_pool2d_backward_disjoint.wgsl");

/// Attributes of a pooling layer (max or average).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolAttrs {
    /// Window size: `2` for 2x2, or `[height, width]`.
    pub kernel: Size2,
    /// Step between windows (default: equal to `kernel`, i.e. non-overlapping windows), or
    /// `[height, width]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<Size2>,
}

/// Resolved sizes of a pooling layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolGeometry {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ho: usize,
    pub wo: usize,
}

impl PoolAttrs {
    pub(crate) fn stride(&self) -> Size2 {
        self.stride.unwrap_or(self.kernel)
    }

    pub(crate) fn check(&self, kind: &str) -> Result<(), String> {
        if self.kernel.has_zero() {
            return Err(format!(
                "{kind} kernel must be at least 1, found {:?}",
                self.kernel.hw()
            ));
        }
        if self.stride.is_some_and(Size2::has_zero) {
            return Err(format!(
                "{kind} stride must be at least 1, found {:?}",
                self.stride().hw()
            ));
        }
        Ok(())
    }

    pub(crate) fn geometry(
        &self,
        kind: &'static str,
        input: &[usize],
    ) -> Result<PoolGeometry, ShapeError> {
        let [c, h, w] = *input else {
            return Err(ShapeError::new(kind, "[channels, height, width]", input));
        };
        let ((kh, kw), (sh, sw)) = (self.kernel.hw(), self.stride().hw());
        if c == 0 || kh == 0 || kw == 0 || sh == 0 || sw == 0 || h < kh || w < kw {
            return Err(ShapeError::new(
                kind,
                if kh == kw {
                    format!("[channels, height, width] with height and width of at least {kh}")
                } else {
                    format!(
                        "[channels, height, width] with a height of at least {kh} and a width of at least {kw}"
                    )
                },
                input,
            ));
        }
        Ok(PoolGeometry {
            c,
            h,
            w,
            kh,
            kw,
            sh,
            sw,
            ho: (h - kh) / sh + 1,
            wo: (w - kw) / sw + 1,
        })
    }
}

impl PoolGeometry {
    pub(crate) fn consts(&self) -> String {
        format!(
            "const C: u32 = {}u; const H: u32 = {}u; const W: u32 = {}u; const KH: u32 = {}u; const KW: u32 = {}u; const SH: u32 = {}u; const SW: u32 = {}u; const HO: u32 = {}u; const WO: u32 = {}u;",
            self.c, self.h, self.w, self.kh, self.kw, self.sh, self.sw, self.ho, self.wo
        )
    }
    pub(crate) fn out_len(&self) -> usize {
        self.c * self.ho * self.wo
    }
    pub(crate) fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
}

/// The max-pooling op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    pub attrs: PoolAttrs,
}

impl MaxPool2d {
    /// 2x2 windows at stride 2: what a convolution can pool in its own stores
    /// ([`crate::op::Op::gpu_forward_relu_pooled`]).
    pub(crate) fn is_2x2_stride_2(&self) -> bool {
        self.attrs.kernel.hw() == (2, 2) && self.attrs.stride().hw() == (2, 2)
    }

    /// Per output element: (max value, arg-max as `iy * W + ix` within its channel plane).
    fn windows(&self, g: &PoolGeometry, x: &[f32], batch: usize) -> Vec<(f32, usize)> {
        let mut out = Vec::with_capacity(batch * g.out_len());
        for plane in 0..batch * g.c {
            let xp = &x[plane * g.h * g.w..];
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let mut best = (f32::NEG_INFINITY, oy * g.sh * g.w + ox * g.sw);
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let i = (oy * g.sh + ky) * g.w + ox * g.sw + kx;
                            if xp[i] > best.0 {
                                best = (xp[i], i);
                            }
                        }
                    }
                    out.push(best);
                }
            }
        }
        out
    }

    /// Window geometry for this input and the arg-max scratch both passes use.
    fn geometry_and_argmax<'a>(
        &self,
        io: &'a LayerIo,
    ) -> Result<(PoolGeometry, &'a BufferRef), GpuError> {
        let g = self
            .attrs
            .geometry("max_pool2d", &io.input_shape)
            .map_err(|e| GpuError::InvalidModel(e.to_string()))?;
        let arg = io
            .scratch
            .as_ref()
            .ok_or_else(|| GpuError::InvalidModel("max_pool2d needs scratch".into()))?;
        Ok((g, arg))
    }

    /// Forward dispatches. `relu_arg`: the input is the output of a relu fused into the
    /// layer before (see `crate::fusion`); windows whose maximum is not positive record
    /// no arg-max, so the backward also applies that relu's backward.
    pub(crate) fn forward_dispatches(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
        relu_arg: bool,
    ) -> Result<Vec<Dispatch>, GpuError> {
        let (g, arg) = self.geometry_and_argmax(io)?;
        let n = io.batch * g.out_len();
        let (groups, stride) = grid_1d(n);
        let s = [
            ("N", n.to_string()),
            ("STRIDE", stride.to_string()),
            ("GEOM", g.consts()),
            ("RELU_ARG", (relu_arg as u32).to_string()),
        ];
        Ok(vec![k.compute(
            "max_pool2d_forward",
            &[FORWARD_WGSL],
            &s,
            &[&io.x, &io.y, arg],
            groups,
        )?])
    }
}

impl Op for MaxPool2d {
    fn kind(&self) -> &'static str {
        "max_pool2d"
    }
    fn check_attrs(&self) -> Result<(), String> {
        self.attrs.check("max_pool2d")
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        let g = self.attrs.geometry("max_pool2d", input)?;
        Ok(vec![g.c, g.ho, g.wo])
    }
    fn params(&self, _input: &[usize]) -> Vec<ParamSpec> {
        vec![]
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        self.attrs
            .geometry("max_pool2d", input)
            .map_or(0, |g| (g.out_len() * g.kh * g.kw) as u64)
    }
    fn is_elementwise(&self) -> bool {
        false
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        ctx.pool("MaxPool", &self.attrs);
        Ok(())
    }
    fn scratch_words(&self, input: &[usize], batch: usize) -> usize {
        self.attrs
            .geometry("max_pool2d", input)
            .map_or(0, |g| batch * g.out_len())
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let Ok(g) = self.attrs.geometry("max_pool2d", x.sample_shape()) else {
            return Tensor::zeros(&[0]);
        };
        let data = self
            .windows(&g, &x.data, x.batch())
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        Tensor {
            shape: vec![x.batch(), g.c, g.ho, g.wo],
            data,
        }
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        _params: &[Tensor],
        _y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let Ok(g) = self.attrs.geometry("max_pool2d", x.sample_shape()) else {
            return (Tensor::zeros(&[0]), vec![]);
        };
        let mut dx = Tensor::zeros(&x.shape);
        let per_plane = g.ho * g.wo;
        for (o, (_, arg)) in self.windows(&g, &x.data, x.batch()).into_iter().enumerate() {
            let plane = o / per_plane;
            dx.data[plane * g.h * g.w + arg] += dy.data[o];
        }
        (dx, vec![])
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        self.forward_dispatches(k, io, false)
    }
    fn fusion_traits(&self) -> FusionTraits {
        // max_pool(relu(x)) = relu(max_pool(x)); a window whose maximum is not positive
        // records no arg-max, so the backward passes no gradient there (the relu's).
        FusionTraits {
            commutes_with_relu: true,
            storable_pool: self.is_2x2_stride_2(),
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
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let Some(dx) = &io.dx else { return Ok(vec![]) };
        let (g, arg) = self.geometry_and_argmax(io)?;
        // Disjoint windows: one invocation per window (covering the grid past HO/WO too).
        let disjoint = (g.sh, g.sw) == (g.kh, g.kw);
        let n = if disjoint {
            io.batch * g.c * g.h.div_ceil(g.kh) * g.w.div_ceil(g.kw)
        } else {
            io.batch * g.in_len()
        };
        let (groups, stride) = grid_1d(n);
        let s = [
            ("N", n.to_string()),
            ("STRIDE", stride.to_string()),
            ("GEOM", g.consts()),
        ];
        let (name, src) = if disjoint {
            ("max_pool2d_backward_disjoint", BACKWARD_DISJOINT_WGSL)
        } else {
            ("max_pool2d_backward", BACKWARD_WGSL)
        };
        Ok(vec![k.compute(
            name,
            &[src],
            &s,
            &[&io.dy, arg, dx],
            groups,
        )?])
    }
}

/// The pooling geometry of the native kernels (`{{GEOM}}`; avg_pool2d's too).
#[derive(Clone, Copy)]
pub(crate) struct NativePool {
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ho: usize,
    pub wo: usize,
}

impl NativePool {
    pub(crate) fn of(c: &crate::gpu::cpu::Constants) -> Result<NativePool, GpuError> {
        let g = c.wgsl_consts("GEOM")?;
        Ok(NativePool {
            h: g.get("H")?,
            w: g.get("W")?,
            kh: g.get("KH")?,
            kw: g.get("KW")?,
            sh: g.get("SH")?,
            sw: g.get("SW")?,
            ho: g.get("HO")?,
            wo: g.get("WO")?,
        })
    }
}

/// The native (cpu backend) `max_pool2d_forward`: the WGSL's window scan (first maximum
/// wins), one piece per plane.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeForward {
        g: NativePool::of(c)?,
        n: c.usize("N")?,
        relu_arg: c.flag("RELU_ARG")?,
    }))
}

struct NativeForward {
    g: NativePool,
    n: usize,
    relu_arg: bool,
}

impl crate::gpu::cpu::NativeKernel for NativeForward {
    fn bindings(&self) -> (usize, usize) {
        (3, 3)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let g = self.g;
        let x = io.f32(0);
        let out = g.ho * g.wo;
        io.f32_mut(1)[..self.n]
            .par_chunks_mut(out)
            .zip(io.u32_mut(2)[..self.n].par_chunks_mut(out))
            .enumerate()
            .for_each(|(plane, (y, arg))| {
                let x = &x[plane * g.h * g.w..][..g.h * g.w];
                for oy in 0..g.ho {
                    let ys = &mut y[oy * g.wo..][..g.wo];
                    let args = &mut arg[oy * g.wo..][..g.wo];
                    for (ox, (y, arg)) in ys.iter_mut().zip(args.iter_mut()).enumerate() {
                        let at = oy * g.sh * g.w + ox * g.sw;
                        let (mut best, mut best_i) = (x[at], at);
                        for ky in 0..g.kh {
                            let row = &x[at + ky * g.w..][..g.kw];
                            for (kx, &v) in row.iter().enumerate() {
                                // The first maximum wins (the scan starts at the corner).
                                if v > best {
                                    best = v;
                                    best_i = at + ky * g.w + kx;
                                }
                            }
                        }
                        *y = best;
                        // NaN counts as not positive, as in the WGSL.
                        let positive = best > 0.0;
                        *arg = if self.relu_arg && !positive {
                            u32::MAX
                        } else {
                            best_i as u32
                        };
                    }
                }
            });
    }
}

/// The native (cpu backend) `max_pool2d_backward` and `max_pool2d_backward_disjoint`:
/// each input pixel takes the gradients of the windows whose arg-max it is, in window
/// order; one piece per plane.
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeBackward {
        g: NativePool::of(c)?,
    }))
}

struct NativeBackward {
    g: NativePool,
}

impl crate::gpu::cpu::NativeKernel for NativeBackward {
    fn bindings(&self) -> (usize, usize) {
        (3, 3)
    }

    fn writes(&self, i: usize) -> bool {
        i == 2
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let g = self.g;
        let (dy, arg) = (io.f32(0), io.u32(1));
        let (plane_in, plane_out) = (g.h * g.w, g.ho * g.wo);
        let dx = io.f32_mut(2);
        let planes = (dy.len() / plane_out.max(1)).min(dx.len() / plane_in.max(1));
        dx[..planes * plane_in]
            .par_chunks_mut(plane_in)
            .enumerate()
            .for_each(|(plane, dx)| {
                dx.fill(0.0);
                let (dy, arg) = (
                    &dy[plane * plane_out..][..plane_out],
                    &arg[plane * plane_out..][..plane_out],
                );
                // Windows in order; a pixel that is the arg-max of several adds them in
                // that order, as the WGSL's per-pixel scan does.
                for (&d, &a) in dy.iter().zip(arg) {
                    if let Some(v) = dx.get_mut(a as usize) {
                        *v += d;
                    }
                }
            });
    }
}
