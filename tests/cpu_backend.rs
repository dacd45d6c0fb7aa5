//! The native cpu backend end to end: the README's example trains to its accuracy, results
//! do not depend on the thread count, checkpoints resume across backends, and what it
//! cannot run is refused with a message.
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

/// A wgpu backend `engine devices` lists (`vulkan`, else `gl`), if any.
fn wgpu_backend() -> Option<&'static str> {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .arg("devices")
        .output()
        .expect("engine runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    ["vulkan", "gl"]
        .into_iter()
        .find(|b| stdout.contains(&format!("[{b}]")))
}

/// `engine run tests/resume.yaml` on `device` into `out`.
fn run_resume_fixture(device: &str, out: &Path, extra: &[&str]) -> Output {
    let out_text = out.display().to_string();
    let mut args = vec![
        "run",
        "tests/resume.yaml",
        "--quiet",
        "--device",
        device,
        "--out",
        &out_text,
    ];
    args.extend(extra);
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(&args)
        .output()
        .expect("engine runs")
}

/// The validation losses of a run's evals, in order.
fn val_losses(out: &Path) -> Vec<f64> {
    metrics(out)
        .iter()
        .filter(|m| m["event"] == "eval")
        .map(|m| m["loss"].as_f64().expect("an eval loss"))
        .collect()
}

#[test]
fn a_checkpoint_resumes_on_the_other_backend() {
    // What holds across backends: a checkpoint written on one loads on the other (the
    // same tensors, optimizer state, data order and dropout stream) and training goes on
    // to the same results up to the backends' rounding — GEMM sums run in other orders, so
    // not bit for bit (`tests/resume.rs` checks bit-exact resume on one backend).
    let Some(wgpu) = wgpu_backend() else {
        eprintln!("no wgpu adapter: nothing to cross with");
        return;
    };
    for (from, to) in [(wgpu, "cpu"), ("cpu", wgpu)] {
        let whole = scratch(&format!("cross-whole-{from}"));
        ok(&run_resume_fixture(from, &whole, &[]));
        let expected = val_losses(&whole);
        assert_eq!(expected.len(), 3, "one eval per epoch");
        // The run cut at step 12 (mid-epoch, in the second epoch), resumed on the other
        // backend.
        let resumed = scratch(&format!("cross-resumed-{from}-{to}"));
        common::copy_dir(&whole, &resumed);
        for later in std::fs::read_dir(resumed.join("checkpoints")).unwrap() {
            let path = later.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().as_ref() > "step-00000012" {
                std::fs::remove_dir_all(path).unwrap();
            }
        }
        let checkpoint = resumed.join("checkpoints/step-00000012");
        ok(&run_resume_fixture(
            to,
            &resumed,
            &["--resume", &checkpoint.display().to_string()],
        ));
        let got = val_losses(&resumed);
        assert_eq!(got.len(), expected.len(), "{from} -> {to}");
        // The first eval (step 9) is the copied run's; the two after step 12 ran on `to`.
        for (g, e) in got.iter().zip(&expected).skip(1) {
            assert!(
                (g - e).abs() <= 1e-5 * e.abs(),
                "{from} -> {to}: val loss {g} vs {e} uninterrupted on {from}"
            );
        }
    }
}

#[test]
fn ranks_started_on_one_host_share_its_cores() {
    // As `mpirun -np 2` starts them (OpenMPI's environment): each rank's rayon pool gets
    // half the cores, not all of them; RAYON_NUM_THREADS still decides where it is set.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let devices = |threads: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_engine"));
        command
            .arg("devices")
            .env("OMPI_COMM_WORLD_SIZE", "2")
            .env("OMPI_COMM_WORLD_RANK", "0")
            .env("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
            .env_remove("RAYON_NUM_THREADS");
        if let Some(t) = threads {
            command.env("RAYON_NUM_THREADS", t);
        }
        let out = command.output().expect("engine runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let expected = match (cores / 2).max(1) {
        1 => ", 1 thread) [cpu]".to_string(),
        n => format!(", {n} threads) [cpu]"),
    };
    let shared = devices(None);
    assert!(shared.contains(&expected), "{expected} missing:\n{shared}");
    let set = devices(Some("3"));
    assert!(set.contains(", 3 threads) [cpu]"), "{set}");
}
