//! Dynamic loss scaling for mixed precision, with PyTorch's `GradScaler` semantics: the
//! loss is multiplied by `scale` before backward so that small f16 gradients do not flush
//! to zero; the gradients are divided by it before the update; a step whose gradients hold
//! an inf or NaN is skipped and the scale halved; after `growth_interval` finite steps in a
//! row the scale doubles.
//!
//! This is the CPU reference (and the checkpointed state) of the device-side scaler the
//! f16 training step uses: the step reads `found_inf` on the device and skips its update
//! there, so no read-back enters the step.

use serde::{Deserialize, Serialize};

use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder};

const APPLY_WGSL: &str = include_str!("../../shaders/loss_scale_apply.wgsl");
const UPDATE_WGSL: &str = include_str!("../../shaders/loss_scale_update.wgsl");

/// The scaler's settings (PyTorch's defaults by [`LossScaler::default`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalerConfig {
    /// The first scale, 2^16.
    pub init_scale: f32,
    /// Factor after `growth_interval` finite steps in a row, 2.
    pub growth_factor: f32,
    /// Factor after a step with an inf or NaN gradient, 0.5.
    pub backoff_factor: f32,
    /// Finite steps in a row before the scale grows, 2000.
    pub growth_interval: u32,
}

impl Default for ScalerConfig {
    fn default() -> ScalerConfig {
        ScalerConfig {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

/// The scaler's state, saved in checkpoints (resume continues it exactly).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub config: ScalerConfig,
    /// The current scale.
    pub scale: f32,
    /// Finite steps in a row since the scale last changed.
    pub growth_tracker: u32,
    /// Updates skipped so far. Not counted as optimizer steps: Adam's bias corrections
    /// use the applied updates, as PyTorch's skipped `optimizer.step()` does not count.
    #[serde(default)]
    pub skipped: u32,
}

impl Default for LossScaler {
    fn default() -> LossScaler {
        LossScaler::new(ScalerConfig::default())
    }
}

/// What [`LossScaler::update`] decided for a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaledStep {
    /// The gradients were finite: the optimizer update applies.
    Applied,
    /// A gradient was inf or NaN: the update is skipped.
    Skipped,
}

impl LossScaler {
    /// A scaler at `config.init_scale`.
    pub fn new(config: ScalerConfig) -> LossScaler {
        LossScaler {
            config,
            scale: config.init_scale,
            growth_tracker: 0,
            skipped: 0,
        }
    }

    /// The factor the gradients are multiplied by before the update: `1 / scale`, taken
    /// in f64 and rounded once to f32, as PyTorch does.
    pub fn inv_scale(&self) -> f32 {
        (1.0 / f64::from(self.scale)) as f32
    }

    /// Whether any gradient is inf or NaN (the check the device does while unscaling).
    pub fn found_inf(grads: &[f32]) -> bool {
        grads.iter().any(|g| !g.is_finite())
    }

    /// Advances the state after a step whose gradients `found_inf` or not (PyTorch's
    /// `_amp_update_scale_`), and says whether the step's update applies.
    pub fn update(&mut self, found_inf: bool) -> ScaledStep {
        if found_inf {
            self.scale *= self.config.backoff_factor;
            self.growth_tracker = 0;
            self.skipped += 1;
            return ScaledStep::Skipped;
        }
        let successful = self.growth_tracker + 1;
        if successful == self.config.growth_interval {
            let grown = self.scale * self.config.growth_factor;
            // A scale that would overflow stays where it is.
            if grown.is_finite() {
                self.scale = grown;
            }
            self.growth_tracker = 0;
        } else {
            self.growth_tracker = successful;
        }
        ScaledStep::Applied
    }
}

impl ScalerConfig {
    /// The device state a scaler with these settings starts from: `[scale, 0, 0]`.
    pub fn initial_state(&self) -> [f32; STATE_WORDS] {
        [self.init_scale, 0.0, 0.0]
    }

    /// The dispatch that multiplies the per-sample loss gradient of a `batch`-row
    /// micro-batch (`n` values) by the current scale / `batch` (`state` holds `[scale,
    /// finite updates in a row, updates skipped]`).
    pub(crate) fn apply_dispatch(
        &self,
        k: &mut KernelBuilder,
        state: &BufferRef,
        dlogits: &BufferRef,
        batch: usize,
        n: usize,
    ) -> Result<Dispatch, GpuError> {
        k.compute_1d(
            "loss_scale.apply",
            &[APPLY_WGSL],
            n,
            &[("INV_BATCH", inv_batch_bits(batch))],
            &[state, dlogits],
        )
    }

