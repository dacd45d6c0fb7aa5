//! 1-D convolution over `[channels, length]` samples, weight `[out, in, kernel]` (PyTorch's
//! `Conv1d`): a conv2d with a `[1, kernel]` kernel over `[C, 1, L]` (see `crate::over1d`),
//! so it runs conv2d's CPU reference and its kernels for rectangular kernels.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conv2d::{Conv2d, Conv2dAttrs};
use crate::linear::default_true;
use crate::op::{Op, Size2};
use crate::over1d::Over1d;

/// Attributes of a 1-D convolution. Input samples are `[channels, length]`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Conv1dAttrs {
    /// Number of output channels (filters).
    pub out_channels: usize,
    /// Kernel length, e.g. 5.
    pub kernel: usize,
    /// Step between kernel positions (default 1).
    #[serde(default = "one")]
    pub stride: usize,
    /// Zeros added at each end of the input (default 0).
    #[serde(default)]
    pub padding: usize,
    /// Learn one additive bias per output channel (default true).
    #[serde(default = "default_true")]
    pub bias: bool,
}

fn one() -> usize {
    1
}

/// The conv1d op.
pub fn conv1d(attrs: Conv1dAttrs) -> Box<dyn Op> {
    let check = if attrs.out_channels == 0 {
        Err("conv1d out_channels must be at least 1, found 0".to_string())
    } else if attrs.kernel == 0 {
        Err("conv1d kernel must be at least 1, found 0".to_string())
    } else if attrs.stride == 0 {
        Err("conv1d stride must be at least 1, found 0".to_string())
    } else {
        Ok(())
    };
    Box::new(Over1d {
        kind: "conv1d",
        inner: Conv2d {
            attrs: Conv2dAttrs {
                out_channels: attrs.out_channels,
                kernel: Size2::HeightWidth([1, attrs.kernel]),
                stride: Size2::HeightWidth([1, attrs.stride]),
                padding: Size2::HeightWidth([0, attrs.padding]),
                bias: attrs.bias,
            },
        },
        check,
        min_len: attrs.kernel.saturating_sub(2 * attrs.padding).max(1),
    })
}
