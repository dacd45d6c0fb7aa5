//! `--set key.path=value`: edits the YAML tree before it is typed, so overrides are
//! checked exactly like the file itself.

// A diagnostic is built at most once per override, never on a hot path; boxing it would
// only add noise.
#![allow(clippy::result_large_err)]

use crate::diag::{Diagnostic, SourceId, Sources, Span, did_you_mean};

use super::node::{Entry, Node, Value, parse_yaml};

/// Splits `key.path=value` into its path segments and value text.
pub fn parse_override(text: &str) -> Option<(Vec<&str>, &str)> {
    let (path, value) = text.split_once('=')?;
    let segs: Vec<&str> = path.split('.').collect();
    segs.iter().all(|s| !s.is_empty()).then_some((segs, value))
}

/// Applies the override held in source `id` to `doc`.
///
/// Path segments name mapping keys; in a list they are an index or the `id` of an item
/// (`stages.step.optimizer.lr`). The last key may be new (an optional field); every
/// earlier one must exist.
pub(super) fn apply_override(
    doc: &mut Node,
    sources: &Sources,
    id: SourceId,
) -> Result<(), Diagnostic> {
    let text = sources.text(id);
    let whole = Span {
        source: id,
        start: 0,
        end: text.len(),
    };
    let Some((segs, value_text)) = parse_override(text) else {
        return Err(Diagnostic::new(
            "bad-override",
            format!("`--set {text}` is not of the form key.path=value"),
        )
        .at(Some(whole), "here")
        .hint("write e.g. `--set stages.step.optimizer.lr=0.01`"));
    };
    let value_start = text.len() - value_text.len();
    let value = parse_value(value_text, id, value_start)?;

    let mut node = &mut *doc;
    let mut offset = 0;
    for (i, seg) in segs.iter().enumerate() {
        let seg_span = Span {
            source: id,
            start: offset,
            end: offset + seg.len(),
        };
        offset += seg.len() + 1;
        let last = i + 1 == segs.len();
        let walked = segs[..i].join(".");
        node = match &mut node.value {
            Value::Map(entries) => {
                let pos = entries.iter().position(|e| e.key == *seg);
                match (pos, last) {
                    (Some(p), true) => {
                        entries[p].value = value;
                        return Ok(());
                    }
                    (Some(p), false) => &mut entries[p].value,
                    (None, true) => {
                        entries.push(Entry {
                            key: (*seg).to_string(),
                            key_span: seg_span,
                            value,
                        });
                        return Ok(());
                    }
                    (None, false) => {
                        let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
                        return Err(unknown_path(seg, &walked, seg_span, &keys));
                    }
                }
            }
            Value::Seq(items) => {
                let pos = seg.parse::<usize>().ok().filter(|i| *i < items.len()).or_else(|| {
                    items.iter().position(|item| {
                        matches!(item.entry("id").map(|e| &e.value.value), Some(Value::Str(s)) if s == seg)
                    })
                });
                let Some(p) = pos else {
                    let ids: Vec<String> = items
                        .iter()
                        .filter_map(|item| match item.entry("id").map(|e| &e.value.value) {
                            Some(Value::Str(s)) => Some(s.clone()),
                            _ => None,
                        })
                        .collect();
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    return Err(unknown_path(seg, &walked, seg_span, &ids));
                };
                if last {
                    items[p] = value;
                    return Ok(());
                }
                &mut items[p]
            }
            _ => {
                return Err(Diagnostic::new(
                    "bad-override",
                    format!("`{walked}` is a value, not a mapping or list"),
                )
                .at(Some(seg_span), "cannot go further")
                .hint(format!("override `{walked}` itself")));
            }
        };
    }
    Ok(())
}

fn unknown_path(seg: &str, walked: &str, span: Span, candidates: &[&str]) -> Diagnostic {
    let place = if walked.is_empty() {
        "the pipeline".to_string()
    } else {
        format!("`{walked}`")
    };
    Diagnostic::new(
        "unknown-override-path",
        format!("`{seg}` does not exist in {place}"),
    )
    .at(Some(span), "unknown key")
    .expected_found(
        format!("one of {}", quoted_list(candidates)),
        format!("`{seg}`"),
    )
    .maybe_hint(did_you_mean(seg, candidates.iter().copied()))
}

fn quoted_list(items: &[&str]) -> String {
    if items.is_empty() {
        return "nothing (empty)".into();
    }
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_value(text: &str, id: SourceId, offset: usize) -> Result<Node, Diagnostic> {
    let mut scratch = Sources::default();
    let scratch_id = scratch.add("value", text);
    let span = Span {
        source: id,
        start: offset,
        end: offset + text.len(),
    };
    match parse_yaml(&scratch, scratch_id) {
        Ok(mut node) => {
            rehome(&mut node, id, offset);
            Ok(node)
        }
        // An empty value means null, as in YAML.
        Err(_) if text.trim().is_empty() => Ok(Node {
            value: Value::Null,
            span,
        }),
        Err(diags) => Err(Diagnostic::new(
            "bad-override",
            "the override's value is not valid YAML",
        )
        .at(
            Some(span),
            diags.first().map(|d| d.label.clone()).unwrap_or_default(),
        )
        .hint("quote the value or write a flow list like `[1, 2]`")),
    }
}

fn rehome(node: &mut Node, id: SourceId, offset: usize) {
    let shift = |s: &mut Span| {
        s.source = id;
        s.start += offset;
        s.end += offset;
    };
    shift(&mut node.span);
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| rehome(n, id, offset)),
        Value::Map(entries) => entries.iter_mut().for_each(|e| {
            shift(&mut e.key_span);
            rehome(&mut e.value, id, offset);
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::node::Seg;
    use super::*;

    fn doc(sources: &mut Sources, text: &str) -> Node {
        let id = sources.add("p.yaml", text);
        parse_yaml(sources, id).unwrap()
    }

    #[test]
    fn sets_values_by_key_and_by_list_id() {
        let mut sources = Sources::default();
        let mut node = doc(
            &mut sources,
            "seed: 1\nstages:\n  - id: step\n    lr: 0.1\n",
        );
        for arg in ["seed=7", "stages.step.lr=0.5", "stages.0.momentum=0.9"] {
            let id = sources.add("set", arg);
            apply_override(&mut node, &sources, id).unwrap();
        }
        assert_eq!(node.entry("seed").unwrap().value.value, Value::Int(7));
        let stage = node
            .get(&[Seg::Key("stages".into()), Seg::Index(0)])
            .unwrap();
        assert_eq!(stage.entry("lr").unwrap().value.value, Value::Float(0.5));
        assert_eq!(
            stage.entry("momentum").unwrap().value.value,
            Value::Float(0.9)
        );
    }

    #[test]
    fn rejects_unknown_paths_with_suggestion() {
        let mut sources = Sources::default();
        let mut node = doc(
            &mut sources,
            "stages:\n  - id: step\n    optimizer: {lr: 1}\n",
        );
        let id = sources.add("set", "stages.stpe.optimizer.lr=2");
        let err = apply_override(&mut node, &sources, id).unwrap_err();
        assert_eq!(err.code, "unknown-override-path");
        assert_eq!(err.hint.as_deref(), Some("did you mean `step`?"));
    }
}
