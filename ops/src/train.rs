//! The compiled training step ([`TrainStep`]) and evaluation step ([`EvalStep`]) the
//! executor drives. Everything is allocated and every pipeline built in `new`; a step writes
//! one small uniform, encodes the pre-built dispatches into one command encoder and submits
//! once. Loss, accuracy and gradient norm accumulate on the device until read.

use bytemuck::{Pod, Zeroable};

use crate::Precision;
use crate::fusion::{Fusion, fuse};
use crate::gpu::{Buffer, BufferRef, Dispatch, DispatchInfo, Gpu, GpuError, KernelBuilder};
use crate::loss::{cross_entropy, distill};
use crate::loss_scale::{LossScaler, ScalerConfig};
use crate::model::{GpuModel, Sequential};
use crate::op::numel;
use crate::optim::clip;

pub use crate::loss::LossKind;
pub use crate::model::ModelDef;
pub use crate::optim::OptimizerKind;

/// Training hyperparameters fixed at plan time.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Rows per micro-batch (the last one may be partial; it is padded and masked).
    pub batch: usize,
    pub loss: LossKind,
    pub optimizer: OptimizerKind,
    /// Clip the global norm of the mean gradient to this value.
    pub clip_grad_norm: Option<f32>,
    /// Micro-batches per optimizer update (1 = no accumulation).
    pub accumulation_steps: u32,
    /// Seeds parameter init and dropout.
    pub seed: u64,
    /// Cross entropy: each sample's loss and gradient scaled by its label's weight (one
    /// per class; imbalanced data). `None`: every class weighs 1.
    pub class_weights: Option<Vec<f32>>,
    /// f32, or mixed precision (f16 matrix-product operands, dynamic loss scaling with
    /// PyTorch's defaults); f16 needs an adapter with shader-f16.
    pub precision: Precision,
}

/// Device-accumulated metrics since the last read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepMetrics {
    /// Sum of per-sample losses (divide by `samples` for the mean): `loss_exact`'s value.
    pub loss_sum: f64,
    /// The loss sum as accumulated on the device, exactly: sums of several reads or ranks
    /// merge without rounding (see [`StepMetrics::merge`]).
    pub loss_exact: ExactLossSum,
    pub correct: u64,
    pub top5_correct: u64,
    pub samples: u64,
    /// Global norm of the mean gradient at the last optimizer update (before clipping).
    pub last_grad_norm: f32,
}

/// A loss sum accumulated without rounding error between micro-batches: each micro-batch's
/// f32 sum rounded once to a 96-bit fixed-point integer (32 fraction bits), plus the sum of
/// the micro-batches that were not finite or too large for it (kept apart in f32).
/// Integer addition is associative, so the total does not depend on how micro-batches were
/// grouped into reads, accumulation groups or data-parallel ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExactLossSum {
    /// The fixed-point sum, in units of 2^-32.
    pub fixed: i128,
    /// Non-finite or huge micro-batch sums (NaN and inf stay visible).
    pub carried: f32,
}

impl ExactLossSum {
    /// From the device words: low, middle and high word of the fixed-point sum, carrier bits.
    fn from_words(lo: u32, mid: u32, hi: u32, carried: u32) -> ExactLossSum {
        let raw = (u128::from(hi) << 64) | (u128::from(mid) << 32) | u128::from(lo);
        // Sign-extend the 96-bit two's complement value.
        let fixed = ((raw << 32) as i128) >> 32;
        ExactLossSum {
            fixed,
            carried: f32::from_bits(carried),
        }
    }

    /// The sum as a number.
    pub fn value(&self) -> f64 {
        self.fixed as f64 / 4_294_967_296.0 + f64::from(self.carried)
    }
}

impl StepMetrics {
    /// Adds another read's (or rank's) metrics: counts and the exact loss sum add without
    /// rounding; the gradient norm is `other`'s when it saw samples.
    pub fn merge(&mut self, other: &StepMetrics) {
        self.loss_exact.fixed += other.loss_exact.fixed;
        self.loss_exact.carried += other.loss_exact.carried;
        self.loss_sum = self.loss_exact.value();
        self.correct += other.correct;
        self.top5_correct += other.top5_correct;
        self.samples += other.samples;
        if other.samples > 0 {
            self.last_grad_norm = other.last_grad_norm;
        }
    }
}

/// A named tensor for checkpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Layout of the per-step uniform (`Step` in `shaders/common.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct StepUniform {
    pub lr: f32,
    pub rows: u32,
    pub step: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub grad_scale: f32,
    pub bias_correction1: f32,
    pub bias_correction2: f32,
    pub clip_max: f32,
    pub opt_t: u32,
    pub pad0: u32,
    pub pad1: u32,
}

/// Words in the metrics buffer: the loss sum (three fixed-point words and a carrier),
/// correct, top5, samples and the gradient norm (layout in `shaders/metrics_reduce.wgsl`).
const METRIC_WORDS: usize = 8;

/// Buffers for the loss of one batch size: labels/targets in, gradient and stats out.
struct LossIo {
    labels: Buffer,
    targets: Buffer,
    metrics: Buffer,
    metrics_staging: Buffer,
    step: Buffer,
    dispatches: Vec<Dispatch>,
    host_features: Vec<f32>,
    host_labels: Vec<u32>,
    host_targets: Vec<f32>,
    rows: usize,
}

