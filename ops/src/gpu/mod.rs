//! The wgpu runtime: adapters and devices, buffers, the pipeline cache, dispatch lists and
//! counters. Ops build [`Dispatch`]es through a [`KernelBuilder`] once at plan time; a step
//! only encodes them.

mod device;
mod error;
mod kernel;

pub use device::{
    AdapterSummary, BackendChoice, Counters, DeviceRequest, Gpu, STORAGE_ALIGN_BYTES, list_adapters,
};
pub use error::GpuError;
pub use kernel::{
    Buffer, BufferRef, Dispatch, DispatchInfo, KernelBuilder, LayerIo, WG_1D, grid_1d,
};
pub(crate) use kernel::{broadcast, shared_loads, shift_tile};
