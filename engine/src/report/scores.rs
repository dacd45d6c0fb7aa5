//! The report's "Scores" section: for each eval's last record, its host-side scores in
//! registry order (precision, recall, F1, ROC AUC; MAE, RMSE, R²; registered metrics),
//! the per-class table and the confusion matrix drawn as a shaded grid (each cell's shade is its share of the actual class).

use std::fmt::Write;

use super::inputs::MetricPoint;
use super::text::escape;
use crate::metrics::EvalMetric;

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
        // Registry order, then names the registry does not know (a metric of a binary
        // that registered it, read by another).
        let known: Vec<EvalMetric> = EvalMetric::all().filter(|m| m.needs_outputs()).collect();
        let shown: Vec<String> = known
            .iter()
            .filter_map(|m| s.get(m.as_str()).map(|v| (m.row().label, v)))
            .chain(
                s.iter()
                    .filter(|(name, _)| !EvalMetric::all().any(|m| m.as_str() == *name))
                    .filter(|(name, _)| !crate::extend::RECORD_KEYS.contains(name)),
            )
            .map(|(name, v)| format!("{} <b>{v:.4}</b>", escape(name)))
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

/// Predicted-vs-actual and residual scatter plots of each regression eval's last
/// evaluation (from `predictions-<eval>.csv`), as inline SVG.
pub(super) fn regression_plots(predictions: &[(String, Vec<(f64, f64)>)]) -> String {
    let mut body = String::new();
    for (eval, pairs) in predictions {
        let finite: Vec<(f64, f64)> = pairs
            .iter()
            .copied()
            .filter(|(a, p)| a.is_finite() && p.is_finite())
            .collect();
        if finite.is_empty() {
            continue;
        }
        let residuals: Vec<(f64, f64)> = finite.iter().map(|&(a, p)| (p, a - p)).collect();
        let _ = write!(
            body,
            "<h3>{} ({} samples)</h3><div class=\"scatter\">{}{}</div>",
            escape(eval),
            finite.len(),
            scatter(
                "predicted vs actual",
                "actual",
                "predicted",
                &finite,
                Guide::Diagonal
            ),
            scatter(
                "residuals",
                "predicted",
                "actual − predicted",
                &residuals,
                Guide::Zero
            )
        );
    }
    if body.is_empty() {
        return String::new();
    }
    format!("<section id=\"regression\"><h2>Regression: the last evaluation</h2>{body}</section>\n")
}

/// The reference line of a scatter plot.
#[derive(Clone, Copy)]
enum Guide {
    /// `y = x`: where a perfect prediction lies.
    Diagonal,
    /// `y = 0`: no residual.
    Zero,
}

fn scatter(
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64)],
    guide: Guide,
) -> String {
    const W: f64 = 320.0;
    const H: f64 = 240.0;
    const PAD: f64 = 36.0;
    let range = |values: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if hi > lo {
            (lo, hi)
        } else {
            (lo - 1.0, hi + 1.0)
        }
    };
    let (mut x0, mut x1) = range(&mut points.iter().map(|p| p.0));
    let (mut y0, mut y1) = range(&mut points.iter().map(|p| p.1));
    if let Guide::Diagonal = guide {
        // The same scale on both axes, so the diagonal is the 45° line.
        (x0, x1) = (x0.min(y0), x1.max(y1));
        (y0, y1) = (x0, x1);
    }
    let sx = |x: f64| PAD + (x - x0) / (x1 - x0) * (W - 2.0 * PAD);
    let sy = |y: f64| H - PAD - (y - y0) / (y1 - y0) * (H - 2.0 * PAD);
    let mut svg = format!(
        "<svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        escape(title),
        escape(title)
    );
    let _ = write!(
        svg,
        "<rect x=\"{PAD}\" y=\"{PAD}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#ccc\"/>",
        W - 2.0 * PAD,
        H - 2.0 * PAD
    );
    match guide {
        Guide::Diagonal => {
            let _ = write!(
                svg,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>",
                sx(x0),
                sy(x0),
                sx(x1),
                sy(x1)
            );
        }
        Guide::Zero if y0 <= 0.0 && y1 >= 0.0 => {
            let _ = write!(
                svg,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>",
                sx(x0),
                sy(0.0),
                sx(x1),
                sy(0.0)
            );
        }
        Guide::Zero => {}
    }
    for &(x, y) in points {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"#2563eb\" fill-opacity=\"0.6\"/>",
            sx(x),
            sy(y)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{}</text><text x=\"12\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 12 {})\">{}</text>",
        W / 2.0,
        H - 8.0,
        escape(x_label),
        H / 2.0,
        H / 2.0,
        escape(y_label)
    );
    let _ = write!(
        svg,
        "<text x=\"{PAD}\" y=\"{}\" font-size=\"10\">{:.3}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{:.3}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{:.3}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{:.3}</text>",
        H - PAD + 12.0,
        x0,
        W - PAD,
        H - PAD + 12.0,
        x1,
        PAD - 4.0,
        H - PAD,
        y0,
        PAD - 4.0,
        PAD + 8.0,
        y1
    );
    svg.push_str("</svg>");
    svg
}
