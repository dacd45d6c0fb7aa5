//! Hyperparameters picked from `pipeline.resolved.yaml`. The file is read as a plain
//! `serde_yaml::Value` and every field is optional, so a pipeline written by another
//! version of the engine still yields whatever rows can be found.

use serde_yaml::Value;

/// The order of the hyperparameter rows; others (the evals) follow in stage order.
const ROW_ORDER: [&str; 11] = [
    "seed",
    "schedule",
    "device",
    "batch size",
    "accumulation",
    "loss",
    "optimizer",
    "learning rate",
    "lr schedule",
    "clip grad norm",
    "early stopping",
];

/// What the report shows of the resolved pipeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineSummary {
    /// `name:`.
    pub name: Option<String>,
    /// From the first line, `# pipeline hash <hex>`.
    pub hash: Option<String>,
    /// (name, value) rows of the hyperparameter table.
    pub rows: Vec<(String, String)>,
    /// One entry per model.
    pub models: Vec<ModelSummary>,
    /// Why the YAML could not be read, if it could not.
    pub problem: Option<String>,
}

/// A model's input, initialisation and layers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// The model's key under `models:`.
    pub name: String,
    /// `input [1, 8, 8], init kaiming_uniform`.
    pub header: String,
    /// `conv2d(out_channels=16, kernel=3)`, one per layer.
    pub layers: Vec<String>,
}

/// Reads the resolved pipeline text.
pub fn summarise_pipeline(text: &str) -> PipelineSummary {
    let hash = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# pipeline hash "))
        .map(|h| h.trim().to_string());
    let root: Value = match serde_yaml::from_str(text) {
        Ok(root) => root,
        Err(e) => {
            return PipelineSummary {
                hash,
                problem: Some(format!("the resolved pipeline is not valid YAML: {e}")),
                ..Default::default()
            };
        }
    };
    let mut rows = Vec::new();
    let mut row = |name: &str, value: String| rows.push((name.to_string(), value));
    if let Some(seed) = get(&root, "seed") {
        row("seed", inline(seed));
    }
    if let Some(schedule) = get(&root, "schedule") {
        row("schedule", schedule_text(schedule));
    }
    if let Some(backend) = get(&root, "device").and_then(|d| get(d, "backend")) {
        row("device", inline(backend));
    }
    let stages = get(&root, "stages")
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (mut accumulation, mut clip) = (None, None);
    for stage in stages {
        let field = |key: &str| get(stage, key).map(inline).unwrap_or_else(|| "?".into());
        match get(stage, "kind").and_then(Value::as_str) {
            Some("load") => row(
                "batch size",
                format!(
                    "{} ({}/{})",
                    field("batch_size"),
                    field("dataset"),
                    field("split")
                ),
            ),
            Some("loss") => row(
                "loss",
                with_params(
                    &field("fn"),
                    stage,
                    &["id", "kind", "fn", "logits", "target"],
                ),
            ),
            Some("accumulate") => {
                accumulation = Some(format!("{} micro-batches per step", field("steps")))
            }
            Some("step") => {
                if let Some(optimizer) = get(stage, "optimizer") {
                    let kind = get(optimizer, "kind")
                        .map(inline)
                        .unwrap_or_else(|| "?".into());
                    row("optimizer", with_params(&kind, optimizer, &["kind", "lr"]));
                    if let Some(lr) = get(optimizer, "lr") {
                        row("learning rate", inline(lr));
                    }
                }
                clip = get(stage, "clip_grad_norm").map(inline);
            }
            Some("eval") => row(&format!("eval {}", field("id")), eval_text(stage)),
            Some("callback") => {
                let Some(callback) = get(stage, "callback") else {
                    continue;
                };
                match get(callback, "type").and_then(Value::as_str) {
                    Some("lr_schedule") => {
                        let schedule = get(callback, "schedule")
                            .map(variant_text)
                            .unwrap_or_else(|| "?".into());
                        row("lr schedule", schedule);
                    }
                    Some("early_stopping") => {
                        row("early stopping", with_params("", callback, &["type"]))
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    row(
        "accumulation",
        accumulation.unwrap_or_else(|| "none (1 micro-batch per step)".into()),
    );
    row("clip grad norm", clip.unwrap_or_else(|| "none".into()));
    // Stages come in graph order; the table reads better grouped by concern.
    rows.sort_by_key(|(name, _)| {
        ROW_ORDER
            .iter()
            .position(|n| n == name)
            .unwrap_or(ROW_ORDER.len())
    });
    let models = get(&root, "models")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(name, model)| model_summary(&inline(name), model))
                .collect()
        })
        .unwrap_or_default();
    let name = get(&root, "name")
        .and_then(Value::as_str)
        .map(str::to_string);
    PipelineSummary {
        name,
        hash,
        rows,
        models,
        problem: None,
    }
}

fn model_summary(name: &str, model: &Value) -> ModelSummary {
    let mut header = Vec::new();
    for key in ["input", "init"] {
        if let Some(v) = get(model, key) {
            header.push(format!("{key} {}", inline(v)));
        }
    }
    let mut layers: Vec<String> = get(model, "layers")
        .and_then(Value::as_sequence)
        .map(|l| l.iter().map(variant_text).collect())
        .unwrap_or_default();
    // A model written as nodes: `id = op(inputs)`.
    if let Some(nodes) = get(model, "nodes").and_then(Value::as_sequence) {
        layers.extend(nodes.iter().map(|n| {
            let id = get(n, "id").map(inline).unwrap_or_default();
            let op = match (get(n, "op"), get(n, "block")) {
                (Some(op), _) => variant_text(op),
                (None, Some(block)) => match get(n, "args") {
                    Some(args) => format!("block {} {}", inline(block), inline(args)),
                    None => format!("block {}", inline(block)),
                },
                (None, None) => String::new(),
            };
            match get(n, "inputs") {
                Some(inputs) => format!("{id} = {op} <- {}", inline(inputs)),
                None => format!("{id} = {op}"),
            }
        }));
    }
    ModelSummary {
        name: name.to_string(),
        header: header.join(", "),
        layers,
    }
}

fn eval_text(stage: &Value) -> String {
    let mut text = String::new();
    if let (Some(dataset), Some(split)) = (get(stage, "dataset"), get(stage, "split")) {
        text = format!("{}/{}", inline(dataset), inline(split));
    }
    for (key, label) in [("on", "on"), ("every", "every"), ("metrics", "metrics")] {
        if let Some(v) = get(stage, key) {
            text.push_str(&format!(", {label} {}", inline(v)));
        }
    }
    text
}

/// `!epochs 30` → `30 epochs`; `{steps: 500}` → `500 steps`.
fn schedule_text(schedule: &Value) -> String {
    match variant(schedule) {
        Some((unit, Some(count))) if count.is_number() => format!("{} {unit}", inline(count)),
        _ => inline(schedule),
    }
}

/// `name(key=value, ...)` for an enum-like value: a tag, a one-key mapping, a mapping
/// with `kind`, or a bare string.
fn variant_text(value: &Value) -> String {
    match variant(value) {
        Some((name, None)) => name,
        Some((name, Some(params))) => match untag(params) {
            Value::Mapping(m) => {
                let inner: Vec<String> = m
                    .iter()
                    .filter(|(k, _)| k.as_str() != Some("kind"))
                    .map(|(k, v)| format!("{}={}", inline(k), inline(v)))
                    .collect();
                if inner.is_empty() {
                    name
                } else {
                    format!("{name}({})", inner.join(", "))
                }
            }
            other => format!("{name}({})", inline(other)),
        },
        None => inline(value),
    }
}

fn variant(value: &Value) -> Option<(String, Option<&Value>)> {
    match value {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_string(),
            Some(&tagged.value),
        )),
        Value::String(name) => Some((name.clone(), None)),
        Value::Mapping(m) if m.len() == 1 => m.iter().next().map(|(k, v)| (inline(k), Some(v))),
        Value::Mapping(m) => m.get("kind").map(|kind| (inline(kind), Some(value))),
        _ => None,
    }
}

