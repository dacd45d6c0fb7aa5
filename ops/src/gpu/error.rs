//! Errors from the device layer.

use thiserror::Error;

/// Everything that can go wrong talking to the GPU or building a model on it.
#[derive(Debug, Error)]
pub enum GpuError {
    /// No adapter of any kind.
    #[error(
        "no GPU adapter found; on Debian/Ubuntu install Mesa's software drivers: apt-get install mesa-vulkan-drivers (Vulkan/lavapipe) or libegl-mesa0 (GL/llvmpipe)"
    )]
    NoAdapter,
    /// Adapters exist but none matches the request.
    #[error(
        "no{backend} adapter{}; available: {available} (a device is `auto`, `vulkan`, `gl`, or part of an adapter's name, as `engine devices` lists them; NVIDIA GPUs run through `vulkan`)",
        wanted.as_ref().map(|w| format!(" whose name contains `{w}`")).unwrap_or_default()
    )]
    NoMatchingAdapter {
        /// ` vulkan`, ` gl`, or empty for any backend.
        backend: String,
        wanted: Option<String>,
        available: String,
    },
    /// The adapter refused to create a device.
    #[error("could not open device on adapter {adapter}: {message}")]
    RequestDevice { adapter: String, message: String },
    /// A WGSL kernel failed to compile or validate (a bug in this crate).
    #[error("kernel {kernel} failed to compile: {message}")]
    Shader { kernel: String, message: String },
    /// wgpu reported a validation error (a bug in this crate).
    #[error("wgpu validation error: {0}")]
    Validation(String),
    /// Mapping a buffer for read-back failed.
    #[error("reading back {what} failed: {message}")]
    Readback { what: String, message: String },
    /// The model definition is not valid (bad attributes or shapes).
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// The model needs more than the adapter allows.
    #[error("{what} needs {needed} bytes but the adapter allows at most {limit}")]
    TooLarge {
        what: String,
        needed: u64,
        limit: u64,
    },
    /// A tensor passed to `load_params` does not match the model.
    #[error("parameter {name}: {message}")]
    ParamMismatch { name: String, message: String },
    /// The cpu backend has no native implementation of a kernel the plan needs.
    #[error(
        "kernel {kernel} has no native implementation on the cpu backend yet; run this pipeline on a wgpu device (`--device vulkan` or `gl`)"
    )]
    NoNativeKernel { kernel: String },
    /// A configuration value is out of range.
    #[error("invalid training configuration: {0}")]
    InvalidConfig(String),
}
