//! Run: executes a plan — data stages on rayon, the training chains' steps on the GPU,
//! evals and callbacks at their triggers — writes `<out>/metrics.jsonl`, checkpoints, and
//! resumes exactly from a checkpoint. It reads the [`Plan`] only, never the pipeline.

mod bench;
pub(crate) mod callbacks;
mod chain;
pub mod checkpoint;
mod dispatches;
mod evaluate;
pub(crate) mod exec;
mod federated;
pub mod infer;
mod metrics;
mod profile;
mod runner;

pub use bench::{BenchOptions, BenchReport, bench_pipeline, turn_off_shader_caches};
pub use dispatches::{ChainDispatches, DispatchPlan, EvalDispatches, dispatch_plan};
pub use evaluate::{EvalOutcome, evaluate_split};
pub use federated::{PartitionSummary, partition_summary};
pub use metrics::MetricsRecord;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ops::gpu::DeviceRequest;
use ops::train::StepMetrics;

use crate::check::CheckedPipeline;
use crate::plan::{Plan, plan_pipeline};
use crate::scores::Scores;

use checkpoint::{CheckpointError, MetricSums};

/// Options of `engine run` that are not part of the pipeline.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Output directory (metrics, resolved pipeline, checkpoints).
    pub out_dir: PathBuf,
    /// Overrides the pipeline's `device:`.
    pub device: Option<DeviceRequest>,
    /// Print only errors (the caller prints its own summary).
    pub quiet: bool,
    /// Continue from this checkpoint directory.
    pub resume: Option<PathBuf>,
    /// Also write a `steps` metrics record every N optimizer steps (to `metrics.jsonl`,
    /// even without a metrics callback); used by [`crate::testing`].
    pub metrics_every_steps: Option<u64>,
    /// Start from these weights (a checkpoint directory or a `.safetensors` file), with a
    /// fresh optimizer and data position: fine-tuning, e.g. on another split.
    pub init_from: Option<PathBuf>,
    /// Record the dispatches of every training step and eval batch submitted (in
    /// [`RunSummary::recorded`]); tests compare them with [`dispatch_plan`].
    pub record_dispatches: bool,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The GPU runtime failed (no adapter, out of memory, mismatched checkpoint, ...).
    #[error("{0}")]
    Gpu(#[from] ops::gpu::GpuError),
    /// Data could not be loaded.
    #[error("{0}")]
    Data(#[from] crate::data::DataError),
    /// A step asks for f16 on an adapter without f16 shaders (and no fallback).
    #[error(
        "step `{chain}` trains in mixed precision (f16), but adapter {adapter} has no f16 shaders"
    )]
    NoShaderF16 {
        /// The step stage.
        chain: String,
        /// The adapter.
        adapter: String,
    },
    /// The ranks of a data-parallel job could not exchange gradients.
    #[error("{0}")]
    Ranks(#[from] crate::ranks::RanksError),
    /// A checkpoint could not be written or loaded.
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    /// Output could not be written.
    #[error("cannot write `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The pipeline uses something the executor does not run yet.
    #[error("{0}")]
    Unsupported(String),
    /// A callback's command failed and its `on_failure` is `stop`.
    #[error("{0}")]
    Hook(String),
    /// A non-finite loss or gradient norm under `nan_guard: stop`.
    #[error("{0}")]
    NonFinite(String),
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Last metrics of each eval stage.
    pub evals: BTreeMap<String, StepMetricsSummary>,
    /// Optimizer steps of the lead chain (the run's step clock).
    pub steps: u64,
    /// Optimizer steps of each chain, by name.
    pub chain_steps: BTreeMap<String, u64>,
    /// Where metrics went.
    pub metrics_path: Option<PathBuf>,
    /// Adapter used.
    pub adapter: String,
    /// Mean training throughput.
    pub samples_per_second: f64,
    /// With [`RunOptions::record_dispatches`]: each submission, `train` or `eval`, with
    /// its dispatches, in order.
    pub recorded: Vec<(&'static str, Vec<ops::gpu::DispatchInfo>)>,
}

/// Mean loss and accuracies of one evaluation or training window.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepMetricsSummary {
    /// Mean loss.
    pub loss: f64,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Top-5 accuracy.
    pub top5: f64,
    /// Samples seen.
    pub samples: u64,
    /// Scores computed from the outputs (evals that ask for them).
    #[serde(default)]
    pub scores: Scores,
}

impl From<MetricSums> for StepMetricsSummary {
    fn from(m: MetricSums) -> Self {
        let n = m.samples.max(1) as f64;
        StepMetricsSummary {
            loss: m.loss_sum / n,
            accuracy: m.correct as f64 / n,
            top5: m.top5_correct as f64 / n,
            samples: m.samples,
            scores: Scores::default(),
        }
    }
}

impl From<StepMetrics> for MetricSums {
    fn from(m: StepMetrics) -> Self {
        MetricSums {
            loss_sum: m.loss_sum,
            correct: m.correct,
            top5_correct: m.top5_correct,
            samples: m.samples,
            last_grad_norm: m.last_grad_norm,
        }
    }
}

impl MetricSums {
    fn add(&mut self, m: &StepMetrics) {
        self.loss_sum += m.loss_sum;
        self.correct += m.correct;
        self.top5_correct += m.top5_correct;
        self.samples += m.samples;
        self.last_grad_norm = m.last_grad_norm;
    }
}

/// One line for an eval's final numbers: `test: loss 0.0123, accuracy 98.50%, f1 0.9812
/// (114 samples)`, with the metrics it computes, in its order.
pub fn describe_eval(
    name: &str,
    metrics: &[crate::spec::EvalMetric],
    m: &StepMetricsSummary,
) -> String {
    let parts: Vec<String> = metrics.iter().filter_map(|metric| metric.show(m)).collect();
    format!("{name}: {} ({} samples)", parts.join(", "), m.samples)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Lowers a checked pipeline and trains it (see [`run_plan`]).
pub fn run_pipeline(
    checked: &CheckedPipeline,
    options: &RunOptions,
) -> Result<RunSummary, RunError> {
    run_plan(&plan_pipeline(checked), options)
}

/// Trains a plan end to end (or from a checkpoint) in this process alone.
pub fn run_plan(plan: &Plan, options: &RunOptions) -> Result<RunSummary, RunError> {
    runner::run(plan, options, &crate::ranks::OneRank)
}

/// Trains a plan as one rank of a data-parallel job (the plan made for the job's size with
/// [`Plan::data_parallel`]): rank 0 writes metrics, checkpoints and the run's files.
pub fn run_plan_on(
    plan: &Plan,
    options: &RunOptions,
    ranks: &dyn crate::ranks::Ranks,
) -> Result<RunSummary, RunError> {
    runner::run(plan, options, ranks)
}
