//! [`LayerSpec`]: the user-facing description of one layer (as written in a pipeline's YAML)
//! and the registry that turns it into an [`Op`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::avg_pool2d::AvgPool2d;
use crate::conv2d::{Conv2d, Conv2dAttrs};
use crate::dropout::{Dropout, DropoutAttrs};
use crate::flatten::Flatten;
use crate::gelu::Gelu;
use crate::layer_norm::{LayerNorm, LayerNormAttrs};
use crate::leaky_relu::{LeakyRelu, LeakyReluAttrs};
use crate::linear::{Linear, LinearAttrs};
use crate::max_pool2d::{MaxPool2d, PoolAttrs};
use crate::op::Op;
use crate::relu::Relu;
use crate::sigmoid::Sigmoid;
use crate::tanh::Tanh;

/// One layer of a sequential model. Written in YAML as a bare name for layers without
/// attributes (`- relu`) or as a one-key map (`- linear: {out: 100}`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LayerSpec {
    /// Fully connected layer over a 1-dim input `[features]`: `y = x Wᵀ + b`.
    Linear(LinearAttrs),
    /// 2-D convolution over `[channels, height, width]`, square kernel.
    Conv2d(Conv2dAttrs),
    /// 2-D max pooling over `[channels, height, width]`, square window, no padding.
    MaxPool2d(PoolAttrs),
    /// 2-D average pooling over `[channels, height, width]`, square window, no padding.
    AvgPool2d(PoolAttrs),
    /// Flattens each sample to one dimension (no computation).
    Flatten,
    /// Rectified linear unit, `max(x, 0)`.
    Relu,
    /// Gaussian error linear unit (tanh approximation).
    Gelu,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid, `1 / (1 + exp(-x))`.
    Sigmoid,
    /// Leaky ReLU: `x` for positive inputs, `slope * x` otherwise.
    LeakyRelu(LeakyReluAttrs),
    /// Randomly zeroes elements with probability `p` during training; identity in evaluation.
    Dropout(DropoutAttrs),
    /// Normalises the last dimension to zero mean and unit variance, then scales and shifts
    /// it with learned `gamma` and `beta`.
    LayerNorm(LayerNormAttrs),
}

/// Every layer kind, with an example spec (the registry walked by tests and docs).
pub fn registry() -> Vec<LayerSpec> {
    vec![
        LayerSpec::Linear(LinearAttrs { out: 4, bias: true }),
        LayerSpec::Conv2d(Conv2dAttrs { out_channels: 2, kernel: 3, stride: 1, padding: 1, bias: true }),
        LayerSpec::MaxPool2d(PoolAttrs { kernel: 2, stride: None }),
        LayerSpec::AvgPool2d(PoolAttrs { kernel: 2, stride: None }),
        LayerSpec::Flatten,
        LayerSpec::Relu,
        LayerSpec::Gelu,
        LayerSpec::Tanh,
        LayerSpec::Sigmoid,
        LayerSpec::LeakyRelu(LeakyReluAttrs { slope: 0.01 }),
        LayerSpec::Dropout(DropoutAttrs { p: 0.5 }),
        LayerSpec::LayerNorm(LayerNormAttrs { eps: 1e-5 }),
    ]
}

impl LayerSpec {
    /// The op implementing this layer.
    pub fn build(&self) -> Box<dyn Op> {
        match *self {
            LayerSpec::Linear(attrs) => Box::new(Linear { attrs }),
            LayerSpec::Conv2d(attrs) => Box::new(Conv2d { attrs }),
            LayerSpec::MaxPool2d(attrs) => Box::new(MaxPool2d { attrs }),
            LayerSpec::AvgPool2d(attrs) => Box::new(AvgPool2d { attrs }),
            LayerSpec::Flatten => Box::new(Flatten),
            LayerSpec::Relu => Box::new(Relu),
            LayerSpec::Gelu => Box::new(Gelu),
            LayerSpec::Tanh => Box::new(Tanh),
            LayerSpec::Sigmoid => Box::new(Sigmoid),
            LayerSpec::LeakyRelu(attrs) => Box::new(LeakyRelu { attrs }),
            LayerSpec::Dropout(attrs) => Box::new(Dropout { attrs }),
            LayerSpec::LayerNorm(attrs) => Box::new(LayerNorm { attrs }),
        }
    }

    /// The kind name, e.g. `"linear"` (same as `build().kind()`).
    pub fn kind(&self) -> &'static str {
        self.build().kind()
    }
}
