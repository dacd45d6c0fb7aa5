//! Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection"): cross entropy
//! scaled by `(1 - p)^gamma`, so that well-classified samples count less:
//! `loss = -alpha (1 - p)^gamma log p`, `p` the softmax probability of the label.
//! With `gamma: 0` and `alpha: 1` it is cross entropy.

use engine::extend::{Loss, LossOutput, LossTargets, SpecError, Tensor, Truth, rank_hits};
use schemars::JsonSchema;
use serde::Deserialize;

/// Settings of `fn: focal`, under the loss stage's `params:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FocalSpec {
    /// Focusing parameter: 0 is cross entropy; 2 is the paper's choice.
    #[serde(default = "two")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub gamma: f64,
    /// Weight of every sample's loss.
    #[serde(default = "one")]
    #[schemars(range(min = 0.0))]
    pub alpha: f64,
}

fn two() -> f64 {
    2.0
}

fn one() -> f64 {
    1.0
}

/// The focal loss.
pub struct Focal;

impl Loss for Focal {
    type Spec = FocalSpec;
    const NAME: &'static str = "focal";
    const DESCRIPTION: &'static str =
        "Focal loss (Lin et al. 2017): cross entropy scaled by (1 - p)^gamma, over class logits.";
    const TARGETS: LossTargets = LossTargets::Classes;
    const WGSL: &'static str = include_str!("focal.wgsl");

    fn check(spec: &FocalSpec) -> Result<(), SpecError> {
        if !(0.0..=10.0).contains(&spec.gamma) {
            return Err(SpecError::at(
                "gamma",
                format!("`gamma` must be in [0, 10], found {}", spec.gamma),
            ));
        }
        if spec.alpha.is_nan() || spec.alpha <= 0.0 {
            return Err(SpecError::at(
                "alpha",
                format!("`alpha` must be > 0, found {}", spec.alpha),
            ));
        }
        Ok(())
    }

    fn defines(spec: &FocalSpec) -> Vec<(&'static str, String)> {
        // As bit patterns, so that the kernel sees exactly the f32 the reference uses.
        vec![
            ("GAMMA", (spec.gamma as f32).to_bits().to_string()),
            ("ALPHA", (spec.alpha as f32).to_bits().to_string()),
        ]
    }

    fn cpu(spec: &FocalSpec, y: &Tensor, truth: Truth<'_>, rows: usize) -> LossOutput {
        let Truth::Classes(labels) = truth else {
            unreachable!("TARGETS is Classes: the engine hands class ids")
        };
        let (gamma, alpha) = (f64::from(spec.gamma as f32), f64::from(spec.alpha as f32));
        let d = y.len() / y.batch().max(1);
        let mut grad = Tensor::zeros(&y.shape);
        let (mut loss_sum, mut correct, mut top5) = (0.0, 0, 0);
        for (r, &label) in labels.iter().enumerate().take(rows) {
            let z = &y.data[r * d..(r + 1) * d];
            let label = label as usize;
            if label >= d {
                // Not a class of this model: no loss, no gradient (as the kernel does).
                continue;
            }
            let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let e: Vec<f64> = z.iter().map(|&v| f64::from(v - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            let p = e[label] / sum;
            // 1 - p summed over the other classes (no cancellation near p = 1); floored
            // as the kernel floors it, where pow(0, y) is undefined.
            let q = ((sum - e[label]) / sum).max(1e-30);
            let log_p = f64::from(z[label] - max) - sum.ln();
            loss_sum += -alpha * q.powf(gamma) * log_p;
            // d loss / d z_j = alpha * g * (delta_jc - p_j)
            let g = gamma * p * q.powf(gamma - 1.0) * log_p - q.powf(gamma);
            let row = &mut grad.data[r * d..(r + 1) * d];
            for (j, (dz, e_j)) in row.iter_mut().zip(&e).enumerate() {
                let delta = if j == label { 1.0 } else { 0.0 };
                *dz = (alpha * g * (delta - e_j / sum)) as f32;
            }
            let (hit, hit5) = rank_hits(z, label);
            correct += hit;
            top5 += hit5;
        }
        LossOutput {
            loss_sum,
            correct,
            top5_correct: top5,
            grad,
        }
    }
}
