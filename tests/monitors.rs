//! Monitors as nodes with actions: a diverging run is rolled back to the last good
//! checkpoint and recovers; the same divergence can instead stop the run or cut the
//! learning rate.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PIPELINE: &str = "tests/monitor.yaml";

fn device() -> String {
    std::env::var("ENGINE_TEST_BACKEND").unwrap_or_else(|_| "auto".into())
}

fn run(name: &str, extra: &[&str]) -> (PathBuf, Output) {
    let out = std::env::temp_dir().join(format!(
        "engine-monitor-{}-{name}-{}",
        device(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let (out_text, device) = (out.display().to_string(), device());
    let mut args = vec!["run", PIPELINE, "--device", &device, "--out", &out_text];
    args.extend(extra);
    let output = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(&args)
        .output()
        .expect("engine runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (out, output)
}

fn records(out: &Path, stage: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["stage"] == stage)
        .collect()
}

#[test]
fn divergence_rolls_back_to_a_good_checkpoint_and_recovers() {
    let (out, output) = run("rollback", &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("diverged") && stdout.contains("rolling back"),
        "{stdout}"
    );
    let val = records(&out, "val");
    let last = val.last().expect("val records");
    assert!(
        last["accuracy"].as_f64().unwrap() >= 0.95,
        "after the rollback the run recovers: {last}"
    );
    let train = records(&out, "train");
    assert!(
        train.iter().all(|r| r["lr"].as_f64().unwrap() < 3.0),
        "the rate was cut on rolling back"
    );
}

#[test]
fn divergence_can_stop_the_run() {
    let (out, output) = run(
        "stop",
        &["--set", "stages.diverged.callback.action={kind: stop}"],
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("stopping"));
    let train = records(&out, "train");
    let last_step = train.last().unwrap()["step"].as_u64().unwrap();
    assert!(last_step < 192, "stopped early, at step {last_step}");
}

#[test]
fn divergence_can_reduce_the_learning_rate() {
    let (out, output) = run(
        "reduce",
        &[
            "--set",
            "stages.diverged.callback.action={kind: reduce_lr, factor: 0.1}",
        ],
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("learning rate x0.1"));
    let train = records(&out, "train");
    assert_eq!(
        train.last().unwrap()["step"],
        192,
        "training continued to the end"
    );
    assert!(train.last().unwrap()["lr"].as_f64().unwrap() <= 0.3 + 1e-9);
}
