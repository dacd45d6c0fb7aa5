//! Diagnostics: located, human-readable problems with a pipeline, and their rendering.
//!
//! Every layer reports problems as [`Diagnostic`]s; only the CLI renders them.

use std::io::Write as _;

use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor};

use crate::spec::StageId;

/// Index of a text in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(usize);

/// A byte range in one source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// The text the range is in.
    pub source: SourceId,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// The texts diagnostics point into: pipeline files and `--set` arguments.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: Vec<(String, String)>,
}

impl Sources {
    /// Adds a text under a display name and returns its id.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> SourceId {
        self.files.push((name.into(), text.into()));
        SourceId(self.files.len() - 1)
    }

    /// The display name of a source.
    pub fn name(&self, id: SourceId) -> &str {
        &self.files[id.0].0
    }

    /// The text of a source.
    pub fn text(&self, id: SourceId) -> &str {
        &self.files[id.0].1
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, id: SourceId, offset: usize) -> (usize, usize) {
        let text = self.text(id);
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// One problem found in a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Stable short name of the problem class, e.g. `unknown-stage`.
    pub code: &'static str,
    /// One-line summary.
    pub message: String,
    /// Where the problem is, when it has a place in a source.
    pub span: Option<Span>,
    /// Text shown under the caret.
    pub label: String,
    /// The stage the problem belongs to.
    pub stage: Option<StageId>,
    /// What was expected there.
    pub expected: Option<String>,
    /// What was found instead.
    pub found: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
    /// Further context, e.g. the stages on a cycle.
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// A diagnostic with a code and message; add the rest with the builder methods.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            span: None,
            label: String::new(),
            stage: None,
            expected: None,
            found: None,
            hint: None,
            notes: Vec::new(),
        }
    }

    /// Points the diagnostic at a span with a caret label.
    pub fn at(mut self, span: Option<Span>, label: impl Into<String>) -> Self {
        self.span = span;
        self.label = label.into();
        self
    }

    /// Names the stage the problem belongs to.
    pub fn stage(mut self, stage: &StageId) -> Self {
        self.stage = Some(stage.clone());
        self
    }

    /// Records what was expected and what was found.
    pub fn expected_found(mut self, expected: impl Into<String>, found: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self.found = Some(found.into());
        self
    }

    /// Adds a hint on how to fix the problem.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a did-you-mean hint, or points at the expected values when no name is close.
    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint =
            Some(hint.unwrap_or_else(|| "use one of the expected names listed above".into()));
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// Renders diagnostics as text: `error[code]: message`, `file:line:col`, a snippet with
/// a caret, then stage, expected, found and hint lines.
pub fn render(diagnostics: &[Diagnostic], sources: &Sources, color: bool) -> String {
    let mut files = SimpleFiles::new();
    for (name, text) in &sources.files {
        files.add(name.as_str(), text.as_str());
    }
    let config = term::Config::default();
    let mut buffer = if color {
        termcolor::Buffer::ansi()
    } else {
        termcolor::Buffer::no_color()
    };
    for diagnostic in diagnostics {
        let mut report = Report::error()
            .with_code(diagnostic.code)
            .with_message(&diagnostic.message);
        if let Some(span) = diagnostic.span {
            report = report.with_labels(vec![
                Label::primary(span.source.0, span.start..span.end).with_message(&diagnostic.label),
            ]);
        }
        report = report.with_notes(notes(diagnostic));
        // Writing into an in-memory buffer only fails on an out-of-range span, which
        // we fall back from below.
        if term::emit_to_write_style(&mut buffer, &config, &files, &report).is_err() {
            let _ = writeln!(buffer, "error[{}]: {}", diagnostic.code, diagnostic.message);
        }
    }
    String::from_utf8_lossy(buffer.as_slice()).into_owned()
}

fn notes(diagnostic: &Diagnostic) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(stage) = &diagnostic.stage {
        notes.push(format!("stage: {stage}"));
    }
    if let Some(expected) = &diagnostic.expected {
        notes.push(format!("expected: {expected}"));
    }
    if let Some(found) = &diagnostic.found {
        notes.push(format!("found: {found}"));
    }
    notes.extend(diagnostic.notes.iter().cloned());
    if let Some(hint) = &diagnostic.hint {
        notes.push(format!("hint: {hint}"));
    }
    notes
}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(word.len().max(c.len()) / 3) && *d < word.len().max(1))
        .min_by_key(|(d, c)| (*d, c.to_string()))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("fwdd", ["fwd", "loss"]).as_deref(),
            Some("did you mean `fwd`?")
        );
        assert_eq!(did_you_mean("lr", ["momentum", "nesterov"]), None);
    }

    #[test]
    fn line_col_counts_characters() {
        let mut sources = Sources::default();
        let id = sources.add("a.yaml", "ab\nçd: x\n");
        assert_eq!(sources.line_col(id, 0), (1, 1));
        assert_eq!(sources.line_col(id, 3), (2, 1));
        assert_eq!(sources.line_col(id, 8), (2, 5));
    }
}
