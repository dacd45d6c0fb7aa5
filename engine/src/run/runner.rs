//! The executor: interprets a [`Plan`] — its chains in lockstep, its hook table at each
//! trigger — and acts on what callbacks decide.
//!
//! Lockstep: a batch tick runs one micro-batch of every chain that still has batches in
//! the current epoch, in plan order; the epoch ends when every chain has seen its whole
//! split. Each chain counts its own micro-batches and optimizer steps; the run's step
//! clock (`every_n_steps`, `schedule: {steps}`, the `step` of records) is the lead
//! chain's, the first in the plan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ops::federated::Federation;
use ops::gpu::Gpu;
use ops::train::{AccumulationState, EvalStep, NamedTensor, StepMetrics};

use crate::callbacks::ExecFailure;
use crate::card::{ModelCard, Scaling, TaskCard};
use crate::data::{Batch, BatchIter, Normalizer, Prefetcher, Split, prepare};
use crate::plan::{EvalPlan, EvalTarget, HookId, Plan, Watched};
use crate::spec::{SplitName, Trigger};

use super::callbacks::{self, Action, Callbacks, ChainMoment, metric_of};
use super::chain::{ChainRun, FrozenRun, eval_step, frozen_runs};
use super::checkpoint::{self, ChainState, Checkpoint, MetricSums, TrainingState};
use super::evaluate::evaluate_split;
use super::metrics::{MetricsRecord, MetricsWriter};
use super::{RunError, RunOptions, RunSummary, StepMetricsSummary, exec, io_error, profile};
use crate::ranks::Ranks;

pub(super) struct EvalRoutine {
    pub(super) plan: EvalPlan,
    pub(super) split: Split,
    pub(super) step: EvalStep,
    pub(super) one_hot_targets: bool,
    /// The data set's target scaling (identity for classification).
    pub(super) target_scaling: Normalizer,
    pub(super) class_names: Option<Vec<String>>,
}

/// Where the run stands; with the device tensors, a checkpoint's content.
pub(super) struct Position {
    pub(super) epoch: u64,
    pub(super) chains: Vec<ChainState>,
}

impl Position {
    /// The run's step clock: the lead chain's optimizer steps.
    pub(super) fn step(&self) -> u64 {
        self.chains.first().map_or(0, |c| c.step)
    }

    /// Training samples of every chain.
    fn samples(&self) -> u64 {
        self.chains.iter().map(|c| c.samples).sum()
    }
}

/// Everything the loop touches besides its position.
pub(super) struct Runner<'p> {
    pub(super) plan: &'p Plan,
    pub(super) gpu: Gpu,
    pub(super) chains: Vec<ChainRun>,
    pub(super) frozen: Vec<FrozenRun>,
    pub(super) evals: Vec<EvalRoutine>,
    pub(super) hooks: Callbacks<'p>,
    pub(super) writer: Option<MetricsWriter>,
    pub(super) results: BTreeMap<String, StepMetricsSummary>,
    pub(super) out_dir: PathBuf,
    pub(super) started: Instant,
    pub(super) monitor: Option<f64>,
    pub(super) clock: profile::StageClock,
    /// Set by a monitor: roll back to the newest checkpoint before a step, scaling the
    /// learning rate.
    pub(super) rollback: Option<(u64, f64)>,
    /// The newest checkpoint this process saved (what registered callbacks' events name).
    pub(super) newest_checkpoint: Option<PathBuf>,
    /// Record training metrics every N optimizer steps (a run option).
    pub(super) every_steps: Option<u64>,
    /// The `every_n_steps` periods that keep a training window, ascending.
    pub(super) periods: Vec<u64>,
    /// Triggers a resumed run must not fire again (the checkpoint was taken at the first;
    /// a `batch_start` checkpoint at an epoch's first batch also skips `epoch_start`).
    pub(super) skip_once: Vec<Trigger>,
    /// Samples processed before this process started (a resumed run).
    pub(super) samples_at_start: u64,
    /// The chains' model cards with their data sets' fitted statistics.
    pub(super) cards: Vec<ModelCard>,
    /// A federated run's device state (global model, server state).
    pub(super) federation: Option<Federation>,
    /// A resumed federated run's server state, until the federation exists.
    pub(super) restored_federation: Vec<NamedTensor>,
    /// The job's processes: one, or the ranks of a data-parallel job.
    pub(super) ranks: &'p dyn Ranks,
}

