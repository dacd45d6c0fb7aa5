//! The data-source family: one trait ([`SourceRule`]), one registry ([`SOURCES`], plus
//! those a binary registers through `engine::extend`), the erased settings a pipeline
//! holds ([`SourceSpec`]) and the configured loader the data stages run ([`Source`]).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{CsvSource, csv, extension, idx, npy, synthetic};

use crate::check::{DatasetInfo, ProbeCx};
use crate::data::dataset::Dataset;
use crate::data::error::DataError;
use crate::spec::Bounds;
use crate::spec::tagged::{body, registry_member};

/// A data source as a pipeline writes it: `source: {kind: <NAME>, ...}`.
pub trait SourceRule: 'static {
    /// Its settings (with `#[serde(deny_unknown_fields)]`; doc comments become the
    /// editor's hover text). Paths in them are relative to the pipeline file.
    type Spec: DeserializeOwned + Serialize + JsonSchema + fmt::Debug + Send + Sync;
    /// The `kind:` name.
    const NAME: &'static str;
    /// One sentence for the schema and the docs.
    const DESCRIPTION: &'static str;

    /// Range rules of the settings, checked by `engine validate`.
    fn check(_spec: &Self::Spec, _bounds: &mut Bounds) {}

    /// What `engine validate` learns without loading every sample (a header, a count):
    /// samples, shape, classes or targets. A failure is located at a settings key.
    fn probe(spec: &Self::Spec, cx: &mut ProbeCx) -> Result<SourceInfo, ProbeFailure>;

    /// The loader the data stages run, with what validation learned of the data set.
    fn configure(spec: &Self::Spec, cx: &Configure) -> Source;
}

/// What lowering hands a source's [`SourceRule::configure`].
pub struct Configure<'a> {
    /// The pipeline's directory (relative paths start here).
    pub base_dir: &'a Path,
    /// The pipeline's seed.
    pub seed: u64,
    /// What validation learned of the data set (its train source's classes, names and
    /// vocabularies).
    pub info: Option<&'a DatasetInfo>,
}

/// What validation learns of one source without loading it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Samples in the file(s).
    pub samples: usize,
    /// The shape of one sample.
    pub shape: Vec<usize>,
    /// Number of classes (0 for regression).
    pub classes: usize,
    /// The class names, sorted, when the label column holds names.
    pub class_names: Option<Vec<String>>,
    /// Regression: the target columns' names.
    pub targets: Option<Vec<String>>,
    /// Categorical feature columns (0-based) and their sorted vocabularies.
    pub categories: Vec<(usize, Vec<String>)>,
}

impl SourceInfo {
    /// A classification source's samples, shape and classes.
    pub fn classes(samples: usize, shape: Vec<usize>, classes: usize) -> SourceInfo {
        SourceInfo {
            samples,
            shape,
            classes,
            class_names: None,
            targets: None,
            categories: Vec::new(),
        }
    }
}

/// Why a probe learned nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeFailure {
    /// The file at settings key `key` cannot be read as the source says (`engine validate`
    /// reports it there).
    At { key: String, message: String },
    /// The probe reported its problems itself.
    Reported,
}

