//! Whole-model training on the GPU against the CPU reference model: gradients, optimizers,
//! clipping, accumulation, masking, metrics, counters, determinism, checkpoints.

mod common;

use common::{assert_close, gpu, new_gpu, request};
use ops::fusion::{FusedLayer, Fusion, PoolInStore, fuse};
use ops::loss::Truth;
use ops::loss::cross_entropy::cross_entropy_cpu;
use ops::loss::cross_entropy::cross_entropy_weighted_cpu;
use ops::loss::huber::huber;
use ops::loss::l1::l1;
use ops::loss::mse::mse;
use ops::model::{Sequential, TensorId};
use ops::optim::clip::clip_factor_cpu;
use ops::rng::Rng;
use ops::{
    ChainInputs, EvalStep, Init, LayerSpec, LossKind, ModelDef, OptimizerKind, Tensor, TrainConfig,
    TrainStep,
};

fn layers(yaml: &str) -> Vec<LayerSpec> {
    serde_yaml::from_str(yaml).unwrap()
}

fn mlp() -> ModelDef {
    ModelDef {
        input: vec![13],
        layers: layers("[{linear: {out: 9}}, relu, {linear: {out: 6}}, tanh, {linear: {out: 5}}]"),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    }
}

fn cnn() -> ModelDef {
    ModelDef {
        input: vec![2, 7, 6],
        layers: layers(
            "[{conv2d: {out_channels: 3, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 2}}, {conv2d: {out_channels: 4, kernel: 2}}, gelu, flatten, {layer_norm: {}}, {linear: {out: 4}}]",
        ),
        inputs: Vec::new(),
        init: Init::XavierUniform,
    }
}

fn sgd() -> OptimizerKind {
    OptimizerKind::sgd(0.0, false, 0.0)
}

fn config(batch: usize, optimizer: OptimizerKind) -> TrainConfig {
    TrainConfig {
        batch,
        loss: LossKind::CrossEntropy {
            label_smoothing: 0.0,
        },
        optimizer,
        clip_grad_norm: None,
        accumulation_steps: 1,
        seed: 42,
        class_weights: None,
        precision: ops::Precision::F32,
    }
}

struct Data {
    x: Vec<f32>,
    labels: Vec<u32>,
}

fn data(model: &ModelDef, rows: usize, classes: u32, seed: u64) -> Data {
    let mut rng = Rng::new(seed);
    let per: usize = model.input.iter().product();
    Data {
        x: rng.vec_uniform(rows * per, -1.0, 1.0),
        labels: (0..rows)
            .map(|_| rng.below(classes as usize) as u32)
            .collect(),
    }
}

fn flat(tensors: &[ops::NamedTensor]) -> Vec<f32> {
    tensors
        .iter()
        .flat_map(|t| t.data.iter().copied())
        .collect()
}

/// CPU reference: gradient sums of one micro-batch, loss output.
#[allow(clippy::too_many_arguments)]
fn cpu_grads(
    seq: &Sequential,
    params: &[Vec<Tensor>],
    d: &Data,
    rows: usize,
    loss: LossKind,
    targets: Option<&[f32]>,
    seed: u64,
    step: u64,
) -> (Vec<f32>, ops::loss::LossOutput) {
    let per: usize = seq.input.iter().product();
    let mut shape = vec![rows];
    shape.extend(&seq.input);
    let x = Tensor {
        shape,
        data: d.x[..rows * per].to_vec(),
    };
    let acts = seq.forward_cpu(params, &x, true, seed, step);
    let logits = acts.last().unwrap();
    let out = match loss {
        LossKind::CrossEntropy { label_smoothing } => cross_entropy_weighted_cpu(
            logits,
            &d.labels,
            rows,
            label_smoothing,
            WEIGHTS.with(|w| w.borrow().clone()).as_deref(),
        ),
        LossKind::Fused(f) => f.cpu(logits, Truth::Values(targets.unwrap()), rows),
        LossKind::Distill { .. } => unreachable!("tests/frozen.rs checks distillation"),
    };
    let (_, grads) = seq.backward_cpu(params, &acts, &out.grad, seed, step);
    let g: Vec<f32> = grads
        .iter()
        .flatten()
        .flat_map(|t| t.data.iter().copied())
        .collect();
    (g, out)
}

#[test]
fn adapter_matches_request() {
    let g = gpu();
    let want = std::env::var("ENGINE_TEST_BACKEND")
        .unwrap_or_default()
        .to_lowercase();
    eprintln!("adapter: {:?}", g.adapter());
    if want == "gl" || want == "vulkan" {
        assert_eq!(g.adapter().backend, want);
    }
    assert!(!ops::list_adapters().is_empty());
    let _ = request();
}

#[test]
fn nth_picks_among_equally_good_adapters_modulo_their_count() {
    // A data-parallel rank passes its index on the host: with k equally good adapters it
    // opens the (nth mod k)-th; here k is the number of adapters like the first choice.
    let first = gpu().adapter().clone();
    let same_kind = ops::list_adapters()
        .into_iter()
        .filter(|a| a.backend == first.backend && a.device_type == first.device_type)
        .count();
    assert!(same_kind >= 1);
    let at = |nth: usize| {
        ops::Gpu::new(&ops::gpu::DeviceRequest { nth, ..request() })
            .unwrap()
            .adapter()
            .clone()
    };
    assert_eq!(at(same_kind), at(0), "wraps around");
    assert_eq!(at(same_kind).backend, first.backend);
}

fn check_model_gradients(def: ModelDef, rows: usize, batch: usize) {
    check_model(def, rows, batch, true);
}

/// One step of `def` on the GPU against the CPU reference: gradients, loss, accuracy; and,
/// with `finite_differences`, the CPU gradients against finite differences of its loss.
fn check_model(def: ModelDef, rows: usize, batch: usize, finite_differences: bool) {
    check_model_as(def, rows, batch, finite_differences, None);
}

