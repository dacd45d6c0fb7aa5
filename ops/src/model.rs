//! A sequential model: validated layers with resolved shapes, parameter layout and init,
//! the CPU reference forward/backward of the whole model, and its GPU buffers and
//! dispatch lists.

use crate::Precision;
use crate::fusion::{FusedLayer, Fusion};
use crate::gpu::{
    Buffer, BufferRef, Dispatch, Elem, Gpu, GpuError, KernelBuilder, LayerIo, STORAGE_ALIGN_BYTES,
};
use crate::init::Init;
use crate::layer::LayerSpec;
use crate::op::{CpuCtx, Op, ParamSpec, numel};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// A tensor of a model, by id: `TensorId::INPUT` (0) is the model's input and
/// `TensorId::output_of(i)` (`i + 1`) the output of layer `i`. Lists of per-tensor values
/// (activations, their gradients, [`Sequential::consumers`]) are indexed by it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct TensorId(pub usize);

impl TensorId {
    /// The model's input.
    pub const INPUT: TensorId = TensorId(0);

    /// The output of layer `layer`.
    pub fn output_of(layer: usize) -> TensorId {
        TensorId(layer + 1)
    }

    /// The layer that computes it (`None` for the input).
    pub fn producer(self) -> Option<usize> {
        self.0.checked_sub(1)
    }
}

impl std::fmt::Display for TensorId {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.producer() {
            None => f.write_str("the input"),
            Some(layer) => write!(f, "layer {layer}'s output"),
        }
    }
}

impl<T> std::ops::Index<TensorId> for Vec<T> {
    type Output = T;
    fn index(&self, t: TensorId) -> &T {
        &self[t.0]
    }
}

impl<T> std::ops::IndexMut<TensorId> for Vec<T> {
    fn index_mut(&mut self, t: TensorId) -> &mut T {
        &mut self[t.0]
    }
}

impl<T> std::ops::Index<TensorId> for [T] {
    type Output = T;
    fn index(&self, t: TensorId) -> &T {
        &self[t.0]
    }
}

/// What the user declared: per-sample input shape, layers, how they are wired, init
/// scheme. Serialisable: checkpoints and exports store it so a trained model can be rebuilt
/// without its pipeline.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelDef {
    pub input: Vec<usize>,
    pub layers: Vec<LayerSpec>,
    /// The tensors each layer reads ([`TensorId`]), so a layer reads only earlier
    /// tensors. Empty: a chain, layer `i` reads tensor `i` (the layer before's output).
    /// The model's output is its last layer's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Vec<TensorId>>,
    pub init: Init,
}

impl ModelDef {
    /// A chain of `layers` (each reads the one before).
    pub fn chain(input: Vec<usize>, layers: Vec<LayerSpec>, init: Init) -> ModelDef {
        ModelDef {
            input,
            layers,
            inputs: Vec::new(),
            init,
        }
    }
}

/// One layer with its resolved shapes.
pub struct Layer {
    pub spec: LayerSpec,
    pub op: Box<dyn Op>,
    /// The tensors it reads (see [`ModelDef::inputs`]).
    pub inputs: Vec<TensorId>,
    /// Per-sample shape of its first input.
    pub input: Vec<usize>,
    /// Per-sample shapes of all its inputs.
    pub input_shapes: Vec<Vec<usize>>,
    pub output: Vec<usize>,
    /// Learnable tensors.
    pub params: Vec<ParamSpec>,
    /// State tensors that are not learned ([`Op::buffers`]).
    pub buffers: Vec<ParamSpec>,
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
    /// A learnable parameter (in the optimizer's range `[0, packed_len)`), or a buffer
    /// (after it).
    pub learnable: bool,
}

