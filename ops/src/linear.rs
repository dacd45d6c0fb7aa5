//! Fully connected layer: `y = x · Wᵀ + b` with `W` stored `[out, in]` (PyTorch layout).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::matmul::{Bias, Gemm};
use crate::op::{CpuCtx, FusionTraits, Op, ParamFill, ParamSpec, ShapeError};
use crate::reduce::bias_grad;
use crate::tensor::Tensor;

/// Attributes of a linear (fully connected) layer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinearAttrs {
    /// Number of output features.
    pub out: usize,
    /// Learn an additive bias (default true).
    #[serde(default = "default_true")]
    pub bias: bool,
}

pub(crate) fn default_true() -> bool {
    true
}

/// The linear op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    pub attrs: LinearAttrs,
}

fn features(input: &[usize]) -> Result<usize, ShapeError> {
    match input {
        [f] if *f > 0 => Ok(*f),
        _ => Err(ShapeError::new("linear", "1 dim [features]", input)),
    }
}

impl Op for Linear {
    fn kind(&self) -> &'static str {
        "linear"
    }
    fn check_attrs(&self) -> Result<(), String> {
        if self.attrs.out == 0 {
            return Err("linear out must be at least 1, found 0".into());
        }
        Ok(())
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        features(input)?;
        Ok(vec![self.attrs.out])
    }
    fn params(&self, input: &[usize]) -> Vec<ParamSpec> {
        let fan_in = input.first().copied().unwrap_or(0);
        let out = self.attrs.out;
        let mut p = vec![ParamSpec {
            name: "weight",
            shape: vec![out, fan_in],
            fan_in,
            fan_out: out,
            fill: ParamFill::Random,
        }];
        if self.attrs.bias {
            p.push(ParamSpec {
                name: "bias",
                shape: vec![out],
                fan_in,
                fan_out: out,
                fill: ParamFill::Bias,
            });
        }
        p
    }
    fn forward_flops(&self, input: &[usize]) -> u64 {
        let fan_in = input.first().copied().unwrap_or(0) as u64;
        2 * fan_in * self.attrs.out as u64
    }
    fn is_elementwise(&self) -> bool {
        false
    }
    fn f16_storage(&self) -> bool {
        // Forward: x is A, y is C of one GEMM; backward: x is the dW GEMM's B and the dx
        // GEMM's relu mask. The bias gradient reads dy only.
        true
    }
    fn onnx(&self, ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        use crate::onnx::Attr;
        ctx.with_params("Gemm", vec![("transB", Attr::Int(1))]);
        Ok(())
    }
    fn forward_cpu(&self, x: &Tensor, params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let (batch, fan_in, out) = (x.batch(), x.len() / x.batch().max(1), self.attrs.out);
        let w = &params[0].data;
        let mut y = Tensor::zeros(&[batch, out]);
        for n in 0..batch {
            let xr = &x.data[n * fan_in..(n + 1) * fan_in];
            for o in 0..out {
                let wr = &w[o * fan_in..(o + 1) * fan_in];
                let mut acc: f64 = xr.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum();
                if self.attrs.bias {
                    acc += params[1].data[o] as f64;
                }
                y.data[n * out + o] = acc as f32;
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
        let (batch, fan_in, out) = (x.batch(), x.len() / x.batch().max(1), self.attrs.out);
        let w = &params[0].data;
        let mut dx = Tensor::zeros(&x.shape);
        let mut dw = vec![0.0f64; out * fan_in];
        let mut db = vec![0.0f64; out];
        for n in 0..batch {
            for i in 0..fan_in {
                let mut acc = 0.0f64;
                for o in 0..out {
                    acc += dy.data[n * out + o] as f64 * w[o * fan_in + i] as f64;
                }
                dx.data[n * fan_in + i] = acc as f32;
            }
            for o in 0..out {
                let g = dy.data[n * out + o] as f64;
                db[o] += g;
                for i in 0..fan_in {
                    dw[o * fan_in + i] += g * x.data[n * fan_in + i] as f64;
                }
            }
        }
        let mut grads = vec![Tensor {
            shape: vec![out, fan_in],
            data: dw.iter().map(|&v| v as f32).collect(),
        }];
        if self.attrs.bias {
            grads.push(Tensor {
                shape: vec![out],
                data: db.iter().map(|&v| v as f32).collect(),
            });
        }
        (dx, grads)
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        self.forward_dispatches(k, io, false)
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        self.backward_dispatches(k, io, None)
    }
    fn fusion_traits(&self) -> FusionTraits {
        // The GEMM epilogues: max(y, 0) on the output, the relu mask on dx.
        FusionTraits {
            relu_in_store: true,
            masks_input_grad: true,
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
    fn gpu_backward_relu_masked(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
    ) -> Result<Vec<Dispatch>, GpuError> {
        // The folded relu's output is this layer's input.
        self.backward_dispatches(k, io, Some(&io.x))
    }
}

impl Linear {
    /// Forward GEMM with the bias (and, with `relu`, a fused `max(y, 0)`) in its epilogue.
    pub(crate) fn forward_dispatches(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
        relu: bool,
    ) -> Result<Vec<Dispatch>, GpuError> {
        let fan_in = io.input_shape[0];
        let gemm = Gemm {
            bias: if self.attrs.bias {
                Bias::PerColumn
            } else {
                Bias::None
            },
            relu,
            ..Gemm::nt(io.batch, self.attrs.out, fan_in)
        };
        Ok(vec![gemm.dispatch(
            k,
            &io.x,
            &io.params[0],
            io.params.get(1),
            &io.y,
        )?])
    }

    /// Backward GEMMs. With `dx_mask` (the output of a relu feeding this layer, laid out
    /// like `dx`), `dx` is zeroed where the mask is not positive: the relu's backward fused
    /// into the GEMM producing its output gradient.
    pub(crate) fn backward_dispatches(
        &self,
        k: &mut KernelBuilder,
        io: &LayerIo,
        dx_mask: Option<&BufferRef>,
    ) -> Result<Vec<Dispatch>, GpuError> {
        let (fan_in, out, batch) = (io.input_shape[0], self.attrs.out, io.batch);
        let mut d = Vec::new();
        if let Some(dx) = &io.dx {
            // dx[batch, in] = dy[batch, out] · W[out, in]  (· [mask > 0])
            d.push(Gemm::nn(batch, fan_in, out).dispatch_masked(
                k,
                &io.dy,
                &io.params[0],
                None,
                dx,
                dx_mask,
            )?);
        }
        // dW[out, in] += dyᵀ · x
        let dw = Gemm {
            accumulate: true,
            ..Gemm::tn(out, fan_in, batch)
        };
        d.push(dw.dispatch(k, &io.dy, &io.x, None, &io.grads[0])?);
        if self.attrs.bias {
            d.push(bias_grad(k, &io.dy, &io.grads[1], batch, out, 1)?);
        }
        Ok(d)
    }
}
