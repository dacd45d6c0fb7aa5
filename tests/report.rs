//! The run report: charts with one point per record, no network references, each
//! diagnostic on a history crafted to trigger it, and located errors for bad metrics.

use std::path::{Path, PathBuf};

use engine::report::{
    FindingKind, MetricPoint, ReportError, RunInputs, diagnose, parse_metrics, render_report,
    write_report,
};
use serde_json::json;

const RESOLVED_YAML: &str = "# pipeline hash 0123abcd\nversion: 1\nname: synthetic_report\nseed: 11\nschedule: !epochs 10\nmodels:\n  net:\n    input:\n    - 16\n    layers:\n    - !linear\n      out: 8\n    - relu\n    - !linear\n      out: 4\nstages:\n- kind: load\n  id: batch\n  dataset: blobs\n  split: train\n  batch_size: 16\n- kind: loss\n  id: loss\n  fn: cross_entropy\n  label_smoothing: 0.1\n- kind: step\n  id: step\n  optimizer:\n    kind: adamw\n    lr: 0.003\n    weight_decay: 0.0001\n  clip_grad_norm: 1.0\n";

/// A fresh directory under the system temp dir, unique per test.
fn run_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("engine-report-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

fn train(step: u64, loss: f64, accuracy: f64, lr: f64) -> serde_json::Value {
    json!({"event": "train", "stage": "train", "split": "train", "step": step, "epoch": step / 10 - 1, "loss": loss,
           "accuracy": accuracy, "samples": 160, "lr": lr, "pipeline_hash": "0123abcd", "wall_time_s": step as f64 * 0.1})
}

fn eval(stage: &str, step: u64, loss: f64, accuracy: f64) -> serde_json::Value {
    json!({"event": "eval", "stage": stage, "split": stage, "step": step, "epoch": step / 10 - 1, "loss": loss,
           "accuracy": accuracy, "samples": 40, "pipeline_hash": "0123abcd", "wall_time_s": step as f64 * 0.1 + 0.01})
}

fn lines(records: &[serde_json::Value]) -> String {
    records.iter().map(|r| r.to_string() + "\n").collect()
}

/// Ten epochs that improve steadily, a val eval per epoch and one test eval at the end.
fn healthy() -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    for epoch in 1..=10u64 {
        let step = epoch * 10;
        let loss = 1.0 / epoch as f64;
        records.push(train(
            step,
            loss,
            0.6 + 0.035 * epoch as f64,
            0.003 / epoch as f64,
        ));
        records.push(eval("val", step, loss * 1.1, 0.58 + 0.035 * epoch as f64));
    }
    records.push(eval("test", 100, 0.11, 0.93));
    records
}

fn points(text: &str) -> Vec<MetricPoint> {
    parse_metrics(text, Path::new("metrics.jsonl")).expect("synthetic metrics parse")
}

fn kinds(records: &[serde_json::Value]) -> Vec<FindingKind> {
    diagnose(&points(&lines(records)))
        .into_iter()
        .map(|f| f.kind)
        .collect()
}

/// The `<svg>` of one chart.
fn chart<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("data-chart=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} chart"));
    let end = html[start..].find("</svg>").expect("svg is closed") + start;
    &html[start..end]
}

/// Number of points of the series' polyline in the chart.
fn point_count(svg: &str, series: &str) -> usize {
    let start = svg
        .find(&format!("data-series=\"{series}\""))
        .unwrap_or_else(|| panic!("no {series} polyline in {svg}"));
    let attr =
        svg[start..].find("points=\"").expect("polyline has points") + start + "points=\"".len();
    let end = svg[attr..].find('"').expect("attribute is closed") + attr;
    svg[attr..end].split_whitespace().count()
}

