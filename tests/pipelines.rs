//! Every example pipeline: valid, planned deterministically (snapshotted), and valid
//! under the committed JSON Schema, which must match what `engine schema` emits.

use std::path::{Path, PathBuf};

use engine::diag::Sources;
use engine::load_pipeline;

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("pipelines")
        .expect("pipelines/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the example pipelines, found {files:?}"
    );
    files
}

fn name(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn examples_are_valid_and_plans_are_stable() {
    for file in examples() {
        let mut sources = Sources::default();
        let checked = match load_pipeline(&file, &[], &mut sources) {
            Ok(c) => c,
            Err(engine::LoadError::Invalid(d)) => panic!(
                "{}:\n{}",
                file.display(),
                engine::diag::render(&d, &sources, false)
            ),
            Err(engine::LoadError::Io(e)) => panic!("{e}"),
        };
        let plan = engine::plan::plan_pipeline(&checked).to_string();
        let again = engine::plan::plan_pipeline(&checked).to_string();
        assert_eq!(
            plan,
            again,
            "plan of {} is not deterministic",
            file.display()
        );
        insta::assert_snapshot!(format!("plan_{}", name(&file)), plan);
    }
}

#[test]
fn examples_start_with_the_schema_modeline() {
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=./pipeline.schema.json\n"),
            "{} must begin with the yaml-language-server schema line",
            file.display()
        );
    }
}

#[test]
fn committed_schema_matches_the_types() {
    let committed =
        std::fs::read_to_string("pipelines/pipeline.schema.json").expect("schema is committed");
    assert!(
        committed == engine::schema::pipeline_schema(),
        "pipelines/pipeline.schema.json drifted from the Rust types: run `cargo run -- schema > pipelines/pipeline.schema.json`"
    );
}

fn yaml_to_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    serde_json::to_value(yaml).unwrap()
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&engine::schema::pipeline_schema()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

#[test]
fn examples_validate_against_the_schema() {
    let validator = validator();
    for file in examples()
        .iter()
        .map(PathBuf::as_path)
        .chain([Path::new("tests/valid_base.yaml")])
    {
        let doc = yaml_to_json(file);
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} fails the schema: {errors:#?}",
            file.display()
        );
    }
}

#[test]
fn schema_rejects_structural_mistakes() {
    let validator = validator();
    for name in [
        "unknown_top_level_key",
        "missing_batch_size",
        "unknown_trigger",
        "unknown_callback_type",
        "unknown_optimizer",
        "unknown_optimizer_key",
        "wrong_value_type",
        "unknown_layer",
    ] {
        let doc = yaml_to_json(&Path::new("tests/invalid").join(format!("{name}.yaml")));
        assert!(
            !validator.is_valid(&doc),
            "the schema accepts tests/invalid/{name}.yaml"
        );
    }
}
