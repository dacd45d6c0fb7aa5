//! A small seeded random number generator for the data stages.
//!
//! Owning it (instead of a crate) pins the exact stream: a seed gives the same shuffles,
//! splits and synthetic data on every platform and in every future version, which is
//! what resuming from a checkpoint and bit-for-bit reproducibility rely on.

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, passes BigCrush, and every
/// 64-bit seed is a good seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

/// Purposes that derive independent streams from one user seed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    EpochShuffle = 1,
    Split = 2,
    SyntheticMeans = 3,
    SyntheticSamples = 4,
    Partition = 5,
}

impl Rng {
    /// A generator whose stream depends on the seed, the purpose and one more number
    /// (epoch, class, sample index, ...), so streams for different purposes never overlap
    /// in any way that matters.
    pub(crate) fn new(seed: u64, stream: Stream, index: u64) -> Rng {
        let mixed = mix(mix(seed ^ mix(stream as u64)) ^ index);
        Rng { state: mixed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// A uniform integer in `0..bound` (`bound` > 0). Lemire's multiply-shift; the bias
    /// is below bound / 2^64, far under anything a shuffle could show.
    pub(crate) fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }

    /// A uniform float in [0, 1) with 53 random bits.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal sample (the first of [`Rng::normal_pair`]).
    pub(crate) fn normal(&mut self) -> f64 {
        self.normal_pair().0
    }

    /// Two independent standard normal samples (Box–Muller).
    pub(crate) fn normal_pair(&mut self) -> (f64, f64) {
        let u1 = 1.0 - self.unit(); // in (0, 1], so ln is finite
        let u2 = self.unit();
        let radius = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
        (radius * cos, radius * sin)
    }

    /// Shuffles in place (Fisher–Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// The SplitMix64 finaliser: a bijection on u64 that scrambles every bit.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7, Stream::Split, 0);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(7, Stream::Split, 0);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::new(7, Stream::EpochShuffle, 0);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_stays_in_range_and_normal_is_roughly_standard() {
        let mut r = Rng::new(1, Stream::SyntheticSamples, 3);
        assert!((0..1000).all(|_| r.below(7) < 7));
        let samples: Vec<f64> = (0..20_000).map(|_| r.normal()).collect();
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / samples.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}
