//! Deterministic random numbers.
//!
//! [`hash_uniform`] is a counter-based generator: a pure function of
//! `(seed, layer, step, index)` built only from 32-bit integer operations, so the WGSL
//! copy in `shaders/common.wgsl` produces the same bits on the GPU (dropout masks).
//! [`Rng`] is a seeded sequential generator (SplitMix64) used for parameter
//! initialisation on the CPU.

/// PCG-style 32-bit permutation (the "pcg_hash" of Jarzynski & Olano, 2020).
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// Hash of a seed and three counters. Mirrors `hash_key` in `shaders/common.wgsl`.
pub fn hash_key(seed: u64, layer: u32, step: u32, index: u32) -> u32 {
    let mut h = pcg_hash(seed as u32);
    h = pcg_hash(h ^ (seed >> 32) as u32);
    h = pcg_hash(h ^ layer);
    h = pcg_hash(h ^ step);
    pcg_hash(h ^ index)
}

/// Uniform in `[0, 1)` with 24 bits of resolution, identical on CPU and GPU.
pub fn hash_uniform(seed: u64, layer: u32, step: u32, index: u32) -> f32 {
    (hash_key(seed, layer, step, index) >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Seeded sequential generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// An independent generator for sub-stream `stream` of `seed`.
    pub fn for_stream(seed: u64, stream: u64) -> Rng {
        let mut mixer = Rng::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Rng::new(mixer.next_u64())
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 bits of resolution.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform in `[low, high)`.
    pub fn uniform_in(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// Standard normal (Box–Muller; one value per call for simplicity).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }

    /// `n` values uniform in `[low, high)` as `f32`.
    pub fn vec_uniform(&mut self, n: usize, low: f32, high: f32) -> Vec<f32> {
        (0..n)
            .map(|_| self.uniform_in(low as f64, high as f64) as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_uniform_is_in_range_and_spread() {
        let mut sum = 0.0f64;
        for i in 0..10_000 {
            let u = hash_uniform(42, 1, 7, i);
            assert!((0.0..1.0).contains(&u));
            sum += u as f64;
        }
        assert!((sum / 10_000.0 - 0.5).abs() < 0.02);
        assert_ne!(hash_key(1, 0, 0, 0), hash_key(2, 0, 0, 0));
        assert_ne!(hash_key(1 << 32, 0, 0, 0), hash_key(0, 0, 0, 0));
    }

    #[test]
    fn rng_is_deterministic() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(5);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(5);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        let mut r = Rng::new(9);
        let mean: f64 = (0..20_000).map(|_| r.normal()).sum::<f64>() / 20_000.0;
        assert!(mean.abs() < 0.03);
    }
}
