//! The native CPU backend: buffers are host memory, and each kernel of the plan runs as
//! native Rust code (GEMMs through `matrixmultiply`, the rest as loops over rayon) chosen by
//! the kernel's name and parameterised by its specialisation constants — the same plan,
//! the same dispatch list, one submission per step.
//!
//! A kernel's native implementation lives next to its WGSL binding, in the op's file, and
//! is listed once in a table of [`crate::native::TABLES`]. A plan needing a kernel without one is
//! refused when it is built ([`GpuError::NoNativeKernel`]), never mid-run.
//!
//! Determinism: every native kernel splits its work into pieces fixed by the problem's
//! shape, never by the thread count, and sums each output in one fixed order, so results
//! are bit-identical under any `RAYON_NUM_THREADS`.

use std::sync::Arc;

use super::backend::{Backend, BufferUsage, Handle, KernelSource, foreign};
use super::device::AdapterSummary;
use super::error::GpuError;
use super::kernel::{Buffer, BufferRef, Dispatch, Elem, Work};

/// A host buffer of 4-byte words, owned through a raw pointer so that dispatches may hold
/// pointers into it (a `Box` would assert unique access whenever it is touched).
struct HostBuffer {
    ptr: *mut u32,
    len: usize,
    /// The backend that made it ([`CpuBackend::id`]): another's buffers are refused.
    owner: u64,
}

// SAFETY: every access goes through a `CpuBackend` that made the buffer (checked by
// `host`), and its uploads, submissions and read-backs hold its lock, so they never run at
// the same time; inside a dispatch, kernels write only bindings that overlap no other used
// binding (checked by `bind`) and split those writes between threads into disjoint pieces.
unsafe impl Sync for HostBuffer {}
// SAFETY: the memory is owned by the buffer alone.
unsafe impl Send for HostBuffer {}

impl HostBuffer {
    /// `words` zeroed words, or `None` when the memory is not there (no abort).
    fn zeroed(words: usize, owner: u64) -> Option<HostBuffer> {
        let mut v: Vec<u32> = Vec::new();
        v.try_reserve_exact(words).ok()?;
        v.resize(words, 0);
        let boxed = v.into_boxed_slice();
        let len = boxed.len();
        Some(HostBuffer {
            ptr: Box::into_raw(boxed).cast::<u32>(),
            len,
            owner,
        })
    }

