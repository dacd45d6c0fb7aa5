//! 1-D max pooling over `[channels, length]` samples (no padding, floor mode): max_pool2d
//! with `[1, kernel]` windows over `[C, 1, L]` (see `crate::over1d`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::max_pool2d::{MaxPool2d, PoolAttrs};
use crate::op::{Op, Size2};
use crate::over1d::Over1d;

/// Attributes of a 1-D pooling layer (max or average).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pool1dAttrs {
    /// Window length, e.g. 2.
    pub kernel: usize,
    /// Step between windows (default: equal to `kernel`, i.e. non-overlapping windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
}

impl Pool1dAttrs {
    /// The 2-D pool's attributes, and the check of these.
    pub(crate) fn as_2d(&self, kind: &str) -> (PoolAttrs, Result<(), String>) {
        let stride = self.stride.unwrap_or(self.kernel);
        let check = if self.kernel == 0 {
            Err(format!("{kind} kernel must be at least 1, found 0"))
        } else if stride == 0 {
            Err(format!("{kind} stride must be at least 1, found 0"))
        } else {
            Ok(())
        };
        let attrs = PoolAttrs {
            kernel: Size2::HeightWidth([1, self.kernel]),
            stride: Some(Size2::HeightWidth([1, stride])),
        };
        (attrs, check)
    }
}

/// The max_pool1d op.
pub fn max_pool1d(attrs: Pool1dAttrs) -> Box<dyn Op> {
    let (inner, check) = attrs.as_2d("max_pool1d");
    Box::new(Over1d {
        kind: "max_pool1d",
        inner: MaxPool2d { attrs: inner },
        check,
        min_len: attrs.kernel.max(1),
    })
}
