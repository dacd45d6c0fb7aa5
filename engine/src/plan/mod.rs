//! Plan: a checked pipeline lowered into what runs — training chains, eval routines,
//! callbacks, data sets and the hook table, by typed id — with what it reports: stages
//! grouped by lifecycle, callbacks per trigger, tensor shapes, parameters, memory, LR
//! preview and kernels. The executor reads only the plan.
//!
//! The plan is deterministic text (and JSON) so it can be snapshot-tested and diffed.

mod federated;
mod lower;

pub use federated::FederatedPlan;

pub use lower::{
    CallbackId, CallbackPlan, ChainId, ChainPlan, DataPlan, DatasetId, EvalId, EvalPlan,
    EvalTarget, FrozenId, FrozenPlan, HookId, Watched,
};

use std::collections::BTreeMap;
use std::fmt;

use petgraph::graph::DiGraph;
use serde::Serialize;
use sha2::{Digest, Sha256};

use ops::gpu::DeviceRequest;

use crate::check::{CheckedPipeline, ModelShapes, TrainChain};

use crate::callbacks::{ExecFailure, OutputRole, default_checkpoint_dir, default_metrics_file};
use crate::spec::{Pipeline, Schedule, Stage, StageId, Trigger};

/// What runs, in which order, with which shapes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Pipeline name.
    pub name: String,
    /// First 16 hex digits of the SHA-256 of the resolved pipeline.
    pub hash: String,
    /// Seed of every random stream.
    pub seed: u64,
    /// Adapter preference.
    pub device: String,
    /// The run's clock: the length and batching of the lead chain (the first).
    pub schedule: SchedulePlan,
    /// Processes training together (data parallel); 1 without a launcher.
    pub ranks: usize,
    /// Training chains, one per step stage, in file order; they advance in lockstep.
    pub chains: Vec<ChainPlan>,
    /// Frozen models (no step updates them), in order of first use.
    pub frozen: Vec<FrozenPlan>,
    /// Eval routines, in file order.
    pub evals: Vec<EvalPlan>,
    /// Callbacks, in file order.
    pub callbacks: Vec<CallbackPlan>,
    /// Data sets the run reads.
    pub datasets: Vec<DataPlan>,
    /// The federated routine, when the pipeline trains federated.
    pub federated: Option<FederatedPlan>,
    /// Evals and callbacks per trigger, in firing order (the executor fires exactly this).
    #[serde(skip)]
    pub hook_table: Vec<(Trigger, Vec<HookId>)>,
    /// The adapter to open.
    #[serde(skip)]
    pub device_request: DeviceRequest,
    /// The resolved pipeline as YAML (written next to the run's outputs, and kept in
    /// checkpoints).
    #[serde(skip)]
    pub resolved_yaml: String,
    /// The metrics file in the output directory: a `metrics` callback's `file`, else
    /// `metrics.jsonl`.
    pub metrics_file: String,
    /// Where checkpoints go (and `--resume latest` and rollbacks look).
    pub checkpoint_dir: String,
    /// Stages run once per batch, in execution order.
    pub batch_stages: Vec<PlannedStage>,
    /// Callbacks and evals per trigger, in firing order.
    pub hooks: Vec<HookPlan>,
    /// Shapes and parameters of each model.
    pub models: Vec<ModelPlan>,
    /// Device memory estimate for the training step.
    pub memory: MemoryPlan,
    /// Learning rate at a few optimizer steps.
    pub lr_preview: Vec<LrPoint>,
    /// Kernels one training step dispatches, in order.
    pub kernels: Vec<String>,
    /// The pipeline file's directory: relative paths in it, and `exec` commands, start
    /// there (not in plans: it differs between machines).
    #[serde(skip)]
    pub pipeline_dir: std::path::PathBuf,
}

/// Training length and batching.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchedulePlan {
    /// Epochs, when the schedule counts epochs.
    pub epochs: Option<u32>,
    /// Samples in the training split.
    pub train_samples: usize,
    /// Samples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per epoch.
    pub batches_per_epoch: usize,
    /// Samples in the last micro-batch of an epoch.
    pub last_batch: usize,
    /// Micro-batches per optimizer step.
    pub accumulation: u32,
    /// Samples per optimizer step.
    pub effective_batch: usize,
    /// Optimizer steps per epoch.
    pub steps_per_epoch: u64,
    /// Optimizer steps in the whole run.
    pub total_steps: u64,
}

/// One layer of a chain's optimizer step, outermost first; each is implemented once and
/// they combine freely (`engine plan` prints them joined by `∘`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepWrapper {
    /// Ranks run micro-batches side by side and add every gradient contribution in the
    /// order one process would (`mpirun -np N engine run`).
    DataParallel {
        /// Processes in the job.
        ranks: usize,
    },
    /// Micro-batches each rank adds up before an update (an `accumulate` stage).
    Accumulate {
        /// Micro-batches per rank and update.
        micro_batches: u32,
    },
    /// Forward, loss, backward and update: in f32, or mixed precision (f16 matrix-product
    /// operands, f32 accumulation, dynamic loss scaling).
    Step {
        /// The step's arithmetic.
        precision: ops::Precision,
    },
}

