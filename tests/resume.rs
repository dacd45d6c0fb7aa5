//! Exact resume: a run interrupted at any checkpoint — mid-epoch, at an epoch end in the
//! middle of an accumulation group, or by SIGKILL — and resumed writes the same metrics
//! and final weights, bit for bit, as an uninterrupted run on the same adapter.
//! Corrupt checkpoints are refused; mismatched models are named.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{copy_dir, engine, kill_once_written, metrics, ok, run_pipeline, scratch};

const PIPELINE: &str = "tests/resume.yaml";
const FINAL: &str = "checkpoints/step-00000029";

fn dir(name: &str) -> PathBuf {
    scratch("resume", name)
}

fn run(out: &Path, extra: &[&str]) -> Output {
    run_pipeline(PIPELINE, out, extra)
}

fn weights(out: &Path) -> Vec<u8> {
    weights_at(out, FINAL)
}

fn weights_at(out: &Path, checkpoint: &str) -> Vec<u8> {
    std::fs::read(out.join(checkpoint).join("weights.safetensors")).expect("final checkpoint")
}

/// An uninterrupted run (each test makes its own: tests run in parallel).
fn reference(test: &str) -> PathBuf {
    let out = dir(&format!("reference-{test}"));
    ok(&run(&out, &[]));
    out
}

#[test]
fn resuming_at_any_checkpoint_matches_the_uninterrupted_run() {
    let reference = reference("resuming");
    let (expected_metrics, expected_weights) = (metrics(&reference), weights(&reference));
    assert!(expected_metrics.len() >= 6);
    // step 3: mid-epoch; step 9: epoch end with 3 of 4 micro-batches accumulated;
    // step 19: epoch end with 2 accumulated; step 24: mid-epoch in the last epoch.
    for step in [3, 9, 19, 24] {
        let resumed = dir(&format!("from-{step}"));
        copy_dir(&reference, &resumed);
        let checkpoint = resumed.join(format!("checkpoints/step-{step:08}"));
        assert!(checkpoint.exists(), "no checkpoint at step {step}");
        // Everything after the checkpoint is gone, as if the run had died there.
        for later in std::fs::read_dir(resumed.join("checkpoints")).unwrap() {
            let path = later.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().as_ref()
                > checkpoint.file_name().unwrap().to_string_lossy().as_ref()
            {
                std::fs::remove_dir_all(path).unwrap();
            }
        }
        ok(&run(
            &resumed,
            &["--resume", &checkpoint.display().to_string()],
        ));
        assert_eq!(
            metrics(&resumed),
            expected_metrics,
            "metrics differ after resuming at step {step}"
        );
        assert!(
            weights(&resumed) == expected_weights,
            "final weights differ after resuming at step {step}"
        );
    }
}

#[test]
fn a_run_killed_with_sigkill_resumes_exactly() {
    killed_run_resumes_exactly(PIPELINE, "killed", "checkpoints/step-00000012", FINAL);
}

/// The same for a ResNet with batch norm written with a block: its running statistics are
/// state the optimizer does not hold, checkpointed with the weights.
#[test]
fn a_resnet_with_batch_norm_killed_with_sigkill_resumes_exactly() {
    killed_run_resumes_exactly(
        "tests/resume_resnet.yaml",
        "killed-resnet",
        "checkpoints/step-00000009",
        "checkpoints/step-00000024",
    );
    // The statistics are there, and have moved from their initial values.
    let out = dir("resnet-stats");
    ok(&run_pipeline("tests/resume_resnet.yaml", &out, &[]));
    let bytes = weights_at(&out, "checkpoints/step-00000024");
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let var = tensors.tensor("block2.bn1.running_var").unwrap();
    let values: Vec<f32> = var
        .data()
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(values.len(), 4);
    assert!(values.iter().all(|&v| v > 0.0 && v != 1.0), "{values:?}");
}

/// Runs `pipeline` to the end, then again killed (SIGKILL) once checkpoint `wait_for`
/// exists, resumes it from `latest`, and compares metrics and the weights of `last`.
fn killed_run_resumes_exactly(pipeline: &str, name: &str, wait_for: &str, last: &str) {
    let reference = dir(&format!("reference-{name}"));
    ok(&run_pipeline(pipeline, &reference, &[]));
    let out = dir(name);
    kill_once_written(pipeline, &out, wait_for, last);
    ok(&run_pipeline(pipeline, &out, &["--resume", "latest"]));
    assert_eq!(metrics(&out), metrics(&reference));
    assert!(weights_at(&out, last) == weights_at(&reference, last));
}

