//! Data parallelism: `mpirun -np 2 engine run` reproduces one process accumulating the
//! same micro-batches bit for bit — metrics and weights — also across a resume; a rank
//! that dies or hangs ends the job with a message naming it, in bounded time.
//!
//! The MPI tests need the engine built with `--features mpi` and OpenMPI's `mpirun`
//! (`.ci/run` installs it and runs `cargo test --features mpi --test data_parallel`);
//! without the feature only the refusal under a launcher is tested.

mod common;
use common::{engine, ok, scratch};

/// The resume fixture: 39 micro-batches of 20 per epoch, groups of 4 that straddle epoch
/// ends, dropout, Adam, warmup + cosine, checkpoints every 3 steps and at epoch ends.
const PIPELINE: &str = "tests/resume.yaml";
/// On 2 ranks, accumulating 2 each makes the same groups of 4.
const PER_RANK: &str = "stages.4.steps=2";

#[test]
fn a_rank_of_an_engine_without_mpi_refuses_to_train_alone() {
    // What mpirun sets; an engine without MPI would otherwise train N separate models
    // into the same files.
    let out = scratch("data_parallel", "no-mpi");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["run", PIPELINE, "--quiet", "--out"])
        .arg(&out)
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .env("OMPI_COMM_WORLD_RANK", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if cfg!(feature = "mpi") {
        // Built with MPI, a fake launcher environment is not a job to join: nothing to
        // assert here beyond not hanging (MPI_Init fails or runs as a singleton).
        return;
    }
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("rank 1 of 2") && stderr.contains("--features mpi"),
        "{stderr}"
    );
    assert!(!out.join("metrics.jsonl").exists());
}

#[test]
fn the_plan_shows_the_composed_step() {
    let output = engine(&["plan", PIPELINE, "--set", PER_RANK, "--ranks", "2"]);
    ok(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("step: data parallel over 2 ranks ∘ accumulate 2 micro-batches ∘ f32 step"),
        "{text}"
    );
    assert!(
        text.contains("accumulation 4, effective batch 80"),
        "{text}"
    );
    let single = engine(&["plan", PIPELINE]);
    ok(&single);
    let text = String::from_utf8_lossy(&single.stdout);
    assert!(
        text.contains("step: accumulate 4 micro-batches ∘ f32 step"),
        "{text}"
    );
}

#[cfg(feature = "mpi")]
mod mpi {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use super::common::{copy_dir, device, metrics, ok, run_pipeline, scratch};
    use super::{PER_RANK, PIPELINE};

    const FINAL: &str = "checkpoints/step-00000029";

    /// metrics.jsonl without what differs between the two pipelines (their hash).
    fn comparable(out: &Path) -> Vec<serde_json::Value> {
        let mut records = metrics(out);
        for r in &mut records {
            r.as_object_mut().unwrap().remove("pipeline_hash");
        }
        records
    }

    /// `mpirun -np 2 engine run PIPELINE --set PER_RANK …` as a command.
    fn mpirun(out: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new("mpirun");
        cmd.args(["--oversubscribe", "-np", "2"])
            .arg(env!("CARGO_BIN_EXE_engine"))
            .args(["run", PIPELINE, "--quiet", "--set", PER_RANK, "--device"])
            .arg(device())
            .arg("--out")
            .arg(out)
            .args(extra)
            // OpenMPI refuses to start as root (CI containers) unless told twice.
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        cmd
    }

    fn run_on_two_ranks(out: &Path, extra: &[&str]) -> Output {
        mpirun(out, extra)
            .output()
            .expect("mpirun runs (apt-get install openmpi-bin)")
    }

    fn weights(out: &Path, checkpoint: &str) -> Vec<u8> {
        std::fs::read(out.join(checkpoint).join("weights.safetensors")).expect("checkpoint")
    }

