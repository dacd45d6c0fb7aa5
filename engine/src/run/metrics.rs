//! `metrics.jsonl`: one JSON record per event. The schema is documented in
//! docs/metrics.md and kept stable: fields are only ever added.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::StepMetricsSummary;
use crate::scores::{ClassReport, ClassScore, Scores};
use crate::spec::EvalMetric;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricsRecord {
    /// `train` (one epoch of training), `steps` (the training steps since the previous
    /// record, when metrics are recorded every N steps), `eval`, and in federated runs
    /// `round` (one round's local training) and `client_eval`.
    pub event: &'static str,
    /// The stage that produced it (`train` for training records).
    pub stage: String,
    /// Training records: the training chain (its step stage's id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The split: `train`, `val` or `test`.
    pub split: String,
    /// Optimizer steps completed.
    pub step: u64,
    /// 0-based epoch.
    pub epoch: u64,
    /// Mean loss.
    pub loss: f64,
    /// Top-1 accuracy in [0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Top-5 accuracy in [0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top5: Option<f64>,
    /// Samples the record averages over.
    pub samples: u64,
    /// Macro-averaged precision, recall and F1, ROC AUC (binary), MAE, RMSE and R²
    /// (regression), each present when the eval lists it.
    #[serde(flatten)]
    pub scores: Scores,
    /// Per-class precision, recall, F1 and support (evals listing precision, recall or f1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_class: Option<Vec<ClassScore>>,
    /// `confusion[actual][predicted]` counts (evals listing `confusion`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Vec<Vec<u64>>>,
    /// Learning rate at the last step (training records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Federated runs: rounds completed (1-based round of `round` and `client_eval`
    /// records, and of evals at round ends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<u64>,
    /// `round` records: the clients that trained, in training order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<u32>>,
    /// `client_eval` records: the global model's accuracy over the clients' own data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_accuracy: Option<ClientSpread>,
    /// Hash of the resolved pipeline.
    pub pipeline_hash: String,
    /// Seconds since training started (the only field that differs between identical runs).
    pub wall_time_s: f64,
}

impl MetricsRecord {
    /// Training since the previous `steps` record (every-N-steps metrics).
    pub(super) fn steps(
        chain: &str,
        split: &str,
        step: u64,
        epoch: u64,
        m: StepMetricsSummary,
        lr: f64,
        wall: f64,
    ) -> Self {
        MetricsRecord {
            event: "steps",
            ..MetricsRecord::train(chain, split, step, epoch, m, lr, wall)
        }
    }

    /// One epoch of training of `chain` on `split` (its load stage's split).
    pub(super) fn train(
        chain: &str,
        split: &str,
        step: u64,
        epoch: u64,
        m: StepMetricsSummary,
        lr: f64,
        wall: f64,
    ) -> Self {
        MetricsRecord {
            event: "train",
            stage: "train".into(),
            chain: Some(chain.into()),
            split: split.into(),
            step,
            epoch,
            loss: m.loss,
            accuracy: Some(m.accuracy),
            top5: None,
            samples: m.samples,
            scores: Scores::default(),
            per_class: None,
            confusion: None,
            lr: Some(lr),
            round: None,
            clients: None,
            client_accuracy: None,
            pipeline_hash: String::new(),
            wall_time_s: wall,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn eval(
        stage: &str,
        split: &str,
        step: u64,
        epoch: u64,
        m: StepMetricsSummary,
        report: Option<&ClassReport>,
        metrics: &[EvalMetric],
        wall: f64,
    ) -> Self {
        let has = |name: &str| metrics.iter().any(|m| m.as_str() == name);
        let device = |name: &str| {
            metrics
                .iter()
                .find(|x| x.as_str() == name && !x.needs_outputs())
                .map(|x| x.of(&m))
        };
        let scores = m.scores.clone().filtered(has);
        let per_class_asked = metrics.iter().any(|m| m.row().per_class);
        let confusion_asked = metrics.iter().any(|m| !m.is_scalar());
        MetricsRecord {
            event: "eval",
            stage: stage.into(),
            chain: None,
            split: split.into(),
            step,
            epoch,
            loss: m.loss,
            accuracy: device("accuracy"),
            top5: device("top5"),
            samples: m.samples,
            scores,
            per_class: report
                .filter(|_| per_class_asked)
                .map(|r| r.per_class.clone()),
            confusion: report
                .filter(|_| confusion_asked)
                .map(|r| r.confusion.clone()),
            lr: None,
            round: None,
            clients: None,
            client_accuracy: None,
            pipeline_hash: String::new(),
            wall_time_s: wall,
        }
    }
}

/// How a metric spreads over clients.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ClientSpread {
    /// Mean over clients (each client counts once).
    pub mean: f64,
    /// The worst client's.
    pub min: f64,
    /// The best client's.
    pub max: f64,
    /// The worst client.
    pub worst_client: u32,
}

/// Appends records to the metrics file, flushing each line.
pub(super) struct MetricsWriter {
    file: BufWriter<File>,
    path: PathBuf,
    hash: String,
    lines: u64,
}

impl MetricsWriter {
    /// Starts the file afresh, or, when resuming, keeps its first `keep` lines (those
    /// written up to the checkpoint) and appends after them.
    pub fn open(path: &Path, hash: &str, keep: u64) -> std::io::Result<Self> {
        let existing = match std::fs::read_to_string(path) {
            // Resuming into a fresh directory: the history before the checkpoint is elsewhere.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            other => other?,
        };
        let kept: Vec<String> = if keep == 0 {
            Vec::new()
        } else {
            existing
                .lines()
                .take(keep as usize)
                .map(str::to_string)
                .collect()
        };
        let mut file = BufWriter::new(File::create(path)?);
        for line in &kept {
            writeln!(file, "{line}")?;
        }
        file.flush()?;
        Ok(MetricsWriter {
            file,
            path: path.to_path_buf(),
            hash: hash.to_string(),
            lines: kept.len() as u64,
        })
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, record: &MetricsRecord) -> std::io::Result<()> {
        let mut record = record.clone();
        record.pipeline_hash.clone_from(&self.hash);
        serde_json::to_writer(&mut self.file, &record)?;
        self.file.write_all(b"\n")?;
        self.lines += 1;
        self.file.flush()
    }
}
