//! Mistakes a new user made when trying the engine, each fixed and kept fixed: overrides
//! located at the override, one problem per mistake, device and export messages that say
//! what to do, metrics and the report always written, the summary showing what was asked.

use std::path::Path;

mod common;
use common::{engine, ok, run_pipeline, scratch};

const DIGITS: &str = "pipelines/digits_mlp.yaml";
const IRIS: &str = "pipelines/iris.yaml";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn validate(set: &str) -> (Option<i32>, String) {
    let out = engine(&["validate", DIGITS, "--set", set]);
    (out.status.code(), stderr(&out))
}

#[test]
fn a_misspelt_override_key_is_reported_at_the_override_with_a_suggestion() {
    let (code, text) = validate("schedule.epoch=3");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("--set schedule.epoch=3:1:10"), "{text}");
    assert!(text.contains("did you mean `epochs`?"), "{text}");
    assert!(text.contains("1 problem found"), "{text}");
}

#[test]
fn a_wrong_override_value_is_one_problem() {
    let (code, text) = validate("schedule.epochs=2.5");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("--set schedule.epochs=2.5:1:17"), "{text}");
    assert!(text.contains("1 problem found"), "{text}");
}

#[test]
fn an_override_list_names_the_item_where_it_is_wrong() {
    let (code, text) = validate("stages.test.metrics=[loss, mae, rmsee]");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("unknown metric `rmsee` in `stages[5].metrics[2]`"),
        "{text}"
    );
    assert!(text.contains(":1:33"), "{text}");
    assert!(text.contains("did you mean `rmse`?"), "{text}");
}

#[test]
fn an_unknown_device_is_named_as_written_with_the_choices() {
    let out_dir = scratch("new-user", "cuda");
    let out = engine(&[
        "run",
        IRIS,
        "--quiet",
        "--device",
        "cuda",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("whose name contains `cuda`"), "{text}");
    assert!(text.contains("`vulkan`"), "{text}");
    assert!(!text.contains("Some("), "{text}");
}

/// One short iris run serves the export and summary checks.
fn iris_run(name: &str) -> (std::path::PathBuf, String) {
    let out_dir = scratch("new-user", name);
    let out = run_pipeline(IRIS, &out_dir, &["--set", "schedule.epochs=3"]);
    ok(&out);
    (out_dir, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn export_says_what_to_pass_and_writes_the_format_its_extension_names() {
    let (run, stdout) = iris_run("export");
    // The summary shows the metrics the eval asks for (`[loss, accuracy]`), not top-5.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("test: "))
        .unwrap_or_else(|| panic!("no summary line in {stdout}"));
    assert!(line.contains("loss") && line.contains("accuracy"), "{line}");
    assert!(!line.contains("top-5"), "{line}");

    let folder = run.join("checkpoints");
    let target = run.join("model.safetensors");
    let out = engine(&[
        "export",
        folder.to_str().unwrap(),
        "--out",
        target.to_str().unwrap(),
    ]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(!text.contains("corrupt"), "{text}");
    assert!(text.contains("pass one of them"), "{text}");
    assert!(text.contains("step-"), "{text}");
    assert!(text.contains("latest --run"), "{text}");

    let onnx = run.join("model.onnx");
    let out = engine(&[
        "export",
        "latest",
        "--run",
        run.to_str().unwrap(),
        "--out",
        onnx.to_str().unwrap(),
    ]);
    ok(&out);
    let bytes = std::fs::read(&onnx).unwrap();
    // An ONNX ModelProto opens with field 1 (ir_version, a varint): tag byte 0x08; a
    // safetensors file opens with its u64 header length and then `{`.
    assert_eq!(bytes.first(), Some(&0x08), "not ONNX");
    assert_ne!(bytes.get(8), Some(&b'{'), "safetensors written as .onnx");
}

#[test]
fn a_run_without_a_metrics_callback_keeps_its_metrics_and_writes_the_report() {
    let dir = scratch("new-user", "no-metrics");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(IRIS).unwrap();
    let without = text
        .replace(
            "  - id: metrics\n    kind: callback\n    callback: {type: metrics}\n    on: [epoch_end]\n    after: [test]\n\n",
            "",
        )
        .replace("after: [metrics]", "after: [test]")
        .replace("path: data/", &format!("path: {}/pipelines/data/", env!("CARGO_MANIFEST_DIR")));
    assert_ne!(without, text, "the fixture edit applies");
    assert!(!without.contains("type: metrics"));
    let pipeline = dir.join("iris.yaml");
    std::fs::write(&pipeline, without).unwrap();
    let run = dir.join("run");
    let out = run_pipeline(
        pipeline.to_str().unwrap(),
        &run,
        &["--set", "schedule.epochs=2"],
    );
    ok(&out);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(metrics.lines().any(|l| l.contains("\"event\":\"eval\"")));
    assert!(Path::new(&run.join("report.html")).exists());
}