/// A validated model: layers in an order where each reads only earlier tensors (a chain,
/// or a graph with merges and tensors read by several layers).
pub struct Sequential {
    pub input: Vec<usize>,
    pub layers: Vec<Layer>,
    /// For each tensor (indexed by [`TensorId`]), the `(layer, input slot)` pairs that
    /// read it, in layer order.
    pub consumers: Vec<Vec<(usize, usize)>>,
    pub init: Init,
    /// Packed layout of all parameters, 256-byte aligned, layer by layer (each layer's
    /// learnable tensors, then its buffers). The learnable ones fill the first
    /// `packed_len` words (what gradients, the optimizer and its state cover); the
    /// buffers the `state_len` words after them.
    pub slots: Vec<ParamSlot>,
    pub packed_len: usize,
    pub state_len: usize,
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
        if !def.inputs.is_empty() && def.inputs.len() != def.layers.len() {
            return Err(format!(
                "inputs are given for {} of the {} layers",
                def.inputs.len(),
                def.layers.len()
            ));
        }
        let mut shapes = vec![def.input.clone()];
        let mut consumers: Vec<Vec<(usize, usize)>> = vec![Vec::new()];
        let mut layers = Vec::new();
        for (i, spec) in def.layers.iter().enumerate() {
            let op = spec.build();
            op.check_attrs()
                .map_err(|e| format!("layer {i} ({}): {e}", op.kind()))?;
            let inputs = def
                .inputs
                .get(i)
                .cloned()
                .unwrap_or_else(|| vec![TensorId(i)]);
            let (min, max) = op.arity();
            if inputs.len() < min || inputs.len() > max {
                return Err(format!(
                    "layer {i} ({}) reads {} input{} but takes {}",
                    op.kind(),
                    inputs.len(),
                    if inputs.len() == 1 { "" } else { "s" },
                    if min == max {
                        min.to_string()
                    } else {
                        format!("{min} to {max}")
                    }
                ));
            }
            if let Some(t) = inputs.iter().find(|&&t| t.0 > i) {
                return Err(format!(
                    "layer {i} ({}) reads tensor {}, which is not computed before it (0 is the input, {i} the layer before)",
                    op.kind(),
                    t.0
                ));
            }
            for (slot, &t) in inputs.iter().enumerate() {
                consumers[t].push((i, slot));
            }
            let input_shapes: Vec<Vec<usize>> = inputs.iter().map(|&t| shapes[t].clone()).collect();
            let shape = input_shapes[0].clone();
            let refs: Vec<&[usize]> = input_shapes.iter().map(Vec::as_slice).collect();
            let output = op
                .output_shape_of(&refs)
                .map_err(|e| format!("layer {i}: {e}"))?;
            if output.is_empty() || output.contains(&0) {
                return Err(format!(
                    "layer {i} ({}): output shape {output:?} is empty",
                    op.kind()
                ));
            }
            let params = op.params(&shape);
            let buffers = op.buffers(&shape);
            layers.push(Layer {
                spec: spec.clone(),
                op,
                inputs,
                input: shape,
                input_shapes,
                output: output.clone(),
                params,
                buffers,
            });
            shapes.push(output);
            consumers.push(Vec::new());
        }
        // Every tensor but the output feeds a layer (one that feeds none is a mistake, and
        // would get no gradient).
        let last = def.layers.len();
        if let Some(t) = (1..last).find(|&t| consumers[t].is_empty()) {
            return Err(format!(
                "the output of layer {} ({}) is not read by any layer",
                t - 1,
                layers[t - 1].op.kind()
            ));
        }
        let aligned = |len: usize| len.div_ceil(ALIGN_WORDS) * ALIGN_WORDS;
        let packed_len = layers
            .iter()
            .flat_map(|l| &l.params)
            .map(|p| aligned(p.len()))
            .sum::<usize>()
            .max(ALIGN_WORDS);
        let (mut learned_at, mut state_at) = (0, packed_len);
        let mut slots = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let tensors = l.params.iter().map(|p| (p, true));
            for (p, learnable) in tensors.chain(l.buffers.iter().map(|b| (b, false))) {
                let at = if learnable {
                    &mut learned_at
                } else {
                    &mut state_at
                };
                slots.push(ParamSlot {
                    name: format!("layers.{i}.{}", p.name),
                    layer: i,
                    shape: p.shape.clone(),
                    offset: *at,
                    len: p.len(),
                    learnable,
                });
                *at += aligned(p.len());
            }
        }
        Ok(Sequential {
            input: def.input.clone(),
            layers,
            consumers,
            init: def.init,
            slots,
            packed_len,
            state_len: state_at - packed_len,
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
        // Slots list each layer's parameters and buffers in order, layer by layer.
        let params = self
            .layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.params.iter().chain(&l.buffers).map(move |p| (i, p.name)));
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
        self.slots
            .iter()
            .filter(|s| s.learnable)
            .map(|s| s.len)
            .sum()
    }

    /// Number of buffer scalars (state that is not learned).
    pub fn buffer_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| !s.learnable)
            .map(|s| s.len)
            .sum()
    }

    /// Words of the parameter buffer: learnable tensors, then buffers.
    pub fn params_words(&self) -> usize {
        self.packed_len + self.state_len
    }

    /// Forward FLOPs per sample.
    pub fn forward_flops(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| l.op.forward_flops(&l.input))
            .sum()
    }

    /// Initial parameters and buffers (per layer, in slot order): each tensor from its own
    /// stream of `seed`, so adding a layer does not change the others.
    pub fn init_params(&self, seed: u64) -> Vec<Vec<Tensor>> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                l.params
                    .iter()
                    .chain(&l.buffers)
                    .enumerate()
                    .map(|(j, p)| {
                        self.init
                            .fill(p, &mut Rng::for_stream(seed, (i * 16 + j) as u64))
                    })
                    .collect()
            })
            .collect()
    }

    /// Packs per-layer tensors (parameters, then buffers) into the flat layout.
    pub fn pack(&self, params: &[Vec<Tensor>]) -> Vec<f32> {
        let mut out = vec![0.0; self.params_words()];
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

    /// For each tensor (`0` the input, `i + 1` layer `i`'s output), whether training needs
    /// its gradient: it comes from a layer with parameters, or from one reading a tensor
    /// whose gradient is needed. The input's never is (nothing before it learns).
    pub fn needs_grad(&self) -> Vec<bool> {
        let mut needs = vec![false];
        for l in &self.layers {
            let own = !l.params.is_empty() || l.inputs.iter().any(|&t| needs[t]);
            needs.push(own);
        }
        needs
    }

    /// Whether layer `i` is a link of a chain: it reads only tensor `i` (the layer
    /// before's output, or the input) and nothing else reads that tensor. Fusions fold
    /// only such links.
    pub fn is_chain_link(&self, i: usize) -> bool {
        self.layers
            .get(i)
            .is_some_and(|l| l.inputs == [TensorId(i)])
            && self.consumers.get(i).is_some_and(|c| c.len() == 1)
    }

    /// CPU forward; returns every tensor `[x, y_0, ..., y_last]`.
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
            let xs: Vec<&Tensor> = l.inputs.iter().map(|&t| &acts[t]).collect();
            let y = l.op.forward_cpu_of(&xs, &params[i], &ctx);
            acts.push(y);
        }
        acts
    }

    /// CPU backward from the gradient of the last tensor, layers in reverse order, the
    /// gradients of a tensor read by several layers summed in layer order; returns
    /// per-layer parameter gradients (learnable tensors only) and the input gradient.
    pub fn backward_cpu(
        &self,
        params: &[Vec<Tensor>],
        acts: &[Tensor],
        dy: &Tensor,
        seed: u64,
        step: u64,
    ) -> (Tensor, Vec<Vec<Tensor>>) {
        let mut grads: Vec<Vec<Tensor>> = self.layers.iter().map(|_| Vec::new()).collect();
        // Each tensor's gradient parts, by consumer, summed when its producer is reached.
        let mut parts: Vec<Vec<(usize, Tensor)>> = acts.iter().map(|_| Vec::new()).collect();
        let n = self.layers.len();
        parts[n].push((0, dy.clone()));
        let sum = |mut p: Vec<(usize, Tensor)>, like: &Tensor| -> Tensor {
            p.sort_by_key(|(order, _)| *order);
            let mut it = p.into_iter().map(|(_, t)| t);
            let mut total = it.next().unwrap_or_else(|| Tensor {
                shape: like.shape.clone(),
                data: vec![0.0; like.len()],
            });
            for t in it {
                for (a, b) in total.data.iter_mut().zip(&t.data) {
                    *a += b;
                }
            }
            total
        };
        for (i, l) in self.layers.iter().enumerate().rev() {
            let ctx = CpuCtx {
                train: true,
                seed,
                step,
                layer: i,
            };
            let d = sum(std::mem::take(&mut parts[i + 1]), &acts[i + 1]);
            let xs: Vec<&Tensor> = l.inputs.iter().map(|&t| &acts[t]).collect();
            let (dxs, dp) =
                l.op.backward_cpu_of(&xs, &params[i], &acts[i + 1], &d, &ctx);
            grads[i] = dp;
            for (slot, (dx, &t)) in dxs.into_iter().zip(&l.inputs).enumerate() {
                let order = self.consumers[t]
                    .iter()
                    .position(|&c| c == (i, slot))
                    .unwrap_or(0);
                parts[t].push((order, dx));
            }
        }
        (sum(std::mem::take(&mut parts[0]), &acts[0]), grads)
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
    let words = l.op.scratch_words_on(gpu.adapter(), &l.input, batch);
    if words == 0 {
        return Ok(None);
    }
    let buffer = gpu.storage_buffer(&format!("scratch.{i}"), words as u64 * 4)?;
    Ok(Some(BufferRef::whole(&buffer).words(0, words as u64)))
}