impl fmt::Display for StepWrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepWrapper::DataParallel { ranks } => {
                write!(f, "data parallel over {ranks} ranks")
            }
            StepWrapper::Accumulate { micro_batches } => {
                write!(f, "accumulate {micro_batches} micro-batches")
            }
            StepWrapper::Step {
                precision: ops::Precision::F32,
            } => write!(f, "f32 step"),
            StepWrapper::Step {
                precision: ops::Precision::F16,
            } => write!(
                f,
                "f16 step (f16 matmul/conv operands, f16 activations between linear layers, f32 accumulation and master weights, dynamic loss scaling)"
            ),
        }
    }
}

/// The wrappers of a step on `ranks` ranks accumulating `accumulation` micro-batches each,
/// at `precision`.
pub(crate) fn compose_step(
    ranks: usize,
    accumulation: u32,
    precision: ops::Precision,
) -> Vec<StepWrapper> {
    let mut step = Vec::new();
    if ranks > 1 {
        step.push(StepWrapper::DataParallel { ranks });
    }
    if accumulation > 1 {
        step.push(StepWrapper::Accumulate {
            micro_batches: accumulation,
        });
    }
    step.push(StepWrapper::Step { precision });
    step
}

/// What `kernels` adds to a chain's kernel names in f16: a suffix on the matrix products
/// and the loss scaler's two kernels.
const F16_OPERANDS: &str = " (f16 operands)";
const LOSS_SCALE_KERNELS: [&str; 2] = ["loss_scale.apply", "loss_scale.update"];

/// Why a plan cannot run data parallel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DataParallelRefused(pub String);

impl Plan {
    /// The device to open: `requested` (the command line's `--device`) or the pipeline's,
    /// told whether a step computes in f16 (so `auto` picks an adapter with f16 shaders).
    pub fn device(&self, requested: Option<&ops::gpu::DeviceRequest>) -> ops::gpu::DeviceRequest {
        let mut request = requested.unwrap_or(&self.device_request).clone();
        request.needs_f16 = self
            .chains
            .iter()
            .any(|c| c.train.precision == ops::Precision::F16);
        request
    }

    /// Chain `chain` trained in f32 instead of f16 (`f16_fallback: f32` on an adapter without
    /// f16 shaders): its step, kernel names and memory estimate say so.
    pub fn train_in_f32(&mut self, chain: usize) {
        let several = self.chains.len() > 1;
        let Some(c) = self.chains.get_mut(chain) else {
            return;
        };
        if c.train.precision != ops::Precision::F16 {
            return;
        }
        c.train.precision = ops::Precision::F32;
        for w in &mut c.step {
            if let StepWrapper::Step { precision } = w {
                *precision = ops::Precision::F32;
            }
        }
        let saved = f16_values(&c.model_def, &c.fusion)
            .saturating_mul(c.schedule.batch_size as u64)
            .saturating_mul(2);
        self.memory.activations = self.memory.activations.saturating_add(saved);
        self.memory.total = self.memory.total.saturating_add(saved);
        // Undo what `kernels` added for this chain's f16 step.
        let prefix = if several {
            format!("{}: ", c.name)
        } else {
            String::new()
        };
        self.kernels.retain(|k| {
            !k.strip_prefix(prefix.as_str())
                .is_some_and(|name| LOSS_SCALE_KERNELS.contains(&name))
        });
        for k in self
            .kernels
            .iter_mut()
            .filter(|k| k.starts_with(prefix.as_str()))
        {
            if let Some(plain) = k.strip_suffix(F16_OPERANDS) {
                *k = plain.to_string();
            }
        }
    }

    /// The plan run by `ranks` processes together (`mpirun -np N`): each update adds the
    /// micro-batches of every rank, so a chain's group is `ranks` x its accumulation
    /// micro-batches, in the order one process accumulating them would run them.
    pub fn data_parallel(mut self, ranks: usize) -> Result<Plan, DataParallelRefused> {
        if ranks <= 1 {
            return Ok(self);
        }
        if self.federated.is_some() {
            return Err(DataParallelRefused(
                "a federated pipeline cannot run data parallel: its clients already train side by side; run it without mpirun".into(),
            ));
        }
        for c in &self.chains {
            if c.model_def
                .layers
                .iter()
                .any(|l| matches!(l, ops::LayerSpec::BatchNorm(_)))
            {
                return Err(DataParallelRefused(format!(
                    "chain `{}` trains batch norm, whose running statistics would differ between ranks (each sees its own micro-batches); data parallelism runs models without batch norm for now",
                    c.name
                )));
            }
        }
        for c in &mut self.chains {
            let per_rank = c.train.accumulation_steps.max(1);
            let group = per_rank.saturating_mul(ranks as u32);
            c.train.accumulation_steps = group;
            c.step = compose_step(ranks, per_rank, c.train.precision);
            let s = &mut c.schedule;
            s.accumulation = group;
            s.effective_batch = s.batch_size * group as usize;
            s.steps_per_epoch = s.batches_per_epoch as u64 / u64::from(group);
            if let Some(e) = s.epochs {
                s.total_steps = u64::from(e) * s.batches_per_epoch as u64 / u64::from(group);
            }
        }
        if let Some(lead) = self.chains.first() {
            self.schedule = lead.schedule.clone();
            self.lr_preview = lr_preview(lead);
        }
        self.ranks = ranks;
        Ok(self)
    }
}

