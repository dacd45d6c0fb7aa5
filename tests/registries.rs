//! The registry walk (issue 16): every family's names are unique and are exactly what the
//! schema offers; every member that computes has its kernel file and agrees with its CPU
//! reference; every LR schedule gives finite, positive rates. A new member is covered
//! here without a test of its own. (Layers are walked in ops/tests/gpu_ops.rs, the docs
//! in tests/docs_cover.rs.)

use std::path::Path;

use engine::spec::{
    AggregatorSpec, CallbackSpec, LR_SCHEDULES, LossFn, LrSchedule, OPTIMIZERS, OptimizerSpec,
    PartitionSpec, SourceSpec,
};
use serde_json::{Value, json};

fn schema() -> Value {
    serde_json::from_str(&engine::schema::pipeline_schema()).unwrap()
}

/// The names the schema offers for a family: variant titles (or enum values).
fn offered(schema: &Value, family: &str) -> Vec<String> {
    let def = &schema["$defs"][family];
    match def["oneOf"].as_array() {
        Some(variants) => variants
            .iter()
            .map(|v| v["title"].as_str().unwrap_or_default().to_string())
            .collect(),
        None => def["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{family} is neither oneOf nor enum"))
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
    }
}

#[test]
fn every_family_has_unique_names_and_the_schema_offers_exactly_them() {
    let schema = schema();
    let families: Vec<(&str, Vec<&str>)> = vec![
        ("CallbackSpec", CallbackSpec::names().to_vec()),
        ("SourceSpec", SourceSpec::names().to_vec()),
        ("LossFn", LossFn::names().to_vec()),
        ("OptimizerSpec", OptimizerSpec::names().to_vec()),
        ("LrSchedule", LrSchedule::names().to_vec()),
        ("AggregatorSpec", AggregatorSpec::NAMES.to_vec()),
        ("PartitionSpec", PartitionSpec::NAMES.to_vec()),
    ];
    for (family, names) in families {
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            names.len(),
            "{family}: a name twice in {names:?}"
        );
        let mut offered = offered(&schema, family);
        offered.sort_unstable();
        assert_eq!(
            offered, unique,
            "{family}: the schema and the parser disagree"
        );
    }
    // Layers are offered bare, as a one-key map, or both.
    let mut layers = offered(&schema, "LayerSpec");
    layers.sort_unstable();
    layers.dedup();
    let mut kinds = ops::layer::LAYER_KINDS.to_vec();
    kinds.sort_unstable();
    assert_eq!(layers, kinds);
}

#[test]
fn every_member_that_computes_has_its_kernel() {
    let shader = |name: &str| Path::new("shaders").join(format!("{name}.wgsl"));
    for name in LossFn::names() {
        assert!(
            shader(name).exists(),
            "loss `{name}` has no shaders/{name}.wgsl"
        );
    }
    for entry in OPTIMIZERS {
        let spec: OptimizerSpec =
            serde_json::from_value(json!({"kind": entry.name, "lr": 0.01})).unwrap();
        let kernel = spec.lower().kernel();
        // adamw is adam's kernel, specialised.
        let file = if kernel == "adamw" { "adam" } else { kernel };
        assert!(
            shader(file).exists(),
            "optimizer `{}` has no shaders/{file}.wgsl",
            entry.name
        );
    }
    for name in AggregatorSpec::NAMES {
        assert!(
            shader(name).exists(),
            "aggregator `{name}` has no shaders/{name}.wgsl"
        );
    }
}

#[test]
fn every_optimizer_kernel_agrees_with_its_cpu_reference() {
    for entry in OPTIMIZERS {
        let mut settings = vec![json!({"kind": entry.name, "lr": 0.01})];
        // With its optional state and decay where it has them.
        let full = match entry.name {
            "sgd" => {
                json!({"kind": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 1e-3})
            }
            _ => json!({"kind": entry.name, "lr": 0.01, "weight_decay": 0.01}),
        };
        settings.push(full);
        for s in settings {
            let spec: OptimizerSpec = serde_json::from_value(s.clone()).unwrap();
            engine::testing::check_optimizer_spec(&spec).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }
}

/// Every loss computed by one fused kernel (built-in or registered) against its CPU
/// reference and finite differences, with default and with written settings. Cross
/// entropy and distillation bind more and are checked in ops/tests (gpu_train, frozen).
#[test]
fn every_fused_loss_kernel_agrees_with_its_cpu_reference() {
    use engine::losses::LossSettings;
    use ops::train::LossKind;
    let mut checked = Vec::new();
    for f in LossFn::all() {
        let written = LossSettings {
            delta: Some(0.5),
            ..LossSettings::default()
        };
        for settings in [LossSettings::default(), written] {
            if !f.row().keys.contains(&"delta") && settings.delta.is_some() {
                continue;
            }
            if let LossKind::Fused(loss) = f.lower(&settings).unwrap() {
                engine::testing::check_fused_loss(&loss)
                    .unwrap_or_else(|e| panic!("{}: {e}", f.as_str()));
                checked.push(f.as_str());
            }
        }
    }
    assert!(
        checked.contains(&"mse") && checked.contains(&"huber"),
        "{checked:?}"
    );
}

#[test]
fn every_lr_schedule_gives_finite_positive_rates() {
    for entry in LR_SCHEDULES {
        // The first of a few settings it accepts (each built-in takes one of them).
        let candidates = [
            json!({}),
            json!({"warmup_steps": 5}),
            json!({"every": 7, "gamma": 0.5}),
        ];
        let json = candidates
            .iter()
            .map(|c| {
                let mut j = c.clone();
                j["kind"] = json!(entry.name);
                j
            })
            .find(|j| serde_json::from_value::<LrSchedule>(j.clone()).is_ok())
            .unwrap_or_else(|| panic!("{}: none of {candidates:?} parses", entry.name));
        let schedule: LrSchedule =
            serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{}: {e}", entry.name));
        assert!(schedule.bounds().0.iter().all(|b| b.ok), "{json}");
        for step in [0, 1, 4, 5, 50, 99] {
            let lr = schedule.lr_at(0.1, step, 100);
            assert!(
                lr.is_finite() && lr > 0.0 && lr <= 0.1 + 1e-12,
                "{json} at step {step}: {lr}"
            );
        }
    }
}
