//! Several training chains in one pipeline: they train side by side in lockstep, each
//! with its own records, and a run interrupted at any checkpoint (or by SIGKILL) resumes
//! to the same metrics and final weights of every model, bit for bit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::{copy_dir, metrics};

fn device() -> String {
    std::env::var("ENGINE_TEST_BACKEND").unwrap_or_else(|_| "auto".into())
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "engine-chains-{}-{name}-{}",
        device(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn args<'a>(pipeline: &'a str, out: &'a str, device: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", pipeline, "--quiet", "--device", device, "--out", out];
    args.extend(extra);
    args
}

fn run(pipeline: &str, out: &Path, extra: &[&str]) -> Output {
    let out = out.display().to_string();
    let device = device();
    let output = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args(pipeline, &out, &device, extra))
        .output()
        .expect("engine runs");
    assert!(
        output.status.success(),
        "engine failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const FIXTURE: &str = "tests/chains.yaml";

#[test]
fn two_chains_train_side_by_side_with_their_own_records() {
    let out = dir("records");
    run(FIXTURE, &out, &[]);
    let records = metrics(&out);
    let train = |chain: &str| -> Vec<&serde_json::Value> {
        records
            .iter()
            .filter(|r| r["event"] == "train" && r["chain"] == chain)
            .collect()
    };
    // 3 epochs: 30 micro-batches (15 steps) of the lead chain, 12 of the other per epoch.
    let lead = train("step");
    let other = train("small_step");
    assert_eq!(lead.len(), 3);
    assert_eq!(other.len(), 3);
    assert_eq!(lead[2]["step"], 45);
    assert_eq!(other[2]["step"], 36);
    assert_eq!(lead[0]["samples"], 480);
    assert_eq!(other[0]["samples"], 240);
    for eval in ["val", "small_test"] {
        let last = records
            .iter()
            .rfind(|r| r["event"] == "eval" && r["stage"] == eval)
            .unwrap_or_else(|| panic!("no record of eval {eval}"));
        assert!(
            last["accuracy"].as_f64().unwrap() > 0.9,
            "{eval} reached only {}",
            last["accuracy"]
        );
    }
    // The second chain's LR follows its own cosine schedule over its own 36 steps.
    let first_lr = other[0]["lr"].as_f64().unwrap();
    let last_lr = other[2]["lr"].as_f64().unwrap();
    assert!(first_lr < 0.05 && last_lr < 1e-3, "{first_lr} {last_lr}");
    assert_eq!(lead[2]["lr"], 0.01);
    // Checkpoints hold both models under their names.
    let weights = out.join("checkpoints/step-00000045/weights.safetensors");
    let tensors = safetensors::SafeTensors::deserialize(&std::fs::read(weights).unwrap())
        .unwrap()
        .names()
        .into_iter()
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>();
    assert!(tensors.contains("wide.layers.0.weight"), "{tensors:?}");
    assert!(tensors.contains("small.layers.2.bias"), "{tensors:?}");
}

#[test]
fn several_chains_resume_exactly_from_any_checkpoint() {
    let reference = dir("reference");
    run(FIXTURE, &reference, &[]);
    let final_weights = "checkpoints/step-00000045/weights.safetensors";
    let expected = metrics(&reference);
    let expected_weights = bytes(&reference.join(final_weights));
    // step 3: both chains mid-epoch; step 9: the second chain waits for the first at the
    // end of the epoch; step 15: epoch end; step 24: waiting again, in the second epoch.
    for step in [3, 9, 15, 24] {
        let resumed = dir(&format!("from-{step}"));
        copy_dir(&reference, &resumed);
        let checkpoint = resumed.join(format!("checkpoints/step-{step:08}"));
        assert!(checkpoint.exists(), "no checkpoint at step {step}");
        for later in std::fs::read_dir(resumed.join("checkpoints")).unwrap() {
            let path = later.unwrap().path();
            if path.file_name() > checkpoint.file_name() {
                std::fs::remove_dir_all(path).unwrap();
            }
        }
        run(
            FIXTURE,
            &resumed,
            &["--resume", &checkpoint.display().to_string()],
        );
        assert_eq!(
            metrics(&resumed),
            expected,
            "metrics differ after resuming at step {step}"
        );
        assert!(
            bytes(&resumed.join(final_weights)) == expected_weights,
            "final weights differ after resuming at step {step}"
        );
    }
}

/// The MNIST example, shortened to 120 lead-chain steps (past the first epoch end, where
/// both models are evaluated) with a checkpoint every 20 steps and at the end.
const MNIST: &str = "pipelines/mnist_two_models.yaml";
const MNIST_SHORT: [&str; 4] = [
    "--set",
    "schedule={steps: 120}",
    "--set",
    "stages.ckpt.on=[{every_n_steps: 20}, fit_end]",
];

#[test]
fn mnist_two_models_killed_with_sigkill_resume_exactly() {
    let reference = dir("mnist-reference");
    run(MNIST, &reference, &MNIST_SHORT);
    let records = metrics(&reference);
    for (eval, floor) in [("mlp_test", 0.85), ("cnn_test", 0.9)] {
        let accuracy = records
            .iter()
            .find(|r| r["event"] == "eval" && r["stage"] == eval)
            .and_then(|r| r["accuracy"].as_f64())
            .unwrap_or_else(|| panic!("no record of eval {eval}"));
        assert!(accuracy > floor, "{eval}: {accuracy} after one epoch");
    }

    let out = dir("mnist-killed");
    let out_text = out.display().to_string();
    let device = device();
    let mut child = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args(MNIST, &out_text, &device, &MNIST_SHORT))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let killed_after = out.join("checkpoints/step-00000040");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !killed_after.exists() && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let last = "checkpoints/step-00000120/weights.safetensors";
    assert!(killed_after.exists(), "no checkpoint before the deadline");
    assert!(
        !out.join(last).exists(),
        "the run finished before it was killed; the test proves nothing"
    );
    run(
        MNIST,
        &out,
        &[&MNIST_SHORT[..], &["--resume", "latest"]].concat(),
    );
    assert_eq!(metrics(&out), records);
    assert!(bytes(&out.join(last)) == bytes(&reference.join(last)));
}

/// Tensors of a safetensors file by name.
fn tensors(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let bytes = bytes(path);
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect()
}

#[test]
fn a_trained_encoder_reused_frozen_under_a_new_head_stays_as_it_was() {
    // Train the chained example end to end (shortened), and export its weights.
    let pretrain = dir("encoder-head");
    run(
        "pipelines/digits_encoder_head.yaml",
        &pretrain,
        &["--set", "schedule.epochs=8"],
    );
    let exported = pretrain.join("encoder.safetensors");
    let status = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["export"])
        .arg(pretrain.join("checkpoints/step-00000360"))
        .arg("--out")
        .arg(&exported)
        .status()
        .unwrap();
    assert!(status.success());
    let trained = tensors(&exported);
    assert!(
        trained.contains_key("encoder.layers.0.weight"),
        "{:?}",
        trained.keys()
    );
    assert!(trained.contains_key("head.layers.0.bias"));

    // Reuse the encoder, frozen, under a new head.
    let out = dir("frozen-encoder");
    let init = format!("models.encoder.init_from={}", exported.display());
    run("tests/frozen_encoder.yaml", &out, &["--set", &init]);
    let after = tensors(&out.join("checkpoints/step-00000270/weights.safetensors"));
    for (name, data) in trained.iter().filter(|(n, _)| n.starts_with("encoder.")) {
        assert!(after[name] == *data, "{name} changed while frozen");
    }
    assert!(after.contains_key("new_head.layers.0.weight"));
    let records = metrics(&out);
    let accuracy = records
        .iter()
        .rfind(|r| r["event"] == "eval" && r["stage"] == "test")
        .and_then(|r| r["accuracy"].as_f64())
        .unwrap();
    assert!(accuracy > 0.9, "the new head reached only {accuracy}");
    // The optimizer state holds the head alone.
    let optimizer = tensors(&out.join("checkpoints/step-00000270/optimizer.safetensors"));
    assert!(
        optimizer.keys().all(|n| !n.contains("encoder.")),
        "{:?}",
        optimizer.keys()
    );
}