/// Trains a plan end to end (or from a checkpoint), as one of `ranks`.
pub(super) fn run<'p>(
    plan: &'p Plan,
    options: &RunOptions,
    ranks: &'p dyn Ranks,
) -> Result<RunSummary, RunError> {
    if plan.chains.is_empty() {
        return Err(RunError::Unsupported(
            "the pipeline has no training chain".into(),
        ));
    }
    if plan.ranks != ranks.size() {
        return Err(RunError::Unsupported(format!(
            "the plan was made for {} ranks but the job has {}",
            plan.ranks,
            ranks.size()
        )));
    }
    // Rank 0 writes the run's files; the others only read (a checkpoint to resume).
    let lead = ranks.rank() == 0;
    if lead {
        std::fs::create_dir_all(&options.out_dir).map_err(io_error(&options.out_dir))?;
        let resolved = options.out_dir.join("pipeline.resolved.yaml");
        std::fs::write(
            &resolved,
            format!("# pipeline hash {}\n{}", plan.hash, plan.resolved_yaml),
        )
        .map_err(io_error(&resolved))?;
    }

    // Every rank checks (rank 0 cannot have saved yet: a save exchanges metrics first).
    if options.resume.is_none() {
        let root = options.out_dir.join(&plan.checkpoint_dir);
        if checkpoint::list(&root).is_ok_and(|found| !found.is_empty()) {
            return Err(RunError::Unsupported(format!(
                "`{}` already holds checkpoints of an earlier run; continue it with `--resume latest`, or start afresh in another `--out` directory",
                root.display()
            )));
        }
    }
    let mut request = plan.device(options.device.as_ref());
    if ranks.size() > 1 {
        // Ranks on one host spread over its equally good adapters (one GPU each).
        request.nth = crate::ranks::local_rank();
    }
    let gpu = Gpu::new(&request)?;
    let with_fallback;
    let plan = match f16_on(plan, &gpu, lead && !options.quiet)? {
        Some(adjusted) => {
            with_fallback = adjusted;
            &with_fallback
        }
        None => plan,
    };
    if lead {
        // After the adapter settled the precision, so the file says what runs.
        let plan_path = options.out_dir.join("plan.txt");
        std::fs::write(&plan_path, plan.to_string()).map_err(io_error(&plan_path))?;
    }
    if ranks.size() > 1 {
        // Ranks whose adapters differ could settle f16 differently; their contributions
        // would not add up.
        let mine: Vec<u32> = plan
            .chains
            .iter()
            .map(|c| u32::from(c.train.precision == ops::Precision::F16))
            .collect();
        let all = ranks.exchange("precision", &mine)?;
        if let Some(r) = all
            .chunks_exact(mine.len().max(1))
            .position(|p| p != &all[..mine.len()])
        {
            return Err(RunError::Unsupported(format!(
                "rank {r} trains in another precision than rank 0 (its adapter has{} f16 shaders); give every rank an adapter of the same kind",
                if all[r * mine.len()..].first() == Some(&1) {
                    ""
                } else {
                    " no"
                }
            )));
        }
    }
    let mut prepared = Vec::with_capacity(plan.datasets.len());
    for d in &plan.datasets {
        prepared.push(prepare(&d.config)?);
    }
    let split_of = |dataset: usize, split: SplitName| -> Result<Split, RunError> {
        prepared[dataset].split(split).ok_or_else(|| {
            RunError::Unsupported(format!(
                "data set `{}` has no {} split",
                plan.datasets[dataset].name,
                split.as_str()
            ))
        })
    };
    let frozen = frozen_runs(&gpu, plan)?;
    let mut chains = Vec::with_capacity(plan.chains.len());
    for c in &plan.chains {
        let mut chain = ChainRun::new(&gpu, c, split_of(c.dataset.0, c.split)?, &frozen)?;
        if ranks.size() > 1 {
            chain.train.enable_data_parallel(&gpu)?;
        }
        chains.push(chain);
    }
    if let Some(path) = &options.init_from {
        let weights = checkpoint::load_weights(path)?;
        let what = "the pipeline's model (expected) does not match";
        for chain in &mut chains {
            chain
                .train
                .load_params(&gpu, &chain.own(&weights))
                .map_err(mismatch(path, what))?;
        }
        for f in &frozen {
            let own = f.own(&weights);
            if !own.is_empty() {
                f.params.load(&gpu, &own).map_err(mismatch(path, what))?;
            }
        }
    }
    let steps: Vec<&ops::train::TrainStep> = chains.iter().map(|c| &c.train).collect();
    let mut evals = Vec::with_capacity(plan.evals.len());
    for e in &plan.evals {
        let one_hot_targets = match e.target {
            EvalTarget::Chain(c) => chains[c.0].plan.one_hot_targets,
            EvalTarget::Frozen(_) => false,
        };
        evals.push(EvalRoutine {
            step: eval_step(&gpu, plan, e, &steps, &frozen)?,
            split: split_of(e.dataset.0, e.split)?,
            one_hot_targets,
            target_scaling: prepared[e.dataset.0].target_normalizer.clone(),
            class_names: plan.datasets[e.dataset.0].class_names.clone(),
            plan: e.clone(),
        });
    }
    let cards: Vec<ModelCard> = plan
        .chains
        .iter()
        .filter_map(|c| {
            let mut card = c.card.clone()?;
            let data = &prepared[c.dataset.0];
            card.pipeline_hash.clone_from(&plan.hash);
            card.normalize = Scaling::of(&data.normalizer);
            if let TaskCard::Regress { scaling, .. } = &mut card.task {
                *scaling = Scaling::of(&data.target_normalizer);
            }
            Some(card)
        })
        .collect();
    let run_info = crate::extend::RunInfo {
        out_dir: options.out_dir.clone(),
        pipeline_dir: plan.pipeline_dir.clone(),
        resumed: options.resume.is_some(),
    };
    let hooks = Callbacks::new(plan, options.quiet, &run_info)?;
    let every_steps = options.metrics_every_steps.filter(|n| *n > 0);
    let mut periods = hooks.periods();
    periods.extend(every_steps);
    periods.sort_unstable();
    periods.dedup();
    let mut runner = Runner {
        plan,
        gpu,
        evals,
        hooks,
        writer: None,
        results: BTreeMap::new(),
        out_dir: options.out_dir.clone(),
        started: Instant::now(),
        monitor: None,
        clock: profile::StageClock::default(),
        rollback: None,
        newest_checkpoint: None,
        every_steps,
        periods,
        skip_once: Vec::new(),
        samples_at_start: 0,
        chains,
        frozen,
        cards,
        federation: None,
        restored_federation: Vec::new(),
        ranks,
    };
    let mut pos = Position {
        epoch: 0,
        chains: runner.chains.iter().map(ChainRun::start_state).collect(),
    };
    runner.gpu.record_dispatches(options.record_dispatches);
    let mut metrics_lines = 0;
    if let Some(path) = &options.resume {
        metrics_lines = runner.restore(path, &mut pos)?;
    }
    let path = options.out_dir.join(&plan.metrics_file);
    if lead {
        runner.writer =
            Some(MetricsWriter::open(&path, &plan.hash, metrics_lines).map_err(io_error(&path))?);
    }
    if plan.federated.is_some() {
        runner.federated_loop(&mut pos, options.resume.is_some())
    } else {
        runner.train_loop(&mut pos, options.resume.is_some())
    }
}

