//! Federated partitions: the train split divided among clients, seeded. Each client's part
//! is a [`Split`] of the same data set, so a client trains with the ordinary batching.

use super::error::DataError;
use super::rng::{Rng, Stream, mix};
use super::split::Split;

/// How samples are divided among clients.
#[derive(Debug, Clone, PartialEq)]
pub enum Partitioner {
    /// A seeded shuffle cut into near-equal parts (the first `n mod K` one sample larger).
    Iid,
    /// Sort by label (stable), cut into `clients × shards_per_client` equal shards, deal
    /// them out in a seeded order.
    Shards { shards_per_client: usize },
    /// Per class, proportions over clients from Dirichlet(α); redrawn until every client
    /// holds at least `min_size` samples.
    Dirichlet { alpha: f64, min_size: usize },
}

/// Redraws of a Dirichlet partition before giving up on `min_size`.
const DIRICHLET_TRIES: u64 = 1000;

/// A partition: each client's samples as positions in the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// Dataset rows per client, each in the order the partitioner dealt them.
    pub clients: Vec<Vec<u32>>,
}

impl Partition {
    /// Client `k`'s samples as a split.
    pub fn split(&self, train: &Split, k: usize) -> Result<Split, DataError> {
        Split::new(train.dataset().clone(), self.clients[k].clone())
    }

    /// Samples per client.
    pub fn sizes(&self) -> Vec<usize> {
        self.clients.iter().map(Vec::len).collect()
    }

    /// Per client, samples per class.
    pub fn histograms(&self, train: &Split) -> Vec<Vec<usize>> {
        let data = train.dataset();
        self.clients
            .iter()
            .map(|rows| {
                let mut counts = vec![0; data.classes];
                for &r in rows {
                    if let Some(c) = data
                        .labels
                        .get(r as usize)
                        .and_then(|&l| counts.get_mut(l as usize))
                    {
                        *c += 1;
                    }
                }
                counts
            })
            .collect()
    }
}

/// Divides `train` among `clients` clients; a pure function of its arguments.
pub fn partition(
    train: &Split,
    clients: usize,
    how: &Partitioner,
    seed: u64,
) -> Result<Partition, DataError> {
    let n = train.len();
    if clients == 0 || n < clients {
        return Err(DataError::Config(format!(
            "{n} training samples cannot give each of {clients} clients one"
        )));
    }
    let rows = train.indices();
    let mut rng = Rng::new(seed, Stream::Partition, 0);
    let parts = match *how {
        Partitioner::Iid => {
            let mut order = rows.to_vec();
            rng.shuffle(&mut order);
            cut(&order, clients)
        }
        Partitioner::Shards { shards_per_client } => {
            let labels = class_labels(train, "shards")?;
            let shards = clients * shards_per_client;
            if shards_per_client == 0 || !n.is_multiple_of(shards) {
                return Err(DataError::Config(format!(
                    "{n} training samples do not cut into {clients} x {shards_per_client} = {shards} equal shards"
                )));
            }
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&i| labels[i]);
            let sorted: Vec<u32> = order.iter().map(|&i| rows[i]).collect();
            let pieces = cut(&sorted, shards);
            let mut deal: Vec<usize> = (0..shards).collect();
            rng.shuffle(&mut deal);
            deal.chunks(shards_per_client)
                .map(|ids| {
                    ids.iter()
                        .flat_map(|&s| pieces[s].iter().copied())
                        .collect()
                })
                .collect()
        }
        Partitioner::Dirichlet { alpha, min_size } => {
            let labels = class_labels(train, "dirichlet")?;
            if !(alpha.is_finite() && alpha > 0.0) {
                return Err(DataError::Config(format!(
                    "alpha must be positive, found {alpha}"
                )));
            }
            if min_size * clients > n {
                return Err(DataError::Config(format!(
                    "{clients} clients of at least {min_size} samples need {} samples; the train split has {n}",
                    min_size * clients
                )));
            }
            dirichlet(
                rows,
                &labels,
                train.dataset().classes,
                clients,
                alpha,
                min_size,
                seed,
            )?
        }
    };
    Ok(Partition { clients: parts })
}

fn class_labels(train: &Split, kind: &str) -> Result<Vec<u32>, DataError> {
    let data = train.dataset();
    if data.targets.is_some() {
        return Err(DataError::Config(format!(
            "the `{kind}` partition deals samples out by class label; this data set has regression targets"
        )));
    }
    Ok(train
        .indices()
        .iter()
        .map(|&r| data.labels[r as usize])
        .collect())
}

/// The clients of round `round` (0-based): `count` of `clients`, without replacement, in a
/// seeded order that depends on nothing else.
pub fn sample_clients(seed: u64, round: u64, clients: u32, count: u32) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..clients).collect();
    let mut rng = ops::rng::Rng::new(round_key(seed, round, u64::MAX));
    // A partial Fisher–Yates shuffle: the first `count` places.
    for i in 0..count.min(clients) as usize {
        let j = i + rng.below(ids.len() - i);
        ids.swap(i, j);
    }
    ids.truncate(count as usize);
    ids
}

/// The shuffle seed of client `k`'s batches in round `round`.
pub fn client_seed(seed: u64, round: u64, k: u32) -> u64 {
    round_key(seed, round, u64::from(k))
}

