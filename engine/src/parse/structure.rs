//! Typed deserialisation that reports every structural problem, not only the first.
//!
//! serde stops at the first error. We locate it (serde_path_to_error), turn it into a
//! diagnostic, remove the offending part of the tree, and try again, until the document
//! deserialises or nothing more can be removed.

use crate::diag::{Diagnostic, did_you_mean};
use crate::spec::Pipeline;
use crate::spec::tagged::{join_paths, split_marked};

use super::node::{Node, Seg, Value};
use super::parse_path;

/// Upper bound on reported structural problems in one file.
const MAX_ERRORS: usize = 64;

/// Deserialises `doc` into a pipeline, or returns every structural problem found.
///
/// When every problem could be repaired by renaming a misspelt key to the key it is
/// closest to, the repaired pipeline comes back with those diagnostics, so the later
/// checks still run and all problems are reported together.
pub(super) fn deserialize(doc: &mut Node) -> Result<(Pipeline, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let mut only_renames = true;
    let mut removed_required: Vec<(Vec<Seg>, String)> = Vec::new();
    // Mappings a wrong value was removed from: their own complaint that follows (an
    // emptied `schedule: {}`) is a consequence, repaired without a second diagnostic.
    let mut removed_from: Vec<Vec<Seg>> = Vec::new();
    if doc.entries().is_none() {
        return Err(vec![
            Diagnostic::new("not-a-mapping", "a pipeline file must be a YAML mapping")
                .at(Some(doc.span), "found this instead")
                .expected_found(
                    "keys such as `version`, `name`, `datasets`, `models`, `stages`",
                    doc.describe(),
                )
                .hint("start from one of the examples in pipelines/"),
        ]);
    }
    // Repairs remove list items; messages name paths as the user wrote them.
    let original = doc.clone();
    while diagnostics.len() < MAX_ERRORS {
        let err = match serde_path_to_error::deserialize::<_, Pipeline>(doc.to_json()) {
            Ok(pipeline) if only_renames => return Ok((pipeline, diagnostics)),
            Ok(_) => break,
            Err(err) => err,
        };
        let outer = err.path().to_string();
        let inner_message = err.inner().to_string();
        let (inner, message) = split_marked(&inner_message);
        let path = parse_path(&join_paths(&outer, inner));
        let problem = Problem::classify(message, doc.get(&path));
        if let Problem::MissingField(field) = &problem
            && removed_required
                .iter()
                .any(|(p, f)| p == &path && f == field)
        {
            // Already reported as a wrong value that we had to remove.
            break;
        }
        let consequence = matches!(problem, Problem::Other { .. }) && removed_from.contains(&path);
        if !consequence {
            diagnostics.push(problem.diagnostic(doc, &path, &original));
        }
        match problem.repair(doc, &path) {
            Repair::Renamed => {}
            Repair::Done => only_renames = false,
            Repair::RemovedKey(field) => {
                only_renames = false;
                let mut parent = path.clone();
                parent.pop();
                removed_from.push(parent.clone());
                removed_required.push((parent, field));
            }
            Repair::Impossible => break,
        }
    }
    Err(diagnostics)
}

enum Problem {
    UnknownField {
        field: String,
        expected: Vec<String>,
    },
    UnknownVariant {
        variant: String,
        expected: Vec<String>,
    },
    MissingField(String),
    /// A one-key mapping (`schedule`, a layer) given several keys, e.g. a misspelt key
    /// added next to the right one (`--set schedule.epoch=3`): the key to blame is the one
    /// written elsewhere than the mapping (an override), else the last.
    SeveralKeys {
        blamed: String,
        others: Vec<String>,
    },
    Other {
        message: String,
    },
}

enum Repair {
    Renamed,
    Done,
    RemovedKey(String),
    Impossible,
}

impl Problem {
    fn classify(message: &str, node: Option<&Node>) -> Problem {
        if message.ends_with("expected map with a single key")
            && let Some(Node {
                value: Value::Map(entries),
                span,
            }) = node
            && entries.len() > 1
        {
            let blamed = entries
                .iter()
                .find(|e| e.key_span.source != span.source)
                .or(entries.last())
                .map(|e| e.key.clone())
                .unwrap_or_default();
            let others = entries
                .iter()
                .filter(|e| e.key != blamed)
                .map(|e| e.key.clone())
                .collect();
            return Problem::SeveralKeys { blamed, others };
        }
        if let Some(rest) = message.strip_prefix("unknown field `")
            && let Some((field, tail)) = rest.split_once('`')
        {
            return Problem::UnknownField {
                field: field.into(),
                expected: backticked(tail),
            };
        }
        if let Some(rest) = message.strip_prefix("unknown variant `")
            && let Some((variant, tail)) = rest.split_once('`')
        {
            return Problem::UnknownVariant {
                variant: variant.into(),
                expected: backticked(tail),
            };
        }
        if let Some(rest) = message.strip_prefix("missing field `")
            && let Some((field, _)) = rest.split_once('`')
        {
            return Problem::MissingField(field.into());
        }
        Problem::Other {
            message: message.to_string(),
        }
    }

