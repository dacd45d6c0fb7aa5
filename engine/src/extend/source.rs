//! Data sources from a user's crate: settings and a loader.

use std::path::Path;

use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;

use super::SpecError;
use super::callback::checked_spec;
use crate::data::Dataset;

/// A data source a binary adds with
/// [`EngineBuilder::register_source`](super::EngineBuilder::register_source).
///
/// Written in a data set as `source: {kind: <NAME>, ...}` with the keys of
/// [`Source::Spec`] beside `kind`; splits, normalisation and batching apply as for the
/// built-in sources. `engine validate` loads it once to learn the sample shape and the
/// classes, so keep loading cheap or cache it.
pub trait Source: 'static {
    /// Its settings (use `#[serde(deny_unknown_fields)]`).
    type Spec: DeserializeOwned + JsonSchema;
    /// The `kind:` name (snake_case, not a built-in source's).
    const NAME: &'static str;
    /// One sentence for `engine schema`.
    const DESCRIPTION: &'static str;

    /// Checks settings beyond their types (at `engine validate`, located at the field).
    fn check(_spec: &Self::Spec) -> Result<(), SpecError> {
        Ok(())
    }

    /// Reads the samples ([`Dataset::classification`] or [`Dataset::regression`]);
    /// relative paths start at `pipeline_dir`. An error is shown with the data set.
    fn load(spec: &Self::Spec, pipeline_dir: &Path) -> Result<Dataset, String>;

    /// What `engine validate` needs to know without reading every sample (a header, a
    /// count): `None`, the default, loads the data instead. Must agree with [`Source::load`].
    fn probe(_spec: &Self::Spec, _pipeline_dir: &Path) -> Option<Result<SourceProbe, String>> {
        None
    }
}

/// A data source's size and shape as [`Source::probe`] reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceProbe {
    /// Samples in the file(s).
    pub samples: usize,
    /// The shape of one sample, e.g. `[64]`.
    pub shape: Vec<usize>,
    /// Number of classes (0 for regression).
    pub classes: usize,
    /// Targets per sample (0 for classification).
    pub target_width: usize,
}

impl SourceProbe {
    /// What a loaded data set tells.
    pub fn of(d: &Dataset) -> SourceProbe {
        SourceProbe {
            samples: d.len(),
            shape: d.shape.clone(),
            classes: d.classes,
            target_width: d.target_width,
        }
    }
}

/// A registered source with its type erased.
pub(crate) struct RegisteredSource {
    pub name: &'static str,
    pub description: &'static str,
    /// Its settings' JSON Schema, inline (its `$defs` go to the generator's).
    pub schema: fn(&mut schemars::SchemaGenerator) -> Schema,
    pub check: fn(serde_json::Value) -> Result<(), String>,
    pub load: fn(&serde_json::Value, &Path) -> Result<Dataset, String>,
    /// Its probe, or a load when it has none.
    pub probe: fn(&serde_json::Value, &Path) -> Result<SourceProbe, String>,
}

impl RegisteredSource {
    pub fn of<S: Source>() -> RegisteredSource {
        RegisteredSource {
            name: S::NAME,
            description: S::DESCRIPTION,
            schema: S::Spec::json_schema,
            check: |value| checked_spec::<S::Spec>(value, S::check).map(|_| ()),
            load: |value, dir| {
                let spec = checked_spec::<S::Spec>(value.clone(), S::check)?;
                S::load(&spec, dir)
            },
            probe: |value, dir| {
                let spec = checked_spec::<S::Spec>(value.clone(), S::check)?;
                S::probe(&spec, dir)
                    .unwrap_or_else(|| S::load(&spec, dir).map(|d| SourceProbe::of(&d)))
            },
        }
    }
}