impl LossIo {
    /// `features` is the per-sample size of what is uploaded (the first model's input);
    /// `teacher` the teacher's logits for a distillation loss.
    #[allow(clippy::too_many_arguments)]
    fn new(
        gpu: &Gpu,
        model: &Sequential,
        gm: &GpuModel,
        loss: LossKind,
        dlogits: &BufferRef,
        step: Buffer,
        features: usize,
        teacher: Option<&BufferRef>,
        class_weights: Option<&[f32]>,
    ) -> Result<LossIo, GpuError> {
        let batch = gm.batch;
        let out = numel(model.output_shape());
        let labels = gpu.storage_buffer("labels", (batch * 4) as u64)?;
        let targets = gpu.storage_buffer("targets", (batch * out * 4) as u64)?;
        let row_stats = gpu.storage_buffer("row_stats", (batch * 3 * 4) as u64)?;
        let metrics = gpu.storage_buffer("metrics", (METRIC_WORDS * 4) as u64)?;
        let metrics_staging = gpu.readback_buffer("metrics.readback", (METRIC_WORDS * 4) as u64)?;
        let mut k = KernelBuilder::new(gpu);
        let step_ref = BufferRef::whole(&step);
        let logits = &gm.acts[gm.acts.len() - 1];
        let stats_ref = BufferRef::whole(&row_stats);
        let loss_dispatch = match &loss {
            &LossKind::CrossEntropy { label_smoothing } => cross_entropy::dispatch(
                &mut k,
                &step_ref,
                logits,
                &BufferRef::whole(&labels),
                dlogits,
                &stats_ref,
                batch,
                out,
                label_smoothing,
                class_weights,
            )?,
            &LossKind::Distill { temperature, alpha } => {
                let teacher = teacher.ok_or_else(|| {
                    GpuError::InvalidConfig("a distillation loss needs a teacher".into())
                })?;
                distill::dispatch(
                    &mut k,
                    &step_ref,
                    logits,
                    teacher,
                    &BufferRef::whole(&labels),
                    dlogits,
                    &stats_ref,
                    batch,
                    out,
                    temperature,
                    alpha,
                )?
            }
            LossKind::Fused(fused) => {
                let truth = match fused.targets {
                    crate::loss::LossTargets::Classes => BufferRef::whole(&labels),
                    crate::loss::LossTargets::Values => BufferRef::whole(&targets),
                };
                fused.dispatch(
                    &mut k, &step_ref, logits, &truth, dlogits, &stats_ref, batch, out,
                )?
            }
        };
        let reduce = k.compute(
            "metrics_reduce",
            &[include_str!("../../shaders/metrics_reduce.wgsl")],
            &[],
            &[&step_ref, &stats_ref, &BufferRef::whole(&metrics)],
            [1, 1, 1],
        )?;
        Ok(LossIo {
            labels,
            targets,
            metrics,
            metrics_staging,
            step,
            dispatches: vec![loss_dispatch, reduce],
            host_features: vec![0.0; batch * features],
            host_labels: vec![0; batch],
            host_targets: vec![0.0; batch * out],
            rows: 0,
        })
    }

    fn upload(
        &mut self,
        gpu: &Gpu,
        input: &BufferRef,
        features: &[f32],
        labels: &[u32],
        targets: Option<&[f32]>,
        rows: usize,
    ) -> Result<(), GpuError> {
        let batch = self.host_labels.len();
        let rows = rows.min(batch);
        let per = self.host_features.len() / batch.max(1);
        let n = (rows * per).min(features.len());
        self.host_features[..n].copy_from_slice(&features[..n]);
        self.host_features[n..].fill(0.0);
        let nl = rows.min(labels.len());
        self.host_labels[..nl].copy_from_slice(&labels[..nl]);
        self.host_labels[nl..].fill(u32::MAX);
        gpu.write(&input.buffer, input.offset, &self.host_features)?;
        gpu.write(&self.labels, 0, &self.host_labels)?;
        if let Some(t) = targets {
            let out = self.host_targets.len() / batch.max(1);
            let nt = (rows * out).min(t.len());
            self.host_targets[..nt].copy_from_slice(&t[..nt]);
            self.host_targets[nt..].fill(0.0);
            gpu.write(&self.targets, 0, &self.host_targets)?;
        }
        self.rows = rows;
        Ok(())
    }

    fn read_metrics(&mut self, gpu: &Gpu) -> Result<StepMetrics, GpuError> {
        let bytes = gpu.read_bytes(
            &BufferRef::whole(&self.metrics),
            &self.metrics_staging,
            "metrics",
        )?;
        let w: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
        let loss_exact = ExactLossSum::from_words(w[0], w[1], w[6], w[7]);
        let m = StepMetrics {
            loss_sum: loss_exact.value(),
            loss_exact,
            correct: w[2] as u64,
            top5_correct: w[3] as u64,
            samples: w[4] as u64,
            last_grad_norm: f32::from_bits(w[5]),
        };
        // Keep word 5, the last gradient norm.
        gpu.write(&self.metrics, 0, &[0u32; 5])?;
        gpu.write(&self.metrics, 6 * 4, &[0u32; 2])?;
        Ok(m)
    }
}

/// A model's parameters on the device that no training chain updates: a frozen model
/// (a pre-trained encoder in front of a trained head, a distillation teacher).
pub struct ModelParams {
    def: ModelDef,
    model: Sequential,
    fusion: Fusion,
    params: Buffer,
}

impl ModelParams {
    /// Validates the model and initialises its parameters from `seed`, named
    /// `{layer_names[i]}.{param}` when given (default `layers.{i}.{param}`).
    pub fn new(
        gpu: &Gpu,
        def: &ModelDef,
        seed: u64,
        layer_names: Option<&[String]>,
    ) -> Result<ModelParams, GpuError> {
        let mut model = Sequential::new(def).map_err(GpuError::InvalidModel)?;
        if let Some(names) = layer_names {
            model.rename_layers(names).map_err(GpuError::InvalidModel)?;
        }
        let params = gpu.storage_buffer("frozen.params", (model.params_words() * 4) as u64)?;
        gpu.write(&params, 0, &model.pack(&model.init_params(seed)))?;
        Ok(ModelParams {
            def: def.clone(),
            fusion: fuse(&model),
            model,
            params,
        })
    }

    /// Runs the model as `fusion` says (the planner's; [`ModelParams::new`] runs
    /// [`fuse`]).
    pub fn set_fusion(&mut self, fusion: Fusion) -> Result<(), GpuError> {
        fusion.check(&self.model).map_err(GpuError::InvalidModel)?;
        self.fusion = fusion;
        Ok(())
    }

    /// Replaces all parameters (see [`TrainStep::load_params`]).
    pub fn load(&self, gpu: &Gpu, tensors: &[NamedTensor]) -> Result<(), GpuError> {
        write_params(gpu, &self.model, &self.params, tensors)
    }

    /// The parameters.
    pub fn tensors(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>, GpuError> {
        let flat = gpu.read_f32(&BufferRef::whole(&self.params))?;
        Ok(unpack(&self.model, &flat, "", Tensors::All))
    }

    /// The validated model.
    pub fn model(&self) -> &Sequential {
        &self.model
    }
}

/// What a training chain reads besides its own model.
#[derive(Default)]
pub struct ChainInputs<'a> {
    /// A frozen model in front of the trained one: the features go through it first, in
    /// evaluation mode, and no gradient flows into it.
    pub encoder: Option<&'a ModelParams>,
    /// A frozen teacher the distillation loss compares with, fed the same features.
    pub teacher: Option<&'a ModelParams>,
    /// Names of the trained model's layers in parameter names (`{name}.{param}`);
    /// default `layers.{i}`.
    pub layer_names: Option<Vec<String>>,
    /// Name of the optimizer's update counter in [`TrainStep::optimizer_state`];
    /// default `optimizer.step`.
    pub step_tensor: Option<String>,
    /// How the trained model's layers are fused (the planner's); default [`fuse`].
    pub fusion: Option<Fusion>,
}

