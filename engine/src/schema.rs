//! The JSON Schema of the pipeline format, generated from the Rust types and shaped for
//! editors (yaml-language-server, which VS Code's YAML extension runs).

use serde_json::{Map, Value};

use crate::spec::Pipeline;

/// The pipeline JSON Schema as pretty-printed JSON with a trailing newline.
pub fn pipeline_schema() -> String {
    let mut schema = schemars::schema_for!(Pipeline).to_value();
    add_extensions(&mut schema);
    for_editors(&mut schema);
    // Serialising a JSON value cannot fail.
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Adds what the binary registered (`engine::extend`) that the families' tables do not
/// already give: each layer as a one-key map (and a bare name when its settings all have
/// defaults), and each loss's settings under `params`. (Callbacks, data sources, losses,
/// metrics, optimizers and LR schedules list their registered members themselves.)
fn add_extensions(schema: &mut Value) {
    // `LayerSpec`'s `Custom` variant is untagged for serde, which makes schemars list the
    // (disjoint) variants under `anyOf`; editors and the docs read `oneOf`.
    if let Some(Value::Object(f)) = schema.pointer_mut("/$defs/LayerSpec")
        && let Some(any) = f.remove("anyOf")
    {
        f.insert("oneOf".into(), any);
    }
    let registry = crate::extend::registry();
    for l in &registry.layers {
        let settings = inline_defs(schema, (l.schema)());
        let defaults_only = settings
            .get("required")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if defaults_only {
            let bare = serde_json::json!({
                "type": "string",
                "const": l.name,
                "title": l.name,
                "description": l.description,
            });
            push_variant(schema, "LayerSpec", bare);
        }
        let mut properties = Map::new();
        properties.insert(l.name.to_string(), settings);
        let keyed = serde_json::json!({
            "type": "object",
            "title": l.name,
            "description": l.description,
            "properties": properties,
            "required": [l.name],
            "additionalProperties": false,
        });
        push_variant(schema, "LayerSpec", keyed);
    }
    let mut params = Vec::new();
    for l in &registry.losses {
        let mut settings = inline_defs(schema, (l.schema)());
        if let Value::Object(o) = &mut settings {
            o.insert("title".into(), Value::String(format!("{} params", l.name)));
            o.insert(
                "description".into(),
                Value::String(format!("Settings of `fn: {}`: {}", l.name, l.description)),
            );
        }
        params.push(settings);
    }
    let loss_stage = schema
        .pointer_mut("/$defs/Stage/oneOf")
        .and_then(Value::as_array_mut)
        .and_then(|stages| {
            stages.iter_mut().find(|s| {
                s.pointer("/properties/kind/const").and_then(Value::as_str) == Some("loss")
            })
        });
    let Some(Value::Object(properties)) = loss_stage.and_then(|s| s.get_mut("properties")) else {
        return;
    };
    if params.is_empty() {
        // Only a registered loss reads `params`: without one, an editor should not offer it.
        properties.remove("params");
    } else if let Some(Value::Object(p)) = properties.get_mut("params") {
        p.insert("anyOf".into(), Value::Array(params));
    }
}

/// A root schema made a subschema of `root`: its `$defs` moved into `root`'s (where its
/// `#/$defs/...` references then point), its own `$schema` and title dropped.
fn inline_defs(root: &mut Value, schema: schemars::Schema) -> Value {
    let mut value = schema.to_value();
    if let Value::Object(o) = &mut value {
        o.remove("$schema");
        o.remove("title");
        if let (Some(Value::Object(defs)), Some(Value::Object(all))) =
            (o.remove("$defs"), root.get_mut("$defs"))
        {
            for (k, v) in defs {
                all.entry(k).or_insert(v);
            }
        }
    }
    value
}

fn push_variant(root: &mut Value, family: &str, variant: Value) {
    if let Some(Value::Array(variants)) = root.pointer_mut(&format!("/$defs/{family}/oneOf")) {
        variants.push(variant);
    }
}

/// What editors need beyond the derived schema, applied to every subschema:
/// - in a `oneOf`, bare names (`- relu`) before one-key maps (`- linear: {...}`): the
///   language server drops the bare names' completions otherwise, and vice versa for the
///   object variants listed before them;
/// - a `title` per variant (its name), shown by completion and hover;
/// - a description on the selecting key (`kind`, `type`) naming every choice, so hovering
///   it explains it;
/// - every object closed (`additionalProperties: false`), so a misspelt key is marked.
fn for_editors(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(variants)) = map.get_mut("oneOf") {
                variants.sort_by_key(|v| !is_bare_name(v));
                for v in variants.iter_mut() {
                    let title = variant_name(v);
                    if let (Value::Object(o), Some(title)) = (v, title) {
                        o.entry("title").or_insert(Value::String(title));
                    }
                }
                describe_tag(variants);
            }
            let object = map.get("type").and_then(Value::as_str) == Some("object");
            if object && map.contains_key("properties") {
                map.entry("additionalProperties")
                    .or_insert(Value::Bool(false));
            }
            map.values_mut().for_each(for_editors);
        }
        Value::Array(items) => items.iter_mut().for_each(for_editors),
        _ => {}
    }
}

