//! [`LayerSpec`]: the user-facing description of one layer (as written in a pipeline's YAML)
//! and the registry that turns it into an [`Op`].

use schemars::JsonSchema;
use serde::de::{self, Deserializer, EnumAccess, MapAccess, VariantAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::add::Add;
use crate::avg_pool1d::avg_pool1d;
use crate::avg_pool2d::AvgPool2d;
use crate::batch_norm::{BatchNorm, BatchNormAttrs};
use crate::concat::Concat;
use crate::conv1d::{Conv1dAttrs, conv1d};
use crate::conv2d::{Conv2d, Conv2dAttrs};
use crate::dropout::{Dropout, DropoutAttrs};
use crate::embedding::{Embedding, EmbeddingAttrs};
use crate::flatten::Flatten;
use crate::gelu::Gelu;
use crate::global_avg_pool::GlobalAvgPool;
use crate::layer_norm::{LayerNorm, LayerNormAttrs};
use crate::leaky_relu::{LeakyRelu, LeakyReluAttrs};
use crate::linear::{Linear, LinearAttrs};
use crate::max_pool1d::{Pool1dAttrs, max_pool1d};
use crate::max_pool2d::{MaxPool2d, PoolAttrs};
use crate::op::{Op, Size2};
use crate::relu::Relu;
use crate::sigmoid::Sigmoid;
use crate::slice::{Slice, SliceAttrs};
use crate::softmax::Softmax;
use crate::tanh::Tanh;

/// One layer of a sequential model. Written in YAML as a bare name for layers without
/// attributes (`- relu`) or as a one-key map (`- linear: {out: 100}`).
///
/// Deserialisation accepts the bare-name and one-key-map forms from any serde format
/// (including serde_yaml 0.9, whose derived enums only accept `!tag` syntax), and YAML tags.
#[derive(Serialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LayerSpec {
    /// Fully connected layer over a 1-dim input `[features]`: `y = x Wᵀ + b`.
    Linear(LinearAttrs),
    /// 2-D convolution over `[channels, height, width]`; kernel, stride and padding one
    /// number or `[height, width]`.
    Conv2d(Conv2dAttrs),
    /// 2-D max pooling over `[channels, height, width]`, no padding.
    MaxPool2d(PoolAttrs),
    /// 2-D average pooling over `[channels, height, width]`, no padding.
    AvgPool2d(PoolAttrs),
    /// 1-D convolution over `[channels, length]` (a 1-D signal, a sequence of features).
    Conv1d(Conv1dAttrs),
    /// 1-D max pooling over `[channels, length]`, no padding.
    MaxPool1d(Pool1dAttrs),
    /// 1-D average pooling over `[channels, length]`, no padding.
    AvgPool1d(Pool1dAttrs),
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
    /// it with learned `weight` and `bias` (gamma and beta; PyTorch's names).
    LayerNorm(LayerNormAttrs),
    /// Normalises each channel of `[C, ...]` (features of `[F]`) with the batch's mean and
    /// variance in training and running statistics in evaluation, then scales and shifts it
    /// with learned `weight` and `bias` (PyTorch's BatchNorm1d/2d).
    BatchNorm(BatchNormAttrs),
    /// Mean over each channel of `[channels, ...]` (`[C, H, W]` or `[C, L]`): `[channels]`.
    GlobalAvgPool,
    /// Two inputs joined along their first dimension (channels of `[C, H, W]`, features of
    /// `[F]`): `[C1, ...]` and `[C2, ...]` become `[C1 + C2, ...]`. Only in `nodes:`.
    Concat,
    /// Element-wise sum of two inputs of equal shape: the merge of a residual connection.
    /// Only in a model written as `nodes:`, with `inputs: [a, b]`.
    Add,
    /// Probabilities over the last dimension, `exp(x) / Σ exp(x)`: a model whose output
    /// is probabilities (not before `cross_entropy`, which applies softmax itself).
    Softmax,
    /// Log-probabilities over the last dimension, `x - log Σ exp(x)`; before
    /// `cross_entropy` it trains exactly as the logits would.
    LogSoftmax,
    /// Integer ids `[L]` to learned vectors `[L, embedding_dim]` (PyTorch's Embedding); it
    /// reads the model's input, or a `slice` of it, where the data set declares `ids:`.
    Embedding(EmbeddingAttrs),
    /// Positions `start..end` of the first dimension (features of `[F]`, channels of
    /// `[C, H, W]`): part of a model's input, e.g. the id features an `embedding` reads.
    Slice(SliceAttrs),
    /// A layer the program using this crate registered ([`install_custom_layers`]).
    #[schemars(skip)]
    #[serde(untagged)]
    Custom(CustomLayer),
}

