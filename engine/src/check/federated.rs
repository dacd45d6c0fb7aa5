//! The federated check: `schedule: {rounds}` and the `federated:` section go together, the
//! routine names one training chain, its partition fits the chain's train split, and
//! evals and callbacks fire at round boundaries only. Each problem located.

use std::collections::BTreeMap;

use super::TrainChain;
use super::data::DatasetInfo;
use super::graph::field_path;
use crate::diag::{Diagnostic, did_you_mean};
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::{CallbackSpec, PartitionSpec, Schedule, Stage, Trigger};

fn key(k: &str) -> Seg {
    Seg::Key(k.into())
}

/// The callbacks a federated run drives.
/// The callbacks a federated pipeline runs, for messages.
fn federated_callbacks() -> String {
    let names: Vec<String> = CallbackSpec::entries()
        .filter(|e| e.federated)
        .map(|e| format!("`{}`", e.name))
        .collect();
    format!("one of {}", names.join(", "))
}

pub(super) fn check(
    parsed: &ParsedPipeline,
    chains: &[TrainChain],
    datasets: &BTreeMap<String, DatasetInfo>,
    out: &mut Vec<Diagnostic>,
) {
    let p = &parsed.pipeline;
    let rounds = matches!(p.schedule, Schedule::Rounds(_));
    match (&p.federated, rounds) {
        (None, true) => out.push(
            Diagnostic::new(
                "federated-schedule",
                "`schedule: {rounds}` counts federated rounds, but the pipeline has no `federated:` section",
            )
            .at(parsed.span(&[key("schedule")]), "rounds of what?")
            .hint("add a `federated:` section (clients, per_round, local, partition; see docs/federated.md), or use `schedule: {epochs: N}`"),
        ),
        (Some(_), false) => out.push(
            Diagnostic::new(
                "federated-schedule",
                "a federated pipeline runs for a number of rounds",
            )
            .at(parsed.span(&[key("schedule")]), "not a number of rounds")
            .expected_found("`schedule: {rounds: R}`", "epochs or steps")
            .hint("how long each client trains per round is `federated.local` ({epochs: E} or {steps: S})"),
        ),
        _ => {}
    }
    triggers(parsed, out);
    let Some(f) = &p.federated else {
        return;
    };
    let steps: Vec<usize> = p
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, Stage::Step(_)))
        .map(|(i, _)| i)
        .collect();
    if let Some(named) = &f.chain {
        let names: Vec<&str> = steps.iter().map(|&i| p.stages[i].id().0.as_str()).collect();
        if !names.contains(&named.0.as_str()) {
            out.push(
                Diagnostic::new(
                    "unknown-stage",
                    format!("`federated.chain` names `{named}`, which is not a step stage"),
                )
                .at(
                    parsed.span(&[key("federated"), key("chain")]),
                    "no such step stage",
                )
                .expected_found(
                    format!(
                        "one of {}",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    format!("`{named}`"),
                )
                .hint(
                    did_you_mean(named.0.as_str(), names.iter().copied()).unwrap_or_else(|| {
                        "name the step stage whose chain the clients run".into()
                    }),
                ),
            );
        }
    }
    if steps.len() > 1 {
        out.push(
            Diagnostic::new(
                "federated-chains",
                format!("a federated pipeline trains one chain, the clients' template; this one has {} step stages", steps.len()),
            )
            .at(parsed.span(&field_path(steps[1], "kind")), "a second training chain")
            .hint("train the other models in a pipeline of their own"),
        );
    }
    for (i, stage) in p.stages.iter().enumerate() {
        if let Stage::Callback(c) = stage
            && !c.callback.federated()
        {
            out.push(
                Diagnostic::new(
                    "federated-callback",
                    format!("callback `{}` does not run in a federated pipeline", c.callback.name()),
                )
                .at(parsed.span(&[field_path(i, "callback"), vec![key("type")]].concat()), "not in federated runs")
                .stage(stage.id())
                .expected_found(federated_callbacks(), format!("`{}`", c.callback.name()))
                .hint("remove it; a federated run records every round (metrics), checkpoints and stops early at round ends"),
            );
        }
    }
    let Some(chain) = chains.first() else {
        return;
    };
    let Stage::Load(load) = &p.stages[chain.load] else {
        return;
    };
    let Some(ds) = datasets.get(&load.dataset) else {
        return;
    };
    let Some(&n) = ds.splits.get(&load.split) else {
        return;
    };
    let at = |k: &[&str]| {
        let path: Vec<Seg> = [&["federated"][..], k]
            .concat()
            .into_iter()
            .map(key)
            .collect();
        parsed.span(&path)
    };
    let clients = f.clients as usize;
    if clients > n {
        out.push(
            Diagnostic::new(
                "federated-partition",
                format!(
                    "{clients} clients cannot each hold a sample of the {n} in `{}`'s {} split",
                    load.dataset,
                    load.split.as_str()
                ),
            )
            .at(at(&["clients"]), "more clients than samples")
            .expected_found(format!("at most {n}"), clients.to_string())
            .hint("use fewer clients, or a larger train split"),
        );
        return;
    }
    let needs_labels = !matches!(f.partition, PartitionSpec::Iid);
    if needs_labels && ds.is_regression() {
        out.push(
            Diagnostic::new(
                "task-mismatch",
                format!("the `{}` partition deals samples out by class, but data set `{}` holds regression targets", f.partition.name(), load.dataset),
            )
            .at(at(&["partition", "kind"]), "needs class labels")
            .hint("use `partition: {kind: iid}`"),
        );
    }
    match &f.partition {
        PartitionSpec::Shards(s) if s.shards_per_client > 0 => {
            let shards = clients * s.shards_per_client as usize;
            if n % shards != 0 {
                out.push(
                    Diagnostic::new(
                        "federated-partition",
                        format!("the {n} training samples do not cut into {clients} x {} = {shards} equal shards", s.shards_per_client),
                    )
                    .at(at(&["partition", "shards_per_client"]), "shards that do not divide")
                    .expected_found(format!("clients x shards_per_client dividing {n}"), shards.to_string())
                    .hint(format!("choose clients and shards_per_client whose product divides {n}")),
                );
            }
        }
        PartitionSpec::Dirichlet(d) if d.min_size as usize * clients > n => {
            out.push(
                Diagnostic::new(
                    "federated-partition",
                    format!("{clients} clients of at least {} samples need {}, but the train split has {n}", d.min_size, d.min_size as usize * clients),
                )
                .at(at(&["partition", "min_size"]), "cannot be met")
                .expected_found(format!("at most {}", n / clients), d.min_size.to_string())
                .hint("lower `min_size` or the number of clients"),
            );
        }
        _ => {}
    }
}

