//! Dropout: in training, each element is kept with probability `1 - p` and scaled by
//! `1 / (1 - p)`; in evaluation it is the identity. The mask is a pure function of
//! `(seed, layer, step, element index)` ([`crate::rng::hash_uniform`]), so the CPU reference
//! and the GPU agree bit for bit and backward recomputes it instead of storing it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::elementwise::wgsl_f32;
use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo, grid_1d};
use crate::op::{CpuCtx, Op, ParamSpec, ShapeError, numel};
use crate::rng::hash_uniform;
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../shaders/dropout.wgsl");

/// Attributes of a dropout layer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DropoutAttrs {
    /// Probability of zeroing an element during training, in [0, 1).
    #[schemars(range(min = 0), extend("exclusiveMaximum" = 1))]
    pub p: f32,
}

/// The dropout op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub attrs: DropoutAttrs,
}

impl Dropout {
    fn scale(&self) -> f32 {
        1.0 / (1.0 - self.attrs.p)
    }

    fn mask_cpu(&self, n: usize, ctx: &CpuCtx) -> Vec<f32> {
        let scale = self.scale();
        (0..n)
            .map(|i| {
                let u = hash_uniform(ctx.seed, ctx.layer as u32, ctx.step as u32, i as u32);
                if u >= self.attrs.p { scale } else { 0.0 }
            })
            .collect()
    }

    fn dispatch(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
        src: &crate::gpu::BufferRef,
        dst: &crate::gpu::BufferRef,
        name: &str,
    ) -> Result<Dispatch, GpuError> {
        let n = io.batch * numel(&io.input_shape);
        if !io.train || self.attrs.p == 0.0 {
            return Ok(Dispatch::copy(
                k.gpu(),
                &format!("{name}_copy"),
                &src.words(0, n as u64),
                &dst.words(0, n as u64),
            ));
        }
        let (groups, stride) = grid_1d(n);
        k.compute(
            name,
            &[WGSL],
            &[
                ("N", n.to_string()),
                ("STRIDE", stride.to_string()),
                ("P", wgsl_f32(self.attrs.p)),
                ("SCALE", wgsl_f32(self.scale())),
                ("LAYER", io.layer.to_string()),
            ],
            &[&io.step, src, dst],
            groups,
        )
    }
}

impl Op for Dropout {
    fn kind(&self) -> &'static str {
        "dropout"
    }
    fn check_attrs(&self) -> Result<(), String> {
        let p = self.attrs.p;
        if (0.0..1.0).contains(&p) {
            Ok(())
        } else {
            Err(format!("dropout p must be in [0, 1), found {p}"))
        }
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        Ok(input.to_vec())
    }
    fn params(&self, _input: &[usize]) -> Vec<ParamSpec> {
        vec![]
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        numel(input) as u64
    }
    fn is_elementwise(&self) -> bool {
        true
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        // Identity in evaluation, which is what an export runs.
        ctx.with_params("Identity", Vec::new());
        Ok(())
    }
    fn forward_cpu(&self, x: &Tensor, _params: &[Tensor], ctx: &CpuCtx) -> Tensor {
        if !ctx.train {
            return x.clone();
        }
        let mask = self.mask_cpu(x.len(), ctx);
        Tensor {
            shape: x.shape.clone(),
            data: x.data.iter().zip(&mask).map(|(a, m)| a * m).collect(),
        }
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        _params: &[Tensor],
        _y: &Tensor,
        dy: &Tensor,
        ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        if !ctx.train {
            return (dy.clone(), vec![]);
        }
        let mask = self.mask_cpu(x.len(), ctx);
        (
            Tensor {
                shape: x.shape.clone(),
                data: dy.data.iter().zip(&mask).map(|(a, m)| a * m).collect(),
            },
            vec![],
        )
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        Ok(vec![self.dispatch(k, io, &io.x, &io.y, "dropout")?])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        match &io.dx {
            Some(dx) => Ok(vec![self.dispatch(k, io, &io.dy, dx, "dropout")?]),
            None => Ok(vec![]),
        }
    }
}

/// The native (cpu backend) `dropout`: the same hash per element as the WGSL and the CPU
/// reference, so the three drop the same units.
pub(crate) fn native(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeDropout {
        n: c.usize("N")?,
        p: c.f32_bits("P")?,
        scale: c.f32_bits("SCALE")?,
        layer: c.usize("LAYER")? as u32,
    }))
}

struct NativeDropout {
    n: usize,
    p: f32,
    scale: f32,
    layer: u32,
}

impl crate::gpu::cpu::NativeKernel for NativeDropout {
    fn bindings(&self) -> (usize, usize) {
        (3, 3)
    }

    fn writes(&self, i: usize) -> bool {
        i == 2
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let s = io.step(0);
        let seed = (u64::from(s.seed_hi) << 32) | u64::from(s.seed_lo);
        let piece = crate::native::ELEMENTS_PER_PIECE;
        io.f32_mut(2)[..self.n]
            .par_chunks_mut(piece)
            .zip(io.f32(1)[..self.n].par_chunks(piece))
            .enumerate()
            .for_each(|(c, (dst, src))| {
                for (j, (d, &x)) in dst.iter_mut().zip(src).enumerate() {
                    let i = (c * piece + j) as u32;
                    let u = hash_uniform(seed, self.layer, s.step, i);
                    *d = if u >= self.p { x * self.scale } else { 0.0 };
                }
            });
    }
}