/// [`check_model`] with the layers fused as `fusion` says (default: the fusion pass).
fn check_model_as(
    def: ModelDef,
    rows: usize,
    batch: usize,
    finite_differences: bool,
    fusion: Option<Fusion>,
) {
    let gpu = gpu();
    let classes = *Sequential::new(&def)
        .unwrap()
        .output_shape()
        .last()
        .unwrap() as u32;
    let cfg = TrainConfig {
        accumulation_steps: 1000,
        ..config(batch, sgd())
    };
    let inputs = ChainInputs {
        fusion,
        ..ChainInputs::default()
    };
    let mut step = TrainStep::with_inputs(gpu, &def, &cfg, inputs).unwrap();
    let d = data(&def, rows, classes, 9);
    step.upload_batch(gpu, &d.x, &d.labels, None, rows)
        .expect("upload");
    step.record_step(gpu, 0.1, 0).unwrap();
    let gpu_grads = flat(&step.grad_tensors(gpu).unwrap());
    let seq = Sequential::new(&def).unwrap();
    let params = seq.init_params(cfg.seed);
    // Learnable parameters (the forward moved batch norm's running statistics).
    let learnable: Vec<ops::NamedTensor> = step
        .param_tensors(gpu)
        .unwrap()
        .into_iter()
        .zip(&seq.slots)
        .filter(|(_, slot)| slot.learnable)
        .map(|(t, _)| t)
        .collect();
    assert_close(
        "initial params",
        &flat(&learnable),
        &params
            .iter()
            .zip(&seq.layers)
            .flat_map(|(p, l)| &p[..l.params.len()])
            .flat_map(|t| t.data.clone())
            .collect::<Vec<_>>(),
        0.0,
    );
    let (cpu, out) = cpu_grads(&seq, &params, &d, rows, cfg.loss.clone(), None, cfg.seed, 0);
    assert_close("model gradients", &gpu_grads, &cpu, 1e-4);
    // Finite differences of the CPU model's summed loss at a few parameters of each tensor.
    let loss_at = |p: &[Vec<Tensor>]| {
        cpu_grads(&seq, p, &d, rows, cfg.loss.clone(), None, cfg.seed, 0)
            .1
            .loss_sum
    };
    let mut offset = 0;
    for (li, layer) in params.iter().enumerate().filter(|_| finite_differences) {
        // Learnable tensors only (buffers follow them and get no gradient).
        for (pi, t) in layer.iter().take(seq.layers[li].params.len()).enumerate() {
            for i in (0..t.len()).step_by((t.len() / 4).max(1)) {
                let h = 1e-2;
                let (mut pp, mut pm) = (params.clone(), params.clone());
                pp[li][pi].data[i] += h;
                pm[li][pi].data[i] -= h;
                let num = (loss_at(&pp) - loss_at(&pm)) / (2.0 * h as f64);
                let ana = cpu[offset + i] as f64;
                assert!(
                    (num - ana).abs() <= 5e-3 + 3e-2 * ana.abs(),
                    "layer {li} param {pi}[{i}]: numeric {num} vs analytic {ana}"
                );
            }
            offset += t.len();
        }
    }
    let m = step.read_train_metrics(gpu).unwrap();
    assert_eq!(m.samples, rows as u64);
    assert_eq!(m.correct, out.correct);
    assert_eq!(m.top5_correct, out.top5_correct);
    assert!(
        (m.loss_sum - out.loss_sum).abs() <= 1e-4 * out.loss_sum.abs().max(1.0),
        "loss {} vs {}",
        m.loss_sum,
        out.loss_sum
    );
}

/// Relus between linear layers are folded into the GEMMs (fused bias + relu epilogue in
/// the forward, fused relu mask on the next layer's input gradient in the backward); a relu
/// not followed by a linear layer keeps its own kernels. Awkward sizes, padded rows.
#[test]
fn fused_linear_relu_gradients_match_cpu_and_finite_differences() {
    let def = ModelDef {
        input: vec![11],
        layers: layers(
            "[{linear: {out: 37}}, relu, {linear: {out: 19}}, relu, {linear: {out: 6, bias: false}}, relu, {linear: {out: 5}}, relu]",
        ),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    };
    let seq = Sequential::new(&def).unwrap();
    let linear = |relu_after, mask_before| FusedLayer::Fused {
        relu_after,
        mask_before,
        pool: PoolInStore::No,
    };
    use FusedLayer::{Alone, Folded};
    assert_eq!(
        fuse(&seq).layers,
        [
            linear(true, false),
            Folded,
            linear(true, true),
            Folded,
            linear(true, true),
            Folded,
            linear(false, true),
            Alone
        ]
    );
    let cfg = config(9, sgd());
    let step = TrainStep::new(gpu(), &def, &cfg).unwrap();
    let kernels = step.kernel_names();
    assert_eq!(
        kernels.iter().filter(|k| k.starts_with("relu")).count(),
        2,
        "only the last relu runs its own kernels: {kernels:?}"
    );
    check_model_gradients(def.clone(), 7, 9);
    check_model_gradients(def, 9, 9);
}

/// A relu between a conv2d and a max_pool2d runs no kernel of its own: the conv stores
/// `max(y, 0)` and the pool records no arg-max for windows whose maximum is not positive
/// (the relu's backward). Disjoint and overlapping pools, odd channels, padded rows. On
/// adapters whose subgroups share loads, a 2x2 stride-2 pool runs inside the conv's
/// kernel too (no `max_pool2d_forward` of its own).
#[test]
fn fused_conv_relu_pool_gradients_match_cpu_and_finite_differences() {
    let def = ModelDef {
        input: vec![2, 8, 8],
        layers: layers(
            "[{conv2d: {out_channels: 11, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 2}}, {conv2d: {out_channels: 5, kernel: 3, stride: 2, padding: 1, bias: false}}, relu, {max_pool2d: {kernel: 2, stride: 1}}, flatten, {linear: {out: 4}}]",
        ),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    };
    let seq = Sequential::new(&def).unwrap();
    use FusedLayer::{AfterRelu, Alone, Folded};
    let conv = |pool| FusedLayer::Fused {
        relu_after: true,
        mask_before: false,
        pool,
    };
    assert_eq!(
        fuse(&seq).layers,
        [
            conv(PoolInStore::WhereDeviceAllows),
            Folded,
            AfterRelu,
            conv(PoolInStore::No),
            Folded,
            AfterRelu,
            Alone,
            Alone
        ]
    );
    let step = TrainStep::new(gpu(), &def, &config(5, sgd())).unwrap();
    let kernels = step.kernel_names();
    assert!(
        !kernels.iter().any(|k| k.starts_with("relu")),
        "fused relus run no kernels: {kernels:?}"
    );
    let pool_kernels = kernels
        .iter()
        .filter(|k| *k == "max_pool2d_forward")
        .count();
    let pooled_by_conv = gpu().adapter().broadcast_lanes().is_some();
    assert_eq!(
        pool_kernels,
        if pooled_by_conv { 1 } else { 2 },
        "{kernels:?}"
    );
    check_model_gradients(def.clone(), 5, 5);
    check_model_gradients(def, 3, 5);
}

