//! Report: turns a run directory (`metrics.jsonl`, `pipeline.resolved.yaml`, `plan.txt`,
//! `run.json`) into one self-contained `report.html` — inline CSS and hand-written SVG
//! charts, no network references — with hyperparameters, the plan and diagnostics.
//!
//! The entry point is [`write_report`]; [`read_run_dir`] and [`render_report`] split it
//! into the file reading and a pure renderer that tests drive without files.

mod chart;
mod diagnose;
mod error;
mod federated;
mod html;
mod hyper;
mod inputs;
mod scores;
mod series;
mod text;

pub use diagnose::{Finding, FindingKind, diagnose};
pub use error::ReportError;
pub use html::render_report;
pub use inputs::{MetricPoint, RunInfo, RunInputs, parse_metrics, read_run_dir, write_report};
