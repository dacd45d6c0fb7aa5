//! `engine bench`: times a pipeline's training step on the device, and a standalone
//! matmul for comparison. Numbers only; no assertions (speed is measured, not tested).

use std::time::Instant;

use ops::gpu::{DeviceRequest, Gpu};
use ops::layer::LayerSpec;
use ops::train::{EvalStep, LossKind, ModelDef, OptimizerKind, TrainConfig, TrainStep};
use serde::Serialize;

use ops::federated::Federation;

use crate::data::{Batch, BatchConfig, BatchIter, PreparedData, Split, prepare, sample_clients};
use crate::plan::{FederatedPlan, Plan};

use super::RunError;
use super::chain::{ChainRun, FrozenRun, loss_targets};
use super::checkpoint::ChainState;
use super::federated::{partition_of, template_split, train_round};

/// Environment variables that turn off the drivers' on-disk shader caches (Mesa's, and
/// NVIDIA's), so that a first step compiles every kernel, as on a fresh machine.
const SHADER_CACHE_OFF: [(&str, &str); 2] = [
    ("MESA_SHADER_CACHE_DISABLE", "true"),
    ("__GL_SHADER_DISK_CACHE", "0"),
];

/// Turns off the drivers' on-disk shader caches for this process (see
/// [`BenchReport::shader_caches_off`]).
///
/// # Safety
/// Sets environment variables: call it before any other thread starts.
pub unsafe fn turn_off_shader_caches() {
    for (key, value) in SHADER_CACHE_OFF {
        // SAFETY: the caller guarantees no other thread runs (or reads the environment).
        unsafe { std::env::set_var(key, value) };
    }
}

/// Whether [`turn_off_shader_caches`] (or the user) turned the caches off.
fn shader_caches_off() -> bool {
    SHADER_CACHE_OFF
        .iter()
        .all(|(key, value)| std::env::var(key).is_ok_and(|v| v == *value))
}

/// How long to measure.
#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Untimed steps before measuring.
    pub warmup: u32,
    /// Timed steps per repetition (ending with one loss read-back).
    pub steps: u32,
    /// Repetitions; the median is reported.
    pub repeats: u32,
    /// Timed federated rounds per repetition (federated pipelines only).
    pub rounds: u32,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            warmup: 20,
            steps: 200,
            repeats: 3,
            rounds: 10,
        }
    }
}

/// Measured throughput of one pipeline's training step.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Pipeline name.
    pub pipeline: String,
    /// Adapter name and backend.
    pub adapter: String,
    /// Samples per step.
    pub batch: usize,
    /// Samples per second of each repetition.
    pub samples_per_s: Vec<f64>,
    /// Median samples per second.
    pub median_samples_per_s: f64,
    /// Milliseconds per step at the median.
    pub ms_per_step: f64,
    /// Plan-to-first-step latency: buffers, shader compilation, one step and its read-back.
    pub first_step_ms: f64,
    /// Whether the drivers' on-disk shader caches were off, so that `first_step_ms`
    /// includes compiling every kernel (with them on, a repeated run loads the kernels).
    pub shader_caches_off: bool,
    /// Floating-point operations per step (forward, backward, optimizer).
    pub flops_per_step: u64,
    /// Achieved GFLOP/s at the median.
    pub gflops: f64,
    /// Queue submissions per timed step.
    pub submissions_per_step: f64,
    /// Read-backs per timed step.
    pub readbacks_per_step: f64,
    /// Allocations during the timed steps.
    pub allocations_in_steady_state: u64,
    /// Standalone square matmuls: (size, GFLOP/s).
    pub matmul_gflops: Vec<(usize, f64)>,
    /// Federated rounds (local training of the sampled clients and aggregation; no
    /// evals), for pipelines with a `federated:` section.
    pub federated: Option<RoundBench>,
}

/// Measured throughput of a federated pipeline's rounds.
#[derive(Debug, Clone, Serialize)]
pub struct RoundBench {
    /// Clients trained per round.
    pub clients_per_round: u32,
    /// Local optimizer steps per round (the mean over the timed rounds).
    pub steps_per_round: f64,
    /// Rounds per second of each repetition.
    pub rounds_per_s: Vec<f64>,
    /// Median rounds per second.
    pub median_rounds_per_s: f64,
    /// Seconds per round at the median.
    pub s_per_round: f64,
    /// Queue submissions per timed round.
    pub submissions_per_round: f64,
}

