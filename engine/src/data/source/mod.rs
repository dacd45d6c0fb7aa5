//! Data sources: one file per format (its settings, their checks, its lowering and its
//! loader) and the family that names them ([`family`]: trait, registry, erased settings
//! and loader). Adding a format is its file and one line in [`SOURCES`].

mod arrays;
mod csv;
mod elements;
mod extension;
mod family;
mod idx;
mod npy;
mod synthetic;

pub use csv::{Category, Columns, CsvSource};
pub use extension::ExtensionSource;
pub(crate) use family::registered_row;
pub use family::{
    Configure, Loader, ProbeFailure, SOURCES, Source, SourceEntry, SourceInfo, SourceRule,
    SourceSpec,
};
pub use idx::IdxSource;
pub use npy::NpySource;
pub use synthetic::SyntheticSource;