    /// The diagnostic at `path` of the repaired `doc`, its paths named as in `original`.
    fn diagnostic(&self, doc: &Node, path: &[Seg], original: &Node) -> Diagnostic {
        let stage = stage_of(doc, path);
        let describe_path = |p: &[Seg]| describe_path(&as_written(doc, original, p));
        let place = describe_path(path);
        let diag = match self {
            Problem::UnknownField { field, expected } => {
                let map_path = map_holding(doc, path, field);
                let mut key_path = map_path.clone();
                key_path.push(Seg::Key(field.clone()));
                Diagnostic::new(
                    "unknown-key",
                    format!("unknown key `{field}` in {}", describe_path(&map_path)),
                )
                .at(
                    doc.key_or_value_span(&key_path).or(span_near(doc, path)),
                    "not a known key here",
                )
                .expected_found(one_of(expected), format!("`{field}`"))
                .maybe_hint(did_you_mean(field, expected.iter().map(String::as_str)))
            }
            Problem::UnknownVariant { variant, expected } => {
                let what = path.iter().rev().find_map(|s| match s {
                    Seg::Key(k) => Some(k.as_str()),
                    Seg::Index(_) => None,
                });
                let what = match what {
                    Some("on") => "trigger",
                    Some("layers") => "layer",
                    Some("metrics") => "metric",
                    Some("type") => "callback type",
                    Some(other) => other,
                    None => "value",
                };
                // Families a binary can extend (docs/extending.md): the name may be
                // another binary's.
                let extensible = matches!(what, "fn" | "callback type" | "layer" | "metric")
                    || (what == "kind"
                        && path
                            .iter()
                            .any(|s| matches!(s, Seg::Key(k) if k == "source" || k == "schedule" || k == "optimizer")));
                let hint = did_you_mean(variant, expected.iter().map(String::as_str)).or_else(|| {
                    extensible.then(|| {
                        format!("if `{variant}` comes from a binary built with its own extensions (docs/extending.md), run the pipeline with that binary")
                    })
                });
                Diagnostic::new(
                    "unknown-variant",
                    format!("unknown {what} `{variant}` in {place}"),
                )
                .at(value_span_of(doc, path, variant), "not a known name")
                .expected_found(one_of(expected), format!("`{variant}`"))
                .maybe_hint(hint)
            }
            Problem::MissingField(field) => {
                Diagnostic::new("missing-key", format!("missing key `{field}` in {place}"))
                    .at(
                        doc.key_or_value_span(path).or(span_near(doc, path)),
                        format!("`{field}` is required here"),
                    )
                    .expected_found(format!("a `{field}:` key"), "none")
                    .hint(match extension_at(doc, path) {
                        Some(name) => format!(
                            "add `{field}:` (`{} schema` describes the settings of `{name}`)",
                            crate::extend::program_name()
                        ),
                        None => format!("add `{field}:` (see docs/pipeline.md for its meaning)"),
                    })
            }
            Problem::SeveralKeys { blamed, others } => {
                let mut key_path = path.to_vec();
                key_path.push(Seg::Key(blamed.clone()));
                let found: Vec<String> = others
                    .iter()
                    .chain(std::iter::once(blamed))
                    .map(|k| format!("`{k}`"))
                    .collect();
                Diagnostic::new(
                    "invalid-value",
                    format!("{place} takes exactly one key; `{blamed}` is one too many"),
                )
                .at(
                    doc.key_or_value_span(&key_path).or(span_near(doc, path)),
                    "a second key",
                )
                .expected_found("exactly one key, e.g. `{epochs: 10}`", found.join(", "))
                .hint(
                    did_you_mean(blamed, others.iter().map(String::as_str))
                        .map(|h| format!("{h} (it is already set; change its value instead)"))
                        .unwrap_or_else(|| format!("keep one of {}", found.join(", "))),
                )
            }
            Problem::Other { message } => {
                let (expected, found) = expected_found(message);
                let found = found.or_else(|| doc.get(path).map(Node::describe));
                let mut d = Diagnostic::new("invalid-value", format!("invalid value for {place}"))
                    .at(span_near(doc, path), message.clone());
                if let Some(expected) = expected {
                    d = d.expected_found(expected, found.unwrap_or_default());
                }
                d.hint(match extension_at(doc, path) {
                    Some(name) => format!(
                        "`{} schema` (and so your editor) describes the settings of `{name}`",
                        crate::extend::program_name()
                    ),
                    None => {
                        "see docs/pipeline.md or the schema description of this key in your editor"
                            .into()
                    }
                })
            }
        };
        match stage {
            Some(id) => diag.stage(&crate::spec::StageId(id)),
            None => diag,
        }
    }

