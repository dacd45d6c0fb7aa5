//! Mixed precision from the pipeline (`precision: f16` on a step): the plan shows the f16
//! step and its kernels; f16 trains the digits MLP and CNN within half a point of f32;
//! a run resumes exactly (the loss scaler's state is in the checkpoint); an adapter without
//! f16 shaders (Mesa's GL) is refused with the location of `precision: f16`, or falls
//! back to f32 with a warning when the pipeline allows it.

use std::path::Path;

mod common;
use common::{copy_dir, device, engine, metrics, ok, run_pipeline, scratch};

/// Whether the test adapter has f16 shaders (`engine devices` says).
fn adapter_has_f16() -> bool {
    let output = engine(&["devices"]);
    let text = String::from_utf8_lossy(&output.stdout);
    let wanted = device();
    text.lines()
        .filter(|l| wanted == "auto" || l.to_lowercase().contains(&wanted))
        .any(|l| l.contains("f16 shaders") && !l.contains("no f16 shaders"))
}

/// The last eval record of `stage` in a run's metrics.
fn last_eval_accuracy(out: &Path, stage: &str) -> f64 {
    metrics(out)
        .iter()
        .rev()
        .find(|r| r["event"] == "eval" && r["stage"] == stage)
        .and_then(|r| r["accuracy"].as_f64())
        .expect("an eval record")
}

#[test]
fn the_plan_shows_the_f16_step_and_its_kernels() {
    let output = engine(&[
        "plan",
        "pipelines/digits_cnn.yaml",
        "--set",
        "stages.4.precision=f16",
        "--ranks",
        "2",
    ]);
    ok(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("step: data parallel over 2 ranks ∘ f16 step (f16 matmul/conv operands"),
        "{text}"
    );
    for kernel in [
        "linear.forward (f16 operands)",
        "conv2d.backward (f16 operands)",
        "loss_scale.apply",
        "loss_scale.update",
    ] {
        assert!(text.contains(kernel), "{kernel} missing:\n{text}");
    }
}

/// The `memory:` line of `engine plan`'s output, its activations in KiB.
fn planned_activations_kib(args: &[&str]) -> f64 {
    let output = engine(args);
    ok(&output);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with("memory:"))
        .unwrap_or_else(|| panic!("no memory line:\n{text}"));
    let after = line.split("activations ").nth(1).expect("activations");
    let kib = after.split(" KiB").next().expect("KiB");
    kib.parse().unwrap_or_else(|e| panic!("{kib}: {e}"))
}

