//! A data source registered by the binary (`engine::extend`): its settings as written
//! and the loader the registration supplied.

use std::path::{Path, PathBuf};

use super::SourceKind;
use crate::data::dataset::Dataset;
use crate::data::error::DataError;

/// A registered source, configured.
#[derive(Clone)]
pub struct ExtensionSource {
    /// Its registry row.
    pub kind: &'static SourceKind,
    /// The keys written beside `kind:`.
    pub config: serde_json::Value,
    /// The pipeline's directory, where relative paths in `config` start.
    pub base_dir: PathBuf,
    /// The registered loader.
    pub load: fn(&serde_json::Value, &Path) -> Result<Dataset, String>,
}

impl ExtensionSource {
    pub(super) fn load(&self) -> Result<Dataset, DataError> {
        (self.load)(&self.config, &self.base_dir)
            .map_err(|e| DataError::Config(format!("data source `{}`: {e}", self.kind.name)))
    }
}

impl std::fmt::Debug for ExtensionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionSource")
            .field("kind", &self.kind.name)
            .field("config", &self.config)
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ExtensionSource {
    /// The same registered name and settings read the same data (the loader comes with
    /// the name).
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.config == other.config && self.base_dir == other.base_dir
    }
}
