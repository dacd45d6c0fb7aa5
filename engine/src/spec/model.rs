use std::collections::BTreeMap;

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

/// One node of a model written as `nodes:`: an op, or an instance of a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Its name, unique in the model (not `input`): other nodes read it by this name and
    /// its parameters are `<id>.<param>` (`<id>.<block node>.<param>` for a block).
    pub id: String,
    /// The op it applies, written as a layer is (`relu`, `linear: {out: 64}`, `add`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<LayerSpec>,
    /// Instead of `op`: the block (from the pipeline's `blocks:`) this node instantiates.
    /// Its nodes become `<id>.<node>`; other nodes reading `<id>` read the block's last
    /// node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
    /// The block's arguments, e.g. `{channels: 32}`: every `$channels` in its ops'
    /// attributes stands for 32.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, serde_json::Value>,
    /// The nodes it reads, by id, or `input` (the model's input); `add` reads two, a block
    /// as many as its `inputs`. Default: the node listed before it (the model's input for
    /// the first node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

/// A reusable piece of a model: nodes with parameters, defined once under `blocks:` and
/// instantiated by nodes (`{id: block1, block: residual, args: {channels: 16}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    /// Parameters every instance must give in its `args:`; `$name` in an op's attributes
    /// stands for the value (`conv2d: {out_channels: $channels, kernel: 3}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Parameters with a default value, which an instance's `args:` may override.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defaults: BTreeMap<String, serde_json::Value>,
    /// Names of the tensors the block reads, as its nodes refer to them (default `[x]`);
    /// an instance's `inputs:` gives them in this order.
    #[serde(default = "default_block_inputs")]
    pub inputs: Vec<String>,
    /// The block's nodes, as a model's; the last is the block's output.
    pub nodes: Vec<BlockNodeSpec>,
}

fn default_block_inputs() -> Vec<String> {
    vec!["x".to_string()]
}

/// One node of a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockNodeSpec {
    /// Its name inside the block; an instance `block1` names it `block1.<id>`.
    pub id: String,
    /// The op, written as a layer is; attribute values may be `$arg` (a block parameter).
    pub op: serde_json::Value,
    /// Nodes of the block or the block's `inputs` it reads. Default: the node listed before
    /// it (the block's first input for the first node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}