    /// The dispatch after the gradient norm that flags a non-finite update for the
    /// optimizer to skip (`scalars` word 2) and advances the scale.
    pub(crate) fn update_dispatch(
        &self,
        k: &mut KernelBuilder,
        scalars: &BufferRef,
        state: &BufferRef,
    ) -> Result<Dispatch, GpuError> {
        let bits = |v: f32| v.to_bits().to_string();
        k.compute(
            "loss_scale.update",
            &[UPDATE_WGSL],
            &[
                ("BACKOFF", bits(self.backoff_factor)),
                ("GROWTH", bits(self.growth_factor)),
                ("INTERVAL", self.growth_interval.to_string()),
            ],
            &[scalars, state],
            [1, 1, 1],
        )
    }
}

/// `1 / batch` as f32 bits, for the kernels that apply and remove the scale.
pub(crate) fn inv_batch_bits(batch: usize) -> String {
    (1.0 / batch.max(1) as f32).to_bits().to_string()
}

/// Words of the device state: `[scale, finite updates in a row, updates skipped]`.
pub const STATE_WORDS: usize = 3;

impl LossScaler {
    /// The scaler whose device state is `[scale, finite updates in a row, updates skipped]`
    /// (checkpoints written before the skipped count have two words: none skipped).
    pub fn from_state(config: ScalerConfig, state: &[f32]) -> LossScaler {
        let word = |i: usize| state.get(i).copied().unwrap_or(0.0);
        LossScaler {
            config,
            scale: word(0),
            growth_tracker: word(1) as u32,
            skipped: word(2) as u32,
        }
    }

    /// Its device state (see [`LossScaler::from_state`]).
    pub fn state(&self) -> [f32; STATE_WORDS] {
        [self.scale, self.growth_tracker as f32, self.skipped as f32]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_2_16_and_doubles_after_2000_finite_steps() {
        let mut s = LossScaler::default();
        assert_eq!(s.scale, 65536.0);
        for _ in 0..1999 {
            assert_eq!(s.update(false), ScaledStep::Applied);
        }
        assert_eq!((s.scale, s.growth_tracker), (65536.0, 1999));
        s.update(false);
        assert_eq!((s.scale, s.growth_tracker), (131072.0, 0));
    }

    #[test]
    fn an_inf_halves_the_scale_skips_the_step_and_restarts_the_count() {
        let mut s = LossScaler::default();
        for _ in 0..1500 {
            s.update(false);
        }
        assert!(LossScaler::found_inf(&[1.0, f32::INFINITY]));
        assert!(LossScaler::found_inf(&[f32::NAN]));
        assert!(!LossScaler::found_inf(&[1.0, -3.0e38]));
        assert_eq!(s.update(true), ScaledStep::Skipped);
        assert_eq!((s.scale, s.growth_tracker), (32768.0, 0));
        // The count restarts: 2000 more finite steps to grow again.
        for _ in 0..1999 {
            s.update(false);
        }
        assert_eq!(s.scale, 32768.0);
        s.update(false);
        assert_eq!(s.scale, 65536.0);
    }

    #[test]
    fn a_scale_that_would_overflow_stays_and_unscaling_is_exact_for_powers_of_two() {
        let mut s = LossScaler::new(ScalerConfig {
            init_scale: f32::MAX,
            growth_interval: 1,
            ..ScalerConfig::default()
        });
        s.update(false);
        assert_eq!(s.scale, f32::MAX);
        let s = LossScaler::default();
        assert_eq!(s.inv_scale(), 2f32.powi(-16));
        let g = 3.0e-6f32;
        assert_eq!(g * s.scale * s.inv_scale(), g);
    }

    #[test]
    fn skipped_updates_are_counted_and_old_two_word_states_load() {
        let mut s = LossScaler::default();
        s.update(true);
        s.update(false);
        s.update(true);
        assert_eq!(s.skipped, 2);
        assert_eq!(LossScaler::from_state(s.config, &s.state()), s);
        let old = LossScaler::from_state(s.config, &[1024.0, 7.0]);
        assert_eq!((old.scale, old.growth_tracker, old.skipped), (1024.0, 7, 0));
    }

    #[test]
    fn its_state_round_trips_through_a_checkpoint() {
        let mut s = LossScaler::default();
        for k in 0..2500 {
            s.update(k == 700);
        }
        let saved = serde_json::to_string(&s).unwrap();
        let back: LossScaler = serde_json::from_str(&saved).unwrap();
        assert_eq!(back, s);
        let (mut a, mut b) = (s, back);
        for k in 0..3000 {
            assert_eq!(a.update(k % 997 == 0), b.update(k % 997 == 0));
        }
        assert_eq!(a, b);
    }
}
