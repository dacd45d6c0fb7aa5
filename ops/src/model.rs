//! A sequential model: validated layers with resolved shapes, parameter layout and init,
//! the CPU reference forward/backward of the whole model, and its GPU buffers and
//! dispatch lists.

use crate::conv2d::Conv2d;
use crate::fusion::{FusedLayer, Fusion, PoolInConv};
use crate::gpu::{
    Buffer, BufferRef, Dispatch, Gpu, GpuError, KernelBuilder, LayerIo, STORAGE_ALIGN_BYTES,
};
use crate::init::Init;
use crate::layer::LayerSpec;
use crate::linear::Linear;
use crate::max_pool2d::MaxPool2d;
use crate::op::{CpuCtx, Op, ParamSpec, numel};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// What the user declared: per-sample input shape, layers, init scheme.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDef {
    pub input: Vec<usize>,
    pub layers: Vec<LayerSpec>,
    pub init: Init,
}

/// One layer with its resolved shapes.
pub struct Layer {
    pub spec: LayerSpec,
    pub op: Box<dyn Op>,
    pub input: Vec<usize>,
    pub output: Vec<usize>,
    pub params: Vec<ParamSpec>,
}

/// Where one parameter tensor lives in the packed buffers (in 4-byte words).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSlot {
    /// `layers.{i}.{name}`.
    pub name: String,
    pub layer: usize,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
}

/// A validated sequential model.
pub struct Sequential {
    pub input: Vec<usize>,
    pub layers: Vec<Layer>,
    pub init: Init,
    /// Packed layout of all parameters, 256-byte aligned; total words in `packed_len`.
    pub slots: Vec<ParamSlot>,
    pub packed_len: usize,
}

const ALIGN_WORDS: usize = (STORAGE_ALIGN_BYTES / 4) as usize;

impl Sequential {
    /// Validates attributes and shapes layer by layer. The error names the layer.
    pub fn new(def: &ModelDef) -> Result<Sequential, String> {
        if def.input.is_empty() || def.input.contains(&0) {
            return Err(format!(
                "model input shape {:?} must be non-empty with no zero dims",
                def.input
            ));
        }
        if def.layers.is_empty() {
            return Err("model has no layers".into());
        }
        let mut shape = def.input.clone();
        let mut layers = Vec::new();
        let mut slots = Vec::new();
        let mut offset = 0usize;
        for (i, spec) in def.layers.iter().enumerate() {
            let op = spec.build();
            op.check_attrs()
                .map_err(|e| format!("layer {i} ({}): {e}", op.kind()))?;
            let output = op
                .output_shape(&shape)
                .map_err(|e| format!("layer {i}: {e}"))?;
            if output.is_empty() || output.contains(&0) {
                return Err(format!(
                    "layer {i} ({}): output shape {output:?} is empty",
                    op.kind()
                ));
            }
            let params = op.params(&shape);
            for p in &params {
                slots.push(ParamSlot {
                    name: format!("layers.{i}.{}", p.name),
                    layer: i,
                    shape: p.shape.clone(),
                    offset,
                    len: p.len(),
                });
                offset += p.len().div_ceil(ALIGN_WORDS) * ALIGN_WORDS;
            }
            layers.push(Layer {
                spec: spec.clone(),
                op,
                input: shape.clone(),
                output: output.clone(),
                params,
            });
            shape = output;
        }
        Ok(Sequential {
            input: def.input.clone(),
            layers,
            init: def.init,
            slots,
            packed_len: offset.max(ALIGN_WORDS),
        })
    }

