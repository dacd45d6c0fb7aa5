//! Tensor ops for the training engine: shape rules, parameter init, CPU reference
//! forward/backward, WGSL kernels, the wgpu runtime, and the compiled training step.

pub mod add;
pub mod avg_pool1d;
pub mod avg_pool2d;
pub mod batch_norm;
pub mod concat;
pub mod conv1d;
pub mod conv2d;
pub mod dropout;
pub mod embedding;
pub mod federated;
pub mod flatten;
pub mod fusion;
pub mod gelu;
pub mod global_avg_pool;
pub mod gpu;
pub mod init;
pub mod layer;
pub mod layer_norm;
pub mod leaky_relu;
pub mod linear;
pub mod loss;
pub mod loss_scale;
pub mod max_pool1d;
pub mod max_pool2d;
pub mod model;
pub mod onnx;
pub mod op;
pub mod optim;
pub mod precision;
pub mod relu;
pub mod rng;
pub mod sigmoid;
pub mod slice;
pub mod softmax;
pub mod tanh;
pub mod tensor;
pub mod testing;
pub mod train;

mod conv2d_direct;
pub mod elementwise;
mod matmul;
mod native;
mod over1d;
mod reduce;

pub use gpu::{
    AdapterSummary, BackendChoice, Counters, DeviceRequest, Gpu, GpuError, list_adapters,
};
pub use init::Init;
pub use layer::LayerSpec;
pub use op::{CpuCtx, Op, ParamFill, ParamSpec, ShapeError, Size2};
pub use precision::Precision;
pub use tensor::Tensor;
pub use train::{
    ChainInputs, EvalStep, ExactLossSum, LossKind, ModelDef, ModelParams, NamedTensor,
    OptimizerKind, StepMetrics, TrainConfig, TrainStep,
};
