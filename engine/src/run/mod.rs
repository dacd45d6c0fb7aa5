//! Run: executes a plan — data stages on rayon, the training step on the GPU, evals and
//! callbacks at their triggers — and writes `<out>/metrics.jsonl`.

mod bench;
mod callbacks;
mod config;
mod metrics;

pub use bench::{BenchOptions, BenchReport, bench_pipeline};
pub use metrics::MetricsRecord;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use ops::gpu::{DeviceRequest, Gpu};
use ops::train::{EvalStep, StepMetrics, TrainStep};

use crate::check::CheckedPipeline;
use crate::data::{Batch, BatchConfig, BatchIter, Prefetcher, Split, prepare};
use crate::plan::plan_pipeline;
use crate::spec::{EvalStage, SplitName, Stage, Trigger};

use callbacks::{Action, Callbacks, Event};
use config::TrainChain;
use metrics::MetricsWriter;

/// Options of `engine run` that are not part of the pipeline.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Output directory (metrics, resolved pipeline).
    pub out_dir: PathBuf,
    /// Overrides the pipeline's `device:`.
    pub device: Option<DeviceRequest>,
    /// Print nothing but errors.
    pub quiet: bool,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The GPU runtime failed (no adapter, out of memory, ...).
    #[error("{0}")]
    Gpu(#[from] ops::gpu::GpuError),
    /// Data could not be loaded.
    #[error("{0}")]
    Data(#[from] crate::data::DataError),
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
    /// A non-finite loss or gradient norm under `nan_guard: stop`.
    #[error("{0}")]
    NonFinite(String),
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Last metrics of each eval stage.
    pub evals: BTreeMap<String, StepMetricsSummary>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Where metrics went.
    pub metrics_path: Option<PathBuf>,
    /// Adapter used.
    pub adapter: String,
    /// Mean training throughput.
    pub samples_per_second: f64,
}

/// Mean loss and accuracies of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepMetricsSummary {
    /// Mean loss.
    pub loss: f64,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Top-5 accuracy.
    pub top5: f64,
    /// Samples seen.
    pub samples: u64,
}

impl From<StepMetrics> for StepMetricsSummary {
    fn from(m: StepMetrics) -> Self {
        let n = m.samples.max(1) as f64;
        StepMetricsSummary { loss: m.loss_sum / n, accuracy: m.correct as f64 / n, top5: m.top5_correct as f64 / n, samples: m.samples }
    }
}

struct EvalRoutine<'a> {
    stage: &'a EvalStage,
    split: Split,
    step: EvalStep,
    mse: bool,
}

