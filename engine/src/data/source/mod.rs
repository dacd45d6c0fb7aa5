//! Data sources: one file per format, plus the registry that names them.

mod arrays;
mod csv;
mod elements;
mod idx;
mod npy;
mod registry;
mod synthetic;

pub use csv::{Category, Columns, CsvSource};
pub(crate) use csv::{clean_text, csv_cells};
pub use idx::IdxSource;
pub use npy::NpySource;
pub use registry::{SOURCE_KINDS, Source, SourceKind};
pub use synthetic::SyntheticSource;
