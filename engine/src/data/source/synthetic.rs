//! Seeded synthetic data: Gaussian blobs, one per class, for benchmarks and tests.

use rayon::prelude::*;

use crate::data::dataset::{Dataset, shape_len};
use crate::data::error::DataError;
use crate::data::rng::{Rng, Stream};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Configure, Loader, Source, SourceRule};
use crate::check::{ProbeCx, ProbeFailure, SourceInfo};
use crate::spec::Bounds;

/// Gaussian blobs: class `c`'s mean is `separation` × a standard normal vector drawn
/// from the seed; each sample is its class mean plus noise with standard deviation
/// `noise`. Sample `i` has label `i % classes`, so classes are balanced. With the
/// defaults the classes are easy to separate (mean distance ≈ 2·√(2·d) noise units for
/// `d` values per sample), so a model that learns shows it quickly.
///
/// Every sample is drawn from its own stream, so generation runs in parallel and the
/// result depends only on the fields, never on the number of threads.
///
/// ```ignore
/// let blobs = SyntheticSource { samples: 4096, shape: vec![1, 28, 28], ..SyntheticSource::default() };
/// let dataset = blobs.load()?;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSource {
    /// Number of samples (≥ 1).
    pub samples: usize,
    /// Shape of one sample.
    pub shape: Vec<usize>,
    /// Number of classes (≥ 1).
    pub classes: usize,
    /// Seed of the class means and the noise.
    pub seed: u64,
    /// Scale of the class means (larger is easier).
    pub separation: f32,
    /// Standard deviation of the noise around each mean.
    pub noise: f32,
}

impl Default for SyntheticSource {
    /// 1024 samples of shape `[16]` in 4 classes, seed 0, separation 2, noise 1.
    fn default() -> SyntheticSource {
        SyntheticSource {
            samples: 1024,
            shape: vec![16],
            classes: 4,
            seed: 0,
            separation: 2.0,
            noise: 1.0,
        }
    }
}

impl SyntheticSource {
    /// Generates the dataset (in parallel on rayon).
    pub fn load(&self) -> Result<Dataset, DataError> {
        let config = |detail: String| Err(DataError::Config(format!("synthetic data: {detail}")));
        let width = shape_len(&self.shape).unwrap_or(0);
        if self.shape.is_empty() || width == 0 {
            return config(format!(
                "shape must be non-empty with no zero dimension, found {:?}",
                self.shape
            ));
        }
        if self.samples == 0 || self.samples > u32::MAX as usize {
            return config(format!(
                "samples must be in 1..=4294967295, found {}",
                self.samples
            ));
        }
        if self.classes == 0 {
            return config("classes must be at least 1".to_string());
        }
        if !(self.noise.is_finite() && self.noise >= 0.0 && self.separation.is_finite()) {
            return config(format!(
                "noise must be finite and ≥ 0 and separation finite, found noise {} and separation {}",
                self.noise, self.separation
            ));
        }
        let Some(total) = self.samples.checked_mul(width) else {
            return config(format!(
                "{} samples of shape {:?} are too many",
                self.samples, self.shape
            ));
        };
        let mut features: Vec<f32> = Vec::new();
        if features.try_reserve_exact(total).is_err() {
            return config(format!(
                "{} samples of shape {:?} do not fit in memory",
                self.samples, self.shape
            ));
        }
        features.resize(total, 0.0);

        let means: Vec<Vec<f64>> = (0..self.classes)
            .map(|class| {
                let mut rng = Rng::new(self.seed, Stream::SyntheticMeans, class as u64);
                (0..width)
                    .map(|_| f64::from(self.separation) * rng.normal())
                    .collect()
            })
            .collect();
        features
            .par_chunks_mut(width)
            .enumerate()
            .with_min_len(64)
            .for_each(|(index, sample)| {
                let mut rng = Rng::new(self.seed, Stream::SyntheticSamples, index as u64);
                let mean = &means[index % self.classes];
                let noise = f64::from(self.noise);
                for (values, centres) in sample.chunks_mut(2).zip(mean.chunks(2)) {
                    let (a, b) = rng.normal_pair();
                    for ((value, centre), z) in values.iter_mut().zip(centres).zip([a, b]) {
                        *value = (centre + noise * z) as f32;
                    }
                }
            });
        let labels = (0..self.samples)
            .map(|index| (index % self.classes) as u32)
            .collect();
        Dataset::classification(features, self.shape.clone(), labels, self.classes)
    }
}

