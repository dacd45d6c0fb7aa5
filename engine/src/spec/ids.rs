use std::fmt;

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The id of a stage, unique within a pipeline (`batch`, `fwd`, `train_loss`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StageId(pub String);

impl JsonSchema for StageId {
    fn schema_name() -> Cow<'static, str> {
        "StageId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A stage id: letters, digits, `_` and `-`, starting with a letter or `_`.",
            "pattern": r"^[A-Za-z_][A-Za-z0-9_-]*$"
        })
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reference to another stage's output, written `stage.port` (`fwd.logits`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PortRef(pub String);

impl JsonSchema for PortRef {
    fn schema_name() -> Cow<'static, str> {
        "PortRef".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "Another stage's output, written `stage.port`, e.g. `fwd.logits` or `batch.labels`.",
            "pattern": r"^[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_]*$"
        })
    }
}

impl PortRef {
    /// The stage and port names, when the reference has the `stage.port` form.
    pub fn split(&self) -> Option<(&str, &str)> {
        let (stage, port) = self.0.split_once('.')?;
        (!stage.is_empty() && !port.is_empty()).then_some((stage, port))
    }
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
