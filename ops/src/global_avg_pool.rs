//! Global average pooling: `[channels, ...]` per sample (a 2-D `[C, H, W]` or 1-D `[C, L]`
//! feature map) becomes `[channels]`, the mean over each channel's values — what a
//! ResNet's head reads.

use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const FORWARD_WGSL: &str = include_str!("../../shaders/global_avg_pool_forward.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../shaders/global_avg_pool_backward.wgsl");

/// The global average-pooling op.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalAvgPool;

/// Values per channel of a per-sample `input` shape `[C, ...]`.
fn plane(input: &[usize]) -> usize {
    numel(&input[1..])
}

impl Op for GlobalAvgPool {
    fn kind(&self) -> &'static str {
        "global_avg_pool"
    }
    fn check_attrs(&self) -> Result<(), String> {
        Ok(())
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        if input.len() < 2 {
            return Err(ShapeError::new(
                "global_avg_pool",
                "at least 2 dims [channels, ...] (e.g. [C, H, W] or [C, L])",
                input,
            ));
        }
        Ok(vec![input[0]])
    }
    fn params(&self, _input: &[usize]) -> Vec<ParamSpec> {
        vec![]
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        numel(input) as u64
    }
    fn is_elementwise(&self) -> bool {
        false
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        use crate::onnx::Attr;
        // ONNX keeps the pooled dimensions as 1s; the engine's output is `[C]`.
        let (input, output, pooled) = (
            ctx.input().to_string(),
            ctx.output.to_string(),
            ctx.temp("pooled"),
        );
        ctx.node("GlobalAveragePool", &[&input], &[&pooled], Vec::new());
        ctx.node(
            "Flatten",
            &[&pooled],
            &[&output],
            vec![("axis", Attr::Int(1))],
        );
        Ok(())
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let shape = x.sample_shape();
        let (c, p) = (shape[0], plane(shape));
        let mut y = Tensor::zeros(&[x.batch(), c]);
        for (i, out) in y.data.iter_mut().enumerate() {
            let sum: f64 = x.data[i * p..(i + 1) * p].iter().map(|&v| v as f64).sum();
            *out = (sum / p as f64) as f32;
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
        let p = plane(x.sample_shape());
        let data = (0..x.len())
            .map(|i| (dy.data[i / p] as f64 / p as f64) as f32)
            .collect();
        (
            Tensor {
                shape: x.shape.clone(),
                data,
            },
            vec![],
        )
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let plane = [("PLANE", plane(&io.input_shape).to_string())];
        let n = io.batch * io.input_shape[0];
        let d = k.compute_1d(
            "global_avg_pool_forward",
            &[FORWARD_WGSL],
            n,
            &plane,
            &[&io.x, &io.y],
        )?;
        Ok(vec![d])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let Some(dx) = &io.dx else { return Ok(vec![]) };
        let plane = [("PLANE", plane(&io.input_shape).to_string())];
        let n = io.batch * numel(&io.input_shape);
        let d = k.compute_1d(
            "global_avg_pool_backward",
            &[BACKWARD_WGSL],
            n,
            &plane,
            &[&io.dy, dx],
        )?;
        Ok(vec![d])
    }
}

/// The native (cpu backend) `global_avg_pool_forward`: each plane summed in order.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeGap {
        n: c.usize("N")?,
        plane: c.usize("PLANE")?.max(1),
        backward: false,
    }))
}

/// The native (cpu backend) `global_avg_pool_backward`.
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeGap {
        n: c.usize("N")?,
        plane: c.usize("PLANE")?.max(1),
        backward: true,
    }))
}

struct NativeGap {
    n: usize,
    plane: usize,
    backward: bool,
}

impl crate::gpu::cpu::NativeKernel for NativeGap {
    fn bindings(&self) -> (usize, usize) {
        (2, 2)
    }

    fn writes(&self, i: usize) -> bool {
        i == 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let scale = 1.0 / self.plane as f32;
        let src = io.f32(0);
        if self.backward {
            io.f32_mut(1)[..self.n]
                .par_chunks_mut(self.plane)
                .zip(src.par_iter())
                .for_each(|(dx, &g)| dx.fill(g * scale));
            return;
        }
        io.f32_mut(1)[..self.n]
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, y)| {
                let plane = &src[i * self.plane..][..self.plane];
                *y = plane.iter().fold(0.0f32, |s, &v| s + v) * scale;
            });
    }
}