fn is_bare_name(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("string")
        && (v.get("const").is_some() || v.get("enum").is_some())
}

/// A variant's name: its constant, its tag's constant, or its one key.
fn variant_name(v: &Value) -> Option<String> {
    if let Some(c) = v.get("const").and_then(Value::as_str) {
        return Some(c.to_string());
    }
    if let Some([one]) = v.get("enum").and_then(Value::as_array).map(Vec::as_slice) {
        return one.as_str().map(str::to_string);
    }
    let properties = v.get("properties")?.as_object()?;
    if let Some((_, c)) = tag_of(properties) {
        return Some(c.to_string());
    }
    match v.get("required")?.as_array()?.as_slice() {
        [one] if properties.len() == 1 => one.as_str().map(str::to_string),
        _ => None,
    }
}

/// The selecting key of an internally tagged variant and its value.
fn tag_of(properties: &Map<String, Value>) -> Option<(&'static str, &str)> {
    ["kind", "type"].into_iter().find_map(|tag| {
        let c = properties.get(tag)?.get("const")?.as_str()?;
        Some((tag, c))
    })
}

/// Gives the selecting key of every variant a description: all choices, then this one.
fn describe_tag(variants: &mut [Value]) {
    let tagged = |v: &Value| -> Option<(&'static str, String)> {
        let (tag, name) = tag_of(v.get("properties")?.as_object()?)?;
        Some((tag, name.to_string()))
    };
    let names: Vec<String> = variants
        .iter()
        .filter_map(|v| tagged(v).map(|(_, n)| format!("`{n}`")))
        .collect();
    for v in variants.iter_mut() {
        let Some((tag, name)) = tagged(v) else {
            continue;
        };
        let about = v
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let about = about
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .replace('\n', " ");
        let text = format!(
            "Which one this is, of {}. `{name}`: {about}",
            names.join(", ")
        );
        if let Some(Value::Object(key)) = v.pointer_mut(&format!("/properties/{tag}")) {
            key.entry("description").or_insert(Value::String(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pipeline_schema;
    use crate::callbacks::{MonitorAction, MonitorCondition};
    use crate::spec::{
        AggregatorSpec, CallbackSpec, LrSchedule, Normalize, OptimizerSpec, PartitionSpec,
        SourceSpec, SplitSpec, Stage,
    };

    /// The names the parser accepts for each tagged family are unique and are exactly the
    /// variants the schema offers an editor, in the same order.
    #[test]
    fn schema_variants_are_the_parsers_names() {
        let schema: serde_json::Value = serde_json::from_str(&pipeline_schema()).unwrap();
        let families: [(&str, &[&str]); 11] = [
            ("Stage", Stage::NAMES),
            ("CallbackSpec", CallbackSpec::names()),
            ("OptimizerSpec", OptimizerSpec::names()),
            ("LrSchedule", LrSchedule::names()),
            ("SourceSpec", SourceSpec::names()),
            ("Normalize", Normalize::NAMES),
            ("SplitSpec", SplitSpec::NAMES),
            ("MonitorCondition", MonitorCondition::NAMES),
            ("MonitorAction", MonitorAction::NAMES),
            ("PartitionSpec", PartitionSpec::NAMES),
            ("AggregatorSpec", AggregatorSpec::NAMES),
        ];
        for (family, names) in families {
            let mut unique = names.to_vec();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{family}: a name twice");
            let titles: Vec<&str> = schema["$defs"][family]["oneOf"]
                .as_array()
                .unwrap_or_else(|| panic!("{family} is not a oneOf"))
                .iter()
                .filter_map(|v| v["title"].as_str())
                .collect();
            assert_eq!(titles, names, "{family}");
        }
    }
}
