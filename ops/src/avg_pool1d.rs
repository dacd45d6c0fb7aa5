//! 1-D average pooling over `[channels, length]` samples (no padding, floor mode):
//! avg_pool2d with `[1, kernel]` windows over `[C, 1, L]` (see `crate::over1d`).

use crate::avg_pool2d::AvgPool2d;
use crate::max_pool1d::Pool1dAttrs;
use crate::op::Op;
use crate::over1d::Over1d;

/// The avg_pool1d op.
pub fn avg_pool1d(attrs: Pool1dAttrs) -> Box<dyn Op> {
    let (inner, check) = attrs.as_2d("avg_pool1d");
    Box::new(Over1d {
        kind: "avg_pool1d",
        inner: AvgPool2d { attrs: inner },
        check,
        min_len: attrs.kernel.max(1),
    })
}