/// A layer defined outside this crate: its name, its settings as written, and how to
/// build its op from them.
#[derive(Clone)]
pub struct CustomLayer {
    /// Its registered name.
    pub name: &'static str,
    /// Its settings as written (`{}` for the bare name).
    pub config: serde_json::Value,
    make: MakeOp,
}

/// Builds a registered layer's op from its settings; the error is a message (the engine
/// marks the key at fault in it).
pub type MakeOp = fn(&serde_json::Value) -> Result<Box<dyn Op>, String>;

/// A registered layer: its name and its op's constructor.
#[derive(Clone, Copy)]
pub struct CustomLayerEntry {
    pub name: &'static str,
    pub make: MakeOp,
}

impl std::fmt::Debug for CustomLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name, self.config)
    }
}

impl PartialEq for CustomLayer {
    /// Same name and settings: the same layer (the constructor comes with the name).
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.config == other.config
    }
}

impl Serialize for CustomLayer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.name, &self.config)?;
        map.end()
    }
}

/// The layers registered by the program, and every name (built-in first).
struct Custom {
    entries: Vec<CustomLayerEntry>,
    names: &'static [&'static str],
}

static CUSTOM: std::sync::OnceLock<Custom> = std::sync::OnceLock::new();

fn custom() -> &'static Custom {
    CUSTOM.get_or_init(|| Custom {
        entries: Vec::new(),
        names: LAYER_KINDS,
    })
}

/// Registers layers defined outside this crate, once per process, before any layer is
/// parsed. Names must differ from the built-in ones and from each other.
pub fn install_custom_layers(entries: Vec<CustomLayerEntry>) -> Result<(), String> {
    let mut names: Vec<&'static str> = LAYER_KINDS.to_vec();
    for e in &entries {
        if names.contains(&e.name) {
            return Err(format!(
                "layer `{}` is registered twice (or shadows a built-in one)",
                e.name
            ));
        }
        names.push(e.name);
    }
    // Leaked once per process: serde's unknown-variant errors want `'static` lists.
    let names = &*Box::leak(names.into_boxed_slice());
    CUSTOM.set(Custom { entries, names }).map_err(|_| {
        "layers are already registered in this process (or were parsed before)".to_string()
    })
}

/// Every layer name a pipeline can write: the built-in ones, then the registered ones.
pub fn layer_kinds() -> &'static [&'static str] {
    custom().names
}

/// A registered layer built from `config` (`{}` for the bare name).
fn custom_layer<E: de::Error>(
    name: &str,
    config: serde_json::Value,
) -> Option<Result<LayerSpec, E>> {
    let entry = custom().entries.iter().find(|e| e.name == name)?;
    let config = if config.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        config
    };
    Some(match (entry.make)(&config) {
        // Plans, profiles and messages name a layer by its op's kind.
        Ok(op) if op.kind() != entry.name => Err(E::custom(format!(
            "layer `{}` is registered, but its op's kind() is `{}`: they must be the same",
            entry.name,
            op.kind()
        ))),
        Ok(_) => Ok(LayerSpec::Custom(CustomLayer {
            name: entry.name,
            config,
            make: entry.make,
        })),
        Err(message) => Err(E::custom(message)),
    })
}

/// Every layer kind, with an example spec (the registry walked by tests and docs).
pub fn registry() -> Vec<LayerSpec> {
    vec![
        LayerSpec::Linear(LinearAttrs { out: 4, bias: true }),
        LayerSpec::Conv2d(Conv2dAttrs {
            out_channels: 2,
            kernel: Size2::Both(3),
            stride: Size2::Both(1),
            padding: Size2::Both(1),
            bias: true,
        }),
        LayerSpec::MaxPool2d(PoolAttrs {
            kernel: Size2::Both(2),
            stride: None,
        }),
        LayerSpec::AvgPool2d(PoolAttrs {
            kernel: Size2::Both(2),
            stride: None,
        }),
        LayerSpec::Conv1d(Conv1dAttrs {
            out_channels: 2,
            kernel: 5,
            stride: 1,
            padding: 2,
            bias: true,
        }),
        LayerSpec::MaxPool1d(Pool1dAttrs {
            kernel: 2,
            stride: None,
        }),
        LayerSpec::AvgPool1d(Pool1dAttrs {
            kernel: 2,
            stride: None,
        }),
        LayerSpec::Flatten,
        LayerSpec::Relu,
        LayerSpec::Gelu,
        LayerSpec::Tanh,
        LayerSpec::Sigmoid,
        LayerSpec::LeakyRelu(LeakyReluAttrs { slope: 0.01 }),
        LayerSpec::Dropout(DropoutAttrs { p: 0.5 }),
        LayerSpec::LayerNorm(LayerNormAttrs { eps: 1e-5 }),
        LayerSpec::BatchNorm(BatchNormAttrs::default()),
        LayerSpec::GlobalAvgPool,
        LayerSpec::Add,
        LayerSpec::Concat,
        LayerSpec::Softmax,
        LayerSpec::LogSoftmax,
        LayerSpec::Embedding(EmbeddingAttrs {
            num_embeddings: 5,
            embedding_dim: 3,
        }),
        LayerSpec::Slice(SliceAttrs { start: 0, end: 2 }),
    ]
}

