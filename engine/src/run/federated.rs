//! The federated routine: rounds over the plan's client template.
//!
//! Each round samples clients (seeded by round), and each, in sampled order, starts from
//! the global model with a fresh optimizer, trains its local schedule on its own partition
//! with the ordinary training step, and adds its update to the round's sum on the device;
//! the aggregator's kernel then makes the next global model, which the template's step
//! holds for evals and checkpoints. Hooks fire at round boundaries only, and a checkpoint
//! taken there resumes bit-exact: the sampling, every client's shuffle and the device state
//! are functions of the seed, the round and what the checkpoint holds.

use std::path::Path;
use std::time::Instant;

use ops::Gpu;
use ops::federated::Federation;
use ops::train::EvalStep;
use serde::Serialize;

use crate::data::{
    BatchConfig, BatchIter, Normalizer, Partition, Split, client_seed, partition, sample_clients,
};
use crate::plan::FederatedPlan;
use crate::spec::{EvalMetric, Trigger};

use super::chain::ChainRun;
use super::checkpoint::{ChainState, MetricSums};
use super::evaluate::evaluate_split;
use super::metrics::{ClientSpread, MetricsRecord};
use super::runner::{Position, Runner};
use super::{RunError, RunSummary, StepMetricsSummary, io_error};

/// Rows per batch of a client evaluation.
const CLIENT_EVAL_BATCH: usize = 256;

/// A federated plan's partition of its train split: `engine plan --partition` (a table, or
/// JSON with `--format json`) and a run's `partition.json`, which the report draws.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionSummary {
    /// The partitioner, as the plan names it.
    pub partition: String,
    /// Its seed.
    pub seed: u64,
    /// Samples of the train split.
    pub samples: usize,
    /// Per client, its samples.
    pub sizes: Vec<usize>,
    /// Per client, samples per class.
    pub histograms: Vec<Vec<usize>>,
    /// Class names, where the data set has them.
    pub class_names: Option<Vec<String>>,
}

impl PartitionSummary {
    fn new(
        fed: &FederatedPlan,
        parts: &Partition,
        train: &Split,
        class_names: Option<&[String]>,
    ) -> PartitionSummary {
        PartitionSummary {
            partition: fed.partition.clone(),
            seed: fed.seed,
            samples: train.len(),
            sizes: parts.sizes(),
            histograms: parts.histograms(train),
            class_names: class_names.map(<[String]>::to_vec),
        }
    }
}

/// The split a federated plan's client template trains on, which the clients share out.
pub(super) fn template_split(
    chain: &crate::plan::ChainPlan,
    data: &crate::data::PreparedData,
) -> Result<Split, RunError> {
    data.split(chain.split).ok_or_else(|| {
        RunError::Unsupported(format!(
            "the clients' {} split is empty",
            chain.split.as_str()
        ))
    })
}

/// The partition of `plan`'s train split (shown by `engine plan --partition`).
pub fn partition_of(fed: &FederatedPlan, train: &Split) -> Result<Partition, RunError> {
    Ok(partition(
        train,
        fed.clients as usize,
        &fed.partitioner,
        fed.seed,
    )?)
}

