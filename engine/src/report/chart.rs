//! Hand-written SVG line charts: axes with ticks and labels, a legend, one polyline per
//! series (with point markers when there are few points), and a log scale for values
//! that span more than two decades.

use std::fmt::Write as _;

use super::series::Series;
use super::text::{escape, tick_label};

/// Width of the SVG's coordinate system; the chart scales to the page.
const WIDTH: f64 = 760.0;
/// Height of the plot and the x axis below it; the legend rows add to it.
const BODY_HEIGHT: f64 = 260.0;
/// Room for the y tick labels and axis label.
const LEFT: f64 = 72.0;
/// Room for the last x tick label.
const RIGHT: f64 = 20.0;
/// Room for the x tick labels and axis label.
const BOTTOM: f64 = 46.0;
/// Height of one legend row.
const LEGEND_ROW: f64 = 18.0;
/// Space between the legend and the plot.
const LEGEND_GAP: f64 = 22.0;
/// Approximate width of a legend character at 12px.
const CHAR_WIDTH: f64 = 7.0;
/// Series with at most this many points also get a marker per point.
const MAX_MARKED_POINTS: usize = 60;
/// A log scale is used when max / min of the values exceeds this (two decades).
const LOG_SCALE_RATIO: f64 = 100.0;

/// Line colours, picked by series index; readable on white and in greyscale print.
pub const PALETTE: [&str; 8] = [
    "#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777",
];

/// What a chart shows.
#[derive(Debug, Clone, Copy)]
pub struct ChartSpec<'a> {
    /// Used in the SVG's accessible name and the `data-chart` attribute.
    pub id: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// Whether a log scale may be used when the values span more than two decades.
    pub allow_log: bool,
    /// X axis label (`step`, `round`).
    pub x_label: &'a str,
}

/// A linear or decade scale from data values to pixels.
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
    /// (value, label) of each tick.
    ticks: Vec<(f64, String)>,
}

impl Axis {
    fn linear(min: f64, max: f64, target_ticks: usize) -> Axis {
        let (min, max) = if max > min {
            (min, max)
        } else {
            let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
            (min - pad, max + pad)
        };
        let step = nice_step((max - min) / target_ticks as f64);
        let lo = (min / step).floor() * step;
        let hi = (max / step).ceil() * step;
        // Bounded: with a finite range there are about `target_ticks`; an infinite one
        // (values near ±f64::MAX) must not become a huge loop.
        let count = (((hi - lo) / step).round() as usize).min(4 * target_ticks);
        let ticks = (0..=count)
            .map(|i| lo + i as f64 * step)
            .map(|v| (v, tick_label(v, step)))
            .collect();
        Axis {
            log: false,
            lo,
            hi,
            ticks,
        }
    }

    /// `min` must be positive.
    fn decades(min: f64, max: f64) -> Axis {
        let lo = min.log10().floor();
        let hi = max.log10().ceil().max(lo + 1.0);
        let every = ((hi - lo) / 8.0).ceil().max(1.0);
        let mut ticks = Vec::new();
        let mut exponent = lo;
        while exponent <= hi {
            let value = 10f64.powf(exponent);
            ticks.push((exponent, tick_label(value, value)));
            exponent += every;
        }
        Axis {
            log: true,
            lo,
            hi,
            ticks,
        }
    }

    /// The position of `value` in [0, 1] along the axis.
    fn fraction(&self, value: f64) -> f64 {
        let v = if self.log { value.log10() } else { value };
        (v - self.lo) / (self.hi - self.lo)
    }

    /// The position of a tick (already in axis units) in [0, 1].
    fn tick_fraction(&self, tick: f64) -> f64 {
        (tick - self.lo) / (self.hi - self.lo)
    }
}

