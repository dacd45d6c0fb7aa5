//! Shared test helpers: device selection, random data, single-layer GPU runs.
#![allow(dead_code)]

use std::sync::OnceLock;

use ops::gpu::{BufferRef, KernelBuilder, LayerIo};
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

/// The backend named by `ENGINE_TEST_BACKEND` (vulkan | gl | auto, default auto).
pub fn request() -> DeviceRequest {
    let backend = match std::env::var("ENGINE_TEST_BACKEND")
        .unwrap_or_default()
        .to_lowercase()
        .as_str()
    {
        "vulkan" => BackendChoice::Vulkan,
        "gl" | "gles" | "opengl" => BackendChoice::Gl,
        _ => BackendChoice::Auto,
    };
    DeviceRequest {
        backend,
        name: None,
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

pub fn upload(gpu: &Gpu, label: &str, data: &[f32]) -> BufferRef {
    let b = gpu
        .storage_buffer(label, (data.len().max(1) * 4) as u64)
        .unwrap();
    gpu.write(&b, 0, data).expect("write");
    BufferRef::whole(&b).words(0, data.len().max(1) as u64)
}

pub fn poisoned(gpu: &Gpu, label: &str, len: usize) -> BufferRef {
    upload(gpu, label, &vec![f32::NAN; len.max(1)])
}

/// Results of one layer on the GPU.
pub struct GpuRun {
    pub y: Vec<f32>,
    pub dx: Vec<f32>,
    /// Gradient buffers after backward (initial values + computed).
    pub grads: Vec<Vec<f32>>,
    /// Parameters and buffers after forward and backward (buffers may change).
    pub params: Vec<Vec<f32>>,
}

/// Runs `op` forward then backward on the GPU with every output poisoned with NaN first
/// (gradient accumulators start at `grad_init`).
pub fn run_layer(
    gpu: &Gpu,
    op: &dyn Op,
    x: &Tensor,
    params: &[Tensor],
    dy: &Tensor,
    grad_init: &[Tensor],
    ctx: &CpuCtx,
) -> GpuRun {
    let batch = x.batch();
    let input_shape = x.sample_shape().to_vec();
    let output_shape = op.output_shape(&input_shape).unwrap();
    let out_len = batch * output_shape.iter().product::<usize>();
    let step = gpu.uniform_buffer("step", 48).expect("uniform buffer");
    let words: [u32; 12] = [
        0,
        batch as u32,
        ctx.step as u32,
        ctx.seed as u32,
        (ctx.seed >> 32) as u32,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    gpu.write(&step, 0, &words).expect("write");
    // Parameters and gradients packed at 256-byte offsets, like the model does.
    let mut offsets = Vec::new();
    let mut total = 0usize;
    for p in params {
        offsets.push(total);
        total += p.len().div_ceil(64) * 64;
    }
    let mut pflat = vec![f32::NAN; total.max(1)];
    let mut gflat = vec![f32::NAN; total.max(1)];
    for ((p, g), &o) in params.iter().zip(grad_init).zip(&offsets) {
        pflat[o..o + p.len()].copy_from_slice(&p.data);
        gflat[o..o + g.len()].copy_from_slice(&g.data);
    }
    let pbuf = upload(gpu, "params", &pflat);
    let gbuf = upload(gpu, "grads", &gflat);
    let slot = |b: &BufferRef, i: usize| BufferRef {
        buffer: b.buffer.clone(),
        offset: offsets[i] as u64 * 4,
        size: params[i].len() as u64 * 4,
    };
    let scratch_words = op.scratch_words(&input_shape, batch);
    let io = LayerIo {
        layer: ctx.layer,
        batch,
        input_shape: input_shape.clone(),
        output_shape,
        train: ctx.train,
        step: BufferRef::whole(&step),
        x: upload(gpu, "x", &x.data),
        xs: Vec::new(),
        y: poisoned(gpu, "y", out_len),
        dy: upload(gpu, "dy", &dy.data),
        dx: Some(poisoned(gpu, "dx", x.len())),
        dxs: Vec::new(),
        params: (0..params.len()).map(|i| slot(&pbuf, i)).collect(),
        grads: (0..params.len()).map(|i| slot(&gbuf, i)).collect(),
        scratch: (scratch_words > 0).then(|| poisoned(gpu, "scratch", scratch_words)),
    };
    let io = LayerIo {
        xs: vec![io.x.clone()],
        dxs: vec![io.dx.clone()],
        ..io
    };
    let mut k = KernelBuilder::new(gpu);
    let fwd = op.gpu_forward(&mut k, &io).unwrap();
    let bwd = op.gpu_backward(&mut k, &io).unwrap();
    gpu.submit_dispatches(fwd.iter()).expect("submit");
    let y = gpu.read_f32(&io.y).unwrap();
    gpu.submit_dispatches(bwd.iter()).expect("submit");
    let dx = gpu.read_f32(io.dx.as_ref().unwrap()).unwrap();
    let grads = io.grads.iter().map(|g| gpu.read_f32(g).unwrap()).collect();
    let params = io.params.iter().map(|p| gpu.read_f32(p).unwrap()).collect();
    gpu.take_error().unwrap();
    GpuRun {
        y,
        dx,
        grads,
        params,
    }
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
