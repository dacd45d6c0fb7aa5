//! Learning-rate schedules: one trait ([`LrRule`]), one file per schedule, and one
//! registry ([`LR_SCHEDULES`], plus those a binary registers through `engine::extend`).
//! The parser, the range check, the JSON Schema, the did-you-mean lists and the docs test
//! all read the registry; adding a schedule is its file and one line in the table.

mod constant;
mod cosine;
mod linear_warmup;
mod step;
mod warmup_cosine;

use std::fmt;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use constant::Constant;
use cosine::Cosine;
use linear_warmup::LinearWarmup;
use step::StepDecay;
use warmup_cosine::WarmupCosine;

use super::Bounds;
use super::tagged::{body, registry_member};

/// A learning-rate schedule: its settings (beside `kind:`), their ranges, and the rate.
pub trait LrRule: 'static {
    /// Its settings (with `#[serde(deny_unknown_fields)]`; doc comments become the
    /// editor's hover text).
    type Spec: DeserializeOwned + Serialize + JsonSchema + fmt::Debug + Send + Sync;
    /// The `kind:` name.
    const NAME: &'static str;
    /// One sentence for the schema and the docs.
    const DESCRIPTION: &'static str;

    /// Range rules of the settings, checked by `engine validate`.
    fn check(_spec: &Self::Spec, _bounds: &mut Bounds) {}

    /// The rate at optimizer step `step` (0-based) of `total`, for base rate `base`.
    fn lr_at(spec: &Self::Spec, base: f64, step: u64, total: u64) -> f64;

    /// The step at which a warmup ends, if the schedule has one (shown by `engine plan`).
    fn warmup_steps(_spec: &Self::Spec) -> Option<u64> {
        None
    }
}

/// A registry row: a schedule with its type erased.
pub struct LrEntry {
    pub name: &'static str,
    pub description: &'static str,
    /// Its settings' schema, inline.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// Its settings, deserialised (errors located as the parser expects).
    pub parse: fn(Value) -> Result<LrSchedule, String>,
}

impl LrEntry {
    /// The row of schedule `R`.
    pub const fn of<R: LrRule>() -> LrEntry {
        LrEntry {
            name: R::NAME,
            description: R::DESCRIPTION,
            schema: schema_of::<R>,
            parse: parse_of::<R>,
        }
    }
}

fn schema_of<R: LrRule>(generator: &mut SchemaGenerator) -> Schema {
    R::Spec::json_schema(generator)
}

fn parse_of<R: LrRule>(value: Value) -> Result<LrSchedule, String> {
    let spec = body::<R::Spec, serde_json::Error>(value).map_err(|e| e.to_string())?;
    Ok(LrSchedule(Arc::new(Rule::<R>(spec))))
}

/// The built-in schedules, in the order the docs and the schema list them.
pub static LR_SCHEDULES: &[LrEntry] = &[
    LrEntry::of::<Constant>(),
    LrEntry::of::<StepDecay>(),
    LrEntry::of::<Cosine>(),
    LrEntry::of::<LinearWarmup>(),
    LrEntry::of::<WarmupCosine>(),
];

/// How the learning rate changes with the optimizer step: one of the registered
/// schedules with its settings. Factors multiply the optimizer's `lr`.
#[derive(Clone)]
pub struct LrSchedule(Arc<dyn ErasedRule>);

trait ErasedRule: Send + Sync {
    fn name(&self) -> &'static str;
    fn settings(&self) -> Value;
    fn check(&self, bounds: &mut Bounds);
    fn lr_at(&self, base: f64, step: u64, total: u64) -> f64;
    fn warmup_steps(&self) -> Option<u64>;
}

struct Rule<R: LrRule>(R::Spec);

impl<R: LrRule> ErasedRule for Rule<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }
    fn settings(&self) -> Value {
        // Serialising a settings struct to a JSON value cannot fail.
        serde_json::to_value(&self.0).unwrap_or_default()
    }
    fn check(&self, bounds: &mut Bounds) {
        R::check(&self.0, bounds)
    }
    fn lr_at(&self, base: f64, step: u64, total: u64) -> f64 {
        R::lr_at(&self.0, base, step, total)
    }
    fn warmup_steps(&self) -> Option<u64> {
        R::warmup_steps(&self.0)
    }
}

impl LrSchedule {
    /// The optimizer's `lr` throughout (no `lr_schedule` callback).
    pub fn constant() -> LrSchedule {
        LrSchedule(Arc::new(Rule::<Constant>(constant::NoSettings {})))
    }

    /// Its `kind:` name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Its settings as written (defaults filled in).
    pub fn settings(&self) -> Value {
        self.0.settings()
    }

    /// Its range rules.
    pub fn bounds(&self) -> Bounds {
        let mut bounds = Bounds::default();
        self.0.check(&mut bounds);
        bounds
    }

    /// Learning rate at optimizer step `step` (0-based) of `total` steps.
    pub fn lr_at(&self, base: f64, step: u64, total: u64) -> f64 {
        self.0.lr_at(base, step, total)
    }

    /// The step at which warmup ends, if the schedule has one.
    pub fn warmup_steps(&self) -> Option<u64> {
        self.0.warmup_steps()
    }

    /// Every schedule: the built-in ones, then those the binary registered.
    pub fn entries() -> impl Iterator<Item = &'static LrEntry> {
        LR_SCHEDULES
            .iter()
            .chain(crate::extend::registry().lr_schedules.iter())
    }

    /// Every name a pipeline can write (did-you-mean lists and messages).
    pub fn names() -> &'static [&'static str] {
        crate::extend::registry().lr_schedule_names
    }
}

registry_member!(
    LrSchedule,
    "kind",
    "How the learning rate changes with the optimizer step. Factors multiply the\noptimizer's `lr`."
);

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(json: Value) -> LrSchedule {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn warmup_cosine_ramps_then_decays() {
        let s = schedule(serde_json::json!({"kind": "warmup_cosine", "warmup_steps": 10}));
        assert!((s.lr_at(1.0, 0, 100) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(1.0, 9, 100) - 1.0).abs() < 1e-12);
        assert!((s.lr_at(1.0, 10, 100) - 1.0).abs() < 1e-12);
        assert!(s.lr_at(1.0, 55, 100) < 0.51 && s.lr_at(1.0, 55, 100) > 0.49);
        assert!(s.lr_at(1.0, 100, 100).abs() < 1e-12);
        assert_eq!(s.warmup_steps(), Some(10));
    }

    #[test]
    fn step_decay_multiplies_per_period() {
        let s = schedule(serde_json::json!({"kind": "step", "every": 10, "gamma": 0.5}));
        assert_eq!(s.lr_at(1.0, 9, 100), 1.0);
        assert_eq!(s.lr_at(1.0, 10, 100), 0.5);
        assert_eq!(s.lr_at(1.0, 25, 100), 0.25);
    }

    #[test]
    fn round_trips_through_json_with_defaults_filled_in() {
        let s = schedule(serde_json::json!({"kind": "cosine"}));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "cosine", "min_lr": 0.0}));
        assert_eq!(schedule(json), s);
        assert_eq!(
            LrSchedule::constant(),
            schedule(serde_json::json!({"kind": "constant"}))
        );
    }

    #[test]
    fn the_registry_has_unique_names_each_parsed_by_its_own_row() {
        let names: Vec<&str> = LR_SCHEDULES.iter().map(|e| e.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert_eq!(&LrSchedule::names()[..names.len()], names.as_slice());
    }
}