/// The conv's pooled stores where rows are split into two blocks (20 wide: blocks of 10,
/// the window's rows two lanes apart), the conv output has an odd height (9: the last row
/// is dropped by the floor-mode pool), and the channels leave a partial block (19). GPU
/// against CPU only: with this many 2x2 windows a finite-difference step crosses pooling
/// and relu kinks (the smaller models above check the CPU reference that way).
#[test]
fn conv_pooled_stores_match_cpu() {
    let def = ModelDef {
        input: vec![3, 9, 20],
        layers: layers(
            "[{conv2d: {out_channels: 19, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 2, stride: 2}}, flatten, {linear: {out: 3}}]",
        ),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    };
    let step = TrainStep::new(gpu(), &def, &config(4, sgd())).unwrap();
    let pooled_by_conv = gpu().adapter().broadcast_lanes().is_some();
    assert_eq!(
        step.kernel_names()
            .iter()
            .any(|k| k == "max_pool2d_forward"),
        !pooled_by_conv
    );
    check_model(def.clone(), 4, 4, false);
    check_model(def, 2, 3, false);
}

/// With fusion off every layer runs its own kernels, and the step computes the same
/// gradients, loss and accuracy as the CPU reference (and so as the fused step).
#[test]
fn unfused_models_match_cpu() {
    for (def, rows, batch) in [
        (
            ModelDef {
                input: vec![11],
                layers: layers(
                    "[{linear: {out: 37}}, relu, {linear: {out: 19}}, relu, {linear: {out: 5}}]",
                ),
                inputs: Vec::new(),
                init: Init::KaimingUniform,
            },
            7,
            9,
        ),
        (
            ModelDef {
                input: vec![2, 8, 8],
                layers: layers(
                    "[{conv2d: {out_channels: 11, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 2}}, flatten, {linear: {out: 4}}]",
                ),
                inputs: Vec::new(),
                init: Init::KaimingUniform,
            },
            3,
            5,
        ),
    ] {
        let seq = Sequential::new(&def).unwrap();
        let unfused = Fusion::unfused(&seq);
        let inputs = ChainInputs {
            fusion: Some(unfused.clone()),
            ..ChainInputs::default()
        };
        let step = TrainStep::with_inputs(gpu(), &def, &config(batch, sgd()), inputs).unwrap();
        let kernels = step.kernel_names();
        let relus = def.layers.iter().filter(|l| **l == LayerSpec::Relu).count();
        assert_eq!(
            kernels.iter().filter(|k| k.starts_with("relu")).count(),
            2 * relus,
            "every relu runs its forward and backward: {kernels:?}"
        );
        check_model_as(def, rows, batch, false, Some(unfused));
    }
}

/// A fusion the kernels do not implement is refused when the step is built.
#[test]
fn a_fusion_that_does_not_fit_the_model_is_refused() {
    let def = mlp();
    let seq = Sequential::new(&def).unwrap();
    let mut wrong = fuse(&seq);
    wrong.layers[1] = FusedLayer::Alone; // the linears around it still do the relu's work
    let inputs = ChainInputs {
        fusion: Some(wrong),
        ..ChainInputs::default()
    };
    let err = TrainStep::with_inputs(gpu(), &def, &config(4, sgd()), inputs)
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("layer 0 (linear) cannot run as"),
        "{err}"
    );
    let mut short = fuse(&seq);
    short.layers.pop();
    assert!(short.check(&seq).is_err());
}

#[test]
fn mlp_gradients_match_cpu_and_finite_differences() {
    check_model_gradients(mlp(), 7, 7);
    check_model_gradients(mlp(), 3, 5); // partial batch: padded rows masked
}

#[test]
fn cnn_gradients_match_cpu_and_finite_differences() {
    check_model_gradients(cnn(), 3, 4);
}

