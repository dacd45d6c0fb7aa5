//! Assembles the report page: header facts, diagnostics, charts, final metrics,
//! hyperparameters and the plan. Pure: text in, text out.

use std::fmt::Write as _;

use super::RunInputs;
use super::chart::{ChartSpec, line_chart};
use super::diagnose::{
    DIVERGENCE_FACTOR, GAP_ACCURACY_POINTS, GAP_LOSS_FACTOR, PLATEAU_EVALS, diagnose,
};
use super::hyper::{PipelineSummary, summarise_pipeline};
use super::series::{Group, Measure, group_metrics, series_of};
use super::text::{escape, short_number};

const STYLE: &str = include_str!("style.css");

/// The whole report as one self-contained HTML page.
pub fn render_report(inputs: &RunInputs) -> String {
    let pipeline = inputs
        .resolved_yaml
        .as_deref()
        .map(summarise_pipeline)
        .unwrap_or_default();
    let groups = group_metrics(&inputs.metrics);
    let name = pipeline
        .name
        .clone()
        .unwrap_or_else(|| inputs.fallback_name.clone());
    let mut notes = inputs.notes.clone();
    notes.extend(pipeline.problem.clone());
    notes.extend(hash_mismatch(inputs, &pipeline));

    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} — run report</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n",
        escape(&name)
    );
    page.push_str(&header(inputs, &pipeline, &name, &groups));
    if !notes.is_empty() {
        page.push_str("<section id=\"notes\"><h2>Notes on the inputs</h2><ul class=\"notes\">");
        for note in &notes {
            let _ = write!(page, "<li>{}</li>", escape(note));
        }
        page.push_str("</ul></section>\n");
    }
    page.push_str(&diagnostics(inputs, &groups));
    page.push_str(&charts(&groups));
    page.push_str(&super::federated::federated_section(
        &inputs.metrics,
        inputs.partition.as_ref(),
    ));
    page.push_str(&final_metrics(&groups));
    page.push_str(&super::scores::scores_section(&inputs.metrics));
    page.push_str(&super::scores::regression_plots(&inputs.predictions));
    page.push_str(&hyperparameters(inputs, &pipeline));
    if let Some(plan) = &inputs.plan {
        let _ = writeln!(
            page,
            "<section id=\"plan\"><h2>Plan</h2><pre>{}</pre></section>",
            escape(plan.trim_end())
        );
    }
    page.push_str("<footer>Written by <code>engine report</code> from metrics.jsonl, pipeline.resolved.yaml, plan.txt and run.json.</footer>\n</main>\n</body>\n</html>\n");
    page
}

fn header(inputs: &RunInputs, pipeline: &PipelineSummary, name: &str, groups: &[Group]) -> String {
    let info = inputs.run_info.clone().unwrap_or_default();
    let last_step = inputs.metrics.iter().map(|m| m.step).max();
    let last_wall = inputs
        .metrics
        .iter()
        .filter_map(|m| m.wall_time_s)
        .filter(|w| w.is_finite())
        .fold(None, |acc: Option<f64>, w| {
            Some(acc.map_or(w, |a| a.max(w)))
        });
    let hash = pipeline
        .hash
        .clone()
        .or_else(|| inputs.metrics.iter().find_map(|m| m.pipeline_hash.clone()));
    let dash = || "—".to_string();
    let facts = [
        ("adapter", info.adapter.clone().unwrap_or_else(dash)),
        (
            "throughput",
            info.samples_per_second
                .map(|s| format!("{} samples/s", short_number(s.round())))
                .unwrap_or_else(dash),
        ),
        (
            "steps",
            info.steps
                .or(last_step)
                .map(|s| s.to_string())
                .unwrap_or_else(dash),
        ),
        (
            "wall time",
            info.wall_time_s
                .or(last_wall)
                .map(duration)
                .unwrap_or_else(dash),
        ),
        (
            "records",
            format!("{} in {} series", inputs.metrics.len(), groups.len()),
        ),
    ];
    let mut out = format!(
        "<header><h1>{}</h1><p class=\"subtitle\">Run report",
        escape(name)
    );
    if let Some(hash) = hash {
        let _ = write!(out, " · pipeline hash <code>{}</code>", escape(&hash));
    }
    out.push_str("</p><dl class=\"facts\">");
    for (label, value) in facts {
        let class = if label == "adapter" {
            " class=\"wide\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<div{class}><dt>{label}</dt><dd>{}</dd></div>",
            escape(&value)
        );
    }
    out.push_str("</dl></header>\n");
    out
}

fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        let whole = seconds.round() as u64;
        if whole < 3600 {
            format!("{} min {} s", whole / 60, whole % 60)
        } else {
            format!("{} h {} min", whole / 3600, whole % 3600 / 60)
        }
    }
}

