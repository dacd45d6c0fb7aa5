//! The reference docs cover every name a pipeline can write: each family's names are read
//! from the committed JSON Schema (itself generated from the types, and checked against
//! them by tests/cli.rs), so adding a variant without documenting it fails here.

use std::collections::BTreeMap;

use serde_json::Value;

fn names(family: &Value) -> Vec<String> {
    match family.get("oneOf").and_then(Value::as_array) {
        Some(variants) => variants
            .iter()
            .flat_map(|v| match (v.get("title"), v.get("enum")) {
                (Some(t), _) => vec![t.as_str().unwrap_or_default().to_string()],
                (None, Some(Value::Array(e))) => e
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            })
            .collect(),
        None => family["enum"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// First cells of the markdown table rows of `text`.
fn first_cells(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix('|'))
        .filter_map(|l| l.split('|').next())
        .collect()
}

#[test]
fn every_registered_name_is_documented() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string("pipelines/pipeline.schema.json").unwrap())
            .unwrap();
    let defs = &schema["$defs"];
    let pipeline = std::fs::read_to_string("docs/pipeline.md").unwrap();
    let federated = std::fs::read_to_string("docs/federated.md").unwrap();
    // Families with a reference table: each name has a row of its own (or shares one).
    let tables: BTreeMap<&str, &str> = [
        ("CallbackSpec", pipeline.as_str()),
        ("OptimizerSpec", &pipeline),
        ("LrSchedule", &pipeline),
        ("LayerSpec", &pipeline),
        ("LossFn", &pipeline),
        ("EvalMetric", &pipeline),
        ("Init", &pipeline),
        ("Normalize", &pipeline),
        ("AggregatorSpec", &federated),
        ("PartitionSpec", &federated),
    ]
    .into_iter()
    .collect();
    let mut missing = Vec::new();
    for (family, doc) in &tables {
        let cells = first_cells(doc);
        let found = names(&defs[*family]);
        assert!(!found.is_empty(), "{family} has no names in the schema");
        for name in found {
            let quoted = format!("`{name}`");
            if !cells.iter().any(|c| c.contains(&quoted)) {
                missing.push(format!("{family} `{name}`: no table row"));
            }
        }
    }
    // The rest are written out in the text.
    for family in [
        "SourceSpec",
        "SplitSpec",
        "MonitorCondition",
        "MonitorAction",
        "Trigger",
    ] {
        for name in names(&defs[family]) {
            let mentioned = [
                format!("`{name}`"),
                format!("kind: {name}"),
                format!("{{{name}:"),
            ]
            .iter()
            .any(|m| pipeline.contains(m.as_str()));
            if !mentioned {
                missing.push(format!("{family} `{name}`: not in docs/pipeline.md"));
            }
        }
    }
    assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
}