/// One compiled training step for a model, loss and optimizer.
pub struct TrainStep {
    model: Sequential,
    cfg: TrainConfig,
    params: Buffer,
    grads: Buffer,
    state: Option<Buffer>,
    /// How the model's layers are fused.
    fusion: Fusion,
    /// A frozen encoder and its forward pass (its output is the model's input).
    encoder: Option<(Sequential, Fusion, Buffer, GpuModel)>,
    /// A frozen teacher's forward pass (its logits feed the distillation loss).
    teacher: Option<GpuModel>,
    step_tensor: String,
    gpu_model: GpuModel,
    loss: LossIo,
    update: Vec<Dispatch>,
    /// How many of `update`'s first dispatches are a gradient correction.
    corrections: usize,
    micro: u32,
    group_rows: usize,
    opt_t: u64,
    /// Data parallel: the group's gradient sums on the host (the device holds only the
    /// last micro-batch's contribution between exchanges).
    group: Option<GroupSums>,
    /// Mixed precision: the loss scaler's device state `[scale, finite updates in a row,
    /// updates skipped]`.
    scaler: Option<Buffer>,
}

/// The host side of a data-parallel accumulation group.
struct GroupSums {
    /// Every rank's contributions so far, added in the single-process micro-batch order.
    sum: Vec<f32>,
    /// Where one contribution is read back.
    staging: Buffer,
    zeros: Vec<f32>,
}

impl TrainStep {
    /// Validates the model and configuration, allocates every buffer, initialises the
    /// parameters from `cfg.seed` (the same values as [`Sequential::init_params`]) and builds
    /// every pipeline and bind group.
    pub fn new(gpu: &Gpu, model: &ModelDef, cfg: &TrainConfig) -> Result<TrainStep, GpuError> {
        TrainStep::with_inputs(gpu, model, cfg, ChainInputs::default())
    }