fn hash_mismatch(inputs: &RunInputs, pipeline: &PipelineSummary) -> Option<String> {
    let expected = pipeline.hash.as_deref()?;
    let other = inputs
        .metrics
        .iter()
        .filter_map(|m| m.pipeline_hash.as_deref())
        .find(|h| !h.is_empty() && *h != expected)?;
    Some(format!(
        "metrics.jsonl has records of pipeline hash {other}, but the resolved pipeline's hash is {expected}: the directory may mix runs."
    ))
}

fn diagnostics(inputs: &RunInputs, groups: &[Group]) -> String {
    let findings = diagnose(&inputs.metrics);
    let mut out =
        String::from("<section id=\"diagnostics\"><h2>Diagnostics</h2><ul class=\"findings\">");
    if findings.is_empty() {
        let _ = write!(
            out,
            "<li class=\"ok\"><b>No problems found.</b>Checked {} records in {} series: every loss is finite, none rose above {DIVERGENCE_FACTOR}× its best, no eval loss stalled for {PLATEAU_EVALS} evaluations, and final train and eval metrics are within {GAP_ACCURACY_POINTS} accuracy points and {GAP_LOSS_FACTOR}× loss.</li>",
            inputs.metrics.len(),
            groups.len()
        );
    }
    for finding in &findings {
        let _ = write!(
            out,
            "<li class=\"{}\"><b>{}:</b>{}</li>",
            finding.kind.name(),
            finding.kind.title(),
            escape(&finding.message)
        );
    }
    out.push_str("</ul></section>\n");
    out
}

fn charts(groups: &[Group]) -> String {
    let mut out = String::from("<section id=\"charts\"><h2>Training curves</h2>");
    let charts = [
        (
            "Loss",
            ChartSpec {
                id: "loss",
                y_label: "loss",
                allow_log: true,
                x_label: "step",
            },
            Measure::Loss,
        ),
        (
            "Accuracy",
            ChartSpec {
                id: "accuracy",
                y_label: "accuracy (%)",
                allow_log: false,
                x_label: "step",
            },
            Measure::Accuracy,
        ),
        (
            "Learning rate",
            ChartSpec {
                id: "lr",
                y_label: "learning rate",
                allow_log: false,
                x_label: "step",
            },
            Measure::LearningRate,
        ),
    ];
    for (title, spec, measure) in charts {
        let series = series_of(groups, measure);
        let body = if series.is_empty() {
            format!(
                "<p class=\"empty\">No {} recorded.</p>",
                escape(spec.y_label)
            )
        } else {
            line_chart(spec, &series)
        };
        let _ = write!(
            out,
            "<figure><figcaption>{title} by optimizer step</figcaption>{body}</figure>"
        );
    }
    out.push_str("</section>\n");
    out
}

fn final_metrics(groups: &[Group]) -> String {
    let mut out = String::from(
        "<section id=\"final\"><h2>Final metrics</h2><table><thead><tr><th>series</th><th>records</th><th>last step</th><th>final loss</th><th>best loss (step)</th><th>final accuracy</th><th>final top-5</th></tr></thead><tbody>",
    );
    let percent = |v: Option<f64>| {
        v.map(|a| format!("{:.2}%", a * 100.0))
            .unwrap_or_else(|| "—".into())
    };
    for group in groups {
        let Some(last) = group.records.last() else {
            continue;
        };
        let best = group
            .records
            .iter()
            .filter(|r| r.loss.is_finite())
            .min_by(|a, b| a.loss.total_cmp(&b.loss));
        let best = best
            .map(|b| format!("{} ({})", short_number(b.loss), b.step))
            .unwrap_or_else(|| "—".into());
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&group.label),
            group.records.len(),
            last.step,
            short_number(last.loss),
            best,
            percent(last.accuracy),
            percent(last.top5)
        );
    }
    out.push_str("</tbody></table></section>\n");
    out
}

fn hyperparameters(inputs: &RunInputs, pipeline: &PipelineSummary) -> String {
    let mut out = String::from("<section id=\"hyperparameters\"><h2>Hyperparameters</h2>");
    if inputs.resolved_yaml.is_none() {
        out.push_str("<p class=\"empty\">pipeline.resolved.yaml is not in the run directory.</p></section>\n");
        return out;
    }
    out.push_str("<table class=\"kv\"><tbody>");
    for (key, value) in &pipeline.rows {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(key),
            escape(value)
        );
    }
    out.push_str("</tbody></table>");
    for model in &pipeline.models {
        let _ = write!(
            out,
            "<h3>Model <code>{}</code></h3><p>{}</p><table><thead><tr><th>#</th><th>layer</th></tr></thead><tbody>",
            escape(&model.name),
            escape(&model.header)
        );
        for (i, layer) in model.layers.iter().enumerate() {
            let _ = write!(
                out,
                "<tr><td class=\"num\">{i}</td><td><code>{}</code></td></tr>",
                escape(layer)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>\n");
    out
}
