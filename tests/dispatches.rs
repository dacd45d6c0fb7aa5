//! The plan is what runs: for every example pipeline, the dispatches the executor records
//! while training one step (and evaluating once) are exactly the lists
//! `engine plan --dispatches` prints.

use std::path::{Path, PathBuf};

use engine::diag::{Sources, render};
use engine::plan::Plan;
use engine::run::{RunOptions, dispatch_plan, run_plan};
use engine::{LoadError, load_pipeline};

fn device() -> Option<ops::gpu::DeviceRequest> {
    let backend = match std::env::var("ENGINE_TEST_BACKEND").as_deref() {
        Ok("vulkan") => ops::gpu::BackendChoice::Vulkan,
        Ok("gl") => ops::gpu::BackendChoice::Gl,
        _ => return None,
    };
    Some(ops::gpu::DeviceRequest {
        backend,
        name: None,
        nth: 0,
        needs_f16: false,
        needs_wgsl: false,
    })
}

fn plan(file: &Path, overrides: &[String]) -> Plan {
    let mut sources = Sources::default();
    match load_pipeline(file, overrides, &mut sources) {
        Ok(checked) => engine::plan::plan_pipeline(&checked),
        Err(LoadError::Invalid(d)) => panic!("{}", render(&d, &sources, false)),
        Err(LoadError::Io(e)) => panic!("{e}"),
    }
}

/// Grids and fusions depend on the adapter: the snapshots hold the lists of CPU-type
/// adapters (lavapipe on the project's test machines); others are not snapshotted.
fn snapshot(name: &str, listed: &engine::run::DispatchPlan) {
    let adapters = ops::gpu::list_adapters();
    let Some(adapter) = adapters
        .iter()
        .find(|a| listed.adapter == format!("{} ({})", a.name, a.backend))
    else {
        return;
    };
    if adapter.device_type != "Cpu"
        || !["digits_mlp", "digits_cnn", "mnist_two_models"].contains(&name)
    {
        return;
    }
    // The first line names the adapter and its LLVM version.
    let text: String = listed
        .to_string()
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!(format!("dispatches_{name}_{}", adapter.backend), text);
}

#[test]
fn every_example_runs_the_dispatches_its_plan_lists() {
    let mut files: Vec<PathBuf> = std::fs::read_dir("pipelines")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        if plan(&file, &[]).federated.is_some() {
            // A federated round is many client steps; tests/federated.rs covers it.
            continue;
        }
        // One optimizer step of the lead chain; every eval fires once, at the end.
        let mut overrides = vec!["schedule={steps: 1}".to_string()];
        for eval in &plan(&file, &overrides).evals {
            overrides.push(format!("stages.{}.on=[fit_end]", eval.name));
        }
        let plan = plan(&file, &overrides);
        let listed = dispatch_plan(&plan, device()).unwrap();
        snapshot(&plan.name, &listed);
        // The plan's kernels by op come from the same fusion the step is built with: a
        // relu listed on its own dispatches its kernels, a folded one none.
        for (op, kernel) in [
            ("relu.forward", "relu_forward"),
            ("relu.backward", "relu_backward"),
        ] {
            let planned = plan
                .kernels
                .iter()
                .filter(|k| k.rsplit(": ").next() == Some(op))
                .count();
            let dispatched = listed
                .chains
                .iter()
                .flat_map(|c| &c.step)
                .filter(|d| d.kernel == kernel)
                .count();
            assert_eq!(
                planned,
                dispatched,
                "{}: {op} in {:?}",
                file.display(),
                plan.kernels
            );
        }
        let out = std::env::temp_dir().join(format!(
            "engine-dispatches-{}-{}",
            plan.name,
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&out);
        let options = RunOptions {
            out_dir: out.clone(),
            device: device(),
            quiet: true,
            record_dispatches: true,
            ..RunOptions::default()
        };
        let summary = run_plan(&plan, &options).unwrap();
        let _ = std::fs::remove_dir_all(&out);

        // Training: one tick per micro-batch of the lead chain's step, each chain in plan
        // order; a micro-batch inside an accumulation group stops before the update.
        let ticks = plan.chains[0].train.accumulation_steps as usize;
        let mut expected = Vec::new();
        for tick in 0..ticks {
            for (chain, c) in listed.chains.iter().zip(&plan.chains) {
                let completes = (tick + 1) % c.train.accumulation_steps as usize == 0;
                let n = chain.step.len() - if completes { 0 } else { chain.update };
                expected.push(chain.step[..n].to_vec());
            }
        }
        let trained: Vec<_> = summary
            .recorded
            .iter()
            .filter(|(what, _)| *what == "train")
            .map(|(_, d)| d.clone())
            .collect();
        assert_eq!(
            trained,
            expected,
            "{}: training dispatches differ",
            file.display()
        );

        let evals: Vec<_> = summary
            .recorded
            .iter()
            .filter(|(what, _)| *what == "eval")
            .map(|(_, d)| d)
            .collect();
        for e in &listed.evals {
            assert!(
                evals.iter().any(|d| **d == e.batch),
                "{}: eval {} never ran its listed dispatches",
                file.display(),
                e.eval
            );
        }
        for d in &evals {
            assert!(
                listed.evals.iter().any(|e| e.batch == **d),
                "{}: an eval ran dispatches the plan does not list: {d:?}",
                file.display()
            );
        }
    }
}