    /// Like [`TrainStep::new`], with a frozen encoder in front of the model, a teacher
    /// for a distillation loss, and parameter names.
    pub fn with_inputs(
        gpu: &Gpu,
        model: &ModelDef,
        cfg: &TrainConfig,
        inputs: ChainInputs,
    ) -> Result<TrainStep, GpuError> {
        let mut seq = Sequential::new(model).map_err(GpuError::InvalidModel)?;
        if let Some(names) = &inputs.layer_names {
            seq.rename_layers(names).map_err(GpuError::InvalidModel)?;
        }
        if let LossKind::Distill { temperature, alpha } = cfg.loss
            && !(temperature.is_finite() && temperature > 0.0 && (0.0..=1.0).contains(&alpha))
        {
            return Err(GpuError::InvalidConfig(format!(
                "distillation needs temperature > 0 and alpha in [0, 1], found {temperature} and {alpha}"
            )));
        }
        if cfg.batch == 0 {
            return Err(GpuError::InvalidConfig("batch must be at least 1".into()));
        }
        if cfg.accumulation_steps == 0 {
            return Err(GpuError::InvalidConfig(
                "accumulation_steps must be at least 1".into(),
            ));
        }
        cfg.optimizer.check().map_err(GpuError::InvalidConfig)?;
        if cfg.precision == Precision::F16 {
            if !gpu.adapter().shader_f16 {
                return Err(GpuError::InvalidConfig(format!(
                    "precision f16 needs an adapter with shader-f16; {} ({}) has none",
                    gpu.adapter().name,
                    gpu.adapter().backend
                )));
            }
            if !cfg.optimizer.skips_flagged_updates() {
                return Err(GpuError::InvalidConfig(format!(
                    "optimizer {} cannot skip an overflowed update, which mixed precision needs",
                    cfg.optimizer.kernel()
                )));
            }
        }
        if let LossKind::CrossEntropy { label_smoothing } = cfg.loss
            && !(0.0..1.0).contains(&label_smoothing)
        {
            return Err(GpuError::InvalidConfig(format!(
                "label_smoothing must be in [0, 1), found {label_smoothing}"
            )));
        }
        if let Some(c) = cfg.clip_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(GpuError::InvalidConfig(format!(
                "clip_grad_norm must be positive, found {c}"
            )));
        }
        let len = seq.packed_len;
        let bytes = (len * 4) as u64;
        let params = gpu.storage_buffer("params", (seq.params_words() * 4) as u64)?;
        let grads = gpu.storage_buffer("grads", bytes)?;
        let n_state = cfg.optimizer.state_names().len();
        let state = if n_state > 0 {
            Some(gpu.storage_buffer("optimizer_state", bytes * n_state as u64)?)
        } else {
            None
        };
        gpu.write(&params, 0, &seq.pack(&seq.init_params(cfg.seed)))?;
        gpu.write(&grads, 0, &vec![0.0f32; len])?;
        if let Some(s) = &state {
            gpu.write(s, 0, &vec![0.0f32; len * n_state])?;
        }
        // The step uniform is owned by the loss io; build the model against it.
        let step_buf = gpu.uniform_buffer("step", std::mem::size_of::<StepUniform>() as u64)?;
        let step_ref = BufferRef::whole(&step_buf);
        let encoder = match inputs.encoder {
            Some(e) => Some((
                Sequential::new(&e.def).map_err(GpuError::InvalidModel)?,
                e.fusion.clone(),
                e.params.clone(),
                GpuModel::build(
                    gpu,
                    Precision::F32,
                    &e.model,
                    &e.fusion,
                    cfg.batch,
                    &e.params,
                    None,
                    &step_ref,
                    None,
                )?,
            )),
            None => None,
        };
        let fed = encoder
            .as_ref()
            .map(|(_, _, _, gm)| gm.acts[gm.acts.len() - 1].clone());
        let fusion = inputs.fusion.unwrap_or_else(|| fuse(&seq));
        let gpu_model = GpuModel::build(
            gpu,
            cfg.precision,
            &seq,
            &fusion,
            cfg.batch,
            &params,
            Some(&grads),
            &step_ref,
            fed.as_ref(),
        )?;
        let first_input = encoder
            .as_ref()
            .map_or(&gpu_model.acts[0], |(_, _, _, gm)| &gm.acts[0])
            .clone();
        let features = inputs
            .encoder
            .map_or_else(|| numel(&seq.input), |e| numel(&e.model.input));
        let teacher = match inputs.teacher {
            Some(t) => {
                let gm = GpuModel::build(
                    gpu,
                    Precision::F32,
                    &t.model,
                    &t.fusion,
                    cfg.batch,
                    &t.params,
                    None,
                    &step_ref,
                    Some(&first_input),
                )?;
                if numel(t.model.output_shape()) != numel(seq.output_shape()) {
                    return Err(GpuError::InvalidModel(format!(
                        "the teacher outputs {:?} but the model {:?}",
                        t.model.output_shape(),
                        seq.output_shape()
                    )));
                }
                Some(gm)
            }
            None => None,
        };
        let dlogits = gpu_model.dacts[gpu_model.dacts.len() - 1].clone();
        let teacher_logits = teacher.as_ref().map(|t| t.acts[t.acts.len() - 1].clone());
        let mut loss = LossIo::new(
            gpu,
            &seq,
            &gpu_model,
            cfg.loss.clone(),
            &dlogits,
            step_buf,
            features,
            teacher_logits.as_ref(),
            cfg.class_weights.as_deref(),
        )?;
        // At the step's precision: under f16 the optimizer discounts skipped updates.
        let mut k = KernelBuilder::with_precision(gpu, cfg.precision);
        let scaler_config = ScalerConfig::default();
        let scaler = match cfg.precision {
            Precision::F32 => None,
            Precision::F16 => {
                let state =
                    gpu.storage_buffer("loss_scale", (crate::loss_scale::STATE_WORDS * 4) as u64)?;
                gpu.write(&state, 0, &scaler_config.initial_state())?;
                loss.dispatches.push(scaler_config.apply_dispatch(
                    &mut k,
                    &BufferRef::whole(&state),
                    &dlogits,
                    cfg.batch,
                    cfg.batch * numel(seq.output_shape()),
                )?);
                Some(state)
            }
        };
        let scaler_ref = scaler.as_ref().map(BufferRef::whole);
        let partials = gpu.storage_buffer("grad_norm.partials", (clip::PARTIALS * 4) as u64)?;
        let scalars = gpu.storage_buffer("scalars", 16)?;
        gpu.write(&scalars, 0, &[1.0f32, 0.0, 0.0, 0.0])?;
        let step_ref = BufferRef::whole(&loss.step);
        let mut update = clip::dispatches(
            &mut k,
            &step_ref,
            &BufferRef::whole(&grads).words(0, len as u64),
            &BufferRef::whole(&partials),
            &BufferRef::whole(&scalars),
            &BufferRef::whole(&loss.metrics),
            scaler_ref.as_ref().map(|s| (s, cfg.batch)),
            len,
        )?;
        if let Some(state) = &scaler_ref {
            update.push(scaler_config.update_dispatch(
                &mut k,
                &BufferRef::whole(&scalars),
                state,
            )?);
        }
        let state_ref = state
            .as_ref()
            .map(|s| BufferRef::whole(s).words(0, (len * n_state) as u64));
        update.push(cfg.optimizer.dispatch(
            &mut k,
            &step_ref,
            &BufferRef::whole(&scalars),
            &BufferRef::whole(&grads).words(0, len as u64),
            state_ref.as_ref(),
            &BufferRef::whole(&params).words(0, len as u64),
            len,
        )?);
        gpu.take_error()?;
        Ok(TrainStep {
            model: seq,
            fusion,
            cfg: cfg.clone(),
            params,
            grads,
            state,
            encoder,
            teacher,
            step_tensor: inputs
                .step_tensor
                .unwrap_or_else(|| "optimizer.step".into()),
            gpu_model,
            loss,
            update,
            corrections: 0,
            micro: 0,
            group_rows: 0,
            opt_t: 0,
            group: None,
            scaler,
        })
    }

    /// Copies a micro-batch to the device: `features` `[rows * input]`, `labels` `[rows]`
    /// (cross entropy), `targets` `[rows * output]` (mse). Rows beyond `rows` (up to the
    /// batch) are zero-padded and masked out of loss, gradients and metrics. Missing data is
    /// treated as zeros; labels out of range contribute nothing.
    pub fn upload_batch(
        &mut self,
        gpu: &Gpu,
        features: &[f32],
        labels: &[u32],
        targets: Option<&[f32]>,
        rows: usize,
    ) -> Result<(), GpuError> {
        // Disjoint field borrows: no handle is cloned on this per-batch path.
        let input = match &self.encoder {
            Some((_, _, _, gm)) => &gm.acts[0],
            None => &self.gpu_model.acts[0],
        };
        self.loss
            .upload(gpu, input, features, labels, targets, rows)
    }

    /// The forward passes of the frozen encoder and teacher, then the model's.
    fn forward_dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        let encoder = self.encoder.iter().flat_map(|(_, _, _, gm)| &gm.forward);
        let teacher = self.teacher.iter().flat_map(|gm| &gm.forward);
        encoder.chain(teacher).chain(&self.gpu_model.forward)
    }

    /// The step uniform for a micro-batch of `self.loss.rows` rows at global micro-batch
    /// index `step`, `complete` when the optimizer updates after it.
    fn step_uniform(&self, lr: f32, step: u64, complete: bool) -> StepUniform {
        let t = if complete {
            self.opt_t + 1
        } else {
            self.opt_t.max(1)
        };
        let (bc1, bc2) = self.cfg.optimizer.bias_corrections(t);
        StepUniform {
            lr,
            rows: self.loss.rows as u32,
            step: step as u32,
            seed_lo: self.cfg.seed as u32,
            seed_hi: (self.cfg.seed >> 32) as u32,
            grad_scale: if self.group_rows > 0 {
                1.0 / self.group_rows as f32
            } else {
                0.0
            },
            bias_correction1: bc1,
            bias_correction2: bc2,
            clip_max: self.cfg.clip_grad_norm.unwrap_or(0.0),
            opt_t: t as u32,
            pad0: 0,
            pad1: 0,
        }
    }

    /// Submits a micro-batch's forward, loss and backward, then `tail`, as one submission
    /// (recorded for the dispatch test when the device records).
    fn submit_micro_batch(&self, gpu: &Gpu, tail: &[Dispatch]) -> Result<(), GpuError> {
        let dispatches = || {
            self.forward_dispatches()
                .chain(&self.loss.dispatches)
                .chain(&self.gpu_model.backward)
                .chain(tail)
        };
        if gpu.is_recording() {
            gpu.push_recorded("train", dispatches().map(|d| d.info().clone()).collect());
        }
        gpu.submit_dispatches(dispatches())
    }

    /// Records and submits one training micro-step: forward, loss (+ device metrics),
    /// backward (gradients accumulate); after every `accumulation_steps` calls also the
    /// gradient norm, clipping, optimizer update and gradient reset. `step` is the global
    /// micro-batch index and keys dropout masks. One encoder, one submission, no read-back.
    pub fn record_step(&mut self, gpu: &Gpu, lr: f32, step: u64) -> Result<(), GpuError> {
        if self.group.is_some() {
            return Err(GpuError::InvalidConfig(
                "a data-parallel step records contributions, not whole steps".into(),
            ));
        }
        self.micro += 1;
        self.group_rows += self.loss.rows;
        let complete = self.micro >= self.cfg.accumulation_steps;
        let uniform = self.step_uniform(lr, step, complete);
        gpu.write(&self.loss.step, 0, &[uniform])?;
        let tail: &[Dispatch] = if complete { &self.update } else { &[] };
        self.submit_micro_batch(gpu, tail)?;
        if complete {
            self.opt_t += 1;
            self.micro = 0;
            self.group_rows = 0;
        }
        gpu.take_error()
    }

    /// Reads the device metrics accumulated since the last read (one read-back), then resets
    /// them.
    pub fn read_train_metrics(&mut self, gpu: &Gpu) -> Result<StepMetrics, GpuError> {
        self.loss.read_metrics(gpu)
    }

    /// The current parameters and buffers, named `layers.{i}.{weight|bias|…}` (or after
    /// nodes).
    pub fn param_tensors(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>, GpuError> {
        let flat = gpu.read_f32(&BufferRef::whole(&self.params))?;
        Ok(unpack(&self.model, &flat, "", Tensors::All))
    }

    /// The accumulated (not yet applied) gradient sums, same names as the parameters.
    pub fn grad_tensors(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>, GpuError> {
        let flat = gpu.read_f32(&BufferRef::whole(&self.grads))?;
        Ok(unpack(&self.model, &flat, "", Tensors::Learnable))
    }

    /// Optimizer state for checkpoints: `layers.{i}.{param}.{exp_avg|exp_avg_sq|momentum_buffer}`
    /// plus `optimizer.step` (`[1]`, the update count as f32).
    pub fn optimizer_state(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>, GpuError> {
        let mut out = Vec::new();
        if let Some(state) = &self.state {
            let flat = gpu.read_f32(&BufferRef::whole(state))?;
            for (k, suffix) in self.cfg.optimizer.state_names().iter().enumerate() {
                let base = k * self.model.packed_len;
                out.extend(unpack(
                    &self.model,
                    &flat[base..],
                    &format!(".{suffix}"),
                    Tensors::Learnable,
                ));
            }
        }
        out.push(NamedTensor {
            name: self.step_tensor.clone(),
            shape: vec![1],
            data: vec![self.opt_t as f32],
        });
        if let Some(scaler) = &self.scaler {
            let words = crate::loss_scale::STATE_WORDS;
            out.push(NamedTensor {
                name: self.loss_scale_tensor(),
                shape: vec![words],
                // The buffer may be padded past its words.
                data: gpu.read_f32(&BufferRef::whole(scaler))?[..words].to_vec(),
            });
        }
        Ok(out)
    }

    /// The checkpoint name of the loss scaler's state: beside the update counter
    /// (`optimizer.loss_scale`, `<chain>.optimizer.loss_scale`).
    fn loss_scale_tensor(&self) -> String {
        let base = self
            .step_tensor
            .strip_suffix(".step")
            .unwrap_or(&self.step_tensor);
        format!("{base}.loss_scale")
    }

    /// The mixed-precision loss scaler's state, `None` in f32 (one read-back).
    pub fn loss_scaler(&self, gpu: &Gpu) -> Result<Option<LossScaler>, GpuError> {
        let Some(scaler) = &self.scaler else {
            return Ok(None);
        };
        let state = gpu.read_f32(&BufferRef::whole(scaler))?;
        Ok(Some(LossScaler::from_state(
            ScalerConfig::default(),
            &state,
        )))
    }

    /// Restores optimizer state saved by [`TrainStep::optimizer_state`].
    pub fn load_optimizer_state(
        &mut self,
        gpu: &Gpu,
        tensors: &[NamedTensor],
    ) -> Result<(), GpuError> {
        let names = self.cfg.optimizer.state_names();
        let len = self.model.packed_len;
        let mut flat = vec![0.0f32; len * names.len()];
        for (k, suffix) in names.iter().enumerate() {
            pack(
                &self.model,
                tensors,
                &format!(".{suffix}"),
                &mut flat[k * len..],
                Tensors::Learnable,
            )?;
        }
        let step = find_tensor(tensors, &self.step_tensor, &[1])?;
        if let Some(scaler) = &self.scaler {
            // A checkpoint of an f32 run continued in f16 starts the scaler afresh.
            let name = self.loss_scale_tensor();
            // One saved before the skipped-update count (two words) has skipped none.
            let words = crate::loss_scale::STATE_WORDS;
            match tensors.iter().find(|t| t.name == name) {
                Some(t) if t.shape == [2] => {
                    let saved = LossScaler::from_state(ScalerConfig::default(), &t.data);
                    gpu.write(scaler, 0, &saved.state())?
                }
                Some(_) => gpu.write(scaler, 0, &find_tensor(tensors, &name, &[words])?.data)?,
                None => gpu.write(scaler, 0, &ScalerConfig::default().initial_state())?,
            }
        }
        if let Some(state) = &self.state {
            gpu.write(state, 0, &flat)?;
        }
        self.opt_t = step.data[0].max(0.0) as u64;
        Ok(())
    }

    /// Replaces all parameters. Every parameter must be present with its exact shape.
    pub fn load_params(&mut self, gpu: &Gpu, params: &[NamedTensor]) -> Result<(), GpuError> {
        write_params(gpu, &self.model, &self.params, params)
    }

    /// Replaces the parameters named in `params` (one model of a chained model, say) and
    /// keeps the others; each must have its exact shape, and none may be unknown.
    pub fn load_some_params(&mut self, gpu: &Gpu, params: &[NamedTensor]) -> Result<(), GpuError> {
        let mut flat = gpu.read_f32(&BufferRef::whole(&self.params))?;
        for t in params {
            let Some(slot) = self.model.slots.iter().find(|s| s.name == t.name) else {
                return Err(GpuError::ParamMismatch {
                    name: t.name.clone(),
                    message: "the model has no parameter with this name".into(),
                });
            };
            let found = find_tensor(std::slice::from_ref(t), &slot.name, &slot.shape)?;
            flat[slot.offset..slot.offset + slot.len].copy_from_slice(&found.data);
        }
        gpu.write(&self.params, 0, &flat)?;
        Ok(())
    }

    /// Number of learnable scalars.
    pub fn param_count(&self) -> usize {
        self.model.param_count()
    }

    /// Approximate FLOPs of one full-batch step: forward, backward (2x forward) and update.
    pub fn flops_per_step(&self) -> u64 {
        let fwd = self.model.forward_flops() * self.cfg.batch as u64;
        3 * fwd + self.param_count() as u64 * self.cfg.optimizer.flops_per_param()
    }

    /// The dispatches of a step that completes an accumulation group, in order (a step
    /// inside a group stops before the last `update_len()`).
    pub fn step_dispatches(&self) -> Vec<DispatchInfo> {
        self.forward_dispatches()
            .chain(&self.loss.dispatches)
            .chain(&self.gpu_model.backward)
            .chain(&self.update)
            .map(|d| d.info().clone())
            .collect()
    }

    /// How many dispatches the update at the end of an accumulation group adds (gradient
    /// norm, clipping, optimizer).
    pub fn update_len(&self) -> usize {
        self.update.len()
    }

    /// Kernels of a step that completes an accumulation group, in dispatch order.
    pub fn kernel_names(&self) -> Vec<String> {
        self.forward_dispatches()
            .chain(&self.loss.dispatches)
            .chain(&self.gpu_model.backward)
            .chain(&self.update)
            .map(|d| d.kernel.clone())
            .collect()
    }

    /// The validated model.
    pub fn model(&self) -> &Sequential {
        &self.model
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }
}

/// Data parallelism: every rank runs its own micro-batches, the ranks exchange each
/// micro-batch's gradient contribution, and every rank adds all of them in the order one
/// process accumulating the same micro-batches would — so N ranks reproduce one process
/// bit for bit. The exchange itself is the caller's (ops knows no transport).
impl TrainStep {
    /// Switches this step to data-parallel recording: the accumulation group
    /// (`accumulation_steps` micro-batches, counted over all ranks) is summed on the host.
    pub fn enable_data_parallel(&mut self, gpu: &Gpu) -> Result<(), GpuError> {
        let len = self.model.packed_len;
        let staging = gpu.readback_buffer("grads.readback", (len * 4) as u64)?;
        self.group = Some(GroupSums {
            sum: vec![0.0; len],
            staging,
            zeros: vec![0.0; len],
        });
        Ok(())
    }

    /// Words in one gradient contribution ([`TrainStep::take_contribution`]).
    pub fn contribution_len(&self) -> usize {
        self.model.packed_len
    }

    /// Records this rank's micro-batch (uploaded before): forward, loss (+ device metrics)
    /// and backward into zeroed gradient sums, keyed by the global micro-batch index `step`
    /// (dropout). No update; take the contribution with [`TrainStep::take_contribution`].
    pub fn record_contribution(&mut self, gpu: &Gpu, step: u64) -> Result<(), GpuError> {
        if self.group.is_none() {
            return Err(GpuError::InvalidConfig(
                "record_contribution needs enable_data_parallel first".into(),
            ));
        }
        let uniform = self.step_uniform(0.0, step, false);
        gpu.write(&self.loss.step, 0, &[uniform])?;
        self.submit_micro_batch(gpu, &[])?;
        gpu.take_error()
    }

    /// The gradient contribution recorded since the last take (one read-back), packed like
    /// the parameters' learnable words; the device sums are zeroed for the next one.
    pub fn take_contribution(&mut self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        let len = self.model.packed_len as u64;
        let Some(group) = &self.group else {
            return Err(GpuError::InvalidConfig(
                "take_contribution needs enable_data_parallel first".into(),
            ));
        };
        let bytes = gpu.read_bytes(
            &BufferRef::whole(&self.grads).words(0, len),
            &group.staging,
            "gradient contribution",
        )?;
        gpu.write(&self.grads, 0, &group.zeros)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Adds exchanged contributions — `(gradients, rows)` per micro-batch, in the
    /// single-process micro-batch order — to the group's sums on the host (rank 0 does
    /// this and hands the result to the others with [`TrainStep::set_group`]). Refuses more
    /// contributions than the group has room for, or ones of the wrong length, before
    /// adding any.
    pub fn add_contributions<'a>(
        &mut self,
        contributions: impl IntoIterator<Item = (&'a [f32], usize)>,
    ) -> Result<(), GpuError> {
        let Some(group) = &mut self.group else {
            return Err(GpuError::InvalidConfig(
                "add_contributions needs enable_data_parallel first".into(),
            ));
        };
        let contributions: Vec<(&[f32], usize)> = contributions.into_iter().collect();
        let left = self.cfg.accumulation_steps.saturating_sub(self.micro) as usize;
        if contributions.len() > left {
            return Err(GpuError::InvalidConfig(format!(
                "{} gradient contributions, but the group has room for {left}",
                contributions.len()
            )));
        }
        if let Some((grads, _)) = contributions
            .iter()
            .find(|(g, _)| g.len() != group.sum.len())
        {
            return Err(GpuError::InvalidConfig(format!(
                "a gradient contribution has {} values, the model {}",
                grads.len(),
                group.sum.len()
            )));
        }
        for (grads, rows) in contributions {
            // f32 additions in this order are the ones the backward kernels make when one
            // process accumulates the micro-batches (each adds its whole contribution once).
            for (s, g) in group.sum.iter_mut().zip(grads) {
                *s += *g;
            }
            self.micro += 1;
            self.group_rows += rows;
        }
        Ok(())
    }

    /// The group so far: micro-batches, samples and the gradient sums (packed), for rank 0
    /// to hand to the others.
    pub fn group(&self) -> Option<(u32, usize, &[f32])> {
        self.group
            .as_ref()
            .map(|g| (self.micro, self.group_rows, g.sum.as_slice()))
    }

    /// Takes rank 0's group ([`TrainStep::group`]) as this rank's.
    pub fn set_group(&mut self, micro: u32, rows: usize, sum: &[f32]) -> Result<(), GpuError> {
        let Some(group) = &mut self.group else {
            return Err(GpuError::InvalidConfig(
                "set_group needs enable_data_parallel first".into(),
            ));
        };
        if sum.len() != group.sum.len() || micro > self.cfg.accumulation_steps {
            return Err(GpuError::InvalidConfig(format!(
                "a group of {micro} micro-batches and {} sums does not fit this step ({} of {})",
                sum.len(),
                self.cfg.accumulation_steps,
                group.sum.len()
            )));
        }
        group.sum.copy_from_slice(sum);
        self.micro = micro;
        self.group_rows = rows;
        Ok(())
    }

    /// When the group is complete, uploads its sums and records the update (gradient norm,
    /// clipping, loss scaling, optimizer) with learning rate `lr`; returns whether it did.
    pub fn update_if_complete(&mut self, gpu: &Gpu, lr: f32) -> Result<bool, GpuError> {
        let Some(group) = &mut self.group else {
            return Err(GpuError::InvalidConfig(
                "update_if_complete needs enable_data_parallel first".into(),
            ));
        };
        if self.micro < self.cfg.accumulation_steps {
            return Ok(false);
        }
        gpu.write(&self.grads, 0, &group.sum)?;
        group.sum.fill(0.0);
        let uniform = self.step_uniform(lr, 0, true);
        gpu.write(&self.loss.step, 0, &[uniform])?;
        if gpu.is_recording() {
            gpu.push_recorded(
                "train.update",
                self.update.iter().map(|d| d.info().clone()).collect(),
            );
        }
        gpu.submit_dispatches(&self.update)?;
        self.opt_t += 1;
        self.micro = 0;
        self.group_rows = 0;
        gpu.take_error()?;
        Ok(true)
    }
}

/// The device buffers of a [`TrainStep`] that wrappers around it (a federation) bind.
pub struct TrainBuffers {
    /// The packed parameters, then the model's buffers (batch norm statistics).
    pub params: BufferRef,
    /// The packed gradient sums (learnable words).
    pub grads: BufferRef,
    /// The optimizer state, when the optimizer keeps any.
    pub state: Option<BufferRef>,
    /// The per-step uniform (`Step` in `common.wgsl`).
    pub step: BufferRef,
}

impl TrainStep {
    /// The buffers a wrapper binds.
    pub fn buffers(&self) -> TrainBuffers {
        let len = self.model.packed_len as u64;
        TrainBuffers {
            params: BufferRef::whole(&self.params),
            grads: BufferRef::whole(&self.grads).words(0, len),
            state: self.state.as_ref().map(BufferRef::whole),
            step: BufferRef::whole(&self.loss.step),
        }
    }

    /// Dispatches that adjust the gradient sums before the gradient norm, clipping and the
    /// optimizer of every update (a federated local objective's extra term); replaces
    /// earlier ones.
    pub fn set_grad_correction(&mut self, dispatches: Vec<Dispatch>) {
        self.update.drain(..self.corrections);
        self.corrections = dispatches.len();
        self.update.splice(0..0, dispatches);
    }

    /// Forgets the accumulation group and the optimizer's update count, as a fresh
    /// optimizer would, and restarts a mixed-precision loss scaler (whose count of skipped
    /// updates Adam subtracts from the update count). The caller zeroes the device
    /// gradients and optimizer state.
    pub fn reset_counters(&mut self, gpu: &Gpu) -> Result<(), GpuError> {
        self.micro = 0;
        self.group_rows = 0;
        self.opt_t = 0;
        if let Some(scaler) = &self.scaler {
            gpu.write(scaler, 0, &ScalerConfig::default().initial_state())?;
        }
        Ok(())
    }
}

/// Where a run stands inside an accumulation group. With the parameters and the
/// optimizer state it is everything a checkpoint needs for an exact resume.
#[derive(Clone, Debug, PartialEq)]
pub struct AccumulationState {
    /// Micro-batches recorded in the current (incomplete) group.
    pub micro: u32,
    /// Samples recorded in the current group (the gradient sum is divided by this).
    pub group_rows: usize,
    /// The accumulated gradient sums, named like the parameters.
    pub grads: Vec<NamedTensor>,
}

/// Host-timed cost of one kernel: the dispatch alone in its own submission, waited for.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTiming {
    /// Kernel name.
    pub kernel: String,
    /// Mean seconds per dispatch over the repetitions.
    pub seconds: f64,
}

impl TrainStep {
    /// Times every forward, loss and backward kernel of a step, each submitted alone and
    /// waited for, `reps` times. The optimizer update is not run, and the gradient sums
    /// and accumulation position are restored afterwards, so training is unaffected; the
    /// device metric accumulators receive the extra loss values (read and discard them).
    pub fn profile_kernels(&mut self, gpu: &Gpu, reps: u32) -> Result<Vec<KernelTiming>, GpuError> {
        let saved = self.accumulation_state(gpu)?;
        // Forward kernels in training mode update buffers (batch norm's running
        // statistics): keep them as they were.
        let params = gpu.read_f32(&BufferRef::whole(&self.params))?;
        let dispatches: Vec<&Dispatch> = self
            .forward_dispatches()
            .chain(&self.loss.dispatches)
            .chain(&self.gpu_model.backward)
            .collect();
        let mut timings = Vec::with_capacity(dispatches.len());
        for d in dispatches {
            let started = std::time::Instant::now();
            for _ in 0..reps.max(1) {
                gpu.submit_dispatches([d])?;
                gpu.wait_idle()?;
            }
            timings.push(KernelTiming {
                kernel: d.kernel.clone(),
                seconds: started.elapsed().as_secs_f64() / f64::from(reps.max(1)),
            });
        }
        self.restore_accumulation(gpu, &saved)?;
        gpu.write(&self.params, 0, &params)?;
        Ok(timings)
    }
}

impl TrainStep {
    /// The accumulation position and gradient sums (one read-back).
    pub fn accumulation_state(&self, gpu: &Gpu) -> Result<AccumulationState, GpuError> {
        let grads = match &self.group {
            Some(group) => unpack(&self.model, &group.sum, "", Tensors::Learnable),
            None => self.grad_tensors(gpu)?,
        };
        Ok(AccumulationState {
            micro: self.micro,
            group_rows: self.group_rows,
            grads,
        })
    }

    /// Restores what [`TrainStep::accumulation_state`] returned.
    pub fn restore_accumulation(
        &mut self,
        gpu: &Gpu,
        state: &AccumulationState,
    ) -> Result<(), GpuError> {
        let mut flat = vec![0.0f32; self.model.packed_len];
        pack(&self.model, &state.grads, "", &mut flat, Tensors::Learnable)?;
        match &mut self.group {
            Some(group) => {
                gpu.write(&self.grads, 0, &group.zeros)?;
                group.sum = flat;
            }
            None => gpu.write(&self.grads, 0, &flat)?,
        }
        self.micro = state.micro;
        self.group_rows = state.group_rows;
        Ok(())
    }
}

/// Which slots of the packed layout a buffer holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tensors {
    /// Parameters and buffers (the parameter buffer).
    All,
    /// Learnable parameters only (gradients, optimizer state).
    Learnable,
}

impl Tensors {
    fn slots(self, model: &Sequential) -> impl Iterator<Item = &crate::model::ParamSlot> {
        model
            .slots
            .iter()
            .filter(move |s| self == Tensors::All || s.learnable)
    }
}

/// One tensor per parameter slot, named `{param}{suffix}`, cut from a buffer in the packed
/// parameter layout (`flat[0]` is the layout's first word).
fn unpack(model: &Sequential, flat: &[f32], suffix: &str, which: Tensors) -> Vec<NamedTensor> {
    which
        .slots(model)
        .map(|s| NamedTensor {
            name: format!("{}{suffix}", s.name),
            shape: s.shape.clone(),
            data: flat[s.offset..s.offset + s.len].to_vec(),
        })
        .collect()
}

/// The inverse of [`unpack`]: copies `{param}{suffix}` from `tensors` (each must be present
/// with its exact shape) into `flat`, in the packed parameter layout.
fn pack(
    model: &Sequential,
    tensors: &[NamedTensor],
    suffix: &str,
    flat: &mut [f32],
    which: Tensors,
) -> Result<(), GpuError> {
    for s in which.slots(model) {
        let t = find_tensor(tensors, &format!("{}{suffix}", s.name), &s.shape)?;
        flat[s.offset..s.offset + s.len].copy_from_slice(&t.data);
    }
    Ok(())
}

fn find_tensor<'a>(
    tensors: &'a [NamedTensor],
    name: &str,
    shape: &[usize],
) -> Result<&'a NamedTensor, GpuError> {
    let t = tensors
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| GpuError::ParamMismatch {
            name: name.into(),
            message: format!("missing (expected shape {shape:?})"),
        })?;
    if t.shape != shape || t.data.len() != numel(shape) {
        return Err(GpuError::ParamMismatch {
            name: name.into(),
            message: format!(
                "expected shape {shape:?} but found {:?} ({} values)",
                t.shape,
                t.data.len()
            ),
        });
    }
    Ok(t)
}

