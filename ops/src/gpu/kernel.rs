//! Kernels: WGSL assembly and specialisation, the pipeline cache, pre-built dispatches.

use std::num::NonZeroU64;

use super::device::Gpu;
use super::error::GpuError;

/// Shared WGSL prepended to every kernel: the per-step uniform layout and the hash RNG.
pub const COMMON_WGSL: &str = include_str!("../../../shaders/common.wgsl");

/// Invocations per workgroup of one-dimensional kernels.
pub const WG_1D: u32 = 64;

/// Most workgroups a one-dimensional kernel launches; kernels loop with a grid stride.
const MAX_GROUPS_1D: u32 = 4096;

/// A device buffer. Only `ops::gpu` sees the wgpu buffer inside; the rest of the crate
/// and the engine hold this handle (cheap to clone: it is reference counted).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Buffer(pub(crate) wgpu::Buffer);

impl Buffer {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.0.size()
    }
}

/// A byte range of a buffer.
#[derive(Clone, Debug)]
pub struct BufferRef {
    pub buffer: Buffer,
    /// Byte offset (a multiple of [`super::STORAGE_ALIGN_BYTES`] for storage bindings).
    pub offset: u64,
    /// Byte length.
    pub size: u64,
}

impl BufferRef {
    /// The whole buffer.
    pub fn whole(buffer: &Buffer) -> BufferRef {
        BufferRef {
            buffer: buffer.clone(),
            offset: 0,
            size: buffer.size(),
        }
    }

    /// `len` 4-byte words starting at word `start` of this range.
    pub fn words(&self, start: u64, len: u64) -> BufferRef {
        BufferRef {
            buffer: self.buffer.clone(),
            offset: self.offset + start * 4,
            size: len * 4,
        }
    }

    /// Length in 4-byte words.
    pub fn len_words(&self) -> u64 {
        self.size / 4
    }
}

/// One pre-built unit of GPU work, replayed every step.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// Kernel name (for plans and profiles), e.g. `"matmul_nt"`.
    pub kernel: String,
    pub(crate) work: Work,
    /// What it reads and writes, and its grid, for plans.
    pub(crate) info: DispatchInfo,
}

/// A dispatch as `engine plan` prints it: kernel, the buffer ranges it binds (inputs first,
/// outputs last), and its workgroup grid (`None` for a buffer copy).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DispatchInfo {
    /// Kernel name.
    pub kernel: String,
    /// Bound ranges as `label[start..end)` in 4-byte words (`label` for a whole buffer).
    pub bindings: Vec<String>,
    /// Workgroups per axis.
    pub grid: Option<[u32; 3]>,
}

impl std::fmt::Display for DispatchInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.grid {
            Some([x, y, z]) => write!(f, "{} [{x}, {y}, {z}]", self.kernel)?,
            None => write!(f, "{} (copy)", self.kernel)?,
        }
        write!(f, " {}", self.bindings.join(", "))
    }
}

/// `label[start..end)` of a bound range, in words.
fn describe(gpu: &Gpu, b: &BufferRef) -> String {
    let label = gpu.label_of(&b.buffer);
    if b.offset == 0 && b.size == b.buffer.size() {
        label
    } else {
        format!("{label}[{}..{})", b.offset / 4, (b.offset + b.size) / 4)
    }
}

