//! The arithmetic of a training step: f32, or mixed precision with f16 operands.
//!
//! `F16` is automatic mixed precision as PyTorch's autocast does it on a GPU: the operands
//! of every matrix product (linear layers, convolutions as GEMMs, forward and backward) are
//! rounded to f16 and their products accumulate in f32 (a product of two f16 values is exact
//! in f32, so this is what f16 tensor cores compute); master weights, optimizer state,
//! losses, normalisations and element-wise ops stay f32; the loss is scaled
//! dynamically ([`crate::loss_scale`]). Operands held in f32 buffers are rounded where the
//! kernel loads them; the activations between linear layers are stored as f16
//! ([`crate::model::f16_activations`]), which halves their memory and changes no product
//! (only a relu mask sees the rounded value).

use serde::{Deserialize, Serialize};

/// How a training step computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in 32-bit floats.
    #[default]
    F32,
    /// Matrix-product operands in f16, accumulation and everything else in f32, with
    /// dynamic loss scaling. Needs an adapter with shader-f16.
    F16,
}

impl Precision {
    /// `f32` or `f16`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

/// WGSL for kernels whose operands are rounded to f16: `operand(x)` is `x` rounded to the
/// nearest f16 (inf past f16's range, as the hardware conversion does), as an f32.
pub(crate) const F16_OPERAND_WGSL: &str = "enable f16;
fn operand(x: f32) -> f32 {
    // 65520 rounds to inf in f16; WGSL leaves out-of-range conversions unspecified.
    if (abs(x) >= 65520.0) {
        return bitcast<f32>(0x7f800000u | (bitcast<u32>(x) & 0x80000000u));
    }
    return f32(f16(x));
}
// `x` stored as f16 (an f16 activation), rounded as `operand` does.
fn store_f16(x: f32) -> f16 {
    return f16(operand(x));
}
";

/// The CPU reference of `operand`: `x` rounded to f16 (round to nearest even), as an f32.
pub fn round_to_f16(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x.abs() >= 65520.0 {
        return f32::INFINITY.copysign(x);
    }
    // f16 keeps 10 fraction bits; below its smallest normal (2^-14) the step stays 2^-24.
    let exp = ((x.to_bits() >> 23) & 0xff) as i32 - 127;
    let step = 2f32.powi(exp.max(-14) - 10);
    // Exact: `step` is a power of two, and the quotient has at most 24 significant bits.
    (x / step).round_ties_even() * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_f16_values() {
        assert_eq!(round_to_f16(1.0), 1.0);
        assert_eq!(
            round_to_f16(1.0 + 2f32.powi(-11)),
            1.0,
            "a tie rounds to even"
        );
        assert_eq!(
            round_to_f16(1.0 + 3.0 * 2f32.powi(-11)),
            1.0 + 2f32.powi(-9)
        );
        assert_eq!(round_to_f16(65504.0), 65504.0);
        assert_eq!(round_to_f16(65519.0), 65504.0);
        assert_eq!(round_to_f16(70000.0), f32::INFINITY);
        assert_eq!(round_to_f16(-70000.0), f32::NEG_INFINITY);
        assert_eq!(
            round_to_f16(2f32.powi(-24)),
            2f32.powi(-24),
            "smallest subnormal"
        );
        assert_eq!(round_to_f16(2f32.powi(-26)), 0.0);
        assert_eq!(round_to_f16(0.1), 0.099975586);
    }
}
