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
}
