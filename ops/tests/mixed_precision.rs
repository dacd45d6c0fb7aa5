//! Mixed precision (`Precision::F16`): the step really runs f16-operand kernels and the
//! device loss scaler; an overflowed update is skipped and the scale halved, as the CPU
//! reference (`LossScaler`, PyTorch's GradScaler) says; its state round-trips through
//! checkpoints; a linear model's f16 update stays within f16 rounding of the f32 update
//! computed from f16-rounded operands. Adapters without shader-f16 are refused (GL).

mod common;

use common::gpu;
use ops::loss_scale::{LossScaler, ScaledStep};
use ops::precision::round_to_f16;
use ops::{Init, LossKind, ModelDef, OptimizerKind, Precision, TrainConfig, TrainStep};

fn model() -> ModelDef {
    ModelDef {
        input: vec![6],
        layers: serde_yaml::from_str("[{linear: {out: 5}}, relu, {linear: {out: 3}}]").unwrap(),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    }
}

fn config(precision: Precision) -> TrainConfig {
    TrainConfig {
        batch: 4,
        loss: LossKind::CrossEntropy {
            label_smoothing: 0.0,
        },
        optimizer: OptimizerKind::adamw(0.9, 0.999, 1e-8, 0.01),
        clip_grad_norm: None,
        accumulation_steps: 1,
        seed: 3,
        class_weights: None,
        precision,
    }
}

fn batch(i: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ops::rng::Rng::new(50 + i);
    let x = rng.vec_uniform(4 * 6, -1.0, 1.0);
    let labels = (0..4).map(|_| rng.below(3) as u32).collect();
    (x, labels)
}

fn params(step: &TrainStep) -> Vec<u32> {
    step.param_tensors(gpu())
        .unwrap()
        .iter()
        .flat_map(|t| t.data.iter().map(|v| v.to_bits()))
        .collect()
}