    #[test]
    fn two_ranks_reproduce_one_process_bit_for_bit_and_resume_exactly() {
        let single = scratch("data_parallel", "single");
        ok(&run_pipeline(PIPELINE, &single, &[]));
        let ranks = scratch("data_parallel", "ranks");
        ok(&run_on_two_ranks(&ranks, &[]));
        let expected = comparable(&single);
        assert!(expected.len() >= 6);
        assert_eq!(
            comparable(&ranks),
            expected,
            "metrics of 2 ranks vs 1 process"
        );
        assert_eq!(weights(&ranks, FINAL), weights(&single, FINAL));
        // Step 9: an epoch end with 3 of a group's 4 micro-batches added.
        assert_eq!(
            weights(&ranks, "checkpoints/step-00000009"),
            weights(&single, "checkpoints/step-00000009")
        );

        // Resume the job from step 9 (the group's partial sums are in the checkpoint).
        let resumed = scratch("data_parallel", "resumed");
        copy_dir(&ranks, &resumed);
        for later in std::fs::read_dir(resumed.join("checkpoints")).unwrap() {
            let path = later.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().as_ref() > "step-00000009" {
                std::fs::remove_dir_all(path).unwrap();
            }
        }
        let from = resumed.join("checkpoints/step-00000009");
        ok(&run_on_two_ranks(
            &resumed,
            &["--resume", &from.display().to_string()],
        ));
        assert_eq!(comparable(&resumed), expected, "metrics after the resume");
        assert_eq!(weights(&resumed, FINAL), weights(&single, FINAL));

        // A failure of every rank's own (here: checkpoints of an earlier run in the output
        // directory) ends the job at once, with no rank left waiting for the timeout.
        let started = std::time::Instant::now();
        let again = run_on_two_ranks(&ranks, &[]);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(!again.status.success());
        assert!(stderr.contains("already holds checkpoints"), "{stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );

        // One process cannot continue a 2-rank checkpoint.
        let alone = scratch("data_parallel", "alone");
        copy_dir(&ranks, &alone);
        let output = run_pipeline(
            PIPELINE,
            &alone,
            &["--set", PER_RANK, "--resume", &from.display().to_string()],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains("saved by a job of 2 rank(s)"), "{stderr}");
    }

    #[test]
    fn mixed_precision_composes_with_data_parallelism_bit_for_bit() {
        let devices = super::common::engine(&["devices"]);
        let text = String::from_utf8_lossy(&devices.stdout).to_lowercase();
        if !text
            .lines()
            .any(|l| l.contains(&device()) && l.contains("f16 shaders") && !l.contains("no f16"))
        {
            eprintln!("the test adapter has no f16 shaders: nothing to compose");
            return;
        }
        let f16 = ["--set", "stages.5.precision=f16"];
        let single = scratch("data_parallel", "single-f16");
        ok(&run_pipeline(PIPELINE, &single, &f16));
        let ranks = scratch("data_parallel", "ranks-f16");
        ok(&run_on_two_ranks(&ranks, &f16));
        assert_eq!(comparable(&ranks), comparable(&single));
        assert_eq!(weights(&ranks, FINAL), weights(&single, FINAL));
        // And f16 changed the numbers (it ran).
        let plain = scratch("data_parallel", "single-f32");
        ok(&run_pipeline(PIPELINE, &plain, &[]));
        assert_ne!(weights(&plain, FINAL), weights(&single, FINAL));
    }

    /// The engine process of `rank` under mpirun, found by its environment.
    fn rank_pid(rank: usize, out: &Path) -> Option<u32> {
        let out = out.display().to_string();
        for entry in std::fs::read_dir("/proc").ok()? {
            let Ok(pid) = entry.ok()?.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let has =
                |bytes: &[u8], s: &str| bytes.split(|b| *b == 0).any(|part| part == s.as_bytes());
            if has(&cmdline, &out) && has(&environ, &format!("OMPI_COMM_WORLD_RANK={rank}")) {
                return Some(pid);
            }
        }
        None
    }

    /// Starts a long 2-rank job, waits until it trains, sends `signal` to rank 1 and
    /// returns mpirun's exit code, its stderr and how long the job took to end after it.
    fn signal_rank_one(name: &str, signal: i32, extra: &[&str]) -> (Option<i32>, String, Duration) {
        let out: PathBuf = scratch("data_parallel", name);
        let child = mpirun(&out, &[&["--set", "schedule.epochs=2000"], extra].concat())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mpirun runs");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !out.join("checkpoints/step-00000003").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = rank_pid(1, &out).expect("rank 1 runs");
        // SAFETY: kill(2) with a pid read from /proc and a valid signal number.
        assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
        let signalled = Instant::now();
        let output = child.wait_with_output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            signalled.elapsed(),
        )
    }

    #[test]
    fn a_killed_rank_ends_the_job_naming_it() {
        let (code, stderr, took) = signal_rank_one("killed", libc::SIGKILL, &[]);
        assert_ne!(code, Some(0), "{stderr}");
        assert!(stderr.contains("rank 1"), "{stderr}");
        assert!(took < Duration::from_secs(60), "ended after {took:?}");
    }

    #[test]
    fn a_hung_rank_ends_the_job_after_the_timeout_naming_it() {
        // SIGSTOP: the process lives but never answers.
        let (code, stderr, took) = signal_rank_one("hung", libc::SIGSTOP, &["--rank-timeout", "3"]);
        assert_ne!(code, Some(0), "{stderr}");
        assert!(
            stderr.contains("no answer from rank 1") && stderr.contains("within 3 s"),
            "{stderr}"
        );
        assert!(took < Duration::from_secs(60), "ended after {took:?}");
    }
}