#[test]
fn a_student_distils_from_a_frozen_teacher_loaded_from_its_file() {
    let out = dir("distill");
    run(
        "pipelines/mnist_distill.yaml",
        &out,
        &[
            "--set",
            "schedule={steps: 100}",
            "--set",
            "stages.kd_test.on=[fit_end]",
            "--set",
            "stages.alone_test.on=[fit_end]",
        ],
    );
    let records = metrics(&out);
    let accuracy = |eval: &str| {
        records
            .iter()
            .rfind(|r| r["event"] == "eval" && r["stage"] == eval)
            .and_then(|r| r["accuracy"].as_f64())
            .unwrap_or_else(|| panic!("no record of {eval}"))
    };
    // The teacher is the trained CNN of mnist_two_models.yaml, evaluated as loaded.
    assert!(
        accuracy("teacher_test") > 0.97,
        "{}",
        accuracy("teacher_test")
    );
    assert!(accuracy("kd_test") > 0.85, "{}", accuracy("kd_test"));
    assert!(accuracy("alone_test") > 0.85, "{}", accuracy("alone_test"));
}

#[test]
fn a_batch_end_checkpoint_at_a_step_with_every_n_steps_hooks_resumes_exactly() {
    // `metrics` writes steps records every 4 lead steps; a checkpoint after every batch
    // is saved after those hooks too, so resuming from one at step 8 loses nothing.
    let set = ["--set", "stages.save.on=[batch_end]"];
    let reference = dir("batch-end-reference");
    run(FIXTURE, &reference, &set);
    let expected = metrics(&reference);
    let last = "checkpoints/step-00000045-micro-00000090/weights.safetensors";
    let expected_weights = bytes(&reference.join(last));
    let resumed = dir("batch-end-resumed");
    copy_dir(&reference, &resumed);
    let checkpoint = resumed.join("checkpoints/step-00000008");
    assert!(checkpoint.exists(), "no checkpoint after step 8");
    for later in std::fs::read_dir(resumed.join("checkpoints")).unwrap() {
        let path = later.unwrap().path();
        if path.file_name() > checkpoint.file_name() {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
    let path = checkpoint.display().to_string();
    run(
        FIXTURE,
        &resumed,
        &[&set[..], &["--resume", &path]].concat(),
    );
    assert_eq!(metrics(&resumed), expected);
    assert!(bytes(&resumed.join(last)) == expected_weights);
}

/// A monitor of a chain's training loss at `every_n_steps` checks only periods in which
/// that chain trained: the second chain of `chains.yaml` trains 12 of the lead chain's 30
/// batch ticks per epoch (6 of its 15 steps, accumulation 2), and waits idle for the rest.
#[test]
fn a_monitor_of_an_idle_chain_sees_no_new_value() {
    let out = dir("idle-monitor");
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    // Never improves by 1000: the plateau holds at its 14th check. (A log callback prints
    // what callbacks say.)
    let pipeline = format!(
        "{fixture}  - id: watch\n    kind: callback\n    callback: {{type: monitor, metric: small_loss.loss, condition: {{kind: plateau, patience: 13, min_delta: 1000}}, action: {{kind: stop}}}}\n    on: [{{every_n_steps: 1}}]\n  - {{id: log, kind: callback, callback: {{type: log}}, on: [fit_end]}}\n"
    );
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join("idle.yaml");
    std::fs::write(&file, pipeline).unwrap();
    let (out_text, device) = (out.join("run").display().to_string(), device());
    let output = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args([
            "run",
            &file.display().to_string(),
            "--device",
            &device,
            "--out",
            &out_text,
        ])
        .output()
        .expect("engine runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stdout
        .lines()
        .chain(stderr.lines())
        .find(|l| l.starts_with("monitor `watch`"))
        .unwrap_or_else(|| panic!("the monitor fired: {stdout}"));
    // Six checks an epoch at the steps the chain trained: the 14th is epoch 3's second,
    // step 2 * 15 + 2. (Counting its idle steps too, it fired in epoch 2, at step 23.)
    assert!(line.contains(" at step 32 "), "{line}");
    let _ = std::fs::remove_dir_all(&out);
}
