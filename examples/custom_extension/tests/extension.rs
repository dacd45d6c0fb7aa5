//! The example extension crate as its users meet it: the focal kernel against its CPU
//! reference, `custom_engine validate` locating mistakes in the extensions' settings,
//! its schema listing them, and a run that trains with all three.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use custom_extension::{Focal, Libsvm, Lion, Swish};
use serde_json::json;

const PIPELINE: &str = "pipelines/digits_focal.yaml";

fn custom_engine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custom_engine"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("custom_engine starts")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A scratch directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("custom-extension-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The example pipeline with one line replaced, written next to the original (its data
/// path is relative to it).
fn variant(name: &str, from: &str, to: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let original = std::fs::read_to_string(dir.join("digits_focal.yaml")).unwrap();
    assert!(original.contains(from), "{from}");
    let path = dir.join(format!(".test-{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, original.replace(from, to)).unwrap();
    path
}

fn line_of(path: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    1 + text.lines().position(|l| l.contains(needle)).unwrap()
}

#[test]
fn focal_kernel_agrees_with_its_cpu_reference() {
    for params in [
        json!({}),
        json!({"gamma": 0.0}),
        json!({"gamma": 0.5, "alpha": 0.25}),
        json!({"gamma": 5.0}),
    ] {
        engine::testing::check_loss::<Focal>(params.clone())
            .unwrap_or_else(|e| panic!("focal {params}: {e}"));
    }
}

#[test]
fn swish_kernels_agree_with_their_cpu_reference() {
    for (settings, batch, input) in [
        (json!({}), 3, vec![37]),
        (json!({"beta": 0.5}), 5, vec![2, 7, 3]),
        (json!({"beta": 0.0}), 1, vec![130]),
    ] {
        engine::testing::check_layer::<Swish>(settings.clone(), batch, &input)
            .unwrap_or_else(|e| panic!("swish {settings} on {batch} x {input:?}: {e}"));
    }
}

#[test]
fn lion_kernel_agrees_with_its_cpu_reference() {
    for settings in [
        json!({"lr": 0.001}),
        json!({"lr": 0.01, "betas": [0.5, 0.9], "weight_decay": 0.1}),
    ] {
        engine::testing::check_optimizer::<Lion>(settings.clone())
            .unwrap_or_else(|e| panic!("lion {settings}: {e}"));
    }
    // Out-of-range settings are refused before anything runs.
    let err = engine::testing::check_optimizer::<Lion>(json!({"lr": 0.001, "betas": [1.5, 0.9]}));
    assert!(err.is_err_and(|e| e.contains("betas.0")));
}

#[test]
fn trains_digits_with_lion() {
    let csv = run_example(
        "lion",
        "stages.step.optimizer={kind: lion, lr: 0.0003, weight_decay: 0.1}",
    );
    let last = csv.lines().last().unwrap();
    let accuracy: f64 = last.rsplit(',').next().unwrap().parse().unwrap();
    // Adam with the same schedule reaches 98.1% (docs/extending.md).
    assert!(accuracy >= 0.95, "{csv}");
}

#[test]
fn focal_with_gamma_zero_is_cross_entropy() {
    use engine::extend::{Loss, Tensor, Truth};
    let mut rng = ops::rng::Rng::new(3);
    let y = Tensor {
        shape: vec![9, 6],
        data: rng.vec_uniform(54, -4.0, 4.0),
    };
    let labels: Vec<u32> = (0..9).map(|_| rng.below(6) as u32).collect();
    let spec = serde_json::from_value(json!({"gamma": 0.0})).unwrap();
    let focal = Focal::cpu(&spec, &y, Truth::Classes(&labels), 8);
    let ce = ops::loss::cross_entropy::cross_entropy_cpu(&y, &labels, 8, 0.0);
    assert!((focal.loss_sum - ce.loss_sum).abs() < 1e-5 * ce.loss_sum);
    assert_eq!(
        (focal.correct, focal.top5_correct),
        (ce.correct, ce.top5_correct)
    );
    for (f, c) in focal.grad.data.iter().zip(&ce.grad.data) {
        assert!((f - c).abs() < 1e-5, "{f} vs {c}");
    }
}

#[test]
fn validate_locates_mistakes_in_the_extensions_settings() {
    let ok = custom_engine(&["validate", PIPELINE]);
    assert!(ok.status.success(), "{}", text(&ok));
    // Each mistake, the key it must be reported at, and what the message says.
    let cases = [
        (
            "params",
            "params: {gamma: 2.0}",
            "params: {gama: 2.0}",
            "gama",
            "gamma",
        ),
        (
            "gamma",
            "params: {gamma: 2.0}",
            "params: {gamma: 12.0}",
            "gamma: 12.0",
            "[0, 10]",
        ),
        (
            "file",
            "type: csv_log, file: epochs.csv",
            "type: csv_log, file: ../epochs.csv",
            "file: ../epochs.csv",
            "plain file name",
        ),
        (
            "csv_key",
            "type: csv_log, file: epochs.csv",
            "type: csv_log, fiel: epochs.csv",
            "fiel: epochs.csv",
            "fiel",
        ),
        (
            "features",
            "features: 64",
            "features: 0",
            "features: 0",
            "at least 1",
        ),
        (
            "source_path",
            "path: ../data/digits.svm.gz",
            "path: ../data/nope.svm",
            "  kind: libsvm",
            "nope.svm",
        ),
        (
            "loss_name",
            "    fn: focal",
            "    fn: focl",
            "    fn: focl",
            "focal",
        ),
    ];
    for (name, from, to, at, says) in cases {
        let path = variant(name, from, to);
        let out = custom_engine(&["validate", path.to_str().unwrap()]);
        let shown = text(&out);
        let line = line_of(&path, at);
        let _ = std::fs::remove_file(&path);
        assert_eq!(out.status.code(), Some(1), "{name}: {shown}");
        let file = path.file_name().unwrap().to_string_lossy();
        assert!(
            shown.contains(&format!("{file}:{line}:")),
            "{name}: expected a diagnostic at line {line}:\n{shown}"
        );
        assert!(
            shown.contains(says),
            "{name}: expected `{says}` in:\n{shown}"
        );
    }
}

#[test]
fn schema_lists_the_extensions() {
    let out = custom_engine(&["schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let titles = |family: &str| -> Vec<String> {
        schema["$defs"][family]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["title"].as_str().map(str::to_string))
            .collect()
    };
    assert!(titles("LossFn").contains(&"focal".to_string()));
    assert!(titles("CallbackSpec").contains(&"csv_log".to_string()));
    assert!(titles("CallbackSpec").contains(&"log".to_string()));
    assert!(titles("SourceSpec").contains(&"libsvm".to_string()));
    // A layer whose settings all have defaults is offered bare and as a one-key map.
    let swish = titles("LayerSpec").iter().filter(|t| *t == "swish").count();
    assert_eq!(swish, 2);
    let libsvm = schema["$defs"]["SourceSpec"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["title"] == "libsvm")
        .unwrap();
    assert_eq!(libsvm["properties"]["features"]["minimum"], 1);
    assert_eq!(libsvm["additionalProperties"], false);
}

/// Runs `pipeline` into `out_dir` on the adapter `ENGINE_TEST_BACKEND` names, with
/// `--set` overrides and further arguments (e.g. `--resume PATH`).
fn run_into(out_dir: &Path, pipeline: &str, sets: &[&str], extra: &[&str]) {
    let device = std::env::var("ENGINE_TEST_BACKEND").unwrap_or_else(|_| "auto".into());
    let out_arg = out_dir.display().to_string();
    let mut args = vec![
        "run", pipeline, "--quiet", "--device", &device, "--out", &out_arg,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    args.extend(extra);
    let out = custom_engine(&args);
    assert!(out.status.success(), "{}", text(&out));
}

/// Runs an example pipeline with one `--set` into a scratch directory; returns the CSV
/// file `csv` the callback wrote.
fn run_pipeline(pipeline: &str, name: &str, set: &str, csv: &str) -> String {
    let out_dir = scratch(name);
    run_into(&out_dir, pipeline, &[set], &[]);
    let csv = std::fs::read_to_string(out_dir.join(csv)).unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    csv
}

fn run_example(name: &str, set: &str) -> String {
    run_pipeline(PIPELINE, name, set, "epochs.csv")
}

#[test]
fn trains_digits_with_the_focal_loss_and_logs_a_csv() {
    let csv = run_example("run", "schedule.epochs=12");
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "step",
            "epoch",
            "train.step.loss",
            "train.step.accuracy",
            "test.loss",
            "test.accuracy"
        ]
    );
    assert_eq!(rows.len(), 1 + 12, "{csv}");
    let accuracy: f64 = rows[12][5].parse().unwrap();
    // The same MLP with cross entropy reaches 97.8% after 40 epochs (data/README.md).
    assert!(
        accuracy >= 0.95,
        "test accuracy {accuracy} after 12 epochs:\n{csv}"
    );
    let first_loss: f64 = rows[1][2].parse().unwrap();
    let last_loss: f64 = rows[12][2].parse().unwrap();
    assert!(last_loss < first_loss / 10.0, "{csv}");
}

#[test]
fn a_callback_decision_stops_the_run() {
    let csv = run_example(
        "stop",
        "stages.csv.callback={type: csv_log, file: epochs.csv, stop_at: 0.85, eval: test}",
    );
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(rows.len() < 30, "ran all 30 epochs:\n{csv}");
    let last: f64 = rows
        .last()
        .unwrap()
        .rsplit(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let before: f64 = rows[rows.len().saturating_sub(2)]
        .rsplit(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(last >= 0.85, "{csv}");
    assert!(
        rows.len() == 1 || before < 0.85,
        "did not stop at the first epoch past 0.85:\n{csv}"
    );
}

#[test]
fn a_registered_callback_fires_at_round_ends_in_a_federated_run() {
    let csv = run_pipeline(
        "pipelines/digits_federated.yaml",
        "federated",
        "schedule.rounds=6",
        "rounds.csv",
    );
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 1 + 6, "{csv}");
    // `epoch` counts rounds; the test accuracy of the global model is in each row.
    let rounds: Vec<&str> = rows[1..].iter().map(|r| r[1]).collect();
    assert_eq!(rounds, ["0", "1", "2", "3", "4", "5"], "{csv}");
    let first: f64 = rows[1][5].parse().unwrap();
    let last: f64 = rows[6][5].parse().unwrap();
    assert!(last > first, "{csv}");
}

#[test]
fn a_registered_lr_schedule_drives_the_plan_and_the_run() {
    let out = custom_engine(&["plan", PIPELINE]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    let preview = plan
        .lines()
        .find(|l| l.starts_with("lr: "))
        .unwrap_or_else(|| panic!("no LR preview in:\n{plan}"));
    // "lr: step 0 1.200000e-4 (first), ..., step 1349 1.200000e-8 (last)"
    let value = |label: &str| -> f64 {
        let part = preview.split(", ").find(|p| p.ends_with(label)).unwrap();
        part.split_whitespace()
            .nth_back(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    let lr = 0.003;
    // 1cycle starts at lr / div_factor and ends at that over final_div_factor.
    assert!((value("(first)") - lr / 25.0).abs() < 1e-9, "{preview}");
    assert!(
        (value("(last)") - lr / 25.0 / 1e4).abs() < 1e-12,
        "{preview}"
    );
    assert!(value("(middle)") > value("(first)"), "{preview}");
}

/// Cohen's kappa as the metric reports it, recomputed here from the confusion matrix the
/// engine itself records for the same eval.
#[test]
fn a_registered_metric_is_recorded_and_agrees_with_the_confusion_matrix() {
    let out_dir = scratch("kappa");
    run_into(
        &out_dir,
        PIPELINE,
        &[
            "schedule.epochs=3",
            "stages.test.metrics=[loss, accuracy, cohen_kappa, confusion]",
        ],
        &[],
    );
    let metrics = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
    let record: serde_json::Value = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|r| r["event"] == "eval")
        .unwrap();
    let reported = record["cohen_kappa"].as_f64().unwrap();
    let confusion: Vec<Vec<f64>> = serde_json::from_value(record["confusion"].clone()).unwrap();
    let total: f64 = confusion.iter().flatten().sum();
    let observed: f64 = (0..confusion.len()).map(|c| confusion[c][c]).sum::<f64>() / total;
    let chance: f64 = (0..confusion.len())
        .map(|c| {
            let actual: f64 = confusion[c].iter().sum();
            let predicted: f64 = confusion.iter().map(|row| row[c]).sum();
            actual * predicted
        })
        .sum::<f64>()
        / (total * total);
    let kappa = (observed - chance) / (1.0 - chance);
    assert!((reported - kappa).abs() < 1e-12, "{reported} vs {kappa}");
    assert!(reported > 0.5 && reported <= 1.0, "{reported}");
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// A registered callback's state is checkpointed: resuming from an earlier checkpoint
/// leaves the CSV exactly as one uninterrupted run writes it (csv_log drops the rows
/// written after the checkpoint it resumes from).
#[test]
fn a_registered_callback_resumes_exactly() {
    let run = |out_dir: &Path, resume: Option<&Path>| {
        let from = resume.map(|p| p.display().to_string());
        let extra: Vec<&str> = match &from {
            Some(p) => vec!["--resume", p],
            None => Vec::new(),
        };
        let sets = [
            "schedule.epochs=4",
            "stages.log.callback={type: checkpoint}",
        ];
        run_into(out_dir, PIPELINE, &sets, &extra);
        std::fs::read_to_string(out_dir.join("epochs.csv")).unwrap()
    };
    let straight = run(&scratch("straight"), None);
    let dir = scratch("resumed");
    let first = run(&dir, None);
    assert_eq!(first, straight, "two runs from one seed differ");
    // The checkpoint after epoch 2 of 4: the run goes on from there, into the same files.
    let mut checkpoints: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    checkpoints.sort();
    assert_eq!(checkpoints.len(), 4, "{checkpoints:?}");
    let resumed = run(&dir, Some(&checkpoints[1]));
    assert_eq!(resumed.lines().count(), 1 + 4, "{resumed}");
    assert_eq!(resumed, straight);
    for d in [scratch("straight"), dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// What an editor checks while typing: both example pipelines pass this binary's schema,
/// and a mistake in each kind of extension setting fails it.
#[test]
fn the_binarys_schema_accepts_its_pipelines_and_marks_mistakes() {
    let out = custom_engine(&["schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let doc = |text: &str| -> serde_json::Value {
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(text).unwrap()).unwrap()
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let focal = std::fs::read_to_string(dir.join("digits_focal.yaml")).unwrap();
    for name in ["digits_focal.yaml", "digits_federated.yaml"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc(&text))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    for (from, to) in [
        ("params: {gamma: 2.0}", "params: {gamma: -1.0}"),
        ("features: 64", "features: 0"),
        ("file: epochs.csv}", "file: epochs.csv, colour: red}"),
        ("- swish: {beta: 1.0}", "- swish: {beta: -1.0}"),
        (
            "{kind: adam, lr: 0.003}",
            "{kind: lion, lr: 0.003, betas: 0.9}",
        ),
    ] {
        assert!(focal.contains(from), "{from}");
        let wrong = doc(&focal.replace(from, to));
        assert!(!validator.is_valid(&wrong), "the schema accepts `{to}`");
    }
}

/// What `validate` reads of the LIBSVM file without parsing it is what loading it gives.
#[test]
fn the_libsvm_probe_agrees_with_loading() {
    use engine::extend::{Source, SourceProbe};
    let spec = serde_json::from_value(
        json!({"path": "data/digits.svm.gz", "features": 64, "classes": 10}),
    )
    .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let probed = Libsvm::probe(&spec, dir).unwrap().unwrap();
    let loaded = Libsvm::load(&spec, dir).unwrap();
    assert_eq!(probed, SourceProbe::of(&loaded));
    assert_eq!(probed.samples, 1797);
}
