//! 2-D average pooling over `[channels, height, width]` samples (no padding, floor mode).

use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo, grid_1d};
use crate::max_pool2d::PoolAttrs;
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError};
use crate::tensor::Tensor;

const FORWARD_WGSL: &str = include_str!("../../shaders/avg_pool2d_forward.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../shaders/avg_pool2d_backward.wgsl");

/// The average-pooling op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2d {
    pub attrs: PoolAttrs,
}

impl Op for AvgPool2d {
    fn kind(&self) -> &'static str {
        "avg_pool2d"
    }
    fn check_attrs(&self) -> Result<(), String> {
        self.attrs.check("avg_pool2d")
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        let g = self.attrs.geometry("avg_pool2d", input)?;
        Ok(vec![g.c, g.ho, g.wo])
    }
    fn params(&self, _input: &[usize]) -> Vec<ParamSpec> {
        vec![]
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        self.attrs
            .geometry("avg_pool2d", input)
            .map_or(0, |g| (g.out_len() * g.kh * g.kw) as u64)
    }
    fn is_elementwise(&self) -> bool {
        false
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        ctx.pool("AveragePool", &self.attrs);
        Ok(())
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let Ok(g) = self.attrs.geometry("avg_pool2d", x.sample_shape()) else {
            return Tensor::zeros(&[0]);
        };
        let mut y = Tensor::zeros(&[x.batch(), g.c, g.ho, g.wo]);
        let inv = 1.0 / (g.kh * g.kw) as f64;
        for plane in 0..x.batch() * g.c {
            let xp = &x.data[plane * g.h * g.w..];
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let mut acc = 0.0f64;
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            acc += xp[(oy * g.sh + ky) * g.w + ox * g.sw + kx] as f64;
                        }
                    }
                    y.data[(plane * g.ho + oy) * g.wo + ox] = (acc * inv) as f32;
                }
            }
        }
        y
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        _params: &[Tensor],
        _y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let Ok(g) = self.attrs.geometry("avg_pool2d", x.sample_shape()) else {
            return (Tensor::zeros(&[0]), vec![]);
        };
        let mut dx = vec![0.0f64; x.len()];
        let inv = 1.0 / (g.kh * g.kw) as f64;
        for plane in 0..x.batch() * g.c {
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let d = dy.data[(plane * g.ho + oy) * g.wo + ox] as f64 * inv;
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            dx[plane * g.h * g.w + (oy * g.sh + ky) * g.w + ox * g.sw + kx] += d;
                        }
                    }
                }
            }
        }
        (
            Tensor {
                shape: x.shape.clone(),
                data: dx.into_iter().map(|v| v as f32).collect(),
            },
            vec![],
        )
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let g = self
            .attrs
            .geometry("avg_pool2d", &io.input_shape)
            .map_err(|e| GpuError::InvalidModel(e.to_string()))?;
        let n = io.batch * g.out_len();
        let (groups, stride) = grid_1d(n);
        let s = [
            ("N", n.to_string()),
            ("STRIDE", stride.to_string()),
            ("GEOM", g.consts()),
        ];
        Ok(vec![k.compute(
            "avg_pool2d_forward",
            &[FORWARD_WGSL],
            &s,
            &[&io.x, &io.y],
            groups,
        )?])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let Some(dx) = &io.dx else { return Ok(vec![]) };
        let g = self
            .attrs
            .geometry("avg_pool2d", &io.input_shape)
            .map_err(|e| GpuError::InvalidModel(e.to_string()))?;
        let n = io.batch * g.in_len();
        let (groups, stride) = grid_1d(n);
        let s = [
            ("N", n.to_string()),
            ("STRIDE", stride.to_string()),
            ("GEOM", g.consts()),
        ];
        Ok(vec![k.compute(
            "avg_pool2d_backward",
            &[BACKWARD_WGSL],
            &s,
            &[&io.dy, dx],
            groups,
        )?])
    }
}

/// The native (cpu backend) `avg_pool2d_forward` and `_backward`: the WGSL's sums (the
/// backward scatters window by window, so each pixel adds its windows in the same order),
/// one piece per plane.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeAvgPool {
        g: crate::max_pool2d::NativePool::of(c)?,
        n: c.usize("N")?,
        backward: false,
    }))
}

/// See [`native_forward`].
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeAvgPool {
        g: crate::max_pool2d::NativePool::of(c)?,
        n: c.usize("N")?,
        backward: true,
    }))
}

struct NativeAvgPool {
    g: crate::max_pool2d::NativePool,
    n: usize,
    backward: bool,
}

impl crate::gpu::cpu::NativeKernel for NativeAvgPool {
    fn bindings(&self) -> (usize, usize) {
        (2, 2)
    }

    fn writes(&self, i: usize) -> bool {
        i == 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let g = &self.g;
        let scale = 1.0 / (g.kh * g.kw) as f32;
        let (plane_in, plane_out) = (g.h * g.w, g.ho * g.wo);
        let src = io.f32(0);
        if self.backward {
            io.f32_mut(1)[..self.n]
                .par_chunks_mut(plane_in)
                .enumerate()
                .for_each(|(p, dx)| {
                    dx.fill(0.0);
                    let dy = &src[p * plane_out..][..plane_out];
                    for oy in 0..g.ho {
                        for ox in 0..g.wo {
                            let v = dy[oy * g.wo + ox];
                            for ky in 0..g.kh {
                                let row = (oy * g.sh + ky) * g.w + ox * g.sw;
                                for d in &mut dx[row..row + g.kw] {
                                    *d += v;
                                }
                            }
                        }
                    }
                    for d in dx.iter_mut() {
                        *d *= scale;
                    }
                });
            return;
        }
        io.f32_mut(1)[..self.n]
            .par_chunks_mut(plane_out)
            .enumerate()
            .for_each(|(p, y)| {
                let x = &src[p * plane_in..][..plane_in];
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let mut acc = 0.0f32;
                        for ky in 0..g.kh {
                            let row = (oy * g.sh + ky) * g.w + ox * g.sw;
                            for &v in &x[row..row + g.kw] {
                                acc += v;
                            }
                        }
                        y[oy * g.wo + ox] = acc * scale;
                    }
                }
            });
    }
}
