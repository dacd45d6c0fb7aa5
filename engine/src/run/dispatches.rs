//! `engine plan --dispatches`: the exact dispatch list of one training step of each chain
//! and of one batch of each eval, as the executor records them on an adapter (fusion,
//! tile sizes and grids depend on it).

use std::fmt;

use ops::federated::Federation;
use ops::gpu::{DeviceRequest, DispatchInfo, Gpu};
use serde::Serialize;

use crate::plan::Plan;

use super::RunError;
use super::chain::{eval_step, frozen_runs, train_step};

/// The dispatches of one step of each chain and one batch of each eval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DispatchPlan {
    /// The adapter they were built for.
    pub adapter: String,
    /// Per chain, in plan order.
    pub chains: Vec<ChainDispatches>,
    /// Per eval, in plan order.
    pub evals: Vec<EvalDispatches>,
    /// A federated routine's own dispatches around its clients' steps.
    pub federated: Option<FederatedDispatches>,
}

/// What a federated round adds to its clients' steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FederatedDispatches {
    /// The aggregator.
    pub aggregator: String,
    /// Before a client trains: the global model into its parameters.
    pub client_start: Vec<DispatchInfo>,
    /// After a client trains: its update into the round's sum.
    pub client_end: Vec<DispatchInfo>,
    /// Once per round: the aggregator's server update.
    pub round_end: Vec<DispatchInfo>,
}

/// One chain's step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainDispatches {
    /// The chain's name (its step stage).
    pub chain: String,
    /// A step that completes an accumulation group, in order.
    pub step: Vec<DispatchInfo>,
    /// How many of the last dispatches only such a step runs (gradient norm, clipping,
    /// optimizer update); a micro-batch inside a group stops before them.
    pub update: usize,
}

/// One eval's batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalDispatches {
    /// The eval stage's id.
    pub eval: String,
    /// One batch, in order.
    pub batch: Vec<DispatchInfo>,
}

/// Builds every chain and eval of `plan` on the adapter (no data is read) and lists what
/// they dispatch.
pub fn dispatch_plan(plan: &Plan, device: Option<DeviceRequest>) -> Result<DispatchPlan, RunError> {
    let gpu = Gpu::new(&plan.device(device.as_ref()))?;
    let frozen = frozen_runs(&gpu, plan)?;
    let mut steps = Vec::with_capacity(plan.chains.len());
    let mut chains = Vec::with_capacity(plan.chains.len());
    let mut federated = None;
    for (i, c) in plan.chains.iter().enumerate() {
        let mut train = train_step(&gpu, c, &frozen)?;
        // Set up before the step is listed: FedProx and SCAFFOLD add a gradient correction
        // to the client's step.
        if let Some(fed) = plan.federated.as_ref().filter(|f| f.chain.0 == i) {
            let federation = Federation::new(&gpu, &mut train, fed.rule, fed.clients)?;
            let [client_start, client_end, round_end] = federation.dispatches();
            federated = Some(FederatedDispatches {
                aggregator: fed.aggregator.clone(),
                client_start,
                client_end,
                round_end,
            });
        }
        chains.push(ChainDispatches {
            chain: c.name.clone(),
            step: train.step_dispatches(),
            update: train.update_len(),
        });
        steps.push(train);
    }
    let steps: Vec<&ops::train::TrainStep> = steps.iter().collect();
    let mut evals = Vec::with_capacity(plan.evals.len());
    for e in &plan.evals {
        evals.push(EvalDispatches {
            eval: e.name.clone(),
            batch: eval_step(&gpu, plan, e, &steps, &frozen)?.dispatches(),
        });
    }
    Ok(DispatchPlan {
        adapter: format!("{} ({})", gpu.adapter().name, gpu.adapter().backend),
        chains,
        evals,
        federated,
    })
}

impl fmt::Display for DispatchPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dispatches on {}", self.adapter)?;
        for c in &self.chains {
            writeln!(
                f,
                "  chain {}: {} dispatches per step (the last {} only when an accumulation group completes), one submission",
                c.chain,
                c.step.len(),
                c.update
            )?;
            for (i, d) in c.step.iter().enumerate() {
                writeln!(f, "    {:>3}. {d}", i + 1)?;
            }
        }
        for e in &self.evals {
            writeln!(
                f,
                "  eval {}: {} dispatches per batch",
                e.eval,
                e.batch.len()
            )?;
            for (i, d) in e.batch.iter().enumerate() {
                writeln!(f, "    {:>3}. {d}", i + 1)?;
            }
        }
        if let Some(fed) = &self.federated {
            writeln!(f, "  federated ({}):", fed.aggregator)?;
            for (phase, list) in [
                ("before each client", &fed.client_start),
                ("after each client", &fed.client_end),
                ("once per round", &fed.round_end),
            ] {
                let s = if list.len() == 1 { "" } else { "es" };
                writeln!(f, "    {phase}: {} dispatch{s}", list.len())?;
                for (i, d) in list.iter().enumerate() {
                    writeln!(f, "    {:>3}. {d}", i + 1)?;
                }
            }
        }
        Ok(())
    }
}
