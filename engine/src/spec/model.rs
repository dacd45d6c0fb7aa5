use ops::init::Init;
use ops::layer::LayerSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A sequential model: a declared per-sample input shape and a list of layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Per-sample input shape, without the batch dimension: `[64]`, `[1, 28, 28]`.
    pub input: Vec<usize>,
    /// How weights are initialised (biases start at zero).
    #[serde(default)]
    pub init: Init,
    /// Layers applied in order, e.g. `- linear: {out: 100}` then `- relu`.
    pub layers: Vec<LayerSpec>,
    /// Start from these weights instead of the init: a checkpoint directory or a
    /// `.safetensors` file (relative to the pipeline file), e.g. one `engine export` wrote.
    /// Tensors named `<model>.<tensor>` are this model's; otherwise `layers.<i>.<param>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
    /// No step stage updates this model: no gradients, no optimizer state, evaluation mode
    /// (dropout off). A frozen model can feed the first forward of a training chain (a
    /// pre-trained encoder) or a distillation loss's `teacher`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
}
