//! Reading a run directory: the metrics history (required) and the optional resolved
//! pipeline, plan text and run summary.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use super::ReportError;
use super::html::render_report;

/// The metrics history, one record per line.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The pipeline after overrides, first line `# pipeline hash <hex>`.
pub const RESOLVED_FILE: &str = "pipeline.resolved.yaml";
/// The text of `engine plan` for the run.
pub const PLAN_FILE: &str = "plan.txt";
/// Adapter, throughput, steps and wall time of the run.
pub const RUN_FILE: &str = "run.json";
/// What [`write_report`] writes.
pub const REPORT_FILE: &str = "report.html";

/// One line of `metrics.jsonl`, as the report reads it: fields it does not use are
/// ignored and fields added later do not break it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MetricPoint {
    /// `train` or `eval`; records of other events are kept but not charted.
    pub event: String,
    /// The eval stage id, or `train`.
    pub stage: String,
    /// Training records: the training chain (its step stage's id).
    #[serde(default)]
    pub chain: Option<String>,
    /// `train`, `val` or `test`.
    #[serde(default)]
    pub split: String,
    /// Optimizer steps completed.
    pub step: u64,
    /// 0-based epoch.
    #[serde(default)]
    pub epoch: u64,
    /// Mean loss; NaN when the file holds `null` (how JSON writes NaN and infinity).
    #[serde(deserialize_with = "null_as_nan")]
    pub loss: f64,
    /// Top-1 accuracy in [0, 1].
    #[serde(default)]
    pub accuracy: Option<f64>,
    /// Top-5 accuracy in [0, 1].
    #[serde(default)]
    pub top5: Option<f64>,
    /// Samples the record averages over.
    #[serde(default)]
    pub samples: u64,
    /// Learning rate at the last step (training records).
    #[serde(default)]
    pub lr: Option<f64>,
    /// Hash of the resolved pipeline.
    #[serde(default)]
    pub pipeline_hash: Option<String>,
    /// Seconds since training started.
    #[serde(default)]
    pub wall_time_s: Option<f64>,
    /// Precision, recall, F1, ROC AUC, MAE, RMSE, R² (eval records listing them).
    #[serde(flatten)]
    pub scores: crate::scores::Scores,
    /// Per-class scores (eval records listing precision, recall or f1).
    #[serde(default)]
    pub per_class: Option<Vec<crate::scores::ClassScore>>,
    /// `confusion[actual][predicted]` (eval records listing `confusion`).
    #[serde(default)]
    pub confusion: Option<Vec<Vec<u64>>>,
    /// Federated runs: rounds completed.
    #[serde(default)]
    pub round: Option<u64>,
}

fn null_as_nan<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// `run.json`: every field optional so an older or newer file still reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RunInfo {
    /// Adapter name and backend.
    #[serde(default)]
    pub adapter: Option<String>,
    /// Mean training throughput.
    #[serde(default)]
    pub samples_per_second: Option<f64>,
    /// Optimizer steps taken.
    #[serde(default)]
    pub steps: Option<u64>,
    /// Wall time of the run in seconds.
    #[serde(default)]
    pub wall_time_s: Option<f64>,
    /// The metrics file, when a `metrics` callback named another than `metrics.jsonl`.
    #[serde(default)]
    pub metrics_file: Option<String>,
}

/// Everything the report is rendered from.
#[derive(Debug, Clone, Default)]
pub struct RunInputs {
    /// Shown when the resolved pipeline has no name (usually the directory name).
    pub fallback_name: String,
    /// The metrics history in file order.
    pub metrics: Vec<MetricPoint>,
    /// Text of `pipeline.resolved.yaml`.
    pub resolved_yaml: Option<String>,
    /// Text of `plan.txt`.
    pub plan: Option<String>,
    /// Parsed `run.json`.
    pub run_info: Option<RunInfo>,
    /// Problems with optional inputs, shown in the report.
    pub notes: Vec<String>,
    /// `predictions-<eval>.csv` of regression evals: the eval and its (actual, predicted)
    /// pairs.
    pub predictions: Vec<(String, Vec<(f64, f64)>)>,
    /// `partition.json` of a federated run.
    pub partition: Option<super::federated::PartitionInfo>,
}