impl LayerSpec {
    /// The op implementing this layer.
    pub fn build(&self) -> Box<dyn Op> {
        match *self {
            // Parsing built this op from the same settings and kept the layer only when
            // that succeeded; the constructor is a pure function of them.
            LayerSpec::Custom(ref c) => (c.make)(&c.config).expect("built when parsed"),
            LayerSpec::Linear(attrs) => Box::new(Linear { attrs }),
            LayerSpec::Conv2d(attrs) => Box::new(Conv2d { attrs }),
            LayerSpec::MaxPool2d(attrs) => Box::new(MaxPool2d { attrs }),
            LayerSpec::AvgPool2d(attrs) => Box::new(AvgPool2d { attrs }),
            LayerSpec::Conv1d(attrs) => conv1d(attrs),
            LayerSpec::MaxPool1d(attrs) => max_pool1d(attrs),
            LayerSpec::AvgPool1d(attrs) => avg_pool1d(attrs),
            LayerSpec::Flatten => Box::new(Flatten),
            LayerSpec::Relu => Box::new(Relu),
            LayerSpec::Gelu => Box::new(Gelu),
            LayerSpec::Tanh => Box::new(Tanh),
            LayerSpec::Sigmoid => Box::new(Sigmoid),
            LayerSpec::LeakyRelu(attrs) => Box::new(LeakyRelu { attrs }),
            LayerSpec::Dropout(attrs) => Box::new(Dropout { attrs }),
            LayerSpec::LayerNorm(attrs) => Box::new(LayerNorm { attrs }),
            LayerSpec::BatchNorm(attrs) => Box::new(BatchNorm { attrs }),
            LayerSpec::GlobalAvgPool => Box::new(GlobalAvgPool),
            LayerSpec::Add => Box::new(Add),
            LayerSpec::Concat => Box::new(Concat),
            LayerSpec::Softmax => Box::new(Softmax { log: false }),
            LayerSpec::LogSoftmax => Box::new(Softmax { log: true }),
            LayerSpec::Embedding(attrs) => Box::new(Embedding { attrs }),
            LayerSpec::Slice(attrs) => Box::new(Slice { attrs }),
        }
    }

    /// The kind name, e.g. `"linear"` (same as `build().kind()`).
    pub fn kind(&self) -> &'static str {
        self.build().kind()
    }
}

/// Every variant name, as written in YAML.
pub const LAYER_KINDS: &[&str] = &[
    "linear",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "conv1d",
    "max_pool1d",
    "avg_pool1d",
    "flatten",
    "relu",
    "gelu",
    "tanh",
    "sigmoid",
    "leaky_relu",
    "dropout",
    "layer_norm",
    "batch_norm",
    "global_avg_pool",
    "add",
    "concat",
    "softmax",
    "log_softmax",
    "embedding",
    "slice",
];

/// `relu: {}` or `relu: null` in map form: no attributes allowed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoAttrs {}

fn unit(name: &str) -> Option<LayerSpec> {
    Some(match name {
        "flatten" => LayerSpec::Flatten,
        "relu" => LayerSpec::Relu,
        "gelu" => LayerSpec::Gelu,
        "tanh" => LayerSpec::Tanh,
        "sigmoid" => LayerSpec::Sigmoid,
        "global_avg_pool" => LayerSpec::GlobalAvgPool,
        "add" => LayerSpec::Add,
        "concat" => LayerSpec::Concat,
        "softmax" => LayerSpec::Softmax,
        "log_softmax" => LayerSpec::LogSoftmax,
        _ => return None,
    })
}

