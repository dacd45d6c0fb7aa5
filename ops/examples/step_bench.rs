//! Training-step throughput of the benchmark workloads, mirroring `engine bench`
//! (20 warm-up steps, 3 x 200 timed steps, median) without the engine crate:
//! `cargo run --release -p ops --example step_bench -- [mlp|cnn|matmul|all] [vulkan|gl]`.
//! Set `STEP_BENCH_STEPS` to change the timed steps per repetition.

use std::time::Instant;

use ops::rng::Rng;
use ops::{BackendChoice, DeviceRequest, EvalStep, Gpu, Init, ModelDef, TrainStep};

#[path = "shared/workloads.rs"]
mod workloads;
use workloads::{cnn, layers, mlp, sgd_config as config};

fn bench(gpu_req: &DeviceRequest, name: &str, def: ModelDef, batch: usize, steps: u32) {
    let per: usize = def.input.iter().product();
    let mut rng = Rng::new(3);
    let x = rng.vec_uniform(batch * per, 0.0, 1.0);
    let labels: Vec<u32> = (0..batch).map(|_| rng.below(10) as u32).collect();
    let started = Instant::now();
    let gpu = Gpu::new(gpu_req).expect("device");
    let mut step = TrainStep::new(&gpu, &def, &config(batch, 0.9)).expect("train step");
    let run = |step: &mut TrainStep, i: u64| {
        step.upload_batch(&gpu, &x, &labels, None, batch)
            .expect("upload");
        step.record_step(&gpu, 0.01, i).expect("step");
    };
    run(&mut step, 0);
    let m0 = step.read_train_metrics(&gpu).expect("metrics");
    let first_ms = started.elapsed().as_secs_f64() * 1e3;
    for i in 1..=20 {
        run(&mut step, i);
    }
    step.read_train_metrics(&gpu).expect("metrics");
    let mut rates = Vec::new();
    let mut record_ms = Vec::new();
    let mut idx = 21;
    let mut last = m0;
    for _ in 0..3 {
        let t = Instant::now();
        let mut host = 0.0;
        for _ in 0..steps {
            let h = Instant::now();
            run(&mut step, idx);
            host += h.elapsed().as_secs_f64();
            idx += 1;
        }
        last = step.read_train_metrics(&gpu).expect("metrics");
        let secs = t.elapsed().as_secs_f64();
        rates.push(steps as f64 * batch as f64 / secs);
        record_ms.push(host * 1e3 / steps as f64);
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[1];
    let ms = batch as f64 / median * 1e3;
    let gflops = step.flops_per_step() as f64 / (ms / 1e3) / 1e9;
    println!(
        "{name} on {} ({}): median {median:.0} samples/s ({:.0}-{:.0}), {ms:.3} ms/step, {gflops:.2} GFLOP/s, first step {first_ms:.0} ms, host upload+record {:.3} ms/step, {} dispatches, loss {:.4} -> {:.4}",
        gpu.adapter().name,
        gpu.adapter().backend,
        sorted[0],
        sorted[2],
        record_ms.iter().sum::<f64>() / 3.0,
        step.kernel_names().len(),
        m0.loss_sum / m0.samples.max(1) as f64,
        last.loss_sum / last.samples.max(1) as f64,
    );
}

fn matmul(gpu_req: &DeviceRequest, n: usize) {
    let gpu = Gpu::new(gpu_req).expect("device");
    let def = ModelDef {
        input: vec![n],
        layers: layers(&format!("[{{linear: {{out: {n}, bias: false}}}}]")),
        inputs: Vec::new(),
        init: Init::default(),
    };
    let train = TrainStep::new(&gpu, &def, &config(n, 0.0)).expect("train step");
    let mut eval = EvalStep::new(&gpu, &train, n).expect("eval step");
    let features: Vec<f32> = (0..n * n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let labels: Vec<u32> = (0..n as u32).collect();
    eval.upload_batch(&gpu, &features, &labels, None, n)
        .expect("upload");
    eval.record(&gpu).expect("record");
    eval.read_metrics(&gpu).expect("metrics");
    let reps = if n <= 512 { 20 } else { 5 };
    let t = Instant::now();
    for _ in 0..reps {
        eval.record(&gpu).expect("record");
    }
    eval.read_metrics(&gpu).expect("metrics");
    let secs = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "matmul {n}x{n}: {:.2} GFLOP/s",
        2.0 * (n as f64).powi(3) / secs / 1e9
    );
}

fn main() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: single-threaded at this point; only EGL reads it.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", "/tmp") };
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map_or("all", String::as_str);
    let backend = match args.get(1).map(String::as_str) {
        Some("gl") => BackendChoice::Gl,
        Some("vulkan") => BackendChoice::Vulkan,
        _ => BackendChoice::Auto,
    };
    let req = DeviceRequest {
        backend,
        name: None,
        nth: 0,
        needs_f16: false,
        needs_wgsl: false,
    };
    let steps = std::env::var("STEP_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    if what == "mlp" || what == "all" {
        let (def, batch) = mlp();
        bench(&req, "W1 mlp", def, batch, steps);
    }
    if what == "cnn" || what == "all" {
        let (def, batch) = cnn();
        bench(&req, "W2 cnn", def, batch, steps);
    }
    if what == "matmul" || what == "all" {
        matmul(&req, 512);
        matmul(&req, 1024);
    }
}