/// Synthetic Gaussian blobs' settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    /// Number of samples.
    pub samples: usize,
    /// Per-sample feature shape, e.g. `[784]` or `[1, 28, 28]`.
    pub shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
    /// Standard deviation of the noise around each class centre.
    #[serde(default = "one")]
    pub noise: f32,
}

fn one() -> f32 {
    1.0
}

/// Seeded synthetic data.
pub struct Synthetic;

impl SourceRule for Synthetic {
    type Spec = SyntheticSpec;
    const NAME: &'static str = "synthetic";
    const DESCRIPTION: &'static str =
        "Seeded synthetic classification data (Gaussian blobs), for benchmarks and tests.";

    #[rustfmt::skip]
    fn check(s: &SyntheticSpec, r: &mut Bounds) {
        r.rule("samples", s.samples > 0, "> 0", s.samples, "generate at least one sample");
        r.rule("shape", !s.shape.is_empty() && !s.shape.contains(&0), "non-empty, every dimension > 0", format!("{:?}", s.shape), "e.g. [784]");
        r.rule("classes", s.classes >= 2, ">= 2", s.classes, "classification needs at least two classes");
    }

    fn probe(s: &SyntheticSpec, _: &mut ProbeCx) -> Result<SourceInfo, ProbeFailure> {
        Ok(SourceInfo::classes(s.samples, s.shape.clone(), s.classes))
    }

    fn configure(s: &SyntheticSpec, cx: &Configure) -> Source {
        Source::new(SyntheticSource {
            samples: s.samples,
            shape: s.shape.clone(),
            classes: s.classes,
            seed: cx.seed,
            noise: s.noise,
            ..SyntheticSource::default()
        })
    }
}

impl Loader for SyntheticSource {
    fn name(&self) -> &'static str {
        Synthetic::NAME
    }

    fn load(&self) -> Result<Dataset, DataError> {
        SyntheticSource::load(self)
    }

    fn describe(&self) -> String {
        format!(
            "synthetic {} samples of shape {:?} in {} classes (seed {})",
            self.samples, self.shape, self.classes, self.seed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_balanced_and_separable() {
        let source = SyntheticSource {
            samples: 400,
            shape: vec![2, 3],
            classes: 4,
            seed: 9,
            ..SyntheticSource::default()
        };
        let a = source.load().unwrap();
        let b = source.load().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.class_counts(), vec![100; 4]);
        let other = SyntheticSource {
            seed: 10,
            ..source.clone()
        }
        .load()
        .unwrap();
        assert_ne!(a.features, other.features);

        // Nearest class centroid classifies well above chance.
        let width = a.sample_len();
        let mut centroids = vec![vec![0.0f64; width]; 4];
        for i in 0..a.len() {
            for (c, v) in centroids[a.labels[i] as usize].iter_mut().zip(a.sample(i)) {
                *c += f64::from(*v) / 100.0;
            }
        }
        let correct = (0..a.len())
            .filter(|&i| {
                let distance = |c: &Vec<f64>| -> f64 {
                    c.iter()
                        .zip(a.sample(i))
                        .map(|(m, v)| (m - f64::from(*v)).powi(2))
                        .sum()
                };
                let best = (0..4)
                    .min_by(|&x, &y| distance(&centroids[x]).total_cmp(&distance(&centroids[y])))
                    .unwrap_or(0);
                best == a.labels[i] as usize
            })
            .count();
        assert!(correct > 300, "{correct} of 400");
    }

    #[test]
    fn bad_configuration_is_an_error() {
        for source in [
            SyntheticSource {
                samples: 0,
                ..SyntheticSource::default()
            },
            SyntheticSource {
                classes: 0,
                ..SyntheticSource::default()
            },
            SyntheticSource {
                shape: vec![],
                ..SyntheticSource::default()
            },
            SyntheticSource {
                shape: vec![3, 0],
                ..SyntheticSource::default()
            },
            SyntheticSource {
                noise: f32::NAN,
                ..SyntheticSource::default()
            },
            SyntheticSource {
                samples: usize::MAX,
                ..SyntheticSource::default()
            },
            SyntheticSource {
                shape: vec![usize::MAX, 3],
                ..SyntheticSource::default()
            },
            SyntheticSource {
                samples: 1 << 31,
                shape: vec![1 << 31, 1 << 20],
                ..SyntheticSource::default()
            },
        ] {
            assert!(
                matches!(source.load(), Err(DataError::Config(_))),
                "{source:?}"
            );
        }
    }
}
