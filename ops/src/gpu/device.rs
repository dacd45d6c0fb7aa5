//! The device-neutral front over one [`Backend`]: buffer helpers with labels, the kernel
//! cache, counters and dispatch recording.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::backend::{Backend, BufferUsage, Handle, KernelSource};
use super::error::GpuError;
use super::kernel::{Buffer, BufferRef, Dispatch, DispatchInfo};

/// Offsets of tensors packed into one buffer are multiples of this (bytes); it satisfies
/// `min_storage_buffer_offset_alignment` on every adapter we know of (checked at start).
pub const STORAGE_ALIGN_BYTES: u64 = 256;

/// Which graphics API to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The fastest device there is: a GPU through Vulkan (else GL); on machines whose
    /// only adapters are Mesa's software ones (or none), the cpu backend, 2-6x faster
    /// than lavapipe on the benchmarks (docs/performance.md), unless the plan needs f16
    /// shaders and an adapter has them.
    #[default]
    Auto,
    /// Vulkan only (lavapipe on a machine without a GPU).
    Vulkan,
    /// OpenGL ES only (llvmpipe through EGL on a machine without a GPU).
    Gl,
    /// The native CPU backend (no wgpu: kernels run as native code on rayon's threads).
    Cpu,
}

/// What device to open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceRequest {
    /// Graphics API.
    pub backend: BackendChoice,
    /// Case-insensitive substring of the adapter name.
    pub name: Option<String>,
    /// Among the matching adapters that are equally preferred (the best backend and
    /// device type), the `nth` modulo their count: a data-parallel job passes each
    /// rank's index on its host, so its ranks spread over the host's GPUs.
    pub nth: usize,
    /// The plan computes in f16 (`precision: f16`): `auto` then prefers an adapter with
    /// f16 shaders over the cpu backend, which has none.
    pub needs_f16: bool,
    /// Some kernels have only a WGSL form (a binary's own layers, losses or optimizers):
    /// `auto` then stays on wgpu, where they run.
    pub needs_wgsl: bool,
}

/// What an adapter is and what it allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_compute_workgroup_size_x: u32,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroups_per_dimension: u32,
    /// Invocations per subgroup when the adapter supports WGSL subgroup operations and
    /// runs them at one fixed size (lavapipe: 8, its SIMD width).
    pub subgroup_size: Option<u32>,
    /// Whether kernels may use 16-bit floats (`enable f16;`, WebGPU's `shader-f16`):
    /// Vulkan adapters with `shaderFloat16` and 16-bit storage (lavapipe has both).
    pub shader_f16: bool,
}

impl AdapterSummary {
    /// Whether the adapter runs on the CPU (lavapipe, llvmpipe): kernels are tuned
    /// differently there (loads, not arithmetic, are the cost).
    pub fn is_cpu(&self) -> bool {
        self.device_type == "Cpu"
    }

    /// Whether this is the native cpu backend (no WGSL runs; ops may pick kernels that
    /// suit native code, such as im2col + GEMM convolutions).
    pub fn is_native(&self) -> bool {
        self.backend == "cpu"
    }

    /// Subgroup size when kernels should share loaded values through `subgroupBroadcast`:
    /// on CPU adapters with fixed 8-wide subgroups (lavapipe) a subgroup is one SIMD
    /// vector, loads are issued lane by lane and a broadcast is a register shuffle.
    pub fn broadcast_lanes(&self) -> Option<usize> {
        (self.is_cpu() && self.subgroup_size == Some(8)).then_some(8)
    }
}

/// Whether `auto` opens the cpu backend for `req`: no adapter name asked for, every kernel
/// native, no GPU among wgpu's adapters, and f16 either not needed or not offered by any.
fn auto_is_cpu(req: &DeviceRequest) -> bool {
    if req.name.is_some() || req.needs_wgsl {
        return false;
    }
    let adapters = super::wgpu::list_wgpu_adapters();
    let gpu = adapters.iter().any(|a| !a.is_cpu());
    let f16 = adapters.iter().any(|a| a.shader_f16);
    !(gpu || req.needs_f16 && f16)
}

/// Every device the engine can open: the adapters wgpu sees on Vulkan and GL, then the
/// native cpu backend (always there).
pub fn list_adapters() -> Vec<AdapterSummary> {
    let mut all = super::wgpu::list_wgpu_adapters();
    all.push(super::cpu::cpu_summary());
    all
}

/// How much work reached the device. A steady-state training step does exactly one
/// submission, no read-back and no allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub submissions: u64,
    pub readbacks: u64,
    pub allocations: u64,
    pub pipelines_compiled: u64,
}