thread_local! {
    /// Class weights of the cross entropy the CPU reference computes (the test's config).
    static WEIGHTS: std::cell::RefCell<Option<Vec<f32>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `steps` updates on GPU and the CPU reference and compares parameters and state.
fn check_optimizer(opt: OptimizerKind, clip: Option<f32>, loss: LossKind) {
    check_optimizer_weighted(opt, clip, loss, None);
}

fn check_optimizer_weighted(
    opt: OptimizerKind,
    clip: Option<f32>,
    loss: LossKind,
    class_weights: Option<Vec<f32>>,
) {
    WEIGHTS.with(|w| *w.borrow_mut() = class_weights.clone());
    let gpu = gpu();
    let def = mlp();
    let cfg = TrainConfig {
        clip_grad_norm: clip,
        loss: loss.clone(),
        class_weights,
        ..config(6, opt.clone())
    };
    let mut step = TrainStep::new(gpu, &def, &cfg).unwrap();
    let seq = Sequential::new(&def).unwrap();
    let mut params = seq.init_params(cfg.seed);
    let n_state = opt.state_names().len();
    let sizes: Vec<usize> = params.iter().flatten().map(|t| t.len()).collect();
    let total: usize = sizes.iter().sum();
    let mut state = vec![0.0f32; total * n_state];
    let lr = 0.05;
    for s in 0..4u64 {
        let rows = if s == 2 { 4 } else { 6 };
        let d = data(&def, rows, 5, 100 + s);
        let targets: Vec<f32> = Rng::new(s).vec_uniform(rows * 5, -1.0, 1.0);
        let regression = loss.has_value_targets();
        let t = regression.then_some(&targets[..]);
        step.upload_batch(gpu, &d.x, &d.labels, t, rows)
            .expect("upload");
        step.record_step(gpu, lr, s).unwrap();
        let (g, _) = cpu_grads(&seq, &params, &d, rows, loss.clone(), t, cfg.seed, s);
        let scaled: Vec<f32> = g.iter().map(|v| v * (1.0 / rows as f32)).collect();
        let (factor, norm) = clip_factor_cpu(&scaled, clip);
        let clipped: Vec<f32> = scaled.iter().map(|v| v * factor).collect();
        // Per tensor, like the packed buffer (elementwise anyway).
        let mut flat_p: Vec<f32> = params
            .iter()
            .flatten()
            .flat_map(|t| t.data.clone())
            .collect();
        // State is [slot0 for all params, slot1 for all params].
        opt.step_cpu(&mut flat_p, &clipped, &mut state, lr, s + 1);
        let mut o = 0;
        for t in params.iter_mut().flatten() {
            let n = t.len();
            t.data.copy_from_slice(&flat_p[o..o + n]);
            o += n;
        }
        let m = step.read_train_metrics(gpu).unwrap();
        assert!(
            (m.last_grad_norm - norm).abs() <= 1e-4 * norm.max(1.0),
            "grad norm {} vs {norm}",
            m.last_grad_norm
        );
    }
    let got = flat(&step.param_tensors(gpu).unwrap());
    let want: Vec<f32> = params
        .iter()
        .flatten()
        .flat_map(|t| t.data.clone())
        .collect();
    assert_close(&format!("{opt:?} clip {clip:?} params"), &got, &want, 1e-4);
    let st = step.optimizer_state(gpu).unwrap();
    assert_eq!(st.last().unwrap().name, "optimizer.step");
    assert_eq!(st.last().unwrap().data, vec![4.0]);
    if n_state > 0 {
        let got_state: Vec<f32> = flat(&st[..st.len() - 1]);
        assert_close(&format!("{opt:?} state"), &got_state, &state, 1e-4);
    }
}

#[test]
fn sgd_variants_match_reference() {
    let ce = LossKind::CrossEntropy {
        label_smoothing: 0.0,
    };
    check_optimizer(sgd(), None, ce.clone());
    check_optimizer(OptimizerKind::sgd(0.9, false, 0.0), None, ce.clone());
    check_optimizer(
        OptimizerKind::sgd(0.8, true, 0.01),
        None,
        LossKind::Fused(mse()),
    );
    check_optimizer(sgd(), None, LossKind::Fused(l1()));
    // Class weights scale each row's cross entropy and gradient by its label's weight.
    let ce = LossKind::CrossEntropy {
        label_smoothing: 0.1,
    };
    check_optimizer_weighted(sgd(), None, ce, Some(vec![0.5, 2.0, 1.0, 3.0, 0.25]));
    check_optimizer(sgd(), Some(0.5), LossKind::Fused(huber(0.3)));
}

#[test]
fn adam_variants_match_reference() {
    let ce = LossKind::CrossEntropy {
        label_smoothing: 0.1,
    };
    check_optimizer(
        OptimizerKind::adam(0.9, 0.999, 1e-8, 0.01),
        None,
        ce.clone(),
    );
    check_optimizer(OptimizerKind::adamw(0.8, 0.99, 1e-6, 0.1), None, ce.clone());
}

#[test]
fn clipping_matches_reference() {
    let ce = LossKind::CrossEntropy {
        label_smoothing: 0.0,
    };
    check_optimizer(OptimizerKind::sgd(0.9, false, 0.0), Some(0.05), ce.clone());
    check_optimizer(
        OptimizerKind::adamw(0.9, 0.999, 1e-8, 0.01),
        Some(0.1),
        ce.clone(),
    );
}

#[test]
fn hand_computed_updates() {
    // SGD momentum 0.5, wd 0.1, lr 0.1 on p = 1 with grads 1, 2: buf = 1.1, p = 0.89;
    // g = 2 + 0.089 = 2.089, buf = 0.55 + 2.089 = 2.639, p = 0.89 - 0.2639 = 0.6261.
    let opt = OptimizerKind::sgd(0.5, false, 0.1);
    let (mut p, mut s) = (vec![1.0f32], vec![0.0f32]);
    opt.step_cpu(&mut p, &[1.0], &mut s, 0.1, 1);
    assert!((p[0] - 0.89).abs() < 1e-6);
    opt.step_cpu(&mut p, &[2.0], &mut s, 0.1, 2);
    assert!((p[0] - 0.6261).abs() < 1e-6, "{}", p[0]);
    // Nesterov: g = 1 + 0.5 * 1 = 1.5 on the first step.
    let opt = OptimizerKind::sgd(0.5, true, 0.0);
    let (mut p, mut s) = (vec![1.0f32], vec![0.0f32]);
    opt.step_cpu(&mut p, &[1.0], &mut s, 0.1, 1);
    assert!((p[0] - 0.85).abs() < 1e-6);
    // Adam's first step moves every parameter by lr (m/sqrt(v) = sign(g)).
    let opt = OptimizerKind::adam(0.9, 0.999, 0.0, 0.0);
    let (mut p, mut s) = (vec![1.0f32, 1.0], vec![0.0f32; 4]);
    opt.step_cpu(&mut p, &[3.0, -0.5], &mut s, 0.01, 1);
    assert!(
        (p[0] - 0.99).abs() < 1e-6 && (p[1] - 1.01).abs() < 1e-6,
        "{p:?}"
    );
    // AdamW decays first: p = 1 * (1 - 0.01 * 0.5) - 0.01.
    let opt = OptimizerKind::adamw(0.9, 0.999, 0.0, 0.5);
    let (mut p, mut s) = (vec![1.0f32], vec![0.0f32; 2]);
    opt.step_cpu(&mut p, &[2.0], &mut s, 0.01, 1);
    assert!((p[0] - 0.985).abs() < 1e-6, "{p:?}");
}

#[test]
fn accumulation_equals_one_big_batch() {
    let gpu = gpu();
    let def = mlp();
    let opt = OptimizerKind::adam(0.9, 0.999, 1e-8, 0.0);
    let mut big = TrainStep::new(gpu, &def, &config(8, opt.clone())).unwrap();
    let mut small = TrainStep::new(
        gpu,
        &def,
        &TrainConfig {
            accumulation_steps: 2,
            ..config(5, opt)
        },
    )
    .unwrap();
    let per = 13;
    for s in 0..3u64 {
        let d = data(&def, 8, 5, 200 + s);
        big.upload_batch(gpu, &d.x, &d.labels, None, 8)
            .expect("upload");
        big.record_step(gpu, 0.01, s).unwrap();
        // Unequal micro-batches (5 + 3): the mean is still over all 8 samples.
        small
            .upload_batch(gpu, &d.x[..5 * per], &d.labels[..5], None, 5)
            .expect("upload");
        small.record_step(gpu, 0.01, 2 * s).unwrap();
        small
            .upload_batch(gpu, &d.x[5 * per..], &d.labels[5..], None, 3)
            .expect("upload");
        small.record_step(gpu, 0.01, 2 * s + 1).unwrap();
    }
    assert_close(
        "accumulated params",
        &flat(&small.param_tensors(gpu).unwrap()),
        &flat(&big.param_tensors(gpu).unwrap()),
        1e-5,
    );
    let (a, b) = (
        big.read_train_metrics(gpu).unwrap(),
        small.read_train_metrics(gpu).unwrap(),
    );
    assert_eq!((a.samples, a.correct), (b.samples, b.correct));
    assert!((a.loss_sum - b.loss_sum).abs() < 1e-4);
}

#[test]
fn steady_state_step_is_one_submission_no_readback_no_allocation() {
    let gpu = new_gpu();
    let def = cnn();
    let cfg = TrainConfig {
        clip_grad_norm: Some(1.0),
        accumulation_steps: 2,
        ..config(4, OptimizerKind::adamw(0.9, 0.999, 1e-8, 0.01))
    };
    let mut step = TrainStep::new(&gpu, &def, &cfg).unwrap();
    let d = data(&def, 4, 4, 1);
    step.upload_batch(&gpu, &d.x, &d.labels, None, 4)
        .expect("upload");
    step.record_step(&gpu, 0.01, 0).unwrap();
    for s in 1..5 {
        let before = gpu.counters();
        step.upload_batch(&gpu, &d.x, &d.labels, None, 4)
            .expect("upload");
        step.record_step(&gpu, 0.01, s).unwrap();
        let after = gpu.counters();
        assert_eq!(after.submissions - before.submissions, 1);
        assert_eq!(after.readbacks - before.readbacks, 0);
        assert_eq!(after.allocations - before.allocations, 0);
        assert_eq!(after.pipelines_compiled - before.pipelines_compiled, 0);
    }
    let before = gpu.counters();
    step.read_train_metrics(&gpu).unwrap();
    let after = gpu.counters();
    assert_eq!(
        (
            after.readbacks - before.readbacks,
            after.allocations - before.allocations
        ),
        (1, 0)
    );
    assert!(step.kernel_names().iter().any(|k| k == "adamw"));
}

fn run_twice_bits(def: &ModelDef, cfg: &TrainConfig) -> (Vec<u32>, ops::StepMetrics) {
    let gpu = gpu();
    let mut step = TrainStep::new(gpu, def, cfg).unwrap();
    for s in 0..3u64 {
        let d = data(def, cfg.batch, 4, 300 + s);
        step.upload_batch(gpu, &d.x, &d.labels, None, cfg.batch)
            .expect("upload");
        step.record_step(gpu, 0.05, s).unwrap();
    }
    let m = step.read_train_metrics(gpu).unwrap();
    (
        flat(&step.param_tensors(gpu).unwrap())
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        m,
    )
}

#[test]
fn identical_runs_give_identical_bits() {
    let mut def = cnn();
    def.layers.insert(
        6,
        LayerSpec::Dropout(ops::dropout::DropoutAttrs { p: 0.25 }),
    );
    let cfg = TrainConfig {
        clip_grad_norm: Some(0.5),
        ..config(3, OptimizerKind::sgd(0.9, true, 0.0))
    };
    let (a, ma) = run_twice_bits(&def, &cfg);
    let (b, mb) = run_twice_bits(&def, &cfg);
    assert_eq!(a, b);
    assert_eq!(ma.loss_sum.to_bits(), mb.loss_sum.to_bits());
    assert_eq!(ma.last_grad_norm.to_bits(), mb.last_grad_norm.to_bits());
}

#[test]
fn dropout_model_matches_cpu() {
    let mut def = mlp();
    def.layers
        .insert(2, LayerSpec::Dropout(ops::dropout::DropoutAttrs { p: 0.4 }));
    check_model_gradients(def, 5, 6);
}

#[test]
fn eval_step_matches_cpu_forward() {
    let gpu = gpu();
    let mut def = mlp();
    def.layers
        .insert(2, LayerSpec::Dropout(ops::dropout::DropoutAttrs { p: 0.5 }));
    let train = TrainStep::new(gpu, &def, &config(4, sgd())).unwrap();
    let mut eval = EvalStep::new(gpu, &train, 7).unwrap();
    let seq = Sequential::new(&def).unwrap();
    let params = seq.init_params(42);
    let mut want = (0.0, 0, 0, 0);
    for (i, rows) in [7usize, 2].into_iter().enumerate() {
        let d = data(&def, rows, 5, 400 + i as u64);
        eval.upload_batch(gpu, &d.x, &d.labels, None, rows)
            .expect("upload");
        eval.record(gpu).unwrap();
        let x = Tensor {
            shape: vec![rows, 13],
            data: d.x.clone(),
        };
        let acts = seq.forward_cpu(&params, &x, false, 42, 0);
        let out = cross_entropy_cpu(acts.last().unwrap(), &d.labels, rows, 0.0);
        want = (
            want.0 + out.loss_sum,
            want.1 + out.correct,
            want.2 + out.top5_correct,
            want.3 + rows as u64,
        );
    }
    let m = eval.read_metrics(gpu).unwrap();
    assert!(
        (m.loss_sum - want.0).abs() < 1e-4 * want.0.max(1.0),
        "{} vs {}",
        m.loss_sum,
        want.0
    );
    assert_eq!(
        (m.correct, m.top5_correct, m.samples),
        (want.1, want.2, want.3)
    );
    let again = eval.read_metrics(gpu).unwrap();
    assert_eq!(again.samples, 0);
}

#[test]
fn checkpoint_round_trip_and_mismatch_errors() {
    let gpu = gpu();
    let def = mlp();
    let cfg = config(4, OptimizerKind::adam(0.9, 0.999, 1e-8, 0.0));
    let mut a = TrainStep::new(gpu, &def, &cfg).unwrap();
    let d = data(&def, 4, 5, 7);
    a.upload_batch(gpu, &d.x, &d.labels, None, 4)
        .expect("upload");
    a.record_step(gpu, 0.01, 0).unwrap();
    let saved = a.param_tensors(gpu).unwrap();
    let state = a.optimizer_state(gpu).unwrap();
    assert_eq!(saved[0].name, "layers.0.weight");
    assert_eq!(saved[0].shape, vec![9, 13]);
    assert!(state.iter().any(|t| t.name == "layers.0.weight.exp_avg"));
    let mut b = TrainStep::new(
        gpu,
        &def,
        &TrainConfig {
            seed: 1,
            class_weights: None,
            ..cfg.clone()
        },
    )
    .unwrap();
    b.load_params(gpu, &saved).unwrap();
    b.load_optimizer_state(gpu, &state).unwrap();
    for s in [&mut a, &mut b] {
        s.upload_batch(gpu, &d.x, &d.labels, None, 4)
            .expect("upload");
        s.record_step(gpu, 0.01, 1).unwrap();
    }
    assert_eq!(
        flat(&a.param_tensors(gpu).unwrap()),
        flat(&b.param_tensors(gpu).unwrap())
    );
    let mut bad = saved.clone();
    bad[0].shape = vec![13, 9];
    let err = b.load_params(gpu, &bad).unwrap_err().to_string();
    assert!(
        err.contains("layers.0.weight") && err.contains("[9, 13]") && err.contains("[13, 9]"),
        "{err}"
    );
    assert!(a.param_count() > 0 && a.flops_per_step() > 0);
}

#[test]
fn invalid_models_are_errors_not_panics() {
    let cases: [(&[usize], &str, &str); 3] = [
        (
            &[1, 8, 8],
            "[{linear: {out: 3}}]",
            "linear expects 1 dim [features] but input is [1, 8, 8]",
        ),
        (
            &[64],
            "[{conv2d: {out_channels: 3, kernel: 3}}]",
            "conv2d expects [channels, height, width] but input is [64]",
        ),
        (
            &[4],
            "[{dropout: {p: 1.5}}]",
            "dropout p must be in [0, 1), found 1.5",
        ),
    ];
    for (input, yaml, expected) in cases {
        let bad = ModelDef {
            input: input.to_vec(),
            layers: layers(yaml),
            inputs: Vec::new(),
            init: Init::default(),
        };
        let err = TrainStep::new(gpu(), &bad, &config(2, sgd()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
}

/// A layer with millions of outputs: its weight-gradient GEMM has 2.2M rows, more row
/// blocks than a dispatch allows along one axis in the subgroup-shared layout (32 rows
/// each, limit 65,535), so it runs in the per-invocation layout; one step goes through
/// without a validation error and changes the weights.
#[test]
fn gemm_with_millions_of_rows_fits_the_dispatch_limits() {
    let gpu = gpu();
    let def = ModelDef {
        input: vec![2],
        layers: layers("[{linear: {out: 2200000}}]"),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    };
    let mut step = TrainStep::new(gpu, &def, &config(2, sgd())).unwrap();
    let before = flat(&step.param_tensors(gpu).unwrap());
    step.upload_batch(gpu, &[0.5, -1.0, 2.0, 0.25], &[0, 1_000_000], None, 2)
        .expect("upload");
    step.record_step(gpu, 0.1, 0).unwrap();
    let metrics = step.read_train_metrics(gpu).unwrap();
    gpu.take_error().unwrap();
    assert_eq!(metrics.samples, 2);
    let after = flat(&step.param_tensors(gpu).unwrap());
    assert_ne!(before, after);
}

/// A model wired as a graph: `layers` with the tensors each reads (0 is the input, `i + 1`
/// layer `i`'s output).
/// A model of `yaml` layers over `input`, layer `i` reading the tensors `inputs[i]`
/// ([`TensorId`] numbers; empty: a chain).
fn graph(input: Vec<usize>, yaml: &str, inputs: Vec<Vec<usize>>) -> ModelDef {
    ModelDef {
        input,
        layers: layers(yaml),
        inputs: inputs
            .into_iter()
            .map(|reads| reads.into_iter().map(TensorId).collect())
            .collect(),
        init: Init::KaimingUniform,
    }
}

/// Residual connections: a tensor read by several layers gets the sum of their
/// gradients (two parts: one `grad_sum`; three: `grad_sum` then `grad_sum_into`; a tensor
/// added to itself), `add` hands its gradient to both inputs. GPU against the CPU
/// reference, and the CPU reference against finite differences.
#[test]
fn residual_graphs_match_cpu_and_finite_differences() {
    let mlp = graph(
        vec![11],
        "[{linear: {out: 16}}, relu, {linear: {out: 16}}, add, relu, {linear: {out: 5}}]",
        vec![vec![0], vec![1], vec![2], vec![3, 2], vec![4], vec![5]],
    );
    let seq = Sequential::new(&mlp).unwrap();
    assert_eq!(seq.consumers[2], [(2, 0), (3, 1)]);
    assert!(
        fuse(&seq).layers.iter().all(|f| *f == FusedLayer::Alone),
        "the relu whose output the add also reads is not folded: {:?}",
        fuse(&seq)
    );
    let step = TrainStep::new(gpu(), &mlp, &config(7, sgd())).unwrap();
    let kernels = step.kernel_names();
    assert_eq!(
        kernels.iter().filter(|k| *k == "add").count(),
        1,
        "{kernels:?}"
    );
    assert_eq!(
        kernels.iter().filter(|k| *k == "grad_sum").count(),
        1,
        "{kernels:?}"
    );
    check_model_gradients(mlp, 7, 7);

    let fan_out = graph(
        vec![6],
        "[{linear: {out: 8}}, tanh, {linear: {out: 8}}, add, add, add, {linear: {out: 4}}]",
        vec![
            vec![0],
            vec![1],
            vec![2],
            vec![3, 2],
            vec![4, 2],
            vec![5, 5],
            vec![6],
        ],
    );
    let step = TrainStep::new(gpu(), &fan_out, &config(5, sgd())).unwrap();
    let kernels = step.kernel_names();
    assert!(kernels.iter().any(|k| k == "grad_sum_into"), "{kernels:?}");
    check_model_gradients(fan_out.clone(), 5, 5);
    check_model_gradients(fan_out, 3, 5);

    let conv_block = |first: &str, second: &str| {
        graph(
            vec![2, 6, 6],
            &format!(
                "[{{conv2d: {{out_channels: 4, kernel: 3, padding: 1}}}}, {first}, {{conv2d: {{out_channels: 4, kernel: 3, padding: 1}}}}, add, {second}, flatten, {{linear: {{out: 3}}}}]"
            ),
            vec![
                vec![0],
                vec![1],
                vec![2],
                vec![3, 2],
                vec![4],
                vec![5],
                vec![6],
            ],
        )
    };
    check_model_gradients(conv_block("tanh", "gelu"), 3, 4);
    // With relus the finite differences of so many outputs cross kinks: GPU against CPU.
    check_model(conv_block("relu", "relu"), 3, 4, false);
}

/// Graph wiring mistakes are errors naming the layer, not panics.
#[test]
fn miswired_graphs_are_errors() {
    let cases = [
        (
            "[{linear: {out: 4}}, relu, {linear: {out: 4}}]",
            vec![vec![0], vec![1], vec![1]],
            "the output of layer 1 (relu) is not read by any layer",
        ),
        (
            "[{linear: {out: 4}}, add]",
            vec![vec![0], vec![1]],
            "layer 1 (add) reads 1 input but takes 2",
        ),
        (
            "[{linear: {out: 4}}, relu]",
            vec![vec![0], vec![2]],
            "layer 1 (relu) reads tensor 2, which is not computed before it",
        ),
        (
            "[{linear: {out: 4}}, add]",
            vec![vec![0], vec![1, 0]],
            "layer 1: add expects inputs of equal shapes, found [4] and [3]",
        ),
        (
            "[{linear: {out: 4}}, relu]",
            vec![vec![0]],
            "inputs are given for 1 of the 2 layers",
        ),
    ];
    for (yaml, inputs, message) in cases {
        let err = Sequential::new(&graph(vec![3], yaml, inputs))
            .err()
            .expect("refused");
        assert!(err.contains(message), "{err}");
    }
}

/// Concatenation of features and of channels (a branch read next to the model's input,
/// a tensor joined to itself): each input gets its slice of the gradient. GPU against the
/// CPU reference, and the CPU reference against finite differences.
#[test]
fn concat_graphs_match_cpu_and_finite_differences() {
    let features = graph(
        vec![6],
        "[{linear: {out: 5}}, tanh, {linear: {out: 4}}, concat, concat, {linear: {out: 3}}]",
        vec![vec![0], vec![1], vec![0], vec![2, 3], vec![4, 4], vec![5]],
    );
    let seq = Sequential::new(&features).unwrap();
    assert_eq!(seq.layers[4].output, [18]);
    check_model_gradients(features.clone(), 5, 5);
    check_model_gradients(features, 3, 5);
    let channels = graph(
        vec![2, 5, 5],
        "[{conv2d: {out_channels: 3, kernel: 3, padding: 1}}, tanh, {conv2d: {out_channels: 2, kernel: 3, padding: 1}}, concat, flatten, {linear: {out: 3}}]",
        vec![vec![0], vec![1], vec![0], vec![2, 3], vec![4], vec![5]],
    );
    assert_eq!(
        Sequential::new(&channels).unwrap().layers[3].output,
        [5, 5, 5]
    );
    check_model_gradients(channels, 3, 4);
    let err = Sequential::new(&graph(
        vec![2, 5, 5],
        "[{conv2d: {out_channels: 3, kernel: 3}}, concat]",
        vec![vec![0], vec![1, 0]],
    ))
    .err()
    .expect("refused");
    assert!(
        err.contains("equal in every dimension but the first"),
        "{err}"
    );
}

/// No gradient is computed where nothing learns from it: a linear layer after a flatten of
/// the model's input runs its weight gradient but no input-gradient GEMM.
#[test]
fn no_input_gradient_where_nothing_needs_it() {
    let def = ModelDef {
        input: vec![1, 4, 4],
        layers: layers("[flatten, {linear: {out: 5}}, relu, {linear: {out: 3}}]"),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    };
    assert_eq!(
        Sequential::new(&def).unwrap().needs_grad(),
        [false, false, true, true, true]
    );
    let step = TrainStep::new(gpu(), &def, &config(4, sgd())).unwrap();
    let kernels = step.kernel_names();
    assert_eq!(
        kernels.iter().filter(|k| *k == "matmul_nn").count(),
        1,
        "only the last linear computes an input gradient: {kernels:?}"
    );
    check_model_gradients(def, 3, 4);
}

/// Batch norm in a model: over features and over conv channels, in a residual block, with
/// padded rows (statistics over the valid rows only, no gradient through the padding);
/// gradients against the CPU reference and finite differences; running statistics after
/// two steps; evaluation with them; checkpoints carry them.
#[test]
fn batch_norm_models_match_cpu() {
    use ops::batch_norm::BatchNorm;
    let gpu = gpu();
    let features = graph(
        vec![9],
        "[{linear: {out: 12}}, {batch_norm: {}}, tanh, {linear: {out: 4}}]",
        vec![],
    );
    check_model_gradients(features.clone(), 5, 8);
    check_model_gradients(features.clone(), 8, 8);
    let block = graph(
        vec![2, 5, 6],
        "[{conv2d: {out_channels: 3, kernel: 3, padding: 1}}, {batch_norm: {momentum: 0.3}}, tanh, {conv2d: {out_channels: 3, kernel: 3, padding: 1}}, {batch_norm: {}}, add, gelu, global_avg_pool, {linear: {out: 3}}]",
        vec![
            vec![0],
            vec![1],
            vec![2],
            vec![3],
            vec![4],
            vec![5, 3],
            vec![6],
            vec![7],
            vec![8],
        ],
    );
    check_model_gradients(block.clone(), 3, 4);

    // Running statistics after two training steps of 3 valid rows of 4, SGD at lr 0: the
    // parameters stay at their initial values, so the CPU reference can replay them.
    let seq = Sequential::new(&block).unwrap();
    assert_eq!(seq.buffer_count(), 12);
    let names: Vec<&str> = seq.slots.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"layers.1.running_var"), "{names:?}");
    let mut step = TrainStep::new(gpu, &block, &config(4, sgd())).unwrap();
    let params = seq.init_params(42);
    let mut running: Vec<(usize, Vec<f32>, Vec<f32>)> = seq
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.op.kind() == "batch_norm")
        .map(|(i, _)| (i, params[i][2].data.clone(), params[i][3].data.clone()))
        .collect();
    for k in 0..2 {
        let d = data(&block, 3, 3, 70 + k);
        step.upload_batch(gpu, &d.x, &d.labels, None, 3).unwrap();
        step.record_step(gpu, 0.0, k).unwrap();
        let x = Tensor {
            shape: vec![3, 2, 5, 6],
            data: d.x.clone(),
        };
        let acts = seq.forward_cpu(&params, &x, true, 42, k);
        for (i, mean, var) in &mut running {
            let LayerSpec::BatchNorm(attrs) = seq.layers[*i].spec else {
                unreachable!("filtered on kind")
            };
            let input = &acts[seq.layers[*i].inputs[0]];
            (*mean, *var) = BatchNorm { attrs }.running_update_cpu(input, mean, var);
        }
    }
    let tensors = step.param_tensors(gpu).unwrap();
    let mut evaluated = params.clone();
    for (i, mean, var) in &running {
        for (name, want) in [("running_mean", mean), ("running_var", var)] {
            let got = tensors
                .iter()
                .find(|t| t.name == format!("layers.{i}.{name}"))
                .unwrap();
            assert_close(&got.name, &got.data, want, 1e-5);
        }
        evaluated[*i][2].data = mean.clone();
        evaluated[*i][3].data = var.clone();
    }
    assert!(
        step.grad_tensors(gpu)
            .unwrap()
            .iter()
            .all(|t| !t.name.contains("running")),
        "buffers get no gradients"
    );
    // Evaluation uses the running statistics.
    let mut eval = EvalStep::new(gpu, &step, 5).unwrap();
    let d = data(&block, 5, 3, 90);
    eval.upload_batch(gpu, &d.x, &d.labels, None, 5).unwrap();
    eval.record(gpu).unwrap();
    let x = Tensor {
        shape: vec![5, 2, 5, 6],
        data: d.x.clone(),
    };
    let acts = seq.forward_cpu(&evaluated, &x, false, 42, 0);
    let want = cross_entropy_cpu(acts.last().unwrap(), &d.labels, 5, 0.0);
    let m = eval.read_metrics(gpu).unwrap();
    assert!(
        (m.loss_sum - want.loss_sum).abs() < 1e-4 * want.loss_sum.max(1.0),
        "eval loss {} vs {}",
        m.loss_sum,
        want.loss_sum
    );
    // A checkpoint's tensors restore the running statistics.
    let mut fresh = TrainStep::new(gpu, &block, &config(4, sgd())).unwrap();
    fresh.load_params(gpu, &tensors).unwrap();
    assert_eq!(fresh.param_tensors(gpu).unwrap(), tensors);
}

/// A 1-D CNN (conv1d, batch norm over its channels, max_pool1d, avg_pool1d, global average
/// pooling) and a rectangular conv2d in a model, with padded rows: GPU against the CPU
/// reference, and the CPU reference against finite differences.
#[test]
fn conv1d_and_rectangular_models_match_cpu() {
    let signal = |pool: &str, act: &str| {
        graph(
            vec![2, 24],
            &format!(
                "[{{conv1d: {{out_channels: 4, kernel: 5, padding: 2}}}}, {{batch_norm: {{}}}}, {act}, {{{pool}: {{kernel: 2}}}}, {{conv1d: {{out_channels: 3, kernel: 3, stride: 2}}}}, gelu, {{avg_pool1d: {{kernel: 2}}}}, global_avg_pool, {{linear: {{out: 3}}}}]"
            ),
            vec![],
        )
    };
    let seq = Sequential::new(&signal("max_pool1d", "relu")).unwrap();
    assert_eq!(seq.output_shape(), [3]);
    assert_eq!(seq.layers[4].output, [3, 5]);
    // conv1d -> relu -> max_pool1d fuses as its 2-D twin does (the same op properties), no
    // pool in the store (a 1 x 2 window is not the 2x2 the direct kernels store).
    let flat_fused = graph(
        vec![2, 24],
        "[{conv1d: {out_channels: 4, kernel: 5, padding: 2}}, relu, {max_pool1d: {kernel: 2}}, flatten, {linear: {out: 3}}]",
        vec![],
    );
    let seq_fused = Sequential::new(&flat_fused).unwrap();
    assert_eq!(
        fuse(&seq_fused).layers[..3],
        [
            FusedLayer::Fused {
                relu_after: true,
                mask_before: false,
                pool: PoolInStore::No
            },
            FusedLayer::Folded,
            FusedLayer::AfterRelu
        ]
    );
    check_model(flat_fused, 5, 6, false);
    check_model_gradients(signal("avg_pool1d", "tanh"), 5, 6);
    // A max (and a relu) cross kinks under finite differences: GPU against CPU.
    check_model(signal("max_pool1d", "relu"), 5, 6, false);
    let rect = graph(
        vec![1, 4, 12],
        "[{conv2d: {out_channels: 3, kernel: [1, 5], padding: [0, 2]}}, tanh, {conv2d: {out_channels: 2, kernel: [4, 1]}}, flatten, {linear: {out: 3}}]",
        vec![],
    );
    check_model_gradients(rect, 3, 4);
}

/// A model ending in log_softmax: cross entropy of log-probabilities is that of the logits,
/// so it trains with the same gradients as the model without it.
#[test]
fn log_softmax_output_trains_like_logits() {
    let mut with = mlp();
    with.layers.push(LayerSpec::LogSoftmax);
    check_model_gradients(with.clone(), 5, 6);
    let grads = |def: &ModelDef| {
        let mut step = TrainStep::new(gpu(), def, &config(6, sgd())).unwrap();
        let d = data(def, 5, 5, 3);
        step.upload_batch(gpu(), &d.x, &d.labels, None, 5).unwrap();
        step.record_step(gpu(), 0.0, 0).unwrap();
        flat(&step.grad_tensors(gpu()).unwrap())
    };
    assert_close("gradients", &grads(&with), &grads(&mlp()), 1e-5);
}

/// Ids and numbers from one input: two slices, an embedding (ids round to -1, 0 and 1 on
/// the uniform test data: -1 reads zeros), a concat; with a padded row, whose ids must
/// not reach the table's gradient. GPU against CPU and finite differences.
#[test]
fn embedding_and_slice_model_matches_cpu() {
    let mixed = graph(
        vec![10],
        "[{slice: {start: 0, end: 4}}, {embedding: {num_embeddings: 3, embedding_dim: 5}}, flatten, {slice: {start: 4, end: 10}}, {linear: {out: 8}}, concat, relu, {linear: {out: 4}}]",
        vec![
            vec![0],
            vec![1],
            vec![2],
            vec![0],
            vec![4],
            vec![3, 5],
            vec![6],
            vec![7],
        ],
    );
    assert_eq!(Sequential::new(&mixed).unwrap().layers[5].output, [28]);
    check_model_gradients(mixed, 5, 6);
}
