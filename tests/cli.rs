//! The `engine` binary: exit codes, located messages, schema, deterministic plans.

use std::process::Command;

fn engine(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .output()
        .expect("engine runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_examples_exits_zero() {
    let mut args = vec!["validate"];
    let files: Vec<String> = std::fs::read_dir("pipelines")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    args.extend(files.iter().map(String::as_str));
    let (code, _, stderr) = engine(&args);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn every_invalid_file_exits_one_with_a_location() {
    for entry in std::fs::read_dir("tests/invalid").unwrap() {
        let path = entry.unwrap().path().display().to_string();
        let (code, _, stderr) = engine(&["validate", &path]);
        assert_eq!(code, 1, "{path}: {stderr}");
        let located = stderr.lines().any(|l| {
            l.split_once(&format!("{path}:")).is_some_and(|(_, rest)| {
                let mut parts = rest.split(':');
                parts
                    .next()
                    .is_some_and(|n| n.trim().parse::<u32>().is_ok())
                    && parts
                        .next()
                        .is_some_and(|n| n.trim().parse::<u32>().is_ok())
            })
        });
        assert!(located, "{path}: no file:line:col in\n{stderr}");
    }
}

#[test]
fn usage_and_io_errors_exit_two() {
    assert_eq!(engine(&["validate", "does/not/exist.yaml"]).0, 2);
    assert_eq!(engine(&["validate"]).0, 2);
    assert_eq!(engine(&["frobnicate"]).0, 2);
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let (code, stdout, _) = engine(&["schema"]);
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string("pipelines/pipeline.schema.json").unwrap();
    assert!(
        stdout == committed,
        "`engine schema` differs from pipelines/pipeline.schema.json"
    );
}

#[test]
fn plan_is_byte_identical_across_runs() {
    for format in ["text", "json"] {
        let a = engine(&["plan", "pipelines/digits_mlp.yaml", "--format", format]);
        let b = engine(&["plan", "pipelines/digits_mlp.yaml", "--format", format]);
        assert_eq!(a.0, 0, "{}", a.2);
        assert_eq!(a.1, b.1);
    }
}

#[test]
fn graph_prints_dot() {
    let (code, stdout, _) = engine(&["graph", "pipelines/digits_mlp.yaml"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("digraph"));
    assert!(stdout.contains("\"fwd\" -> \"loss\""));
}

#[test]
fn graph_draws_a_models_nodes() {
    let file = "pipelines/digits_residual_mlp.yaml";
    let (code, stdout, _) = engine(&["graph", file, "--model", "resmlp"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("digraph \"resmlp\""), "{stdout}");
    // The residual connection: the block's input feeds its add as well as its first layer.
    assert!(stdout.contains("\"act0\" -> \"res1\""), "{stdout}");
    assert!(stdout.contains("\"act0\" -> \"fc1\""), "{stdout}");
    let (code, _, stderr) = engine(&["graph", file, "--model", "nope"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("its models: resmlp"), "{stderr}");
}

/// A pipeline that uses another binary's extensions (examples/custom_extension) is
/// refused by the plain `engine`, at each name, with the names it does know.
#[test]
fn names_registered_by_another_binary_are_unknown_here() {
    let (code, _, stderr) = engine(&[
        "validate",
        "examples/custom_extension/pipelines/digits_focal.yaml",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("unknown kind `libsvm`") && stderr.contains("`csv`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
