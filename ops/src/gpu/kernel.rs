//! Kernels: WGSL assembly and specialisation, buffers and pre-built dispatches (the kernel
//! cache is the front's, [`Gpu`]).

use super::backend::{Handle, KernelSource};
use super::device::Gpu;
use super::error::GpuError;

/// Shared WGSL prepended to every kernel: the per-step uniform layout and the hash RNG.
pub const COMMON_WGSL: &str = include_str!("../../../shaders/common.wgsl");

/// Invocations per workgroup of one-dimensional kernels.
pub const WG_1D: u32 = 64;

/// Most workgroups a one-dimensional kernel launches; kernels loop with a grid stride.
const MAX_GROUPS_1D: u32 = 4096;

/// A device buffer: an id, its size, and the backend's resource behind a [`Handle`]
/// (cheap to clone: it is reference counted). Equal when it is the same allocation.
#[derive(Clone, Debug)]
pub struct Buffer {
    id: u64,
    size: u64,
    handle: Handle,
}

impl Buffer {
    pub(crate) fn new(id: u64, size: u64, handle: Handle) -> Buffer {
        Buffer { id, size, handle }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The allocation's id, unique on its device.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The backend's resource.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl PartialEq for Buffer {
    fn eq(&self, other: &Buffer) -> bool {
        self.id == other.id
    }
}

impl Eq for Buffer {}

impl std::hash::Hash for Buffer {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

/// What a buffer range holds, element by element.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Elem {
    /// 32-bit values (f32, u32): one per word.
    #[default]
    F32,
    /// f16 values, two per word (mixed precision's stored activations): only kernels that
    /// declare the binding `array<f16>` may bind it ([`KernelBuilder::compute`] checks).
    F16,
}

impl Elem {
    /// Words holding `elements` values (rounded up to a whole word).
    pub fn words(self, elements: u64) -> u64 {
        match self {
            Elem::F32 => elements,
            Elem::F16 => elements.div_ceil(2),
        }
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
    /// What it holds.
    pub elem: Elem,
}

impl BufferRef {
    /// The whole buffer.
    pub fn whole(buffer: &Buffer) -> BufferRef {
        BufferRef {
            buffer: buffer.clone(),
            offset: 0,
            size: buffer.size(),
            elem: Elem::F32,
        }
    }

    /// `len` 4-byte words starting at word `start` of this range.
    pub fn words(&self, start: u64, len: u64) -> BufferRef {
        BufferRef {
            buffer: self.buffer.clone(),
            offset: self.offset + start * 4,
            size: len * 4,
            elem: self.elem,
        }
    }

    /// This range, holding `elem` values.
    pub fn holding(self, elem: Elem) -> BufferRef {
        BufferRef { elem, ..self }
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
    let range = if b.offset == 0 && b.size == b.buffer.size() {
        label
    } else {
        format!("{label}[{}..{})", b.offset / 4, (b.offset + b.size) / 4)
    };
    match b.elem {
        Elem::F32 => range,
        Elem::F16 => format!("{range}:f16"),
    }
}

/// Refuses a binding whose [`Elem`] differs from what the kernel declares at its index
/// (`array<f16>` for [`Elem::F16`]): a kernel reading f16 buffers as f32, or the reverse,
/// would compute garbage without an error.
fn check_elems(kernel: &str, source: &str, bindings: &[&BufferRef]) -> Result<(), GpuError> {
    let lines: Vec<&str> = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect();
    for (i, b) in bindings.iter().enumerate() {
        let tag = format!("@binding({i})");
        let Some(first) = lines.iter().position(|l| l.contains(&tag)) else {
            continue;
        };
        // The declaration, up to its `;` (it may span lines), without whitespace.
        let mut line = String::new();
        for l in &lines[first..] {
            line.push_str(l);
            if l.contains(';') {
                break;
            }
        }
        let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        let f16 = compact.split("array<").skip(1).any(|rest| {
            ["f16", "vec2<f16", "vec3<f16", "vec4<f16"]
                .iter()
                .any(|e| rest.starts_with(e))
        });
        let declared = if f16 { Elem::F16 } else { Elem::F32 };
        if declared != b.elem {
            return Err(GpuError::Shader {
                kernel: kernel.to_string(),
                message: format!(
                    "binding {i} holds {:?} values but the kernel declares {:?} (`{}`)",
                    b.elem,
                    declared,
                    line.trim()
                ),
            });
        }
    }
    Ok(())
}

impl Dispatch {
    /// What it reads and writes, and its grid.
    pub fn info(&self) -> &DispatchInfo {
        &self.info
    }

    /// What the backend runs.
    pub fn work(&self) -> &Work {
        &self.work
    }
}

/// What one dispatch does, as a backend runs it.
#[derive(Clone, Debug)]
pub enum Work {
    /// A kernel with its buffers bound ([`super::Backend::bind`]) over a workgroup grid.
    Compute { bound: Handle, workgroups: [u32; 3] },
    /// A buffer-to-buffer copy of `src.size` bytes.
    Copy { src: BufferRef, dst: BufferRef },
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
    /// Input activations `[batch, input]` (the first input of an op reading several).
    pub x: BufferRef,
    /// Every input, in order (`xs[0]` is `x`); ops reading one input use `x`.
    pub xs: Vec<BufferRef>,
    /// Output activations `[batch, output]`.
    pub y: BufferRef,
    /// Gradient w.r.t. the output.
    pub dy: BufferRef,
    /// Gradient w.r.t. the input; `None` when it is not needed (the model's input).
    pub dx: Option<BufferRef>,
    /// Gradients w.r.t. every input, in order (`dxs[0]` is `dx`).
    pub dxs: Vec<Option<BufferRef>>,
    /// Parameters, in [`crate::op::Op::params`] order, then the op's
    /// [`crate::op::Op::buffers`].
    pub params: Vec<BufferRef>,
    /// Gradient accumulators, same order.
    pub grads: Vec<BufferRef>,
    /// Scratch of [`crate::op::Op::scratch_words_on`] words (kept between forward and backward).
    pub scratch: Option<BufferRef>,
}

impl LayerIo {
    /// The two inputs of a merge (`add`, `concat`) named `kind`.
    pub fn pair(&self, kind: &str) -> Result<(&BufferRef, &BufferRef), GpuError> {
        match self.xs.as_slice() {
            [a, b] => Ok((a, b)),
            xs => Err(GpuError::InvalidModel(format!(
                "{kind} reads two inputs, given {}",
                xs.len()
            ))),
        }
    }
}

/// Assembles, compiles (once: [`Gpu`] caches them) and binds kernels.
pub struct KernelBuilder<'a> {
    gpu: &'a Gpu,
    precision: crate::Precision,
}

impl<'a> KernelBuilder<'a> {
    /// A builder over `gpu`'s kernel cache, for f32 kernels.
    pub fn new(gpu: &'a Gpu) -> KernelBuilder<'a> {
        KernelBuilder {
            gpu,
            precision: crate::Precision::F32,
        }
    }

    /// A builder whose matrix products take their operands at `precision`.
    pub fn with_precision(gpu: &'a Gpu, precision: crate::Precision) -> KernelBuilder<'a> {
        KernelBuilder { gpu, precision }
    }

    /// The precision of the matrix products it builds.
    pub fn precision(&self) -> crate::Precision {
        self.precision
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
        let compiled = self.kernel(kernel, sources, subst, bindings)?;
        let bound = self.gpu.bind(&compiled, kernel, bindings, workgroups)?;
        Ok(Dispatch {
            kernel: kernel.to_string(),
            work: Work::Compute { bound, workgroups },
            info: DispatchInfo {
                kernel: kernel.to_string(),
                bindings: bindings.iter().map(|b| describe(self.gpu, b)).collect(),
                grid: Some(workgroups),
            },
        })
    }

    /// A grid-stride dispatch over `n` items ([`grid_1d`]): `{{N}}` and `{{STRIDE}}` are
    /// substituted, then `subst`.
    pub fn compute_1d(
        &mut self,
        kernel: &str,
        sources: &[&str],
        n: usize,
        subst: &[(&str, String)],
        bindings: &[&BufferRef],
    ) -> Result<Dispatch, GpuError> {
        let (groups, stride) = grid_1d(n);
        let mut all = vec![("N", n.to_string()), ("STRIDE", stride.to_string())];
        all.extend(subst.iter().cloned());
        self.compute(kernel, sources, &all, bindings, groups)
    }

    fn kernel(
        &mut self,
        kernel: &str,
        sources: &[&str],
        subst: &[(&str, String)],
        bindings: &[&BufferRef],
    ) -> Result<Handle, GpuError> {
        let spec: String = subst.iter().map(|(k, v)| format!("{k}={v};")).collect();
        // WGSL wants directives (`enable f16;`) before every declaration, so a kernel's
        // are hoisted above the shared prelude.
        let is_directive = |line: &&str| line.trim_start().starts_with("enable ");
        let mut source = String::new();
        for s in sources {
            for line in s.lines().filter(is_directive) {
                if !source.contains(line.trim()) {
                    source.push_str(line.trim());
                    source.push('\n');
                }
            }
        }
        source.push_str(COMMON_WGSL);
        for s in sources {
            source.push('\n');
            for line in s.lines().filter(|l| !is_directive(l)) {
                source.push_str(line);
                source.push('\n');
            }
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
        check_elems(kernel, &source, bindings)?;
        self.gpu.kernel(
            &KernelSource {
                name: kernel,
                wgsl: &source,
                constants: subst,
            },
            spec,
        )
    }
}
