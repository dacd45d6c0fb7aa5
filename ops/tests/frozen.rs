//! Chains with frozen models: a distillation loss against a frozen teacher, and a trained
//! head behind a frozen encoder, on the GPU against the CPU reference; the distillation
//! loss's CPU gradient against finite differences.

mod common;

use common::{assert_close, gpu};
use ops::loss::distill::distill_cpu;
use ops::model::Sequential;
use ops::rng::Rng;
use ops::{
    ChainInputs, EvalStep, Init, LayerSpec, LossKind, ModelDef, ModelParams, OptimizerKind, Tensor,
    TrainConfig, TrainStep,
};

fn model(input: usize, yaml: &str) -> ModelDef {
    ModelDef {
        input: vec![input],
        layers: serde_yaml::from_str::<Vec<LayerSpec>>(yaml).unwrap(),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    }
}

fn config(batch: usize, loss: LossKind) -> TrainConfig {
    TrainConfig {
        batch,
        loss,
        optimizer: OptimizerKind::sgd(0.0, false, 0.0),
        clip_grad_norm: None,
        // No update within the test: the gradient sums stay readable.
        accumulation_steps: 1000,
        seed: 3,
        class_weights: None,
        precision: ops::Precision::F32,
    }
}

fn flat(tensors: &[ops::NamedTensor]) -> Vec<f32> {
    tensors.iter().flat_map(|t| t.data.clone()).collect()
}

fn batch_tensor(rows: usize, per: usize, data: &[f32]) -> Tensor {
    Tensor {
        shape: vec![rows, per],
        data: data[..rows * per].to_vec(),
    }
}

const DISTILL: LossKind = LossKind::Distill {
    temperature: 3.0,
    alpha: 0.7,
};

#[test]
fn distillation_gradient_matches_finite_differences() {
    let mut rng = Rng::new(5);
    let (rows, classes) = (4, 6);
    let z = Tensor {
        shape: vec![rows, classes],
        data: rng.vec_uniform(rows * classes, -2.0, 2.0),
    };
    let t = Tensor {
        shape: vec![rows, classes],
        data: rng.vec_uniform(rows * classes, -3.0, 3.0),
    };
    let labels = [1, 5, 0, 2];
    let out = distill_cpu(&z, &t, &labels, rows, 3.0, 0.7);
    for i in 0..z.len() {
        let h = 1e-3;
        let (mut zp, mut zm) = (z.clone(), z.clone());
        zp.data[i] += h;
        zm.data[i] -= h;
        let num = (distill_cpu(&zp, &t, &labels, rows, 3.0, 0.7).loss_sum
            - distill_cpu(&zm, &t, &labels, rows, 3.0, 0.7).loss_sum)
            / (2.0 * h as f64);
        let ana = out.grad.data[i] as f64;
        assert!((num - ana).abs() < 1e-3, "[{i}]: numeric {num} vs {ana}");
    }
    // With alpha 0 it is plain cross entropy; with a teacher equal to the student, the
    // KL term vanishes.
    let ce = ops::loss::cross_entropy::cross_entropy_cpu(&z, &labels, rows, 0.0);
    let hard = distill_cpu(&z, &t, &labels, rows, 3.0, 0.0);
    assert!((hard.loss_sum - ce.loss_sum).abs() < 1e-9);
    let same = distill_cpu(&z, &z, &labels, rows, 3.0, 1.0);
    assert!(same.loss_sum.abs() < 1e-9, "{}", same.loss_sum);
}

#[test]
fn student_distilled_from_a_frozen_teacher_matches_the_cpu_reference() {
    let gpu = gpu();
    let (batch, rows, classes) = (8, 7, 5);
    let teacher_def = model(10, "[{linear: {out: 12}}, tanh, {linear: {out: 5}}]");
    let student_def = model(10, "[{linear: {out: 6}}, relu, {linear: {out: 5}}]");
    let teacher = ModelParams::new(gpu, &teacher_def, 77, None).unwrap();
    let cfg = config(batch, DISTILL);
    let inputs = ChainInputs {
        teacher: Some(&teacher),
        ..ChainInputs::default()
    };
    let mut step = TrainStep::with_inputs(gpu, &student_def, &cfg, inputs).unwrap();
    let mut rng = Rng::new(1);
    let x = rng.vec_uniform(rows * 10, -1.0, 1.0);
    let labels: Vec<u32> = (0..rows).map(|r| (r % classes) as u32).collect();
    step.upload_batch(gpu, &x, &labels, None, rows)
        .expect("upload");
    step.record_step(gpu, 0.1, 0).unwrap();

    let t_seq = Sequential::new(&teacher_def).unwrap();
    let t_params = t_seq.init_params(77);
    let t_logits = t_seq
        .forward_cpu(&t_params, &batch_tensor(rows, 10, &x), false, 3, 0)
        .pop()
        .unwrap();
    let s_seq = Sequential::new(&student_def).unwrap();
    let s_params = s_seq.init_params(cfg.seed);
    let acts = s_seq.forward_cpu(&s_params, &batch_tensor(rows, 10, &x), true, 3, 0);
    let out = distill_cpu(acts.last().unwrap(), &t_logits, &labels, rows, 3.0, 0.7);
    let (_, grads) = s_seq.backward_cpu(&s_params, &acts, &out.grad, 3, 0);
    let cpu: Vec<f32> = grads
        .iter()
        .flatten()
        .flat_map(|t| t.data.clone())
        .collect();
    assert_close(
        "student gradients",
        &flat(&step.grad_tensors(gpu).unwrap()),
        &cpu,
        1e-4,
    );
    let m = step.read_train_metrics(gpu).unwrap();
    assert!((m.loss_sum - out.loss_sum).abs() < 1e-4 * out.loss_sum.abs().max(1.0));
    assert_eq!(m.correct, out.correct);
    // The teacher is untouched.
    assert_close(
        "teacher",
        &flat(&teacher.tensors(gpu).unwrap()),
        &t_params
            .iter()
            .flatten()
            .flat_map(|t| t.data.clone())
            .collect::<Vec<_>>(),
        0.0,
    );
}