impl ProbeFailure {
    /// A failure at settings key `key`.
    pub fn at(key: &str, message: impl Into<String>) -> ProbeFailure {
        ProbeFailure::At {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// A registry row: a source with its type erased.
pub struct SourceEntry {
    pub name: &'static str,
    pub description: &'static str,
    /// Its settings' schema, inline.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// Its settings, deserialised and checked (errors located as the parser expects); the
    /// row's name is passed so that one parser can serve every registered source.
    pub parse: fn(&'static str, Value) -> Result<SourceSpec, String>,
}

impl SourceEntry {
    /// The row of source `R`.
    pub const fn of<R: SourceRule>() -> SourceEntry {
        SourceEntry {
            name: R::NAME,
            description: R::DESCRIPTION,
            schema: schema_of::<R>,
            parse: parse_of::<R>,
        }
    }
}

fn schema_of<R: SourceRule>(generator: &mut SchemaGenerator) -> Schema {
    R::Spec::json_schema(generator)
}

fn parse_of<R: SourceRule>(_name: &'static str, value: Value) -> Result<SourceSpec, String> {
    let spec = body::<R::Spec, serde_json::Error>(value).map_err(|e| e.to_string())?;
    Ok(SourceSpec(Arc::new(Rule::<R>(spec))))
}

/// The built-in sources, in the order the docs and the schema list them.
pub static SOURCES: &[SourceEntry] = &[
    SourceEntry::of::<csv::Csv>(),
    SourceEntry::of::<idx::Idx>(),
    SourceEntry::of::<npy::Npy>(),
    SourceEntry::of::<synthetic::Synthetic>(),
];

/// A source of samples as a pipeline writes it: one of the registered sources with its
/// settings.
#[derive(Clone)]
pub struct SourceSpec(Arc<dyn ErasedRule>);

/// A source with its settings, its type erased (also implemented by the adapter of a
/// source the binary registered).
pub(crate) trait ErasedRule: Send + Sync {
    fn name(&self) -> &'static str;
    fn settings(&self) -> Value;
    fn check(&self, bounds: &mut Bounds);
    fn probe(&self, cx: &mut ProbeCx) -> Result<SourceInfo, ProbeFailure>;
    fn configure(&self, cx: &Configure) -> Source;
}

struct Rule<R: SourceRule>(R::Spec);

impl<R: SourceRule> ErasedRule for Rule<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }
    fn settings(&self) -> Value {
        // Serialising a settings struct to a JSON value cannot fail.
        serde_json::to_value(&self.0).unwrap_or_default()
    }
    fn check(&self, bounds: &mut Bounds) {
        R::check(&self.0, bounds)
    }
    fn probe(&self, cx: &mut ProbeCx) -> Result<SourceInfo, ProbeFailure> {
        R::probe(&self.0, cx)
    }
    fn configure(&self, cx: &Configure) -> Source {
        R::configure(&self.0, cx)
    }
}

impl SourceSpec {
    pub(crate) fn from_erased(rule: Arc<dyn ErasedRule>) -> SourceSpec {
        SourceSpec(rule)
    }

    /// Its `kind:` name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Its settings as written (defaults filled in).
    pub fn settings(&self) -> Value {
        self.0.settings()
    }

    /// Its range rules.
    pub fn bounds(&self) -> Bounds {
        let mut bounds = Bounds::default();
        self.0.check(&mut bounds);
        bounds
    }

    /// What validation learns of it without loading.
    pub fn probe(&self, cx: &mut ProbeCx) -> Result<SourceInfo, ProbeFailure> {
        self.0.probe(cx)
    }

    /// Its loader.
    pub fn configure(&self, cx: &Configure) -> Source {
        self.0.configure(cx)
    }

    /// Every source: the built-in ones, then those the binary registered.
    pub fn entries() -> impl Iterator<Item = &'static SourceEntry> {
        SOURCES
            .iter()
            .chain(crate::extend::registry().source_rows.iter())
    }

    /// Every name a pipeline can write (did-you-mean lists and messages).
    pub fn names() -> &'static [&'static str] {
        crate::extend::registry().source_names
    }
}

registry_member!(
    SourceSpec,
    "kind",
    "A source of samples. Paths are relative to the pipeline file.",
    named
);

/// A configured loader: what the data stages read a source with.
pub trait Loader: fmt::Debug + Send + Sync {
    /// Its `kind:` name.
    fn name(&self) -> &'static str;

    /// Reads (or generates) the dataset. Decoding runs in parallel on rayon.
    fn load(&self) -> Result<Dataset, DataError>;

    /// Where the data comes from, for logs and error context.
    fn describe(&self) -> String;

    /// The CSV layout, for a CSV source: a model card keeps it, so that `predict` and
    /// `eval` read new files of the same layout.
    fn csv(&self) -> Option<&CsvSource> {
        None
    }
}

/// A configured data source. Build one from a loader (or the pipeline's settings, with
/// [`SourceSpec::configure`]), then call [`Source::load`].
#[derive(Clone)]
pub struct Source(Arc<dyn Loader>);

impl Source {
    /// The source `loader` reads.
    pub fn new(loader: impl Loader + 'static) -> Source {
        Source(Arc::new(loader))
    }

    /// Its `kind:` name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Reads (or generates) the dataset. Decoding runs in parallel on rayon.
    pub fn load(&self) -> Result<Dataset, DataError> {
        self.0.load()
    }

    /// A short description of where the data comes from, for logs and error context.
    pub fn describe(&self) -> String {
        self.0.describe()
    }

    /// The CSV layout, for a CSV source.
    pub fn csv(&self) -> Option<&CsvSource> {
        self.0.csv()
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for Source {
    /// The same kind configured alike (every loader's `Debug` shows all its fields).
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name() && format!("{:?}", self.0) == format!("{:?}", other.0)
    }
}

pub(crate) use extension::registered_row;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_has_unique_names() {
        let names: Vec<&str> = SOURCES.iter().map(|e| e.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert_eq!(&SourceSpec::names()[..names.len()], names.as_slice());
    }

    #[test]
    fn round_trips_through_json_with_defaults_filled_in() {
        let idx: SourceSpec = serde_json::from_value(
            serde_json::json!({"kind": "idx", "images": "a", "labels": "b"}),
        )
        .unwrap();
        let json = serde_json::to_value(&idx).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "idx", "images": "a", "labels": "b", "classes": 10})
        );
        assert_eq!(serde_json::from_value::<SourceSpec>(json).unwrap(), idx);
    }
}
