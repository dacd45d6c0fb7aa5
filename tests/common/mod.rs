//! Helpers shared by the integration tests that compare whole runs (each test binary uses
//! some of them).
#![allow(dead_code)]

use std::path::Path;

/// metrics.jsonl without the wall-clock field (the only one that differs between
/// identical runs).
pub fn metrics(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_time_s");
            v
        })
        .collect()
}

/// Copies a run directory recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The adapter the tests run on: `ENGINE_TEST_BACKEND` (default `auto`).
pub fn device() -> String {
    std::env::var("ENGINE_TEST_BACKEND").unwrap_or_else(|_| "auto".into())
}

/// A fresh scratch directory `engine-{suite}-{device}-{name}-{pid}`.
pub fn scratch(suite: &str, name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "engine-{suite}-{}-{name}-{}",
        device(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs the engine binary.
pub fn engine(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .output()
        .expect("engine runs")
}

/// `engine run PIPELINE --quiet --device D --out OUT` plus `extra`.
pub fn run_pipeline(pipeline: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let out_text = out.display().to_string();
    let device = device();
    let mut args = vec![
        "run", pipeline, "--quiet", "--device", &device, "--out", &out_text,
    ];
    args.extend(extra);
    engine(&args)
}

/// Fails with the engine's stderr unless it succeeded.
pub fn ok(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "engine failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts `engine run PIPELINE` into `out` and kills it (SIGKILL) as soon as `wait_for`
/// exists under `out`; fails if that never happens or `last` already exists (the run
/// finished first: the kill would prove nothing).
pub fn kill_once_written(pipeline: &str, out: &Path, wait_for: &str, last: &str) {
    use std::time::{Duration, Instant};
    let out_text = out.display().to_string();
    let device = device();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args([
            "run", pipeline, "--quiet", "--device", &device, "--out", &out_text,
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !out.join(wait_for).exists() && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        out.join(wait_for).exists(),
        "no checkpoint appeared before the deadline"
    );
    assert!(
        !out.join(last).exists(),
        "the run finished before it was killed; the test proves nothing"
    );
}