    fn repair(&self, doc: &mut Node, path: &[Seg]) -> Repair {
        if let Problem::SeveralKeys { blamed, .. } = self
            && let Some(Node {
                value: Value::Map(entries),
                ..
            }) = doc.get_mut(path)
        {
            entries.retain(|e| &e.key != blamed);
            return Repair::Done;
        }
        if let Problem::UnknownField { field, expected } = self {
            let map_path = map_holding(doc, path, field);
            if let Some(Node {
                value: Value::Map(entries),
                ..
            }) = doc.get_mut(&map_path)
            {
                // A likely typo is renamed to what was meant, so the rest of the mapping
                // is checked as intended instead of reporting the key as missing too.
                let intended =
                    closest(field, expected).filter(|c| !entries.iter().any(|e| &e.key == c));
                return match intended {
                    Some(name) => {
                        entries
                            .iter_mut()
                            .filter(|e| &e.key == field)
                            .for_each(|e| e.key = name.clone());
                        Repair::Renamed
                    }
                    None => {
                        entries.retain(|e| &e.key != field);
                        Repair::Done
                    }
                };
            }
        }
        if remove_enclosing_item(doc, path) {
            return Repair::Done;
        }
        if let (false, Some((Seg::Key(k), parent))) =
            (matches!(self, Problem::MissingField(_)), path.split_last())
            && let Some(Node {
                value: Value::Map(entries),
                ..
            }) = doc.get_mut(parent)
        {
            entries.retain(|e| &e.key != k);
            return Repair::RemovedKey(k.clone());
        }
        Repair::Impossible
    }
}

/// `path` of the repaired `doc` as it reads in the `original` document: list indices
/// shifted by removed items are mapped back by the items' source spans (each node keeps
/// where it is written).
fn as_written(doc: &Node, original: &Node, path: &[Seg]) -> Vec<Seg> {
    let mut out = Vec::with_capacity(path.len());
    for (depth, seg) in path.iter().enumerate() {
        let mapped = match seg {
            Seg::Index(_) => {
                let span = doc.get(&path[..=depth]).map(|n| n.span);
                match (original.get(&out), span) {
                    (
                        Some(Node {
                            value: Value::Seq(items),
                            ..
                        }),
                        Some(span),
                    ) => items
                        .iter()
                        .position(|n| n.span == span)
                        .map_or(seg.clone(), Seg::Index),
                    _ => seg.clone(),
                }
            }
            Seg::Key(_) => seg.clone(),
        };
        out.push(mapped);
    }
    out
}

/// Removes the innermost list item or named data set / model that contains `path`.
fn remove_enclosing_item(doc: &mut Node, path: &[Seg]) -> bool {
    for depth in (1..=path.len()).rev() {
        let (parent, last) = (&path[..depth - 1], &path[depth - 1]);
        let user_keyed = matches!(parent, [Seg::Key(k)] if k == "datasets" || k == "models");
        match (doc.get_mut(parent), last) {
            (
                Some(Node {
                    value: Value::Seq(items),
                    ..
                }),
                Seg::Index(i),
            ) if *i < items.len() => {
                items.remove(*i);
                return true;
            }
            (
                Some(Node {
                    value: Value::Map(entries),
                    ..
                }),
                Seg::Key(k),
            ) if user_keyed => {
                entries.retain(|e| &e.key != k);
                return true;
            }
            _ => {}
        }
    }
    false
}

/// The path of the mapping that holds the unknown key `field`.
fn map_holding(doc: &Node, path: &[Seg], field: &str) -> Vec<Seg> {
    if let Some((Seg::Key(k), parent)) = path.split_last()
        && k == field
    {
        return parent.to_vec();
    }
    if doc.get(path).and_then(|n| n.entry(field)).is_some() {
        return path.to_vec();
    }
    path.to_vec()
}