/// `kind, key value, key value` with the keys in `skip` left out.
fn with_params(kind: &str, value: &Value, skip: &[&str]) -> String {
    let mut parts: Vec<String> = if kind.is_empty() {
        Vec::new()
    } else {
        vec![kind.to_string()]
    };
    if let Value::Mapping(m) = untag(value) {
        parts.extend(
            m.iter()
                .filter(|(k, _)| !k.as_str().is_some_and(|k| skip.contains(&k)))
                .map(|(k, v)| format!("{} {}", inline(k), inline(v))),
        );
    }
    parts.join(", ")
}

fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untag(&tagged.value),
        other => other,
    }
}

fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    untag(value).as_mapping()?.get(key)
}

/// One-line text of any value.
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(items) => format!(
            "[{}]",
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        ),
        Value::Mapping(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", inline(k), inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Tagged(_) => variant_text(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_and_plain_forms_read_alike() {
        let text = "# pipeline hash abc\nname: n\nseed: 7\nschedule: !epochs 30\nmodels:\n  m:\n    input: [4]\n    layers:\n    - !linear\n      out: 10\n    - relu\n    - linear: {out: 2}\n";
        let s = summarise_pipeline(text);
        assert_eq!(s.hash.as_deref(), Some("abc"));
        assert_eq!(s.name.as_deref(), Some("n"));
        assert!(
            s.rows.contains(&("schedule".into(), "30 epochs".into())),
            "{:?}",
            s.rows
        );
        assert_eq!(
            s.models[0].layers,
            ["linear(out=10)", "relu", "linear(out=2)"]
        );
    }

    #[test]
    fn broken_yaml_is_a_problem_not_a_panic() {
        let s = summarise_pipeline("# pipeline hash x\nname: [unclosed\n");
        assert!(s.problem.is_some());
        assert_eq!(s.hash.as_deref(), Some("x"));
    }
}
