//! The wgpu backend (Vulkan and GL): adapter selection, the device and queue, buffers,
//! pipelines, bind groups and command encoding. The only file of the crate that names wgpu.

use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use super::backend::{Backend, BufferUsage, Handle, KernelSource, foreign};
use super::device::{AdapterSummary, BackendChoice, DeviceRequest, STORAGE_ALIGN_BYTES};
use super::error::GpuError;
use super::kernel::{Buffer, BufferRef, Dispatch, Work};

/// A compute pipeline with its buffers bound: one dispatch, replayed every step.
struct Bound {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
}

/// An open wgpu device and queue.
pub(crate) struct WgpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    summary: AdapterSummary,
    errors: Arc<Mutex<Vec<String>>>,
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
        shader_f16: adapter.features().contains(wgpu::Features::SHADER_F16),
    }
}

fn adapters() -> Vec<wgpu::Adapter> {
    pollster::block_on(instance().enumerate_adapters(wgpu::Backends::VULKAN | wgpu::Backends::GL))
}

/// Every adapter wgpu can see on the Vulkan and GL backends.
pub(crate) fn list_wgpu_adapters() -> Vec<AdapterSummary> {
    adapters().iter().map(summarize).collect()
}

fn backend_matches(choice: BackendChoice, backend: wgpu::Backend) -> bool {
    match choice {
        BackendChoice::Auto => matches!(backend, wgpu::Backend::Vulkan | wgpu::Backend::Gl),
        BackendChoice::Vulkan => backend == wgpu::Backend::Vulkan,
        BackendChoice::Gl => backend == wgpu::Backend::Gl,
        BackendChoice::Cpu => false,
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
    let kind = |a: &wgpu::Adapter| {
        let info = a.get_info();
        (info.backend, info.device_type)
    };
    let best: Vec<&wgpu::Adapter> = candidates
        .iter()
        .copied()
        .filter(|a| candidates.first().is_some_and(|f| kind(a) == kind(f)))
        .collect();
    match best.get(req.nth % best.len().max(1)) {
        Some(a) => Ok((*a).clone()),
        None => Err(GpuError::NoMatchingAdapter {
            backend: match req.backend {
                BackendChoice::Auto => String::new(),
                b => format!(" {b:?}").to_lowercase(),
            },
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

fn buffer(b: &Buffer) -> Result<&wgpu::Buffer, GpuError> {
    b.handle()
        .get::<wgpu::Buffer>()
        .ok_or_else(|| foreign("a buffer"))
}

impl WgpuBackend {
    /// Opens the adapter `req` describes.
    pub(crate) fn open(req: &DeviceRequest) -> Result<WgpuBackend, GpuError> {
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
            // Only what the adapter has: a kernel that needs more is refused when built.
            required_features: {
                let mut features = wgpu::Features::empty();
                features.set(wgpu::Features::SUBGROUP, summary.subgroup_size.is_some());
                features.set(wgpu::Features::SHADER_F16, summary.shader_f16);
                features
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
                v.push(with_sources(&e));
            }
        }));
        Ok(WgpuBackend {
            device,
            queue,
            summary,
            errors,
        })
    }
}

impl Backend for WgpuBackend {
    fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    fn allocate(&self, label: &str, bytes: u64, usage: BufferUsage) -> Result<Handle, GpuError> {
        let usage = match usage {
            BufferUsage::Storage => {
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST
            }
            BufferUsage::Uniform => wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            BufferUsage::Readback => wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        };
        Ok(Handle::new(self.device.create_buffer(
            &wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            },
        )))
    }

    fn upload(&self, dst: &Buffer, offset: u64, bytes: &[u8]) -> Result<(), GpuError> {
        self.queue.write_buffer(buffer(dst)?, offset, bytes);
        Ok(())
    }

    fn compile(&self, source: &KernelSource<'_>) -> Result<Handle, GpuError> {
        let device = &self.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(source.name),
            source: wgpu::ShaderSource::Wgsl(source.wgsl.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(source.name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Shader {
                kernel: source.name.to_string(),
                message: e.to_string(),
            });
        }
        Ok(Handle::new(pipeline))
    }

    fn bind(
        &self,
        kernel: &Handle,
        name: &str,
        bindings: &[&BufferRef],
        _workgroups: [u32; 3],
    ) -> Result<Handle, GpuError> {
        let pipeline = kernel
            .get::<wgpu::ComputePipeline>()
            .ok_or_else(|| foreign(&format!("kernel {name}")))?;
        let entries = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| {
                Ok(wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: buffer(&b.buffer)?,
                        offset: b.offset,
                        size: NonZeroU64::new(b.size.max(4)),
                    }),
                })
            })
            .collect::<Result<Vec<_>, GpuError>>()?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(name),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Validation(format!(
                "binding kernel {name}: {}",
                with_sources(&e)
            )));
        }
        Ok(Handle::new(Bound {
            pipeline: pipeline.clone(),
            bind_group,
        }))
    }

    /// Consecutive compute dispatches share one compute pass (wgpu inserts the barriers
    /// between dependent dispatches); a copy ends the pass.
    fn submit(&self, dispatches: &mut dyn Iterator<Item = &Dispatch>) -> Result<(), GpuError> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass: Option<wgpu::ComputePass<'_>> = None;
            for d in dispatches {
                match d.work() {
                    Work::Compute { bound, workgroups } => {
                        let bound = bound
                            .get::<Bound>()
                            .ok_or_else(|| foreign(&format!("dispatch {}", d.kernel)))?;
                        let p = pass.get_or_insert_with(|| {
                            encoder
                                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                                    label: None,
                                    timestamp_writes: None,
                                })
                                .forget_lifetime()
                        });
                        p.set_pipeline(&bound.pipeline);
                        p.set_bind_group(0, &bound.bind_group, &[]);
                        p.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
                    }
                    Work::Copy { src, dst } => {
                        pass = None;
                        encoder.copy_buffer_to_buffer(
                            buffer(&src.buffer)?,
                            src.offset,
                            buffer(&dst.buffer)?,
                            dst.offset,
                            src.size,
                        );
                    }
                }
            }
        }
        self.queue.submit(std::iter::once(encoder.finish()));
        Ok(())
    }

    fn read_back(&self, src: &BufferRef, staging: &Buffer) -> Result<Vec<u8>, GpuError> {
        let staging = buffer(staging)?;
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        encoder.copy_buffer_to_buffer(buffer(&src.buffer)?, src.offset, staging, 0, src.size);
        self.queue.submit(std::iter::once(encoder.finish()));
        let slice = staging.slice(0..src.size);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let fail = |message: String| GpuError::Readback {
            what: String::new(),
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
        staging.unmap();
        Ok(bytes)
    }

    fn wait_idle(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Validation(e.to_string()))?;
        Ok(())
    }

    fn take_error(&self) -> Result<(), GpuError> {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            Ok(())
        } else {
            let all = errors.join("; ");
            errors.clear();
            Err(GpuError::Validation(all))
        }
    }
}

/// An error with what it is about: wgpu's own `Display` says only "Validation Error"; its
/// description says what (e.g. a kernel declaring fewer bindings than it is given).
fn with_sources(e: &wgpu::Error) -> String {
    match e {
        wgpu::Error::Validation { description, .. } => description.trim().to_string(),
        other => other.to_string(),
    }
}
