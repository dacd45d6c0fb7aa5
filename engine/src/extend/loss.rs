//! Losses from a user's crate: settings, a fused WGSL kernel and a CPU reference.

use std::sync::Arc;

use ops::Tensor;
use ops::loss::{FusedLoss, LossOutput, Truth};
use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;

use super::SpecError;
use super::callback::checked_spec;

pub use ops::loss::LossTargets;

/// A loss a binary adds with
/// [`EngineBuilder::register_loss`](super::EngineBuilder::register_loss).
///
/// Written in a `loss` stage as `fn: <NAME>`, its settings under `params:`. The kernel
/// contract (bindings, substitutions, what each row writes) is
/// [`ops::loss::custom`]'s; [`Loss::cpu`] is the reference the kernel is tested against
/// (see [`crate::testing::check_loss`]).
pub trait Loss: 'static {
    /// Its settings under `params:` (use `#[serde(deny_unknown_fields)]`).
    type Spec: DeserializeOwned + JsonSchema + Send + Sync;
    /// The `fn:` name (snake_case, not a built-in loss's).
    const NAME: &'static str;
    /// One sentence for `engine schema`.
    const DESCRIPTION: &'static str;
    /// Class ids or float values.
    const TARGETS: LossTargets;
    /// The fused forward + backward kernel.
    const WGSL: &'static str;

    /// Checks settings beyond their types (at `engine validate`, located at the field).
    fn check(_spec: &Self::Spec) -> Result<(), SpecError> {
        Ok(())
    }

    /// The kernel's substitutions for these settings, e.g. `("GAMMA", "2.0")`.
    fn defines(_spec: &Self::Spec) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// CPU reference over the first `rows` rows of `y` `[batch, D]`: the summed loss, the
    /// gradient of the sum, and (class targets) the top-1 and top-5 hits.
    fn cpu(spec: &Self::Spec, y: &Tensor, truth: Truth<'_>, rows: usize) -> LossOutput;
}

/// A registered loss with its type erased.
pub(crate) struct RegisteredLoss {
    pub name: &'static str,
    pub description: &'static str,
    pub targets: LossTargets,
    /// Its settings' JSON Schema (a root schema with its own `$defs`).
    pub schema: fn() -> Schema,
    /// Deserialises and checks `params` (errors in the parser's marked form).
    pub check: fn(serde_json::Value) -> Result<(), String>,
    /// The device loss for checked `params`.
    pub lower: fn(serde_json::Value) -> Result<FusedLoss, String>,
}

impl RegisteredLoss {
    pub fn of<L: Loss>() -> RegisteredLoss {
        RegisteredLoss {
            name: L::NAME,
            description: L::DESCRIPTION,
            targets: L::TARGETS,
            schema: || schemars::schema_for!(L::Spec),
            check: |value| checked_spec::<L::Spec>(value, L::check).map(|_| ()),
            lower: |value| {
                let spec = Arc::new(checked_spec::<L::Spec>(value, L::check)?);
                let defines = L::defines(&spec);
                Ok(FusedLoss {
                    name: L::NAME,
                    targets: L::TARGETS,
                    wgsl: L::WGSL,
                    defines,
                    cpu: Arc::new(move |y, truth, rows| L::cpu(&spec, y, truth, rows)),
                })
            },
        }
    }
}