#[test]
fn corrupt_or_truncated_checkpoints_are_refused() {
    let reference = reference("corrupt");
    type Damage = fn(&Path);
    let cases: [(&str, Damage); 3] = [
        ("flipped", |c| {
            let f = c.join("weights.safetensors");
            let mut bytes = std::fs::read(&f).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x40;
            std::fs::write(f, bytes).unwrap();
        }),
        ("truncated", |c| {
            let f = c.join("optimizer.safetensors");
            let bytes = std::fs::read(&f).unwrap();
            std::fs::write(f, &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("unfinished", |c| {
            std::fs::remove_file(c.join("manifest.json")).unwrap()
        }),
    ];
    for (name, damage) in cases {
        let out = dir(name);
        copy_dir(&reference, &out);
        let checkpoint = out.join("checkpoints/step-00000012");
        damage(&checkpoint);
        let output = run(&out, &["--resume", &checkpoint.display().to_string()]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("corrupt"),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn a_mismatched_model_names_the_tensor_and_both_shapes() {
    let reference = reference("mismatch");
    let checkpoint = reference
        .join("checkpoints/step-00000012")
        .display()
        .to_string();
    let output = run(
        &dir("mismatch"),
        &[
            "--resume",
            &checkpoint,
            "--set",
            "models.net.layers.0.linear.out=25",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("layers.0.weight") && stderr.contains("24") && stderr.contains("25"),
        "{stderr}"
    );
}

#[test]
fn exported_weights_load_with_the_safetensors_crate() {
    let reference = reference("export");
    let file = reference.join("weights.safetensors");
    let output = engine(&[
        "export",
        &reference.join(FINAL).display().to_string(),
        "--out",
        &file.display().to_string(),
    ]);
    ok(&output);
    let bytes = std::fs::read(&file).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "layers.0.bias",
            "layers.0.weight",
            "layers.3.bias",
            "layers.3.weight"
        ]
    );
    assert_eq!(tensors.tensor("layers.0.weight").unwrap().shape(), [24, 12]);
}

#[test]
fn checkpoints_taken_at_epoch_start_or_inside_a_batch_resume_exactly() {
    let set = ["--set", "stages.save.on=[epoch_start, batch_end]"];
    let reference = dir("reference-in-batch");
    ok(&run(&reference, &set));
    let last = "checkpoints/step-00000029-micro-00000117/weights.safetensors";
    // epoch 1 starts; a batch ends mid-group; a batch ends where a group completes.
    for name in [
        "step-00000009",
        "step-00000009-micro-00000038",
        "step-00000014-micro-00000058",
        "step-00000015-micro-00000060",
    ] {
        let resumed = dir(&format!("in-batch-{name}"));
        copy_dir(&reference, &resumed);
        let checkpoint = resumed.join("checkpoints").join(name);
        assert!(checkpoint.exists(), "no checkpoint {name}");
        let mut args = set.to_vec();
        let path = checkpoint.display().to_string();
        args.extend(["--resume", &path]);
        ok(&run(&resumed, &args));
        assert_eq!(
            metrics(&resumed),
            metrics(&reference),
            "metrics differ after resuming at {name}"
        );
        let (a, b) = (
            std::fs::read(reference.join(last)).unwrap(),
            std::fs::read(resumed.join(last)).unwrap(),
        );
        assert!(a == b, "final weights differ after resuming at {name}");
    }
}

#[test]
fn fine_tuning_starts_from_trained_weights_on_another_split() {
    let reference = reference("finetune");
    let weights = reference.join("weights.safetensors");
    ok(&engine(&[
        "export",
        &reference.join(FINAL).display().to_string(),
        "--out",
        &weights.display().to_string(),
    ]));
    let first_loss = |out: &Path| -> f64 {
        let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            first["split"], "val",
            "the fine-tuning run trains on the val split"
        );
        first["loss"].as_f64().unwrap()
    };
    let on_val = [
        "--set",
        "stages.batch.split=val",
        "--set",
        "schedule.epochs=1",
    ];
    let (fresh, tuned) = (dir("fresh-on-val"), dir("tuned-on-val"));
    ok(&run(&fresh, &on_val));
    let mut args = on_val.to_vec();
    let from = weights.display().to_string();
    args.extend(["--init-from", &from]);
    ok(&run(&tuned, &args));
    let (fresh_loss, tuned_loss) = (first_loss(&fresh), first_loss(&tuned));
    assert!(
        tuned_loss < fresh_loss / 2.0,
        "fine-tuning starts from trained weights: {tuned_loss} vs fresh {fresh_loss}"
    );
    // The weights must fit the pipeline's model.
    let mismatch = run(
        &dir("tuned-mismatch"),
        &[
            "--init-from",
            &from,
            "--set",
            "models.net.layers.0.linear.out=25",
        ],
    );
    assert_eq!(mismatch.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&mismatch.stderr).contains("layers.0.weight"));
}
