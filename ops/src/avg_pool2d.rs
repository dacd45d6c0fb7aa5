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
