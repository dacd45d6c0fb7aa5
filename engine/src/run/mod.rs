//! Run: executes a plan — data stages on rayon, the training step on the GPU, evals and
//! callbacks at their triggers — writes `<out>/metrics.jsonl`, checkpoints, and resumes
//! exactly from a checkpoint.

mod bench;
mod callbacks;
pub mod checkpoint;
mod config;
mod metrics;
mod profile;

pub use bench::{BenchOptions, BenchReport, bench_pipeline, turn_off_shader_caches};
pub use metrics::MetricsRecord;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ops::gpu::{DeviceRequest, Gpu};
use ops::train::{AccumulationState, EvalStep, StepMetrics, TrainStep};

use crate::check::CheckedPipeline;
use crate::data::{Batch, BatchConfig, BatchIter, Prefetcher, Split, prepare};
use crate::plan::{Plan, plan_pipeline};
use crate::spec::{EvalStage, SplitName, Stage, Trigger};

use callbacks::{Action, Callbacks};
use checkpoint::{Checkpoint, CheckpointError, MetricSums, TrainingState};
use config::TrainChain;
use metrics::MetricsWriter;

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

/// Mean loss and accuracies of one evaluation or training window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
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

impl From<MetricSums> for StepMetricsSummary {
    fn from(m: MetricSums) -> Self {
        let n = m.samples.max(1) as f64;
        StepMetricsSummary {
            loss: m.loss_sum / n,
            accuracy: m.correct as f64 / n,
            top5: m.top5_correct as f64 / n,
            samples: m.samples,
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

struct EvalRoutine<'a> {
    stage: &'a EvalStage,
    split: Split,
    step: EvalStep,
    mse: bool,
}

/// Where the training loop stands; with the device tensors, a checkpoint's content.
struct Position {
    step: u64,
    micro: u64,
    epoch: u64,
    next_batch: usize,
    samples: u64,
    window: MetricSums,
    epoch_sums: MetricSums,
}

/// Everything the loop touches besides its position.
struct Runner<'a> {
    checked: &'a CheckedPipeline,
    plan: Plan,
    chain: TrainChain,
    gpu: Gpu,
    train: TrainStep,
    evals: Vec<EvalRoutine<'a>>,
    hooks: Callbacks<'a>,
    writer: Option<MetricsWriter>,
    results: BTreeMap<String, StepMetricsSummary>,
    out_dir: PathBuf,
    started: Instant,
    monitor: Option<f64>,
    clock: profile::StageClock,
    /// Set by a monitor: roll back to the newest checkpoint before a step, scaling the
    /// learning rate.
    rollback: Option<(u64, f64)>,
    /// Record training metrics every N optimizer steps (a run option).
    every_steps: Option<u64>,
    /// A trigger a resumed run must not fire again (the checkpoint was taken there).
    skip_once: Option<Trigger>,
    /// Gradient norm at the last read of the device sums.
    last_grad_norm: f32,
    /// Samples processed before this process started (a resumed run).
    samples_at_start: u64,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The metrics file of a pipeline (its metrics callback's `file`), if it has one.
pub fn metrics_file_name(p: &crate::spec::Pipeline) -> Option<String> {
    callbacks::metrics_file(p)
}

/// The checkpoint directory of a pipeline (its checkpoint callback's `dir`).
pub fn checkpoint_dir(p: &crate::spec::Pipeline) -> String {
    p.stages
        .iter()
        .find_map(|s| match s {
            Stage::Callback(c) => match &c.callback {
                crate::spec::CallbackSpec::Checkpoint(k) => Some(k.dir.clone()),
                _ => None,
            },
            _ => None,
        })
        .unwrap_or_else(|| "checkpoints".into())
}

/// Trains a checked pipeline end to end (or from a checkpoint).
pub fn run_pipeline(
    checked: &CheckedPipeline,
    options: &RunOptions,
) -> Result<RunSummary, RunError> {
    let plan = plan_pipeline(checked);
    let pipeline = &checked.parsed.pipeline;
    let chain = TrainChain::find(checked)?;
    std::fs::create_dir_all(&options.out_dir).map_err(io_error(&options.out_dir))?;
    let resolved_text = crate::plan::canonical_yaml(pipeline);
    let resolved = options.out_dir.join("pipeline.resolved.yaml");
    std::fs::write(
        &resolved,
        format!("# pipeline hash {}\n{resolved_text}", plan.hash),
    )
    .map_err(io_error(&resolved))?;
    let plan_path = options.out_dir.join("plan.txt");
    std::fs::write(&plan_path, plan.to_string()).map_err(io_error(&plan_path))?;

    if options.resume.is_none() {
        let root = options.out_dir.join(checkpoint_dir(pipeline));
        if checkpoint::list(&root).is_ok_and(|found| !found.is_empty()) {
            return Err(RunError::Unsupported(format!(
                "`{}` already holds checkpoints of an earlier run; continue it with `--resume latest`, or start afresh in another `--out` directory",
                root.display()
            )));
        }
    }
    let request = options
        .device
        .clone()
        .unwrap_or_else(|| config::device_request(&pipeline.device));
    let gpu = Gpu::new(&request)?;
    let mut prepared = BTreeMap::new();
    for name in chain.datasets(pipeline) {
        prepared.insert(
            name.clone(),
            prepare(&config::data_config(checked, &name)?)?,
        );
    }
    let split_of = |dataset: &str, split: SplitName| -> Result<Split, RunError> {
        let data = &prepared[dataset];
        match split {
            SplitName::Train => Some(data.train.clone()),
            SplitName::Val => data.val.clone(),
            SplitName::Test => data.test.clone(),
        }
        .ok_or_else(|| {
            RunError::Unsupported(format!(
                "data set `{dataset}` has no {} split",
                split.as_str()
            ))
        })
    };
    let train_split = split_of(&chain.load.dataset, chain.load.split)?;
    let mut train = TrainStep::new(&gpu, &chain.model_def, &chain.train_config)?;
    if let Some(path) = &options.init_from {
        let weights = checkpoint::load_weights(path)?;
        train.load_params(&gpu, &weights).map_err(|e| match e {
            ops::gpu::GpuError::ParamMismatch { name, message } => {
                ops::gpu::GpuError::ParamMismatch {
                    name,
                    message: format!(
                        "{message}; the pipeline's model (expected) does not match `{}` (found)",
                        path.display()
                    ),
                }
            }
            other => other,
        })?;
    }
    let mut evals = Vec::new();
    for stage in &pipeline.stages {
        if let Stage::Eval(e) = stage {
            let step = EvalStep::new(&gpu, &train, e.batch_size)?;
            evals.push(EvalRoutine {
                stage: e,
                split: split_of(&e.dataset, e.split)?,
                step,
                mse: chain.mse,
            });
        }
    }
    let hooks = Callbacks::new(pipeline, &plan, options.quiet);
    let mut runner = Runner {
        checked,
        chain,
        gpu,
        train,
        evals,
        hooks,
        writer: None,
        results: BTreeMap::new(),
        out_dir: options.out_dir.clone(),
        started: Instant::now(),
        monitor: None,
        clock: profile::StageClock::default(),
        rollback: None,
        every_steps: None,
        skip_once: None,
        last_grad_norm: 0.0,
        samples_at_start: 0,
        plan,
    };
    let mut pos = Position {
        step: 0,
        micro: 0,
        epoch: 0,
        next_batch: 0,
        samples: 0,
        window: MetricSums::default(),
        epoch_sums: MetricSums::default(),
    };
    let mut metrics_lines = 0;
    if let Some(path) = &options.resume {
        metrics_lines = runner.restore(path, &mut pos, &resolved_text)?;
    }
    let metrics_file = callbacks::metrics_file(pipeline).or_else(|| {
        options
            .metrics_every_steps
            .map(|_| "metrics.jsonl".to_string())
    });
    runner.every_steps = options.metrics_every_steps.filter(|n| *n > 0);
    if let Some(file) = metrics_file {
        let path = options.out_dir.join(file);
        runner.writer = Some(
            MetricsWriter::open(&path, &runner.plan.hash, metrics_lines)
                .map_err(io_error(&path))?,
        );
    }
    runner.train_loop(&train_split, &mut pos, options.resume.is_some())
}

impl Runner<'_> {
    /// Restores a checkpoint into the device and `pos`; returns the metrics lines to keep.
    fn restore(
        &mut self,
        path: &Path,
        pos: &mut Position,
        resolved_text: &str,
    ) -> Result<u64, RunError> {
        let ckpt = checkpoint::load(path)?;
        let s = &ckpt.state;
        if s.resolved_pipeline != resolved_text && !self.hooks.is_quiet() {
            eprintln!(
                "note: resuming `{}` with a pipeline that differs from the checkpoint's (hash {} vs {})",
                path.display(),
                self.plan.hash,
                s.pipeline_hash
            );
        }
        let mismatch = |e: ops::gpu::GpuError| match e {
            ops::gpu::GpuError::ParamMismatch { name, message } => {
                ops::gpu::GpuError::ParamMismatch {
                    name,
                    message: format!(
                        "{message}; the pipeline's model (expected) does not match checkpoint `{}` (found)",
                        path.display()
                    ),
                }
            }
            other => other,
        };
        self.train
            .load_params(&self.gpu, &ckpt.weights)
            .map_err(mismatch)?;
        self.train
            .load_optimizer_state(&self.gpu, &ckpt.optimizer)
            .map_err(mismatch)?;
        self.train.restore_accumulation(
            &self.gpu,
            &AccumulationState {
                micro: s.accumulation_micro,
                group_rows: s.accumulation_rows,
                grads: ckpt.grads.clone(),
            },
        )?;
        self.hooks.import_state(&s.callbacks, ckpt.best.clone());
        self.results = self.hooks.eval_results();
        self.monitor = s.monitor;
        self.skip_once = [
            Trigger::FitStart,
            Trigger::EpochStart,
            Trigger::BatchStart,
            Trigger::FitEnd,
        ]
        .into_iter()
        .find(|t| t.to_string() == s.taken_at);
        self.samples_at_start = s.samples;
        *pos = Position {
            step: s.step,
            micro: s.micro,
            epoch: s.epoch,
            next_batch: s.next_batch,
            samples: s.samples,
            window: s.window,
            epoch_sums: s.epoch_sums,
        };
        Ok(s.metrics_lines)
    }

    fn train_loop(
        &mut self,
        train_split: &Split,
        pos: &mut Position,
        resumed: bool,
    ) -> Result<RunSummary, RunError> {
        let p = &self.checked.parsed.pipeline;
        let batch_config = BatchConfig {
            batch_size: self.chain.load.batch_size,
            shuffle: self.chain.load.shuffle,
            drop_last: self.chain.load.drop_last,
            seed: p.seed,
        };
        let total_steps = self.plan.schedule.total_steps;
        let accumulation = u64::from(self.chain.train_config.accumulation_steps.max(1));
        let mut targets = Vec::new();
        let mut stop = if resumed {
            false
        } else {
            self.fire(Trigger::FitStart, pos)?
        };
        let epochs = self.plan.schedule.epochs;
        let finished = |pos: &Position| match epochs {
            Some(e) => pos.epoch >= u64::from(e),
            None => pos.step >= total_steps,
        };
        while !stop && !finished(pos) {
            if pos.next_batch == 0 {
                stop |= self.fire(Trigger::EpochStart, pos)?;
            }
            let iter = BatchIter::new(train_split.clone(), batch_config.clone(), pos.epoch)?
                .starting_at(pos.next_batch);
            let mut prefetch = Prefetcher::spawn(iter, 2)?;
            let in_batch = [
                Trigger::BatchStart,
                Trigger::AfterForward,
                Trigger::AfterBackward,
                Trigger::BatchEnd,
            ]
            .map(|t| self.hooks.has(t));
            let mut waited = Instant::now();
            let first_batch = pos.next_batch;
            while let Some(batch) = prefetch.next() {
                self.clock
                    .add("data (waiting for the next batch)", waited.elapsed());
                if in_batch[0] {
                    stop |= self.fire(Trigger::BatchStart, pos)?;
                }
                let lr = self.hooks.lr(pos.step, total_steps, self.chain.base_lr) as f32;
                let started = Instant::now();
                let target =
                    config::one_hot(self.chain.classes, self.chain.mse, &batch, &mut targets);
                self.train.upload_batch(
                    &self.gpu,
                    &batch.features,
                    &batch.labels,
                    target,
                    batch.rows,
                );
                self.clock.add("upload", started.elapsed());
                let started = Instant::now();
                self.train.record_step(&self.gpu, lr, pos.micro)?;
                self.clock
                    .add("train step (encode + submit)", started.elapsed());
                // The position advances before any hook sees the batch, so a checkpoint
                // taken by one resumes at the next batch.
                pos.micro += 1;
                pos.samples += batch.rows as u64;
                pos.next_batch = batch.index_in_epoch + 1;
                prefetch.recycle(batch);
                let stepped = pos.micro.is_multiple_of(accumulation);
                if stepped {
                    pos.step += 1;
                }
                // The whole step is one submission, so these fire after it.
                let after = [
                    Trigger::AfterForward,
                    Trigger::AfterBackward,
                    Trigger::BatchEnd,
                ];
                for (fires, trigger) in in_batch[1..].iter().zip(after) {
                    if *fires {
                        stop |= self.fire(trigger, pos)?;
                    }
                }
                if !stepped || self.rollback.is_some() {
                    if self.rollback.is_some() {
                        break;
                    }
                    continue;
                }
                let due = self.hooks.every_n_due(pos.step);
                let record = self.every_steps.is_some_and(|n| pos.step.is_multiple_of(n));
                if record || !due.is_empty() {
                    // One read of the device sums serves every trigger due at this step.
                    self.read_train(pos)?;
                }
                for trigger in due.iter().copied() {
                    stop |= self.fire(trigger, pos)?;
                    if self.rollback.is_some() {
                        break;
                    }
                }
                if self.rollback.is_some() {
                    break;
                }
                if record {
                    self.record_steps(pos)?;
                }
                if record || !due.is_empty() {
                    pos.window = MetricSums::default();
                }
                // An epoch schedule finishes its epochs (their end hooks fire even when a
                // trailing incomplete accumulation group is left unapplied).
                if stop || (epochs.is_none() && pos.step >= total_steps) {
                    break;
                }
                waited = Instant::now();
            }
            drop(prefetch);
            if first_batch == 0 && pos.next_batch == 0 && self.rollback.is_none() && !stop {
                // The checks reject empty epochs; this guards the loop against spinning.
                return Err(RunError::Unsupported(format!(
                    "epoch {} produced no batch",
                    pos.epoch
                )));
            }
            if let Some((before_step, factor)) = self.rollback.take() {
                stop |= self.roll_back(before_step, factor, pos)?;
                continue;
            }
            let epoch_done = pos.next_batch
                >= crate::data::batches_per_epoch(
                    train_split.len(),
                    batch_config.batch_size,
                    batch_config.drop_last,
                );
            self.read_train(pos)?;
            let lr = self
                .hooks
                .lr(pos.step.saturating_sub(1), total_steps, self.chain.base_lr);
            let record = MetricsRecord::train(
                self.chain.load.split.as_str(),
                pos.step,
                pos.epoch,
                pos.epoch_sums.into(),
                lr,
                self.started.elapsed().as_secs_f64(),
            );
            self.write(&record)?;
            self.hooks.set_train(pos.epoch_sums.into());
            if !epoch_done {
                break;
            }
            pos.epoch_sums = MetricSums::default();
            pos.window = MetricSums::default();
            pos.epoch += 1;
            pos.next_batch = 0;
            stop |= self.fire(Trigger::EpochEnd, pos)?;
            if let Some((before_step, factor)) = self.rollback.take() {
                stop |= self.roll_back(before_step, factor, pos)?;
            }
        }
        self.fire(Trigger::FitEnd, pos)?;
        self.hooks.finish();
        let elapsed = self.started.elapsed().as_secs_f64();
        let summary = RunSummary {
            evals: self.results.clone(),
            steps: pos.step,
            metrics_path: self.writer.as_ref().map(|w| w.path().to_path_buf()),
            adapter: format!(
                "{} ({})",
                self.gpu.adapter().name,
                self.gpu.adapter().backend
            ),
            samples_per_second: (pos.samples - self.samples_at_start) as f64 / elapsed.max(1e-9),
        };
        let run_json = self.out_dir.join("run.json");
        let facts = serde_json::json!({
            "adapter": summary.adapter,
            "samples_per_second": summary.samples_per_second,
            "steps": summary.steps,
            "wall_time_s": elapsed,
        });
        std::fs::write(&run_json, format!("{facts:#}\n")).map_err(io_error(&run_json))?;
        Ok(summary)
    }

    /// Restores the newest checkpoint in process and scales the learning rate; returns
    /// true (stop) when there is no checkpoint to return to.
    fn roll_back(
        &mut self,
        before_step: u64,
        factor: f64,
        pos: &mut Position,
    ) -> Result<bool, RunError> {
        let root = self
            .out_dir
            .join(checkpoint_dir(&self.checked.parsed.pipeline));
        let older = checkpoint::list(&root)
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find(|c| c.step < before_step);
        let Some(path) = older.map(|c| c.path) else {
            if !self.hooks.is_quiet() {
                println!(
                    "rollback: no checkpoint older than step {before_step} in `{}`; stopping",
                    root.display()
                );
            }
            return Ok(true);
        };
        let (counts, scale) = self.hooks.rollback_memory();
        let resolved = crate::plan::canonical_yaml(&self.checked.parsed.pipeline);
        self.restore(&path, pos, &resolved)?;
        self.hooks.after_rollback(counts, scale * factor);
        // Forget the device sums of the abandoned steps.
        self.train.read_train_metrics(&self.gpu)?;
        Ok(false)
    }

    /// Writes a `steps` record of the training window.
    fn record_steps(&mut self, pos: &Position) -> Result<(), RunError> {
        let total = self.plan.schedule.total_steps;
        let lr = self
            .hooks
            .lr(pos.step.saturating_sub(1), total, self.chain.base_lr);
        let wall = self.started.elapsed().as_secs_f64();
        self.write(&MetricsRecord::steps(
            self.chain.load.split.as_str(),
            pos.step,
            pos.epoch,
            pos.window.into(),
            lr,
            wall,
        ))
    }

    /// Reads the device training accumulators (one read-back) into the host sums.
    fn read_train(&mut self, pos: &mut Position) -> Result<(), RunError> {
        let m = self.train.read_train_metrics(&self.gpu)?;
        if m.samples > 0 {
            self.last_grad_norm = m.last_grad_norm;
        }
        pos.window.add(&m);
        pos.epoch_sums.add(&m);
        Ok(())
    }

    fn write(&mut self, record: &MetricsRecord) -> Result<(), RunError> {
        if let Some(w) = self.writer.as_mut() {
            w.write(record).map_err(|source| RunError::Io {
                path: w.path().to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }

    /// Fires everything at a trigger in plan order: evals run, callbacks decide, the
    /// runner acts. Checkpoints are taken after the whole trigger, so a resume never
    /// repeats or skips part of it.
    fn fire(&mut self, trigger: Trigger, pos: &mut Position) -> Result<bool, RunError> {
        if let Some(skip) = self.skip_once.take()
            && skip == trigger
        {
            return Ok(false);
        }
        let mut stop = false;
        let mut checkpoints = Vec::new();
        // Epoch-end hooks run after the epoch counter advanced (so a checkpoint taken
        // there resumes at the next epoch); they report the epoch that just ended.
        let epoch = pos
            .epoch
            .saturating_sub(u64::from(trigger == Trigger::EpochEnd));

        for id in self.hooks.order(trigger) {
            if let Some(i) = self.evals.iter().position(|e| e.stage.id.0 == id) {
                let started = Instant::now();
                let result = evaluate(&self.gpu, &mut self.evals[i])?;
                self.clock.add(&format!("eval {id}"), started.elapsed());
                let stage = self.evals[i].stage;
                self.results.insert(id.clone(), result);
                let record = MetricsRecord::eval(
                    &id,
                    stage.split.as_str(),
                    pos.step,
                    epoch,
                    result,
                    &stage.metrics,
                    self.started.elapsed().as_secs_f64(),
                );
                self.write(&record)?;
                self.hooks.set_eval(&id, result);
                continue;
            }
            let moment = callbacks::Moment {
                trigger,
                step: pos.step,
                epoch,
                elapsed: self.started.elapsed().as_secs_f64(),
                window: pos.window,
                grad_norm: self.last_grad_norm,
                samples: pos.samples - self.samples_at_start,
            };
            match self.hooks.on_hook(&id, &moment)? {
                Action::Continue => {}
                Action::Stop => stop = true,
                Action::RestoreBest(params) => {
                    self.train.load_params(&self.gpu, &params)?;
                    stop = true;
                }
                Action::SnapshotBest => {
                    let params = self.train.param_tensors(&self.gpu)?;
                    self.hooks.store_best(params);
                }
                Action::Checkpoint(c) => checkpoints.push(c),
                Action::Rollback {
                    before_step,
                    lr_factor,
                } => {
                    self.rollback = Some((before_step, lr_factor));
                    break;
                }
                Action::RecordSteps => self.record_steps(pos)?,
                Action::Profile => {
                    self.read_train(pos)?;
                    let kernels = self.train.profile_kernels(&self.gpu, 5)?;
                    // The profiled kernels added their losses to the device sums.
                    self.train.read_train_metrics(&self.gpu)?;
                    let path = self.out_dir.join("profile.json");
                    let table = profile::write(&path, &self.clock, &kernels, pos.micro)
                        .map_err(io_error(&path))?;
                    if !self.hooks.is_quiet() {
                        print!("{table}");
                    }
                }
            }
        }
        let started = Instant::now();
        let saving = !checkpoints.is_empty();
        for c in checkpoints {
            self.monitor = c.monitor.as_ref().and_then(|(stage, metric)| {
                self.results.get(stage).map(|m| match metric.as_str() {
                    "loss" => m.loss,
                    "accuracy" => m.accuracy,
                    _ => m.top5,
                })
            });
            self.save_checkpoint(&c, trigger, pos)?;
        }
        if saving {
            self.clock.add("checkpoint", started.elapsed());
        }
        Ok(stop)
    }

    fn save_checkpoint(
        &mut self,
        c: &callbacks::CheckpointRequest,
        trigger: Trigger,
        pos: &mut Position,
    ) -> Result<(), RunError> {
        // Fold the device accumulators into the host sums: both an interrupted and an
        // uninterrupted run do this read here, so their metrics stay identical.
        self.read_train(pos)?;
        let accumulation = self.train.accumulation_state(&self.gpu)?;
        let p = &self.checked.parsed.pipeline;
        let state = TrainingState {
            format: 1,
            pipeline: p.name.clone(),
            pipeline_hash: self.plan.hash.clone(),
            resolved_pipeline: crate::plan::canonical_yaml(p),
            step: pos.step,
            micro: pos.micro,
            epoch: pos.epoch,
            next_batch: pos.next_batch,
            samples: pos.samples,
            accumulation_micro: accumulation.micro,
            accumulation_rows: accumulation.group_rows,
            // The step window is emptied once this step's every-N-steps hooks have run,
            // which is where a resumed run starts.
            window: if matches!(trigger, Trigger::EveryNSteps(_)) {
                MetricSums::default()
            } else {
                pos.window
            },
            epoch_sums: pos.epoch_sums,
            metrics_lines: self.writer.as_ref().map_or(0, MetricsWriter::lines),
            callbacks: self.hooks.export_state(),
            monitor: self.monitor,
            monitor_max: c.keep_best_max,
            seed: p.seed,
            taken_at: trigger.to_string(),
        };
        let checkpoint = Checkpoint {
            state,
            weights: self.train.param_tensors(&self.gpu)?,
            optimizer: self.train.optimizer_state(&self.gpu)?,
            grads: accumulation.grads,
            best: self.hooks.best_params(),
        };
        let root = self.out_dir.join(&c.dir);
        checkpoint::save(&root, &checkpoint)?;
        checkpoint::prune(&root, c.keep_last, c.keep_best_max)?;
        Ok(())
    }
}

fn evaluate(gpu: &Gpu, routine: &mut EvalRoutine) -> Result<StepMetricsSummary, RunError> {
    let config = BatchConfig {
        batch_size: routine.stage.batch_size,
        shuffle: false,
        drop_last: false,
        seed: 0,
    };
    let mut batch = Batch::default();
    let mut iter = BatchIter::new(routine.split.clone(), config, 0)?;
    let mut targets = Vec::new();
    let classes = routine.split.dataset().classes;
    while iter.next_into(&mut batch) {
        let target = config::one_hot(classes, routine.mse, &batch, &mut targets);
        routine
            .step
            .upload_batch(gpu, &batch.features, &batch.labels, target, batch.rows);
        routine.step.record(gpu)?;
    }
    Ok(MetricSums::from(routine.step.read_metrics(gpu)?).into())
}
