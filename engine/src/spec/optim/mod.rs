//! Optimizers: one trait ([`OptimizerRule`]), one file per optimizer (its settings,
//! their ranges, and the device optimizer it lowers to: an [`ops::optim::Optimizer`]
//! with its kernel and CPU reference), and one registry ([`OPTIMIZERS`], plus those a
//! binary registers through `engine::extend`). The parser, the range check, the schema,
//! the did-you-mean lists and the lowering all read the registry.

mod adam;
mod sgd;

use std::fmt;
use std::sync::Arc;

use ops::train::OptimizerKind;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Bounds;
use super::tagged::{body, registry_member};

/// An optimizer as a pipeline writes it: `optimizer: {kind: <NAME>, lr: ..., ...}`.
pub trait OptimizerRule: 'static {
    /// Its settings, `lr` included (with `#[serde(deny_unknown_fields)]`).
    type Spec: DeserializeOwned + Serialize + JsonSchema + fmt::Debug + Send + Sync;
    /// The `kind:` name.
    const NAME: &'static str;
    /// One sentence for the schema and the docs.
    const DESCRIPTION: &'static str;

    /// The base learning rate.
    fn lr(spec: &Self::Spec) -> f64;

    /// Range rules of the settings besides `lr` (checked for every optimizer).
    fn check(_spec: &Self::Spec, _bounds: &mut Bounds) {}

    /// The device optimizer (its kernel and CPU reference) for checked settings.
    fn lower(spec: &Self::Spec) -> OptimizerKind;
}

/// A registry row: an optimizer with its type erased.
pub struct OptimizerEntry {
    pub name: &'static str,
    pub description: &'static str,
    /// Its settings' schema, inline.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// Its settings, deserialised (errors located as the parser expects).
    pub parse: fn(Value) -> Result<OptimizerSpec, String>,
}

impl OptimizerEntry {
    /// The row of optimizer `R`.
    pub const fn of<R: OptimizerRule>() -> OptimizerEntry {
        OptimizerEntry {
            name: R::NAME,
            description: R::DESCRIPTION,
            schema: schema_of::<R>,
            parse: parse_of::<R>,
        }
    }
}

fn schema_of<R: OptimizerRule>(generator: &mut SchemaGenerator) -> Schema {
    R::Spec::json_schema(generator)
}

fn parse_of<R: OptimizerRule>(value: Value) -> Result<OptimizerSpec, String> {
    let spec = body::<R::Spec, serde_json::Error>(value).map_err(|e| e.to_string())?;
    Ok(OptimizerSpec(Arc::new(Rule::<R>(spec))))
}

/// The built-in optimizers, in the order the docs and the schema list them.
pub static OPTIMIZERS: &[OptimizerEntry] = &[
    OptimizerEntry::of::<sgd::Sgd>(),
    OptimizerEntry::of::<adam::Adam>(),
    OptimizerEntry::of::<adam::AdamW>(),
];

/// An optimizer and its hyperparameters: one of the registered optimizers with its
/// settings.
#[derive(Clone)]
pub struct OptimizerSpec(Arc<dyn ErasedRule>);

trait ErasedRule: Send + Sync {
    fn name(&self) -> &'static str;
    fn settings(&self) -> Value;
    fn lr(&self) -> f64;
    fn check(&self, bounds: &mut Bounds);
    fn lower(&self) -> OptimizerKind;
}

struct Rule<R: OptimizerRule>(R::Spec);

impl<R: OptimizerRule> ErasedRule for Rule<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }
    fn settings(&self) -> Value {
        // Serialising a settings struct to a JSON value cannot fail.
        serde_json::to_value(&self.0).unwrap_or_default()
    }
    fn lr(&self) -> f64 {
        R::lr(&self.0)
    }
    fn check(&self, bounds: &mut Bounds) {
        R::check(&self.0, bounds)
    }
    fn lower(&self) -> OptimizerKind {
        R::lower(&self.0)
    }
}

impl OptimizerSpec {
    /// Its `kind:` name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Its settings as written (defaults filled in).
    pub fn settings(&self) -> Value {
        self.0.settings()
    }

    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        self.0.lr()
    }

    /// Its range rules, `lr`'s first.
    #[rustfmt::skip]
    pub fn bounds(&self) -> Bounds {
        let lr = self.lr();
        let mut bounds = Bounds::default();
        bounds.rule("lr", lr > 0.0 && lr.is_finite(), "> 0", lr, "typical values: 0.1 for sgd, 0.001 for adam");
        self.0.check(&mut bounds);
        bounds
    }

    /// The device optimizer.
    pub fn lower(&self) -> OptimizerKind {
        self.0.lower()
    }

    /// Every optimizer: the built-in ones, then those the binary registered.
    pub fn entries() -> impl Iterator<Item = &'static OptimizerEntry> {
        OPTIMIZERS
            .iter()
            .chain(crate::extend::registry().optimizers.iter())
    }

    /// Every name a pipeline can write (did-you-mean lists and messages).
    pub fn names() -> &'static [&'static str] {
        crate::extend::registry().optimizer_names
    }
}

registry_member!(
    OptimizerSpec,
    "kind",
    "An optimizer and its hyperparameters."
);

#[cfg(test)]
mod tests {
    use super::*;

    fn optimizer(json: Value) -> OptimizerSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn each_lowers_to_its_device_optimizer_with_defaults_filled_in() {
        let sgd = optimizer(serde_json::json!({"kind": "sgd", "lr": 0.1, "momentum": 0.9}));
        assert_eq!(sgd.lower(), OptimizerKind::sgd(0.9, false, 0.0));
        assert_eq!(sgd.lr(), 0.1);
        let adamw = optimizer(serde_json::json!({"kind": "adamw", "lr": 0.001}));
        assert_eq!(adamw.lower(), OptimizerKind::adamw(0.9, 0.999, 1e-8, 0.0));
        let json = serde_json::to_value(&adamw).unwrap();
        assert_eq!(json["betas"], serde_json::json!([0.9, 0.999]));
        assert_eq!(optimizer(json), adamw);
    }

    #[test]
    fn the_registry_has_unique_names() {
        let names: Vec<&str> = OPTIMIZERS.iter().map(|e| e.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert_eq!(&OptimizerSpec::names()[..names.len()], names.as_slice());
    }
}
