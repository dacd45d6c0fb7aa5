//! The training engine: pipeline YAML → checked graph → plan → execution on wgpu.
//!
//! The data flows one way through one module per phase: [`parse`] → [`check`] →
//! [`plan`] → `run`. Each has one public entry point. [`load_pipeline`] chains the
//! first two for a file on disk.

pub mod callbacks;
pub mod card;
pub mod check;
pub mod cli;
pub mod data;
pub mod diag;
pub mod dot;
pub mod extend;
pub mod losses;
pub mod metrics;
pub mod parse;
pub mod plan;
pub mod ranks;
pub mod report;
pub mod run;
pub mod schema;
pub mod scores;
pub mod spec;
pub mod testing;

use std::path::Path;

pub use extend::Engine;

use check::CheckedPipeline;
use diag::{Diagnostic, Sources};

/// Why a pipeline file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read (exit code 2).
    Io(String),
    /// The pipeline is invalid (exit code 1); render with [`diag::render`].
    Invalid(Vec<Diagnostic>),
}

/// Reads, parses and checks a pipeline file with `--set` overrides applied.
/// `sources` receives the texts diagnostics point into.
pub fn load_pipeline(
    path: &Path,
    overrides: &[String],
    sources: &mut Sources,
) -> Result<CheckedPipeline, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::Io(format!("cannot read `{}`: {e}", path.display())))?;
    let file = sources.add(path.display().to_string(), text);
    let parsed =
        parse::parse_pipeline(sources, file, path, overrides).map_err(LoadError::Invalid)?;
    check::check_pipeline(parsed).map_err(LoadError::Invalid)
}