impl Dispatch {
    /// What it reads and writes, and its grid.
    pub fn info(&self) -> &DispatchInfo {
        &self.info
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Work {
    Compute {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        workgroups: [u32; 3],
    },
    Copy {
        src: BufferRef,
        dst: BufferRef,
    },
}

impl Dispatch {
    /// A buffer-to-buffer copy of `src.size` bytes.
    pub fn copy(gpu: &Gpu, kernel: &str, src: &BufferRef, dst: &BufferRef) -> Dispatch {
        Dispatch {
            kernel: kernel.to_string(),
            work: Work::Copy {
                src: src.clone(),
                dst: dst.clone(),
            },
            info: DispatchInfo {
                kernel: kernel.to_string(),
                bindings: vec![describe(gpu, src), describe(gpu, dst)],
                grid: None,
            },
        }
    }
}

/// Records `dispatches` in order; consecutive compute dispatches share one compute pass
/// (wgpu inserts the barriers between dependent dispatches).
pub(crate) fn encode_dispatches<'a>(
    encoder: &mut wgpu::CommandEncoder,
    dispatches: impl IntoIterator<Item = &'a Dispatch>,
) {
    let mut pass: Option<wgpu::ComputePass<'_>> = None;
    for d in dispatches {
        match &d.work {
            Work::Compute {
                pipeline,
                bind_group,
                workgroups,
            } => {
                let p = pass.get_or_insert_with(|| {
                    encoder
                        .begin_compute_pass(&wgpu::ComputePassDescriptor {
                            label: None,
                            timestamp_writes: None,
                        })
                        .forget_lifetime()
                });
                p.set_pipeline(pipeline);
                p.set_bind_group(0, bind_group, &[]);
                p.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
            }
            Work::Copy { src, dst } => {
                pass = None;
                encoder.copy_buffer_to_buffer(
                    &src.buffer.0,
                    src.offset,
                    &dst.buffer.0,
                    dst.offset,
                    src.size,
                );
            }
        }
    }
}

/// WGSL moving a register tile `by` places along its first axis, `name(i, j) = name(i + by,
/// j)` for every `i + by < len` and `j < width`: how the generated store loops walk a tile
/// of scalar accumulators without indexing it (an indexed local array would live in
/// memory).
pub(crate) fn shift_tile(
    out: &mut String,
    indent: &str,
    len: usize,
    width: usize,
    by: usize,
    name: impl Fn(usize, usize) -> String,
) {
    use std::fmt::Write;
    for i in by..len {
        for j in 0..width {
            let _ = writeln!(out, "{indent}{} = {};", name(i - by, j), name(i, j));
        }
    }
}

/// WGSL loading `count` values once per subgroup of `lanes` invocations: invocation `lane`
/// loads entries `lane + q * lanes` as `{tag}{q}`, `load(q)` being the WGSL that loads
/// entry `lane + q * lanes`. [`broadcast`] then hands entry `t` to every invocation.
pub(crate) fn shared_loads(
    out: &mut String,
    indent: &str,
    count: usize,
    lanes: usize,
    tag: &str,
    load: impl Fn(usize) -> String,
) {
    use std::fmt::Write;
    for q in 0..count.div_ceil(lanes) {
        let _ = writeln!(out, "{indent}let {tag}{q} = {};", load(q));
    }
}

/// The WGSL expression for entry `t` of values loaded by [`shared_loads`] under `tag`.
pub(crate) fn broadcast(tag: &str, t: usize, lanes: usize) -> String {
    format!("subgroupBroadcast({tag}{}, {}u)", t / lanes, t % lanes)
}

/// Workgroup counts for a grid-stride loop over `n` items with [`WG_1D`] invocations per
/// group, and the stride the kernel must use (`{{STRIDE}}`).
pub fn grid_1d(n: usize) -> ([u32; 3], u32) {
    let groups = (n as u64)
        .div_ceil(WG_1D as u64)
        .clamp(1, MAX_GROUPS_1D as u64) as u32;
    ([groups, 1, 1], groups * WG_1D)
}

/// Everything one layer's kernels bind. Shapes are per sample; buffers hold `batch` samples.
#[derive(Clone, Debug)]
pub struct LayerIo {
    /// Index in the model's layer list (dropout keys its mask on it).
    pub layer: usize,
    /// Samples per step (padded rows included).
    pub batch: usize,
    /// Per-sample input shape.
    pub input_shape: Vec<usize>,
    /// Per-sample output shape.
    pub output_shape: Vec<usize>,
    /// Training (dropout active) or evaluation.
    pub train: bool,
    /// The per-step uniform (`Step` in `common.wgsl`).
    pub step: BufferRef,
    /// Input activations `[batch, input]`.
    pub x: BufferRef,
    /// Output activations `[batch, output]`.
    pub y: BufferRef,
    /// Gradient w.r.t. the output.
    pub dy: BufferRef,
    /// Gradient w.r.t. the input; `None` for the first layer (not needed).
    pub dx: Option<BufferRef>,
    /// Parameters, in [`crate::op::Op::params`] order.
    pub params: Vec<BufferRef>,
    /// Gradient accumulators, same order.
    pub grads: Vec<BufferRef>,
    /// Scratch of [`crate::op::Op::scratch_words`] words (kept between forward and backward).
    pub scratch: Option<BufferRef>,
}

/// Compiles (once, cached) and binds kernels.
pub struct KernelBuilder<'a> {
    gpu: &'a Gpu,
}

