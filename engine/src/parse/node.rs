//! YAML text to a tree of [`Node`]s that remember where they came from.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diag::{Diagnostic, SourceId, Sources, Span};

/// A YAML value with its source span.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where the value is written.
    pub span: Span,
}

/// A YAML value (core schema).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float, including `.inf` and `.nan`.
    Float(f64),
    /// Any other scalar, or a quoted one.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<Entry>),
}

/// One key of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key as text.
    pub key: String,
    /// Where the key is written.
    pub key_span: Span,
    /// The value.
    pub value: Node,
}

/// One step of a path into a node tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Values alias expansion may copy in one file.
const MAX_ALIAS_NODES: usize = 100_000;

impl Node {
    /// Number of nodes in this tree.
    pub fn size(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::size).sum(),
            Value::Map(entries) => entries.iter().map(|e| e.value.size()).sum(),
            _ => 0,
        }
    }

    /// The mapping entries, if this is a mapping.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The entry under `key`, if this is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }

    /// The node at a path.
    pub fn get(&self, path: &[Seg]) -> Option<&Node> {
        path.iter()
            .try_fold(self, |node, seg| match (seg, &node.value) {
                (Seg::Key(k), Value::Map(entries)) => {
                    entries.iter().find(|e| &e.key == k).map(|e| &e.value)
                }
                (Seg::Index(i), Value::Seq(items)) => items.get(*i),
                _ => None,
            })
    }

    /// The node at a path, mutably.
    pub fn get_mut(&mut self, path: &[Seg]) -> Option<&mut Node> {
        path.iter()
            .try_fold(self, |node, seg| match (seg, &mut node.value) {
                (Seg::Key(k), Value::Map(entries)) => entries
                    .iter_mut()
                    .find(|e| &e.key == k)
                    .map(|e| &mut e.value),
                (Seg::Index(i), Value::Seq(items)) => items.get_mut(*i),
                _ => None,
            })
    }

    /// Span of the key at the end of `path` if it names a mapping key, else of the value.
    pub fn key_or_value_span(&self, path: &[Seg]) -> Option<Span> {
        if let Some((Seg::Key(k), parent)) = path.split_last() {
            return self.get(parent)?.entry(k).map(|e| e.key_span);
        }
        self.get(path).map(|n| n.span)
    }

    /// The value as JSON, for serde and for JSON-Schema validation.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// A short description of the value's type for messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing".into(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Int(i) => format!("integer `{i}`"),
            Value::Float(f) => format!("number `{f}`"),
            Value::Str(s) => format!("string `{s}`"),
            Value::Seq(items) => format!("a list of {}", items.len()),
            Value::Map(_) => "a mapping".into(),
        }
    }
}

/// Parses one YAML document. Syntax errors come back as located diagnostics.
pub fn parse_yaml(sources: &Sources, source: SourceId) -> Result<Node, Vec<Diagnostic>> {
    let text = sources.text(source);
    let mut builder = Builder::new(text, source);
    let mut parser = Parser::new_from_str(text);
    if let Err(err) = parser.load(&mut builder, true) {
        let span = builder.span_at(*err.marker(), 1);
        return Err(vec![
            Diagnostic::new("yaml-syntax", format!("invalid YAML: {}", err.info()))
                .at(Some(span), err.info().to_string())
                .hint("check indentation and that brackets and quotes are closed"),
        ]);
    }
    if builder.documents > 1 {
        builder.diagnostics.push(
            Diagnostic::new(
                "yaml-syntax",
                "a pipeline file holds exactly one YAML document",
            )
            .at(builder.second_document, "second document starts here")
            .hint("remove the `---` separator or split the file"),
        );
    }
    if !builder.diagnostics.is_empty() {
        return Err(builder.diagnostics);
    }
    match builder.root {
        Some(root) => Ok(root),
        None => Err(vec![
            Diagnostic::new("empty-pipeline", "the pipeline file is empty")
                .at(
                    Some(Span {
                        source,
                        start: 0,
                        end: 0,
                    }),
                    "nothing here",
                )
                .hint("start from one of the examples in pipelines/"),
        ]),
    }
}

fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Int(i);
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric && let Ok(f) = text.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

enum Frame {
    Seq {
        start: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Span,
        anchor: usize,
        entries: Vec<Entry>,
        pending_key: Option<(String, Span)>,
    },
}

struct Builder<'a> {
    text: &'a str,
    source: SourceId,
    char_to_byte: Vec<usize>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    second_document: Option<Span>,
    diagnostics: Vec<Diagnostic>,
    /// Nodes copied by alias expansion so far (bounded: an alias bomb is an error).
    expanded: usize,
}

impl<'a> Builder<'a> {
    fn new(text: &'a str, source: SourceId) -> Self {
        let mut char_to_byte: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        char_to_byte.push(text.len());
        Builder {
            text,
            source,
            char_to_byte,
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            documents: 0,
            second_document: None,
            diagnostics: Vec::new(),
            expanded: 0,
        }
    }

    fn byte(&self, mark: Marker) -> usize {
        let last = self.char_to_byte.len() - 1;
        self.char_to_byte[mark.index().min(last)]
    }

    fn span_at(&self, mark: Marker, len: usize) -> Span {
        let start = self.byte(mark);
        let end = (start + len).min(self.text.len());
        Span {
            source: self.source,
            start,
            end: end.max(start),
        }
    }

    fn scalar_span(&self, mark: Marker, value: &str, style: TScalarStyle) -> Span {
        let start = self.byte(mark);
        let rest = &self.text[start..];
        let len = match style {
            TScalarStyle::Plain if rest.starts_with(value) => value.len(),
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                let quote = if style == TScalarStyle::SingleQuoted {
                    '\''
                } else {
                    '"'
                };
                rest.char_indices()
                    .skip(1)
                    .find(|&(_, c)| c == quote)
                    .map_or(rest.len(), |(i, _)| i + 1)
            }
            _ => rest.find('\n').unwrap_or(rest.len()),
        };
        Span {
            source: self.source,
            start,
            end: start + len,
        }
    }

    /// Collections are labelled on their first line only, so carets stay short.
    fn first_line_end(&self, end: usize) -> usize {
        let start = match self.stack.last() {
            Some(Frame::Seq { start, items, .. }) => {
                items.first().map_or(start.start, |n| n.span.start)
            }
            Some(Frame::Map { start, entries, .. }) => {
                entries.first().map_or(start.start, |e| e.key_span.start)
            }
            None => return end,
        };
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        end.min(line_end).max(start)
    }

    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    let key = match &node.value {
                        Value::Str(s) => s.clone(),
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".to_string(),
                        Value::Seq(_) | Value::Map(_) => {
                            self.diagnostics.push(
                                Diagnostic::new("yaml-syntax", "mapping keys must be plain text")
                                    .at(Some(node.span), "complex key")
                                    .hint("write keys as plain words, e.g. `batch_size:`"),
                            );
                            String::new()
                        }
                    };
                    if entries.iter().any(|e| e.key == key) {
                        self.diagnostics.push(
                            Diagnostic::new(
                                "duplicate-key",
                                format!("key `{key}` appears twice in one mapping"),
                            )
                            .at(Some(node.span), "second occurrence")
                            .hint("YAML keeps only one of them; remove or rename one"),
                        );
                    }
                    *pending_key = Some((key, node.span));
                }
                Some((key, key_span)) => entries.push(Entry {
                    key,
                    key_span,
                    value: node,
                }),
            },
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.second_document = Some(self.span_at(mark, 3));
                }
            }
            _ if self.documents > 1 => {}
            Event::Scalar(value, style, anchor, _tag) => {
                let span = self.scalar_span(mark, &value, style);
                let resolved = if style == TScalarStyle::Plain {
                    resolve_plain(&value)
                } else {
                    Value::Str(value)
                };
                self.push_node(
                    Node {
                        value: resolved,
                        span,
                    },
                    anchor,
                );
            }
            Event::Alias(anchor) => {
                let span = self.span_at(mark, 1);
                let size = self.anchors.get(&anchor).map_or(1, Node::size);
                self.expanded = self.expanded.saturating_add(size);
                let node = match self.anchors.get(&anchor) {
                    Some(node) if self.expanded <= MAX_ALIAS_NODES => node.clone(),
                    Some(_) => {
                        if self.expanded.saturating_sub(size) <= MAX_ALIAS_NODES {
                            self.diagnostics.push(
                                Diagnostic::new("yaml-syntax", "aliases expand to too many values")
                                    .at(Some(span), "this alias")
                                    .expected_found(format!("at most {MAX_ALIAS_NODES} values copied by aliases"), format!("more than {MAX_ALIAS_NODES}"))
                                    .hint("pipelines need few aliases; write the values out or use fewer nested anchors"),
                            );
                        }
                        Node {
                            value: Value::Null,
                            span,
                        }
                    }
                    None => Node {
                        value: Value::Null,
                        span,
                    },
                };
                self.push_node(Node { span, ..node }, 0);
            }
            Event::SequenceStart(anchor, _) => {
                let start = self.span_at(mark, 1);
                self.stack.push(Frame::Seq {
                    start,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                let start = self.span_at(mark, 1);
                self.stack.push(Frame::Map {
                    start,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let end = self.byte(mark);
                let end = self.first_line_end(end);
                let node = match self.stack.pop() {
                    Some(Frame::Seq {
                        start,
                        anchor,
                        items,
                    }) => {
                        let start_byte = items
                            .first()
                            .map_or(start.start, |n| n.span.start.min(start.start));
                        (
                            Node {
                                value: Value::Seq(items),
                                span: Span {
                                    end: end.max(start_byte),
                                    start: start_byte,
                                    ..start
                                },
                            },
                            anchor,
                        )
                    }
                    Some(Frame::Map {
                        start,
                        anchor,
                        entries,
                        ..
                    }) => {
                        // Block mappings report their start oddly; the first key is reliable.
                        let start_byte = entries.first().map_or(start.start, |e| e.key_span.start);
                        (
                            Node {
                                value: Value::Map(entries),
                                span: Span {
                                    start: start_byte,
                                    end: end.max(start_byte),
                                    ..start
                                },
                            },
                            anchor,
                        )
                    }
                    None => return,
                };
                self.push_node(node.0, node.1);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Sources, Result<Node, Vec<Diagnostic>>) {
        let mut sources = Sources::default();
        let id = sources.add("t.yaml", text);
        let result = parse_yaml(&sources, id);
        (sources, result)
    }

    #[test]
    fn keeps_spans_of_keys_and_values() {
        let (sources, node) = parse("a: 1\nbé: \"x y\"\nc:\n  - {d: 2.5}\n  - e\n");
        let node = node.unwrap();
        let b = node.entry("bé").unwrap();
        assert_eq!(
            &sources.text(b.key_span.source)[b.key_span.start..b.key_span.end],
            "bé"
        );
        assert_eq!(
            &sources.text(b.value.span.source)[b.value.span.start..b.value.span.end],
            "\"x y\""
        );
        let d = node
            .get(&[Seg::Key("c".into()), Seg::Index(0), Seg::Key("d".into())])
            .unwrap();
        assert_eq!(d.value, Value::Float(2.5));
        assert_eq!(sources.line_col(d.span.source, d.span.start), (4, 9));
    }

    #[test]
    fn reports_syntax_errors_with_location() {
        let (_, result) = parse("a: [1, 2\nb: 3\n");
        let diags = result.unwrap_err();
        assert_eq!(diags[0].code, "yaml-syntax");
        assert!(diags[0].span.is_some());
    }

    #[test]
    fn reports_duplicate_keys() {
        let (_, result) = parse("a: 1\na: 2\n");
        assert_eq!(result.unwrap_err()[0].code, "duplicate-key");
    }
}
