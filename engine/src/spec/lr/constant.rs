//! `constant`: the optimizer's `lr` throughout.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LrRule;

/// No settings besides `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// The constant schedule.
pub struct Constant;

impl LrRule for Constant {
    type Spec = NoSettings;
    const NAME: &'static str = "constant";
    const DESCRIPTION: &'static str = "The optimizer's `lr` throughout.";

    fn lr_at(_: &NoSettings, base: f64, _step: u64, _total: u64) -> f64 {
        base
    }
}
