//! The pipeline format, version 1: typed, serde-deserialisable, schemars-described.
//!
//! A `Pipeline` is what the YAML says, nothing more: it is never executed. The graph
//! builder turns it into a checked graph and the planner into a plan.

mod bounds;
mod dataset;
mod federated;
mod ids;
mod lr;
mod model;
mod optim;
mod pipeline;
mod stage;
pub(crate) mod tagged;
mod trigger;

pub use crate::callbacks::CallbackSpec;
pub use crate::data::SourceSpec;
pub use crate::losses::LossFn;
pub use crate::metrics::EvalMetric;
pub use bounds::{Bound, Bounds};
pub use dataset::{DatasetSpec, IdFeatures, Normalize, SplitName, SplitSpec};
pub use federated::{
    AggregatorSpec, ClientEval, DirichletPartition, FedAvgM, FedProx, FederatedSpec, LocalSchedule,
    PartitionSpec, PerRound, Scaffold, ServerAdaptive, ShardsPartition,
};
pub use ids::{PortRef, StageId};
pub use lr::{LR_SCHEDULES, LrEntry, LrRule, LrSchedule};
pub use model::{BlockNodeSpec, BlockSpec, ModelSpec, NodeSpec};
pub use optim::{OPTIMIZERS, OptimizerEntry, OptimizerRule, OptimizerSpec};
pub use pipeline::{Backend, DeviceSpec, Pipeline, Schedule};
pub use stage::{
    AccumulateStage, BackwardStage, CallbackStage, EvalStage, F16Fallback, ForwardStage, LoadStage,
    LossStage, Precision, Stage, StepStage,
};
pub use trigger::Trigger;
