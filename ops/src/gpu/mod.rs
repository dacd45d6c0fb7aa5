//! The device layer: the [`Backend`] trait (allocate, upload, compile, bind, submit, read
//! back), the device-neutral [`Gpu`] front over one backend (buffers with labels, the kernel
//! cache, counters, dispatch recording), and the wgpu backend behind it. Ops build
//! [`Dispatch`]es through a [`KernelBuilder`] once at plan time; a step only submits them.

mod backend;
pub mod cpu;
mod device;
mod error;
mod kernel;
mod wgpu;

pub use backend::{Backend, BufferUsage, Handle, KernelSource, foreign};
pub use device::{
    AdapterSummary, BackendChoice, Counters, DeviceRequest, Gpu, STORAGE_ALIGN_BYTES, list_adapters,
};
pub use error::GpuError;
pub use kernel::{
    Buffer, BufferRef, Dispatch, DispatchInfo, Elem, KernelBuilder, LayerIo, WG_1D, Work, grid_1d,
};
pub(crate) use kernel::{broadcast, shared_loads, shift_tile};
