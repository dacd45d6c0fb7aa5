//! Shared test helpers: device selection, random data, single-layer GPU runs.
#![allow(dead_code)]

use std::sync::OnceLock;

use ops::rng::Rng;
use ops::{BackendChoice, CpuCtx, DeviceRequest, Gpu, Op, Tensor};

/// Layer attributes written as YAML, e.g. `attrs("{out: 5}")`.
pub fn attrs<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    serde_yaml::from_str(yaml).unwrap()
}

/// Random parameters (uniform in [-1, 1)) for `op` over per-sample `input`.
pub fn random_params(rng: &mut Rng, op: &dyn Op, input: &[usize]) -> Vec<Tensor> {
    op.params(input)
        .iter()
        .map(|p| random(rng, &p.shape, -1.0, 1.0))
        .collect()
}

/// The backend named by `ENGINE_TEST_BACKEND` (vulkan | gl | cpu | auto, default auto).
pub fn request() -> DeviceRequest {
    let backend = match std::env::var("ENGINE_TEST_BACKEND")
        .unwrap_or_default()
        .to_lowercase()
        .as_str()
    {
        "vulkan" => BackendChoice::Vulkan,
        "gl" | "gles" | "opengl" => BackendChoice::Gl,
        "cpu" => BackendChoice::Cpu,
        _ => BackendChoice::Auto,
    };
    DeviceRequest {
        backend,
        name: None,
        nth: 0,
        needs_f16: false,
        needs_wgsl: false,
    }
}

/// A fresh device; panics (fails the test loudly) when there is none.
pub fn new_gpu() -> Gpu {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: only EGL reads this variable, and it is set before the first device opens.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", "/tmp") };
    }
    match Gpu::new(&request()) {
        Ok(g) => g,
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    }
}

/// One device shared by the tests of a binary.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(new_gpu)
}

pub fn random(rng: &mut Rng, shape: &[usize], low: f32, high: f32) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data: rng.vec_uniform(shape.iter().product(), low, high),
    }
}

/// Values bounded away from 0 (for kinks at 0) in [-1.1, -0.1] ∪ [0.1, 1.1].
pub fn random_away_from_zero(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let mut t = random(rng, shape, -1.0, 1.0);
    for v in &mut t.data {
        *v += 0.1f32.copysign(*v);
    }
    t
}

/// Distinct values spaced 0.05 apart in random order (no near-ties for max pooling).
pub fn random_distinct(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        idx.swap(i, rng.below(i + 1));
    }
    Tensor {
        shape: shape.to_vec(),
        data: idx
            .iter()
            .map(|&i| i as f32 * 0.05 - n as f32 * 0.025)
            .collect(),
    }
}

pub use ops::testing::GpuRun;

/// [`ops::testing::run_layer`], failing the test on a device error.
pub fn run_layer(
    gpu: &Gpu,
    op: &dyn Op,
    x: &Tensor,
    params: &[Tensor],
    dy: &Tensor,
    grad_init: &[Tensor],
    ctx: &CpuCtx,
) -> GpuRun {
    ops::testing::run_layer(gpu, op, x, params, dy, grad_init, ctx)
        .expect("layer runs on the device")
}

/// `max |a-b| / max(1, max |b|)` with a readable failure.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let err = ops::tensor::rel_max_diff(got, want);
    assert!(
        err <= tol,
        "{what}: relative error {err:e} > {tol:e}\n got  {:?}\n want {:?}",
        &got[..got.len().min(12)],
        &want[..want.len().min(12)]
    );
}
