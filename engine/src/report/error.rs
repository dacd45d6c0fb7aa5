//! Why a report could not be written.

use std::path::PathBuf;

/// A report failure. Only `metrics.jsonl` is required; the other inputs are optional
/// and a problem with them becomes a note in the report instead of an error.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of `metrics.jsonl` is not a metrics record.
    #[error("`{path}` line {line}: {message}")]
    Metrics {
        /// The metrics file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}