    fn ptr(&self) -> *mut u32 {
        self.ptr
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for HostBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` came from `Box::into_raw` of a `[u32]` of `len` words.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

/// A kernel's specialisation constants (`{{KEY}}` → value), as the op gave them.
pub struct Constants {
    kernel: String,
    pairs: Vec<(String, String)>,
}

impl Constants {
    /// The raw text of `key`.
    pub fn text(&self, key: &str) -> Result<&str, GpuError> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| self.bad(key, "is missing"))
    }

    /// `key` as an unsigned integer.
    pub fn usize(&self, key: &str) -> Result<usize, GpuError> {
        let t = self.text(key)?;
        t.parse()
            .map_err(|_| self.bad(key, &format!("`{t}` is not a count")))
    }

    /// `key` as a 0/1 flag.
    pub fn flag(&self, key: &str) -> Result<bool, GpuError> {
        Ok(self.usize(key)? != 0)
    }

    /// `key` as a WGSL `bool` literal (`true` or `false`).
    pub fn bool(&self, key: &str) -> Result<bool, GpuError> {
        match self.text(key)? {
            "true" => Ok(true),
            "false" => Ok(false),
            t => Err(self.bad(key, &format!("`{t}` is not a bool"))),
        }
    }

    /// `key` as an f32 given by its bits (`wgsl_f32`).
    pub fn f32_bits(&self, key: &str) -> Result<f32, GpuError> {
        let t = self.text(key)?;
        t.parse::<u32>()
            .map(f32::from_bits)
            .map_err(|_| self.bad(key, &format!("`{t}` is not f32 bits")))
    }

    /// `key` as a comma-separated list of f32 bits; empty text is an empty list.
    pub fn f32_list(&self, key: &str) -> Result<Vec<f32>, GpuError> {
        let t = self.text(key)?;
        t.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<u32>()
                    .map(f32::from_bits)
                    .map_err(|_| self.bad(key, &format!("`{s}` is not f32 bits")))
            })
            .collect()
    }

    /// `key` as WGSL declarations `const NAME: u32 = 12u; ...` (a geometry), by name.
    pub fn wgsl_consts(&self, key: &str) -> Result<WgslConsts, GpuError> {
        let mut out = Vec::new();
        for decl in self
            .text(key)?
            .split(';')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            let parsed = decl.strip_prefix("const ").and_then(|d| {
                let (name, value) = d.split_once(':')?;
                let value = value.split_once('=')?.1.trim().trim_end_matches('u');
                Some((name.trim().to_string(), value.parse::<usize>().ok()?))
            });
            out.push(parsed.ok_or_else(|| self.bad(key, &format!("has `{decl}`")))?);
        }
        Ok(WgslConsts {
            kernel: self.kernel.clone(),
            pairs: out,
        })
    }

    fn bad(&self, key: &str, what: &str) -> GpuError {
        GpuError::Shader {
            kernel: self.kernel.clone(),
            message: format!("native kernel: constant {key} {what}"),
        }
    }
}

/// WGSL `const` declarations of a kernel's geometry, by name.
pub struct WgslConsts {
    kernel: String,
    pairs: Vec<(String, usize)>,
}

impl WgslConsts {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Result<usize, GpuError> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| GpuError::Shader {
                kernel: self.kernel.clone(),
                message: format!("native kernel: geometry constant {name} is missing"),
            })
    }
}

/// One kernel's native implementation, specialised by its constants.
pub trait NativeKernel: Send + Sync {
    /// How many buffers it binds: at least `.0`, at most `.1`.
    fn bindings(&self) -> (usize, usize);

    /// Whether it writes binding `i` (a written binding may overlap no other it uses).
    fn writes(&self, i: usize) -> bool;

    /// Whether it touches binding `i` at all (some kernels bind a placeholder).
    fn uses(&self, _i: usize) -> bool {
        true
    }

    /// Checks the bound lengths (words per binding) against what a dispatch over `grid`
    /// will touch, for kernels that address their buffers through raw pointers: a
    /// mismatch is refused at bind time instead of reading or writing past a buffer.
    fn check(&self, _lens: &[usize], _grid: [u32; 3]) -> Result<(), String> {
        Ok(())
    }

    /// Runs the dispatch.
    fn run(&self, io: &Io<'_>);
}

/// Builds a kernel's native implementation from its constants.
pub type NativeFactory = fn(&Constants) -> Result<Box<dyn NativeKernel>, GpuError>;

/// A word range of a host buffer, as raw parts.
#[derive(Clone, Copy)]
struct Range {
    ptr: *mut u32,
    len: usize,
}

/// The buffers of one dispatch, as slices, and its workgroup grid.
pub struct Io<'a> {
    ranges: &'a [Range],
    grid: [u32; 3],
}

impl Io<'_> {
    /// The dispatch's workgroup grid (a batched GEMM's batch is its third axis).
    pub fn grid(&self) -> [u32; 3] {
        self.grid
    }

    /// Buffers bound.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether nothing is bound.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Binding `i` as f32s.
    pub fn f32(&self, i: usize) -> &[f32] {
        let r = self.ranges[i];
        // SAFETY: `bind` checked the range lies inside a live buffer it keeps alive; f32 and
        // u32 have the same size and alignment and every bit pattern is valid.
        unsafe { std::slice::from_raw_parts(r.ptr as *const f32, r.len) }
    }

    /// Binding `i` as u32s.
    pub fn u32(&self, i: usize) -> &[u32] {
        let r = self.ranges[i];
        // SAFETY: as in `f32`.
        unsafe { std::slice::from_raw_parts(r.ptr as *const u32, r.len) }
    }

    /// Binding `i`, which the kernel declared written, as mutable f32s. A kernel takes each
    /// written binding once per run.
    #[allow(clippy::mut_from_ref)]
    pub fn f32_mut(&self, i: usize) -> &mut [f32] {
        let r = self.ranges[i];
        // SAFETY: `bind` checked that a written binding overlaps no other binding of the
        // dispatch, and the kernel takes it once, so this is the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(r.ptr as *mut f32, r.len) }
    }

    /// Binding `i`, which the kernel declared written, as mutable u32s.
    #[allow(clippy::mut_from_ref)]
    pub fn u32_mut(&self, i: usize) -> &mut [u32] {
        let r = self.ranges[i];
        // SAFETY: as in `f32_mut`.
        unsafe { std::slice::from_raw_parts_mut(r.ptr, r.len) }
    }

    /// Binding `i` as the per-step uniform.
    pub(crate) fn step(&self, i: usize) -> crate::train::StepUniform {
        let words = self.u32(i);
        let n = std::mem::size_of::<crate::train::StepUniform>() / 4;
        bytemuck::pod_read_unaligned(bytemuck::cast_slice(&words[..n]))
    }
}

/// A kernel with its buffers: the ranges as raw parts, the handles keeping them alive.
struct Bound {
    owner: u64,
    kernel: Arc<dyn NativeKernel>,
    ranges: Vec<Range>,
    _buffers: Vec<Handle>,
}

// SAFETY: the raw pointers point into buffers `_buffers` keeps alive; see `HostBuffer`.
unsafe impl Send for Bound {}
// SAFETY: as above.
unsafe impl Sync for Bound {}

struct Compiled(Arc<dyn NativeKernel>);

/// The CPU backend.
pub(crate) struct CpuBackend {
    summary: AdapterSummary,
    kernels: &'static [&'static [(&'static str, NativeFactory)]],
    /// Tells this backend's buffers from another's.
    id: u64,
    /// Held by every call that touches buffer memory, so that two threads sharing the
    /// front cannot race on a buffer.
    busy: std::sync::Mutex<()>,
}

/// Ids of cpu backends opened in this process.
static NEXT_BACKEND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The widest SIMD instruction set this CPU runs (what the GEMM kernels use).
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return "avx2+fma";
        }
        "sse2"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "neon"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

/// What the CPU backend reports as its adapter.
pub fn cpu_summary() -> AdapterSummary {
    AdapterSummary {
        name: {
            let threads = rayon::current_num_threads();
            let plural = if threads == 1 { "" } else { "s" };
            format!("cpu ({}, {threads} thread{plural})", simd_level())
        },
        backend: "cpu".into(),
        device_type: "Native".into(),
        max_buffer_size: 1 << 40,
        max_storage_buffer_binding_size: u64::from(u32::MAX),
        max_compute_workgroup_size_x: 1024,
        max_storage_buffers_per_shader_stage: 64,
        max_compute_workgroups_per_dimension: u32::MAX,
        subgroup_size: None,
        shader_f16: false,
    }
}

impl CpuBackend {
    pub(crate) fn open(kernels: &'static [&'static [(&'static str, NativeFactory)]]) -> CpuBackend {
        CpuBackend {
            summary: cpu_summary(),
            kernels,
            id: NEXT_BACKEND.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            busy: std::sync::Mutex::new(()),
        }
    }
}

impl CpuBackend {
    fn host<'b>(&self, buffer: &'b Buffer) -> Result<&'b HostBuffer, GpuError> {
        buffer
            .handle()
            .get::<HostBuffer>()
            .filter(|b| b.owner == self.id)
            .ok_or_else(|| foreign("a buffer"))
    }

    /// The words `r` covers, checked against its buffer.
    fn range_of(&self, r: &BufferRef) -> Result<Range, GpuError> {
        range_in(self.host(&r.buffer)?, r)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The words `r` covers in `buf`, checked.
fn range_in(buf: &HostBuffer, r: &BufferRef) -> Result<Range, GpuError> {
    let end = r.offset.checked_add(r.size);
    if !r.offset.is_multiple_of(4)
        || !r.size.is_multiple_of(4)
        || end.is_none_or(|e| e / 4 > buf.len() as u64)
    {
        return Err(GpuError::Validation(format!(
            "range of {} bytes at {} is not whole words inside its {}-word buffer",
            r.size,
            r.offset,
            buf.len()
        )));
    }
    // SAFETY: the offset is inside the buffer (checked above).
    let ptr = unsafe { buf.ptr().add((r.offset / 4) as usize) };
    Ok(Range {
        ptr,
        len: (r.size / 4) as usize,
    })
}

impl Backend for CpuBackend {
    fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    fn allocate(&self, _label: &str, bytes: u64, _usage: BufferUsage) -> Result<Handle, GpuError> {
        let words = usize::try_from(bytes.div_ceil(4)).map_err(|_| GpuError::TooLarge {
            what: "a host buffer".into(),
            needed: bytes,
            limit: usize::MAX as u64,
        })?;
        let buffer = HostBuffer::zeroed(words, self.id).ok_or_else(|| GpuError::TooLarge {
            what: "a host buffer (memory not available)".into(),
            needed: bytes,
            limit: 0,
        })?;
        Ok(Handle::new(buffer))
    }

    fn upload(&self, dst: &Buffer, offset: u64, bytes: &[u8]) -> Result<(), GpuError> {
        let _busy = self.lock();
        let range = self.range_of(&BufferRef {
            buffer: dst.clone(),
            offset,
            size: bytes.len() as u64,
            elem: Elem::F32,
        })?;
        // SAFETY: the range is inside the buffer (checked) and no dispatch runs during an
        // upload (the lock).
        let words = unsafe { std::slice::from_raw_parts_mut(range.ptr, range.len) };
        bytemuck::cast_slice_mut::<u32, u8>(words).copy_from_slice(bytes);
        Ok(())
    }

    fn compile(&self, source: &KernelSource<'_>) -> Result<Handle, GpuError> {
        let factory = self
            .kernels
            .iter()
            .flat_map(|table| table.iter())
            .find(|(name, _)| *name == source.name)
            .map(|(_, f)| f)
            .ok_or_else(|| GpuError::NoNativeKernel {
                kernel: source.name.to_string(),
            })?;
        let constants = Constants {
            kernel: source.name.to_string(),
            pairs: source
                .constants
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        };
        Ok(Handle::new(Compiled(Arc::from(factory(&constants)?))))
    }

    fn bind(
        &self,
        kernel: &Handle,
        name: &str,
        bindings: &[&BufferRef],
        workgroups: [u32; 3],
    ) -> Result<Handle, GpuError> {
        let kernel = kernel
            .get::<Compiled>()
            .ok_or_else(|| foreign("a kernel"))?
            .0
            .clone();
        let (min, max) = kernel.bindings();
        if bindings.len() < min || bindings.len() > max {
            return Err(GpuError::Validation(format!(
                "kernel {name} binds {} buffers; its native implementation takes {min} to {max}",
                bindings.len()
            )));
        }
        // Native kernels compute in f32 from f32 words; f16 storage is a wgpu feature.
        if let Some(i) = bindings.iter().position(|b| b.elem == Elem::F16) {
            return Err(GpuError::Validation(format!(
                "kernel {name}: binding {i} holds f16 values, which the cpu backend does not store"
            )));
        }
        let ranges = bindings
            .iter()
            .map(|b| self.range_of(b))
            .collect::<Result<Vec<_>, _>>()?;
        let lens: Vec<usize> = ranges.iter().map(|r| r.len).collect();
        kernel
            .check(&lens, workgroups)
            .map_err(|e| GpuError::Validation(format!("kernel {name}: {e}")))?;
        for (i, a) in bindings.iter().enumerate() {
            for (j, b) in bindings.iter().enumerate().skip(i + 1) {
                let overlap = a.buffer == b.buffer
                    && a.offset < b.offset + b.size
                    && b.offset < a.offset + a.size;
                let used = kernel.uses(i) && kernel.uses(j);
                if overlap && used && (kernel.writes(i) || kernel.writes(j)) {
                    return Err(GpuError::Validation(format!(
                        "kernel {name} writes binding {} which overlaps binding {}",
                        if kernel.writes(i) { i } else { j },
                        if kernel.writes(i) { j } else { i }
                    )));
                }
            }
        }
        Ok(Handle::new(Bound {
            owner: self.id,
            kernel,
            ranges,
            _buffers: bindings.iter().map(|b| b.buffer.handle().clone()).collect(),
        }))
    }

    fn submit(&self, dispatches: &mut dyn Iterator<Item = &Dispatch>) -> Result<(), GpuError> {
        let _busy = self.lock();
        for d in dispatches {
            match d.work() {
                Work::Compute { bound, workgroups } => {
                    let bound = bound
                        .get::<Bound>()
                        .filter(|b| b.owner == self.id)
                        .ok_or_else(|| foreign("a dispatch"))?;
                    bound.kernel.run(&Io {
                        ranges: &bound.ranges,
                        grid: *workgroups,
                    });
                }
                Work::Copy { src, dst } => {
                    let (s, t) = (self.range_of(src)?, self.range_of(dst)?);
                    if s.len > t.len {
                        return Err(GpuError::Validation(format!(
                            "copy {} of {} words into {} words",
                            d.kernel, s.len, t.len
                        )));
                    }
                    // SAFETY: both ranges are inside live buffers (checked); `copy` allows
                    // overlap.
                    unsafe { std::ptr::copy(s.ptr, t.ptr, s.len) };
                }
            }
        }
        Ok(())
    }

    fn read_back(&self, src: &BufferRef, _staging: &Buffer) -> Result<Vec<u8>, GpuError> {
        let _busy = self.lock();
        let r = self.range_of(src)?;
        // SAFETY: inside a live buffer (checked); nothing runs concurrently (the lock).
        let words = unsafe { std::slice::from_raw_parts(r.ptr, r.len) };
        Ok(bytemuck::cast_slice(words).to_vec())
    }

    fn wait_idle(&self) -> Result<(), GpuError> {
        // Submissions run to completion before `submit` returns.
        Ok(())
    }

    fn take_error(&self) -> Result<(), GpuError> {
        Ok(())
    }
}

/// Runs `f(i)` for `i in 0..pieces` on rayon's pool. Callers choose `pieces` from the
/// problem's shape alone, which keeps results independent of the thread count.
pub(crate) fn for_pieces(pieces: usize, f: impl Fn(usize) + Send + Sync) {
    for_pieces_sized(pieces, usize::MAX, f);
}

/// Work (multiply-adds or elements) below which a kernel's pieces run on the calling
/// thread: waking another costs microseconds, more than small kernels take (a batch-10
/// MLP step has several such kernels).
pub(crate) const PARALLEL_WORK: usize = 1 << 16;

/// [`for_pieces`] for a kernel doing `work` in all: on the calling thread when that is
/// small (the same pieces in the same order, so the same bits).
pub(crate) fn for_pieces_sized(pieces: usize, work: usize, f: impl Fn(usize) + Send + Sync) {
    use rayon::prelude::*;
    if pieces <= 1 || work < PARALLEL_WORK {
        (0..pieces).for_each(f);
    } else {
        (0..pieces).into_par_iter().for_each(f);
    }
}

/// The `with_min_len` for a rayon iterator over `pieces` pieces of a kernel doing `work`:
/// all of them on the calling thread when the work is small.
pub(crate) fn min_pieces(pieces: usize, work: usize) -> usize {
    if work < PARALLEL_WORK {
        pieces.max(1)
    } else {
        1
    }
}

/// A raw pointer that may cross threads: each piece of a kernel writes its own disjoint
/// part through it.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `SendPtr`, not its field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: used only to hand disjoint parts of one buffer to the pieces of one kernel.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{BackendChoice, DeviceRequest, Gpu, KernelBuilder};

    fn cpu() -> Gpu {
        Gpu::new(&DeviceRequest {
            backend: BackendChoice::Cpu,
            ..DeviceRequest::default()
        })
        .expect("the cpu backend always opens")
    }

    #[test]
    fn another_backends_buffers_and_ranges_past_the_end_are_refused() {
        let (a, b) = (cpu(), cpu());
        let buffer = a.storage_buffer("x", 64).unwrap();
        assert!(a.write(&buffer, 0, &[1.0f32; 4]).is_ok());
        assert!(
            b.write(&buffer, 0, &[1.0f32; 4]).is_err(),
            "a foreign buffer"
        );
        let wrapping = BufferRef {
            buffer: buffer.clone(),
            offset: u64::MAX - 3,
            size: 4,
            elem: Elem::F32,
        };
        assert!(a.read_f32(&wrapping).is_err(), "an offset that wraps");
        let past = BufferRef {
            buffer,
            offset: 60,
            size: 8,
            elem: Elem::F32,
        };
        assert!(a.read_f32(&past).is_err(), "a range past the end");
    }

    #[test]
    fn a_gemm_whose_buffers_are_too_small_is_refused_at_bind() {
        let gpu = cpu();
        let mut k = KernelBuilder::new(&gpu);
        let words = |n: u64| BufferRef::whole(&gpu.storage_buffer("t", n * 4).unwrap());
        let (a, b) = (words(4 * 8), words(8 * 5));
        let gemm = crate::matmul::Gemm::nn(4, 5, 8);
        assert!(gemm.dispatch(&mut k, &a, &b, None, &words(20)).is_ok());
        let err = gemm
            .dispatch(&mut k, &a, &b, None, &words(12).words(0, 12))
            .unwrap_err();
        assert!(err.to_string().contains("C needs 20 words"), "{err}");
    }
}
