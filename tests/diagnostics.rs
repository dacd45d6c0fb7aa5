//! The invalid-pipeline corpus: each file holds one realistic mistake (named in its
//! second line); each must be rejected with located diagnostics, snapshotted.

use std::path::PathBuf;

use engine::diag::{Sources, render};
use engine::{LoadError, load_pipeline};

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/invalid")
        .expect("tests/invalid exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_is_large_enough() {
    assert!(
        corpus().len() >= 25,
        "the invalid corpus needs at least 25 files"
    );
}

#[test]
fn base_of_the_corpus_is_valid() {
    let mut sources = Sources::default();
    let result = load_pipeline(
        std::path::Path::new("tests/valid_base.yaml"),
        &[],
        &mut sources,
    );
    if let Err(LoadError::Invalid(d)) = &result {
        panic!("{}", render(d, &sources, false));
    }
    assert!(result.is_ok());
}

#[test]
fn every_mistake_is_located_and_snapshotted() {
    for file in corpus() {
        let mut sources = Sources::default();
        let diagnostics = match load_pipeline(&file, &[], &mut sources) {
            Err(LoadError::Invalid(d)) => d,
            Err(LoadError::Io(e)) => panic!("{}: unexpected I/O error {e}", file.display()),
            Ok(_) => panic!("{} was accepted", file.display()),
        };
        assert!(!diagnostics.is_empty());
        for d in &diagnostics {
            assert!(
                d.span.is_some(),
                "{}: diagnostic `{}` has no location",
                file.display(),
                d.message
            );
            assert!(
                d.hint.is_some() || !d.notes.is_empty(),
                "{}: diagnostic `{}` has no hint",
                file.display(),
                d.message
            );
        }
        let text = render(&diagnostics, &sources, false);
        let location = format!("{}:", file.display());
        assert!(
            text.contains(&location),
            "{}: rendered text lacks file:line:col:\n{text}",
            file.display()
        );
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(format!("diag_{name}"), text);
    }
}

#[test]
fn several_mistakes_are_reported_together() {
    let mut sources = Sources::default();
    let Err(LoadError::Invalid(d)) = load_pipeline(
        std::path::Path::new("tests/invalid/several_mistakes.yaml"),
        &[],
        &mut sources,
    ) else {
        panic!("expected diagnostics");
    };
    assert!(d.len() >= 2, "only {} diagnostics: {d:#?}", d.len());
}

#[test]
fn overrides_are_type_checked_and_located() {
    let file = std::path::Path::new("tests/valid_base.yaml");
    let mut sources = Sources::default();
    let ok = load_pipeline(
        file,
        &["stages.step.optimizer.lr=0.01".into(), "seed=9".into()],
        &mut sources,
    )
    .map_err(|_| ());
    let checked = ok.expect("valid overrides apply");
    assert_eq!(checked.parsed.pipeline.seed, 9);
    match &checked.parsed.pipeline.stages[4] {
        engine::spec::Stage::Step(s) => assert_eq!(s.optimizer.lr(), 0.01),
        other => panic!("unexpected stage {other:?}"),
    }
    for (arg, code) in [
        ("stages.step.optimizer.lr=fast", "invalid-value"),
        ("stages.stpe.optimizer.lr=0.1", "unknown-override-path"),
        ("stages.batch.batch_size=0", "invalid-hyperparameter"),
        ("stages.batch.batch_sise=3", "unknown-key"),
    ] {
        let mut sources = Sources::default();
        let Err(LoadError::Invalid(d)) = load_pipeline(file, &[arg.into()], &mut sources) else {
            panic!("--set {arg} was accepted");
        };
        assert_eq!(d[0].code, code, "--set {arg}: {d:#?}");
        let text = render(&d, &sources, false);
        assert!(
            text.contains("--set"),
            "--set {arg} diagnostic does not point at the override:\n{text}"
        );
    }
}
