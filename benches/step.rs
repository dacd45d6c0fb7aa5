//! `cargo bench`: training-step throughput of the benchmark workloads W1 (MLP) and W2
//! (CNN) on the preferred adapter (`ENGINE_BENCH_DEVICE=vulkan|gl|<name>` to choose). The
//! drivers' shader caches are off unless `ENGINE_BENCH_WARM_CACHE` is set.

use std::path::Path;

use engine::diag::{Sources, render};
use engine::run::{BenchOptions, bench_pipeline};
use engine::{LoadError, load_pipeline};
use ops::gpu::{BackendChoice, DeviceRequest};

fn main() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: set before any thread starts; silences Mesa's warning on every start.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
    if std::env::var_os("ENGINE_BENCH_WARM_CACHE").is_none() {
        // SAFETY: no other thread has started yet. The first step then includes compiling
        // every kernel, as on a fresh machine.
        unsafe { engine::run::turn_off_shader_caches() };
    }
    let device = std::env::var("ENGINE_BENCH_DEVICE")
        .ok()
        .map(|d| match d.as_str() {
            "vulkan" => DeviceRequest {
                backend: BackendChoice::Vulkan,
                ..DeviceRequest::default()
            },
            "gl" => DeviceRequest {
                backend: BackendChoice::Gl,
                ..DeviceRequest::default()
            },
            "cpu" => DeviceRequest {
                backend: BackendChoice::Cpu,
                ..DeviceRequest::default()
            },
            name => DeviceRequest {
                name: Some(name.to_string()),
                ..DeviceRequest::default()
            },
        });
    for file in ["pipelines/bench_mlp.yaml", "pipelines/bench_cnn.yaml"] {
        let mut sources = Sources::default();
        let checked = match load_pipeline(Path::new(file), &[], &mut sources) {
            Ok(c) => c,
            Err(LoadError::Invalid(d)) => panic!("{}", render(&d, &sources, false)),
            Err(LoadError::Io(e)) => panic!("{e}"),
        };
        match bench_pipeline(
            &engine::plan::plan_pipeline(&checked),
            device.clone(),
            BenchOptions::default(),
        ) {
            Ok(report) => print!("{report}"),
            Err(e) => eprintln!("{file}: {e}"),
        }
    }
}
