//! The JSON Schema of the pipeline format, generated from the Rust types.

use crate::spec::Pipeline;

/// The pipeline JSON Schema as pretty-printed JSON with a trailing newline.
pub fn pipeline_schema() -> String {
    let schema = schemars::schema_for!(Pipeline);
    // Serialising a schemars Schema (a JSON value) cannot fail.
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
