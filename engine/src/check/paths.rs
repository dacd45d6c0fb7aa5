//! Confinement: every file a run writes stays inside its output directory. Pipelines are
//! shared, so a `name`, a checkpoint `dir` or a metrics `file` that is absolute or climbs
//! out with `..` is refused where it is written, before anything runs.

use std::path::{Component, Path};

use super::graph::field_path;
use crate::diag::Diagnostic;
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::Stage;

pub(super) fn check(parsed: &ParsedPipeline, out: &mut Vec<Diagnostic>) {
    let name = &parsed.pipeline.name;
    // The name is the run directory under `runs/`: one plain path component.
    let plain = matches!(
        Path::new(name).components().collect::<Vec<_>>().as_slice(),
        [Component::Normal(_)]
    ) && !name.contains(['/', '\\']);
    if !plain {
        out.push(
            Diagnostic::new(
                "path-outside-output",
                format!("the pipeline's name `{name}` is not a plain name, but a run writes to runs/<name>"),
            )
            .at(parsed.span(&[Seg::Key("name".into())]), "not a plain name")
            .expected_found(
                "a name without `/`, `\\` or `..`, e.g. `digits_mlp`",
                format!("`{name}`"),
            )
            .hint("to write elsewhere, keep the name plain and pass `engine run --out DIR`"),
        );
    }
    for (i, stage) in parsed.pipeline.stages.iter().enumerate() {
        let Stage::Callback(c) = stage else { continue };
        let Some(output) = c.callback.output() else {
            continue;
        };
        let (key, value) = (output.key, output.path);
        if let Some(problem) = escapes(value) {
            let path = [field_path(i, "callback"), vec![Seg::Key(key.into())]].concat();
            out.push(
                Diagnostic::new(
                    "path-outside-output",
                    format!("`{key}: {value}` {problem}, outside the run's output directory"),
                )
                .at(parsed.span(&path), "outside the output directory")
                .stage(stage.id())
                .expected_found(
                    "a relative path inside the output directory, e.g. `checkpoints`",
                    format!("`{value}`"),
                )
                .hint("every file a run writes goes under its `--out` directory; choose that directory instead"),
            );
        }
    }
}

/// Why `path`, joined to the output directory, would leave it (or name it itself).
fn escapes(path: &str) -> Option<&'static str> {
    let p = Path::new(path);
    if p.has_root() || p.is_absolute() || path.contains(':') {
        return Some("is absolute");
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Some("climbs out with `..`");
    }
    if !p.components().any(|c| matches!(c, Component::Normal(_))) {
        return Some("names no file or directory of its own");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::escapes;

    #[test]
    fn relative_paths_inside_pass_and_escapes_do_not() {
        for ok in ["checkpoints", "a/b", "./metrics.jsonl", "m.jsonl"] {
            assert_eq!(escapes(ok), None, "{ok}");
        }
        for bad in ["/tmp/x", "../x", "a/../../x", "..", ".", "", "C:\\x"] {
            assert!(escapes(bad).is_some(), "{bad}");
        }
    }
}
