//! The backend boundary: what the engine asks of a device — allocate, upload, compile a
//! kernel, bind a dispatch's buffers, submit and read back. [`super::Gpu`] is the
//! device-neutral front over one [`Backend`]; the wgpu implementation lives in
//! `gpu/wgpu.rs`, the only file that names wgpu.
//!
//! A backend owns its resources behind opaque [`Handle`]s: a buffer, a compiled kernel and
//! a bound dispatch are whatever the backend put in them (wgpu: `wgpu::Buffer`, a compute
//! pipeline, a bind group). The front gives every buffer an id, a size and a label, caches
//! compiled kernels by name and specialisation, counts the work and records dispatches for
//! tests, so a backend implements only what differs between devices.
//!
//! A native CPU backend implements the same trait: its buffers are host memory, and
//! [`KernelSource`] carries, next to the assembled WGSL, the kernel's name and
//! specialisation constants (`{{ROWS}}`, `{{K}}`, …) — what a native backend needs to pick
//! and parameterise its own implementation of the kernel.

use std::any::Any;
use std::sync::Arc;

use super::device::AdapterSummary;
use super::error::GpuError;
use super::kernel::{Buffer, BufferRef, Dispatch};

/// A backend's resource behind a shared, type-erased pointer (cheap to clone). Only the
/// backend that created it knows the type inside; [`Handle::get`] returns `None` for a
/// handle of another backend.
#[derive(Clone)]
pub struct Handle(Arc<dyn Any + Send + Sync>);

impl Handle {
    /// Wraps a backend resource.
    pub fn new<T: Any + Send + Sync>(resource: T) -> Handle {
        Handle(Arc::new(resource))
    }

    /// The resource, when it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle")
    }
}

/// What a buffer is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferUsage {
    /// Read and written by kernels, copied to and from, written from the host.
    Storage,
    /// Small per-step constants written from the host and read by kernels.
    Uniform,
    /// The host reads it back after a copy into it.
    Readback,
}

/// One kernel to compile: the complete WGSL (shared prelude and every `{{KEY}}` already
/// substituted), its name and the specialisation it was built with.
#[derive(Clone, Copy, Debug)]
pub struct KernelSource<'a> {
    /// Kernel name, e.g. `"matmul_nt"`.
    pub name: &'a str,
    /// WGSL with entry point `main`; binding `i` is `@group(0) @binding(i)`.
    pub wgsl: &'a str,
    /// The `{{KEY}}` substitutions, in the order the op gave them.
    pub constants: &'a [(&'a str, String)],
}

/// A device the engine can train on.
///
/// Every method may be called from the thread that owns the [`super::Gpu`]; handles passed
/// in were created by this backend (a foreign handle is reported, never trusted).
pub trait Backend: Send + Sync {
    /// What the device is and allows.
    fn summary(&self) -> &AdapterSummary;

    /// A buffer of `bytes` (already rounded up to a multiple of 16 by the caller).
    fn allocate(&self, label: &str, bytes: u64, usage: BufferUsage) -> Result<Handle, GpuError>;

    /// Writes `bytes` (a multiple of 4) at byte `offset` of `dst`; the write lands before
    /// the next submission.
    fn upload(&self, dst: &Buffer, offset: u64, bytes: &[u8]) -> Result<(), GpuError>;

    /// Compiles one kernel (the front caches the result by name and specialisation).
    fn compile(&self, source: &KernelSource<'_>) -> Result<Handle, GpuError>;

    /// Binds `bindings` (binding `i` at `@binding(i)`) to a compiled kernel for a
    /// dispatch over `workgroups`, once at plan time: the returned handle is replayed by
    /// every submission of the dispatch.
    fn bind(
        &self,
        kernel: &Handle,
        name: &str,
        bindings: &[&BufferRef],
        workgroups: [u32; 3],
    ) -> Result<Handle, GpuError>;

    /// Runs `dispatches` in order as one submission (a training step, an eval batch):
    /// each dispatch sees the writes of those before it. Must not allocate device memory
    /// per call.
    fn submit(&self, dispatches: &mut dyn Iterator<Item = &Dispatch>) -> Result<(), GpuError>;

    /// Copies `src` into `staging` (a [`BufferUsage::Readback`] buffer at least as large),
    /// waits for all submitted work, and returns the bytes.
    fn read_back(&self, src: &BufferRef, staging: &Buffer) -> Result<Vec<u8>, GpuError>;

    /// Blocks until all submitted work has finished.
    fn wait_idle(&self) -> Result<(), GpuError>;

    /// The first asynchronous error reported since the last call, if any.
    fn take_error(&self) -> Result<(), GpuError>;
}

/// The error for a handle that another backend created.
pub fn foreign(what: &str) -> GpuError {
    GpuError::Validation(format!(
        "{what} was created by another backend than the one it was passed to"
    ))
}