/// Replaces every parameter of `model` in `buffer`; each must be present with its exact
/// shape, and `tensors` may hold nothing else.
fn write_params(
    gpu: &Gpu,
    model: &Sequential,
    buffer: &Buffer,
    tensors: &[NamedTensor],
) -> Result<(), GpuError> {
    let mut flat = vec![0.0f32; model.params_words()];
    pack(model, tensors, "", &mut flat, Tensors::All)?;
    for t in tensors {
        if !model.slots.iter().any(|s| s.name == t.name) {
            return Err(GpuError::ParamMismatch {
                name: t.name.clone(),
                message: "the model has no parameter with this name".into(),
            });
        }
    }
    gpu.write(buffer, 0, &flat)?;
    Ok(())
}

/// Forward-only evaluation in eval mode (dropout off), sharing a [`TrainStep`]'s parameters.
pub struct EvalStep {
    encoder: Option<GpuModel>,
    gpu_model: GpuModel,
    loss: LossIo,
}

impl EvalStep {
    /// Builds evaluation buffers for `batch` rows over `train`'s parameter buffer (and its
    /// frozen encoder's). A distillation chain is evaluated with plain cross entropy.
    pub fn new(gpu: &Gpu, train: &TrainStep, batch: usize) -> Result<EvalStep, GpuError> {
        let loss = match &train.cfg.loss {
            LossKind::Distill { .. } => LossKind::CrossEntropy {
                label_smoothing: 0.0,
            },
            other => other.clone(),
        };
        let encoder = train
            .encoder
            .as_ref()
            .map(|(model, fusion, params, _)| (model, fusion, params));
        EvalStep::build(
            gpu,
            encoder,
            (&train.model, &train.fusion),
            &train.params,
            (loss, train.cfg.class_weights.as_deref()),
            batch,
        )
    }

