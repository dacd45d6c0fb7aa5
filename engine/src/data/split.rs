//! Splits: which samples of a dataset the train, val and test routines see.

use std::sync::Arc;

use super::dataset::Dataset;
use super::error::DataError;
use super::rng::{Rng, Stream};

/// Tolerance for fractions that should sum to 1 and for `fraction × n` landing a hair
/// below an integer (0.29 × 100 = 28.999999999999996 counts as 29).
const EPSILON: f64 = 1e-9;

/// Some samples of a shared dataset. Cheap to clone (two `Arc`s); what a
/// [`BatchIter`](super::BatchIter) iterates over.
#[derive(Debug, Clone)]
pub struct Split {
    dataset: Arc<Dataset>,
    indices: Arc<[u32]>,
}

impl Split {
    /// The samples `indices` of `dataset`; errors if an index is out of range.
    pub fn new(dataset: Arc<Dataset>, indices: Vec<u32>) -> Result<Split, DataError> {
        if let Some(&index) = indices.iter().find(|&&i| i as usize >= dataset.len()) {
            return Err(DataError::Config(format!(
                "split index {index} is outside the dataset of {} samples",
                dataset.len()
            )));
        }
        Ok(Split {
            dataset,
            indices: indices.into(),
        })
    }

    /// Every sample of `dataset`, in order (a split given by its own files).
    pub fn whole(dataset: Arc<Dataset>) -> Split {
        let indices = (0..dataset.len() as u32).collect();
        Split { dataset, indices }
    }

    /// The dataset the indices point into.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    /// Dataset row of each sample of the split, ascending.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True when the split has no samples.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Samples per class within this split (empty for regression).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.dataset.classes];
        for &i in self.indices.iter() {
            let label = self.dataset.labels.get(i as usize);
            if let Some(count) = label.and_then(|&l| counts.get_mut(l as usize)) {
                *count += 1;
            }
        }
        counts
    }
}

/// A seeded split of one dataset by fractions.
///
/// Rounding rule: each split gets `floor(fraction × n)` samples, except that when the
/// fractions sum to 1 the last split with a non-zero fraction takes every remaining
/// sample, so none is lost (1797 digits at 0.8/0/0.2 give 1437 train, 360 test — as
/// scikit-learn's `train_test_split`). With `stratified`, each split's count of every
/// class is within 1 of its proportional share (the totals are the same as without).
#[derive(Debug, Clone, PartialEq)]
pub struct Fractions {
    /// Fraction of samples for training.
    pub train: f64,
    /// Fraction for validation (may be 0).
    pub val: f64,
    /// Fraction for testing (may be 0).
    pub test: f64,
    /// Keep class proportions in every split (classification only).
    pub stratified: bool,
    /// Seed of the assignment; the same seed gives the same split.
    pub seed: u64,
}

/// Dataset rows of each split, each ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
    pub test: Vec<u32>,
}

/// Assigns the rows of `dataset` to train, val and test by `fractions`,
/// deterministically given the seed.
pub fn split_indices(dataset: &Dataset, fractions: &Fractions) -> Result<SplitIndices, DataError> {
    let sizes = split_sizes(dataset.len(), fractions)?;
    let mut rng = Rng::new(fractions.seed, Stream::Split, 0);
    let order = if fractions.stratified {
        if dataset.targets.is_some() {
            return Err(DataError::Config(
                "a stratified split needs class labels; this dataset has regression targets".into(),
            ));
        }
        stratified_order(dataset, &mut rng)
    } else {
        let mut order: Vec<u32> = (0..dataset.len() as u32).collect();
        rng.shuffle(&mut order);
        order
    };
    let mut rest = order.as_slice();
    let mut take = |count: usize| {
        let (head, tail) = rest.split_at(count);
        rest = tail;
        let mut rows = head.to_vec();
        rows.sort_unstable();
        rows
    };
    Ok(SplitIndices {
        train: take(sizes[0]),
        val: take(sizes[1]),
        test: take(sizes[2]),
    })
}

/// Samples per split under the rounding rule of [`Fractions`].
pub fn split_sizes(n: usize, fractions: &Fractions) -> Result<[usize; 3], DataError> {
    let parts = [fractions.train, fractions.val, fractions.test];
    if parts.iter().any(|f| !f.is_finite() || *f < 0.0) {
        return Err(DataError::Config(format!(
            "split fractions must be numbers ≥ 0, found train {}, val {}, test {}",
            parts[0], parts[1], parts[2]
        )));
    }
    let sum: f64 = parts.iter().sum();
    if sum > 1.0 + EPSILON {
        return Err(DataError::Config(format!(
            "split fractions sum to {sum}, more than 1 (train {}, val {}, test {})",
            parts[0], parts[1], parts[2]
        )));
    }
    let mut sizes = parts.map(|f| ((f * n as f64 + EPSILON).floor() as usize).min(n));
    if (sum - 1.0).abs() <= EPSILON
        && let Some(last) = parts.iter().rposition(|&f| f > 0.0)
    {
        let others: usize = (0..3).filter(|&i| i != last).map(|i| sizes[i]).sum();
        sizes[last] = n.saturating_sub(others);
    }
    if sizes.iter().sum::<usize>() > n {
        return Err(DataError::Config(
            "split fractions ask for more samples than exist".into(),
        ));
    }
    Ok(sizes)
}

