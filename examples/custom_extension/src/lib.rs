//! An engine with extensions of its own in every registrable family, used from YAML by
//! name:
//! - `fn: focal` — the focal loss of Lin et al. (2017), a WGSL kernel and a CPU reference;
//! - `type: csv_log` — a callback that appends each epoch's metrics to a CSV file;
//! - `kind: libsvm` — a data source reading LIBSVM / svmlight text (`label i:v i:v ...`);
//! - `- swish` — a layer, `x · sigmoid(beta · x)`, with its WGSL and CPU reference;
//! - `kind: one_cycle` — the 1cycle learning-rate schedule (PyTorch's `OneCycleLR`);
//! - `optimizer: {kind: lion}` — the Lion optimizer, a WGSL kernel and its CPU twin;
//! - `metrics: [cohen_kappa]` — Cohen's kappa, an eval metric scored on the host.
//!
//! docs/extending.md walks through it.

mod csv_log;
mod focal;
mod kappa;
mod libsvm;
mod lion;
mod one_cycle;
mod swish;

pub use csv_log::CsvLog;
pub use focal::Focal;
pub use kappa::CohenKappa;
pub use libsvm::Libsvm;
pub use lion::Lion;
pub use one_cycle::OneCycle;
pub use swish::Swish;

/// The engine with this crate's extensions registered.
pub fn engine() -> engine::extend::EngineBuilder {
    engine::Engine::builder()
        .register_loss::<Focal>()
        .register_callback::<CsvLog>()
        .register_source::<Libsvm>()
        .register_layer::<Swish>()
        .register_lr_schedule::<OneCycle>()
        .register_optimizer::<Lion>()
        .register_metric::<CohenKappa>()
}
