//! Batching: the seeded order of each epoch and the gathering of rows into batches.

use rayon::prelude::*;

use super::error::DataError;
use super::rng::{Rng, Stream};
use super::split::Split;

/// Values copied per rayon task at the least; below this a batch is gathered on one
/// thread, where the copy is cheaper than the scheduling.
const MIN_VALUES_PER_TASK: usize = 1 << 14;

/// How a split is cut into batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Samples per batch (≥ 1).
    pub batch_size: usize,
    /// Visit samples in a seeded random order that changes every epoch (otherwise in
    /// split order).
    pub shuffle: bool,
    /// Skip the last batch of an epoch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the shuffles.
    pub seed: u64,
}

/// Samples gathered contiguously for one step.
///
/// A `Batch` is a reusable buffer: [`BatchIter::next_into`] overwrites it in place, and
/// the [`Prefetcher`](super::Prefetcher) takes finished ones back through `recycle`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// Row-major `[rows, ...shape]` features.
    pub features: Vec<f32>,
    /// `rows` class ids (empty for regression).
    pub labels: Vec<u32>,
    /// Row-major `[rows, target_width]` targets for regression, else `None`.
    pub targets: Option<Vec<f32>>,
    /// Samples in this batch (`batch_size`, or fewer for a last batch kept by `drop_last: false`).
    pub rows: usize,
    /// The epoch this batch belongs to.
    pub epoch: u64,
    /// 0-based position of this batch within its epoch.
    pub index_in_epoch: usize,
    /// True for the epoch's final batch (fires epoch-end callbacks).
    pub last_in_epoch: bool,
}

/// The order in which epoch `epoch` visits the `len` samples of a split: a permutation
/// of `0..len` (positions in the split) that is a pure function of `(seed, epoch, len)`,
/// so a resumed run regenerates exactly the order it stopped in.
pub fn epoch_order(seed: u64, epoch: u64, len: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    Rng::new(seed, Stream::EpochShuffle, epoch).shuffle(&mut order);
    order
}

/// Number of batches an epoch over `len` samples yields.
pub fn batches_per_epoch(len: usize, batch_size: usize, drop_last: bool) -> usize {
    match (batch_size, drop_last) {
        (0, _) => 0,
        (size, true) => len / size,
        (size, false) => len.div_ceil(size),
    }
}

/// Produces the batches of a split, epoch after epoch, starting anywhere.
///
/// ```ignore
/// // Resume at epoch 3, batch 17, and run to the end of epoch 9:
/// let batches = BatchIter::new(train.clone(), config, 3)?.starting_at(17).until_epoch(10);
/// for batch in batches { /* upload batch.features, batch.labels */ }
/// ```
#[derive(Debug)]
pub struct BatchIter {
    split: Split,
    config: BatchConfig,
    epoch: u64,
    end_epoch: u64,
    next_batch: usize,
    /// Dataset rows of the current epoch in visiting order.
    rows: Vec<u32>,
}

impl BatchIter {
    /// Batches of epoch `epoch` of `split`, from its first batch; errors if
    /// `batch_size` is 0.
    pub fn new(split: Split, config: BatchConfig, epoch: u64) -> Result<BatchIter, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::Config("batch_size must be at least 1".into()));
        }
        let mut iter = BatchIter {
            split,
            config,
            epoch,
            end_epoch: epoch.saturating_add(1),
            next_batch: 0,
            rows: Vec::new(),
        };
        iter.order_rows();
        Ok(iter)
    }

    /// Skips to batch `batch` (0-based) of the starting epoch, e.g. to resume a
    /// checkpoint taken mid-epoch. A `batch` at or past the epoch's end skips the epoch.
    pub fn starting_at(mut self, batch: usize) -> BatchIter {
        self.next_batch = batch;
        self
    }

    /// Continues through the following epochs up to `end_epoch` (exclusive) instead of
    /// stopping after the starting epoch; each epoch gets its own order.
    pub fn until_epoch(mut self, end_epoch: u64) -> BatchIter {
        self.end_epoch = end_epoch;
        self
    }

    /// Batches in one epoch of this split.
    pub fn batches_per_epoch(&self) -> usize {
        batches_per_epoch(
            self.split.len(),
            self.config.batch_size,
            self.config.drop_last,
        )
    }

    /// `(epoch, batch)` of the batch the next call produces: what a checkpoint stores
    /// to resume with `new(.., epoch).starting_at(batch)`.
    pub fn position(&self) -> (u64, usize) {
        (self.epoch, self.next_batch)
    }

    /// The split being iterated.
    pub fn split(&self) -> &Split {
        &self.split
    }

    /// Writes the next batch into `batch`, reusing its buffers; returns false (leaving
    /// `batch` untouched) when the last epoch is done.
    pub fn next_into(&mut self, batch: &mut Batch) -> bool {
        let per_epoch = self.batches_per_epoch();
        if per_epoch == 0 {
            return false;
        }
        while self.next_batch >= per_epoch {
            if self.epoch.saturating_add(1) >= self.end_epoch {
                return false;
            }
            self.epoch += 1;
            self.next_batch = 0;
            self.order_rows();
        }
        let size = self.config.batch_size;
        let start = self.next_batch * size;
        let rows = &self.rows[start..(start + size).min(self.rows.len())];
        gather(&self.split, rows, batch);
        batch.epoch = self.epoch;
        batch.index_in_epoch = self.next_batch;
        batch.last_in_epoch = self.next_batch + 1 == per_epoch;
        self.next_batch += 1;
        true
    }

    fn order_rows(&mut self) {
        let indices = self.split.indices();
        self.rows = if self.config.shuffle {
            epoch_order(self.config.seed, self.epoch, indices.len())
                .into_iter()
                .map(|position| indices[position as usize])
                .collect()
        } else {
            indices.to_vec()
        };
    }
}