    /// Names parameters `{names[i]}.{param}` instead of `layers.{i}.{param}` (a model
    /// composed of several named models: `encoder.layers.0.weight`, `head.layers.0.bias`).
    pub fn rename_layers(&mut self, names: &[String]) -> Result<(), String> {
        if names.len() != self.layers.len() {
            return Err(format!(
                "{} layer names for {} layers",
                names.len(),
                self.layers.len()
            ));
        }
        // Slots list each layer's parameters in order, layer by layer.
        let params = self
            .layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.params.iter().map(move |p| (i, p.name)));
        for (slot, (layer, param)) in self.slots.iter_mut().zip(params) {
            slot.name = format!("{}.{param}", names[layer]);
        }
        Ok(())
    }

    /// Per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.layers[self.layers.len() - 1].output
    }

    /// Number of learnable scalars.
    pub fn param_count(&self) -> usize {
        self.slots.iter().map(|s| s.len).sum()
    }

    /// Forward FLOPs per sample.
    pub fn forward_flops(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| l.op.forward_flops(&l.input))
            .sum()
    }

    /// Initial parameters: each tensor from its own stream of `seed`, so adding a layer does
    /// not change the others.
    pub fn init_params(&self, seed: u64) -> Vec<Vec<Tensor>> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                l.params
                    .iter()
                    .enumerate()
                    .map(|(j, p)| {
                        self.init
                            .fill(p, &mut Rng::for_stream(seed, (i * 16 + j) as u64))
                    })
                    .collect()
            })
            .collect()
    }

    /// Packs per-layer tensors into the flat layout.
    pub fn pack(&self, params: &[Vec<Tensor>]) -> Vec<f32> {
        let mut out = vec![0.0; self.packed_len];
        let mut it = self.slots.iter();
        for layer in params {
            for t in layer {
                if let Some(s) = it.next() {
                    out[s.offset..s.offset + s.len].copy_from_slice(&t.data[..s.len.min(t.len())]);
                }
            }
        }
        out
    }

    /// Unpacks the flat layout into per-layer tensors.
    pub fn unpack(&self, flat: &[f32]) -> Vec<Vec<Tensor>> {
        let mut out: Vec<Vec<Tensor>> = self.layers.iter().map(|_| Vec::new()).collect();
        for s in &self.slots {
            out[s.layer].push(Tensor {
                shape: s.shape.clone(),
                data: flat[s.offset..s.offset + s.len].to_vec(),
            });
        }
        out
    }

    /// CPU forward; returns every activation `[x, y_0, ..., y_last]`.
    pub fn forward_cpu(
        &self,
        params: &[Vec<Tensor>],
        x: &Tensor,
        train: bool,
        seed: u64,
        step: u64,
    ) -> Vec<Tensor> {
        let mut acts = vec![x.clone()];
        for (i, l) in self.layers.iter().enumerate() {
            let ctx = CpuCtx {
                train,
                seed,
                step,
                layer: i,
            };
            let y = l.op.forward_cpu(&acts[i], &params[i], &ctx);
            acts.push(y);
        }
        acts
    }

    /// CPU backward from the gradient of the last activation; returns per-layer parameter
    /// gradients and the input gradient.
    pub fn backward_cpu(
        &self,
        params: &[Vec<Tensor>],
        acts: &[Tensor],
        dy: &Tensor,
        seed: u64,
        step: u64,
    ) -> (Tensor, Vec<Vec<Tensor>>) {
        let mut grads: Vec<Vec<Tensor>> = self.layers.iter().map(|_| Vec::new()).collect();
        let mut d = dy.clone();
        for (i, l) in self.layers.iter().enumerate().rev() {
            let ctx = CpuCtx {
                train: true,
                seed,
                step,
                layer: i,
            };
            let (dx, dp) =
                l.op.backward_cpu(&acts[i], &params[i], &acts[i + 1], &d, &ctx);
            grads[i] = dp;
            d = dx;
        }
        (d, grads)
    }
}

/// The scratch buffer layer `i` asks for at `batch`, if any.
fn scratch_buffer(
    gpu: &Gpu,
    model: &Sequential,
    i: usize,
    batch: usize,
) -> Result<Option<BufferRef>, GpuError> {
    let l = &model.layers[i];
    let words = l.op.scratch_words(&l.input, batch);
    if words == 0 {
        return Ok(None);
    }
    let buffer = gpu.storage_buffer(&format!("scratch.{i}"), words as u64 * 4)?;
    Ok(Some(BufferRef::whole(&buffer).words(0, words as u64)))
}