/// Reads the attributes of variant `name` through `read` (one of serde's value readers).
macro_rules! with_attrs {
    ($name:expr, $read:ident, $unit:expr) => {
        match $name {
            "linear" => LayerSpec::Linear($read!()),
            "conv2d" => LayerSpec::Conv2d($read!()),
            "max_pool2d" => LayerSpec::MaxPool2d($read!()),
            "avg_pool2d" => LayerSpec::AvgPool2d($read!()),
            "conv1d" => LayerSpec::Conv1d($read!()),
            "max_pool1d" => LayerSpec::MaxPool1d($read!()),
            "avg_pool1d" => LayerSpec::AvgPool1d($read!()),
            "leaky_relu" => LayerSpec::LeakyRelu($read!()),
            "dropout" => LayerSpec::Dropout($read!()),
            "layer_norm" => LayerSpec::LayerNorm($read!()),
            "batch_norm" => LayerSpec::BatchNorm($read!()),
            "embedding" => LayerSpec::Embedding($read!()),
            "slice" => LayerSpec::Slice($read!()),
            other => match unit(other) {
                Some(u) => {
                    $unit;
                    u
                }
                None => return Err(de::Error::unknown_variant(other, layer_kinds())),
            },
        }
    };
}

struct LayerSpecVisitor;

impl<'de> Visitor<'de> for LayerSpecVisitor {
    type Value = LayerSpec;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a layer: a name such as `relu`, or a one-key map such as `linear: {out: 10}`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<LayerSpec, E> {
        if let Some(layer) = custom_layer(v, serde_json::Value::Null) {
            return layer;
        }
        match unit(v) {
            Some(u) => Ok(u),
            None if LAYER_KINDS.contains(&v) => Err(E::custom(format!(
                "layer `{v}` needs attributes, e.g. `{v}: {{...}}`"
            ))),
            None => Err(E::unknown_variant(v, layer_kinds())),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LayerSpec, A::Error> {
        let Some(name) = map.next_key::<String>()? else {
            return Err(de::Error::invalid_length(
                0,
                &"a map with exactly one key (the layer kind)",
            ));
        };
        macro_rules! read {
            () => {
                map.next_value()?
            };
        }
        let spec = if custom().entries.iter().any(|e| e.name == name) {
            let config: serde_json::Value = map.next_value()?;
            custom_layer(&name, config)
                .unwrap_or_else(|| Err(de::Error::unknown_variant(&name, layer_kinds())))?
        } else {
            with_attrs!(name.as_str(), read, map.next_value::<Option<NoAttrs>>()?)
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "a layer is a map with exactly one key (the layer kind), found `{name}` and `{extra}`"
            )));
        }
        Ok(spec)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<LayerSpec, A::Error> {
        let (name, variant) = data.variant::<String>()?;
        if custom().entries.iter().any(|e| e.name == name) {
            let config: serde_json::Value = variant.newtype_variant()?;
            return custom_layer(&name, config)
                .unwrap_or_else(|| Err(de::Error::unknown_variant(&name, layer_kinds())));
        }
        let mut variant = Some(variant);
        macro_rules! read {
            () => {
                variant
                    .take()
                    .ok_or_else(|| de::Error::custom("variant read twice"))?
                    .newtype_variant()?
            };
        }
        let spec = with_attrs!(
            name.as_str(),
            read,
            variant
                .take()
                .ok_or_else(|| de::Error::custom("variant read twice"))?
                .unit_variant()?
        );
        Ok(spec)
    }
}

impl<'de> Deserialize<'de> for LayerSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LayerSpec, D::Error> {
        deserializer.deserialize_any(LayerSpecVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_covers_every_kind_once() {
        let kinds: Vec<&str> = registry().iter().map(|s| s.kind()).collect();
        assert_eq!(kinds, LAYER_KINDS);
        for spec in registry() {
            assert!(spec.build().check_attrs().is_ok(), "{spec:?}");
        }
    }

    #[test]
    fn json_forms_round_trip() {
        for spec in registry() {
            let json = serde_json::to_string(&spec).unwrap();
            let back: LayerSpec = serde_json::from_str(&json).unwrap();
            assert_eq!(back, spec, "{json}");
        }
        let spec: LayerSpec = serde_json::from_str(r#"{"linear": {"out": 3}}"#).unwrap();
        assert_eq!(
            spec,
            LayerSpec::Linear(crate::linear::LinearAttrs { out: 3, bias: true })
        );
    }
}