impl Iterator for BatchIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut batch = Batch::default();
        self.next_into(&mut batch).then_some(batch)
    }
}

/// Copies the given dataset rows into `batch` (features in parallel).
fn gather(split: &Split, rows: &[u32], batch: &mut Batch) {
    let dataset = split.dataset();
    let width = dataset.sample_len();
    batch.rows = rows.len();
    batch.features.clear();
    batch.features.resize(rows.len() * width, 0.0);
    batch
        .features
        .par_chunks_mut(width)
        .zip(rows.par_iter())
        .with_min_len((MIN_VALUES_PER_TASK / width).max(1))
        .for_each(|(out, &row)| out.copy_from_slice(dataset.sample(row as usize)));
    batch.labels.clear();
    if dataset.targets.is_none() {
        batch
            .labels
            .extend(rows.iter().map(|&row| dataset.labels[row as usize]));
    }
    match &dataset.targets {
        None => batch.targets = None,
        Some(targets) => {
            let out = batch.targets.get_or_insert_with(Vec::new);
            out.clear();
            let width = dataset.target_width;
            for &row in rows {
                let start = row as usize * width;
                out.extend_from_slice(&targets[start..start + width]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::Dataset;
    use std::sync::Arc;

    fn split(len: usize) -> Split {
        let features = (0..len * 2).map(|i| i as f32).collect();
        let labels = (0..len as u32).map(|i| i % 3).collect();
        let data = Dataset::classification(features, vec![2], labels, 3).unwrap();
        Split::whole(Arc::new(data))
    }

    fn config(batch_size: usize, shuffle: bool, drop_last: bool) -> BatchConfig {
        BatchConfig {
            batch_size,
            shuffle,
            drop_last,
            seed: 11,
        }
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(1, 0, 100);
        assert_eq!(a, epoch_order(1, 0, 100));
        assert_ne!(a, epoch_order(1, 1, 100));
        assert_ne!(a, epoch_order(2, 0, 100));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<u32>>());
    }

    #[test]
    fn batches_gather_rows_and_labels() {
        let batches: Vec<Batch> = BatchIter::new(split(5), config(2, false, false), 0)
            .unwrap()
            .collect();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[1].features, vec![4.0, 5.0, 6.0, 7.0]);
        assert_eq!(batches[1].labels, vec![2, 0]);
        assert_eq!(batches[2].rows, 1);
        assert!(batches[2].last_in_epoch && !batches[1].last_in_epoch);
        let dropped: Vec<Batch> = BatchIter::new(split(5), config(2, false, true), 0)
            .unwrap()
            .collect();
        assert_eq!(dropped.len(), 2);
        assert!(dropped[1].last_in_epoch);
    }

    #[test]
    fn resume_mid_epoch_matches_uninterrupted_run() {
        let full: Vec<Batch> = BatchIter::new(split(50), config(8, true, false), 0)
            .unwrap()
            .until_epoch(3)
            .collect();
        assert_eq!(full.len(), 21);
        let resumed: Vec<Batch> = BatchIter::new(split(50), config(8, true, false), 1)
            .unwrap()
            .starting_at(4)
            .until_epoch(3)
            .collect();
        assert_eq!(resumed[..], full[11..]);
        assert_eq!((resumed[0].epoch, resumed[0].index_in_epoch), (1, 4));
    }

    #[test]
    fn reused_buffers_and_edge_cases() {
        let mut iter = BatchIter::new(split(4), config(4, true, false), 0)
            .unwrap()
            .until_epoch(2);
        let mut batch = Batch::default();
        assert!(iter.next_into(&mut batch));
        let capacity = batch.features.capacity();
        assert!(iter.next_into(&mut batch));
        assert_eq!(batch.features.capacity(), capacity);
        assert_eq!(iter.position(), (1, 1));
        assert!(!iter.next_into(&mut batch));
        assert!(BatchIter::new(split(4), config(0, true, false), 0).is_err());
        let empty = BatchIter::new(split(3), config(4, true, true), 0).unwrap();
        assert_eq!(empty.until_epoch(u64::MAX).count(), 0);
        let past = BatchIter::new(split(4), config(2, false, false), 0)
            .unwrap()
            .starting_at(9);
        assert_eq!(past.count(), 0);
    }

    #[test]
    fn regression_targets_are_gathered() {
        let data =
            Dataset::regression(vec![0.0, 1.0, 2.0], vec![1], vec![10.0, 11.0, 12.0], 1).unwrap();
        let iter =
            BatchIter::new(Split::whole(Arc::new(data)), config(2, false, false), 0).unwrap();
        let batches: Vec<Batch> = iter.collect();
        assert_eq!(batches[1].targets, Some(vec![12.0]));
        assert!(batches[0].labels.is_empty());
    }
}
