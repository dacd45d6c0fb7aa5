//! Extensions from a user's own crate. A binary that depends on `engine` registers its
//! layers ([`Layer`]), losses ([`Loss`]), optimizers ([`OptimizerRule`]), LR schedules
//! ([`LrRule`]), callbacks ([`Callback`]), data sources ([`Source`]) and eval metrics
//! ([`Metric`]) on an [`Engine`] and runs the usual command line; its pipelines use them
//! by name (`- swish`, `fn: focal`, `kind: lion`, `type: csv_log`, `kind: libsvm`,
//! `metrics: [cohen_kappa]`), `validate` checks their settings with located diagnostics,
//! `engine schema` describes them, and `run` executes them in the same runner as the
//! built-in ones.
//!
//! ```no_run
//! # use engine::extend::{Callback, Decision, Event, RunInfo};
//! # #[derive(serde::Deserialize, schemars::JsonSchema)]
//! # struct Spec {}
//! # struct Hello;
//! # impl Callback for Hello {
//! #     type Spec = Spec;
//! #     const NAME: &'static str = "hello";
//! #     const DESCRIPTION: &'static str = "Says hello.";
//! #     fn start(_: Spec, _: &RunInfo) -> Result<Self, String> { Ok(Hello) }
//! #     fn on_event(&mut self, _: &Event) -> Result<Decision, String> { Ok(Decision::Continue) }
//! # }
//! fn main() -> std::process::ExitCode {
//!     engine::Engine::builder().register_callback::<Hello>().main()
//! }
//! ```
//!
//! docs/extending.md walks through a whole extension crate (examples/custom_extension).

mod callback;
mod layer;
mod loss;
mod metric;
mod source;

use std::process::ExitCode;
use std::sync::OnceLock;

pub use callback::{Callback, Decision, Event, RunInfo, SpecError};
pub(crate) use callback::{ErasedCallback, RegisteredCallback, StartFn};
pub use layer::Layer;
pub(crate) use layer::LayerEntry;
pub(crate) use loss::RegisteredLoss;
pub use loss::{Loss, LossTargets};
pub(crate) use metric::RegisteredMetric;
pub use metric::{Metric, MetricTruth};
pub use ops::Tensor;
pub use ops::loss::{LossOutput, Truth, rank_hits};
pub(crate) use source::RegisteredSource;
pub use source::{Source, SourceProbe};

pub use crate::data::Dataset;
pub use crate::run::StepMetricsSummary;

use crate::callbacks::{CALLBACKS, extension_row};
use crate::data::SOURCES;
use crate::data::registered_row as registered_source_row;
use crate::losses::{LOSSES, registered_row as registered_loss_row};
use crate::metrics::{METRICS, registered_row};
pub use crate::spec::{Bounds, LrRule, OptimizerRule};
use crate::spec::{LR_SCHEDULES, LrEntry, OPTIMIZERS, OptimizerEntry};

/// What a binary added to the engine. The registry is process-wide: the parser, the
/// schema and the runner all read it, and it is fixed once [`EngineBuilder::build`] (or
/// [`EngineBuilder::main`]) installs it.
#[derive(Default)]
pub(crate) struct Registry {
    pub callbacks: Vec<RegisteredCallback>,
    /// The registered callbacks as rows of the callback family (`crate::callbacks`).
    pub callback_rows: Vec<crate::callbacks::CallbackEntry>,
    pub losses: Vec<RegisteredLoss>,
    /// The registered losses as rows of the loss family (`crate::losses`).
    pub loss_rows: Vec<crate::losses::LossRow>,
    pub sources: Vec<RegisteredSource>,
    /// The registered sources as rows of the source family (`crate::data::source`).
    pub source_rows: Vec<crate::data::SourceEntry>,
    pub layers: Vec<LayerEntry>,
    /// Registered LR schedules (the built-in ones are `spec::LR_SCHEDULES`).
    pub lr_schedules: Vec<LrEntry>,
    /// Registered optimizers (the built-in ones are `spec::OPTIMIZERS`).
    pub optimizers: Vec<OptimizerEntry>,
    /// The registered metrics as rows of the metric family (`crate::metrics`).
    pub metric_rows: Vec<crate::metrics::MetricRow>,
    /// Built-in and registered names per family, for parse errors and did-you-mean.
    pub callback_names: &'static [&'static str],
    pub loss_names: &'static [&'static str],
    pub source_names: &'static [&'static str],
    pub lr_schedule_names: &'static [&'static str],
    pub optimizer_names: &'static [&'static str],
    pub metric_names: &'static [&'static str],
}