fn round_key(seed: u64, round: u64, which: u64) -> u64 {
    mix(seed
        ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ which.wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
}

/// `items` in `parts` consecutive pieces, the first `len mod parts` one longer
/// (numpy's `array_split`).
fn cut(items: &[u32], parts: usize) -> Vec<Vec<u32>> {
    let (base, extra) = (items.len() / parts, items.len() % parts);
    let mut rest = items;
    (0..parts)
        .map(|k| {
            let (head, tail) = rest.split_at(base + usize::from(k < extra));
            rest = tail;
            head.to_vec()
        })
        .collect()
}

fn dirichlet(
    rows: &[u32],
    labels: &[u32],
    classes: usize,
    clients: usize,
    alpha: f64,
    min_size: usize,
    seed: u64,
) -> Result<Vec<Vec<u32>>, DataError> {
    let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); classes];
    for (&r, &l) in rows.iter().zip(labels) {
        by_class[l as usize].push(r);
    }
    for attempt in 0..DIRICHLET_TRIES {
        let mut rng = Rng::new(seed, Stream::Partition, 1 + attempt);
        let mut parts: Vec<Vec<u32>> = vec![Vec::new(); clients];
        for members in &by_class {
            let mut members = members.clone();
            rng.shuffle(&mut members);
            let weights: Vec<f64> = (0..clients).map(|_| gamma(&mut rng, alpha)).collect();
            let total: f64 = weights.iter().sum();
            // Cut points at the cumulative proportions (as the FedML / Flower LDA splitters).
            let mut start = 0;
            let mut cumulative = 0.0;
            for (k, w) in weights.iter().enumerate() {
                cumulative += w;
                let end = if k + 1 == clients {
                    members.len()
                } else {
                    ((cumulative / total) * members.len() as f64).floor() as usize
                };
                let end = end.clamp(start, members.len());
                parts[k].extend_from_slice(&members[start..end]);
                start = end;
            }
        }
        if parts.iter().all(|p| p.len() >= min_size) {
            return Ok(parts);
        }
    }
    Err(DataError::Config(format!(
        "{DIRICHLET_TRIES} Dirichlet(alpha = {alpha}) draws all left a client under {min_size} samples; lower `min_size` or raise `alpha`"
    )))
}

/// A Gamma(shape, 1) sample (Marsaglia and Tsang 2000; shape < 1 through the boost
/// `Gamma(a) = Gamma(a + 1) · U^(1/a)`). Normalised over clients it is a Dirichlet draw.
fn gamma(rng: &mut Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.unit();
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - rng.unit();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::data::Dataset;

    fn train(n: usize, classes: usize) -> Split {
        let labels: Vec<u32> = (0..n).map(|i| (i * 7 % classes) as u32).collect();
        let data = Dataset::classification(vec![0.0; n], vec![1], labels, classes).unwrap();
        Split::whole(Arc::new(data))
    }

    fn covers_once(p: &Partition, n: usize) {
        let mut all: Vec<u32> = p.clients.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..n as u32).collect::<Vec<_>>(),
            "every sample exactly once"
        );
    }

    #[test]
    fn iid_parts_are_near_equal_and_seeded() {
        let t = train(1003, 10);
        let p = partition(&t, 10, &Partitioner::Iid, 4).unwrap();
        covers_once(&p, 1003);
        assert_eq!(
            p.sizes(),
            [101, 101, 101, 100, 100, 100, 100, 100, 100, 100]
        );
        assert_eq!(p, partition(&t, 10, &Partitioner::Iid, 4).unwrap());
        assert_ne!(p, partition(&t, 10, &Partitioner::Iid, 5).unwrap());
    }

    #[test]
    fn shards_give_each_client_few_classes() {
        let t = train(6000, 10);
        let p = partition(
            &t,
            100,
            &Partitioner::Shards {
                shards_per_client: 2,
            },
            1,
        )
        .unwrap();
        covers_once(&p, 6000);
        assert!(p.sizes().iter().all(|&s| s == 60));
        for h in p.histograms(&t) {
            let classes = h.iter().filter(|&&c| c > 0).count();
            assert!(
                (1..=4).contains(&classes),
                "two sorted shards span at most a few classes: {h:?}"
            );
        }
        let err = partition(
            &t,
            7,
            &Partitioner::Shards {
                shards_per_client: 2,
            },
            1,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("do not cut into 7 x 2 = 14 equal shards"),
            "{err}"
        );
    }

    #[test]
    fn dirichlet_respects_min_size_and_skews_with_small_alpha() {
        let t = train(6000, 10);
        let skewed = Partitioner::Dirichlet {
            alpha: 0.1,
            min_size: 10,
        };
        let p = partition(&t, 20, &skewed, 2).unwrap();
        covers_once(&p, 6000);
        assert!(p.sizes().iter().all(|&s| s >= 10));
        let flat = partition(
            &t,
            20,
            &Partitioner::Dirichlet {
                alpha: 1000.0,
                min_size: 10,
            },
            2,
        )
        .unwrap();
        // Share of each client's largest class: near 1/10 when α is large, much larger when small.
        let top_share = |p: &Partition| {
            let h = p.histograms(&t);
            h.iter()
                .map(|c| *c.iter().max().unwrap() as f64 / c.iter().sum::<usize>() as f64)
                .sum::<f64>()
                / h.len() as f64
        };
        assert!(top_share(&p) > 0.4, "{}", top_share(&p));
        assert!(top_share(&flat) < 0.2, "{}", top_share(&flat));
        let err = partition(
            &t,
            20,
            &Partitioner::Dirichlet {
                alpha: 0.5,
                min_size: 400,
            },
            2,
        )
        .unwrap_err();
        assert!(err.to_string().contains("need 8000 samples"), "{err}");
    }
}
