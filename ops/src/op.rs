//! The [`Op`] trait every layer implements, and the small types it speaks in.
//!
//! Shapes passed to an op are per sample (no batch dimension); CPU tensors carry the batch
//! as their leading dimension.

use thiserror::Error;

use crate::gpu::{AdapterSummary, BufferRef, Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::tensor::Tensor;

/// An input shape an op cannot accept. Displays as, e.g.,
/// `linear expects 1 dim [features] but input is [1, 8, 8]`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{op} expects {expected} but input is {found:?}")]
pub struct ShapeError {
    /// The op kind, e.g. `"conv2d"`.
    pub op: &'static str,
    /// What the op needs, in words.
    pub expected: String,
    /// The per-sample input shape it was given.
    pub found: Vec<usize>,
}

impl ShapeError {
    /// Shorthand constructor.
    pub fn new(op: &'static str, expected: impl Into<String>, found: &[usize]) -> ShapeError {
        ShapeError {
            op,
            expected: expected.into(),
            found: found.to_vec(),
        }
    }
}

/// How a parameter starts out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamFill {
    /// Drawn from the model's [`crate::init::Init`] scheme using `fan_in`/`fan_out`.
    Random,
    /// All zeros (LayerNorm beta, batch norm's bias and running mean).
    Zeros,
    /// A linear or convolution bias: zeros, except under [`crate::init::Init::Torch`]
    /// (PyTorch's default, U(-b, b) with b = 1 / sqrt(fan_in)).
    Bias,
    /// All ones (LayerNorm's weight).
    Ones,
    /// N(0, 1) whatever the model's scheme (an embedding table, as PyTorch's).
    StandardNormal,
}

/// One learnable tensor of an op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// `"weight"` or `"bias"` (PyTorch's names).
    pub name: &'static str,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Inputs feeding each output (for initialisation).
    pub fan_in: usize,
    /// Outputs fed by each input (for initialisation).
    pub fan_out: usize,
    /// Initial values.
    pub fill: ParamFill,
}

