//! The registry of data sources: the closed set of formats the engine reads.
//!
//! Adding a format is one file in this directory plus one variant and one table row here.

use super::{CsvSource, ExtensionSource, IdxSource, NpySource, SyntheticSource};
use crate::data::dataset::Dataset;
use crate::data::error::DataError;

/// A configured data source. Build one from the pipeline spec, then call
/// [`Source::load`].
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `.csv` / `.csv.gz` text.
    Csv(CsvSource),
    /// MNIST-style `.idx` / `.idx.gz` features + labels files.
    Idx(IdxSource),
    /// NumPy `.npy` features + labels files.
    Npy(NpySource),
    /// Seeded Gaussian blobs.
    Synthetic(SyntheticSource),
    /// A source the binary registered (`engine::extend`).
    Extension(ExtensionSource),
}

/// One registry row: the name a pipeline file uses and a one-line description
/// (for `--help`, the JSON Schema and did-you-mean hints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceKind {
    /// The name in pipeline files, e.g. `"csv"`.
    pub name: &'static str,
    /// What it reads, in one line.
    pub description: &'static str,
}

/// Every source kind, in the order documentation lists them.
pub const SOURCE_KINDS: &[SourceKind] = &[
    SourceKind {
        name: "csv",
        description: "delimited text (.csv or .csv.gz): feature columns and a label column",
    },
    SourceKind {
        name: "idx",
        description: "MNIST's IDX format (.idx or .idx.gz): a features file and a labels file",
    },
    SourceKind {
        name: "npy",
        description: "NumPy .npy arrays (little-endian, C order): a features file and a labels file",
    },
    SourceKind {
        name: "synthetic",
        description: "seeded Gaussian blobs of any shape, one per class, for tests and benchmarks",
    },
];

impl Source {
    /// Reads (or generates) the dataset. Decoding runs in parallel on rayon.
    pub fn load(&self) -> Result<Dataset, DataError> {
        match self {
            Source::Csv(source) => source.load(),
            Source::Idx(source) => source.load(),
            Source::Npy(source) => source.load(),
            Source::Synthetic(source) => source.load(),
            Source::Extension(source) => source.load(),
        }
    }

    /// This source's row in [`SOURCE_KINDS`] (or in the binary's registry).
    pub fn kind(&self) -> &'static SourceKind {
        let index = match self {
            Source::Csv(_) => 0,
            Source::Idx(_) => 1,
            Source::Npy(_) => 2,
            Source::Synthetic(_) => 3,
            Source::Extension(source) => return source.kind,
        };
        &SOURCE_KINDS[index]
    }

    /// A short description of where the data comes from, for logs and error context.
    pub fn describe(&self) -> String {
        match self {
            Source::Csv(source) => format!("csv {}", source.path.display()),
            Source::Idx(source) => format!(
                "idx {} + {}",
                source.features.display(),
                source.labels.display()
            ),
            Source::Npy(source) => format!(
                "npy {} + {}",
                source.features.display(),
                source.labels.display()
            ),
            Source::Synthetic(source) => format!(
                "synthetic {} samples of shape {:?} in {} classes (seed {})",
                source.samples, source.shape, source.classes, source.seed
            ),
            Source::Extension(source) => format!("{} {}", source.kind.name, source.config),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_and_match_variants() {
        let sources = [
            Source::Csv(CsvSource::new("a.csv")),
            Source::Idx(IdxSource::new("a", "b")),
            Source::Npy(NpySource::new("a", "b")),
            Source::Synthetic(SyntheticSource::default()),
        ];
        assert_eq!(sources.len(), SOURCE_KINDS.len());
        for (source, kind) in sources.iter().zip(SOURCE_KINDS) {
            assert_eq!(source.kind(), kind);
            assert!(source.describe().starts_with(kind.name));
        }
        let mut names: Vec<&str> = SOURCE_KINDS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SOURCE_KINDS.len());
    }
}
