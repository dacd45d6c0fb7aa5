//! CPU data stages: load a source, split it, normalise it, and batch it for the device.
//!
//! The entry point is [`prepare`]: a [`DataConfig`] (sources, split, normalisation)
//! becomes a [`PreparedData`] of train / val / test [`Split`]s. A [`BatchIter`] turns a
//! split into [`Batch`]es for one or more epochs (seeded, resumable at any batch), and a
//! [`Prefetcher`] runs it on a background thread so the device never waits on the host.
//! Decoding, normalising and batch assembly run in parallel on rayon; every result is a
//! pure function of the configuration and seeds, whatever the number of threads.
//!
//! Every failure is a [`DataError`] whose message names the file and, inside a file, the
//! 1-based row and column. No input makes these stages panic.
//!
//! ```no_run
//! use engine::data::*;
//!
//! # fn main() -> Result<(), DataError> {
//! let data = prepare(&DataConfig {
//!     split: SplitBy::Fractions {
//!         source: Source::new(CsvSource::new("pipelines/data/digits.csv.gz")),
//!         fractions: Fractions { train: 0.8, val: 0.0, test: 0.2, stratified: true, seed: 0 },
//!     },
//!     normalize: Normalize::Standardize,
//!     ids: None,
//!     normalize_targets: Normalize::None,
//! })?;
//! let config = BatchConfig { batch_size: 64, shuffle: true, drop_last: true, seed: 0 };
//! // Resume at epoch 2, batch 5, and run through epoch 9.
//! let batches = BatchIter::new(data.train.clone(), config, 2)?.starting_at(5).until_epoch(10);
//! let mut prefetcher = Prefetcher::spawn(batches, 2)?;
//! while let Some(batch) = prefetcher.next() {
//!     // upload batch.features ([batch.rows, 64]) and batch.labels, record the step...
//!     prefetcher.recycle(batch);
//! }
//! # Ok(())
//! # }
//! ```

mod batch;
mod dataset;
mod error;
mod normalize;
mod partition;
mod prefetch;
mod prepare;
mod read;
mod rng;
mod source;

pub(crate) use read::open;
pub(crate) use source::registered_row;
mod split;

pub use batch::{Batch, BatchConfig, BatchIter, batches_per_epoch, epoch_order};
pub use dataset::{Dataset, Task};
pub use error::DataError;
pub use normalize::{Normalize, Normalizer};
pub use partition::{Partition, Partitioner, client_seed, partition, sample_clients};
pub use prefetch::Prefetcher;
pub use prepare::{DataConfig, IdFeatures, PreparedData, SplitBy, prepare};
pub use source::{
    Category, Columns, Configure, CsvSource, ExtensionSource, IdxSource, Loader, NpySource,
    ProbeFailure, SOURCES, Source, SourceEntry, SourceInfo, SourceRule, SourceSpec,
    SyntheticSource,
};
pub use split::{Fractions, Split, SplitIndices, split_indices, split_sizes};
