//! Federated runs end to end: identical records from identical seeds, a run killed with
//! SIGKILL between rounds resumes bit-exact (SCAFFOLD's control variates included), each
//! aggregator learns the fixture's task, and the plan shows the partition.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{device, engine, kill_once_written, metrics, ok, run_pipeline, scratch};

const PIPELINE: &str = "tests/federated.yaml";
const LAST: &str = "checkpoints/step-00000144";

fn dir(name: &str) -> PathBuf {
    scratch("federated", name)
}

fn run(out: &Path, extra: &[&str]) -> Output {
    run_pipeline(PIPELINE, out, extra)
}

fn events<'a>(records: &'a [serde_json::Value], event: &str) -> Vec<&'a serde_json::Value> {
    records.iter().filter(|r| r["event"] == event).collect()
}

#[test]
fn the_same_seed_gives_identical_rounds_and_another_seed_does_not() {
    let (a, b, c) = (dir("seed-a"), dir("seed-b"), dir("seed-c"));
    ok(&run(&a, &[]));
    ok(&run(&b, &[]));
    ok(&run(&c, &["--set", "federated.seed=6"]));
    let (ma, mb, mc) = (metrics(&a), metrics(&b), metrics(&c));
    let rounds = events(&ma, "round");
    assert_eq!(rounds.len(), 8);
    assert_eq!(ma, mb, "two runs with the same seed");
    assert!(
        std::fs::read(a.join(LAST).join("weights.safetensors")).unwrap()
            == std::fs::read(b.join(LAST).join("weights.safetensors")).unwrap()
    );
    // Another federated seed samples other clients (same partition sizes, other shards).
    let other: Vec<_> = events(&mc, "round")
        .iter()
        .map(|r| r["clients"].clone())
        .collect();
    let these: Vec<_> = rounds.iter().map(|r| r["clients"].clone()).collect();
    assert_ne!(other, these);
    for r in &rounds {
        assert_eq!(r["clients"].as_array().unwrap().len(), 3);
    }
    // Client evaluation at rounds 4 and 8, over all 8 clients' 768 training samples.
    let client = events(&ma, "client_eval");
    assert_eq!(client.len(), 2);
    assert_eq!(client[1]["round"], 8);
    assert_eq!(client[1]["samples"], 768);
    let spread = &client[1]["client_accuracy"];
    assert!(spread["min"].as_f64() <= spread["mean"].as_f64());
    assert!(spread["mean"].as_f64() <= spread["max"].as_f64());
    let partition: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("partition.json")).unwrap()).unwrap();
    assert_eq!(partition["sizes"].as_array().unwrap().len(), 8);
}

#[test]
fn a_federated_run_killed_between_rounds_resumes_exactly() {
    let reference = dir("reference");
    ok(&run(&reference, &[]));
    let out = dir("killed");
    kill_once_written(PIPELINE, &out, "checkpoints/step-00000054", LAST);
    ok(&run(&out, &["--resume", "latest"]));
    assert_eq!(metrics(&out), metrics(&reference));
    let read = |d: &Path, f: &str| std::fs::read(d.join(LAST).join(f)).unwrap();
    assert!(read(&out, "weights.safetensors") == read(&reference, "weights.safetensors"));
    // The control variates are in the checkpoint, and resumed exactly.
    assert!(read(&out, "optimizer.safetensors") == read(&reference, "optimizer.safetensors"));
    let optimizer = read(&reference, "optimizer.safetensors");
    let tensors = safetensors::SafeTensors::deserialize(&optimizer).unwrap();
    let controls = tensors.tensor("federated.client_controls").unwrap();
    assert_eq!(controls.shape()[0], 8);
}

/// Every aggregator trains the fixture's four blobs from label-skewed clients to a
/// useful global model.
#[test]
fn every_aggregator_learns_the_task() {
    for (aggregator, floor) in [
        ("{kind: fedavg}", 0.85),
        ("{kind: fedprox, mu: 0.1}", 0.85),
        ("{kind: fedavgm, lr: 1.0, momentum: 0.5}", 0.85),
        ("{kind: fedadam, lr: 0.03}", 0.85),
        ("{kind: fedyogi, lr: 0.03}", 0.85),
        ("{kind: fedadagrad, lr: 0.1}", 0.85),
        ("{kind: scaffold}", 0.85),
    ] {
        let out = dir(&format!("learns-{}", aggregator.len()));
        let set = format!("federated.aggregator={aggregator}");
        ok(&run(
            &out,
            &[
                "--set",
                &set,
                "--set",
                "federated.partition={kind: dirichlet, alpha: 1.0, min_size: 20}",
                "--set",
                "schedule.rounds=10",
            ],
        ));
        let m = metrics(&out);
        let best = events(&m, "eval")
            .iter()
            .filter_map(|r| r["accuracy"].as_f64())
            .fold(0.0, f64::max);
        assert!(
            best >= floor,
            "{aggregator}: best val accuracy {best} < {floor}"
        );
    }
}