static INSTALLED: OnceLock<Registry> = OnceLock::new();

/// The installed registry (only the built-ins where no binary installed one).
pub(crate) fn registry() -> &'static Registry {
    INSTALLED.get_or_init(|| EngineBuilder::default().into_registry())
}

impl Registry {
    /// Whether the binary added layers, losses or optimizers: they bring WGSL kernels,
    /// which the cpu backend has no native form of (so `auto` stays on wgpu).
    pub fn brings_kernels(&self) -> bool {
        !(self.layers.is_empty() && self.losses.is_empty() && self.optimizers.is_empty())
    }

    pub fn callback(&self, name: &str) -> Option<&RegisteredCallback> {
        self.callbacks.iter().find(|c| c.name == name)
    }

    pub fn loss(&self, name: &str) -> Option<&RegisteredLoss> {
        self.losses.iter().find(|l| l.name == name)
    }

    pub fn source(&self, name: &str) -> Option<&RegisteredSource> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// Collects extensions; [`EngineBuilder::main`] installs them and runs the command line.
#[derive(Default)]
pub struct EngineBuilder {
    callbacks: Vec<RegisteredCallback>,
    losses: Vec<RegisteredLoss>,
    sources: Vec<RegisteredSource>,
    layers: Vec<LayerEntry>,
    lr_schedules: Vec<LrEntry>,
    optimizers: Vec<OptimizerEntry>,
    metrics: Vec<RegisteredMetric>,
}

/// The engine with its extensions installed.
pub struct Engine {
    _installed: (),
}

/// Why [`EngineBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A name is taken by a built-in or by an earlier registration.
    #[error("{family} `{name}` is registered twice (or shadows a built-in one)")]
    Duplicate {
        family: &'static str,
        name: &'static str,
    },
    /// A name is not a lowercase identifier (`snake_case`).
    #[error("{family} name `{name}` is not snake_case (a-z, 0-9, _; starting with a letter)")]
    BadName {
        family: &'static str,
        name: &'static str,
    },
    /// This process already has a registry (pipelines were parsed, or `build` ran).
    #[error("the extension registry is already installed in this process")]
    AlreadyInstalled,
}

impl Engine {
    /// Starts a builder with only the built-in extensions.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Runs the `engine` command line (`validate`, `plan`, `run`, `schema`, ...) on this
    /// process's arguments with the installed extensions.
    ///
    /// Call it from `main` before the program starts any thread: it sets process-wide
    /// state that is only sound to set then (SIGPIPE's default action, `XDG_RUNTIME_DIR`
    /// when unset, and for `bench` the drivers' shader-cache variables).
    pub fn main(&self) -> ExitCode {
        crate::cli::main()
    }
}

impl EngineBuilder {
    /// Adds a callback, written `type: <C::NAME>` in a `callback` stage.
    pub fn register_callback<C: Callback>(mut self) -> Self {
        self.callbacks.push(RegisteredCallback::of::<C>());
        self
    }

    /// Adds a loss, written `fn: <L::NAME>` in a `loss` stage.
    pub fn register_loss<L: Loss>(mut self) -> Self {
        self.losses.push(RegisteredLoss::of::<L>());
        self
    }

    /// Adds a data source, written `kind: <S::NAME>` in a data set's `source`.
    pub fn register_source<S: Source>(mut self) -> Self {
        self.sources.push(RegisteredSource::of::<S>());
        self
    }

    /// Adds a layer, written `- <L::NAME>` or `- <L::NAME>: {...}` in a model.
    pub fn register_layer<L: Layer>(mut self) -> Self {
        self.layers.push(LayerEntry::of::<L>());
        self
    }

    /// Adds a learning-rate schedule, written `schedule: {kind: <R::NAME>, ...}` in an
    /// `lr_schedule` callback.
    pub fn register_lr_schedule<R: LrRule>(mut self) -> Self {
        self.lr_schedules.push(LrEntry::of::<R>());
        self
    }

