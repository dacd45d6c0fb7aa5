//! Running one op alone on the device, as the tests of every op do: its kernels against
//! its CPU reference, with every output poisoned (NaN) first so that a value a kernel
//! does not write is seen. For ops defined outside this crate as much as for its own.

use crate::gpu::{BufferRef, GpuError, KernelBuilder, LayerIo};
use crate::{CpuCtx, Gpu, Op, Tensor};

/// A storage buffer holding `data`.
pub fn upload(gpu: &Gpu, label: &str, data: &[f32]) -> Result<BufferRef, GpuError> {
    let b = gpu.storage_buffer(label, (data.len().max(1) * 4) as u64)?;
    gpu.write(&b, 0, data)?;
    Ok(BufferRef::whole(&b).words(0, data.len().max(1) as u64))
}

/// A storage buffer of `len` NaNs: what a kernel does not write stays NaN.
pub fn poisoned(gpu: &Gpu, label: &str, len: usize) -> Result<BufferRef, GpuError> {
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
) -> Result<GpuRun, GpuError> {
    let batch = x.batch();
    let input_shape = x.sample_shape().to_vec();
    let output_shape = op
        .output_shape(&input_shape)
        .map_err(|e| GpuError::InvalidModel(e.to_string()))?;
    let out_len = batch * output_shape.iter().product::<usize>();
    let step = gpu.uniform_buffer("step", 48)?;
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
    gpu.write(&step, 0, &words)?;
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
    let pbuf = upload(gpu, "params", &pflat)?;
    let gbuf = upload(gpu, "grads", &gflat)?;
    let slot = |b: &BufferRef, i: usize| BufferRef {
        buffer: b.buffer.clone(),
        offset: offsets[i] as u64 * 4,
        size: params[i].len() as u64 * 4,
        elem: crate::gpu::Elem::F32,
    };
    let scratch_words = op.scratch_words_on(gpu.adapter(), &input_shape, batch);
    let io = LayerIo {
        layer: ctx.layer,
        batch,
        input_shape: input_shape.clone(),
        output_shape,
        train: ctx.train,
        step: BufferRef::whole(&step),
        x: upload(gpu, "x", &x.data)?,
        xs: Vec::new(),
        y: poisoned(gpu, "y", out_len)?,
        dy: upload(gpu, "dy", &dy.data)?,
        dx: Some(poisoned(gpu, "dx", x.len())?),
        dxs: Vec::new(),
        params: (0..params.len()).map(|i| slot(&pbuf, i)).collect(),
        grads: (0..params.len()).map(|i| slot(&gbuf, i)).collect(),
        scratch: if scratch_words > 0 {
            Some(poisoned(gpu, "scratch", scratch_words)?)
        } else {
            None
        },
    };
    let io = LayerIo {
        xs: vec![io.x.clone()],
        dxs: vec![io.dx.clone()],
        ..io
    };
    let mut k = KernelBuilder::new(gpu);
    let fwd = op.gpu_forward(&mut k, &io)?;
    let bwd = op.gpu_backward(&mut k, &io)?;
    gpu.submit_dispatches(fwd.iter())?;
    let y = gpu.read_f32(&io.y)?;
    gpu.submit_dispatches(bwd.iter())?;
    let dx = match &io.dx {
        Some(dx) => gpu.read_f32(dx)?,
        None => Vec::new(),
    };
    let grads = io
        .grads
        .iter()
        .map(|g| gpu.read_f32(g))
        .collect::<Result<_, _>>()?;
    let params = io
        .params
        .iter()
        .map(|p| gpu.read_f32(p))
        .collect::<Result<_, _>>()?;
    gpu.take_error()?;
    Ok(GpuRun {
        y,
        dx,
        grads,
        params,
    })
}

/// What one fused optimizer update left on the device (see [`run_optimizer`]).
pub struct OptimizerRun {
    pub params: Vec<f32>,
    pub state: Vec<f32>,
    /// The gradients after the update (the kernel zeroes them).
    pub grads: Vec<f32>,
}

/// Runs one update of `optimizer` on the device over packed `params` (a multiple of 4
/// long), with `grads` as the mean, clipped gradient the CPU reference takes, `state`
/// laid out as its `state_names()` slots one after the other, learning rate `lr` and
/// update count `t` (1-based), and reads everything back. The device sees the gradient
/// as the engine hands it over: a sum (`grads * 8`) with `S.grad_scale = 0.25` and a
/// clipping factor `scalars[0] = 0.5` (powers of two: the product is exact), so a kernel
/// that skips either is caught.
pub fn run_optimizer(
    gpu: &Gpu,
    optimizer: &crate::optim::OptimizerKind,
    params: &[f32],
    grads: &[f32],
    state: &[f32],
    lr: f32,
    t: u64,
) -> Result<OptimizerRun, GpuError> {
    let len = params.len();
    let (bc1, bc2) = optimizer.bias_corrections(t);
    let uniform = crate::train::StepUniform {
        lr,
        rows: 1,
        grad_scale: 0.25,
        bias_correction1: bc1,
        bias_correction2: bc2,
        opt_t: t as u32,
        ..Default::default()
    };
    let step = gpu.uniform_buffer(
        "step",
        std::mem::size_of::<crate::train::StepUniform>() as u64,
    )?;
    gpu.write(&step, 0, &[uniform])?;
    let scalars = upload(gpu, "scalars", &[0.5, 0.0, 0.0, 0.0])?;
    let p = upload(gpu, "params", params)?;
    let sums: Vec<f32> = grads.iter().map(|g| g * 8.0).collect();
    let g = upload(gpu, "grads", &sums)?;
    let s = if state.is_empty() {
        None
    } else {
        Some(upload(gpu, "state", state)?)
    };
    let mut k = KernelBuilder::new(gpu);
    let dispatch = optimizer.dispatch(
        &mut k,
        &BufferRef::whole(&step),
        &scalars,
        &g,
        s.as_ref(),
        &p,
        len,
    )?;
    gpu.submit_dispatches([&dispatch])?;
    Ok(OptimizerRun {
        params: gpu.read_f32(&p)?,
        state: match &s {
            Some(s) => gpu.read_f32(s)?,
            None => Vec::new(),
        },
        grads: gpu.read_f32(&g)?,
    })
}