/// None (with a note) where the adapter cannot run f16.
fn f16_step() -> Option<TrainStep> {
    let gpu = gpu();
    match TrainStep::new(gpu, &model(), &config(Precision::F16)) {
        Ok(step) => Some(step),
        Err(e) if !gpu.adapter().shader_f16 => {
            assert!(e.to_string().contains("shader-f16"), "{e}");
            eprintln!(
                "{}: no shader-f16, refused as it should be",
                gpu.adapter().name
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn the_f16_step_runs_f16_kernels_and_the_device_scaler() {
    let Some(step) = f16_step() else { return };
    let kernels = step.kernel_names();
    for k in [
        "matmul_nt.f16",
        "loss_scale.apply",
        "grad_norm_final.loss_scaled",
        "loss_scale.update",
    ] {
        assert!(
            kernels.iter().any(|n| n == k),
            "{k} missing from {kernels:?}"
        );
    }
    let f32_step = TrainStep::new(gpu(), &model(), &config(Precision::F32)).unwrap();
    assert!(
        !f32_step
            .kernel_names()
            .iter()
            .any(|n| n.contains("f16") || n.contains("loss_scale")),
        "{:?}",
        f32_step.kernel_names()
    );
}

#[test]
fn an_overflowed_update_is_skipped_and_the_scale_follows_the_reference() {
    let Some(mut step) = f16_step() else { return };
    let gpu = gpu();
    let mut reference = LossScaler::default();
    assert_eq!(step.loss_scaler(gpu).unwrap(), Some(reference));
    let mut t = 0;
    let mut run = |step: &mut TrainStep, x: &[f32], labels: &[u32]| {
        step.upload_batch(gpu, x, labels, None, 4).unwrap();
        step.record_step(gpu, 0.01, t).unwrap();
        t += 1;
    };
    let (x, labels) = batch(0);
    run(&mut step, &x, &labels);
    assert_eq!(reference.update(false), ScaledStep::Applied);
    assert_eq!(step.loss_scaler(gpu).unwrap(), Some(reference));

    // An injected overflow: 1e6 is past f16's range, so the first matmul sees inf.
    let before = params(&step);
    let mut bad = x.clone();
    bad[5] = 1.0e6;
    run(&mut step, &bad, &labels);
    assert_eq!(reference.update(true), ScaledStep::Skipped);
    assert_eq!(
        params(&step),
        before,
        "a skipped update leaves the parameters"
    );
    let scaler = step.loss_scaler(gpu).unwrap().unwrap();
    assert_eq!(scaler, reference);
    assert_eq!((scaler.scale, scaler.growth_tracker), (32768.0, 0));
    let metrics = step.read_train_metrics(gpu).unwrap();
    assert!(
        metrics.last_grad_norm.is_finite(),
        "a skipped update keeps the last applied norm"
    );

    // The next finite batch updates again (the Adam state was left alone, too).
    let (x, labels) = batch(1);
    run(&mut step, &x, &labels);
    assert_eq!(reference.update(false), ScaledStep::Applied);
    assert_ne!(params(&step), before);
    assert_eq!(step.loss_scaler(gpu).unwrap(), Some(reference));
}

#[test]
fn the_scale_doubles_after_2000_finite_updates_and_survives_a_checkpoint() {
    let Some(mut step) = f16_step() else { return };
    let gpu = gpu();
    let mut reference = LossScaler::default();
    let (x, labels) = batch(2);
    step.upload_batch(gpu, &x, &labels, None, 4).unwrap();
    for t in 0..2001u64 {
        step.record_step(gpu, 1e-6, t).unwrap();
        reference.update(false);
    }
    let scaler = step.loss_scaler(gpu).unwrap().unwrap();
    assert_eq!(scaler, reference);
    assert_eq!((scaler.scale, scaler.growth_tracker), (131072.0, 1));

    let saved = step.optimizer_state(gpu).unwrap();
    assert!(saved.iter().any(|t| t.name == "optimizer.loss_scale"));
    let mut resumed = f16_step().unwrap();
    resumed.load_optimizer_state(gpu, &saved).unwrap();
    assert_eq!(resumed.loss_scaler(gpu).unwrap(), Some(reference));
}

#[test]
fn an_f16_update_is_the_f32_update_of_f16_rounded_operands_within_rounding() {
    // One SGD step of a single linear layer: the weight gradient is dy^T x with dy from
    // the loss (times the scale, exact: a power of two) and x rounded to f16.
    let Some(_) = f16_step() else { return };
    let gpu = gpu();
    let def = ModelDef {
        input: vec![6],
        layers: serde_yaml::from_str("[{linear: {out: 3}}]").unwrap(),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    };
    let cfg = |precision| TrainConfig {
        optimizer: OptimizerKind::sgd(0.0, false, 0.0),
        ..config(precision)
    };
    let (x, labels) = batch(3);
    let rounded: Vec<f32> = x.iter().map(|v| round_to_f16(*v)).collect();
    let mut f16 = TrainStep::new(gpu, &def, &cfg(Precision::F16)).unwrap();
    let mut f32_of_rounded = TrainStep::new(gpu, &def, &cfg(Precision::F32)).unwrap();
    let w0 = f16.param_tensors(gpu).unwrap();
    let rounded_w: Vec<ops::NamedTensor> = w0
        .iter()
        .map(|t| ops::NamedTensor {
            data: t.data.iter().map(|v| round_to_f16(*v)).collect(),
            ..t.clone()
        })
        .collect();
    // Both start from f16-exact weights, so the forward operands agree.
    f16.load_params(gpu, &rounded_w).unwrap();
    f32_of_rounded.load_params(gpu, &rounded_w).unwrap();
    f16.upload_batch(gpu, &x, &labels, None, 4).unwrap();
    f32_of_rounded
        .upload_batch(gpu, &rounded, &labels, None, 4)
        .unwrap();
    f16.record_step(gpu, 0.5, 0).unwrap();
    f32_of_rounded.record_step(gpu, 0.5, 0).unwrap();
    let a = f16.param_tensors(gpu).unwrap();
    let b = f32_of_rounded.param_tensors(gpu).unwrap();
    let mut changed = false;
    for (ta, tb) in a.iter().zip(&b) {
        for ((va, vb), v0) in ta.data.iter().zip(&tb.data).zip(
            rounded_w
                .iter()
                .find(|t| t.name == ta.name)
                .unwrap()
                .data
                .iter(),
        ) {
            changed |= va != v0;
            // The backward's dy is rounded to f16 too: 2^-11 relative on the update.
            let update = (vb - v0).abs();
            assert!(
                (va - vb).abs() <= update * 2e-3 + 1e-7,
                "{}: {va} vs {vb} (update {update})",
                ta.name
            );
        }
    }
    assert!(changed, "the step updated the weights");
}

/// The bound ranges of a step's dispatches that hold f16 values (`label:f16`).
fn f16_bindings(step: &TrainStep) -> Vec<String> {
    let mut found: Vec<String> = step
        .step_dispatches()
        .iter()
        .flat_map(|d| d.bindings.iter())
        .filter(|b| b.ends_with(":f16"))
        .cloned()
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn activations_between_linear_layers_are_stored_as_f16_and_change_no_product() {
    // Fused (linear -> relu -> linear: the GEMMs store and load the hidden activations),
    // they are stored as f16; unfused (the relus are kernels of their own, reading f32),
    // they stay f32 and the GEMMs round them to f16 as they load them. Either way the
    // products see the same f16 values, so training gives the same bits, while the fused
    // step's hidden activations take half the memory. (The relu masks differ only for
    // outputs in (0, 2^-25], which f16 stores as 0; these random batches have none.)
    let Some(_) = f16_step() else { return };
    let gpu = gpu();
    let def = ModelDef {
        input: vec![6],
        layers: serde_yaml::from_str(
            "[{linear: {out: 16}}, relu, {linear: {out: 12}}, relu, {linear: {out: 3}}]",
        )
        .unwrap(),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    };
    let cfg = config(Precision::F16);
    let mut stored = TrainStep::new(gpu, &def, &cfg).unwrap();
    let unfused = ops::fusion::Fusion::unfused(&ops::model::Sequential::new(&def).unwrap());
    let mut rounded = TrainStep::with_inputs(
        gpu,
        &def,
        &cfg,
        ops::train::ChainInputs {
            fusion: Some(unfused),
            ..Default::default()
        },
    )
    .unwrap();
    // Both hidden activations (and the relus' aliases of them); never the model's input
    // or output.
    assert_eq!(f16_bindings(&stored), ["act.0:f16", "act.2:f16"]);
    assert_eq!(f16_bindings(&rounded), Vec::<String>::new());
    assert!(stored.kernel_names().iter().any(|k| k == "matmul_nt.f16"));

    let start = stored.param_tensors(gpu).unwrap();
    rounded.load_params(gpu, &start).unwrap();
    for t in 0..6u64 {
        let (x, labels) = batch(10 + t);
        for step in [&mut stored, &mut rounded] {
            step.upload_batch(gpu, &x, &labels, None, 4).unwrap();
            step.record_step(gpu, 0.01, t).unwrap();
        }
    }
    assert_ne!(
        params(&stored),
        start
            .iter()
            .flat_map(|t| t.data.iter().map(|v| v.to_bits()))
            .collect::<Vec<_>>()
    );
    assert_eq!(params(&stored), params(&rounded));
    assert_eq!(
        stored
            .read_train_metrics(gpu)
            .unwrap()
            .last_grad_norm
            .to_bits(),
        rounded
            .read_train_metrics(gpu)
            .unwrap()
            .last_grad_norm
            .to_bits()
    );
}

#[test]
fn a_kernel_is_refused_a_buffer_of_another_element_type() {
    // An f16 range bound where a kernel declares f32 would be read as garbage: refused
    // before compiling, on every backend.
    let gpu = gpu();
    let buffer = gpu.storage_buffer("halves", 16).unwrap();
    let halves = ops::gpu::BufferRef::whole(&buffer).holding(ops::gpu::Elem::F16);
    let mut k = ops::gpu::KernelBuilder::new(gpu);
    let err = k
        .compute(
            "writes_f32",
            &[
                "@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(1) fn main() { x[0] = 1.0; }",
            ],
            &[],
            &[&halves],
            [1, 1, 1],
        )
        .unwrap_err();
    assert!(err.to_string().contains("binding 0 holds F16"), "{err}");

    // And an f32 range where a kernel declares f16 vectors, over two lines.
    let words = ops::gpu::BufferRef::whole(&buffer);
    let err = k
        .compute(
            "reads_f16",
            &["enable f16;
// @binding(0) in a comment is not the declaration.
@group(0) @binding(0)
    var<storage, read_write> x: array< vec4<f16> >;
@compute @workgroup_size(1) fn main() { x[0] = vec4<f16>(1.0h); }"],
            &[],
            &[&words],
            [1, 1, 1],
        )
        .unwrap_err();
    assert!(err.to_string().contains("binding 0 holds F32"), "{err}");
}

#[test]
fn a_skipped_update_is_not_an_adam_step() {
    // PyTorch's GradScaler skips `optimizer.step()` on an overflow, so Adam's count (and
    // its bias corrections) only see applied updates. A run with an overflowed batch in
    // the middle must therefore end where a run without it ends: the scales differ by a
    // power of two, which scaling and unscaling undo exactly; the bias corrections after
    // a skip are computed on the device (1 - exp(t ln beta) in f32, not the host's f64
    // powers), so they agree to a few f32 ulps (1e-5 of the update here). Counting the
    // skipped update would change the first updates' size by ~40% (1 - 0.9^2 vs 1 - 0.9^3).
    let Some(mut with_skip) = f16_step() else {
        return;
    };
    let mut without = f16_step().unwrap();
    let gpu = gpu();
    let start = with_skip.param_tensors(gpu).unwrap();
    without.load_params(gpu, &start).unwrap();
    let run = |step: &mut TrainStep, x: &[f32], labels: &[u32], t: u64| {
        step.upload_batch(gpu, x, labels, None, 4).unwrap();
        step.record_step(gpu, 0.01, t).unwrap();
    };
    let (x0, l0) = batch(20);
    run(&mut with_skip, &x0, &l0, 0);
    run(&mut without, &x0, &l0, 0);
    let mut bad = x0.clone();
    bad[3] = 1.0e6;
    run(&mut with_skip, &bad, &l0, 1);
    let scaler = with_skip.loss_scaler(gpu).unwrap().unwrap();
    assert_eq!((scaler.scale, scaler.skipped), (32768.0, 1));
    for t in 0..3u64 {
        let (x, labels) = batch(21 + t);
        run(&mut with_skip, &x, &labels, 2 + t);
        run(&mut without, &x, &labels, 1 + t);
    }
    let (a, b) = (
        with_skip.param_tensors(gpu).unwrap(),
        without.param_tensors(gpu).unwrap(),
    );
    for ((ta, tb), t0) in a.iter().zip(&b).zip(&start) {
        for ((va, vb), v0) in ta.data.iter().zip(&tb.data).zip(&t0.data) {
            let update = (vb - v0).abs();
            assert!(
                (va - vb).abs() <= update * 1e-5 + 1e-9,
                "{}: {va} vs {vb} (update {update})",
                ta.name
            );
        }
    }

    // The count survives a checkpoint.
    let saved = with_skip.optimizer_state(gpu).unwrap();
    let mut resumed = f16_step().unwrap();
    resumed.load_optimizer_state(gpu, &saved).unwrap();
    assert_eq!(resumed.loss_scaler(gpu).unwrap().unwrap().skipped, 1);

    // A checkpoint written before the count (two words) loads as none skipped.
    let old: Vec<ops::NamedTensor> = saved
        .iter()
        .map(|t| match t.name.as_str() {
            "optimizer.loss_scale" => ops::NamedTensor {
                shape: vec![2],
                data: t.data[..2].to_vec(),
                ..t.clone()
            },
            _ => t.clone(),
        })
        .collect();
    resumed.load_optimizer_state(gpu, &old).unwrap();
    let scaler = resumed.loss_scaler(gpu).unwrap().unwrap();
    assert_eq!(
        (scaler.scale, scaler.growth_tracker, scaler.skipped),
        (32768.0, 3, 0)
    );
}