/// Which tensors a mixed-precision training step stores as f16, indexed like
/// [`GpuModel::acts`]: the output of an [`Op::f16_storage`] op running its own kernels when
/// only such ops read it, directly or through a relu folded into them (whose output, an
/// alias, is then f16 too). Every reader loads it as a GEMM operand, which rounded it to
/// f16 anyway, so storing it rounded changes no product, or as a relu mask, which now
/// sees the f16 value (a positive output below f16's smallest subnormal, 2^-25, masks as
/// zero, as PyTorch autocast's relu of an f16 tensor does). It halves the tensor's memory
/// and the bandwidth of its loads. Never the model's input or output (the loss, metrics
/// and other models read those in f32).
pub fn f16_activations(model: &Sequential, fusion: &Fusion) -> Vec<bool> {
    let n = model.layers.len();
    let mut f16 = vec![false; n + 1];
    let gemm_only = |j: usize| {
        model.layers[j].op.f16_storage()
            && !matches!(
                fusion.layers.get(j),
                Some(FusedLayer::Folded | FusedLayer::AfterRelu) | None
            )
    };
    let folded = |j: usize| fusion.layers.get(j) == Some(&FusedLayer::Folded);
    for i in 0..n {
        let t = i + 1;
        let readers = &model.consumers[t];
        if t == n || !gemm_only(i) || readers.is_empty() {
            continue;
        }
        let all_gemm = readers.iter().all(|&(j, _)| {
            gemm_only(j)
                || (folded(j)
                    && j + 1 < n
                    && !model.consumers[j + 1].is_empty()
                    && model.consumers[j + 1].iter().all(|&(r, _)| gemm_only(r)))
        });
        if all_gemm {
            f16[t] = true;
            for &(j, _) in readers.iter().filter(|&&(j, _)| folded(j)) {
                f16[j + 1] = true;
            }
        }
    }
    f16
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
    /// sharing its features). `precision` is that of its matrix products; training in f16
    /// stores the activations [`f16_activations`] names as f16.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        gpu: &Gpu,
        precision: Precision,
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
        let stores_pool: Vec<bool> = (0..fusion.layers.len())
            .map(|i| fusion.stores_pool(i))
            .collect();
        // The output of a conv that stores its pool is never written or read: a word of
        // placeholder stands for it (and for the fused relu's alias of it).
        let unwritten = BufferRef::whole(&gpu.storage_buffer("act.unwritten", 4)?);
        let f16 = if train && precision == Precision::F16 {
            f16_activations(model, &fusion)
        } else {
            vec![false; model.layers.len() + 1]
        };
        let mut acts = vec![input];
        let mut dacts = vec![acts[0].clone()];
        let own = |label: String, words: u64| -> Result<BufferRef, GpuError> {
            Ok(BufferRef::whole(&gpu.storage_buffer(&label, words * 4)?).words(0, words))
        };
        for (i, l) in model.layers.iter().enumerate() {
            let words = (batch * numel(&l.output)) as u64;
            let first = l.inputs[0];
            if stores_pool[i] || (i > 0 && stores_pool[i - 1]) {
                acts.push(unwritten.clone());
            } else if fused[i] && acts[first].elem == Elem::F16 {
                // A relu folded into the linear layers around it (`f16_activations`): the
                // same values, so the same f16 tensor.
                acts.push(acts[first].clone());
            } else if l.op.is_view() || fused[i] {
                acts.push(acts[first].words(0, words));
            } else if f16[i + 1] {
                let halves = Elem::F16.words(words);
                acts.push(own(format!("act.{i}"), halves)?.holding(Elem::F16));
            } else {
                acts.push(own(format!("act.{i}"), words)?);
            }
            if train {
                // A view or a folded relu shares its input's gradient buffer when it is the
                // only reader of a tensor that needs one.
                if (l.op.is_view() || fused[i])
                    && first != TensorId::INPUT
                    && model.consumers[first].len() == 1
                {
                    dacts.push(dacts[first].words(0, words));
                } else {
                    dacts.push(own(format!("grad_act.{i}"), words)?);
                }
            }
        }
        // Where a tensor is read by several layers, each writes its part of the gradient
        // into a buffer of its own; they are summed before the tensor's producer runs.
        // A tensor whose gradient nothing needs gets none: its readers skip their input
        // gradient (a linear after a flatten of the input runs no `dx` GEMM).
        let needs_grad = model.needs_grad();
        let mut parts: Vec<Vec<BufferRef>> = vec![Vec::new(); acts.len()];
        if train {
            for (t, readers) in model.consumers.iter().enumerate().skip(1) {
                if readers.len() > 1 && needs_grad[t] {
                    let words = dacts[t].len_words();
                    for k in 0..readers.len() {
                        parts[t].push(own(format!("grad_act.{}.part{k}", t - 1), words)?);
                    }
                }
            }
        }
        // The gradient layer `i` writes for its input `slot`.
        let dx_of = |i: usize, slot: usize| -> Option<BufferRef> {
            let t = model.layers[i].inputs[slot];
            if !train || !needs_grad[t] {
                return None;
            }
            match model.consumers[t].iter().position(|&c| c == (i, slot)) {
                Some(k) if parts[t].len() > 1 => Some(parts[t][k].clone()),
                _ => Some(dacts[t].clone()),
            }
        };
        let mut k = KernelBuilder::with_precision(gpu, precision);
        let mut forward = Vec::new();
        let mut backward_per_layer = Vec::new();
        let mut slots = model.slots.iter();
        // A max pool whose forward a conv before it did (its index and arg-max scratch).
        let mut pooled_by_conv: Option<(usize, BufferRef)> = None;
        for (i, l) in model.layers.iter().enumerate() {
            let mut p = Vec::new();
            let mut g = Vec::new();
            for _ in l.params.iter().chain(&l.buffers) {
                let s = slots
                    .next()
                    .ok_or_else(|| GpuError::InvalidModel("parameter layout mismatch".into()))?;
                p.push(BufferRef {
                    buffer: params.clone(),
                    offset: s.offset as u64 * 4,
                    size: s.len as u64 * 4,
                    elem: Elem::F32,
                });
                if let Some(gb) = grads.filter(|_| s.learnable) {
                    g.push(BufferRef {
                        buffer: gb.clone(),
                        offset: s.offset as u64 * 4,
                        size: s.len as u64 * 4,
                        elem: Elem::F32,
                    });
                }
            }
            let scratch = match pooled_by_conv.take_if(|(pool, _)| *pool == i) {
                Some((_, arg)) => Some(arg),
                None => scratch_buffer(gpu, model, i, batch)?,
            };
            let dxs: Vec<Option<BufferRef>> = (0..l.inputs.len()).map(|s| dx_of(i, s)).collect();
            let io = LayerIo {
                layer: i,
                batch,
                input_shape: l.input.clone(),
                output_shape: l.output.clone(),
                train,
                step: step.clone(),
                x: acts[l.inputs[0]].clone(),
                xs: l.inputs.iter().map(|&t| acts[t].clone()).collect(),
                y: acts[i + 1].clone(),
                dy: if train {
                    dacts[i + 1].clone()
                } else {
                    acts[i + 1].clone()
                },
                dx: dxs[0].clone(),
                dxs,
                params: p,
                grads: g,
                scratch,
            };
            // The gradient of this layer's output, summed from its readers' parts, before
            // its backward.
            let mut backward = if parts[i + 1].len() > 1 {
                crate::add::sum_dispatches(&mut k, &parts[i + 1], &dacts[i + 1])?
            } else {
                Vec::new()
            };
            match fusion.layers[i] {
                // Folded into the layers around it (see `crate::fusion`).
                FusedLayer::Folded => {}
                FusedLayer::Fused {
                    relu_after,
                    mask_before,
                    ..
                } => {
                    // op -> relu -> 2x2 max pool: the op's kernel stores the pool.
                    if fusion.stores_pool(i) {
                        let pool = i + 2;
                        let arg = scratch_buffer(gpu, model, pool, batch)?.ok_or_else(|| {
                            GpuError::InvalidModel("max_pool2d needs scratch".into())
                        })?;
                        forward.extend(l.op.gpu_forward_relu_pooled(
                            &mut k,
                            &io,
                            &acts[pool + 1],
                            &arg,
                        )?);
                        pooled_by_conv = Some((pool, arg));
                    } else if relu_after {
                        forward.extend(l.op.gpu_forward_relu(&mut k, &io)?);
                    } else {
                        forward.extend(l.op.gpu_forward(&mut k, &io)?);
                    }
                    if train {
                        backward.extend(if mask_before {
                            l.op.gpu_backward_relu_masked(&mut k, &io)?
                        } else {
                            l.op.gpu_backward(&mut k, &io)?
                        });
                    }
                }
                FusedLayer::AfterRelu => {
                    if !fusion.pool_stored_before(i) {
                        forward.extend(l.op.gpu_forward_relu(&mut k, &io)?);
                    }
                    if train {
                        backward.extend(l.op.gpu_backward(&mut k, &io)?);
                    }
                }
                FusedLayer::Alone => {
                    forward.extend(l.op.gpu_forward(&mut k, &io)?);
                    if train {
                        backward.extend(l.op.gpu_backward(&mut k, &io)?);
                    }
                }
            }
            backward_per_layer.push(backward);
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
