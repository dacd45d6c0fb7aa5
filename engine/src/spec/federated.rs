//! The `federated:` section: a federated routine over one training chain, the client
//! template. `schedule: {rounds: R}` sets its length.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::StageId;
use super::tagged::tagged_enum;

/// Federated training simulated on one device: each round a seeded sample of clients
/// trains the global model on its own partition of the train split with the pipeline's
/// training chain, and an aggregator combines their updates into the next global model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FederatedSpec {
    /// The `step` stage whose training chain every client runs (its load stage's
    /// `batch_size` is the local batch size B, its optimizer the client optimizer).
    /// Default: the pipeline's only step stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<StageId>,
    /// Number of clients K the train split is partitioned into.
    #[schemars(range(min = 1))]
    pub clients: u32,
    /// Clients taking part in each round, sampled without replacement.
    pub per_round: PerRound,
    /// How long each participating client trains per round.
    pub local: LocalSchedule,
    /// How the train split is divided among the clients.
    pub partition: PartitionSpec,
    /// How client updates become the next global model.
    #[serde(default)]
    pub aggregator: AggregatorSpec,
    /// Evaluate the global model on every client's own data every N rounds (per-client
    /// accuracy: mean, worst, best). Omitted: no per-client evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_eval: Option<ClientEval>,
    /// Seed of the partition and of the client sampling; default the pipeline's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Clients per round: `{fraction: 0.1}` of K (at least one) or `{count: 10}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PerRound {
    /// C, the fraction of clients per round, in (0, 1]: max(1, floor(C·K)) clients.
    Fraction(f64),
    /// This many clients per round (1 ..= K).
    Count(u32),
}

impl PerRound {
    /// Clients per round out of `clients`.
    pub fn of(self, clients: u32) -> u32 {
        match self {
            PerRound::Fraction(c) => ((c * f64::from(clients)).floor() as u32).max(1),
            PerRound::Count(n) => n,
        }
    }
}

/// Local training per round: `{epochs: E}` over the client's data, or `{steps: S}`
/// optimizer steps (crossing the client's epochs as needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LocalSchedule {
    /// Passes over the client's data per round.
    Epochs(u32),
    /// Optimizer steps per round.
    Steps(u64),
}

/// Per-client evaluation of the global model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientEval {
    /// Every N rounds (and after the last).
    pub every_n_rounds: u32,
}

/// How the train split is divided among clients. The `kind` key selects it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartitionSpec {
    /// A seeded shuffle cut into K near-equal parts.
    Iid,
    /// McMahan et al. (2017)'s pathological non-IID split: sort by label, cut into
    /// `clients × shards_per_client` equal shards, deal each client `shards_per_client`
    /// shards at random.
    Shards(ShardsPartition),
    /// Per class, proportions over clients drawn from Dirichlet(α); redrawn until every
    /// client holds at least `min_size` samples.
    Dirichlet(DirichletPartition),
}
tagged_enum!(PartitionSpec, "kind", {
    "iid" => Iid,
    "shards" => Shards(ShardsPartition),
    "dirichlet" => Dirichlet(DirichletPartition),
});

/// Shard partition parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardsPartition {
    /// Shards each client receives (McMahan et al.: 2).
    #[schemars(range(min = 1))]
    pub shards_per_client: u32,
}

/// Dirichlet partition parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirichletPartition {
    /// Concentration α > 0: small α gives each client few classes, large α nearly IID.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub alpha: f64,
    /// Every client holds at least this many samples (default 10).
    #[serde(default = "default_min_size")]
    pub min_size: u32,
}

fn default_min_size() -> u32 {
    10
}

/// A federated aggregator. The `kind` key selects it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AggregatorSpec {
    /// FedAvg (McMahan et al. 2017): the mean of client models weighted by their samples.
    #[default]
    Fedavg,
    /// FedProx (Li et al. 2020): FedAvg with a proximal term μ/2·‖w − w_global‖² added to
    /// every client's local objective.
    Fedprox(FedProx),
    /// FedAvgM (Hsu et al. 2019): server momentum over the averaged update.
    Fedavgm(FedAvgM),
    /// FedAdam (Reddi et al. 2021): Adam on the server over the averaged update.
    Fedadam(ServerAdaptive),
    /// FedYogi (Reddi et al. 2021): Yogi on the server.
    Fedyogi(ServerAdaptive),
    /// FedAdagrad (Reddi et al. 2021): Adagrad on the server.
    Fedadagrad(ServerAdaptive),
    /// SCAFFOLD (Karimireddy et al. 2020): client and server control variates correct
    /// every local gradient for client drift.
    Scaffold(Scaffold),
}
tagged_enum!(AggregatorSpec, "kind", {
    "fedavg" => Fedavg,
    "fedprox" => Fedprox(FedProx),
    "fedavgm" => Fedavgm(FedAvgM),
    "fedadam" => Fedadam(ServerAdaptive),
    "fedyogi" => Fedyogi(ServerAdaptive),
    "fedadagrad" => Fedadagrad(ServerAdaptive),
    "scaffold" => Scaffold(Scaffold),
});

/// FedProx parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FedProx {
    /// Weight μ ≥ 0 of the proximal term (Li et al. try 0.001 … 1).
    pub mu: f64,
}

/// FedAvgM parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FedAvgM {
    /// Server learning rate (default 1).
    #[serde(default = "one")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub lr: f64,
    /// Server momentum β in [0, 1) (default 0.9).
    #[serde(default = "default_server_momentum")]
    pub momentum: f64,
}

fn one() -> f64 {
    1.0
}

fn default_server_momentum() -> f64 {
    0.9
}

/// Server optimizer parameters of FedAdam, FedYogi and FedAdagrad (Reddi et al. 2021,
/// Algorithm 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerAdaptive {
    /// Server learning rate η (> 0).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub lr: f64,
    /// First-moment decay β1 in [0, 1) (default 0.9; all three keep this momentum).
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Second-moment decay β2 in [0, 1) (default 0.99; not used by FedAdagrad).
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Adaptivity τ > 0 (default 0.001).
    #[serde(default = "default_tau")]
    pub tau: f64,
}

fn default_beta1() -> f64 {
    0.9
}

fn default_beta2() -> f64 {
    0.99
}

fn default_tau() -> f64 {
    1e-3
}

/// SCAFFOLD parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scaffold {
    /// Global learning rate η_g (default 1).
    #[serde(default = "one")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub lr: f64,
}