/// Settles `precision: f16` on the opened adapter: without f16 shaders a chain that allows
/// it falls back to f32 (the plan returned, with a warning when `warn`), else the run
/// stops. `None`: the plan runs as it is.
fn f16_on(plan: &Plan, gpu: &Gpu, warn: bool) -> Result<Option<Plan>, RunError> {
    let f16 = |c: &crate::plan::ChainPlan| c.train.precision == ops::Precision::F16;
    if plan.federated.is_some() && plan.chains.iter().any(f16) {
        return Err(RunError::Unsupported(
            "mixed precision (`precision: f16`) does not run federated rounds yet: the clients' local objectives add to unscaled gradients".into(),
        ));
    }
    if gpu.adapter().shader_f16 || !plan.chains.iter().any(f16) {
        return Ok(None);
    }
    let adapter = format!("{} ({})", gpu.adapter().name, gpu.adapter().backend);
    if let Some(c) = plan.chains.iter().find(|c| f16(c) && !c.f16_fallback) {
        return Err(RunError::NoShaderF16 {
            chain: c.name.clone(),
            adapter,
        });
    }
    let mut adjusted = plan.clone();
    for (i, c) in plan.chains.iter().enumerate().filter(|(_, c)| f16(c)) {
        if warn {
            eprintln!(
                "warning: step `{}`: adapter {adapter} has no f16 shaders; training in f32 (`f16_fallback: f32`)",
                c.name
            );
        }
        adjusted.train_in_f32(i);
    }
    Ok(Some(adjusted))
}

/// Adds which file did not match to a parameter mismatch.
fn mismatch<'a>(
    path: &'a Path,
    what: &'a str,
) -> impl Fn(ops::gpu::GpuError) -> ops::gpu::GpuError + 'a {
    move |e| match e {
        ops::gpu::GpuError::ParamMismatch { name, message } => ops::gpu::GpuError::ParamMismatch {
            name,
            message: format!("{message}; {what} `{}` (found)", path.display()),
        },
        other => other,
    }
}

