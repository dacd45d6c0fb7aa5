//! Snapshot testing for users: a pipeline's plan and the metrics of its first steps as
//! one stable text, for `insta::assert_snapshot!`. A change to the pipeline (or to the
//! engine) then shows up as a reviewable diff. See docs/testing.md.
//!
//! ```no_run
//! // tests/pipeline_snapshots.rs in your project
//! let text = engine::testing::snapshot_run("pipelines/my.yaml", &["datasets.d.source.samples=256"], 20).unwrap();
//! // insta::assert_snapshot!(text);
//! # let _ = text;
//! ```

use std::fmt::Write as _;
use std::path::Path;

use crate::diag::{Sources, render};
use crate::run::{RunOptions, run_plan};
use crate::{LoadError, load_pipeline};

/// Runs `steps` optimizer steps of a pipeline (with `--set`-style overrides) and returns
/// its plan followed by one line per training step and eval: step, epoch, loss and
/// accuracy, rounded to 6 significant digits so that the text is stable on one adapter
/// and reviewable as a diff. Wall-clock times are left out.
///
/// The adapter is taken from `ENGINE_TEST_BACKEND` (`vulkan` or `gl`), else from the
/// pipeline's `device:`.
/// Errors (an invalid pipeline, no adapter) come back as readable text.
pub fn snapshot_run(
    pipeline: impl AsRef<Path>,
    overrides: &[&str],
    steps: u64,
) -> Result<String, String> {
    let mut all: Vec<String> = overrides.iter().map(|o| (*o).to_string()).collect();
    all.push(format!("schedule={{steps: {steps}}}"));
    let mut sources = Sources::default();
    let checked = match load_pipeline(pipeline.as_ref(), &all, &mut sources) {
        Ok(c) => c,
        Err(LoadError::Invalid(d)) => return Err(render(&d, &sources, false)),
        Err(LoadError::Io(e)) => return Err(e),
    };
    let lowered = crate::plan::plan_pipeline(&checked);
    let plan = lowered.to_string();
    let out_dir = std::env::temp_dir().join(format!(
        "engine-snapshot-{}-{}",
        lowered.name,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out_dir);
    let device = match std::env::var("ENGINE_TEST_BACKEND").as_deref() {
        Ok("vulkan") => Some(ops::gpu::DeviceRequest {
            backend: ops::gpu::BackendChoice::Vulkan,
            name: None,
        }),
        Ok("gl") => Some(ops::gpu::DeviceRequest {
            backend: ops::gpu::BackendChoice::Gl,
            name: None,
        }),
        _ => None,
    };
    let options = RunOptions {
        out_dir: out_dir.clone(),
        device,
        quiet: true,
        resume: None,
        metrics_every_steps: Some(1),
        init_from: None,
        record_dispatches: false,
    };
    run_plan(&lowered, &options).map_err(|e| e.to_string())?;
    let metrics =
        std::fs::read_to_string(out_dir.join(&lowered.metrics_file)).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&out_dir);
    let mut text = plan;
    text.push_str("\nmetrics (event stage step epoch loss accuracy)\n");
    for line in metrics.lines() {
        let record: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if record["event"] == "train" {
            continue; // the per-step records already cover it
        }
        let number = |key: &str| {
            record[key]
                .as_f64()
                .map_or("-".to_string(), |v| format!("{v:.6}"))
        };
        let _ = writeln!(
            text,
            "{} {} {} {} {} {}",
            record["event"].as_str().unwrap_or("?"),
            record["stage"].as_str().unwrap_or("?"),
            record["step"],
            record["epoch"],
            number("loss"),
            number("accuracy"),
        );
    }
    Ok(text)
}