    /// Evaluation of a frozen model with `loss` (and cross entropy's class weights).
    pub fn for_params(
        gpu: &Gpu,
        model: &ModelParams,
        loss: LossKind,
        class_weights: Option<&[f32]>,
        batch: usize,
    ) -> Result<EvalStep, GpuError> {
        EvalStep::build(
            gpu,
            None,
            (&model.model, &model.fusion),
            &model.params,
            (loss, class_weights),
            batch,
        )
    }

    fn build(
        gpu: &Gpu,
        encoder: Option<(&Sequential, &Fusion, &Buffer)>,
        (model, fusion): (&Sequential, &Fusion),
        params: &Buffer,
        (loss, class_weights): (LossKind, Option<&[f32]>),
        batch: usize,
    ) -> Result<EvalStep, GpuError> {
        if batch == 0 {
            return Err(GpuError::InvalidConfig(
                "eval batch must be at least 1".into(),
            ));
        }
        if matches!(loss, LossKind::Distill { .. }) {
            return Err(GpuError::InvalidConfig(
                "an eval reports cross entropy or a regression loss, not distillation".into(),
            ));
        }
        let step_buf =
            gpu.uniform_buffer("eval.step", std::mem::size_of::<StepUniform>() as u64)?;
        let step_ref = BufferRef::whole(&step_buf);
        let encoder = match encoder {
            Some((m, f, p)) => Some(GpuModel::build(
                gpu,
                Precision::F32,
                m,
                f,
                batch,
                p,
                None,
                &step_ref,
                None,
            )?),
            None => None,
        };
        let fed = encoder
            .as_ref()
            .map(|gm| gm.acts[gm.acts.len() - 1].clone());
        let gpu_model = GpuModel::build(
            gpu,
            Precision::F32,
            model,
            fusion,
            batch,
            params,
            None,
            &step_ref,
            fed.as_ref(),
        )?;
        let out = numel(model.output_shape());
        let dlogits =
            BufferRef::whole(&gpu.storage_buffer("eval.dlogits", (batch * out * 4) as u64)?)
                .words(0, (batch * out) as u64);
        let features = encoder.as_ref().map_or(numel(&model.input), |gm| {
            gm.acts[0].len_words() as usize / batch
        });
        let loss = LossIo::new(
            gpu,
            model,
            &gpu_model,
            loss,
            &dlogits,
            step_buf,
            features,
            None,
            class_weights,
        )?;
        Ok(EvalStep {
            encoder,
            gpu_model,
            loss,
        })
    }