/// 1, 2 or 5 times a power of ten, at least `rough`.
fn nice_step(rough: f64) -> f64 {
    if !(rough.is_finite() && rough > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(rough.log10().floor());
    let mantissa = rough / power;
    let nice = if mantissa <= 1.0 {
        1.0
    } else if mantissa <= 2.0 {
        2.0
    } else if mantissa <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// Renders the chart as an `<svg>` element. Non-finite values (and non-positive ones on
/// a log scale) are left out of the lines.
pub fn line_chart(spec: ChartSpec, series: &[Series]) -> String {
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let positive_min = finite()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold(f64::INFINITY, f64::min);
    let y_max = finite().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let y_min = finite().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let x_min = finite().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_max = finite().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    if !y_max.is_finite() {
        return format!(
            "<p class=\"empty\">No finite {} values to chart.</p>",
            escape(spec.y_label)
        );
    }
    let log = spec.allow_log && positive_min.is_finite() && y_max / positive_min > LOG_SCALE_RATIO;
    let y_axis = if log {
        Axis::decades(positive_min, y_max)
    } else {
        Axis::linear(y_min, y_max, 5)
    };
    let x_axis = Axis::linear(x_min.min(0.0), x_max, 6);
    let (legend_items, legend_rows) = legend_layout(series);
    let top = LEGEND_GAP + legend_rows as f64 * LEGEND_ROW;
    let height = BODY_HEIGHT + top;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = BODY_HEIGHT - BOTTOM;
    let px = |x: f64| LEFT + x_axis.fraction(x) * plot_w;
    let py = |y: f64| top + (1.0 - y_axis.fraction(y)) * plot_h;

    let mut svg = String::new();
    let scale = if log { " (log scale)" } else { "" };
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" data-chart=\"{id}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{label}{scale} by {x_label}\">",
        id = escape(spec.id),
        label = escape(spec.y_label),
        x_label = escape(spec.x_label),
    );
    // Grid lines and tick labels.
    for (value, label) in &y_axis.ticks {
        let y = top + (1.0 - y_axis.tick_fraction(*value)) * plot_h;
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>",
            LEFT + plot_w
        );
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 8.0,
            y + 4.0,
            escape(label)
        );
    }
    for (value, label) in &x_axis.ticks {
        let x = LEFT + x_axis.tick_fraction(*value) * plot_w;
        let bottom = top + plot_h;
        let _ = write!(
            svg,
            "<line class=\"tickmark\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{bottom:.1}\" y2=\"{:.1}\"/>",
            bottom + 5.0
        );
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 18.0,
            escape(label)
        );
    }
    let _ = write!(
        svg,
        "<rect class=\"frame\" x=\"{LEFT}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\"/>"
    );
    let _ = write!(
        svg,
        "<text class=\"axis-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        LEFT + plot_w / 2.0,
        height - 6.0,
        escape(spec.x_label)
    );
    let mid = top + plot_h / 2.0;
    let _ = write!(
        svg,
        "<text class=\"axis-label\" x=\"16\" y=\"{mid:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {mid:.1})\">{}{scale}</text>",
        escape(spec.y_label)
    );

    // The lines.
    for s in series {
        let colour = PALETTE[s.index % PALETTE.len()];
        let drawable: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log || *y > 0.0))
            .map(|(x, y)| (px(x), py(y)))
            .collect();
        if drawable.is_empty() {
            continue;
        }
        let points: Vec<String> = drawable
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            svg,
            "<polyline class=\"series\" data-series=\"{}\" stroke=\"{colour}\" points=\"{}\"/>",
            escape(&s.label),
            points.join(" ")
        );
        if drawable.len() <= MAX_MARKED_POINTS {
            let radius = if drawable.len() == 1 { 4.0 } else { 2.5 };
            for (x, y) in &drawable {
                let _ = write!(
                    svg,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{radius}\" fill=\"{colour}\"/>"
                );
            }
        }
    }
    svg.push_str(&legend(series, &legend_items));
    svg.push_str("</svg>");
    svg
}

/// Where each legend item goes: (x, row), wrapping to a new row at the right edge.
fn legend_layout(series: &[Series]) -> (Vec<(f64, usize)>, usize) {
    let mut items = Vec::with_capacity(series.len());
    let (mut x, mut row) = (LEFT, 0);
    for s in series {
        let width = 24.0 + s.label.chars().count() as f64 * CHAR_WIDTH + 18.0;
        if x > LEFT && x + width > WIDTH - RIGHT {
            (x, row) = (LEFT, row + 1);
        }
        items.push((x, row));
        x += width;
    }
    (items, row + 1)
}

/// Swatches and labels above the plot, at the positions from [`legend_layout`].
fn legend(series: &[Series], items: &[(f64, usize)]) -> String {
    let mut out = String::new();
    for (s, (x, row)) in series.iter().zip(items) {
        let colour = PALETTE[s.index % PALETTE.len()];
        let y = 10.0 + *row as f64 * LEGEND_ROW;
        let _ = write!(
            out,
            "<line class=\"swatch\" x1=\"{x:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\"/>",
            x + 18.0
        );
        let _ = write!(
            out,
            "<text class=\"legend\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 24.0,
            y + 4.0,
            escape(&s.label)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(190.0), 200.0);
        assert_eq!(nice_step(0.0003), 0.0005);
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn a_flat_series_still_has_a_range() {
        let axis = Axis::linear(2.0, 2.0, 5);
        assert!(axis.hi > axis.lo);
        assert!(axis.fraction(2.0) > 0.0 && axis.fraction(2.0) < 1.0);
    }

    #[test]
    fn wide_losses_use_a_log_scale() {
        let s = Series {
            label: "train".into(),
            index: 0,
            points: vec![(1.0, 100.0), (2.0, 0.01)],
        };
        let svg = line_chart(
            ChartSpec {
                id: "loss",
                y_label: "loss",
                allow_log: true,
                x_label: "step",
            },
            &[s],
        );
        assert!(svg.contains("(log scale)"), "{svg}");
    }

    #[test]
    fn a_long_legend_wraps_and_pushes_the_plot_down() {
        let series: Vec<Series> = (0..12)
            .map(|i| Series {
                label: format!("eval_stage_number_{i}"),
                index: i,
                points: vec![(1.0, 1.0)],
            })
            .collect();
        let (items, rows) = legend_layout(&series);
        assert!(rows > 1);
        assert!(items.iter().all(|(x, _)| *x < WIDTH - RIGHT));
    }
}