/// Times the training step of a plan's lead chain.
pub fn bench_pipeline(
    plan: &Plan,
    device: Option<DeviceRequest>,
    options: BenchOptions,
) -> Result<BenchReport, RunError> {
    let chain = plan
        .chains
        .first()
        .ok_or_else(|| RunError::Unsupported("the pipeline has no training chain".into()))?;
    let request = plan.device(device.as_ref());
    let data = prepare(&plan.datasets[chain.dataset.0].config)?;
    let config = BatchConfig {
        shuffle: true,
        drop_last: true,
        ..chain.batches.clone()
    };
    let mut batch = Batch::default();
    if !BatchIter::new(data.train.clone(), config, 0)?.next_into(&mut batch) {
        return Err(RunError::Unsupported(
            "the train split has no full batch to time".into(),
        ));
    }
    let mut targets = Vec::new();
    let target = loss_targets(chain.classes, chain.one_hot_targets, &batch, &mut targets)
        .map(<[f32]>::to_vec);

    let started = Instant::now();
    let gpu = Gpu::new(&request)?;
    let frozen = super::chain::frozen_runs(&gpu, plan)?;
    let mut train = super::chain::train_step(&gpu, chain, &frozen)?;
    let step = |train: &mut TrainStep, i: u64| -> Result<(), RunError> {
        train.upload_batch(
            &gpu,
            &batch.features,
            &batch.labels,
            target.as_deref(),
            batch.rows,
        )?;
        train.record_step(&gpu, chain.base_lr as f32, i)?;
        Ok(())
    };
    step(&mut train, 0)?;
    train.read_train_metrics(&gpu)?;
    let first_step_ms = started.elapsed().as_secs_f64() * 1e3;
    for i in 0..options.warmup {
        step(&mut train, u64::from(i) + 1)?;
    }
    train.read_train_metrics(&gpu)?;
    let before = gpu.counters();
    let mut rates = Vec::new();
    let mut index = u64::from(options.warmup) + 1;
    for _ in 0..options.repeats.max(1) {
        let t = Instant::now();
        for _ in 0..options.steps {
            step(&mut train, index)?;
            index += 1;
        }
        train.read_train_metrics(&gpu)?;
        rates.push(f64::from(options.steps) * batch.rows as f64 / t.elapsed().as_secs_f64());
    }
    let after = gpu.counters();
    let timed = f64::from(options.steps * options.repeats.max(1));
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let ms_per_step = batch.rows as f64 / median * 1e3;
    let flops = train.flops_per_step();
    let matmul_gflops = [512, 1024]
        .into_iter()
        .map(|n| matmul(&gpu, n).map(|g| (n, g)))
        .collect::<Result<_, _>>()?;
    let federated = match &plan.federated {
        Some(fed) => Some(bench_rounds(&gpu, plan, fed, &data, &frozen, options)?),
        None => None,
    };
    Ok(BenchReport {
        pipeline: plan.name.clone(),
        adapter: format!("{} ({})", gpu.adapter().name, gpu.adapter().backend),
        batch: batch.rows,
        samples_per_s: rates,
        median_samples_per_s: median,
        ms_per_step,
        first_step_ms,
        shader_caches_off: shader_caches_off(),
        flops_per_step: flops,
        gflops: flops as f64 / (ms_per_step / 1e3) / 1e9,
        submissions_per_step: (after.submissions - before.submissions) as f64 / timed,
        readbacks_per_step: (after.readbacks - before.readbacks) as f64 / timed,
        allocations_in_steady_state: after.allocations - before.allocations,
        matmul_gflops,
        federated,
    })
}

/// Times whole federated rounds from a fresh global model: one untimed round, then
/// `options.rounds` per repetition, each ending with a read-back.
fn bench_rounds(
    gpu: &Gpu,
    plan: &Plan,
    fed: &FederatedPlan,
    data: &PreparedData,
    frozen: &[FrozenRun],
    options: BenchOptions,
) -> Result<RoundBench, RunError> {
    let chain_plan = &plan.chains[fed.chain.0];
    let train = template_split(chain_plan, data)?;
    let parts = partition_of(fed, &train)?;
    let clients: Vec<Split> = (0..parts.clients.len())
        .map(|k| parts.split(&train, k))
        .collect::<Result<_, _>>()?;
    let mut chain = ChainRun::new(gpu, chain_plan, train, frozen)?;
    let mut state = chain.start_state();
    let federation = Federation::new(gpu, &mut chain.train, fed.rule, fed.clients)?;
    let mut round_no = 0u64;
    let mut round = |chain: &mut ChainRun, state: &mut ChainState| -> Result<(), RunError> {
        train_round(gpu, &federation, chain, state, fed, round_no, &clients)?;
        round_no += 1;
        Ok(())
    };
    round(&mut chain, &mut state)?;
    chain.train.read_train_metrics(gpu)?;
    let (before, steps_before) = (gpu.counters(), state.step);
    let rounds = options.rounds.max(1);
    let mut rates = Vec::new();
    for _ in 0..options.repeats.max(1) {
        let t = Instant::now();
        for _ in 0..rounds {
            round(&mut chain, &mut state)?;
        }
        chain.train.read_train_metrics(gpu)?;
        rates.push(f64::from(rounds) / t.elapsed().as_secs_f64());
    }
    let timed = f64::from(rounds * options.repeats.max(1));
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    Ok(RoundBench {
        clients_per_round: sample_clients(fed.seed, 0, fed.clients, fed.per_round).len() as u32,
        steps_per_round: (state.step - steps_before) as f64 / timed,
        rounds_per_s: rates,
        median_rounds_per_s: median,
        s_per_round: 1.0 / median,
        submissions_per_round: (gpu.counters().submissions - before.submissions) as f64 / timed,
    })
}