/// Trains a checked pipeline end to end.
pub fn run_pipeline(checked: &CheckedPipeline, options: &RunOptions) -> Result<RunSummary, RunError> {
    let plan = plan_pipeline(checked);
    let pipeline = &checked.parsed.pipeline;
    let chain = TrainChain::find(checked)?;
    let io = |path: PathBuf| move |source| RunError::Io { path: path.clone(), source };
    std::fs::create_dir_all(&options.out_dir).map_err(io(options.out_dir.clone()))?;
    let resolved = options.out_dir.join("pipeline.resolved.yaml");
    let yaml = format!("# pipeline hash {}\n{}", plan.hash, serde_yaml::to_string(pipeline).unwrap_or_default());
    std::fs::write(&resolved, yaml).map_err(io(resolved.clone()))?;

    let request = options.device.clone().unwrap_or_else(|| config::device_request(&pipeline.device));
    let gpu = Gpu::new(&request)?;

    let mut prepared = BTreeMap::new();
    for name in chain.datasets(pipeline) {
        let config = config::data_config(checked, &name)?;
        prepared.insert(name.clone(), prepare(&config)?);
    }
    let split_of = |dataset: &str, split: SplitName| -> Result<Split, RunError> {
        let data = &prepared[dataset];
        match split {
            SplitName::Train => Some(data.train.clone()),
            SplitName::Val => data.val.clone(),
            SplitName::Test => data.test.clone(),
        }
        .ok_or_else(|| RunError::Unsupported(format!("data set `{dataset}` has no {} split", split.as_str())))
    };
    let train_split = split_of(&chain.load.dataset, chain.load.split)?;
    let mut train = TrainStep::new(&gpu, &chain.model_def, &chain.train_config)?;
    let mut evals = Vec::new();
    for stage in &pipeline.stages {
        if let Stage::Eval(e) = stage {
            let step = EvalStep::new(&gpu, &train, e.batch_size)?;
            evals.push(EvalRoutine { stage: e, split: split_of(&e.dataset, e.split)?, step, mse: chain.mse });
        }
    }

    let metrics_file = callbacks::metrics_file(pipeline).map(|f| options.out_dir.join(f));
    let mut writer = match &metrics_file {
        Some(path) => Some(MetricsWriter::create(path, &plan.hash).map_err(io(path.clone()))?),
        None => None,
    };
    let mut hooks = Callbacks::new(pipeline, &plan, options.quiet);
    let batch_config = BatchConfig { batch_size: chain.load.batch_size, shuffle: chain.load.shuffle, drop_last: chain.load.drop_last, seed: pipeline.seed };
    let total_steps = plan.schedule.total_steps;
    let accumulation = u64::from(chain.train_config.accumulation_steps.max(1));
    let started = Instant::now();
    let mut state = LoopState { micro: 0, step: 0, epoch: 0, samples: 0, window: StepMetrics::default(), epoch_metrics: StepMetrics::default() };
    let mut eval_results: BTreeMap<String, StepMetricsSummary> = BTreeMap::new();
    let mut targets = Vec::new();

    let mut ctx = FireCtx { gpu: &gpu, evals: &mut evals, writer: &mut writer, results: &mut eval_results, started };
    let mut stop = ctx.fire(&mut hooks, Trigger::FitStart, &state, &mut train)?;
    'epochs: while !stop {
        if plan.schedule.epochs.is_some_and(|e| state.epoch >= u64::from(e)) || state.step >= total_steps {
            break;
        }
        stop |= ctx.fire(&mut hooks, Trigger::EpochStart, &state, &mut train)?;
        let iter = BatchIter::new(train_split.clone(), batch_config.clone(), state.epoch)?;
        let mut prefetch = Prefetcher::spawn(iter, 2)?;
        while let Some(batch) = prefetch.next() {
            let lr = hooks.lr(state.step, total_steps, chain.base_lr) as f32;
            let target = config::one_hot(chain.classes, chain.mse, &batch, &mut targets);
            train.upload_batch(&gpu, &batch.features, &batch.labels, target, batch.rows);
            train.record_step(&gpu, lr, state.micro)?;
            state.micro += 1;
            state.samples += batch.rows as u64;
            prefetch.recycle(batch);
            if state.micro % accumulation != 0 {
                continue;
            }
            state.step += 1;
            if hooks.wants_step_read(state.step) {
                let m = train.read_train_metrics(&gpu)?;
                state.absorb(m);
                stop |= hooks.on_event(Event::Steps { step: state.step, epoch: state.epoch, train: state.window_summary(), grad_norm: m.last_grad_norm, lr, elapsed: started.elapsed().as_secs_f64(), samples: state.samples })?;
                state.window = StepMetrics::default();
            }
            if stop || state.step >= total_steps {
                break;
            }
        }
        let m = train.read_train_metrics(&gpu)?;
        state.absorb(m);
        if let Some(w) = ctx.writer.as_mut() {
            w.write(&MetricsRecord::train(state.step, state.epoch, state.epoch_metrics.into(), f64::from(hooks.lr(state.step.saturating_sub(1), total_steps, chain.base_lr)), started.elapsed().as_secs_f64()))
                .map_err(io(metrics_file.clone().unwrap_or_default()))?;
        }
        hooks.set_train(state.epoch_metrics.into());
        state.epoch_metrics = StepMetrics::default();
        state.window = StepMetrics::default();
        stop |= ctx.fire(&mut hooks, Trigger::EpochEnd, &state, &mut train)?;
        state.epoch += 1;
        if stop {
            break 'epochs;
        }
    }
    ctx.fire(&mut hooks, Trigger::FitEnd, &state, &mut train)?;
    hooks.finish();
    let elapsed = started.elapsed().as_secs_f64();
    Ok(RunSummary {
        evals: eval_results,
        steps: state.step,
        metrics_path: metrics_file,
        adapter: format!("{} ({})", gpu.adapter().name, gpu.adapter().backend),
        samples_per_second: state.samples as f64 / elapsed.max(1e-9),
    })
}