#[derive(Default)]
struct CounterCells {
    submissions: AtomicU64,
    readbacks: AtomicU64,
    allocations: AtomicU64,
    pipelines_compiled: AtomicU64,
}

/// An open device: one [`Backend`] with the kernel cache, counters, buffer labels and the
/// dispatch recorder every backend shares.
pub struct Gpu {
    backend: Box<dyn Backend>,
    counters: CounterCells,
    next_buffer: AtomicU64,
    /// Compiled kernels by name and specialisation.
    kernels: Mutex<HashMap<(String, String), Handle>>,
    /// Labels of the buffers allocated here, for describing dispatches (plan time only).
    labels: Mutex<HashMap<u64, String>>,
    /// Whether submitted steps are recorded (tests compare them with the plan's list).
    recording: AtomicBool,
    recorded: Mutex<Vec<(&'static str, Vec<DispatchInfo>)>>,
}

impl Gpu {
    /// Opens the device `req` describes: a wgpu adapter, or the native CPU backend.
    pub fn new(req: &DeviceRequest) -> Result<Gpu, GpuError> {
        if req.backend == BackendChoice::Cpu
            || (req.backend == BackendChoice::Auto && auto_is_cpu(req))
        {
            return Ok(Gpu::with_backend(Box::new(super::cpu::CpuBackend::open(
                crate::native::TABLES,
            ))));
        }
        Ok(Gpu::with_backend(Box::new(super::wgpu::WgpuBackend::open(
            req,
        )?)))
    }

    /// A front over any backend.
    pub fn with_backend(backend: Box<dyn Backend>) -> Gpu {
        Gpu {
            backend,
            counters: CounterCells::default(),
            next_buffer: AtomicU64::new(0),
            kernels: Mutex::default(),
            labels: Mutex::default(),
            recording: AtomicBool::new(false),
            recorded: Mutex::default(),
        }
    }

    /// The opened adapter.
    pub fn adapter(&self) -> &AdapterSummary {
        self.backend.summary()
    }

    /// A snapshot of the work counters.
    pub fn counters(&self) -> Counters {
        let c = &self.counters;
        Counters {
            submissions: c.submissions.load(Ordering::Relaxed),
            readbacks: c.readbacks.load(Ordering::Relaxed),
            allocations: c.allocations.load(Ordering::Relaxed),
            pipelines_compiled: c.pipelines_compiled.load(Ordering::Relaxed),
        }
    }

    /// Returns the first asynchronous device error since the last call, if any.
    pub fn take_error(&self) -> Result<(), GpuError> {
        self.backend.take_error()
    }

    fn allocate(&self, label: &str, bytes: u64, usage: BufferUsage) -> Result<Buffer, GpuError> {
        let size = bytes.max(16).div_ceil(16) * 16;
        let limit = self.adapter().max_buffer_size;
        if size > limit {
            return Err(GpuError::TooLarge {
                what: label.to_string(),
                needed: size,
                limit,
            });
        }
        let handle = self.backend.allocate(label, size, usage)?;
        self.counters.allocations.fetch_add(1, Ordering::Relaxed);
        let id = self.next_buffer.fetch_add(1, Ordering::Relaxed);
        self.labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, label.to_string());
        Ok(Buffer::new(id, size, handle))
    }

    /// A storage buffer of `bytes` (rounded up to 16) usable as copy source and destination.
    pub fn storage_buffer(&self, label: &str, bytes: u64) -> Result<Buffer, GpuError> {
        self.allocate(label, bytes, BufferUsage::Storage)
    }

    /// A uniform buffer of `bytes` (rounded up to 16) written with [`Gpu::write`].
    pub fn uniform_buffer(&self, label: &str, bytes: u64) -> Result<Buffer, GpuError> {
        self.allocate(label, bytes, BufferUsage::Uniform)
    }

    /// A host-readable staging buffer.
    pub fn readback_buffer(&self, label: &str, bytes: u64) -> Result<Buffer, GpuError> {
        self.allocate(label, bytes, BufferUsage::Readback)
    }

