//! The federated section of a report: the global model's accuracy and the clients' mean
//! local loss by round, and the partition drawn as one stacked bar of label counts per
//! client (from `partition.json`).

use std::fmt::Write as _;

use serde::Deserialize;

use super::chart::{ChartSpec, PALETTE, line_chart};
use super::inputs::MetricPoint;
use super::series::Series;
use super::text::escape;

/// `partition.json` as the federated loop writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PartitionInfo {
    /// The partitioner as the plan writes it.
    pub partition: String,
    /// Samples per client.
    pub sizes: Vec<usize>,
    /// Per client, samples per class.
    pub histograms: Vec<Vec<usize>>,
    /// Class names, when the labels are names.
    #[serde(default)]
    pub class_names: Option<Vec<String>>,
}

/// Width of the partition drawing's coordinate system.
const WIDTH: f64 = 760.0;
/// Height of the tallest client's bar.
const BAR_HEIGHT: f64 = 180.0;

/// The section, or nothing for a run that is not federated.
pub fn federated_section(metrics: &[MetricPoint], partition: Option<&PartitionInfo>) -> String {
    let rounds: Vec<&MetricPoint> = metrics.iter().filter(|m| m.event == "round").collect();
    if rounds.is_empty() && partition.is_none() {
        return String::new();
    }
    let mut out = String::from("<section id=\"federated\"><h2>Federated rounds</h2>");
    let mut accuracy: Vec<Series> = Vec::new();
    for m in metrics
        .iter()
        .filter(|m| m.event == "eval" && m.round.is_some())
    {
        let (Some(round), Some(acc)) = (m.round, m.accuracy) else {
            continue;
        };
        let label = format!("{} (global model)", m.stage);
        let at = match accuracy.iter().position(|s| s.label == label) {
            Some(i) => i,
            None => {
                accuracy.push(Series {
                    label,
                    index: accuracy.len(),
                    points: Vec::new(),
                });
                accuracy.len() - 1
            }
        };
        accuracy[at].points.push((round as f64, acc * 100.0));
    }
    let local: Vec<(f64, f64)> = rounds
        .iter()
        .filter_map(|m| Some((m.round? as f64, m.accuracy? * 100.0)))
        .collect();
    if !local.is_empty() {
        accuracy.push(Series {
            label: "clients' local training".into(),
            index: accuracy.len(),
            points: local,
        });
    }
    if !accuracy.is_empty() {
        out.push_str(&round_figure(
            "Accuracy by round",
            "round-accuracy",
            "accuracy (%)",
            false,
            &accuracy,
        ));
    }
    let loss: Vec<(f64, f64)> = rounds
        .iter()
        .filter_map(|m| Some((m.round? as f64, m.loss)))
        .collect();
    if !loss.is_empty() {
        let series = [Series {
            label: "clients' local training".into(),
            index: 0,
            points: loss,
        }];
        out.push_str(&round_figure(
            "Mean local loss by round",
            "round-loss",
            "mean local loss",
            true,
            &series,
        ));
    }
    if let Some(p) = partition {
        out.push_str(&partition_figure(p));
    }
    out.push_str("</section>\n");
    out
}

/// A line chart over rounds in its figure.
fn round_figure(
    title: &str,
    id: &str,
    y_label: &str,
    allow_log: bool,
    series: &[Series],
) -> String {
    let chart = line_chart(
        ChartSpec {
            id,
            y_label,
            allow_log,
            x_label: "round",
        },
        series,
    );
    format!("<figure><figcaption>{title}</figcaption>{chart}</figure>")
}

/// One bar per client, its height the client's samples, stacked by class.
fn partition_figure(p: &PartitionInfo) -> String {
    let clients = p.histograms.len().max(1);
    let tallest = p.sizes.iter().copied().max().unwrap_or(1).max(1) as f64;
    let classes = p.histograms.iter().map(Vec::len).max().unwrap_or(0);
    let left = 40.0;
    let slot = (WIDTH - left - 10.0) / clients as f64;
    let legend_rows = classes.div_ceil(10);
    let height = BAR_HEIGHT + 30.0 + 18.0 * legend_rows as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" data-chart=\"partition\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" aria-label=\"samples per class of each client\">"
    );
    let _ = write!(
        svg,
        "<text class=\"tick\" x=\"{:.1}\" y=\"12\" text-anchor=\"end\">{}</text><text class=\"tick\" x=\"{:.1}\" y=\"{BAR_HEIGHT:.1}\" text-anchor=\"end\">0</text>",
        left - 4.0,
        tallest,
        left - 4.0
    );
    for (k, h) in p.histograms.iter().enumerate() {
        let x = left + k as f64 * slot;
        let mut y = BAR_HEIGHT;
        for (c, &count) in h.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let dh = count as f64 / tallest * (BAR_HEIGHT - 10.0);
            y -= dh;
            let _ = write!(
                svg,
                "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{dh:.2}\" fill=\"{}\"><title>client {k}: {count} of class {}</title></rect>",
                (slot * 0.85).max(0.5),
                colour(c),
                escape(&class_name(p, c))
            );
        }
    }
    let _ = write!(
        svg,
        "<text class=\"axis-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">client (0 … {})</text>",
        left + (WIDTH - left) / 2.0,
        BAR_HEIGHT + 18.0,
        clients - 1
    );
    for c in 0..classes {
        let (row, col) = (c / 10, c % 10);
        let x = left + col as f64 * 70.0;
        let y = BAR_HEIGHT + 36.0 + row as f64 * 18.0;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text class=\"legend\" x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            y - 9.0,
            colour(c),
            x + 14.0,
            escape(&class_name(p, c))
        );
    }
    svg.push_str("</svg>");
    format!(
        "<figure><figcaption>Partition: {} — samples per class of each client</figcaption>{svg}</figure>",
        escape(&p.partition)
    )
}

fn class_name(p: &PartitionInfo, c: usize) -> String {
    p.class_names
        .as_ref()
        .and_then(|n| n.get(c).cloned())
        .unwrap_or_else(|| c.to_string())
}

/// Ten classes in the palette's colours, then lighter variants.
fn colour(c: usize) -> String {
    const MORE: [&str; 2] = ["#64748b", "#a16207"];
    let all: Vec<&str> = PALETTE.iter().chain(MORE.iter()).copied().collect();
    all[c % all.len()].to_string()
}