impl Runner<'_> {
    pub(super) fn federated_loop(
        &mut self,
        pos: &mut Position,
        resumed: bool,
    ) -> Result<RunSummary, RunError> {
        let plan = self.plan;
        let Some(fed) = plan.federated.as_ref() else {
            return Err(RunError::Unsupported(
                "the plan has no federated routine".into(),
            ));
        };
        let c = fed.chain.0;
        let train = self.chains[c].split.clone();
        let parts = partition_of(fed, &train)?;
        let clients: Vec<Split> = (0..parts.clients.len())
            .map(|k| parts.split(&train, k))
            .collect::<Result<_, _>>()?;
        write_partition(
            &self.out_dir.join("partition.json"),
            &PartitionSummary::new(
                fed,
                &parts,
                &train,
                plan.datasets[self.chains[c].plan.dataset.0]
                    .class_names
                    .as_deref(),
            ),
        )?;
        let federation =
            Federation::new(&self.gpu, &mut self.chains[c].train, fed.rule, fed.clients)?;
        if resumed {
            federation.load_state(
                &self.gpu,
                &self.chains[c].train,
                &std::mem::take(&mut self.restored_federation),
            )?;
        }
        self.federation = Some(federation);
        let mut client_eval = match fed.client_eval_every {
            Some(_) => Some(EvalStep::new(
                &self.gpu,
                &self.chains[c].train,
                CLIENT_EVAL_BATCH,
            )?),
            None => None,
        };
        let mut stop = if resumed {
            false
        } else {
            self.fire(Trigger::FitStart, pos)?
        };
        let rounds = u64::from(fed.rounds);
        while !stop && pos.epoch < rounds {
            let round = pos.epoch;
            let started = Instant::now();
            let federation = self.federation.as_ref().ok_or_else(no_federation)?;
            let chosen = train_round(
                &self.gpu,
                federation,
                &mut self.chains[c],
                &mut pos.chains[c],
                fed,
                round,
                &clients,
            )?;
            self.clock.add(
                "federated round (local training + aggregation)",
                started.elapsed(),
            );
            let mut sums = MetricSums::default();
            let read = self.chains[c].train.read_train_metrics(&self.gpu)?;
            if read.samples > 0 {
                // The last client's last step: what `nan_guard` checks at the round's end.
                pos.chains[c].last_grad_norm = read.last_grad_norm;
            }
            sums.add(&read);
            pos.epoch += 1;
            let local: StepMetricsSummary = sums.into();
            let state = &pos.chains[c];
            let chain = &plan.chains[c];
            let mut record = MetricsRecord::train(
                &chain.name,
                chain.split.as_str(),
                state.step,
                round,
                local.clone(),
                chain.lr_at(0),
                self.started.elapsed().as_secs_f64(),
            );
            record.event = "round";
            record.stage = "federated".into();
            record.round = Some(pos.epoch);
            record.clients = Some(chosen);
            if chain.regression {
                record.accuracy = None;
            }
            self.write(&record)?;
            self.hooks.set_train(&chain.name, local);
            if let (Some(every), Some(step)) = (fed.client_eval_every, client_eval.as_mut())
                && (pos.epoch.is_multiple_of(u64::from(every)) || pos.epoch == rounds)
            {
                let record = self.client_eval(step, &clients, pos)?;
                self.write(&record)?;
            }
            // Every hook of the round fires before its checkpoints are saved, so a resumed
            // run, which starts at the next round, misses none of them.
            let mut checkpoints = Vec::new();
            stop |= self.fire_hooks(Trigger::RoundEnd, pos, &mut checkpoints)?;
            let due: Vec<Trigger> = plan
                .hook_table
                .iter()
                .filter_map(|(t, _)| match t {
                    Trigger::EveryNRounds(n)
                        if *n > 0 && pos.epoch.is_multiple_of(u64::from(*n)) =>
                    {
                        Some(*t)
                    }
                    _ => None,
                })
                .collect();
            for t in due {
                stop |= self.fire_hooks(t, pos, &mut checkpoints)?;
            }
            self.save_checkpoints(checkpoints, Trigger::RoundEnd, pos)?;
        }
        self.fire(Trigger::FitEnd, pos)?;
        self.finish(pos)
    }

    /// The global model on every client's own data: the sample-weighted loss and accuracy,
    /// and how accuracy spreads over clients.
    fn client_eval(
        &mut self,
        step: &mut EvalStep,
        clients: &[Split],
        pos: &Position,
    ) -> Result<MetricsRecord, RunError> {
        let started = Instant::now();
        let mut sums = MetricSums::default();
        let mut accuracies = Vec::with_capacity(clients.len());
        let metrics = [EvalMetric::LOSS, EvalMetric::ACCURACY];
        let identity = Normalizer::identity(0);
        for data in clients {
            let outcome = evaluate_split(
                &self.gpu,
                step,
                data,
                CLIENT_EVAL_BATCH,
                false,
                &metrics,
                &identity,
                None,
            )?;
            let m = outcome.summary;
            accuracies.push(m.accuracy);
            sums.loss_sum += m.loss * m.samples as f64;
            sums.correct += (m.accuracy * m.samples as f64).round() as u64;
            sums.samples += m.samples;
        }
        self.clock.add("client eval", started.elapsed());
        let (worst, min) =
            accuracies
                .iter()
                .copied()
                .enumerate()
                .fold(
                    (0, f64::INFINITY),
                    |a, (k, v)| if v < a.1 { (k, v) } else { a },
                );
        let spread = ClientSpread {
            mean: accuracies.iter().sum::<f64>() / accuracies.len().max(1) as f64,
            min,
            max: accuracies.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            worst_client: worst as u32,
        };
        let mut record = MetricsRecord::eval(
            "clients",
            "train",
            pos.step(),
            pos.epoch.saturating_sub(1),
            sums.into(),
            None,
            &metrics,
            self.started.elapsed().as_secs_f64(),
        );
        record.event = "client_eval";
        record.round = Some(pos.epoch);
        record.client_accuracy = Some(spread);
        Ok(record)
    }
}