/// All rows, ordered so that every prefix holds each class in proportion (±1):
/// each class is shuffled, its k-th member gets the key (k + ½) / class size, and rows
/// are merged by key (ties by class id).
fn stratified_order(dataset: &Dataset, rng: &mut Rng) -> Vec<u32> {
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); dataset.classes];
    for (row, &label) in dataset.labels.iter().enumerate() {
        members[label as usize].push(row as u32);
    }
    let mut keyed: Vec<(u64, u64, u32, u32)> = Vec::with_capacity(dataset.len()); // (2k+1, size, class, row)
    for (class, rows) in members.iter_mut().enumerate() {
        rng.shuffle(rows);
        let size = rows.len() as u64;
        for (k, &row) in rows.iter().enumerate() {
            keyed.push((2 * k as u64 + 1, size, class as u32, row));
        }
    }
    keyed.sort_unstable_by(|a, b| {
        let left = u128::from(a.0) * u128::from(b.1);
        let right = u128::from(b.0) * u128::from(a.1);
        left.cmp(&right).then(a.2.cmp(&b.2))
    });
    keyed.into_iter().map(|(_, _, _, row)| row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(counts: &[usize]) -> Dataset {
        let labels: Vec<u32> = counts
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| std::iter::repeat_n(c as u32, n))
            .collect();
        let features = (0..labels.len()).map(|i| i as f32).collect();
        Dataset::classification(features, vec![1], labels, counts.len()).unwrap()
    }

    fn fractions(train: f64, val: f64, test: f64, stratified: bool) -> Fractions {
        Fractions {
            train,
            val,
            test,
            stratified,
            seed: 5,
        }
    }

    #[test]
    fn sizes_follow_the_rounding_rule() {
        let sizes = |n, t, v, s| split_sizes(n, &fractions(t, v, s, false)).unwrap();
        assert_eq!(sizes(1797, 0.8, 0.0, 0.2), [1437, 0, 360]);
        assert_eq!(sizes(1797, 0.8, 0.2, 0.0), [1437, 360, 0]);
        assert_eq!(sizes(10, 0.5, 0.2, 0.1), [5, 2, 1]);
        assert_eq!(sizes(100, 0.29, 0.0, 0.0), [29, 0, 0]);
        assert_eq!(sizes(7, 1.0, 0.0, 0.0), [7, 0, 0]);
        assert!(split_sizes(10, &fractions(0.8, 0.3, 0.0, false)).is_err());
        assert!(split_sizes(10, &fractions(-0.1, 0.3, 0.0, false)).is_err());
        assert!(split_sizes(10, &fractions(f64::NAN, 0.3, 0.0, false)).is_err());
    }

    #[test]
    fn stratified_keeps_proportions_and_covers_each_row_once() {
        let data = labelled(&[50, 30, 20, 7]);
        let split = split_indices(&data, &fractions(0.6, 0.2, 0.2, true)).unwrap();
        let mut all: Vec<u32> = [&split.train[..], &split.val[..], &split.test[..]].concat();
        all.sort_unstable();
        assert_eq!(all, (0..107).collect::<Vec<u32>>());
        for (rows, fraction) in [(&split.train, 0.6), (&split.val, 0.2), (&split.test, 0.2)] {
            let mut counts = [0usize; 4];
            for &r in rows.iter() {
                counts[data.labels[r as usize] as usize] += 1;
            }
            for (count, size) in counts.iter().zip([50, 30, 20, 7]) {
                let share = size as f64 * fraction;
                assert!(
                    (*count as f64 - share).abs() <= 2.0,
                    "{counts:?} at {fraction}"
                );
            }
        }
        assert_eq!(
            split,
            split_indices(&data, &fractions(0.6, 0.2, 0.2, true)).unwrap()
        );
        let other = split_indices(
            &data,
            &Fractions {
                seed: 6,
                ..fractions(0.6, 0.2, 0.2, true)
            },
        );
        assert_ne!(split, other.unwrap());
    }

    #[test]
    fn plain_split_is_seeded_and_sorted() {
        let data = labelled(&[40, 40]);
        let a = split_indices(&data, &fractions(0.5, 0.0, 0.25, false)).unwrap();
        assert_eq!((a.train.len(), a.val.len(), a.test.len()), (40, 0, 20));
        assert!(a.train.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            a,
            split_indices(&data, &fractions(0.5, 0.0, 0.25, false)).unwrap()
        );
    }

    #[test]
    fn split_checks_indices() {
        let data = Arc::new(labelled(&[3]));
        assert!(Split::new(data.clone(), vec![0, 3]).is_err());
        let whole = Split::whole(data);
        assert_eq!(whole.indices(), [0, 1, 2]);
        assert_eq!(whole.class_counts(), vec![3]);
    }
}