#[test]
fn the_activations_between_linear_layers_are_stored_as_f16() {
    // digits_mlp: 64 -> 100 -> relu -> 100 -> relu -> 10 at batch 32. The two hidden
    // activations (and the relus' outputs, which are the same buffers) are f16: 2 bytes
    // less per value, 4 x 100 values per sample.
    let mlp = "pipelines/digits_mlp.yaml";
    let f32_kib = planned_activations_kib(&["plan", mlp]);
    let f16_kib = planned_activations_kib(&["plan", mlp, "--set", "stages.step.precision=f16"]);
    assert_eq!(f32_kib - f16_kib, (32 * 4 * 100 * 2) as f64 / 1024.0);
    if !adapter_has_f16() {
        eprintln!("no f16 shaders on the test adapter: the dispatches are not listed");
        return;
    }
    let output = engine(&[
        "plan",
        mlp,
        "--set",
        "stages.step.precision=f16",
        "--dispatches",
        "--device",
        &device(),
    ]);
    ok(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    // The first GEMM stores act.0 as f16, the second reads it and stores act.2; the
    // backward GEMMs read them as dW operands and relu masks. The input and the logits
    // (act.4, read by the loss) stay f32.
    for dispatch in [
        "] act.input, params[0..6400), act.0:f16,",
        "] act.0:f16, params[6528..16528), act.2:f16,",
        "] act.2:f16, params[16704..17704), act.4,",
        "] grad_act.2, act.0:f16, grads[6528..16528)",
        "] grad_act.4, params[16704..17704), grad_act.2, act.2:f16",
    ] {
        assert!(text.contains(dispatch), "{dispatch} missing:\n{text}");
    }
    assert!(
        !text.contains("act.4:f16") && !text.contains("act.input:f16"),
        "{text}"
    );
}

fn accuracy_within_half_a_point(pipeline: &str, step: usize, eval: &str) {
    if !adapter_has_f16() {
        eprintln!("the test adapter has no f16 shaders: nothing to compare");
        return;
    }
    let name = pipeline.rsplit('/').next().unwrap();
    let f32_run = scratch("mixed_precision", &format!("{name}-f32"));
    ok(&run_pipeline(pipeline, &f32_run, &[]));
    let f16_run = scratch("mixed_precision", &format!("{name}-f16"));
    let set = format!("stages.{step}.precision=f16");
    ok(&run_pipeline(pipeline, &f16_run, &["--set", &set]));
    let (a32, a16) = (
        last_eval_accuracy(&f32_run, eval),
        last_eval_accuracy(&f16_run, eval),
    );
    eprintln!("{pipeline}: {eval} accuracy f32 {a32:.4}, f16 {a16:.4}");
    assert!((a32 - a16).abs() <= 0.005, "f32 {a32} vs f16 {a16}");
    assert_ne!(
        metrics(&f32_run),
        metrics(&f16_run),
        "f16 should change the numbers a little"
    );
}

#[test]
fn f16_trains_the_digits_mlp_within_half_a_point_of_f32() {
    accuracy_within_half_a_point("pipelines/digits_mlp.yaml", 4, "test");
}

#[test]
fn f16_trains_the_digits_cnn_within_half_a_point_of_f32() {
    accuracy_within_half_a_point("pipelines/digits_cnn.yaml", 4, "test");
}

#[test]
fn an_f16_run_resumes_exactly() {
    if !adapter_has_f16() {
        eprintln!("the test adapter has no f16 shaders: nothing to resume");
        return;
    }
    // The resume fixture (dropout, Adam, accumulation across epoch ends) in f16.
    let f16 = ["--set", "stages.5.precision=f16"];
    let reference = scratch("mixed_precision", "resume-reference");
    ok(&run_pipeline("tests/resume.yaml", &reference, &f16));
    let resumed = scratch("mixed_precision", "resume-from-9");
    copy_dir(&reference, &resumed);
    for later in std::fs::read_dir(resumed.join("checkpoints")).unwrap() {
        let path = later.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().as_ref() > "step-00000009" {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
    let from = resumed.join("checkpoints/step-00000009");
    let from = from.display().to_string();
    ok(&run_pipeline(
        "tests/resume.yaml",
        &resumed,
        &[&f16[..], &["--resume", &from]].concat(),
    ));
    assert_eq!(metrics(&resumed), metrics(&reference));
    let weights = |out: &Path| {
        std::fs::read(out.join("checkpoints/step-00000029/weights.safetensors")).unwrap()
    };
    assert_eq!(weights(&resumed), weights(&reference));
    // safetensors headers are JSON: the scaler's tensor is named there.
    let optimizer =
        std::fs::read(resumed.join("checkpoints/step-00000009/optimizer.safetensors")).unwrap();
    assert!(
        String::from_utf8_lossy(&optimizer).contains("optimizer.loss_scale"),
        "the checkpoint holds the loss scaler"
    );
}

#[test]
fn an_adapter_without_f16_is_refused_where_precision_is_written_or_falls_back() {
    let devices = engine(&["devices"]);
    let gl_without_f16 = String::from_utf8_lossy(&devices.stdout)
        .lines()
        .any(|l| l.to_lowercase().contains("gl") && l.contains("no f16 shaders"));
    if !gl_without_f16 {
        eprintln!("no GL adapter without f16 shaders here: nothing to refuse");
        return;
    }
    let out = scratch("mixed_precision", "gl-refused");
    let refused = engine(&[
        "run",
        "pipelines/digits_mlp.yaml",
        "--device",
        "gl",
        "--quiet",
        "--out",
        &out.display().to_string(),
        "--set",
        "stages.4.precision=f16",
        "--set",
        "schedule.epochs=1",
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error[f16-unavailable]") && stderr.contains("stages.4.precision=f16:1:10"),
        "{stderr}"
    );
    assert!(
        stderr.contains("f16_fallback: f32"),
        "the hint names the fallback: {stderr}"
    );

    let out = scratch("mixed_precision", "gl-fallback");
    let fallback = engine(&[
        "run",
        "pipelines/digits_mlp.yaml",
        "--device",
        "gl",
        "--out",
        &out.display().to_string(),
        "--set",
        "stages.4.precision=f16",
        "--set",
        "stages.4.f16_fallback=f32",
        "--set",
        "schedule.epochs=1",
    ]);
    ok(&fallback);
    let stderr = String::from_utf8_lossy(&fallback.stderr);
    assert!(
        stderr.contains("warning: step `step`") && stderr.contains("training in f32"),
        "{stderr}"
    );
    let plan = std::fs::read_to_string(out.join("plan.txt")).expect("plan.txt");
    assert!(
        plan.contains("f32 step") && !plan.contains("f16 step"),
        "plan.txt shows what ran: {plan}"
    );
    // Its kernels and memory estimate are the f32 plan's (no f16 operands, no scaler, f32
    // activations).
    let f32_plan = engine(&[
        "plan",
        "pipelines/digits_mlp.yaml",
        "--set",
        "schedule.epochs=1",
    ]);
    ok(&f32_plan);
    let f32_text = String::from_utf8_lossy(&f32_plan.stdout);
    for key in ["memory:", "kernels per step"] {
        let line = |text: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .map(str::to_string)
                .unwrap_or_else(|| panic!("no `{key}` line in {text}"))
        };
        assert_eq!(line(&plan), line(&f32_text), "plan.txt after the fallback");
    }
}
