use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BlockSpec, DatasetSpec, FederatedSpec, ModelSpec, Stage};

/// A training pipeline: data sets, models, and the DAG of stages that trains them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Training pipeline (version 1)")]
pub struct Pipeline {
    /// Format version of this file. Only `1` exists.
    pub version: u32,
    /// Name of the pipeline, used in logs, reports and checkpoints.
    pub name: String,
    /// Free text describing what the pipeline trains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seed of every random stream (init, shuffling, dropout, splits). Same seed, same run.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Which GPU adapter runs the tensor math.
    #[serde(default)]
    pub device: DeviceSpec,
    /// How long to train: a number of epochs or of optimizer steps.
    pub schedule: Schedule,
    /// Named data sets the `load` and `eval` stages read.
    pub datasets: BTreeMap<String, DatasetSpec>,
    /// Reusable blocks of nodes with parameters, instantiated by models' nodes
    /// (`{id: block1, block: residual, args: {channels: 16}}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub blocks: BTreeMap<String, BlockSpec>,
    /// Named models the `forward` and `eval` stages run.
    pub models: BTreeMap<String, ModelSpec>,
    /// The stages of the training graph. Order here does not matter: the plan orders them.
    pub stages: Vec<Stage>,
    /// Train federated: clients, rounds and an aggregator over the training chain (with
    /// `schedule: {rounds: R}`). See docs/federated.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated: Option<FederatedSpec>,
}

impl Pipeline {
    /// How long a training chain trains in one go: the schedule, or in a federated
    /// pipeline a client's local schedule of one round.
    pub fn chain_schedule(&self) -> Schedule {
        match (self.schedule, &self.federated) {
            (Schedule::Rounds(_), Some(f)) => match f.local {
                super::LocalSchedule::Epochs(n) => Schedule::Epochs(n),
                super::LocalSchedule::Steps(n) => Schedule::Steps(n),
            },
            (Schedule::Rounds(_), None) => Schedule::Epochs(0),
            (other, _) => other,
        }
    }
}

fn default_seed() -> u64 {
    0
}

/// Adapter preference: `auto` tries Vulkan first, then GL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Graphics backend to use: `auto` (Vulkan, else GL), `vulkan` or `gl`.
    #[serde(default)]
    pub backend: Backend,
    /// Pick the adapter whose name contains this text (case-insensitive), e.g. `llvmpipe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
}

/// Where the tensor math runs: a wgpu backend, or the native CPU backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Vulkan when an adapter exists, otherwise GL.
    #[default]
    Auto,
    /// Vulkan only (lavapipe on machines without a GPU).
    Vulkan,
    /// OpenGL ES through EGL only (llvmpipe on machines without a GPU).
    Gl,
    /// Native code on the CPU's cores (no GPU drivers needed); see docs/performance.md.
    Cpu,
}

/// Training length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Train for this many passes over the training split.
    Epochs(#[schemars(range(min = 1))] u32),
    /// Train for this many optimizer steps, crossing epochs as needed.
    Steps(#[schemars(range(min = 1))] u64),
    /// Train for this many federated rounds (needs a `federated:` section).
    Rounds(#[schemars(range(min = 1))] u32),
}
