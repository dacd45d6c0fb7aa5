//! Per-kernel host-timed profile of a benchmark training step:
//! `cargo run --release -p ops --example kernel_profile -- [cnn|mlp] [vulkan|gl] [reps]`.
//!
//! The "first" column is each kernel's first execution, submitted alone before any step
//! has run: on Mesa's CPU adapters that includes compiling the kernel (run with
//! `MESA_SHADER_CACHE_DISABLE=true` to see the cold-cache cost).

use ops::rng::Rng;
use ops::{BackendChoice, DeviceRequest, Gpu, TrainStep};

#[path = "shared/workloads.rs"]
mod workloads;

fn main() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: single-threaded at this point; only EGL reads it.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", "/tmp") };
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = args.first().map(String::as_str).unwrap_or("cnn");
    let backend = match args.get(1).map(String::as_str) {
        Some("gl") => BackendChoice::Gl,
        _ => BackendChoice::Vulkan,
    };
    let reps: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let (def, batch) = match workload {
        "mlp" => workloads::mlp(),
        _ => workloads::cnn(),
    };
    let started = std::time::Instant::now();
    let gpu = Gpu::new(&DeviceRequest {
        backend,
        name: None,
        nth: 0,
        needs_f16: false,
        needs_wgsl: false,
    })
    .expect("device");
    let cfg = workloads::sgd_config(batch, 0.9);
    let features: usize = def.input.iter().product();
    let mut rng = Rng::new(3);
    let x = rng.vec_uniform(batch * features, 0.0, 1.0);
    let labels: Vec<u32> = (0..batch).map(|_| rng.below(10) as u32).collect();
    let mut step = TrainStep::new(&gpu, &def, &cfg).expect("train step");
    println!(
        "device + step built in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    step.upload_batch(&gpu, &x, &labels, None, batch)
        .expect("upload");
    let first = step.profile_kernels(&gpu, 1).expect("profile");
    let optimizer_started = std::time::Instant::now();
    step.record_step(&gpu, 0.01, 0).expect("step");
    step.read_train_metrics(&gpu).expect("read-back");
    let optimizer_first = optimizer_started.elapsed().as_secs_f64();
    for i in 1..5 {
        step.record_step(&gpu, 0.01, i).expect("step");
    }
    let warm = step.profile_kernels(&gpu, reps).expect("profile");
    let total: f64 = warm.iter().map(|k| k.seconds).sum();
    let first_total: f64 = first.iter().map(|k| k.seconds).sum();
    println!("{:<28} {:>10} {:>10}", "kernel", "first", "warm");
    for (f, k) in first.iter().zip(&warm) {
        println!(
            "{:<28} {:8.1} ms {:7.3} ms {:5.1} %",
            k.kernel,
            f.seconds * 1e3,
            k.seconds * 1e3,
            100.0 * k.seconds / total
        );
    }
    println!(
        "total {first_total:.3} s first, {:.3} ms warm; first full step after them (optimizer's first run) {optimizer_first:.3} s; since start {:.3} s",
        total * 1e3,
        started.elapsed().as_secs_f64()
    );
}
