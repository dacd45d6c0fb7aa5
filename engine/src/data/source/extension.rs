//! Data sources the binary registered (`engine::extend`): their registry rows, their
//! settings as written (checked when parsed), and the loader the registration supplied.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::family::ErasedRule;
use super::{Configure, Loader, Source, SourceEntry, SourceSpec};
use crate::check::{ProbeCx, ProbeFailure, SourceInfo};
use crate::data::dataset::Dataset;
use crate::data::error::DataError;
use crate::extend::{RegisteredSource, SourceProbe};
use crate::spec::Bounds;

/// The registry row of a registered source.
pub(crate) fn registered_row(s: &RegisteredSource) -> SourceEntry {
    SourceEntry {
        name: s.name,
        description: s.description,
        schema: s.schema,
        parse,
    }
}

fn parse(name: &'static str, settings: Value) -> Result<SourceSpec, String> {
    let entry = crate::extend::registry()
        .source(name)
        .ok_or_else(|| format!("no data source `{name}` is registered"))?;
    (entry.check)(settings.clone())?;
    Ok(SourceSpec::from_erased(Arc::new(Registered {
        name: entry.name,
        settings,
        probe: entry.probe,
        load: entry.load,
    })))
}

type LoadFn = fn(&Value, &Path) -> Result<Dataset, String>;

/// A registered source with its settings as written.
struct Registered {
    name: &'static str,
    settings: Value,
    probe: fn(&Value, &Path) -> Result<SourceProbe, String>,
    load: LoadFn,
}

impl ErasedRule for Registered {
    fn name(&self) -> &'static str {
        self.name
    }
    fn settings(&self) -> Value {
        self.settings.clone()
    }
    // Its own check ran when it was parsed.
    fn check(&self, _: &mut Bounds) {}
    fn probe(&self, cx: &mut ProbeCx) -> Result<SourceInfo, ProbeFailure> {
        // A registered source probes itself, or is loaded once here.
        let d =
            (self.probe)(&self.settings, cx.base_dir()).map_err(|e| ProbeFailure::at("kind", e))?;
        Ok(SourceInfo {
            samples: d.samples,
            shape: d.shape,
            classes: d.classes,
            class_names: None,
            targets: (d.target_width > 0)
                .then(|| (0..d.target_width).map(|k| format!("target{k}")).collect()),
            categories: Vec::new(),
        })
    }
    fn configure(&self, cx: &Configure) -> Source {
        Source::new(ExtensionSource {
            name: self.name,
            config: self.settings.clone(),
            base_dir: cx.base_dir.to_path_buf(),
            load: self.load,
        })
    }
}

/// A registered source, configured.
#[derive(Clone)]
pub struct ExtensionSource {
    /// Its name.
    pub name: &'static str,
    /// The keys written beside `kind:`.
    pub config: Value,
    /// The pipeline's directory, where relative paths in `config` start.
    pub base_dir: PathBuf,
    /// The registered loader.
    pub load: LoadFn,
}

impl Loader for ExtensionSource {
    fn name(&self) -> &'static str {
        self.name
    }

    fn load(&self) -> Result<Dataset, DataError> {
        (self.load)(&self.config, &self.base_dir)
            .map_err(|e| DataError::Config(format!("data source `{}`: {e}", self.name)))
    }

    fn describe(&self) -> String {
        format!("{} {}", self.name, self.config)
    }
}

impl std::fmt::Debug for ExtensionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionSource")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}
