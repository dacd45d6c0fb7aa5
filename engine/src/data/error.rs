//! The one error type of the data stages.
//!
//! Every variant that comes from a file names that file, and every problem inside a
//! file names the 1-based row (and column where one applies), so the message alone
//! tells a person where to look. Rows of text files are counted as lines of the file,
//! header included, so the number matches what an editor shows; rows of binary files
//! (idx, npy) are 1-based sample numbers. Columns are 1-based too.

use std::path::PathBuf;

/// Everything that can go wrong while loading, splitting, normalising or batching data.
///
/// Build these only through the data stages; match on them to choose an exit code
/// (all of them are input or I/O problems, exit code 2 in the CLI) and print them with
/// `Display`, which is already a complete, located sentence.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file does not exist.
    #[error("{}: file not found (hint: paths are relative to the directory the engine runs in)", .file.display())]
    Missing { file: PathBuf },

    /// The file exists but could not be read.
    #[error("{}: cannot read the file: {source}", .file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },

    /// The file (or its decompressed content) holds no data.
    #[error("{}: the file is empty: {detail}", .file.display())]
    Empty { file: PathBuf, detail: String },

    /// A gzip stream ended early or is corrupt.
    #[error("{}: the gzip stream is truncated or corrupt ({detail}); was the download interrupted?", .file.display())]
    Gzip { file: PathBuf, detail: String },

    /// A binary file holds fewer bytes than its header promises.
    #[error("{}: the file is truncated: its header promises {expected} bytes of data, found {found}", .file.display())]
    Truncated {
        file: PathBuf,
        expected: u64,
        found: u64,
    },

    /// A binary file holds more bytes than its header promises.
    #[error("{}: {extra} bytes follow the data its header promises ({expected} bytes); is the header right?", .file.display())]
    TrailingBytes {
        file: PathBuf,
        expected: u64,
        extra: u64,
    },

    /// The first bytes do not identify the expected format.
    #[error("{}: wrong magic number {found}: expected {expected}", .file.display())]
    WrongMagic {
        file: PathBuf,
        expected: String,
        found: String,
    },

    /// A binary header is readable but describes something unsupported or inconsistent.
    #[error("{}: bad header: {detail}", .file.display())]
    BadHeader { file: PathBuf, detail: String },

    /// A text row has a different number of cells than the first data row.
    #[error("{}: row {row}: expected {expected} columns (as in row {first_row}), found {found}", .file.display())]
    RaggedRow {
        file: PathBuf,
        row: usize,
        first_row: usize,
        expected: usize,
        found: usize,
    },

    /// A configured column lies beyond the end of the rows.
    #[error("{}: row {row}: column {column} is configured but rows have only {width} columns", .file.display())]
    NoSuchColumn {
        file: PathBuf,
        row: usize,
        column: usize,
        width: usize,
    },

    /// A cell is not a finite number.
    #[error("{}: row {row}, column {column}: expected a finite number, found {cell:?}{hint}", .file.display())]
    NotANumber {
        file: PathBuf,
        row: usize,
        column: usize,
        cell: String,
        hint: &'static str,
    },

    /// A categorical feature's value is not in its vocabulary (the train file's values).
    #[error("{}: row {row}, column {column}: `{value}` is not one of the values this categorical feature was trained with: {expected}", .file.display())]
    UnknownCategory {
        file: PathBuf,
        row: usize,
        column: usize,
        value: String,
        expected: String,
    },

    /// A class label is negative, fractional, or not below the number of classes.
    #[error("{}: row {row}{}: label {label} is not one of the classes: expected {expected}", .file.display(), column_text(*.column))]
    BadLabel {
        file: PathBuf,
        row: usize,
        column: Option<usize>,
        label: String,
        expected: String,
    },

    /// Two files that must describe the same samples disagree.
    #[error("{}: {detail} (compared with {})", .file.display(), .other.display())]
    Mismatch {
        file: PathBuf,
        other: PathBuf,
        detail: String,
    },

    /// The operating system refused to start the prefetch thread.
    #[error("cannot start the data prefetch thread: {source}")]
    Thread { source: std::io::Error },

    /// The configuration itself is inconsistent (zero batch size, fractions over 1, ...).
    #[error("invalid data configuration: {0}")]
    Config(String),
}

fn column_text(column: Option<usize>) -> String {
    match column {
        Some(column) => format!(", column {column}"),
        None => String::new(),
    }
}
