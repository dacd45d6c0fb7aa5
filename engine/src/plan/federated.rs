//! The federated routine of a plan: who trains, how often, on which part of the data, and
//! how updates combine. The executor's federated loop reads only this.

use std::fmt;

use serde::Serialize;

use ops::federated::{Adaptive, Aggregator};

use crate::data::Partitioner;
use crate::spec::{
    AggregatorSpec, LocalSchedule, PartitionSpec, Pipeline, Schedule, ServerAdaptive, Stage,
};

use super::ChainId;

/// A federated routine over one training chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FederatedPlan {
    /// The client template.
    pub chain: ChainId,
    /// Clients K.
    pub clients: u32,
    /// Clients sampled per round.
    pub per_round: u32,
    /// Rounds R.
    pub rounds: u32,
    /// Local epochs per round (or `local_steps`).
    pub local_epochs: Option<u32>,
    /// Local optimizer steps per round (or `local_epochs`).
    pub local_steps: Option<u64>,
    /// The partitioner as written, e.g. `shards (2 per client)`.
    pub partition: String,
    #[serde(skip)]
    pub partitioner: Partitioner,
    /// The aggregator as written, e.g. `fedadam (lr 0.01, beta1 0.9, beta2 0.99, tau 0.001)`.
    pub aggregator: String,
    #[serde(skip)]
    pub rule: Aggregator,
    /// Evaluate the global model on every client's data every N rounds.
    pub client_eval_every: Option<u32>,
    /// Seed of the partition and of client sampling.
    pub seed: u64,
}

/// The routine of a federated pipeline (checked: one step stage, `schedule: {rounds}`).
pub(super) fn lower_federated(p: &Pipeline) -> Option<FederatedPlan> {
    let f = p.federated.as_ref()?;
    let Schedule::Rounds(rounds) = p.schedule else {
        return None;
    };
    let chain = p
        .stages
        .iter()
        .filter(|s| matches!(s, Stage::Step(_)))
        .position(|s| f.chain.as_ref().is_none_or(|c| s.id() == c))
        .unwrap_or(0);
    let (partition, partitioner) = match &f.partition {
        PartitionSpec::Iid => ("iid".to_string(), Partitioner::Iid),
        PartitionSpec::Shards(s) => (
            format!("shards ({} per client)", s.shards_per_client),
            Partitioner::Shards {
                shards_per_client: s.shards_per_client as usize,
            },
        ),
        PartitionSpec::Dirichlet(d) => (
            format!("dirichlet (alpha {}, min_size {})", d.alpha, d.min_size),
            Partitioner::Dirichlet {
                alpha: d.alpha,
                min_size: d.min_size as usize,
            },
        ),
    };
    let adaptive = |a: &ServerAdaptive| Adaptive {
        lr: a.lr as f32,
        beta1: a.beta1 as f32,
        beta2: a.beta2 as f32,
        tau: a.tau as f32,
    };
    let described = |a: &ServerAdaptive| {
        format!(
            "lr {}, beta1 {}, beta2 {}, tau {}",
            a.lr, a.beta1, a.beta2, a.tau
        )
    };
    let (rule, detail) = match &f.aggregator {
        AggregatorSpec::Fedavg => (Aggregator::FedAvg, String::new()),
        AggregatorSpec::Fedprox(x) => (
            Aggregator::FedProx { mu: x.mu as f32 },
            format!("mu {}", x.mu),
        ),
        AggregatorSpec::Fedavgm(m) => (
            Aggregator::FedAvgM {
                lr: m.lr as f32,
                momentum: m.momentum as f32,
            },
            format!("lr {}, momentum {}", m.lr, m.momentum),
        ),
        AggregatorSpec::Fedadam(a) => (Aggregator::FedAdam(adaptive(a)), described(a)),
        AggregatorSpec::Fedyogi(a) => (Aggregator::FedYogi(adaptive(a)), described(a)),
        AggregatorSpec::Fedadagrad(a) => (Aggregator::FedAdagrad(adaptive(a)), described(a)),
        AggregatorSpec::Scaffold(s) => (
            Aggregator::Scaffold { lr: s.lr as f32 },
            format!("lr {}", s.lr),
        ),
    };
    let aggregator = if detail.is_empty() {
        rule.name().to_string()
    } else {
        format!("{} ({detail})", rule.name())
    };
    let (local_epochs, local_steps) = match f.local {
        LocalSchedule::Epochs(e) => (Some(e), None),
        LocalSchedule::Steps(s) => (None, Some(s)),
    };
    Some(FederatedPlan {
        chain: ChainId(chain),
        clients: f.clients,
        per_round: f.per_round.of(f.clients),
        rounds,
        local_epochs,
        local_steps,
        partition,
        partitioner,
        aggregator,
        rule,
        client_eval_every: f.client_eval.as_ref().map(|e| e.every_n_rounds),
        seed: f.seed.unwrap_or(p.seed),
    })
}

impl fmt::Display for FederatedPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = match (self.local_epochs, self.local_steps) {
            (Some(e), _) => format!("{e} local epoch{}", if e == 1 { "" } else { "s" }),
            (_, Some(s)) => format!("{s} local steps"),
            _ => String::new(),
        };
        writeln!(
            f,
            "federated: {} rounds; each samples {} of {} clients (seed {}), which train {local} from the global model (optimizer state fresh per client); aggregator {}",
            self.rounds, self.per_round, self.clients, self.seed, self.aggregator
        )?;
        write!(
            f,
            "  partition: {} (per-client sizes and label histograms: `engine plan --partition`)",
            self.partition
        )?;
        if let Some(n) = self.client_eval_every {
            write!(
                f,
                "\n  client eval: the global model on every client's data every {n} rounds"
            )?;
        }
        writeln!(f)
    }
}