struct LoopState {
    micro: u64,
    step: u64,
    epoch: u64,
    samples: u64,
    window: StepMetrics,
    epoch_metrics: StepMetrics,
}

impl LoopState {
    fn absorb(&mut self, m: StepMetrics) {
        for acc in [&mut self.window, &mut self.epoch_metrics] {
            acc.loss_sum += m.loss_sum;
            acc.correct += m.correct;
            acc.top5_correct += m.top5_correct;
            acc.samples += m.samples;
            acc.last_grad_norm = m.last_grad_norm;
        }
    }

    fn window_summary(&self) -> StepMetricsSummary {
        self.window.into()
    }
}

struct FireCtx<'a, 'b> {
    gpu: &'a Gpu,
    evals: &'a mut Vec<EvalRoutine<'b>>,
    writer: &'a mut Option<MetricsWriter>,
    results: &'a mut BTreeMap<String, StepMetricsSummary>,
    started: Instant,
}

impl FireCtx<'_, '_> {
    /// Fires everything at a trigger in plan order: evals run, callbacks decide, we act.
    fn fire(&mut self, hooks: &mut Callbacks, trigger: Trigger, state: &LoopState, train: &mut TrainStep) -> Result<bool, RunError> {
        let mut stop = false;
        for id in hooks.order(trigger) {
            if let Some(routine) = self.evals.iter_mut().find(|e| e.stage.id.0 == id) {
                let result = evaluate(self.gpu, routine)?;
                self.results.insert(id.clone(), result);
                if let Some(w) = self.writer.as_mut() {
                    let record = MetricsRecord::eval(&id, routine.stage.split.as_str(), state.step, state.epoch, result, &routine.stage.metrics, self.started.elapsed().as_secs_f64());
                    w.write(&record).map_err(|source| RunError::Io { path: w.path().to_path_buf(), source })?;
                }
                hooks.set_eval(&id, result);
                continue;
            }
            match hooks.on_hook(&id, trigger, state.step, state.epoch, self.started.elapsed().as_secs_f64())? {
                Action::Continue => {}
                Action::Stop => stop = true,
                Action::RestoreBest(params) => train.load_params(self.gpu, &params)?,
                Action::SnapshotBest => hooks.store_best(train.param_tensors(self.gpu)?),
            }
        }
        Ok(stop)
    }
}

fn evaluate(gpu: &Gpu, routine: &mut EvalRoutine) -> Result<StepMetricsSummary, RunError> {
    let config = BatchConfig { batch_size: routine.stage.batch_size, shuffle: false, drop_last: false, seed: 0 };
    let mut batch = Batch::default();
    let mut iter = BatchIter::new(routine.split.clone(), config, 0)?;
    let mut targets = Vec::new();
    let classes = routine.split.dataset().classes;
    while iter.next_into(&mut batch) {
        let target = config::one_hot(classes, routine.mse, &batch, &mut targets);
        routine.step.upload_batch(gpu, &batch.features, &batch.labels, target, batch.rows);
        routine.step.record(gpu)?;
    }
    Ok(routine.step.read_metrics(gpu)?.into())
}
