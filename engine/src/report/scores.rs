//! The report's "Scores" section: for each eval's last record, its scalar scores
//! (precision, recall, F1, ROC AUC; MAE, RMSE, R²), the per-class table and the confusion
//! matrix drawn as a shaded grid (each cell's shade is its share of the actual class).

use std::fmt::Write;

use super::inputs::MetricPoint;
use super::text::escape;

/// The section, or nothing when no eval record carries scores.
pub(super) fn scores_section(metrics: &[MetricPoint]) -> String {
    let mut stages: Vec<&str> = Vec::new();
    for m in metrics.iter().filter(|m| m.event == "eval") {
        if !stages.contains(&m.stage.as_str()) {
            stages.push(&m.stage);
        }
    }
    let mut body = String::new();
    for stage in stages {
        let Some(last) = metrics
            .iter()
            .rev()
            .find(|m| m.event == "eval" && m.stage == stage)
        else {
            continue;
        };
        let s = &last.scores;
        let scalars: Vec<(&str, Option<f64>)> = vec![
            ("precision", s.precision),
            ("recall", s.recall),
            ("F1", s.f1),
            ("ROC AUC", s.roc_auc),
            ("MAE", s.mae),
            ("RMSE", s.rmse),
            ("R²", s.r2),
        ];
        let shown: Vec<String> = scalars
            .iter()
            .filter_map(|(name, v)| v.map(|v| format!("{name} <b>{v:.4}</b>")))
            .collect();
        if shown.is_empty() && last.per_class.is_none() && last.confusion.is_none() {
            continue;
        }
        let _ = write!(
            body,
            "<h3>{} on {} (step {}, {} samples)</h3>",
            escape(stage),
            escape(&last.split),
            last.step,
            last.samples
        );
        if !shown.is_empty() {
            let _ = write!(body, "<p>{}</p>", shown.join(" · "));
        }
        let names: Vec<String> = match &last.per_class {
            Some(classes) => classes.iter().map(|c| c.class.clone()).collect(),
            None => (0..last.confusion.as_ref().map_or(0, Vec::len))
                .map(|i| i.to_string())
                .collect(),
        };
        if let Some(classes) = &last.per_class {
            body.push_str("<table><thead><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr></thead><tbody>");
            for c in classes {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
                    escape(&c.class),
                    c.precision,
                    c.recall,
                    c.f1,
                    c.support
                );
            }
            body.push_str("</tbody></table>");
        }
        if let Some(confusion) = &last.confusion {
            body.push_str(&confusion_grid(confusion, &names));
        }
    }
    if body.is_empty() {
        return String::new();
    }
    format!("<section id=\"scores\"><h2>Scores of the last evaluation</h2>{body}</section>\n")
}

/// The confusion matrix as a table whose cells are shaded by their share of the row
/// (the actual class): the diagonal dark when the model is right.
fn confusion_grid(confusion: &[Vec<u64>], names: &[String]) -> String {
    let mut out = String::from(
        "<table class=\"confusion\"><caption>Confusion matrix: rows are the actual class, columns the predicted one</caption><thead><tr><th></th>",
    );
    for name in names {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr></thead><tbody>");
    for (row, name) in confusion.iter().zip(names) {
        let total: u64 = row.iter().sum();
        let _ = write!(out, "<tr><th>{}</th>", escape(name));
        for &n in row {
            let share = if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            };
            let ink = if share > 0.5 { "#fff" } else { "#111" };
            let _ = write!(
                out,
                "<td style=\"background: rgba(37, 99, 235, {share:.3}); color: {ink}\" title=\"{:.1}% of the actual class\">{n}</td>",
                share * 100.0
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}