    /// Adds an optimizer, written `optimizer: {kind: <R::NAME>, lr: ..., ...}` in a step
    /// stage.
    pub fn register_optimizer<R: OptimizerRule>(mut self) -> Self {
        self.optimizers.push(OptimizerEntry::of::<R>());
        self
    }

    /// Adds an eval metric, listed by name in an eval's `metrics:`.
    pub fn register_metric<M: Metric>(mut self) -> Self {
        self.metrics.push(RegisteredMetric::of::<M>());
        self
    }

    /// Checks the names and installs the registry for this process.
    pub fn build(self) -> Result<Engine, RegistryError> {
        let mut seen: Vec<(&'static str, &'static str)> = Vec::new();
        let builtins = [("layer", ops::layer::LAYER_KINDS)];
        let lr_names: Vec<&'static str> = LR_SCHEDULES.iter().map(|e| e.name).collect();
        for (family, names) in builtins {
            seen.extend(names.iter().map(|n| (family, *n)));
        }
        seen.extend(lr_names.iter().map(|n| ("LR schedule", *n)));
        seen.extend(OPTIMIZERS.iter().map(|e| ("optimizer", e.name)));
        seen.extend(CALLBACKS.iter().map(|e| ("callback", e.name)));
        seen.extend(METRICS.iter().map(|m| ("metric", m.name)));
        seen.extend(SOURCES.iter().map(|s| ("data source", s.name)));
        seen.extend(LOSSES.iter().map(|l| ("loss", l.name)));
        let added = self
            .callbacks
            .iter()
            .map(|c| ("callback", c.name))
            .chain(self.losses.iter().map(|l| ("loss", l.name)))
            .chain(self.sources.iter().map(|s| ("data source", s.name)))
            .chain(self.layers.iter().map(|l| ("layer", l.name)))
            .chain(self.lr_schedules.iter().map(|l| ("LR schedule", l.name)))
            .chain(self.optimizers.iter().map(|o| ("optimizer", o.name)))
            .chain(self.metrics.iter().map(|m| ("metric", m.name)));
        // A registered metric is a key of the metrics records: it may not be one of theirs.
        seen.extend(RECORD_KEYS.iter().map(|k| ("metric", *k)));
        for (family, name) in added {
            if !is_snake_case(name) {
                return Err(RegistryError::BadName { family, name });
            }
            if seen.contains(&(family, name)) {
                return Err(RegistryError::Duplicate { family, name });
            }
            seen.push((family, name));
        }
        if INSTALLED.get().is_some() {
            return Err(RegistryError::AlreadyInstalled);
        }
        let layers = self
            .layers
            .iter()
            .map(|l| ops::layer::CustomLayerEntry {
                name: l.name,
                make: l.make,
            })
            .collect();
        ops::layer::install_custom_layers(layers).map_err(|_| RegistryError::AlreadyInstalled)?;
        INSTALLED
            .set(self.into_registry())
            .map_err(|_| RegistryError::AlreadyInstalled)?;
        Ok(Engine { _installed: () })
    }

    /// [`EngineBuilder::build`], then [`Engine::main`]; a registry error is printed and
    /// exits with status 2.
    pub fn main(self) -> ExitCode {
        match self.build() {
            Ok(engine) => engine.main(),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    }

    fn into_registry(self) -> Registry {
        // Leaked once per process: serde's unknown-variant errors want `'static` lists,
        // and the registry lives as long as the process anyway.
        fn names(
            builtin: impl Iterator<Item = &'static str>,
            added: impl Iterator<Item = &'static str>,
        ) -> &'static [&'static str] {
            Box::leak(builtin.chain(added).collect::<Vec<_>>().into_boxed_slice())
        }
        Registry {
            callback_names: names(
                CALLBACKS.iter().map(|e| e.name),
                self.callbacks.iter().map(|c| c.name),
            ),
            callback_rows: self.callbacks.iter().map(extension_row).collect(),
            loss_names: names(
                LOSSES.iter().map(|l| l.name),
                self.losses.iter().map(|l| l.name),
            ),
            loss_rows: self.losses.iter().map(registered_loss_row).collect(),
            source_names: names(
                SOURCES.iter().map(|s| s.name),
                self.sources.iter().map(|s| s.name),
            ),
            source_rows: self.sources.iter().map(registered_source_row).collect(),
            lr_schedule_names: names(
                LR_SCHEDULES.iter().map(|e| e.name),
                self.lr_schedules.iter().map(|e| e.name),
            ),
            optimizer_names: names(
                OPTIMIZERS.iter().map(|e| e.name),
                self.optimizers.iter().map(|e| e.name),
            ),
            metric_names: names(
                METRICS.iter().map(|m| m.name),
                self.metrics.iter().map(|m| m.name),
            ),
            metric_rows: self.metrics.iter().map(registered_row).collect(),
            callbacks: self.callbacks,
            losses: self.losses,
            sources: self.sources,
            layers: self.layers,
            lr_schedules: self.lr_schedules,
            optimizers: self.optimizers,
        }
    }
}