/// The model's activation buffers and pre-built dispatches for one batch size.
pub struct GpuModel {
    pub batch: usize,
    /// `acts[0]` is the input; `acts[i + 1]` the output of layer `i` (views alias; a conv
    /// whose kernel stores the max pool after it, and its fused relu, have a one-word
    /// placeholder: their outputs are never materialised).
    pub acts: Vec<BufferRef>,
    /// Gradients of the activations (`dacts[0]` unused: the input needs no gradient).
    pub dacts: Vec<BufferRef>,
    pub forward: Vec<Dispatch>,
    pub backward: Vec<Dispatch>,
}

impl GpuModel {
    /// Allocates activations and scratch and builds the dispatch lists of `model` run as
    /// `fusion` says (the planner's [`crate::fusion::fuse`], settled for this adapter by
    /// [`Fusion::on_device`]). `grads` is `None` for evaluation (no backward). `input` is
    /// read instead of a buffer of its own (a model fed by another model's output, or
    /// sharing its features).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        gpu: &Gpu,
        model: &Sequential,
        fusion: &Fusion,
        batch: usize,
        params: &Buffer,
        grads: Option<&Buffer>,
        step: &BufferRef,
        input: Option<&BufferRef>,
    ) -> Result<GpuModel, GpuError> {
        let train = grads.is_some();
        fusion.check(model).map_err(GpuError::InvalidModel)?;
        let fusion = fusion.on_device(model, gpu.adapter(), batch);
        let fused: Vec<bool> = fusion
            .layers
            .iter()
            .map(|f| *f == FusedLayer::Folded)
            .collect();
        let bytes = |shape: &[usize]| (batch * numel(shape) * 4) as u64;
        let words = (batch * numel(&model.input)) as u64;
        let input = match input {
            Some(given) if given.len_words() == words => given.clone(),
            Some(given) => {
                return Err(GpuError::InvalidModel(format!(
                    "the model reads {} values per batch of {batch} but its input holds {}",
                    words,
                    given.len_words()
                )));
            }
            None => BufferRef::whole(&gpu.storage_buffer("act.input", bytes(&model.input))?)
                .words(0, words),
        };
        let stores_pool: Vec<bool> = fusion
            .layers
            .iter()
            .map(|f| {
                *f == FusedLayer::Conv {
                    pool: PoolInConv::Yes,
                }
            })
            .collect();
        // The output of a conv that stores its pool is never written or read: a word of
        // placeholder stands for it (and for the fused relu's alias of it).
        let unwritten = BufferRef::whole(&gpu.storage_buffer("act.unwritten", 4)?);
        let mut acts = vec![input];
        let mut dacts = vec![acts[0].clone()];
        for (i, l) in model.layers.iter().enumerate() {
            let words = (batch * numel(&l.output)) as u64;
            if stores_pool[i] || (i > 0 && stores_pool[i - 1]) {
                acts.push(unwritten.clone());
            } else if l.op.is_view() || fused[i] {
                acts.push(acts[i].words(0, words));
            } else {
                acts.push(
                    BufferRef::whole(&gpu.storage_buffer(&format!("act.{i}"), words * 4)?)
                        .words(0, words),
                );
            }
            if train {
                if (l.op.is_view() && i > 0) || fused[i] {
                    dacts.push(dacts[i].words(0, words));
                } else {
                    dacts.push(
                        BufferRef::whole(&gpu.storage_buffer(&format!("grad_act.{i}"), words * 4)?)
                            .words(0, words),
                    );
                }
            }
        }
        // A view over layer 0's input has no input gradient buffer; give it its own.
        let mut k = KernelBuilder::new(gpu);
        let mut forward = Vec::new();
        let mut backward_per_layer = Vec::new();
        let mut slots = model.slots.iter();
        // A max pool whose forward a conv before it did (its index and arg-max scratch).
        let mut pooled_by_conv: Option<(usize, BufferRef)> = None;
        for (i, l) in model.layers.iter().enumerate() {
            let mut p = Vec::new();
            let mut g = Vec::new();
            for _ in &l.params {
                let s = slots
                    .next()
                    .ok_or_else(|| GpuError::InvalidModel("parameter layout mismatch".into()))?;
                p.push(BufferRef {
                    buffer: params.clone(),
                    offset: s.offset as u64 * 4,
                    size: s.len as u64 * 4,
                });
                if let Some(gb) = grads {
                    g.push(BufferRef {
                        buffer: gb.clone(),
                        offset: s.offset as u64 * 4,
                        size: s.len as u64 * 4,
                    });
                }
            }
            let scratch = match pooled_by_conv.take_if(|(pool, _)| *pool == i) {
                Some((_, arg)) => Some(arg),
                None => scratch_buffer(gpu, model, i, batch)?,
            };
            let io = LayerIo {
                layer: i,
                batch,
                input_shape: l.input.clone(),
                output_shape: l.output.clone(),
                train,
                step: step.clone(),
                x: acts[i].clone(),
                y: acts[i + 1].clone(),
                dy: if train {
                    dacts[i + 1].clone()
                } else {
                    acts[i + 1].clone()
                },
                dx: if train && i > 0 {
                    Some(dacts[i].clone())
                } else {
                    None
                },
                params: p,
                grads: g,
                scratch,
            };
            match (fusion.layers[i], &l.spec) {
                // Folded into the layers around it (see `crate::fusion`).
                (FusedLayer::Folded, _) => {
                    backward_per_layer.push(Vec::new());
                }
                (FusedLayer::Conv { pool }, LayerSpec::Conv2d(attrs)) => {
                    let conv = Conv2d { attrs: *attrs };
                    // conv -> relu -> 2x2 max pool: the conv's kernel stores the pool.
                    if pool == PoolInConv::Yes {
                        let pool = i + 2;
                        let arg = scratch_buffer(gpu, model, pool, batch)?.ok_or_else(|| {
                            GpuError::InvalidModel("max_pool2d needs scratch".into())
                        })?;
                        forward.extend(conv.forward_pooled_dispatches(
                            &mut k,
                            &io,
                            &acts[pool + 1],
                            &arg,
                        )?);
                        pooled_by_conv = Some((pool, arg));
                    } else {
                        forward.extend(conv.forward_dispatches(&mut k, &io, true)?);
                    }
                    if train {
                        backward_per_layer.push(conv.gpu_backward(&mut k, &io)?);
                    }
                }
                (FusedLayer::PoolAfterRelu, LayerSpec::MaxPool2d(attrs)) => {
                    let pool = MaxPool2d { attrs: *attrs };
                    if !fusion.pool_stored_by_conv(i) {
                        forward.extend(pool.forward_dispatches(&mut k, &io, true)?);
                    }
                    if train {
                        backward_per_layer.push(pool.gpu_backward(&mut k, &io)?);
                    }
                }
                (
                    FusedLayer::Linear {
                        relu_after,
                        mask_before,
                    },
                    LayerSpec::Linear(attrs),
                ) => {
                    let lin = Linear { attrs: *attrs };
                    forward.extend(lin.forward_dispatches(&mut k, &io, relu_after)?);
                    if train {
                        let mask = mask_before.then(|| acts[i].clone());
                        backward_per_layer.push(lin.backward_dispatches(
                            &mut k,
                            &io,
                            mask.as_ref(),
                        )?);
                    }
                }
                _ => {
                    forward.extend(l.op.gpu_forward(&mut k, &io)?);
                    if train {
                        backward_per_layer.push(l.op.gpu_backward(&mut k, &io)?);
                    }
                }
            }
        }
        let backward = backward_per_layer.into_iter().rev().flatten().collect();
        gpu.take_error()?;
        Ok(GpuModel {
            batch,
            acts,
            dacts,
            forward,
            backward,
        })
    }
}
