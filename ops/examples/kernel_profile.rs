//! Per-kernel host-timed profile of the W2 (CNN) training step:
//! `cargo run --release -p ops --example kernel_profile -- [vulkan|gl] [reps]`.

use ops::rng::Rng;
use ops::{
    BackendChoice, DeviceRequest, Gpu, Init, LossKind, ModelDef, OptimizerKind, TrainConfig,
    TrainStep,
};

fn main() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: single-threaded at this point; only EGL reads it.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", "/tmp") };
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backend = match args.first().map(String::as_str) {
        Some("gl") => BackendChoice::Gl,
        _ => BackendChoice::Vulkan,
    };
    let reps: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let gpu = Gpu::new(&DeviceRequest {
        backend,
        name: None,
    })
    .expect("device");
    let def = ModelDef {
        input: vec![1, 28, 28],
        layers: serde_yaml::from_str(
            "[{conv2d: {out_channels: 16, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 2}}, {conv2d: {out_channels: 32, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 2}}, flatten, {linear: {out: 10}}]",
        )
        .expect("layers"),
        init: Init::KaimingUniform,
    };
    let batch = 64;
    let cfg = TrainConfig {
        batch,
        loss: LossKind::CrossEntropy {
            label_smoothing: 0.0,
        },
        optimizer: OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        },
        clip_grad_norm: None,
        accumulation_steps: 1,
        seed: 1,
    };
    let mut rng = Rng::new(3);
    let x = rng.vec_uniform(batch * 784, 0.0, 1.0);
    let labels: Vec<u32> = (0..batch).map(|_| rng.below(10) as u32).collect();
    let mut step = TrainStep::new(&gpu, &def, &cfg).expect("train step");
    step.upload_batch(&gpu, &x, &labels, None, batch);
    for i in 0..5 {
        step.record_step(&gpu, 0.01, i).expect("step");
    }
    let t = step.profile_kernels(&gpu, reps).expect("profile");
    let total: f64 = t.iter().map(|k| k.seconds).sum();
    for k in &t {
        println!(
            "{:<24} {:8.3} ms {:5.1} %",
            k.kernel,
            k.seconds * 1e3,
            100.0 * k.seconds / total
        );
    }
    println!("total {:.3} ms", total * 1e3);
}
