//! Step throughput on the target workloads. Ignored by default (timing is not a test);
//! run with `cargo test -p ops --test throughput -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use common::gpu;
use ops::rng::Rng;
use ops::{Init, LayerSpec, LossKind, ModelDef, OptimizerKind, TrainConfig, TrainStep};

fn time_steps(name: &str, def: ModelDef, batch: usize) {
    let gpu = gpu();
    let cfg = TrainConfig {
        batch,
        loss: LossKind::CrossEntropy {
            label_smoothing: 0.0,
        },
        optimizer: OptimizerKind::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        clip_grad_norm: Some(1.0),
        accumulation_steps: 1,
        seed: 1,
    };
    let mut step = TrainStep::new(gpu, &def, &cfg).unwrap();
    let per: usize = def.input.iter().product();
    let mut rng = Rng::new(3);
    let x = rng.vec_uniform(batch * per, 0.0, 1.0);
    let labels: Vec<u32> = (0..batch).map(|_| rng.below(10) as u32).collect();
    step.upload_batch(gpu, &x, &labels, None, batch);
    step.record_step(gpu, 0.01, 0).unwrap();
    step.read_train_metrics(gpu).unwrap();
    let n = 10;
    let t = Instant::now();
    for s in 1..=n {
        step.upload_batch(gpu, &x, &labels, None, batch);
        step.record_step(gpu, 0.01, s).unwrap();
    }
    step.read_train_metrics(gpu).unwrap();
    let secs = t.elapsed().as_secs_f64() / n as f64;
    let gflops = step.flops_per_step() as f64 / secs / 1e9;
    println!(
        "{name}: {:.1} ms/step, {:.0} samples/s, {gflops:.2} GFLOP/s ({})",
        secs * 1e3,
        batch as f64 / secs,
        gpu.adapter().name
    );
}

#[test]
#[ignore]
fn mlp_and_cnn_throughput() {
    let layers = |y: &str| serde_yaml::from_str::<Vec<LayerSpec>>(y).unwrap();
    time_steps(
        "mlp 784-256-256-10 b128",
        ModelDef {
            input: vec![784],
            layers: layers(
                "[{linear: {out: 256}}, relu, {linear: {out: 256}}, relu, {linear: {out: 10}}]",
            ),
            init: Init::KaimingUniform,
        },
        128,
    );
    time_steps(
        "cnn b64",
        ModelDef {
            input: vec![1, 28, 28],
            layers: layers(
                "[{conv2d: {out_channels: 16, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 2}}, {conv2d: {out_channels: 32, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 2}}, flatten, {linear: {out: 10}}]",
            ),
            init: Init::KaimingUniform,
        },
        64,
    );
}
