use ops::init::Init;
use ops::layer::LayerSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A model: a declared per-sample input shape, and either a list of layers applied in
/// order (`layers:`) or a graph of named nodes (`nodes:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Per-sample input shape, without the batch dimension: `[64]`, `[1, 28, 28]`.
    pub input: Vec<usize>,
    /// How weights are initialised (biases start at zero).
    #[serde(default)]
    pub init: Init,
    /// Layers applied in order, e.g. `- linear: {out: 100}` then `- relu`. Parameters are
    /// named `layers.<i>.<param>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerSpec>,
    /// The model as a graph instead of `layers:`: named nodes, each an op reading the
    /// nodes (or the `input`) it names, e.g. a residual connection
    /// `{id: sum, op: add, inputs: [fc2, act1]}`. The last node is the model's output.
    /// Parameters are named `<node id>.<param>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeSpec>,
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

/// One node of a model written as `nodes:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Its name, unique in the model (not `input`): other nodes read it by this name and
    /// its parameters are `<id>.<param>`.
    pub id: String,
    /// The op it applies, written as a layer is (`relu`, `linear: {out: 64}`, `add`).
    pub op: LayerSpec,
    /// The nodes it reads, by id, or `input` (the model's input); `add` reads two. Default:
    /// the node listed before it (the model's input for the first node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}