impl Runner<'_> {
    /// Restores a checkpoint into the device and `pos`; returns the metrics lines to keep.
    fn restore(&mut self, path: &Path, pos: &mut Position) -> Result<u64, RunError> {
        let ckpt = checkpoint::load(path)?;
        let s = &ckpt.state;
        if s.ranks != self.ranks.size() {
            return Err(RunError::Unsupported(format!(
                "`{}` was saved by a job of {} rank(s); resume it with as many (`mpirun -np {}`), this job has {}",
                path.display(),
                s.ranks,
                s.ranks,
                self.ranks.size()
            )));
        }
        if s.resolved_pipeline != self.plan.resolved_yaml && !self.hooks.is_quiet() {
            eprintln!(
                "note: resuming `{}` with a pipeline that differs from the checkpoint's (hash {} vs {})",
                path.display(),
                self.plan.hash,
                s.pipeline_hash
            );
        }
        let what = "the pipeline's model (expected) does not match checkpoint";
        let mut chains = Vec::with_capacity(self.chains.len());
        for chain in &mut self.chains {
            let Some(state) = s.chains.iter().find(|c| c.name == chain.plan.name) else {
                return Err(RunError::Checkpoint(checkpoint::CheckpointError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!(
                        "it holds no state of training chain `{}` (it has {})",
                        chain.plan.name,
                        s.chains
                            .iter()
                            .map(|c| format!("`{}`", c.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }));
            };
            chain
                .train
                .load_params(&self.gpu, &chain.own(&ckpt.weights))
                .map_err(mismatch(path, what))?;
            chain
                .train
                .load_optimizer_state(&self.gpu, &chain.own(&ckpt.optimizer))
                .map_err(mismatch(path, what))?;
            chain.train.restore_accumulation(
                &self.gpu,
                &AccumulationState {
                    micro: state.accumulation_micro,
                    group_rows: state.accumulation_rows,
                    grads: chain.own(&ckpt.grads),
                },
            )?;
            chains.push(state.clone());
        }
        for f in &self.frozen {
            f.params
                .load(&self.gpu, &f.own(&ckpt.weights))
                .map_err(mismatch(path, what))?;
        }
        self.restored_federation = ckpt
            .optimizer
            .iter()
            .filter(|t| t.name.starts_with("federated."))
            .cloned()
            .collect();
        self.hooks
            .import_state(&s.callbacks, ckpt.best.clone())
            .map_err(|reason| {
                RunError::Checkpoint(checkpoint::CheckpointError::Corrupt {
                    path: path.to_path_buf(),
                    reason,
                })
            })?;
        self.results = self.hooks.eval_results();
        self.monitor = s.monitor;
        let taken_at = [
            Trigger::FitStart,
            Trigger::EpochStart,
            Trigger::BatchStart,
            Trigger::FitEnd,
        ]
        .into_iter()
        .find(|t| t.to_string() == s.taken_at);
        let epoch_begins = chains.iter().all(|c| c.next_batch == 0);
        self.skip_once = match taken_at {
            Some(Trigger::BatchStart) if epoch_begins => {
                vec![Trigger::EpochStart, Trigger::BatchStart]
            }
            other => other.into_iter().collect(),
        };
        *pos = Position {
            epoch: s.epoch,
            chains,
        };
        self.samples_at_start = pos.samples();
        Ok(s.metrics_lines)
    }

    fn train_loop(&mut self, pos: &mut Position, resumed: bool) -> Result<RunSummary, RunError> {
        let total_steps = self.plan.schedule.total_steps;
        let epochs = self.plan.schedule.epochs;
        let mut stop = if resumed {
            false
        } else {
            self.fire(Trigger::FitStart, pos)?
        };
        let finished = |pos: &Position| match epochs {
            Some(e) => pos.epoch >= u64::from(e),
            None => pos.step() >= total_steps,
        };
        let in_batch = [
            Trigger::BatchStart,
            Trigger::AfterForward,
            Trigger::AfterBackward,
            Trigger::BatchEnd,
        ]
        .map(|t| self.hooks.has(t));
        let mut batches: Vec<Option<Batch>> = self.chains.iter().map(|_| None).collect();
        while !stop && !finished(pos) {
            if pos.chains.iter().all(|c| c.next_batch == 0) {
                stop |= self.fire(Trigger::EpochStart, pos)?;
            }
            // One prefetcher per chain that has batches left in this epoch.
            let mut feeds: Vec<Option<Prefetcher>> = Vec::with_capacity(self.chains.len());
            for (chain, state) in self.chains.iter().zip(&pos.chains) {
                let left = state.next_batch < chain.plan.schedule.batches_per_epoch;
                feeds.push(if left {
                    let iter =
                        BatchIter::new(chain.split.clone(), chain.plan.batches.clone(), pos.epoch)?
                            .starting_at(state.next_batch);
                    Some(Prefetcher::spawn(iter, 2)?)
                } else {
                    None
                });
            }
            let progress_at_start: Vec<usize> = pos.chains.iter().map(|c| c.next_batch).collect();
            let mut waited = Instant::now();
            loop {
                for (slot, feed) in batches.iter_mut().zip(feeds.iter_mut()) {
                    *slot = feed.as_mut().and_then(Prefetcher::next);
                }
                if batches.iter().all(Option::is_none) {
                    break;
                }
                self.clock
                    .add("data (waiting for the next batch)", waited.elapsed());
                if in_batch[0] {
                    stop |= self.fire(Trigger::BatchStart, pos)?;
                }
                let lead_step = pos.step();
                for (i, slot) in batches.iter_mut().enumerate() {
                    let Some(batch) = slot.take() else { continue };
                    let chain = &mut self.chains[i];
                    let state = &mut pos.chains[i];
                    let lr = (self.hooks.lr_scale() * chain.plan.lr_at(state.step)) as f32;
                    if self.ranks.size() > 1 {
                        let Some(feed) = feeds[i].as_mut() else {
                            return Err(RunError::Unsupported(format!(
                                "chain `{}` got a batch without a feed",
                                chain.plan.name
                            )));
                        };
                        let tick = DataParallelTick {
                            gpu: &self.gpu,
                            ranks: self.ranks,
                            clock: &mut self.clock,
                        };
                        tick.run(chain, feed, state, batch, lr)?;
                        continue;
                    }
                    let started = Instant::now();
                    chain.upload(&self.gpu, &batch)?;
                    self.clock.add("upload", started.elapsed());
                    let started = Instant::now();
                    chain.train.record_step(&self.gpu, lr, state.micro)?;
                    self.clock
                        .add("train step (encode + submit)", started.elapsed());
                    // The position advances before any hook sees the batch, so a
                    // checkpoint taken by one resumes at the next batch.
                    state.micro += 1;
                    state.samples += batch.rows as u64;
                    state.next_batch = batch.index_in_epoch + 1;
                    let accumulation = u64::from(chain.plan.train.accumulation_steps.max(1));
                    if state.micro.is_multiple_of(accumulation) {
                        state.step += 1;
                    }
                    if let Some(feed) = feeds[i].as_mut() {
                        feed.recycle(batch);
                    }
                }
                let stepped = pos.step() > lead_step;
                // The whole tick is one submission per chain, so these fire after it.
                let after = [
                    Trigger::AfterForward,
                    Trigger::AfterBackward,
                    Trigger::BatchEnd,
                ];
                // Checkpoints wait for every trigger of this tick (batch_end, then the
                // every_n_steps ones due at this step), so a resumed run, which starts at
                // the next batch, misses none of them.
                let mut checkpoints = Vec::new();
                for (fires, trigger) in in_batch[1..].iter().zip(after) {
                    if *fires {
                        stop |= self.fire_hooks(trigger, pos, &mut checkpoints)?;
                    }
                }
                if self.rollback.is_some() {
                    break;
                }
                if !stepped {
                    self.save_checkpoints(checkpoints, Trigger::BatchEnd, pos)?;
                    // A stop while the lead chain waits at an epoch end stops the others.
                    if stop {
                        break;
                    }
                    waited = Instant::now();
                    continue;
                }
                let step = pos.step();
                let due = self.hooks.every_n_due(step);
                let record = self.every_steps.filter(|n| step.is_multiple_of(*n));
                if record.is_some() || !due.is_empty() {
                    // One read of the device sums serves every trigger due at this step.
                    self.read_train(pos)?;
                }
                for trigger in due.iter().copied() {
                    stop |= self.fire_hooks(trigger, pos, &mut checkpoints)?;
                    if self.rollback.is_some() {
                        break;
                    }
                }
                if self.rollback.is_some() {
                    break;
                }
                if let Some(n) = record {
                    self.record_steps(pos, n)?;
                }
                // Each period's window restarts once its trigger has fired.
                for n in due
                    .iter()
                    .filter_map(|t| match t {
                        Trigger::EveryNSteps(n) => Some(*n),
                        _ => None,
                    })
                    .chain(record)
                {
                    for c in &mut pos.chains {
                        c.windows.insert(n, MetricSums::default());
                    }
                }
                let last = due.last().copied().unwrap_or(Trigger::BatchEnd);
                self.save_checkpoints(checkpoints, last, pos)?;
                // An epoch schedule finishes its epochs (their end hooks fire even when a
                // trailing incomplete accumulation group is left unapplied).
                if stop || (epochs.is_none() && pos.step() >= total_steps) {
                    break;
                }
                waited = Instant::now();
            }
            drop(feeds);
            let moved = pos
                .chains
                .iter()
                .zip(&progress_at_start)
                .any(|(c, &start)| c.next_batch != start);
            let any_left = self
                .chains
                .iter()
                .zip(&pos.chains)
                .any(|(c, s)| s.next_batch < c.plan.schedule.batches_per_epoch);
            if !moved && any_left && self.rollback.is_none() && !stop {
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
            self.read_train(pos)?;
            let plan = self.plan;
            for (chain, state) in plan.chains.iter().zip(&pos.chains) {
                let lr = self.hooks.lr_scale() * chain.lr_at(state.step.saturating_sub(1));
                let mut record = MetricsRecord::train(
                    &chain.name,
                    chain.split.as_str(),
                    state.step,
                    pos.epoch,
                    state.epoch_sums.into(),
                    lr,
                    self.started.elapsed().as_secs_f64(),
                );
                if chain.regression {
                    record.accuracy = None;
                }
                self.write(&record)?;
                self.hooks.set_train(&chain.name, state.epoch_sums.into());
            }
            if any_left {
                break;
            }
            for c in &mut pos.chains {
                c.epoch_sums = MetricSums::default();
                for w in c.windows.values_mut() {
                    *w = MetricSums::default();
                }
                c.next_batch = 0;
            }
            pos.epoch += 1;
            stop |= self.fire(Trigger::EpochEnd, pos)?;
            if let Some((before_step, factor)) = self.rollback.take() {
                stop |= self.roll_back(before_step, factor, pos)?;
            }
        }
        self.fire(Trigger::FitEnd, pos)?;
        self.finish(pos)
    }

    /// Ends a run: the callbacks' last words, `run.json`, the summary.
    pub(super) fn finish(&mut self, pos: &Position) -> Result<RunSummary, RunError> {
        self.hooks.finish();
        let elapsed = self.started.elapsed().as_secs_f64();
        let summary = RunSummary {
            evals: self.results.clone(),
            steps: pos.step(),
            chain_steps: pos
                .chains
                .iter()
                .map(|c| (c.name.clone(), c.step))
                .collect(),
            metrics_path: self.writer.as_ref().map(|w| w.path().to_path_buf()),
            adapter: format!(
                "{} ({})",
                self.gpu.adapter().name,
                self.gpu.adapter().backend
            ),
            samples_per_second: (pos.samples() - self.samples_at_start) as f64 / elapsed.max(1e-9),
            recorded: self.gpu.take_recorded(),
        };
        if self.ranks.rank() != 0 {
            return Ok(summary);
        }
        let run_json = self.out_dir.join("run.json");
        let facts = serde_json::json!({
            "adapter": summary.adapter,
            "samples_per_second": summary.samples_per_second,
            "steps": summary.steps,
            "chain_steps": summary.chain_steps,
            "wall_time_s": elapsed,
            "metrics_file": self.plan.metrics_file,
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
        let root = self.out_dir.join(&self.plan.checkpoint_dir);
        let older = checkpoint::list(&root)
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find(|c| c.step < before_step)
            .map(|c| c.path);
        // Rank 0 saved the checkpoints: its choice holds for every rank (a shared file
        // system may show another rank the directory late).
        let older = self.rank_zero_path(older)?;
        let Some(path) = older else {
            if !self.hooks.is_quiet() {
                println!(
                    "rollback: no checkpoint older than step {before_step} in `{}`; stopping",
                    root.display()
                );
            }
            return Ok(true);
        };
        let (counts, scale) = self.hooks.rollback_memory();
        self.restore(&path, pos)?;
        self.hooks.after_rollback(counts, scale * factor);
        // Forget the device sums of the abandoned steps.
        for chain in &mut self.chains {
            chain.train.read_train_metrics(&self.gpu)?;
        }
        Ok(false)
    }

    /// Writes a `steps` record per chain of the training window of period `n`.
    fn record_steps(&mut self, pos: &Position, n: u64) -> Result<(), RunError> {
        let wall = self.started.elapsed().as_secs_f64();
        for (chain, state) in self.chains.iter().zip(&pos.chains) {
            let lr = self.hooks.lr_scale() * chain.plan.lr_at(state.step.saturating_sub(1));
            let window = state.windows.get(&n).copied().unwrap_or_default();
            if window.samples == 0 {
                // A chain waiting for the others at the end of an epoch trained nothing.
                continue;
            }
            let mut record = MetricsRecord::steps(
                &chain.plan.name,
                chain.plan.split.as_str(),
                state.step,
                pos.epoch,
                window.into(),
                lr,
                wall,
            );
            if chain.plan.regression {
                record.accuracy = None;
            }
            if let Some(w) = self.writer.as_mut() {
                w.write(&record).map_err(|source| RunError::Io {
                    path: w.path().to_path_buf(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Reads every chain's device training accumulators (one read-back each) into the
    /// host sums: each period's window and the epoch's.
    pub(super) fn read_train(&mut self, pos: &mut Position) -> Result<(), RunError> {
        for (chain, state) in self.chains.iter_mut().zip(&mut pos.chains) {
            let m = chain.train.read_train_metrics(&self.gpu)?;
            let m = all_ranks_metrics(self.ranks, &m)?;
            if m.samples > 0 {
                state.last_grad_norm = m.last_grad_norm;
            }
            for &n in &self.periods {
                state.windows.entry(n).or_default().add(&m);
            }
            state.epoch_sums.add(&m);
        }
        Ok(())
    }

    pub(super) fn write(&mut self, record: &MetricsRecord) -> Result<(), RunError> {
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
    pub(super) fn fire(&mut self, trigger: Trigger, pos: &mut Position) -> Result<bool, RunError> {
        let mut checkpoints = Vec::new();
        let stop = self.fire_hooks(trigger, pos, &mut checkpoints)?;
        self.save_checkpoints(checkpoints, trigger, pos)?;
        Ok(stop)
    }

    /// Fires a trigger's evals and callbacks; the checkpoints they ask for are added to
    /// `checkpoints` for the caller to save.
    pub(super) fn fire_hooks(
        &mut self,
        trigger: Trigger,
        pos: &mut Position,
        checkpoints: &mut Vec<callbacks::CheckpointRequest>,
    ) -> Result<bool, RunError> {
        if let Some(at) = self.skip_once.iter().position(|t| *t == trigger) {
            self.skip_once.remove(at);
            return Ok(false);
        }
        let plan = self.plan;
        let Some((_, hooks)) = plan.hook_table.iter().find(|(t, _)| *t == trigger) else {
            return Ok(false);
        };
        let mut stop = false;
        // Epoch-end hooks run after the epoch counter advanced (so a checkpoint taken
        // there resumes at the next epoch); they report the epoch that just ended.
        let epoch = pos.epoch.saturating_sub(u64::from(matches!(
            trigger,
            Trigger::EpochEnd | Trigger::RoundEnd | Trigger::EveryNRounds(_)
        )));

        for hook in hooks {
            let id = match *hook {
                HookId::Eval(e) => {
                    let started = Instant::now();
                    let routine = &mut self.evals[e.0];
                    let outcome = evaluate_split(
                        &self.gpu,
                        &mut routine.step,
                        &routine.split,
                        routine.plan.batch_size,
                        routine.one_hot_targets,
                        &routine.plan.metrics,
                        &routine.target_scaling,
                        routine.class_names.as_deref(),
                    )?;
                    let result = outcome.summary;
                    if let Some((targets, outputs, width)) = &outcome.regression
                        && self.ranks.rank() == 0
                    {
                        let path = self
                            .out_dir
                            .join(format!("predictions-{}.csv", routine.plan.name));
                        write_predictions(&path, targets, outputs, *width)?;
                    }
                    let name = &plan.evals[e.0].name;
                    self.clock.add(&format!("eval {name}"), started.elapsed());
                    self.results.insert(name.clone(), result.clone());
                    let e = &plan.evals[e.0];
                    let record = MetricsRecord::eval(
                        name,
                        e.split.as_str(),
                        pos.step(),
                        epoch,
                        result.clone(),
                        outcome.report.as_ref(),
                        &e.metrics,
                        self.started.elapsed().as_secs_f64(),
                    );
                    let record = MetricsRecord {
                        round: plan.federated.as_ref().map(|_| pos.epoch),
                        ..record
                    };
                    self.write(&record)?;
                    self.hooks.set_eval(name, result);
                    continue;
                }
                HookId::Callback(c) => c,
            };
            let period = match trigger {
                Trigger::EveryNSteps(n) => Some(n),
                _ => None,
            };
            let chains: Vec<ChainMoment> = self
                .chains
                .iter()
                .zip(&pos.chains)
                .map(|(chain, state)| ChainMoment {
                    name: &chain.plan.name,
                    loss: &chain.plan.loss,
                    step: state.step,
                    window: period
                        .and_then(|n| state.windows.get(&n).copied())
                        .unwrap_or_default(),
                    grad_norm: state.last_grad_norm,
                    lr: self.hooks.lr_scale() * chain.plan.lr_at(state.step.saturating_sub(1)),
                })
                .collect();
            let moment = callbacks::Moment {
                trigger,
                step: pos.step(),
                epoch,
                elapsed: self.started.elapsed().as_secs_f64(),
                samples: pos.samples() - self.samples_at_start,
                chains: &chains,
            };
            match self.hooks.on_hook(id, &moment)? {
                Action::Continue => {}
                Action::Stop => stop = true,
                Action::RestoreBest(params) => {
                    for chain in &mut self.chains {
                        chain.train.load_params(&self.gpu, &chain.own(&params))?;
                    }
                    stop = true;
                }
                Action::SnapshotBest => {
                    let params = self.weights()?;
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
                Action::RecordSteps => {
                    if let Some(n) = period {
                        self.record_steps(pos, n)?;
                    }
                }
                Action::Exec(request) => {
                    let mut event = request.event.clone();
                    event["checkpoint"] = match self.newest_checkpoint() {
                        Some(path) => serde_json::json!(path.display().to_string()),
                        None => serde_json::Value::Null,
                    };
                    event["out_dir"] = serde_json::json!(self.out_dir.display().to_string());
                    let started = Instant::now();
                    let outcome =
                        exec::run_command(&request, &plan.pipeline_dir, &self.out_dir, &event);
                    self.clock
                        .add(&format!("exec {}", request.name), started.elapsed());
                    for line in outcome.lines {
                        self.hooks.say(format!("[{}] {line}", request.name));
                    }
                    if let Some(why) = outcome.failure {
                        let message = format!("exec callback `{}`: {why}", request.name);
                        match request.on_failure {
                            ExecFailure::Warn => eprintln!("warning: {message}"),
                            ExecFailure::Stop => return Err(RunError::Hook(message)),
                        }
                    }
                }
                Action::Extension(mut request) => {
                    request.event.checkpoint = self
                        .newest_checkpoint()
                        .map(|path| path.display().to_string());
                    request.event.out_dir = self.out_dir.display().to_string();
                    let started = Instant::now();
                    let decision = self.hooks.fire_extension(&request.name, &request.event)?;
                    self.clock
                        .add(&format!("callback {}", request.name), started.elapsed());
                    if decision == crate::extend::Decision::Stop {
                        stop = true;
                    }
                }
                Action::Profile => {
                    self.read_train(pos)?;
                    let several = self.chains.len() > 1;
                    let mut kernels = Vec::new();
                    for chain in &mut self.chains {
                        let timings = chain.train.profile_kernels(&self.gpu, 5)?;
                        // The profiled kernels added their losses to the device sums.
                        chain.train.read_train_metrics(&self.gpu)?;
                        kernels.extend(timings.into_iter().map(|mut t| {
                            if several {
                                t.kernel = format!("{}: {}", chain.plan.name, t.kernel);
                            }
                            t
                        }));
                    }
                    let micro = pos.chains.first().map_or(0, |c| c.micro);
                    // Rank 0 writes (each rank's clock is its own).
                    if self.ranks.rank() == 0 {
                        let path = self.out_dir.join("profile.json");
                        let table = profile::write(&path, &self.clock, &kernels, micro)
                            .map_err(io_error(&path))?;
                        if !self.hooks.is_quiet() {
                            print!("{table}");
                        }
                    }
                }
            }
        }
        Ok(stop)
    }

    /// Rank 0's `path` on every rank (a directory name of at most 64 bytes, exchanged).
    fn rank_zero_path(&self, path: Option<PathBuf>) -> Result<Option<PathBuf>, RunError> {
        if self.ranks.size() == 1 {
            return Ok(path);
        }
        const WORDS: usize = 17;
        let mut words = [0u32; WORDS];
        let name = path
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        if let Some(name) = name.as_ref().filter(|n| n.len() <= 64) {
            let mut bytes = [0u8; 64];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            words[0] = name.len() as u32 + 1;
            for (w, chunk) in words[1..].iter_mut().zip(bytes.chunks_exact(4)) {
                *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            }
        }
        let all = self.ranks.exchange("rollback checkpoint", &words)?;
        let len = all[0] as usize;
        if len == 0 {
            return Ok(None);
        }
        let bytes: Vec<u8> = all[1..WORDS].iter().flat_map(|w| w.to_le_bytes()).collect();
        let name = String::from_utf8_lossy(&bytes[..(len - 1).min(64)]).into_owned();
        Ok(Some(
            self.out_dir.join(&self.plan.checkpoint_dir).join(name),
        ))
    }

    /// Saves the checkpoints asked for at `trigger`.
    /// The newest checkpoint, for callbacks' events: looked up on disk once (a resumed
    /// run's), then tracked as this process saves them (a callback may fire every batch).
    fn newest_checkpoint(&mut self) -> Option<PathBuf> {
        if self.newest_checkpoint.is_none() {
            let root = self.out_dir.join(&self.plan.checkpoint_dir);
            self.newest_checkpoint = checkpoint::latest(&root).ok();
        }
        self.newest_checkpoint.clone()
    }

    pub(super) fn save_checkpoints(
        &mut self,
        checkpoints: Vec<callbacks::CheckpointRequest>,
        trigger: Trigger,
        pos: &mut Position,
    ) -> Result<(), RunError> {
        let started = Instant::now();
        let saving = !checkpoints.is_empty();
        for c in checkpoints {
            self.monitor = match c.monitor {
                Some(Watched::Eval { eval, metric }) => self
                    .results
                    .get(&self.plan.evals[eval.0].name)
                    .map(|m| metric_of(m, metric)),
                _ => None,
            };
            self.save_checkpoint(&c, trigger, pos)?;
        }
        if saving {
            self.clock.add("checkpoint", started.elapsed());
        }
        Ok(())
    }

    /// Every model's parameters under their checkpoint names.
    fn weights(&self) -> Result<Vec<NamedTensor>, RunError> {
        let mut out = Vec::new();
        for chain in &self.chains {
            out.extend(chain.train.param_tensors(&self.gpu)?);
        }
        for f in &self.frozen {
            out.extend(f.params.tensors(&self.gpu)?);
        }
        Ok(out)
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
        let mut chains = pos.chains.clone();
        let mut optimizer = Vec::new();
        let mut grads = Vec::new();
        for (chain, state) in self.chains.iter().zip(&mut chains) {
            let accumulation = chain.train.accumulation_state(&self.gpu)?;
            state.accumulation_micro = accumulation.micro;
            state.accumulation_rows = accumulation.group_rows;
            optimizer.extend(chain.train.optimizer_state(&self.gpu)?);
            grads.extend(accumulation.grads);
        }
        if let Some(f) = &self.federation {
            optimizer.extend(f.state_tensors(&self.gpu)?);
        }
        let lead = pos.chains.first();
        let state = TrainingState {
            format: 2,
            pipeline: self.plan.name.clone(),
            pipeline_hash: self.plan.hash.clone(),
            resolved_pipeline: self.plan.resolved_yaml.clone(),
            step: pos.step(),
            micro: lead.map_or(0, |c| c.micro),
            epoch: pos.epoch,
            chains,
            metrics_lines: self.writer.as_ref().map_or(0, MetricsWriter::lines),
            callbacks: self.hooks.export_state(),
            monitor: self.monitor,
            monitor_max: c.keep_best_max,
            seed: self.plan.seed,
            taken_at: trigger.to_string(),
            ranks: self.ranks.size(),
        };
        let root = self.out_dir.join(&c.dir);
        if self.ranks.rank() != 0 {
            // Rank 0 saves; every rank took part in the reads above and knows its name.
            self.newest_checkpoint = Some(root.join(checkpoint::dir_name(&state)));
            return Ok(());
        }
        let checkpoint = Checkpoint {
            state,
            weights: self.weights()?,
            optimizer,
            grads,
            best: self.hooks.best_params(),
            cards: self.cards.clone(),
        };
        let saved = checkpoint::save(&root, &checkpoint)?;
        checkpoint::prune(&root, c.keep_last, c.keep_best_max)?;
        self.newest_checkpoint = Some(saved);
        Ok(())
    }
}

/// One data-parallel tick of a chain: the next `t` micro-batches of the epoch (`t` = the
/// ranks, fewer where the epoch or the accumulation group ends first) go to ranks `0..t`
/// in order; each records its own, the contributions are exchanged, and every rank adds
/// them in micro-batch order — what one process accumulating them would compute.
struct DataParallelTick<'a> {
    gpu: &'a Gpu,
    ranks: &'a dyn Ranks,
    clock: &'a mut profile::StageClock,
}

impl DataParallelTick<'_> {
    fn run(
        self,
        chain: &mut ChainRun,
        feed: &mut Prefetcher,
        state: &mut ChainState,
        first: Batch,
        lr: f32,
    ) -> Result<(), RunError> {
        let n = self.ranks.size() as u64;
        let rank = self.ranks.rank() as u64;
        let group = u64::from(chain.plan.train.accumulation_steps.max(1));
        let epoch_left = chain
            .plan
            .schedule
            .batches_per_epoch
            .saturating_sub(first.index_in_epoch) as u64;
        let t = n.min(group - state.micro % group).min(epoch_left).max(1);
        let len = chain.train.contribution_len();
        let mut words = vec![0u32; len + 1];
        let mut next = Some(first);
        let mut last_index = 0;
        for j in 0..t {
            let Some(batch) = next.take().or_else(|| feed.next()) else {
                return Err(RunError::Unsupported(format!(
                    "chain `{}`: the epoch ended inside a data-parallel tick",
                    chain.plan.name
                )));
            };
            last_index = batch.index_in_epoch;
            if j == rank {
                let started = Instant::now();
                chain.upload(self.gpu, &batch)?;
                chain.train.record_contribution(self.gpu, state.micro + j)?;
                let grads = chain.train.take_contribution(self.gpu)?;
                self.clock
                    .add("train step (record + read gradients)", started.elapsed());
                words[0] = batch.rows as u32;
                words[1..].copy_from_slice(bytemuck::cast_slice(&grads));
            }
            feed.recycle(batch);
        }
        // Rank 0 adds every contribution in order and hands the group's sums back: the
        // same bits on every rank, N x the parameters on the wire (not N^2).
        let started = Instant::now();
        let mut failed = None;
        let train = &mut chain.train;
        let mut fold = |all: &[u32]| -> Vec<u32> {
            let mut rows = 0u32;
            let contributions = all.chunks_exact(len + 1).take(t as usize).map(|w| {
                rows += w[0];
                (bytemuck::cast_slice::<u32, f32>(&w[1..]), w[0] as usize)
            });
            if let Err(e) = train.add_contributions(contributions) {
                failed = Some(e);
            }
            let mut answer = vec![0u32; len + 3];
            if let Some((micro, group_rows, sum)) = train.group() {
                answer[0] = micro;
                answer[1] = group_rows as u32;
                answer[2] = rows;
                answer[3..].copy_from_slice(bytemuck::cast_slice(sum));
            }
            answer
        };
        let answer = self
            .ranks
            .reduce_in_order("gradient", &words, len + 3, &mut fold)?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        self.clock.add("gradient exchange", started.elapsed());
        let started = Instant::now();
        if rank != 0 {
            chain.train.set_group(
                answer[0],
                answer[1] as usize,
                bytemuck::cast_slice(&answer[3..]),
            )?;
        }
        let rows = u64::from(answer[2]);
        let updated = chain.train.update_if_complete(self.gpu, lr)?;
        self.clock
            .add("gradient sum + update (encode + submit)", started.elapsed());
        state.micro += t;
        state.samples += rows;
        state.next_batch = last_index + 1;
        if updated {
            state.step += 1;
        }
        Ok(())
    }
}

/// Every rank's training metrics since the last read, merged (exactly: counts and the
/// fixed-point loss sum add as integers, so the result does not depend on the ranks).
fn all_ranks_metrics(ranks: &dyn Ranks, mine: &StepMetrics) -> Result<StepMetrics, RunError> {
    if ranks.size() == 1 {
        return Ok(*mine);
    }
    let fixed = mine.loss_exact.fixed as u128;
    let words = [
        fixed as u32,
        (fixed >> 32) as u32,
        (fixed >> 64) as u32,
        (fixed >> 96) as u32,
        mine.loss_exact.carried.to_bits(),
        mine.correct as u32,
        (mine.correct >> 32) as u32,
        mine.top5_correct as u32,
        (mine.top5_correct >> 32) as u32,
        mine.samples as u32,
        (mine.samples >> 32) as u32,
        mine.last_grad_norm.to_bits(),
    ];
    let all = ranks.exchange("training metrics", &words)?;
    let mut merged = StepMetrics::default();
    for w in all.chunks_exact(words.len()) {
        let wide = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
        let fixed = (u128::from(w[0])
            | (u128::from(w[1]) << 32)
            | (u128::from(w[2]) << 64)
            | (u128::from(w[3]) << 96)) as i128;
        merged.merge(&StepMetrics {
            loss_sum: 0.0,
            loss_exact: ops::ExactLossSum {
                fixed,
                carried: f32::from_bits(w[4]),
            },
            correct: wide(w[5], w[6]),
            top5_correct: wide(w[7], w[8]),
            samples: wide(w[9], w[10]),
            last_grad_norm: f32::from_bits(w[11]),
        });
    }
    Ok(merged)
}

/// The last evaluation's targets and predictions of a regression eval, `actual,predicted`
/// per sample (first target column; the report draws them), overwritten at every eval.
fn write_predictions(
    path: &Path,
    targets: &[f64],
    outputs: &[f64],
    width: usize,
) -> Result<(), RunError> {
    let mut text = String::from("actual,predicted\n");
    for (t, y) in targets
        .chunks(width.max(1))
        .zip(outputs.chunks(width.max(1)))
    {
        text.push_str(&format!("{},{}\n", t[0], y[0]));
    }
    std::fs::write(path, text).map_err(io_error(path))
}