/// One round: the sampled clients train in order, then the aggregator makes the next
/// global model; returns the clients.
pub(super) fn train_round(
    gpu: &Gpu,
    federation: &Federation,
    chain: &mut ChainRun,
    state: &mut ChainState,
    fed: &FederatedPlan,
    round: u64,
    clients: &[Split],
) -> Result<Vec<u32>, RunError> {
    let chosen = sample_clients(fed.seed, round, fed.clients, fed.per_round);
    let mut total_weight = 0.0f32;
    for &k in &chosen {
        total_weight += train_client(
            gpu,
            federation,
            chain,
            state,
            fed,
            round,
            k,
            &clients[k as usize],
        )?;
    }
    federation.aggregate(gpu, total_weight)?;
    Ok(chosen)
}

/// Trains client `k` from the global model and adds its update to the round's sum;
/// returns its aggregation weight.
#[allow(clippy::too_many_arguments)]
fn train_client(
    gpu: &Gpu,
    federation: &Federation,
    chain: &mut ChainRun,
    state: &mut ChainState,
    fed: &FederatedPlan,
    round: u64,
    k: u32,
    data: &Split,
) -> Result<f32, RunError> {
    federation.begin_client(gpu, &mut chain.train, k)?;
    let config = BatchConfig {
        seed: client_seed(fed.seed, round, k),
        ..chain.plan.batches.clone()
    };
    let accumulation = u64::from(chain.plan.train.accumulation_steps.max(1));
    let (mut micro, mut steps, mut samples) = (0u64, 0u64, 0u64);
    let mut lr = chain.plan.lr_at(0) as f32;
    let mut epoch = 0u64;
    let mut batch = crate::data::Batch::default();
    'local: loop {
        if fed.local_epochs.is_some_and(|e| epoch >= u64::from(e)) {
            break;
        }
        let mut iter = BatchIter::new(data.clone(), config.clone(), epoch)?;
        let mut any = false;
        while iter.next_into(&mut batch) {
            any = true;
            lr = chain.plan.lr_at(steps) as f32;
            chain.upload(gpu, &batch)?;
            // The run-wide micro-batch count keys dropout masks: no two steps share one.
            chain.train.record_step(gpu, lr, state.micro)?;
            state.micro += 1;
            micro += 1;
            samples += batch.rows as u64;
            if micro.is_multiple_of(accumulation) {
                steps += 1;
                state.step += 1;
                if fed.local_steps.is_some_and(|s| steps >= s) {
                    break 'local;
                }
            }
        }
        if !any {
            // A client whose data makes no batch (drop_last with fewer samples).
            break;
        }
        epoch += 1;
    }
    state.samples += samples;
    let weight = if fed.rule.weights_by_samples() {
        samples as f32
    } else {
        1.0
    };
    federation.end_client(gpu, k, weight, steps, lr)?;
    Ok(weight)
}

fn no_federation() -> RunError {
    RunError::Unsupported("the federated state was not set up".into())
}

fn write_partition(path: &Path, summary: &PartitionSummary) -> Result<(), RunError> {
    let text = serde_json::to_string(summary).map_err(|e| RunError::Unsupported(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(io_error(path))
}

/// The partition of a federated plan (`engine plan --partition`); loads the chain's data
/// set.
pub fn partition_summary(plan: &crate::plan::Plan) -> Result<PartitionSummary, RunError> {
    let Some(fed) = &plan.federated else {
        return Err(RunError::Unsupported(
            "`--partition` shows a federated pipeline's partition; this pipeline has no `federated:` section".into(),
        ));
    };
    let chain = &plan.chains[fed.chain.0];
    let data = crate::data::prepare(&plan.datasets[chain.dataset.0].config)?;
    let train = template_split(chain, &data)?;
    let parts = partition_of(fed, &train)?;
    Ok(PartitionSummary::new(
        fed,
        &parts,
        &train,
        plan.datasets[chain.dataset.0].class_names.as_deref(),
    ))
}

/// Per-client sizes and label histograms, as a table.
impl std::fmt::Display for PartitionSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sorted = self.sizes.clone();
        sorted.sort_unstable();
        let (min, median, max) = match (sorted.first(), sorted.last()) {
            (Some(min), Some(max)) => (*min, sorted[sorted.len() / 2], *max),
            _ => (0, 0, 0),
        };
        writeln!(
            f,
            "partition: {}, {} clients, {} samples (seed {}); client sizes min {min}, median {median}, max {max}",
            self.partition,
            self.sizes.len(),
            self.samples,
            self.seed,
        )?;
        let classes = self.histograms.first().map_or(0, Vec::len);
        writeln!(
            f,
            "client  samples  classes  samples per class 0..{}",
            classes.saturating_sub(1)
        )?;
        for (k, (h, size)) in self.histograms.iter().zip(&self.sizes).enumerate() {
            let present = h.iter().filter(|&&c| c > 0).count();
            let cells: String = h.iter().map(|c| format!("{c:>4}")).collect();
            writeln!(f, "{k:>6}  {size:>7}  {present:>7}  {cells}")?;
        }
        Ok(())
    }
}
