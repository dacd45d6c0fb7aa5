//! Parse: pipeline YAML text (plus `--set` overrides) to a typed [`Pipeline`], reporting
//! every structural problem at once with its location.

mod node;
mod overrides;
mod structure;

pub use node::{Entry, Node, Seg, Value};
pub use overrides::parse_override;

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, SourceId, Sources, Span};
use crate::spec::Pipeline;

/// A pipeline that parsed, with the source tree kept for locating later diagnostics.
#[derive(Debug, Clone)]
pub struct ParsedPipeline {
    /// The typed pipeline.
    pub pipeline: Pipeline,
    /// The YAML tree, overrides applied, with spans.
    pub doc: Node,
    /// The pipeline file.
    pub file: SourceId,
    /// Directory relative paths in the pipeline are resolved against.
    pub base_dir: PathBuf,
    /// Problems already found and repaired while parsing (misspelt keys); the checks
    /// report them with their own.
    pub repaired: Vec<Diagnostic>,
}

impl ParsedPipeline {
    /// Span of the value at a path, falling back to the closest enclosing node.
    pub fn span(&self, path: &[Seg]) -> Option<Span> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.doc.get(&path[..n]).map(|node| node.span))
    }

    /// Span of the key at the end of a path (or of the value if there is no key).
    pub fn key_span(&self, path: &[Seg]) -> Option<Span> {
        self.doc.key_or_value_span(path).or_else(|| self.span(path))
    }
}

/// Parses a pipeline file already loaded into `sources`, applying `--set` overrides
/// (`key.path=value`). Returns every problem found, located.
pub fn parse_pipeline(
    sources: &mut Sources,
    file: SourceId,
    path: &Path,
    overrides: &[String],
) -> Result<ParsedPipeline, Vec<Diagnostic>> {
    let mut doc = node::parse_yaml(sources, file)?;
    let mut diagnostics = Vec::new();
    for text in overrides {
        let id = sources.add(format!("--set {text}"), text.clone());
        if let Err(d) = overrides::apply_override(&mut doc, sources, id) {
            diagnostics.push(d);
        }
    }
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let (pipeline, repaired) = structure::deserialize(&mut doc)?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(ParsedPipeline {
        pipeline,
        doc,
        file,
        base_dir,
        repaired,
    })
}

/// Converts a serde_path_to_error path (`stages[3].optimizer.lr`) to segments.
pub(crate) fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(bracket) = rest.find('[') {
            if bracket > 0 {
                segs.push(Seg::Key(rest[..bracket].to_string()));
            }
            rest = &rest[bracket..];
            while let Some(inner) = rest.strip_prefix('[') {
                let Some(close) = inner.find(']') else { break };
                if let Ok(i) = inner[..close].parse() {
                    segs.push(Seg::Index(i));
                }
                rest = &inner[close + 1..];
            }
        } else {
            segs.push(Seg::Key(rest.to_string()));
        }
    }
    segs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("stages[3].optimizer.lr"),
            vec![
                Seg::Key("stages".into()),
                Seg::Index(3),
                Seg::Key("optimizer".into()),
                Seg::Key("lr".into())
            ]
        );
        assert_eq!(parse_path("."), vec![]);
        assert_eq!(
            parse_path("a[1][2]"),
            vec![Seg::Key("a".into()), Seg::Index(1), Seg::Index(2)]
        );
    }
}