impl<'a> KernelBuilder<'a> {
    /// A builder over `gpu`'s pipeline cache.
    pub fn new(gpu: &'a Gpu) -> KernelBuilder<'a> {
        KernelBuilder { gpu }
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        self.gpu
    }

    /// A compute dispatch of `sources` (concatenated after `common.wgsl`, with every
    /// `{{KEY}}` replaced from `subst`), entry point `main`, binding `bindings[i]` at
    /// `@group(0) @binding(i)`.
    pub fn compute(
        &mut self,
        kernel: &str,
        sources: &[&str],
        subst: &[(&str, String)],
        bindings: &[&BufferRef],
        workgroups: [u32; 3],
    ) -> Result<Dispatch, GpuError> {
        let limit = self.gpu.adapter().max_storage_buffer_binding_size;
        if let Some(b) = bindings.iter().find(|b| b.size > limit) {
            return Err(GpuError::TooLarge {
                what: format!("a buffer bound by kernel {kernel}"),
                needed: b.size,
                limit,
            });
        }
        let pipeline = self.pipeline(kernel, sources, subst)?;
        let entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &b.buffer.0,
                    offset: b.offset,
                    size: NonZeroU64::new(b.size.max(4)),
                }),
            })
            .collect();
        let device = &self.gpu.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Validation(format!(
                "binding kernel {kernel}: {e}"
            )));
        }
        Ok(Dispatch {
            kernel: kernel.to_string(),
            work: Work::Compute {
                pipeline,
                bind_group,
                workgroups,
            },
            info: DispatchInfo {
                kernel: kernel.to_string(),
                bindings: bindings.iter().map(|b| describe(self.gpu, b)).collect(),
                grid: Some(workgroups),
            },
        })
    }

    fn pipeline(
        &mut self,
        kernel: &str,
        sources: &[&str],
        subst: &[(&str, String)],
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        let spec: String = subst.iter().map(|(k, v)| format!("{k}={v};")).collect();
        let key = (kernel.to_string(), spec);
        let mut cache = self.gpu.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let mut source = String::from(COMMON_WGSL);
        for s in sources {
            source.push('\n');
            source.push_str(s);
        }
        for (k, v) in subst {
            source = source.replace(&format!("{{{{{k}}}}}"), v);
        }
        if let Some(pos) = source.find("{{") {
            let end = source[pos..]
                .find("}}")
                .map_or(source.len(), |e| pos + e + 2);
            return Err(GpuError::Shader {
                kernel: kernel.to_string(),
                message: format!("placeholder {} was not substituted", &source[pos..end]),
            });
        }
        // Kernel development: `OPS_DUMP_WGSL=DIR` writes every specialised kernel's source,
        // numbered in build order (see `ops/examples/compile_time.rs`). Best effort.
        if let Ok(dir) = std::env::var("OPS_DUMP_WGSL") {
            let n = cache.len();
            let _ = std::fs::write(format!("{dir}/{n:02}_{kernel}.wgsl"), &source);
        }
        let device = &self.gpu.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Shader {
                kernel: kernel.to_string(),
                message: e.to_string(),
            });
        }
        self.gpu.count_pipeline();
        cache.insert(key, pipeline.clone());
        Ok(pipeline)
    }
}