/// One stage in the per-batch order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedStage {
    /// Stage id.
    pub id: StageId,
    /// Stage kind.
    pub kind: &'static str,
    /// What it does, in a few words.
    pub detail: String,
    /// Output ports and their shapes (batch dimension first).
    pub outputs: Vec<(String, Vec<usize>)>,
}

/// The stages fired at one trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookPlan {
    /// The trigger.
    pub trigger: String,
    /// Lifecycle scope: run, epoch or batch.
    pub scope: &'static str,
    /// Callbacks and evals in firing order, as `id (kind)`.
    pub fires: Vec<String>,
}

/// A model's layers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelPlan {
    /// Model name.
    pub name: String,
    /// Per-sample input shape.
    pub input: Vec<usize>,
    /// Layers with output shapes and parameter counts.
    pub layers: Vec<LayerPlan>,
    /// Total parameters.
    pub params: usize,
    /// Forward FLOPs per sample.
    pub flops_per_sample: u64,
}

/// One layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerPlan {
    /// The layer as written.
    pub layer: String,
    /// Per-sample output shape.
    pub output: Vec<usize>,
    /// Parameters.
    pub params: usize,
}

/// Device memory estimate in bytes (f32).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryPlan {
    /// Parameters.
    pub params: u64,
    /// Gradients (twice when accumulating).
    pub grads: u64,
    /// Optimizer state.
    pub optimizer_state: u64,
    /// Activations and their gradients at the training batch size.
    pub activations: u64,
    /// Sum of the above.
    pub total: u64,
}

/// Learning rate at one optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LrPoint {
    /// Optimizer step (0-based).
    pub step: u64,
    /// Learning rate.
    pub lr: f64,
    /// Why this step is shown.
    pub note: &'static str,
}

