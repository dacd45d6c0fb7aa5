//! Data sources: one file per format, plus the registry that names them.

mod arrays;
mod csv;
mod elements;
mod extension;
mod idx;
mod npy;
mod registry;
mod synthetic;

pub use csv::{Category, Columns, CsvSource};
pub(crate) use csv::{clean_text, csv_cells};
pub use extension::ExtensionSource;
pub use idx::IdxSource;
pub(crate) use idx::read_shape as read_idx_shape;
pub use npy::NpySource;
pub(crate) use npy::read_shape as read_npy_shape;
pub use registry::{SOURCE_KINDS, Source, SourceKind};
pub use synthetic::SyntheticSource;