    /// Like [`TrainStep::upload_batch`].
    pub fn upload_batch(
        &mut self,
        gpu: &Gpu,
        features: &[f32],
        labels: &[u32],
        targets: Option<&[f32]>,
        rows: usize,
    ) -> Result<(), GpuError> {
        // Disjoint field borrows: no handle is cloned on this per-batch path.
        let input = match &self.encoder {
            Some(gm) => &gm.acts[0],
            None => &self.gpu_model.acts[0],
        };
        self.loss
            .upload(gpu, input, features, labels, targets, rows)
    }

    /// Forward and loss in one submission; metrics accumulate on the device.
    pub fn record(&mut self, gpu: &Gpu) -> Result<(), GpuError> {
        let uniform = StepUniform {
            rows: self.loss.rows as u32,
            ..StepUniform::default()
        };
        gpu.write(&self.loss.step, 0, &[uniform])?;
        if gpu.is_recording() {
            gpu.push_recorded("eval", self.dispatches());
        }
        let frozen = self.encoder.iter().flat_map(|gm| &gm.forward);
        gpu.submit_dispatches(
            frozen
                .chain(&self.gpu_model.forward)
                .chain(&self.loss.dispatches),
        )?;
        gpu.take_error()
    }

    /// Reads and resets the accumulated metrics (one read-back).
    pub fn read_metrics(&mut self, gpu: &Gpu) -> Result<StepMetrics, GpuError> {
        self.loss.read_metrics(gpu)
    }

    /// The model's outputs for the valid rows of the last recorded batch, row-major
    /// `[rows, outputs]` (one read-back; for metrics and predictions that need them).
    pub fn read_outputs(&self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        let out = &self.gpu_model.acts[self.gpu_model.acts.len() - 1];
        let mut values = gpu.read_f32(out)?;
        let width = values.len() / self.gpu_model.batch.max(1);
        values.truncate(self.loss.rows * width);
        Ok(values)
    }

    /// The dispatches of one eval batch, in order.
    pub fn dispatches(&self) -> Vec<DispatchInfo> {
        self.encoder
            .iter()
            .flat_map(|gm| &gm.forward)
            .chain(&self.gpu_model.forward)
            .chain(&self.loss.dispatches)
            .map(|d| d.info().clone())
            .collect()
    }
}
