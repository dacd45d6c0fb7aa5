//! Adapter selection, the device, buffer helpers and counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::error::GpuError;
use super::kernel::{Buffer, BufferRef, Dispatch, encode_dispatches};

/// Offsets of tensors packed into one buffer are multiples of this (bytes); it satisfies
/// `min_storage_buffer_offset_alignment` on every adapter we know of (checked at start).
pub const STORAGE_ALIGN_BYTES: u64 = 256;

/// Which graphics API to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// Vulkan when an adapter exists, else GL.
    #[default]
    Auto,
    /// Vulkan only (lavapipe on a machine without a GPU).
    Vulkan,
    /// OpenGL ES only (llvmpipe through EGL on a machine without a GPU).
    Gl,
}

/// What device to open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceRequest {
    /// Graphics API.
    pub backend: BackendChoice,
    /// Case-insensitive substring of the adapter name.
    pub name: Option<String>,
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
}

impl AdapterSummary {
    /// Whether the adapter runs on the CPU (lavapipe, llvmpipe): kernels are tuned
    /// differently there (loads, not arithmetic, are the cost).
    pub fn is_cpu(&self) -> bool {
        self.device_type == format!("{:?}", wgpu::DeviceType::Cpu)
    }

    /// Subgroup size when kernels should share loaded values through `subgroupBroadcast`:
    /// on CPU adapters with fixed 8-wide subgroups (lavapipe) a subgroup is one SIMD
    /// vector, loads are issued lane by lane and a broadcast is a register shuffle.
    pub fn broadcast_lanes(&self) -> Option<usize> {
        (self.is_cpu() && self.subgroup_size == Some(8)).then_some(8)
    }
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

/// An open device and queue, with the pipeline cache and counters.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    summary: AdapterSummary,
    counters: CounterCells,
    pub(crate) pipelines: Mutex<HashMap<(String, String), wgpu::ComputePipeline>>,
    errors: Arc<Mutex<Vec<String>>>,
    /// Labels of the buffers allocated here, for describing dispatches (plan time only).
    labels: Mutex<HashMap<Buffer, String>>,
    /// Whether submitted steps are recorded (tests compare them with the plan's list).
    recording: std::sync::atomic::AtomicBool,
    recorded: Mutex<Vec<(&'static str, Vec<super::kernel::DispatchInfo>)>>,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::GL;
    wgpu::Instance::new(desc)
}

fn summarize(adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let limits = adapter.limits();
    AdapterSummary {
        name: info.name,
        backend: format!("{:?}", info.backend).to_lowercase(),
        device_type: format!("{:?}", info.device_type),
        max_buffer_size: limits.max_buffer_size,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_compute_workgroup_size_x: limits.max_compute_workgroup_size_x,
        max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        subgroup_size: (adapter.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == info.subgroup_max_size)
            .then_some(info.subgroup_min_size),
    }
}

fn adapters() -> Vec<wgpu::Adapter> {
    pollster::block_on(instance().enumerate_adapters(wgpu::Backends::VULKAN | wgpu::Backends::GL))
}

/// Every adapter wgpu can see on the Vulkan and GL backends.
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters().iter().map(summarize).collect()
}

fn backend_matches(choice: BackendChoice, backend: wgpu::Backend) -> bool {
    match choice {
        BackendChoice::Auto => matches!(backend, wgpu::Backend::Vulkan | wgpu::Backend::Gl),
        BackendChoice::Vulkan => backend == wgpu::Backend::Vulkan,
        BackendChoice::Gl => backend == wgpu::Backend::Gl,
    }
}

