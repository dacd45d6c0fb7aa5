//! The native cpu backend end to end: the README's example trains to its accuracy, results
//! do not depend on the thread count, and what it cannot run is refused with a message.
//! (The op suite runs on it with `ENGINE_TEST_BACKEND=cpu cargo test -p ops`, exact resume
//! with `ENGINE_TEST_BACKEND=cpu cargo test --test resume`; `.ci/run` does both.)

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{metrics, ok};

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("engine-cpu-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `engine run PIPELINE --device cpu` on `threads` rayon threads.
fn run_cpu(pipeline: &str, out: &Path, threads: usize, extra: &[&str]) -> Output {
    let out_text = out.display().to_string();
    let mut args = vec![
        "run", pipeline, "--quiet", "--device", "cpu", "--out", &out_text,
    ];
    args.extend(extra);
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(&args)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .expect("engine runs")
}

/// The test accuracy of the last `test` eval in a run's metrics.
fn test_accuracy(out: &Path) -> f64 {
    metrics(out)
        .iter()
        .rev()
        .find(|m| m["event"] == "eval" && m["split"] == "test")
        .and_then(|m| m["accuracy"].as_f64())
        .expect("a test evaluation")
}

#[test]
fn the_readme_example_trains_on_the_cpu_backend() {
    let out = scratch("readme");
    ok(&run_cpu("pipelines/digits_mlp.yaml", &out, 2, &[]));
    let accuracy = test_accuracy(&out);
    // The same pipeline reaches 98.06% on lavapipe; 97% leaves room for another CPU's
    // rounding (a different GEMM kernel) without admitting a broken backend (~10%).
    assert!(accuracy >= 0.97, "test accuracy {accuracy}");
    let run = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(run.contains("cpu ("), "run.json names the backend: {run}");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // A CNN (im2col + GEMM, max pool, dropout, AdamW) and W1's wide GEMMs, which split
    // into several pieces: one thread and two must give the same bits, so every logged
    // loss (an exact sum of per-sample f32 losses) and accuracy agrees.
    for (pipeline, extra) in [
        ("pipelines/digits_cnn.yaml", ["--set", "schedule.epochs=2"]),
        ("pipelines/bench_mlp.yaml", ["--set", "schedule.steps=130"]),
    ] {
        let name = Path::new(pipeline).file_stem().unwrap().to_string_lossy();
        let (one, two) = (scratch(&format!("{name}-1")), scratch(&format!("{name}-2")));
        ok(&run_cpu(pipeline, &one, 1, &extra));
        ok(&run_cpu(pipeline, &two, 2, &extra));
        let (a, b) = (metrics(&one), metrics(&two));
        assert!(a.len() >= 2, "{pipeline}: {a:?}");
        assert_eq!(a, b, "{pipeline}: 1 thread vs 2");
    }
}

#[test]
fn f16_is_refused_at_the_precision_key() {
    let out = scratch("f16");
    let refused = run_cpu(
        "pipelines/digits_mlp.yaml",
        &out,
        2,
        &["--set", "stages.4.precision=f16"],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[f16-unavailable]"), "{stderr}");
}

#[test]
fn engine_devices_lists_the_cpu_backend() {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .arg("devices")
        .env("RAYON_NUM_THREADS", "3")
        .output()
        .expect("engine runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("cpu (") && stdout.contains("3 threads) [cpu]"),
        "{stdout}"
    );
}