fn span_near(doc: &Node, path: &[Seg]) -> Option<crate::diag::Span> {
    (0..=path.len())
        .rev()
        .find_map(|n| doc.get(&path[..n]).map(|node| node.span))
}

/// Span of the misspelt name: the value at `path`, or the tag key's value inside it.
fn value_span_of(doc: &Node, path: &[Seg], name: &str) -> Option<crate::diag::Span> {
    let node = doc.get(path)?;
    match &node.value {
        Value::Str(s) if s == name => Some(node.span),
        Value::Map(entries) => entries
            .iter()
            .find(|e| e.key == name || matches!(&e.value.value, Value::Str(s) if s == name))
            .map(|e| {
                if e.key == name {
                    e.key_span
                } else {
                    e.value.span
                }
            }),
        _ => Some(node.span),
    }
    .or_else(|| span_near(doc, path))
}

/// The id of the stage a path lies in, if any.
fn stage_of(doc: &Node, path: &[Seg]) -> Option<String> {
    let [Seg::Key(stages), Seg::Index(i), ..] = path else {
        return None;
    };
    if stages != "stages" {
        return None;
    }
    let stage = doc.get(&[Seg::Key("stages".into()), Seg::Index(*i)])?;
    match &stage.entry("id")?.value.value {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// `stages[3].optimizer` → "`stages[3].optimizer`"; the root → "the pipeline".
fn describe_path(path: &[Seg]) -> String {
    if path.is_empty() {
        return "the pipeline".into();
    }
    let mut text = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if text.is_empty() => text.push_str(k),
            Seg::Key(k) => {
                text.push('.');
                text.push_str(k);
            }
            Seg::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    format!("`{text}`")
}

fn closest(word: &str, candidates: &[String]) -> Option<String> {
    let hint = did_you_mean(word, candidates.iter().map(String::as_str))?;
    candidates
        .iter()
        .find(|c| hint == format!("did you mean `{c}`?"))
        .cloned()
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn one_of(items: &[String]) -> String {
    match items {
        [] => "no keys here".into(),
        [one] => format!("`{one}`"),
        _ => format!(
            "one of {}",
            items
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Splits serde's "invalid type: X, expected Y" into friendlier (expected, found).
fn expected_found(message: &str) -> (Option<String>, Option<String>) {
    let body = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .or_else(|| message.strip_prefix("invalid length "));
    let Some((found, expected)) = body.and_then(|b| b.rsplit_once(", expected ")) else {
        return (None, None);
    };
    let friendly = match expected {
        "usize" | "u32" | "u64" | "u16" | "u8" => "a non-negative integer".to_string(),
        "i64" | "i32" => "an integer".to_string(),
        "f64" | "f32" => "a number".to_string(),
        "a boolean" => "`true` or `false`".to_string(),
        // serde names the Rust type ("struct LinearAttrs"); users write a mapping.
        other if other.starts_with("struct ") => {
            "a mapping of its settings, e.g. `{out: 10}`".to_string()
        }
        "map with a single key" => {
            "exactly one key, e.g. `{epochs: 10}` or `{steps: 500}`".to_string()
        }
        "a sequence" => "a list, e.g. `[epoch_end]`".to_string(),
        other => other.to_string(),
    };
    (Some(friendly), Some(found.to_string()))
}

/// The registered extension (`engine::extend`) whose settings hold `path`, by name: a
/// callback, source or LR schedule whose `type`/`kind` names it, a registered loss's
/// `params`, or a registered layer's key.
fn extension_at(doc: &Node, path: &[Seg]) -> Option<String> {
    let registry = crate::extend::registry();
    let text = |node: &Node, key: &str| match node.entry(key).map(|e| &e.value.value) {
        Some(super::node::Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    (0..path.len()).rev().find_map(|n| {
        let node = doc.get(&path[..n])?;
        let below = match path.get(n) {
            Some(Seg::Key(k)) => Some(k.as_str()),
            _ => None,
        };
        let tagged = ["type", "kind"].into_iter().find_map(|tag| {
            let name = text(node, tag)?;
            let registered = registry.callback(&name).is_some()
                || registry.source(&name).is_some()
                || registry.lr_schedules.iter().any(|e| e.name == name)
                || registry.optimizers.iter().any(|e| e.name == name);
            registered.then_some(name)
        });
        let loss = (below == Some("params"))
            .then(|| text(node, "fn"))
            .flatten()
            .filter(|name| registry.loss(name).is_some());
        let layer = below
            .filter(|k| registry.layers.iter().any(|l| l.name == *k))
            .map(str::to_string);
        tagged.or(loss).or(layer)
    })
}