#[test]
fn healthy_run_charts_every_record_and_finds_no_problem() {
    let dir = run_dir("healthy");
    std::fs::write(dir.join("metrics.jsonl"), lines(&healthy())).expect("write metrics");
    std::fs::write(dir.join("pipeline.resolved.yaml"), RESOLVED_YAML).expect("write yaml");
    let path = write_report(&dir).expect("report is written without plan.txt or run.json");
    assert_eq!(path, dir.join("report.html"));
    let html = std::fs::read_to_string(&path).expect("report is readable");

    assert_eq!(
        html.matches("<svg").count(),
        3,
        "one chart each for loss, accuracy and lr"
    );
    let loss = chart(&html, "loss");
    assert_eq!(
        (
            point_count(loss, "train"),
            point_count(loss, "val"),
            point_count(loss, "test")
        ),
        (10, 10, 1)
    );
    let accuracy = chart(&html, "accuracy");
    assert_eq!(
        (
            point_count(accuracy, "train"),
            point_count(accuracy, "val"),
            point_count(accuracy, "test")
        ),
        (10, 10, 1)
    );
    let lr = chart(&html, "lr");
    assert_eq!(point_count(lr, "train"), 10);
    assert!(
        !lr.contains("data-series=\"val\""),
        "evals have no learning rate"
    );

    assert!(
        html.contains("No problems found"),
        "healthy history has findings"
    );
    assert!(diagnose(&points(&lines(&healthy()))).is_empty());
    for expected in [
        "synthetic_report",
        "0123abcd",
        "adamw",
        "0.003",
        "linear(out=8)",
        "10 epochs",
        "cross_entropy",
    ] {
        assert!(html.contains(expected), "report lacks {expected}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_report_references_nothing_on_the_network() {
    let inputs = RunInputs {
        metrics: points(&lines(&healthy())),
        resolved_yaml: Some(RESOLVED_YAML.into()),
        ..Default::default()
    };
    let html = render_report(&inputs);
    let svg_namespace = "http://www.w3.org/2000/svg";
    let stripped = html.replace(svg_namespace, "");
    assert!(
        !stripped.contains("http://") && !stripped.contains("https://"),
        "network reference in report"
    );
    for tag in ["<script", "<link", "<img", "@import", "url("] {
        assert!(!html.contains(tag), "report contains {tag}");
    }
}

#[test]
fn plan_and_run_summary_are_shown_when_present() {
    let dir = run_dir("full");
    std::fs::write(dir.join("metrics.jsonl"), lines(&healthy())).expect("write metrics");
    std::fs::write(
        dir.join("plan.txt"),
        "plan synthetic_report\n  1. batch (load) -> features [16, 16] <x>\n",
    )
    .expect("write plan");
    std::fs::write(dir.join("run.json"), r#"{"adapter": "llvmpipe (vulkan)", "samples_per_second": 1234.5, "steps": 100, "wall_time_s": 12.5}"#).expect("write run.json");
    let html = std::fs::read_to_string(write_report(&dir).expect("report")).expect("read report");
    assert!(
        html.contains(
            "<pre>plan synthetic_report\n  1. batch (load) -&gt; features [16, 16] &lt;x&gt;</pre>"
        ),
        "plan is verbatim and escaped"
    );
    assert!(
        html.contains("llvmpipe (vulkan)")
            && html.contains("1235 samples/s")
            && html.contains("12.5 s")
    );
    assert!(html.contains("pipeline.resolved.yaml is not in the run directory"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plateau_fires_when_val_loss_stops_improving() {
    let mut records = Vec::new();
    for (i, loss) in [1.0, 0.8, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75]
        .into_iter()
        .enumerate()
    {
        let step = (i as u64 + 1) * 10;
        records.push(train(step, loss * 0.9, 0.9, 0.001));
        records.push(eval("val", step, loss, 0.88));
    }
    let findings = diagnose(&points(&lines(&records)));
    let plateau = findings
        .iter()
        .find(|f| f.kind == FindingKind::Plateau)
        .expect("plateau found");
    assert!(
        plateau.message.contains("last 5 evaluations")
            && plateau.message.contains("0.7 at step 30"),
        "{}",
        plateau.message
    );
}

#[test]
fn divergence_fires_when_loss_triples_its_best() {
    let records: Vec<_> = [2.0, 1.0, 0.5, 0.6, 1.8]
        .into_iter()
        .enumerate()
        .map(|(i, loss)| train((i as u64 + 1) * 10, loss, 0.5, 0.1))
        .collect();
    let findings = diagnose(&points(&lines(&records)));
    let divergence = findings
        .iter()
        .find(|f| f.kind == FindingKind::Divergence)
        .expect("divergence found");
    assert!(
        divergence.message.contains("1.8 at step 50") && divergence.message.contains("3.6×"),
        "{}",
        divergence.message
    );
}

#[test]
fn non_finite_loss_is_reported_and_left_out_of_the_chart() {
    // serde_json writes NaN and infinity as null.
    let mut records = healthy();
    records[4]["loss"] = serde_json::Value::Null;
    let metrics = points(&lines(&records));
    assert!(metrics[4].loss.is_nan());
    let findings = diagnose(&metrics);
    let non_finite = findings
        .iter()
        .find(|f| f.kind == FindingKind::NonFinite)
        .expect("non-finite found");
    assert!(
        non_finite.message.contains("step 30"),
        "{}",
        non_finite.message
    );
    let html = render_report(&RunInputs {
        metrics,
        ..Default::default()
    });
    assert_eq!(point_count(chart(&html, "loss"), "train"), 9);
    assert!(html.contains("class=\"non-finite\""));
}

#[test]
fn generalisation_gap_fires_on_accuracy_or_loss() {
    let records = vec![train(10, 0.05, 0.99, 0.01), eval("val", 10, 0.4, 0.85)];
    let findings = diagnose(&points(&lines(&records)));
    let gap = findings
        .iter()
        .find(|f| f.kind == FindingKind::GeneralisationGap)
        .expect("gap found");
    assert!(
        gap.message.contains("14.0 points") && gap.message.contains("8.0×"),
        "{}",
        gap.message
    );
    assert_eq!(
        kinds(&[train(10, 0.3, 0.95, 0.01), eval("val", 10, 0.32, 0.93)]),
        []
    );
}

#[test]
fn a_corrupt_metrics_line_is_an_error_naming_the_line() {
    let dir = run_dir("corrupt");
    let mut text = lines(&healthy()[..2]);
    text.push_str("{\"event\": \"train\", \"stage\": \n");
    std::fs::write(dir.join("metrics.jsonl"), text).expect("write metrics");
    let error = write_report(&dir).expect_err("corrupt metrics are an error");
    assert!(
        matches!(error, ReportError::Metrics { line: 3, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("metrics.jsonl") && message.contains("line 3"),
        "{message}"
    );
    assert!(!dir.join("report.html").exists());

    let missing = run_dir("missing");
    let error = write_report(&missing).expect_err("missing metrics are an error");
    assert!(error.to_string().contains("metrics.jsonl"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&missing);
}

#[test]
fn broken_optional_files_become_notes() {
    let dir = run_dir("notes");
    std::fs::write(dir.join("metrics.jsonl"), lines(&healthy())).expect("write metrics");
    std::fs::write(
        dir.join("pipeline.resolved.yaml"),
        "# pipeline hash 0123abcd\nname: [unclosed\n",
    )
    .expect("write yaml");
    std::fs::write(dir.join("run.json"), "{not json").expect("write run.json");
    let html = std::fs::read_to_string(write_report(&dir).expect("report")).expect("read report");
    assert!(html.contains("not valid YAML") && html.contains("not valid run.json"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn losses_spanning_decades_use_a_log_scale() {
    let records: Vec<_> = [100.0, 10.0, 1.0, 0.1, 0.01]
        .into_iter()
        .enumerate()
        .map(|(i, loss)| train((i as u64 + 1) * 10, loss, 0.5, 0.1))
        .collect();
    let html = render_report(&RunInputs {
        metrics: points(&lines(&records)),
        ..Default::default()
    });
    assert!(chart(&html, "loss").contains("loss (log scale)"));
    assert!(!chart(&html, "accuracy").contains("log scale"));
}

#[test]
fn extreme_values_render_without_panicking() {
    let text = concat!(
        "{\"event\":\"train\",\"stage\":\"train\",\"step\":18446744073709551615,\"epoch\":18446744073709551615,\"loss\":1.7e308,\"accuracy\":-3,\"lr\":-1e308}\n",
        "{\"event\":\"train\",\"stage\":\"train\",\"step\":0,\"loss\":-1.7e308,\"lr\":0}\n",
        "{\"event\":\"eval\",\"stage\":\"<script>\",\"split\":\"x\",\"step\":1,\"loss\":0}\n",
        "{\"event\":\"something_new\",\"stage\":\"later\",\"step\":1,\"loss\":1}\n",
    );
    let metrics = points(text);
    let _ = diagnose(&metrics);
    let html = render_report(&RunInputs {
        metrics,
        resolved_yaml: Some("- just\n- a list\n".into()),
        plan: Some("</pre><script>".into()),
        ..Default::default()
    });
    assert!(!html.contains("<script"), "user text is escaped");
}

#[test]
fn class_scores_and_the_confusion_matrix_are_shown() {
    let dir = run_dir("scores");
    let mut records = healthy();
    let mut last = eval("test", 100, 0.2, 0.9);
    last["f1"] = json!(0.875);
    last["roc_auc"] = json!(0.96);
    // A metric a binary registered (examples/custom_extension's Cohen's kappa).
    last["cohen_kappa"] = json!(0.8);
    last["per_class"] = json!([
        {"class": "benign", "precision": 0.9, "recall": 0.95, "f1": 0.92, "support": 20},
        {"class": "<malignant>", "precision": 0.85, "recall": 0.8, "f1": 0.83, "support": 20}
    ]);
    last["confusion"] = json!([[19, 1], [4, 16]]);
    records.push(last);
    std::fs::write(dir.join("metrics.jsonl"), lines(&records)).expect("write metrics");
    let html = std::fs::read_to_string(write_report(&dir).expect("report")).expect("read report");
    let section = &html[html
        .find("<section id=\"scores\">")
        .expect("a scores section")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(section.contains("F1 <b>0.8750</b>") && section.contains("ROC AUC <b>0.9600</b>"));
    assert!(section.contains("cohen_kappa <b>0.8000</b>"));
    // Class names are escaped; every count is a cell, shaded by its share of the row.
    assert!(section.contains("&lt;malignant&gt;") && !section.contains("<malignant>"));
    assert!(section.contains(
        "rgba(37, 99, 235, 0.950); color: #fff\" title=\"95.0% of the actual class\">19<"
    ));
    assert!(section.contains(
        "rgba(37, 99, 235, 0.200); color: #111\" title=\"20.0% of the actual class\">4<"
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn regression_evals_get_predicted_vs_actual_and_residual_plots() {
    let dir = run_dir("regression");
    std::fs::write(dir.join("metrics.jsonl"), lines(&healthy())).expect("write metrics");
    std::fs::write(
        dir.join("predictions-test.csv"),
        "actual,predicted\n100,110\n150,140\n200,205\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("predictions-broken.csv"),
        "actual,predicted\n1,x\n",
    )
    .unwrap();
    let html = std::fs::read_to_string(write_report(&dir).expect("report")).expect("read report");
    let section = &html[html
        .find("<section id=\"regression\">")
        .expect("a regression section")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(section.contains("<h3>test (3 samples)</h3>"));
    // One point per sample in each of the two plots, and both reference lines.
    assert_eq!(section.matches("<circle").count(), 6);
    assert_eq!(section.matches("stroke-dasharray").count(), 2);
    assert!(html.contains("predictions-broken.csv` is not an `actual,predicted` table"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Federated records carry lists and maps (`clients`, `client_accuracy`) and a registered
/// metric may be NaN (written `null`): the report still reads every line.
#[test]
fn federated_records_and_registered_metrics_parse() {
    let lines = [
        json!({"event": "round", "stage": "federated", "split": "train", "step": 60, "epoch": 0, "loss": 0.9,
               "accuracy": 0.7, "samples": 600, "round": 1, "clients": [3, 17, 42], "pipeline_hash": "0123abcd"}),
        json!({"event": "client_eval", "stage": "federated", "split": "train", "step": 60, "epoch": 0, "loss": 0.8,
               "samples": 600, "round": 1, "client_accuracy": {"mean": 0.8, "min": 0.5, "max": 0.9, "worst": 3}}),
        json!({"event": "eval", "stage": "test", "split": "test", "step": 60, "epoch": 0, "loss": 0.7,
               "accuracy": 0.8, "samples": 40, "cohen_kappa": 0.75, "cohen_kappa_of_nothing": null}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let points = parse_metrics(&text, Path::new("metrics.jsonl")).expect("federated metrics parse");
    assert_eq!(points.len(), 3);
    assert_eq!(points[2].scores.get("cohen_kappa"), Some(0.75));
    assert!(
        points[2]
            .scores
            .get("cohen_kappa_of_nothing")
            .unwrap()
            .is_nan()
    );
    assert_eq!(points[0].scores.iter().count(), 0);
}
