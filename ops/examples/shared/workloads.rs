//! The benchmark workloads of `pipelines/bench_mlp.yaml` (W1) and `pipelines/bench_cnn.yaml`
//! (W2) as ops-crate models, shared by the examples (`#[path]` module: not an example).

use ops::{Init, LayerSpec, LossKind, ModelDef, OptimizerKind, TrainConfig};

pub fn layers(yaml: &str) -> Vec<LayerSpec> {
    serde_yaml::from_str(yaml).expect("layer list")
}

/// W1: 784 -> linear 256 -> relu -> linear 256 -> relu -> linear 10, batch 128.
pub fn mlp() -> (ModelDef, usize) {
    let def = ModelDef {
        input: vec![784],
        layers: layers(
            "[{linear: {out: 256}}, relu, {linear: {out: 256}}, relu, {linear: {out: 10}}]",
        ),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    };
    (def, 128)
}

/// W2: 1x28x28 -> conv 16 -> relu -> pool -> conv 32 -> relu -> pool -> linear 10, batch 64.
pub fn cnn() -> (ModelDef, usize) {
    let def = ModelDef {
        input: vec![1, 28, 28],
        layers: layers(
            "[{conv2d: {out_channels: 16, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 2}}, {conv2d: {out_channels: 32, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 2}}, flatten, {linear: {out: 10}}]",
        ),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    };
    (def, 64)
}

/// Softmax cross entropy and SGD with `momentum`, one micro-batch per step (the learning
/// rate is given per step).
pub fn sgd_config(batch: usize, momentum: f32) -> TrainConfig {
    TrainConfig {
        batch,
        loss: LossKind::CrossEntropy {
            label_smoothing: 0.0,
        },
        optimizer: OptimizerKind::sgd(momentum, false, 0.0),
        clip_grad_norm: None,
        accumulation_steps: 1,
        seed: 1,
        class_weights: None,
        precision: ops::Precision::F32,
    }
}