fn pick_adapter(req: &DeviceRequest) -> Result<wgpu::Adapter, GpuError> {
    let all = adapters();
    if all.is_empty() {
        return Err(GpuError::NoAdapter);
    }
    let wanted = req.name.as_ref().map(|n| n.to_lowercase());
    let mut candidates: Vec<&wgpu::Adapter> = all
        .iter()
        .filter(|a| {
            let info = a.get_info();
            backend_matches(req.backend, info.backend)
                && wanted
                    .as_ref()
                    .is_none_or(|w| info.name.to_lowercase().contains(w))
        })
        .collect();
    // Vulkan before GL; real GPUs before CPU adapters; then by name for a stable choice.
    candidates.sort_by_key(|a| {
        let info = a.get_info();
        (
            info.backend != wgpu::Backend::Vulkan,
            info.device_type == wgpu::DeviceType::Cpu,
            info.name.clone(),
        )
    });
    match candidates.first() {
        Some(a) => Ok((*a).clone()),
        None => Err(GpuError::NoMatchingAdapter {
            backend: format!("{:?}", req.backend).to_lowercase(),
            wanted: req.name.clone(),
            available: all
                .iter()
                .map(|a| {
                    let i = a.get_info();
                    format!("{} ({:?})", i.name, i.backend)
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl Gpu {
    /// Opens the adapter `req` describes.
    pub fn new(req: &DeviceRequest) -> Result<Gpu, GpuError> {
        let adapter = pick_adapter(req)?;
        let summary = summarize(&adapter);
        let limits = adapter.limits();
        if limits.min_storage_buffer_offset_alignment as u64 > STORAGE_ALIGN_BYTES {
            return Err(GpuError::RequestDevice {
                adapter: summary.name,
                message: format!(
                    "storage buffer offsets must be aligned to {} bytes; this engine packs tensors at {STORAGE_ALIGN_BYTES}",
                    limits.min_storage_buffer_offset_alignment
                ),
            });
        }
        let desc = wgpu::DeviceDescriptor {
            label: Some("engine"),
            required_features: if summary.subgroup_size.is_some() {
                wgpu::Features::SUBGROUP
            } else {
                wgpu::Features::empty()
            },
            required_limits: limits,
            experimental_features: wgpu::ExperimentalFeatures::default(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            GpuError::RequestDevice {
                adapter: summary.name.clone(),
                message: e.to_string(),
            }
        })?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(Gpu {
            device,
            queue,
            summary,
            counters: CounterCells::default(),
            pipelines: Mutex::default(),
            errors,
            labels: Mutex::default(),
            recording: std::sync::atomic::AtomicBool::new(false),
            recorded: Mutex::default(),
        })
    }

    /// The opened adapter.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
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

    pub(crate) fn count_pipeline(&self) {
        self.counters
            .pipelines_compiled
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Returns the first uncaptured wgpu error since the last call, if any.
    pub fn take_error(&self) -> Result<(), GpuError> {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            Ok(())
        } else {
            let all = errors.join("; ");
            errors.clear();
            Err(GpuError::Validation(all))
        }
    }

    /// A storage buffer of `bytes` (rounded up to 16) usable as copy source and destination.
    pub fn storage_buffer(&self, label: &str, bytes: u64) -> Result<Buffer, GpuError> {
        let size = bytes.max(16).div_ceil(16) * 16;
        if size > self.summary.max_buffer_size {
            return Err(GpuError::TooLarge {
                what: label.to_string(),
                needed: size,
                limit: self.summary.max_buffer_size,
            });
        }
        self.counters.allocations.fetch_add(1, Ordering::Relaxed);
        let buffer = Buffer(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }));
        self.label(&buffer, label);
        Ok(buffer)
    }

    /// A uniform buffer of `bytes` (rounded up to 16) written with `queue.write_buffer`.
    pub fn uniform_buffer(&self, label: &str, bytes: u64) -> Buffer {
        self.counters.allocations.fetch_add(1, Ordering::Relaxed);
        let buffer = Buffer(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).div_ceil(16) * 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }));
        self.label(&buffer, label);
        buffer
    }

    fn label(&self, buffer: &Buffer, label: &str) {
        self.labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(buffer.clone(), label.to_string());
    }

    /// The label a buffer was allocated with.
    pub(crate) fn label_of(&self, buffer: &Buffer) -> String {
        self.labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(buffer)
            .cloned()
            .unwrap_or_else(|| "?".into())
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
    pub(crate) fn push_recorded(
        &self,
        what: &'static str,
        dispatches: Vec<super::kernel::DispatchInfo>,
    ) {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((what, dispatches));
    }

    /// The submissions recorded so far, each what it was and its dispatches; clears the
    /// record.
    pub fn take_recorded(&self) -> Vec<(&'static str, Vec<super::kernel::DispatchInfo>)> {
        std::mem::take(&mut *self.recorded.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A host-readable staging buffer.
    pub fn readback_buffer(&self, label: &str, bytes: u64) -> Buffer {
        self.counters.allocations.fetch_add(1, Ordering::Relaxed);
        Buffer(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).div_ceil(16) * 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// Queues a write of `data` at byte `offset` (lands before the next submission).
    pub fn write<T: bytemuck::Pod>(&self, buffer: &Buffer, offset: u64, data: &[T]) {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.is_empty() {
            return;
        }
        if bytes.len().is_multiple_of(4) {
            self.queue.write_buffer(&buffer.0, offset, bytes);
        }
    }

    /// Encodes `dispatches` in order into one command buffer and submits it: the whole of
    /// a training step or an eval batch.
    pub fn submit_dispatches<'a>(&self, dispatches: impl IntoIterator<Item = &'a Dispatch>) {
        let mut encoder = self.encoder();
        encode_dispatches(&mut encoder, dispatches);
        self.submit(encoder.finish());
    }

    /// Submits one command buffer.
    pub(crate) fn submit(&self, commands: wgpu::CommandBuffer) {
        self.counters.submissions.fetch_add(1, Ordering::Relaxed);
        self.queue.submit(std::iter::once(commands));
    }

    /// Blocks until all submitted work has finished (profiling only; steps never wait).
    pub fn wait_idle(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Validation(e.to_string()))?;
        self.take_error()
    }

    /// A fresh command encoder.
    pub(crate) fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    /// Copies `src` into `staging` (which must be at least as large) in one submission,
    /// waits, and returns the bytes. Counts one submission and one read-back.
    pub fn read_bytes(
        &self,
        src: &BufferRef,
        staging: &Buffer,
        what: &str,
    ) -> Result<Vec<u8>, GpuError> {
        let mut encoder = self.encoder();
        encoder.copy_buffer_to_buffer(&src.buffer.0, src.offset, &staging.0, 0, src.size);
        self.submit(encoder.finish());
        self.counters.readbacks.fetch_add(1, Ordering::Relaxed);
        let slice = staging.0.slice(0..src.size);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let fail = |message: String| GpuError::Readback {
            what: what.to_string(),
            message,
        };
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| fail(e.to_string()))?;
        rx.recv()
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
        let bytes = {
            let view = slice.get_mapped_range().map_err(|e| fail(e.to_string()))?;
            view.to_vec()
        };
        staging.0.unmap();
        self.take_error()?;
        Ok(bytes)
    }

    /// Reads `src` as `f32`s through a temporary staging buffer (tests, checkpoints).
    pub fn read_f32(&self, src: &BufferRef) -> Result<Vec<f32>, GpuError> {
        let staging = self.readback_buffer("readback", src.size);
        let bytes = self.read_bytes(src, &staging, "buffer")?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads `src` as `u32`s through a temporary staging buffer.
    pub fn read_u32(&self, src: &BufferRef) -> Result<Vec<u32>, GpuError> {
        let staging = self.readback_buffer("readback", src.size);
        let bytes = self.read_bytes(src, &staging, "buffer")?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}