/// Federated runs fire at round boundaries; ordinary runs have no rounds.
fn triggers(parsed: &ParsedPipeline, out: &mut Vec<Diagnostic>) {
    let federated = parsed.pipeline.federated.is_some();
    for (i, stage) in parsed.pipeline.stages.iter().enumerate() {
        let on = match stage {
            Stage::Eval(e) => e.on.clone(),
            Stage::Callback(c) => c.triggers(federated),
            _ => continue,
        };
        for (k, t) in on.iter().enumerate() {
            let round = matches!(t, Trigger::RoundEnd | Trigger::EveryNRounds(_));
            let boundary = round || matches!(t, Trigger::FitStart | Trigger::FitEnd);
            let (wrong, expected, hint) = if federated && !boundary {
                (
                    format!(
                        "`{t}` does not fire in a federated run: clients train inside a round, the pipeline sees its boundaries"
                    ),
                    "`fit_start`, `round_end`, `every_n_rounds` or `fit_end`",
                    "evaluate the global model with `on: [round_end]` or `on: [{every_n_rounds: N}]` (an eval without `on:` fires at `epoch_end`)",
                )
            } else if !federated && round {
                (
                    format!(
                        "`{t}` fires in federated runs only; this pipeline has no `federated:` section"
                    ),
                    "an epoch, batch, step or fit trigger",
                    "use `epoch_end`, or add a `federated:` section",
                )
            } else {
                continue;
            };
            let path = [field_path(i, "on"), vec![Seg::Index(k)]].concat();
            out.push(
                Diagnostic::new("unsupported-trigger", wrong)
                    .at(
                        parsed
                            .span(&path)
                            .or_else(|| parsed.span(&field_path(i, "kind"))),
                        "this trigger",
                    )
                    .stage(stage.id())
                    .expected_found(expected, format!("`{t}`"))
                    .hint(hint),
            );
        }
    }
}
