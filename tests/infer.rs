//! Using what was trained: `engine eval` reproduces a run's final test metrics exactly,
//! `engine predict` turns raw CSV rows into class names or values, `engine export` writes a
//! self-describing file both work from, and corrupt or mismatched models and data are
//! refused with exit 1 and a message naming what differs.
//! The adapter follows `ENGINE_TEST_BACKEND` (vulkan | gl | auto).

use std::path::{Path, PathBuf};
use std::process::Command;

fn device() -> String {
    std::env::var("ENGINE_TEST_BACKEND").unwrap_or_else(|_| "auto".into())
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "engine-infer-{}-{name}-{}",
        device(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `engine args… --device <test device>`: exit code, stdout, stderr.
fn engine(args: &[&str]) -> (i32, String, String) {
    let device = device();
    let mut all: Vec<&str> = args.to_vec();
    if args[0] != "export" {
        all.extend(["--device", &device]);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(&all)
        .output()
        .expect("engine runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn last_eval(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    text.lines()
        .rev()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["event"] == "eval")
        .unwrap()
}

fn train(pipeline: &str, out: &Path) {
    let text = out.display().to_string();
    let (code, _, stderr) = engine(&["run", pipeline, "--quiet", "--out", &text]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn iris_eval_predict_and_export() {
    let out = out_dir("iris");
    train("pipelines/iris.yaml", &out);
    let run = out.display().to_string();

    // `eval latest` adds up the test split as the run's eval did: the same bits.
    let (code, stdout, stderr) = engine(&["eval", "latest", "--run", &run, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let eval: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let record = last_eval(&out);
    assert_eq!(eval["summary"]["loss"], record["loss"]);
    assert_eq!(eval["summary"]["accuracy"], record["accuracy"]);
    assert_eq!(eval["summary"]["samples"], 30);
    let confusion: Vec<Vec<u64>> =
        serde_json::from_value(eval["report"]["confusion"].clone()).unwrap();
    assert_eq!(confusion.iter().flatten().sum::<u64>(), 30);

    // Predictions on the raw CSV (header, species column and all) name the species.
    let predictions = out.join("predictions.csv");
    let pred = predictions.display().to_string();
    let (code, _, stderr) = engine(&[
        "predict",
        "latest",
        "--run",
        &run,
        "--data",
        "pipelines/data/iris.csv",
        "--out",
        &pred,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let written = std::fs::read_to_string(&predictions).unwrap();
    let mut lines = written.lines();
    assert_eq!(
        lines.next(),
        Some("row,class,p_setosa,p_versicolor,p_virginica")
    );
    let truth: Vec<String> = std::fs::read_to_string("pipelines/data/iris.csv")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), truth.len());
    let mut right = 0;
    for (row, actual) in rows.iter().zip(&truth) {
        let cells: Vec<&str> = row.split(',').collect();
        let p: f64 = cells[2..].iter().map(|c| c.parse::<f64>().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-4, "probabilities sum to {p}: {row}");
        right += usize::from(cells[1] == actual);
    }
    assert!(
        right as f64 / truth.len() as f64 >= 0.9,
        "{right} of {} right",
        truth.len()
    );

    // The export alone predicts the same, and evaluates the same.
    let exported = out.join("iris.safetensors");
    let file = exported.display().to_string();
    let (code, stdout, stderr) = engine(&["export", "latest", "--run", &run, "--out", &file]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("with its card"), "{stdout}");
    let again = out.join("again.csv");
    let again_text = again.display().to_string();
    let (code, _, stderr) = engine(&[
        "predict",
        &file,
        "--data",
        "pipelines/data/iris.csv",
        "--out",
        &again_text,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&again).unwrap(), written);
    let (code, stdout, stderr) = engine(&["eval", &file, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let from_file: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(from_file["summary"]["loss"], record["loss"]);

    // The extension and an explicit format agree or it is an error (without `--format`
    // the extension chooses it; tests/new_user.rs).
    let onnx = out.join("iris.onnx").display().to_string();
    let (code, _, stderr) = engine(&[
        "export",
        "latest",
        "--run",
        &run,
        "--format",
        "safetensors",
        "--out",
        &onnx,
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("does not end in `.safetensors`"),
        "{stderr}"
    );

    // A corrupt export (its card altered) is refused, naming the file.
    let mut bytes = std::fs::read(&exported).unwrap();
    let at = bytes
        .windows(12)
        .position(|w| w == b"pipeline_dir")
        .unwrap();
    bytes[at] = b'X';
    let corrupt = out.join("corrupt.safetensors");
    std::fs::write(&corrupt, &bytes).unwrap();
    let corrupt_text = corrupt.display().to_string();
    let (code, _, stderr) = engine(&[
        "predict",
        &corrupt_text,
        "--data",
        "pipelines/data/iris.csv",
        "--out",
        &again_text,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("corrupt.safetensors") && stderr.contains("model card"),
        "{stderr}"
    );

    // Data without the model's columns: the missing column is named.
    let (code, _, stderr) = engine(&[
        "predict",
        &file,
        "--data",
        "pipelines/data/diabetes.csv",
        "--out",
        &again_text,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("`sepal_length`"), "{stderr}");

    // A label the model never saw, in an evaluation file, is named with its row.
    let unknown = out.join("unknown.csv");
    std::fs::write(
        &unknown,
        "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n6.0,3.0,4.8,1.8,virginia\n",
    )
    .unwrap();
    let unknown_text = unknown.display().to_string();
    let (code, _, stderr) = engine(&["eval", &file, "--data", &unknown_text]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("virginia") && stderr.contains("row 3"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn diabetes_predictions_are_in_the_targets_units() {
    let out = out_dir("diabetes");
    train("pipelines/diabetes_regression.yaml", &out);
    let run = out.display().to_string();
    let (code, stdout, stderr) = engine(&["eval", "latest", "--run", &run, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let eval: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let record = last_eval(&out);
    for key in ["mae", "rmse", "r2"] {
        assert_eq!(eval["summary"]["scores"][key], record[key], "{key}");
    }
    let predictions = out.join("p.jsonl");
    let pred = predictions.display().to_string();
    let (code, _, stderr) = engine(&[
        "predict",
        "latest",
        "--run",
        &run,
        "--data",
        "pipelines/data/diabetes.csv",
        "--out",
        &pred,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let values: Vec<f64> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["progression"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(values.len(), 442);
    // Progression runs 25-346 (mean 152); standardised outputs would sit around 0.
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    assert!((120.0..185.0).contains(&mean), "mean prediction {mean}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Whether `python3` can import onnxruntime and NumPy (CI installs them and sets
/// `ENGINE_REQUIRE_ONNX`, so there the check cannot be skipped).
fn python_with_onnxruntime() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import numpy, onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("ENGINE_REQUIRE_ONNX").is_some() {
        panic!("ENGINE_REQUIRE_ONNX is set but python3 cannot import numpy and onnxruntime");
    }
    ok
}

/// `engine export --format onnx` of the MLP (iris), CNN, residual MLP and ResNet (batch
/// norm, residual adds, global pooling) digits examples and of the regression: onnxruntime
/// on the raw CSV rows agrees with `engine predict` within 1e-4 (tests/python/onnx_check.py).
#[test]
fn onnx_exports_agree_with_engine_predict() {
    if !python_with_onnxruntime() {
        eprintln!("skipped: python3 with numpy and onnxruntime is not available");
        return;
    }
    let digits = std::fs::canonicalize("pipelines/data/digits.csv.gz").unwrap();
    let cases = [
        ("iris", "pipelines/data/iris.csv", "data/iris.csv"),
        (
            "diabetes_regression",
            "pipelines/data/diabetes.csv",
            "data/diabetes.csv",
        ),
        (
            "digits_cnn",
            "pipelines/data/digits.csv.gz",
            "data/digits.csv.gz",
        ),
        (
            "digits_residual_mlp",
            "pipelines/data/digits.csv.gz",
            "data/digits.csv.gz",
        ),
        (
            "digits_resnet",
            "pipelines/data/digits.csv.gz",
            "data/digits.csv.gz",
        ),
    ];
    for (example, data, relative) in cases {
        let out = out_dir(&format!("onnx-{example}"));
        std::fs::create_dir_all(&out).unwrap();
        // The example with its data path made absolute, one epoch (only agreement is
        // checked here), and a checkpoint at the end.
        let data_path = std::fs::canonicalize(data).unwrap_or_else(|_| digits.clone());
        let mut text = std::fs::read_to_string(format!("pipelines/{example}.yaml"))
            .unwrap()
            .replace(relative, &data_path.display().to_string());
        if !text.contains("type: checkpoint") {
            text.push_str("\n  - {id: save_onnx, kind: callback, callback: {type: checkpoint}, on: [fit_end]}\n");
        }
        let pipeline = out.join(format!("{example}.yaml"));
        std::fs::write(&pipeline, text).unwrap();
        let run = out.join("run");
        let (p, r) = (pipeline.display().to_string(), run.display().to_string());
        let (code, _, stderr) = engine(&[
            "run",
            &p,
            "--quiet",
            "--out",
            &r,
            "--set",
            "schedule.epochs=1",
        ]);
        assert_eq!(code, 0, "{example}: {stderr}");
        let onnx = out.join("model.onnx").display().to_string();
        let (code, _, stderr) = engine(&[
            "export", "latest", "--run", &r, "--format", "onnx", "--out", &onnx,
        ]);
        assert_eq!(code, 0, "{example}: {stderr}");
        let predictions = out.join("p.jsonl").display().to_string();
        let (code, _, stderr) = engine(&[
            "predict",
            "latest",
            "--run",
            &r,
            "--data",
            data,
            "--out",
            &predictions,
        ]);
        assert_eq!(code, 0, "{example}: {stderr}");
        let check = Command::new("python3")
            .args(["tests/python/onnx_check.py", &onnx, data, &predictions])
            .output()
            .expect("python3 runs");
        assert!(
            check.status.success(),
            "{example}: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        eprint!("{}", String::from_utf8_lossy(&check.stdout));
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// A text column one-hot encoded: its vocabulary comes from the train file, is listed by
/// `engine plan`, travels in the card, and a value outside it is refused by `predict` with
/// its row; quoted cells with commas are read as one cell.
#[test]
fn categorical_features_are_one_hot_encoded_and_stored() {
    let out = out_dir("categorical");
    std::fs::create_dir_all(&out).unwrap();
    // `buy` is yes for red items and for large green ones: learnable only through `color`.
    let mut csv = String::from("name,size,color,buy\n");
    for i in 0..240 {
        let color = ["red", "green", "blue"][i % 3];
        let size = (i * 37 % 100) as f64 / 100.0;
        let buy = color == "red" || (color == "green" && size > 0.5);
        csv.push_str(&format!(
            "\"item {i}, batch {}\",{size},{color},{}\n",
            i / 10,
            if buy { "yes" } else { "no" }
        ));
    }
    std::fs::write(out.join("shop.csv"), &csv).unwrap();
    let pipeline = "version: 1\nname: shop\nseed: 1\nschedule: {epochs: 60}\ndatasets:\n  shop:\n    source: {kind: csv, path: shop.csv, header: true, features: [size], categorical: [color], label: buy}\n    split: {kind: fraction, train: 0.75, test: 0.25}\nmodels:\n  mlp:\n    input: [4]\n    layers:\n      - linear: {out: 16}\n      - relu\n      - linear: {out: 2}\nstages:\n  - {id: batch, kind: load, dataset: shop, split: train, batch_size: 16}\n  - {id: fwd, kind: forward, model: mlp, input: batch.features}\n  - {id: loss, kind: loss, fn: cross_entropy, logits: fwd.logits, target: batch.labels}\n  - {id: grads, kind: backward, loss: loss.loss}\n  - {id: step, kind: step, grads: grads.grads, optimizer: {kind: adam, lr: 0.02}}\n  - {id: test, kind: eval, model: mlp, dataset: shop, split: test, metrics: [loss, accuracy, f1]}\n  - {id: metrics, kind: callback, callback: {type: metrics}, after: [test]}\n  - {id: save, kind: callback, callback: {type: checkpoint}, on: [fit_end]}\n";
    let file = out.join("shop.yaml");
    std::fs::write(&file, pipeline).unwrap();
    let file_text = file.display().to_string();
    let (code, stdout, stderr) = engine(&["plan", &file_text]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("categories of shop.color (one-hot, 3 features): blue, green, red"),
        "{stdout}"
    );
    let run = out.join("run");
    train(&file_text, &run);
    let accuracy = last_eval(&run)["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.9, "test accuracy {accuracy}");
    let r = run.display().to_string();
    let new = out.join("new.csv");
    std::fs::write(
        &new,
        "name,color,size\n\"a, b\",red,0.1\nc,blue,0.9\nd,green,0.9\n",
    )
    .unwrap();
    let pred = out.join("p.csv").display().to_string();
    let new_text = new.display().to_string();
    let (code, _, stderr) = engine(&[
        "predict", "latest", "--run", &r, "--data", &new_text, "--out", &pred,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let classes: Vec<String> = std::fs::read_to_string(&pred)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(classes, ["yes", "no", "yes"]);
    std::fs::write(&new, "name,color,size\nx,purple,0.1\n").unwrap();
    let (code, _, stderr) = engine(&[
        "predict", "latest", "--run", &r, "--data", &new_text, "--out", &pred,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("row 2")
            && stderr.contains("`purple`")
            && stderr.contains("blue, green, red"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
