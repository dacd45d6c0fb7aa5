//! Shared pipelines are safe to open and to run: a `name`, checkpoint `dir` or metrics
//! `file` that would write outside the run's output directory is refused, located, and
//! `validate`, `plan`, `graph` and `run` then write nothing anywhere.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{device, scratch};

/// Every file and directory under `root`, relative to it.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn pipelines_that_would_write_outside_their_output_are_refused_and_write_nothing() {
    let root = scratch("confinement", "escape");
    let cwd = root.join("a/b/c");
    std::fs::create_dir_all(&cwd).unwrap();
    let data = format!("{}/pipelines/data/iris.csv", env!("CARGO_MANIFEST_DIR"));
    let absolute = root.join("absolute.jsonl");
    let text = std::fs::read_to_string("pipelines/iris.yaml")
        .unwrap()
        .replace("name: iris", "name: ../../escaped")
        .replace("path: data/iris.csv", &format!("path: {data}"))
        .replace(
            "callback: {type: metrics}",
            &format!("callback: {{type: metrics, file: {}}}", absolute.display()),
        )
        .replace(
            "callback: {type: checkpoint, keep_last: 1}",
            "callback: {type: checkpoint, keep_last: 1, dir: ../../../escaped_checkpoints}",
        );
    for edit in ["../../escaped", "absolute.jsonl", "escaped_checkpoints"] {
        assert!(text.contains(edit), "the fixture edit `{edit}` applies");
    }
    let pipeline = root.join("shared.yaml");
    std::fs::write(&pipeline, text).unwrap();
    let before = tree(&root);

    let device = device();
    let p = pipeline.to_str().unwrap();
    for args in [
        vec!["validate", p],
        vec!["plan", p],
        vec!["graph", p],
        vec!["run", p, "--quiet", "--device", &device],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_engine"))
            .args(&args)
            .current_dir(&cwd)
            .output()
            .expect("engine runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        for expected in [
            "name `../../escaped` is not a plain name",
            "`dir: ../../../escaped_checkpoints` climbs out with `..`",
            "is absolute, outside the run's output directory",
            "shared.yaml:",
        ] {
            assert!(stderr.contains(expected), "{args:?}: {expected}\n{stderr}");
        }
        assert!(stderr.contains("3 problems found"), "{args:?}: {stderr}");
    }
    assert_eq!(tree(&root), before, "nothing was written");
}