impl ParamSpec {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for an empty tensor.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Context for CPU reference passes (dropout needs it to draw the same mask as the GPU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuCtx {
    /// Training mode (dropout active) or evaluation.
    pub train: bool,
    /// Run seed.
    pub seed: u64,
    /// Global micro-batch index (the `step` given to `TrainStep::record_step`).
    pub step: u64,
    /// Index of the layer in the model's layer list.
    pub layer: usize,
}

/// What the fusion pass ([`crate::fusion`]) may fold into an op. The pass reads these
/// properties, never op kinds: an op joins a fusion by declaring one and implementing the
/// fused dispatches it promises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FusionTraits {
    /// It is a relu: foldable into its neighbours.
    pub is_relu: bool,
    /// Its forward can apply `max(y, 0)` as it stores ([`Op::gpu_forward_relu`]).
    pub relu_in_store: bool,
    /// Its backward can zero its input gradient where its input is not positive — the
    /// backward of a relu before it, whose output is this op's input
    /// ([`Op::gpu_backward_relu_masked`]).
    pub masks_input_grad: bool,
    /// Reading a relu's output, its backward can do the relu's too: with
    /// [`Op::gpu_forward_relu`]'s forward its input gradient is zero wherever its input is
    /// not positive (a max pool records no arg-max for a window whose maximum is not
    /// positive, and the arg-max of a positive one is where the relu passed the gradient).
    pub commutes_with_relu: bool,
    /// Its forward can also store a following [`FusionTraits::storable_pool`] op, where
    /// [`Op::can_store_pool`] says the adapter allows ([`Op::gpu_forward_relu_pooled`]).
    pub stores_pool: bool,
    /// A 2x2, stride-2 max pool: what a `stores_pool` op can store.
    pub storable_pool: bool,
}

/// The error of a fused dispatch an op does not implement (the fusion pass only asks for
/// what [`Op::fusion_traits`] promises, so this is a bug in a fusion, not user input).
fn not_fusable(kind: &str, what: &str) -> GpuError {
    GpuError::InvalidModel(format!("{kind} cannot {what}"))
}

/// A layer: shape rule, parameters, CPU reference and GPU kernels.
pub trait Op: Send + Sync {
    /// Stable kind name, e.g. `"linear"`.
    fn kind(&self) -> &'static str;
    /// Checks hyperparameters, e.g. `"dropout p must be in [0, 1), found 1.5"`.
    fn check_attrs(&self) -> Result<(), String>;
    /// Per-sample output shape for a per-sample input shape.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError>;
    /// Learnable tensors for this input shape, in a fixed order.
    fn params(&self, input: &[usize]) -> Vec<ParamSpec>;
    /// State tensors that are not learned (batch norm's running statistics, PyTorch's
    /// "buffers"): checkpointed, resumed and exported with the parameters, never touched
    /// by the optimizer. The CPU references and the kernels receive them after the
    /// learnable tensors (`params[params.len()..]`, `io.params[..]`); they get no
    /// gradients.
    fn buffers(&self, _input: &[usize]) -> Vec<ParamSpec> {
        Vec::new()
    }
    /// Forward floating-point operations per sample (2 per multiply-add).
    fn forward_flops(&self, input: &[usize]) -> u64;
    /// True when each output element depends only on the same input element.
    fn is_elementwise(&self) -> bool;
    /// How the op appears in an ONNX graph ([`crate::onnx`]): adds the nodes that compute
    /// `ctx.output` from `ctx.inputs` and `ctx.params` (batched tensors). Default: none.
    fn onnx(&self, _ctx: &mut crate::onnx::OnnxCtx) -> Result<(), String> {
        Err("has no ONNX form yet (export it as safetensors)".into())
    }
    /// True when the output is the input buffer reinterpreted (no kernel runs).
    fn is_view(&self) -> bool {
        false
    }
    /// True when its kernels touch its input and output only as GEMM operands (the input
    /// also as a fused relu mask, the output as a GEMM's store), which load and store f16
    /// buffers: under mixed precision a tensor between two such ops is stored as f16
    /// ([`crate::model::f16_activations`]). Its dispatches must pass `io.x` and `io.y` to
    /// kernels that read their [`crate::gpu::BufferRef::elem`].
    fn f16_storage(&self) -> bool {
        false
    }
    /// Scratch words (4 bytes each) the GPU kernels need for a batch of `batch` samples.
    fn scratch_words(&self, _input: &[usize], _batch: usize) -> usize {
        0
    }
    /// Scratch words on `adapter`, where its kernels differ by adapter (default:
    /// [`Op::scratch_words`]).
    fn scratch_words_on(&self, _adapter: &AdapterSummary, input: &[usize], batch: usize) -> usize {
        self.scratch_words(input, batch)
    }
    /// CPU reference forward on a batch (`x.shape[0]` is the batch).
    fn forward_cpu(&self, x: &Tensor, params: &[Tensor], ctx: &CpuCtx) -> Tensor;
    /// CPU reference backward: `(dx, dparams)` with `dparams` in [`Op::params`] order
    /// (learnable tensors only).
    fn backward_cpu(
        &self,
        x: &Tensor,
        params: &[Tensor],
        y: &Tensor,
        dy: &Tensor,
        ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>);
    /// How many inputs it reads, `(min, max)`: one for every layer but merges (`add`).
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }
    /// Per-sample output shape over its inputs' shapes (`inputs.len()` within
    /// [`Op::arity`]); an op reading one input defers to [`Op::output_shape`].
    fn output_shape_of(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, ShapeError> {
        match inputs {
            [one] => self.output_shape(one),
            _ => Err(ShapeError::new(self.kind(), "one input", &[])),
        }
    }
    /// CPU reference forward over its inputs (`xs.len()` within [`Op::arity`], checked when
    /// the model was built, so `xs[0]` exists).
    fn forward_cpu_of(&self, xs: &[&Tensor], params: &[Tensor], ctx: &CpuCtx) -> Tensor {
        self.forward_cpu(xs[0], params, ctx)
    }
    /// CPU reference backward over its inputs: `(dxs, dparams)`, one gradient per input.
    fn backward_cpu_of(
        &self,
        xs: &[&Tensor],
        params: &[Tensor],
        y: &Tensor,
        dy: &Tensor,
        ctx: &CpuCtx,
    ) -> (Vec<Tensor>, Vec<Tensor>) {
        let (dx, dp) = self.backward_cpu(xs[0], params, y, dy, ctx);
        (vec![dx], dp)
    }
    /// Builds the forward dispatches once at plan time; they are replayed every step.
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError>;
    /// Builds the backward dispatches: writes `io.dx` (when present) and adds parameter
    /// gradients into `io.grads` (accumulating; the optimizer zeroes them).
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError>;
    /// What the fusion pass may fold into it (nothing by default).
    fn fusion_traits(&self) -> FusionTraits {
        FusionTraits::default()
    }
    /// The forward with a folded relu's work in it: `max(y, 0)` applied as it stores
    /// (`relu_in_store`), or, reading the relu's output, set up for a backward that does
    /// the relu's (`commutes_with_relu`).
    fn gpu_forward_relu(
        &self,
        _k: &mut KernelBuilder,
        _io: &LayerIo,
    ) -> Result<Vec<Dispatch>, GpuError> {
        Err(not_fusable(self.kind(), "apply a relu in its forward"))
    }
    /// The backward with the input gradient zeroed where the input (a folded relu's
    /// output) is not positive (`masks_input_grad`).
    fn gpu_backward_relu_masked(
        &self,
        _k: &mut KernelBuilder,
        _io: &LayerIo,
    ) -> Result<Vec<Dispatch>, GpuError> {
        Err(not_fusable(self.kind(), "mask its input gradient"))
    }
    /// Whether, over `input` at `batch` on `adapter`, the forward can store the pool after
    /// the relu after it (`stores_pool`).
    fn can_store_pool(&self, _adapter: &AdapterSummary, _input: &[usize], _batch: usize) -> bool {
        false
    }
    /// The forward, the relu after it and the pool after that as one: writes the pool's
    /// output `pool` and arg-max `arg` (only where [`Op::can_store_pool`]).
    fn gpu_forward_relu_pooled(
        &self,
        _k: &mut KernelBuilder,
        _io: &LayerIo,
        _pool: &BufferRef,
        _arg: &BufferRef,
    ) -> Result<Vec<Dispatch>, GpuError> {
        Err(not_fusable(self.kind(), "store a max pool"))
    }
}

/// A window size, stride or padding: one number for both dimensions (`3`), or
/// `[height, width]` (`[1, 5]`).
#[derive(
    serde::Serialize, serde::Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq,
)]
#[serde(untagged)]
pub enum Size2 {
    /// The same along height and width.
    Both(usize),
    /// `[height, width]`.
    HeightWidth([usize; 2]),
}

impl Size2 {
    /// `(height, width)`.
    pub fn hw(self) -> (usize, usize) {
        match self {
            Size2::Both(n) => (n, n),
            Size2::HeightWidth([h, w]) => (h, w),
        }
    }

    /// The one number when height and width agree.
    pub fn square(self) -> Option<usize> {
        let (h, w) = self.hw();
        (h == w).then_some(h)
    }

    /// Whether either dimension is zero.
    pub fn has_zero(self) -> bool {
        let (h, w) = self.hw();
        h == 0 || w == 0
    }
}

impl From<usize> for Size2 {
    fn from(n: usize) -> Size2 {
        Size2::Both(n)
    }
}

/// Product of a shape's dimensions.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}