/// Parses `metrics.jsonl` text; blank lines are skipped. `path` only names the file in
/// errors, which also give the 1-based line number.
pub fn parse_metrics(text: &str, path: &Path) -> Result<Vec<MetricPoint>, ReportError> {
    let mut points = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let point =
            serde_json::from_str::<MetricPoint>(line).map_err(|e| ReportError::Metrics {
                path: path.to_path_buf(),
                line: index + 1,
                message: format!("not a metrics record ({e}): `{}`", excerpt(line)),
            })?;
        points.push(point);
    }
    Ok(points)
}

fn excerpt(line: &str) -> String {
    const MAX_CHARS: usize = 80;
    let mut chars = line.trim().chars();
    let head: String = chars.by_ref().take(MAX_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Reads a run directory. Only `metrics.jsonl` is required; an unreadable or malformed
/// optional file becomes a note.
pub fn read_run_dir(run_dir: &Path) -> Result<RunInputs, ReportError> {
    let mut notes = Vec::new();
    let run_path = run_dir.join(RUN_FILE);
    let run_info = read_optional(&run_path, &mut notes).and_then(|text| match serde_json::from_str::<RunInfo>(&text) {
        Ok(info) => Some(info),
        Err(e) => {
            notes.push(format!("`{}` is not valid run.json ({e}); run details are taken from the metrics instead", run_path.display()));
            None
        }
    });
    let metrics_file = run_info
        .as_ref()
        .and_then(|r| r.metrics_file.as_deref())
        .unwrap_or(METRICS_FILE);
    let metrics_path = run_dir.join(metrics_file);
    let text = std::fs::read_to_string(&metrics_path).map_err(|source| ReportError::Io {
        action: "read",
        path: metrics_path.clone(),
        source,
    })?;
    let metrics = parse_metrics(&text, &metrics_path)?;
    let resolved_yaml = read_optional(&run_dir.join(RESOLVED_FILE), &mut notes);
    let plan = read_optional(&run_dir.join(PLAN_FILE), &mut notes);
    let fallback_name = run_dir
        .canonicalize()
        .unwrap_or_else(|_| run_dir.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let predictions = read_predictions(run_dir, &mut notes);
    let partition_path = run_dir.join("partition.json");
    let partition = if partition_path.exists() {
        read_optional(&partition_path, &mut notes).and_then(|text| {
            match serde_json::from_str(&text) {
                Ok(p) => Some(p),
                Err(e) => {
                    notes.push(format!(
                        "`{}` is not a partition file ({e}); the partition is not drawn",
                        partition_path.display()
                    ));
                    None
                }
            }
        })
    } else {
        None
    };
    Ok(RunInputs {
        partition,
        fallback_name,
        metrics,
        resolved_yaml,
        plan,
        run_info,
        notes,
        predictions,
    })
}

/// Every `predictions-<eval>.csv` in the directory, by eval name; a malformed one is a note.
fn read_predictions(run_dir: &Path, notes: &mut Vec<String>) -> Vec<(String, Vec<(f64, f64)>)> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("predictions-"))
            .and_then(|n| n.strip_suffix(".csv"))
        else {
            continue;
        };
        let Some(text) = read_optional(&path, notes) else {
            continue;
        };
        let pairs: Option<Vec<(f64, f64)>> = text
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (a, p) = l.split_once(',')?;
                Some((a.trim().parse().ok()?, p.trim().parse().ok()?))
            })
            .collect();
        match pairs {
            Some(pairs) => out.push((name.to_string(), pairs)),
            None => notes.push(format!(
                "`{}` is not an `actual,predicted` table; its plots are left out",
                path.display()
            )),
        }
    }
    out
}

fn read_optional(path: &Path, notes: &mut Vec<String>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            notes.push(format!("cannot read `{}`: {e}", path.display()));
            None
        }
    }
}

/// Reads `run_dir`, writes `run_dir/report.html` and returns its path.
pub fn write_report(run_dir: &Path) -> Result<PathBuf, ReportError> {
    let inputs = read_run_dir(run_dir)?;
    let path = run_dir.join(REPORT_FILE);
    std::fs::write(&path, render_report(&inputs)).map_err(|source| ReportError::Io {
        action: "write",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