#[test]
fn head_behind_a_frozen_encoder_matches_the_cpu_reference() {
    let gpu = gpu();
    let (batch, rows) = (6, 6);
    let encoder_def = model(9, "[{linear: {out: 7}}, relu, {dropout: {p: 0.5}}]");
    let head_def = model(7, "[{linear: {out: 4}}]");
    let names = vec![
        "encoder.layers.0".to_string(),
        "encoder.layers.1".into(),
        "encoder.layers.2".into(),
    ];
    let encoder = ModelParams::new(gpu, &encoder_def, 11, Some(&names)).unwrap();
    assert_eq!(
        encoder.tensors(gpu).unwrap()[0].name,
        "encoder.layers.0.weight"
    );
    let cfg = config(
        batch,
        LossKind::CrossEntropy {
            label_smoothing: 0.0,
        },
    );
    let inputs = ChainInputs {
        encoder: Some(&encoder),
        layer_names: Some(vec!["head.layers.0".into()]),
        step_tensor: Some("head_step.optimizer.step".into()),
        ..ChainInputs::default()
    };
    let mut step = TrainStep::with_inputs(gpu, &head_def, &cfg, inputs).unwrap();
    let mut rng = Rng::new(2);
    let x = rng.vec_uniform(rows * 9, -1.0, 1.0);
    let labels: Vec<u32> = (0..rows).map(|r| (r % 4) as u32).collect();
    step.upload_batch(gpu, &x, &labels, None, rows)
        .expect("upload");
    step.record_step(gpu, 0.1, 0).unwrap();

    // The frozen encoder runs in evaluation mode: its dropout is off.
    let e_seq = Sequential::new(&encoder_def).unwrap();
    let features = e_seq
        .forward_cpu(
            &e_seq.init_params(11),
            &batch_tensor(rows, 9, &x),
            false,
            3,
            0,
        )
        .pop()
        .unwrap();
    let h_seq = Sequential::new(&head_def).unwrap();
    let h_params = h_seq.init_params(cfg.seed);
    let acts = h_seq.forward_cpu(&h_params, &features, true, 3, 0);
    let out = ops::loss::cross_entropy::cross_entropy_cpu(acts.last().unwrap(), &labels, rows, 0.0);
    let (_, grads) = h_seq.backward_cpu(&h_params, &acts, &out.grad, 3, 0);
    let cpu: Vec<f32> = grads
        .iter()
        .flatten()
        .flat_map(|t| t.data.clone())
        .collect();
    let gpu_grads = step.grad_tensors(gpu).unwrap();
    assert_eq!(gpu_grads[0].name, "head.layers.0.weight");
    assert_close("head gradients", &flat(&gpu_grads), &cpu, 1e-4);
    let names: Vec<String> = step
        .optimizer_state(gpu)
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["head_step.optimizer.step"]);

    // Evaluating the chain runs the encoder too.
    let mut eval = EvalStep::new(gpu, &step, 4).unwrap();
    eval.upload_batch(gpu, &x[..4 * 9], &labels[..4], None, 4)
        .expect("upload");
    eval.record(gpu).unwrap();
    let m = eval.read_metrics(gpu).unwrap();
    let first4 = ops::loss::cross_entropy::cross_entropy_cpu(
        &Tensor {
            shape: vec![4, 4],
            data: acts.last().unwrap().data[..16].to_vec(),
        },
        &labels,
        4,
        0.0,
    );
    assert_eq!(m.samples, 4);
    assert!(
        (m.loss_sum - first4.loss_sum).abs() < 1e-4,
        "{} vs {}",
        m.loss_sum,
        first4.loss_sum
    );
}