    /// The label a buffer was allocated with.
    pub(crate) fn label_of(&self, buffer: &Buffer) -> String {
        self.labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&buffer.id())
            .cloned()
            .unwrap_or_else(|| "?".into())
    }

    /// The compiled kernel for `source`, compiling it on first use.
    pub(crate) fn kernel(
        &self,
        source: &KernelSource<'_>,
        spec: String,
    ) -> Result<Handle, GpuError> {
        let key = (source.name.to_string(), spec);
        let mut cache = self.kernels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache.get(&key) {
            return Ok(k.clone());
        }
        // Kernel development: `OPS_DUMP_WGSL=DIR` writes every specialised kernel's source,
        // numbered in build order (see `ops/examples/compile_time.rs`). Best effort.
        if let Ok(dir) = std::env::var("OPS_DUMP_WGSL") {
            let n = cache.len();
            let _ = std::fs::write(format!("{dir}/{n:02}_{}.wgsl", source.name), source.wgsl);
        }
        let kernel = self.backend.compile(source)?;
        self.counters
            .pipelines_compiled
            .fetch_add(1, Ordering::Relaxed);
        cache.insert(key, kernel.clone());
        Ok(kernel)
    }

    /// Binds buffers to a compiled kernel (see [`Backend::bind`]).
    pub(crate) fn bind(
        &self,
        kernel: &Handle,
        name: &str,
        bindings: &[&BufferRef],
        workgroups: [u32; 3],
    ) -> Result<Handle, GpuError> {
        self.backend.bind(kernel, name, bindings, workgroups)
    }

    /// Starts (or stops) recording the dispatches of every step and eval submitted.
    pub fn record_dispatches(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Whether submissions are being recorded.
    pub fn is_recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    /// Records one submission's dispatches, `what` it was (`train`, `eval`; see
    /// [`Gpu::record_dispatches`]).
    pub(crate) fn push_recorded(&self, what: &'static str, dispatches: Vec<DispatchInfo>) {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((what, dispatches));
    }

    /// The submissions recorded so far, each what it was and its dispatches; clears the
    /// record.
    pub fn take_recorded(&self) -> Vec<(&'static str, Vec<DispatchInfo>)> {
        std::mem::take(&mut *self.recorded.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Queues a write of `data` at byte `offset` (lands before the next submission). The
    /// data's size must be a multiple of 4 bytes (every tensor and uniform here is).
    pub fn write<T: bytemuck::Pod>(
        &self,
        buffer: &Buffer,
        offset: u64,
        data: &[T],
    ) -> Result<(), GpuError> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.is_empty() {
            return Ok(());
        }
        if !bytes.len().is_multiple_of(4) || offset + bytes.len() as u64 > buffer.size() {
            return Err(GpuError::Validation(format!(
                "a write of {} bytes at {offset} into {} ({} bytes) is not whole words inside the buffer",
                bytes.len(),
                self.label_of(buffer),
                buffer.size()
            )));
        }
        self.backend.upload(buffer, offset, bytes)
    }

    /// Runs `dispatches` in order as one submission: the whole of a training step or an
    /// eval batch.
    pub fn submit_dispatches<'a>(
        &self,
        dispatches: impl IntoIterator<Item = &'a Dispatch>,
    ) -> Result<(), GpuError> {
        self.backend.submit(&mut dispatches.into_iter())?;
        self.counters.submissions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Blocks until all submitted work has finished (profiling only; steps never wait).
    pub fn wait_idle(&self) -> Result<(), GpuError> {
        self.backend.wait_idle()?;
        self.take_error()
    }

    /// Copies `src` into `staging` (which must be at least as large) in one submission,
    /// waits, and returns the bytes. Counts one submission and one read-back.
    pub fn read_bytes(
        &self,
        src: &BufferRef,
        staging: &Buffer,
        what: &str,
    ) -> Result<Vec<u8>, GpuError> {
        if staging.size() < src.size {
            return Err(GpuError::Readback {
                what: what.to_string(),
                message: format!(
                    "{} bytes do not fit the {}-byte staging buffer",
                    src.size,
                    staging.size()
                ),
            });
        }
        self.counters.submissions.fetch_add(1, Ordering::Relaxed);
        self.counters.readbacks.fetch_add(1, Ordering::Relaxed);
        let bytes = self.backend.read_back(src, staging).map_err(|e| match e {
            GpuError::Readback { message, .. } => GpuError::Readback {
                what: what.to_string(),
                message,
            },
            e => e,
        })?;
        self.take_error()?;
        Ok(bytes)
    }

    /// Reads `src` as `f32`s through a temporary staging buffer (tests, checkpoints).
    pub fn read_f32(&self, src: &BufferRef) -> Result<Vec<f32>, GpuError> {
        let staging = self.readback_buffer("readback", src.size)?;
        let bytes = self.read_bytes(src, &staging, "buffer")?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads `src` as `u32`s through a temporary staging buffer.
    pub fn read_u32(&self, src: &BufferRef) -> Result<Vec<u32>, GpuError> {
        let staging = self.readback_buffer("readback", src.size)?;
        let bytes = self.read_bytes(src, &staging, "buffer")?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}
