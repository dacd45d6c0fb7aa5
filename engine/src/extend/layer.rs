//! Layers from a user's crate: an [`Op`] (shape rule, parameters, CPU reference, kernels)
//! built from settings.

use ops::Op;
use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;

use super::SpecError;
use super::callback::checked_spec;
use crate::spec::tagged::{PATH_MARK, split_marked};

/// A layer a binary adds with
/// [`EngineBuilder::register_layer`](super::EngineBuilder::register_layer).
///
/// Written in a model's `layers:` (or a node's `op:`) as `- <NAME>` when every setting
/// has a default, or `- <NAME>: {...}`. The op is the same trait the built-in layers
/// implement ([`ops::Op`]): its `kind()` must return [`Layer::NAME`]. Element-wise
/// activations can use [`ops::elementwise`]'s drivers with two WGSL functions.
pub trait Layer: Op + Sized + 'static {
    /// Its settings (use `#[serde(deny_unknown_fields)]`).
    type Spec: DeserializeOwned + JsonSchema;
    /// The layer name (snake_case, not a built-in layer's).
    const NAME: &'static str;
    /// One sentence for `engine schema`.
    const DESCRIPTION: &'static str;

    /// The op for these settings; an error is shown located at the field.
    fn new(spec: Self::Spec) -> Result<Self, SpecError>;
}

/// A registered layer with its type erased.
pub(crate) struct LayerEntry {
    pub name: &'static str,
    pub description: &'static str,
    /// Its settings' JSON Schema.
    pub schema: fn() -> Schema,
    pub make: ops::layer::MakeOp,
}

impl LayerEntry {
    pub fn of<L: Layer>() -> LayerEntry {
        LayerEntry {
            name: L::NAME,
            description: L::DESCRIPTION,
            schema: || schemars::schema_for!(L::Spec),
            make: |value| {
                let op = checked_spec::<L::Spec>(value.clone(), |_| Ok(()))
                    .and_then(|spec| {
                        L::new(spec)
                            .map_err(|e| format!("{PATH_MARK}{}{PATH_MARK}{}", e.field, e.message))
                    })
                    .map_err(|marked| {
                        // The path inside the settings, under the layer's key.
                        let (inner, message) = split_marked(&marked);
                        let path = if inner.is_empty() {
                            L::NAME.to_string()
                        } else {
                            format!("{}.{inner}", L::NAME)
                        };
                        format!("{PATH_MARK}{path}{PATH_MARK}{message}")
                    })?;
                Ok(Box::new(op) as Box<dyn Op>)
            },
        }
    }
}