#[test]
fn the_plan_shows_the_routine_and_the_partition() {
    let out = engine(&["plan", PIPELINE, "--partition"]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("federated: 8 rounds; each samples 3 of 8 clients"),
        "{text}"
    );
    assert!(text.contains("aggregator scaffold (lr 1)"), "{text}");
    assert!(
        text.contains("partition: shards (2 per client), 8 clients, 768 samples"),
        "{text}"
    );
    // Two label-sorted shards of 48 give each client 96 samples of at most a few classes.
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("client  samples"))
        .skip(1)
        .take(8)
        .collect();
    assert_eq!(rows.len(), 8, "{text}");
    for row in rows {
        let cells: Vec<usize> = row.split_whitespace().map(|c| c.parse().unwrap()).collect();
        assert_eq!(cells[1], 96, "{row}");
        assert_eq!(cells[3..].iter().sum::<usize>(), 96, "{row}");
        assert!(cells[2] <= 3, "{row}");
    }
}

/// `engine bench` times whole rounds of a federated pipeline: the sampled clients' local
/// steps (3 clients × 96 samples / batch 16) and the aggregation.
#[test]
fn bench_reports_rounds_per_second() {
    let device = device();
    let out = engine(&[
        "bench",
        PIPELINE,
        "--device",
        &device,
        "--steps",
        "2",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--rounds",
        "2",
        "--json",
    ]);
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    let rounds = &report["federated"];
    assert_eq!(rounds["clients_per_round"], 3, "{stdout}");
    assert_eq!(rounds["steps_per_round"].as_f64(), Some(18.0), "{stdout}");
    assert!(
        rounds["median_rounds_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{stdout}"
    );
    // Local steps and the aggregation kernels only: no read-back inside a round, so a
    // round is a bounded number of submissions.
    let submissions = rounds["submissions_per_round"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (18.0..=18.0 + 2.0 * 3.0 + 2.0).contains(&submissions),
        "{stdout}"
    );
}

/// `--format json --partition` carries the partition, and `--dispatches` lists the
/// routine's kernels around the clients' steps, SCAFFOLD's correction inside the step.
#[test]
fn the_json_plan_holds_the_partition_and_the_dispatches_list_the_routine() {
    let out = engine(&["plan", PIPELINE, "--format", "json", "--partition"]);
    ok(&out);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON plan");
    let sizes: Vec<u64> = plan["partition"]["sizes"]
        .as_array()
        .expect("partition sizes")
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    assert_eq!(sizes, vec![96; 8], "{}", plan["partition"]);
    assert_eq!(
        plan["partition"]["histograms"].as_array().map(Vec::len),
        Some(8)
    );

    let device = device();
    let out = engine(&["plan", PIPELINE, "--dispatches", "--device", &device]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    let routine = text
        .split("federated (scaffold (lr 1)):")
        .nth(1)
        .unwrap_or_else(|| panic!("no federated section: {text}"));
    for phase in ["before each client", "after each client", "once per round"] {
        assert!(routine.contains(phase), "{routine}");
    }
    assert!(routine.contains("scaffold"), "{routine}");
    let step = text.split("federated (scaffold").next().unwrap_or_default();
    assert!(step.contains("scaffold_correct"), "{step}");
}

/// Early stopping watches the global model's evals at round ends: with an improvement
/// bar no round can clear, it stops after `patience` evaluations past the first.
#[test]
fn early_stopping_ends_a_federated_run_at_a_round() {
    let out = dir("early");
    std::fs::create_dir_all(&out).unwrap();
    let pipeline = out.join("early.yaml");
    let text = std::fs::read_to_string(PIPELINE).unwrap()
        + "  - {id: stop, kind: callback, callback: {type: early_stopping, monitor: val.loss, mode: min, patience: 2, min_delta: 100.0}, after: [val]}\n";
    std::fs::write(&pipeline, text).unwrap();
    ok(&run_pipeline(
        pipeline.to_str().unwrap(),
        &out.join("run"),
        &[],
    ));
    let records = metrics(&out.join("run"));
    let rounds: Vec<u64> = events(&records, "round")
        .iter()
        .filter_map(|r| r["round"].as_u64())
        .collect();
    assert_eq!(rounds, vec![1, 2, 3], "stopped after the third round");
}

/// `nan_guard` checks each round's training: a client learning rate that blows the model
/// up ends the run after the first round, with the loss named.
#[test]
fn nan_guard_stops_a_diverging_federated_run_at_the_round_end() {
    let out = dir("nan-guard");
    std::fs::create_dir_all(&out).unwrap();
    let pipeline = out.join("diverging.yaml");
    let text = std::fs::read_to_string(PIPELINE)
        .unwrap()
        .replace("lr: 0.05, momentum: 0.9", "lr: 1.0e6, momentum: 0.9")
        + "  - {id: guard, kind: callback, callback: {type: nan_guard}}\n";
    assert!(text.contains("lr: 1.0e6"), "the fixture edit applies");
    std::fs::write(&pipeline, text).unwrap();
    let result = run_pipeline(pipeline.to_str().unwrap(), &out.join("run"), &[]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nan_guard `guard`: non-finite"), "{stderr}");
    let records = metrics(&out.join("run"));
    assert_eq!(
        events(&records, "round").len(),
        1,
        "stopped at the first round's end"
    );
}
