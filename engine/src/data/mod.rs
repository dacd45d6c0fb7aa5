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

mod batch;
mod dataset;
mod error;
mod normalize;
mod prefetch;
mod prepare;
mod read;
mod rng;
mod source;
mod split;

pub use batch::{Batch, BatchConfig, BatchIter, batches_per_epoch, epoch_order};
pub use dataset::{Dataset, Task};
pub use error::DataError;
pub use normalize::{Normalize, Normalizer};
pub use prefetch::Prefetcher;
pub use prepare::{DataConfig, PreparedData, SplitBy, prepare};
pub use source::{
    Columns, CsvSource, IdxSource, NpySource, SOURCE_KINDS, Source, SourceKind, SyntheticSource,
};
pub use split::{Fractions, Split, SplitIndices, split_indices};