/// SHA-256 prefix of a pipeline's canonical YAML: the identity recorded with results.
pub fn pipeline_hash(pipeline: &Pipeline) -> String {
    let yaml = canonical_yaml(pipeline);
    let digest = Sha256::digest(yaml.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The pipeline as YAML in the format it was written in (enums as `key: value` maps,
/// not YAML tags), so a resolved pipeline loads back as a pipeline.
pub fn canonical_yaml(pipeline: &Pipeline) -> String {
    serde_json::to_value(pipeline)
        .ok()
        .and_then(|v| serde_yaml::to_string(&v).ok())
        .unwrap_or_default()
}

/// The length and batching of one training chain.
fn schedule_of(checked: &CheckedPipeline, chain: &TrainChain) -> SchedulePlan {
    let p = &checked.parsed.pipeline;
    let stages = &p.stages;
    let load = match &stages[chain.load] {
        Stage::Load(l) => Some(l),
        _ => None,
    };
    let batch_size = load.map_or(0, |l| l.batch_size);
    let train_samples = load
        .and_then(|l| {
            checked
                .datasets
                .get(&l.dataset)
                .and_then(|d| d.splits.get(&l.split))
        })
        .copied()
        .unwrap_or(0);
    let accumulation = chain
        .accumulate
        .and_then(|a| match &stages[a] {
            Stage::Accumulate(a) => Some(a.steps),
            _ => None,
        })
        .unwrap_or(1);
    let drop_last = load.is_some_and(|l| l.drop_last);
    let batches_per_epoch = match (batch_size, drop_last) {
        (0, _) => 0,
        (b, true) => train_samples / b,
        (b, false) => train_samples.div_ceil(b),
    };
    let last_batch = if drop_last || batch_size == 0 || train_samples % batch_size == 0 {
        batch_size
    } else {
        train_samples % batch_size
    };
    // Accumulation groups run on across epoch ends, so a run of E epochs makes
    // floor(E x batches / accumulation) optimizer steps.
    let accumulation_steps = u64::from(accumulation.max(1));
    let steps_per_epoch = batches_per_epoch as u64 / accumulation_steps;
    let (epochs, total_steps) = match p.chain_schedule() {
        Schedule::Epochs(n) | Schedule::Rounds(n) => (
            Some(n),
            u64::from(n) * batches_per_epoch as u64 / accumulation_steps,
        ),
        Schedule::Steps(n) => (None, n),
    };
    SchedulePlan {
        epochs,
        train_samples,
        batch_size,
        batches_per_epoch,
        last_batch,
        accumulation,
        effective_batch: batch_size * accumulation as usize,
        steps_per_epoch,
        total_steps,
    }
}

/// Lowers a checked pipeline into the plan that runs.
pub fn plan_pipeline(checked: &CheckedPipeline) -> Plan {
    let p = &checked.parsed.pipeline;
    let program = lower::lower_program(checked);
    let schedule = program.chains.first().map_or(
        SchedulePlan {
            epochs: match p.chain_schedule() {
                Schedule::Epochs(n) | Schedule::Rounds(n) => Some(n),
                Schedule::Steps(_) => None,
            },
            train_samples: 0,
            batch_size: 0,
            batches_per_epoch: 0,
            last_batch: 0,
            accumulation: 1,
            effective_batch: 0,
            steps_per_epoch: 0,
            total_steps: 0,
        },
        |c| c.schedule.clone(),
    );
    let models: Vec<ModelPlan> = checked
        .models
        .iter()
        .map(|(name, m)| model_plan(name, m))
        .collect();
    let batch_stages = batch_order(checked);
    let hooks = hook_order(p);
    let memory = memory(checked, &program.chains, &program.frozen);
    let lr_preview = program.chains.first().map_or_else(Vec::new, lr_preview);
    let kernels = kernels(checked, &program.chains, &program.frozen);
    // Metrics are always kept (the report is drawn from them); a `metrics` callback names
    // the file and adds per-step records.
    let output = |role: OutputRole| {
        program.callbacks.iter().find_map(|c| {
            c.spec
                .output()
                .filter(|o| o.role == role)
                .map(|o| o.path.to_string())
        })
    };
    let metrics_file = output(OutputRole::Metrics).unwrap_or_else(default_metrics_file);
    let checkpoint_dir = output(OutputRole::Checkpoints).unwrap_or_else(default_checkpoint_dir);
    Plan {
        name: p.name.clone(),
        hash: pipeline_hash(p),
        seed: p.seed,
        device: match &p.device.adapter {
            Some(a) => format!("{:?} adapter matching `{a}`", p.device.backend).to_lowercase(),
            None => format!("{:?}", p.device.backend).to_lowercase(),
        },
        schedule,
        ranks: 1,
        chains: program.chains,
        frozen: program.frozen,
        evals: program.evals,
        callbacks: program.callbacks,
        datasets: program.datasets,
        federated: federated::lower_federated(p),
        hook_table: program.hook_table,
        device_request: program.device_request,
        resolved_yaml: canonical_yaml(p),
        metrics_file,
        checkpoint_dir,
        batch_stages,
        hooks,
        models,
        memory,
        lr_preview,
        kernels,
        pipeline_dir: checked.parsed.base_dir.clone(),
    }
}

fn model_plan(name: &str, m: &ModelShapes) -> ModelPlan {
    let mut shape = m.input.clone();
    let mut flops = 0;
    // A node reads the tensors it names: `stem = linear(out=64) <- input`.
    let source = |t: usize| -> String {
        match t.checked_sub(1).and_then(|i| m.layers.get(i)) {
            None => "input".to_string(),
            Some(l) => l.name.clone().unwrap_or_else(|| format!("{}", t - 1)),
        }
    };
    let layers = m
        .layers
        .iter()
        .map(|l| {
            flops += l.flops;
            shape = l.output.clone();
            LayerPlan {
                layer: match &l.name {
                    Some(id) => format!(
                        "{id} = {} <- {}",
                        l.describe,
                        l.inputs
                            .iter()
                            .map(|&t| source(t.0))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => l.describe.clone(),
                },
                output: l.output.clone(),
                params: l.params.iter().map(|p| p.1.iter().product::<usize>()).sum(),
            }
        })
        .collect();
    ModelPlan {
        name: name.to_string(),
        input: m.input.clone(),
        layers,
        params: m.param_count(),
        flops_per_sample: flops,
    }
}

fn batched(batch: usize, shape: &[usize]) -> Vec<usize> {
    std::iter::once(batch)
        .chain(shape.iter().copied())
        .collect()
}

/// Per-batch stages in topological order of the data edges (ties: file order).
fn batch_order(checked: &CheckedPipeline) -> Vec<PlannedStage> {
    let stages = &checked.parsed.pipeline.stages;
    // Each stage's tensors carry the batch of the chain it is on.
    let batch_of = |i: usize| -> usize {
        checked
            .chains
            .iter()
            .find(|c| {
                [c.load, c.loss, c.backward, c.step].contains(&i)
                    || c.forwards.contains(&i)
                    || c.teacher == Some(i)
            })
            .and_then(|c| match &stages[c.load] {
                Stage::Load(l) => Some(l.batch_size),
                _ => None,
            })
            .unwrap_or(0)
    };
    let g = &checked.graph.graph;
    let mut indegree: Vec<usize> = g
        .node_indices()
        .map(|n| {
            g.neighbors_directed(n, petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: Vec<petgraph::graph::NodeIndex> = g
        .node_indices()
        .filter(|n| indegree[n.index()] == 0)
        .collect();
    let mut order = Vec::new();
    while !ready.is_empty() {
        ready.sort_by_key(|n| std::cmp::Reverse(g[*n]));
        let Some(n) = ready.pop() else { break };
        order.push(g[n]);
        for m in g.neighbors(n) {
            indegree[m.index()] -= 1;
            if indegree[m.index()] == 0 {
                ready.push(m);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|i| {
            let stage = &stages[i];
            let batch = batch_of(i);
            let (detail, outputs) = match stage {
                Stage::Load(l) => {
                    let shape = checked
                        .datasets
                        .get(&l.dataset)
                        .map(|d| d.shape.clone())
                        .unwrap_or_default();
                    (
                        format!(
                            "{}/{} shuffle={} drop_last={}",
                            l.dataset,
                            l.split.as_str(),
                            l.shuffle,
                            l.drop_last
                        ),
                        vec![
                            ("features".into(), batched(batch, &shape)),
                            ("labels".into(), vec![batch]),
                        ],
                    )
                }
                Stage::Forward(f) => {
                    let out = checked
                        .models
                        .get(&f.model)
                        .map(|m| m.output().to_vec())
                        .unwrap_or_default();
                    (
                        format!("model {} on {}", f.model, f.input),
                        vec![("logits".into(), batched(batch, &out))],
                    )
                }
                Stage::Loss(l) => (
                    format!(
                        "{} on {} vs {}",
                        crate::spec::LossFn::as_str(l.function),
                        l.logits,
                        l.target
                    ),
                    vec![("loss".into(), vec![])],
                ),
                Stage::Backward(b) => (
                    format!("d({})/d(params)", b.loss),
                    vec![("grads".into(), vec![])],
                ),
                Stage::Accumulate(a) => (
                    format!("sum {} micro-batches, then divide", a.steps),
                    vec![("grads".into(), vec![])],
                ),
                Stage::Step(s) => {
                    let clip = s
                        .clip_grad_norm
                        .map_or(String::new(), |c| format!(", clip norm {c}"));
                    (
                        format!("{} lr {}{clip}", s.optimizer.name(), s.optimizer.lr()),
                        vec![("params".into(), vec![]), ("grad_norm".into(), vec![])],
                    )
                }
                Stage::Eval(_) | Stage::Callback(_) => return None,
            };
            Some(PlannedStage {
                id: stage.id().clone(),
                kind: stage.kind(),
                detail,
                outputs,
            })
        })
        .collect()
}

fn hook_order(p: &Pipeline) -> Vec<HookPlan> {
    fire_order(p)
        .into_iter()
        .map(|(trigger, members)| {
            let fires = members
                .into_iter()
                .map(|i| format!("{} ({})", p.stages[i].id(), hook_kind(&p.stages[i])))
                .collect();
            HookPlan {
                trigger: trigger.to_string(),
                scope: trigger.scope(),
                fires,
            }
        })
        .collect()
}

/// Callbacks and evals (stage indices) per trigger in lifecycle order; within a trigger,
/// `after`/`before` order, then file order. The executor fires exactly this.
pub fn fire_order(p: &Pipeline) -> Vec<(Trigger, Vec<usize>)> {
    let mut by_trigger: BTreeMap<(u8, Trigger), Vec<usize>> = BTreeMap::new();
    for (i, stage) in p.stages.iter().enumerate() {
        let triggers = match stage {
            Stage::Eval(e) => e.on.clone(),
            Stage::Callback(c) => c.triggers(p.federated.is_some()),
            _ => continue,
        };
        for t in triggers {
            by_trigger.entry((t.rank(), t)).or_default().push(i);
        }
    }
    let mut order: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<_> = (0..p.stages.len()).map(|i| order.add_node(i)).collect();
    for (i, stage) in p.stages.iter().enumerate() {
        let (after, before) = match stage {
            Stage::Eval(e) => (&e.after, &e.before),
            Stage::Callback(c) => (&c.after, &c.before),
            _ => continue,
        };
        for id in after {
            if let Some(j) = p.stages.iter().position(|s| s.id() == id) {
                order.add_edge(nodes[j], nodes[i], ());
            }
        }
        for id in before {
            if let Some(j) = p.stages.iter().position(|s| s.id() == id) {
                order.add_edge(nodes[i], nodes[j], ());
            }
        }
    }
    by_trigger
        .into_iter()
        .map(|((_, trigger), members)| (trigger, ordered(&order, &members)))
        .collect()
}

fn hook_kind(stage: &Stage) -> String {
    match stage {
        Stage::Callback(c) => c.callback.name().to_string(),
        Stage::Eval(e) => format!("eval {}/{}", e.dataset, e.split.as_str()),
        other => other.kind().to_string(),
    }
}

/// Kahn's algorithm restricted to `members`, smallest file index first: one answer.
fn ordered(order: &DiGraph<usize, ()>, members: &[usize]) -> Vec<usize> {
    let mut remaining: Vec<usize> = members.to_vec();
    let mut result = Vec::new();
    while !remaining.is_empty() {
        let next = remaining
            .iter()
            .copied()
            .find(|&i| {
                !order
                    .neighbors_directed(
                        petgraph::graph::NodeIndex::new(i),
                        petgraph::Direction::Incoming,
                    )
                    .any(|j| remaining.contains(&order[j]))
            })
            .unwrap_or(remaining[0]);
        remaining.retain(|&i| i != next);
        result.push(next);
    }
    result
}

/// Values per sample of the activations a mixed-precision step stores as f16 (counted per
/// layer output, as [`memory`] counts activations).
fn f16_values(def: &ops::ModelDef, fusion: &ops::fusion::Fusion) -> u64 {
    let Ok(seq) = ops::model::Sequential::new(def) else {
        return 0;
    };
    let f16 = ops::model::f16_activations(&seq, fusion);
    seq.layers
        .iter()
        .enumerate()
        .filter(|&(i, _)| f16[i + 1])
        .map(|(_, l)| l.output.iter().product::<usize>() as u64)
        .sum()
}

fn memory(checked: &CheckedPipeline, chains: &[ChainPlan], frozen: &[FrozenPlan]) -> MemoryPlan {
    let mut total = MemoryPlan {
        params: 0,
        grads: 0,
        optimizer_state: 0,
        activations: 0,
        total: 0,
    };
    let values = |model: &ModelShapes| -> u64 {
        std::iter::once(&model.input)
            .chain(model.layers.iter().map(|l| &l.output))
            .map(|s| s.iter().product::<usize>() as u64)
            .sum()
    };
    for chain in chains {
        let batch = chain.schedule.batch_size as u64;
        for model in chain.models.iter().filter_map(|m| checked.models.get(m)) {
            let params = model.param_count() as u64 * 4;
            let buffers = model.buffer_count() as u64 * 4;
            let grads = params
                * if chain.schedule.accumulation > 1 {
                    2
                } else {
                    1
                };
            let state = params * chain.train.optimizer.state_names().len() as u64;
            total.params = total.params.saturating_add(params + buffers);
            total.grads = total.grads.saturating_add(grads);
            total.optimizer_state = total.optimizer_state.saturating_add(state);
            // Activations and their gradients.
            let acts = values(model).saturating_mul(batch).saturating_mul(8);
            total.activations = total.activations.saturating_add(acts);
        }
        // In mixed precision the activations between linear layers are stored as f16
        // (2 bytes, not 4); `model_def` holds every trained model of the chain.
        if chain.train.precision == ops::Precision::F16 {
            let halved = f16_values(&chain.model_def, &chain.fusion)
                .saturating_mul(batch)
                .saturating_mul(2);
            total.activations = total.activations.saturating_sub(halved);
        }
        // Frozen models in front of the chain or teaching it: activations, no gradients.
        for f in chain.encoder.iter().chain(&chain.teacher) {
            if let Some(model) = checked.models.get(&frozen[f.0].name) {
                let acts = values(model).saturating_mul(batch).saturating_mul(4);
                total.activations = total.activations.saturating_add(acts);
            }
        }
    }
    for model in frozen.iter().filter_map(|f| checked.models.get(&f.name)) {
        let values = model.param_count() + model.buffer_count();
        total.params = total.params.saturating_add(values as u64 * 4);
    }
    total.total = total
        .params
        .saturating_add(total.grads)
        .saturating_add(total.optimizer_state)
        .saturating_add(total.activations);
    total
}

fn lr_preview(chain: &ChainPlan) -> Vec<LrPoint> {
    let total = chain.schedule.total_steps;
    let last = total.saturating_sub(1);
    let mut points: Vec<(u64, &'static str)> = vec![(0, "first"), (1, "second")];
    if let Some(w) = chain.lr_schedule.warmup_steps() {
        points.push((w.saturating_sub(1), "warmup end"));
    }
    points.push((total / 2, "middle"));
    points.push((last, "last"));
    points.sort();
    points.dedup_by_key(|p| p.0);
    points
        .into_iter()
        .filter(|(s, _)| *s <= last)
        .map(|(s, note)| LrPoint {
            step: s,
            lr: chain.lr_at(s),
            note,
        })
        .collect()
}

/// Kernels per step of every chain after fusion, in chain order (prefixed by the chain's
/// name when there are several): the frozen models' forwards, the trained model's forward,
/// the loss, the trained model's backward, the gradient norm and the update.
fn kernels(checked: &CheckedPipeline, chains: &[ChainPlan], frozen: &[FrozenPlan]) -> Vec<String> {
    let stages = &checked.parsed.pipeline.stages;
    let run = |def: &ops::ModelDef, fusion: &ops::fusion::Fusion| {
        ops::model::Sequential::new(def)
            .map_or((Vec::new(), Vec::new()), |seq| fusion.kernels(&seq))
    };
    let mut kernels = Vec::new();
    for (chain, traced) in chains.iter().zip(&checked.chains) {
        let prefix = if chains.len() > 1 {
            format!("{}: ", chain.name)
        } else {
            String::new()
        };
        let mut names = Vec::new();
        for f in chain.encoder.iter().chain(&chain.teacher) {
            names.extend(run(&frozen[f.0].model_def, &frozen[f.0].fusion).0);
        }
        let (forward, backward) = run(&chain.model_def, &chain.fusion);
        // Mixed precision: the matrix products (linear layers, convolutions) take f16
        // operands, the loss gradient is scaled and the update unscales or skips.
        let f16 = chain.train.precision == ops::Precision::F16;
        let at_precision = |name: String| {
            if f16 && (name.starts_with("linear.") || name.starts_with("conv")) {
                format!("{name}{F16_OPERANDS}")
            } else {
                name
            }
        };
        names.extend(forward.into_iter().map(at_precision));
        if let Stage::Loss(l) = &stages[traced.loss] {
            names.push(format!(
                "{}.forward_backward",
                crate::spec::LossFn::as_str(l.function)
            ));
        }
        if f16 {
            names.push(LOSS_SCALE_KERNELS[0].into());
        }
        names.extend(backward.into_iter().map(at_precision));
        // Backward kernels add into the gradient buffer, so accumulation needs no kernel
        // of its own; the global gradient norm is reduced on every update (it is
        // reported, and clipping uses it).
        if let Stage::Step(st) = &stages[traced.step] {
            names.push("grad_norm.reduce".into());
            if f16 {
                names.push(LOSS_SCALE_KERNELS[1].into());
            }
            names.push(format!("{}.update", st.optimizer.name()));
        }
        kernels.extend(names.into_iter().map(|k| format!("{prefix}{k}")));
    }
    kernels
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.2} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn shape(s: &[usize]) -> String {
    format!(
        "[{}]",
        s.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.schedule;
        writeln!(
            f,
            "plan {} (pipeline hash {}, seed {}, device {})",
            self.name, self.hash, self.seed, self.device
        )?;
        let length = match (&self.federated, s.epochs) {
            (Some(fed), _) => format!(
                "{} rounds of {} clients' local training, batch {}",
                fed.rounds, fed.per_round, s.batch_size
            ),
            (None, Some(e)) => format!(
                "{e} epochs x {} batches / accumulation {} = {} optimizer steps",
                s.batches_per_epoch, s.accumulation, s.total_steps
            ),
            (None, None) => format!(
                "{} optimizer steps ({} per epoch)",
                s.total_steps, s.steps_per_epoch
            ),
        };
        writeln!(f, "schedule: {length}")?;
        if let Some(fed) = &self.federated {
            write!(f, "{fed}")?;
        }
        if self.federated.is_none() {
            writeln!(
                f,
                "batching: {} train samples, batch {} (last {}), {} batches per epoch, accumulation {}, effective batch {}",
                s.train_samples,
                s.batch_size,
                s.last_batch,
                s.batches_per_epoch,
                s.accumulation,
                s.effective_batch
            )?;
        }
        for c in &self.chains {
            let prefix = if self.chains.len() > 1 {
                format!("{}: ", c.name)
            } else {
                String::new()
            };
            let step: Vec<String> = c.step.iter().map(ToString::to_string).collect();
            writeln!(f, "step: {prefix}{}", step.join(" ∘ "))?;
        }
        let describe = |c: &ChainPlan| -> String {
            let mut models: Vec<String> = c
                .encoder
                .map(|e| format!("{} (frozen)", self.frozen[e.0].name))
                .into_iter()
                .chain(c.models.iter().cloned())
                .collect();
            if models.len() > 1 {
                models = vec![models.join(" -> ")];
            }
            let teacher = c.teacher.map_or(String::new(), |t| {
                format!(", teacher {} (frozen)", self.frozen[t.0].name)
            });
            format!("{}{teacher}", models.join(""))
        };
        let plain = self.chains.len() == 1
            && self.chains[0].encoder.is_none()
            && self.chains[0].teacher.is_none()
            && self.chains[0].models.len() == 1;
        if !plain && !self.chains.is_empty() {
            writeln!(
                f,
                "chains (lockstep: each batch tick runs one micro-batch of every chain with batches left in the epoch, in this order; the epoch ends when every chain has seen its split; the step clock is `{}`'s)",
                self.chains[0].name
            )?;
            for c in &self.chains {
                let s = &c.schedule;
                writeln!(
                    f,
                    "  {}. {}: model {} on {}/{} batch {} (last {}), {} batches per epoch, accumulation {}, {} optimizer steps, {} lr {}",
                    c.id.0 + 1,
                    c.name,
                    describe(c),
                    self.datasets[c.dataset.0].name,
                    c.split.as_str(),
                    s.batch_size,
                    s.last_batch,
                    s.batches_per_epoch,
                    s.accumulation,
                    s.total_steps,
                    c.optimizer,
                    c.base_lr
                )?;
            }
        }
        for m in &self.frozen {
            writeln!(
                f,
                "frozen model {}: {}",
                m.name,
                m.init_from.as_ref().map_or(
                    "initialised from the seed (no `init_from:`)".to_string(),
                    |p| format!("weights from {}", p.display())
                )
            )?;
        }
        if !self.evals.is_empty() {
            let evals: Vec<String> = self
                .evals
                .iter()
                .map(|e| {
                    format!(
                        "{} ({} on {}/{})",
                        e.name,
                        e.model,
                        self.datasets[e.dataset.0].name,
                        e.split.as_str()
                    )
                })
                .collect();
            writeln!(f, "evals: {}", evals.join(", "))?;
        }
        for c in &self.callbacks {
            if let Some(command) = c.spec.command() {
                writeln!(
                    f,
                    "{} {}: runs `{}` (timeout {} s, on failure {}; only with `engine run --allow-exec`)",
                    c.spec.name(),
                    c.name,
                    command.argv.join(" "),
                    command.timeout_s,
                    match command.on_failure {
                        ExecFailure::Warn => "warn",
                        ExecFailure::Stop => "stop",
                    }
                )?;
            }
        }
        for d in &self.datasets {
            if let Some(names) = &d.class_names {
                let numbered: Vec<String> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("{i} {n}"))
                    .collect();
                writeln!(f, "classes of {}: {}", d.name, numbered.join(", "))?;
            }
            if let Some(targets) = &d.targets {
                writeln!(f, "targets of {}: {}", d.name, targets.join(", "))?;
            }
            let source = match &d.config.split {
                crate::data::SplitBy::Fractions { source, .. } => source,
                crate::data::SplitBy::Files { train, .. } => train,
            };
            if let Some(csv) = source.csv() {
                for c in &csv.categorical {
                    let column = match &c.column {
                        crate::data::Columns::Named(n) => n.join(""),
                        crate::data::Columns::List(l) => {
                            format!("column {}", l.first().copied().unwrap_or(0))
                        }
                        other => format!("{other:?}"),
                    };
                    writeln!(
                        f,
                        "categories of {}.{column} (one-hot, {} features): {}",
                        d.name,
                        c.values.len(),
                        c.values.join(", ")
                    )?;
                }
            }
        }
        writeln!(f)?;
        writeln!(f, "lifecycle")?;
        let print_hooks =
            |f: &mut fmt::Formatter<'_>, trigger: &str, indent: &str| -> fmt::Result {
                let matching = self.hooks.iter().filter(|h| {
                    h.trigger == trigger || (trigger == "every" && h.trigger.starts_with("every "))
                });
                for h in matching {
                    writeln!(f, "{indent}@{}: {}", h.trigger, h.fires.join(" -> "))?;
                }
                Ok(())
            };
        writeln!(f, "  run")?;
        print_hooks(f, "fit_start", "    ")?;
        if let Some(fed) = &self.federated {
            writeln!(f, "    round (x{})", fed.rounds)?;
            writeln!(
                f,
                "      client ({} of {}, in sampled order: global model in, optimizer state zeroed)",
                fed.per_round, fed.clients
            )?;
            let local = match (fed.local_epochs, fed.local_steps) {
                (Some(e), _) => format!("local epoch (x{e})"),
                (_, Some(n)) => format!("local epochs until {n} optimizer steps"),
                _ => String::new(),
            };
            writeln!(f, "        {local}")?;
            writeln!(
                f,
                "          batch (x ceil(client samples / {}))",
                s.batch_size
            )?;
            for (i, stage) in self.batch_stages.iter().enumerate() {
                writeln!(
                    f,
                    "            {}. {} ({}) {}",
                    i + 1,
                    stage.id,
                    stage.kind,
                    stage.detail
                )?;
            }
            writeln!(f, "        update joins the round's sum (fed_client_delta)")?;
            writeln!(
                f,
                "      aggregate: {} (one kernel, then the step holds the global model)",
                fed.aggregator
            )?;
            print_hooks(f, "round_end", "      ")?;
            print_hooks(f, "every", "      ")?;
            print_hooks(f, "fit_end", "    ")?;
            return self.write_details(f);
        }
        writeln!(
            f,
            "    epoch ({})",
            s.epochs
                .map_or("repeated until the step budget".to_string(), |e| format!(
                    "x{e}"
                ))
        )?;
        print_hooks(f, "epoch_start", "      ")?;
        let ticks = self
            .chains
            .iter()
            .map(|c| c.schedule.batches_per_epoch)
            .max()
            .unwrap_or(s.batches_per_epoch);
        writeln!(f, "      batch (x{ticks})")?;
        print_hooks(f, "batch_start", "        ")?;
        for (i, stage) in self.batch_stages.iter().enumerate() {
            let outs: Vec<String> = stage
                .outputs
                .iter()
                .map(|(p, sh)| {
                    if sh.is_empty() {
                        p.clone()
                    } else {
                        format!("{p} {}", shape(sh))
                    }
                })
                .collect();
            writeln!(
                f,
                "        {}. {} ({}) {} -> {}",
                i + 1,
                stage.id,
                stage.kind,
                stage.detail,
                outs.join(", ")
            )?;
            match stage.kind {
                "loss" => print_hooks(f, "after_forward", "        ")?,
                "backward" => print_hooks(f, "after_backward", "        ")?,
                _ => {}
            }
        }
        print_hooks(f, "batch_end", "        ")?;
        print_hooks(f, "every", "        ")?;
        print_hooks(f, "epoch_end", "      ")?;
        print_hooks(f, "fit_end", "    ")?;
        self.write_details(f)
    }
}

impl Plan {
    /// The models, memory, learning rates and kernels of the plan's text.
    fn write_details(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.models {
            writeln!(f)?;
            writeln!(
                f,
                "model {}: input {}, {} params, {} forward FLOPs per sample",
                m.name,
                shape(&m.input),
                thousands(m.params),
                thousands(m.flops_per_sample as usize)
            )?;
            // Long node labels (`fc2 = linear(...) <- act1`) widen the column for all.
            let width = m
                .layers
                .iter()
                .map(|l| l.layer.len())
                .max()
                .unwrap_or(0)
                .max(40);
            for (i, l) in m.layers.iter().enumerate() {
                writeln!(
                    f,
                    "  {i:>2} {:<width$} -> {:<16} {:>10} params",
                    l.layer,
                    shape(&l.output),
                    thousands(l.params)
                )?;
            }
        }
        let m = &self.memory;
        writeln!(f)?;
        writeln!(
            f,
            "memory: params {}, grads {}, optimizer state {}, activations {} at batch {} = {}",
            bytes(m.params),
            bytes(m.grads),
            bytes(m.optimizer_state),
            bytes(m.activations),
            self.schedule.batch_size,
            bytes(m.total)
        )?;
        let preview = |points: &[LrPoint]| -> String {
            points
                .iter()
                .map(|p| format!("step {} {:.6e} ({})", p.step, p.lr, p.note))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.chains.len() > 1 {
            for c in &self.chains {
                writeln!(f, "lr {}: {}", c.name, preview(&lr_preview(c)))?;
            }
        } else if self.federated.is_some() {
            // Each client starts its schedule afresh at local step 0; the preview spans
            // the local schedule over the whole train split (a client has a share of it).
            writeln!(
                f,
                "lr (by each client's local step, restarting per client): {}",
                preview(&self.lr_preview)
            )?;
        } else {
            writeln!(f, "lr: {}", preview(&self.lr_preview))?;
        }
        writeln!(
            f,
            "kernels per step (by op; `engine plan --dispatches` lists the exact dispatches): {}",
            self.kernels.join(", ")
        )
    }
}