/// The keys of a metrics record besides the scores (`run::metrics::MetricsRecord`).
pub(crate) const RECORD_KEYS: &[&str] = &[
    "event",
    "stage",
    "chain",
    "split",
    "step",
    "epoch",
    "samples",
    "per_class",
    "lr",
    "round",
    "clients",
    "client_accuracy",
    "pipeline_hash",
    "wall_time_s",
];

/// This binary's name, for hints about its own commands (`my_engine schema`); `engine`
/// when it cannot be told.
pub(crate) fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "engine".into())
}

fn is_snake_case(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A loss stage's `params` for registered loss `name` (absent: an empty map, so that
/// missing keys are reported and defaults apply).
pub(crate) fn loss_params(params: Option<&serde_json::Value>) -> serde_json::Value {
    params
        .cloned()
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()))
}

/// Checks a registered loss's `params`; the error carries its field path as the parser
/// marks it.
pub(crate) fn check_loss(name: &str, params: Option<&serde_json::Value>) -> Result<(), String> {
    let entry = registry()
        .loss(name)
        .ok_or_else(|| format!("no loss `{name}` is registered"))?;
    (entry.check)(loss_params(params))
}

/// The device loss of registered loss `name` with `params`.
pub(crate) fn lower_loss(
    name: &str,
    params: Option<&serde_json::Value>,
) -> Result<ops::loss::FusedLoss, String> {
    let entry = registry()
        .loss(name)
        .ok_or_else(|| format!("no loss `{name}` is registered"))?;
    (entry.lower)(loss_params(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct NoSettings {}

    macro_rules! named_callback {
        ($ty:ident, $name:literal) => {
            struct $ty;
            impl Callback for $ty {
                type Spec = NoSettings;
                const NAME: &'static str = $name;
                const DESCRIPTION: &'static str = "test";
                fn start(_: NoSettings, _: &RunInfo) -> Result<Self, String> {
                    Ok($ty)
                }
                fn on_event(&mut self, _: &Event) -> Result<Decision, String> {
                    Ok(Decision::Continue)
                }
            }
        };
    }
    struct StepMetric;
    impl Metric for StepMetric {
        const NAME: &'static str = "step";
        const DESCRIPTION: &'static str = "test";
        const TARGETS: LossTargets = LossTargets::Classes;
        const HIGHER_IS_BETTER: bool = true;
        fn score(_: &[f64], _: MetricTruth<'_>, _: usize) -> f64 {
            0.0
        }
    }

    named_callback!(ShadowsLog, "log");
    named_callback!(Shouting, "Shout");
    named_callback!(Once, "once");

    // Only failing builds here: a successful one installs the registry for the whole
    // test process (examples/custom_extension's tests cover that).
    #[test]
    fn a_name_taken_or_not_snake_case_is_refused() {
        let err = Engine::builder()
            .register_callback::<ShadowsLog>()
            .build()
            .err();
        assert!(matches!(
            err,
            Some(RegistryError::Duplicate { name: "log", .. })
        ));
        let err = Engine::builder()
            .register_callback::<Once>()
            .register_callback::<Once>()
            .build()
            .err();
        assert!(matches!(
            err,
            Some(RegistryError::Duplicate { name: "once", .. })
        ));
        let err = Engine::builder()
            .register_callback::<Shouting>()
            .build()
            .err();
        assert!(matches!(
            err,
            Some(RegistryError::BadName { name: "Shout", .. })
        ));
        // A metric may not take a key the metrics records already use.
        let err = Engine::builder()
            .register_metric::<StepMetric>()
            .build()
            .err();
        assert!(matches!(
            err,
            Some(RegistryError::Duplicate { name: "step", .. })
        ));
    }
}