/// GFLOP/s of an n×n by n×n matmul: the forward of one bias-free linear layer over a
/// batch of n, timed over repeated submissions (its n×n cross-entropy epilogue is
/// O(n²) against the matmul's O(n³)).
fn matmul(gpu: &Gpu, n: usize) -> Result<f64, RunError> {
    let attrs: LayerSpec =
        serde_json::from_value(serde_json::json!({"linear": {"out": n, "bias": false}}))
            .map_err(|e| RunError::Unsupported(format!("matmul benchmark layer: {e}")))?;
    let model = ModelDef {
        input: vec![n],
        layers: vec![attrs],
        inputs: Vec::new(),
        init: ops::init::Init::default(),
    };
    let config = TrainConfig {
        batch: n,
        loss: LossKind::CrossEntropy {
            label_smoothing: 0.0,
        },
        optimizer: OptimizerKind::sgd(0.0, false, 0.0),
        clip_grad_norm: None,
        accumulation_steps: 1,
        seed: 0,
        class_weights: None,
        precision: ops::Precision::F32,
    };
    let train = TrainStep::new(gpu, &model, &config)?;
    let mut eval = EvalStep::new(gpu, &train, n)?;
    let features: Vec<f32> = (0..n * n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % n as u32).collect();
    eval.upload_batch(gpu, &features, &labels, None, n)?;
    eval.record(gpu)?;
    eval.read_metrics(gpu)?;
    let reps = if n <= 512 { 20 } else { 5 };
    let t = Instant::now();
    for _ in 0..reps {
        eval.record(gpu)?;
    }
    eval.read_metrics(gpu)?;
    let seconds = t.elapsed().as_secs_f64() / f64::from(reps);
    Ok(2.0 * (n as f64).powi(3) / seconds / 1e9)
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (lo, hi) = self
            .samples_per_s
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), r| {
                (lo.min(*r), hi.max(*r))
            });
        writeln!(f, "{} on {}", self.pipeline, self.adapter)?;
        writeln!(
            f,
            "  samples/s      {:.0} median ({:.0}-{:.0}), batch {}",
            self.median_samples_per_s, lo, hi, self.batch
        )?;
        writeln!(f, "  ms/step        {:.3}", self.ms_per_step)?;
        let compilation = if self.shader_caches_off {
            "compiling every kernel (shader caches off)"
        } else {
            "kernels compiled or loaded from the driver's shader cache"
        };
        writeln!(
            f,
            "  first step     {:.0} ms (buffers, {compilation}, one step, one read-back)",
            self.first_step_ms
        )?;
        writeln!(
            f,
            "  FLOPs/step     {:.1} M, achieved {:.2} GFLOP/s",
            self.flops_per_step as f64 / 1e6,
            self.gflops
        )?;
        writeln!(
            f,
            "  per step       {:.3} submissions, {:.3} read-backs, {} allocations in steady state",
            self.submissions_per_step, self.readbacks_per_step, self.allocations_in_steady_state
        )?;
        for (n, g) in &self.matmul_gflops {
            writeln!(
                f,
                "  matmul {n}x{n}   {g:.2} GFLOP/s (step reaches {:.0}%)",
                self.gflops / g * 100.0
            )?;
        }
        if let Some(r) = &self.federated {
            let (lo, hi) = r
                .rounds_per_s
                .iter()
                .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
                    (lo.min(*v), hi.max(*v))
                });
            writeln!(
                f,
                "  rounds/s       {:.2} median ({:.2}-{:.2}), {:.3} s/round; {} clients, {:.1} local steps, {:.1} submissions per round",
                r.median_rounds_per_s,
                lo,
                hi,
                r.s_per_round,
                r.clients_per_round,
                r.steps_per_round,
                r.submissions_per_round
            )?;
        }
        Ok(())
    }
}
