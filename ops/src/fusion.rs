//! The fusion pass: which layers of a sequential model run inside the kernels of their
//! neighbours. The planner runs [`fuse`] once per model and shows the result (`engine
//! plan`); [`crate::model::GpuModel::build`] executes what it is given — it decides nothing
//! — after [`Fusion::on_device`] settled the one rule that depends on the adapter.
//!
//! The rules, stated over the ops' [`FusionTraits`] (never their kinds: an op joins a
//! fusion by declaring a property and implementing the fused dispatches it promises):
//!
//! - **a relu that is a link of a chain, after an op with `relu_in_store`** folds into
//!   its neighbours when the op after it either has `masks_input_grad` — the op before
//!   applies `max(y, 0)` as it stores (the relu's output aliases its output) and the op
//!   after zeroes its input gradient where that output is not positive (the relu's input
//!   gradient aliases its output gradient) — or `commutes_with_relu`, its backward doing
//!   the relu's (a max pool records no arg-max for a window whose maximum is not
//!   positive). Today:
//!   linear → relu → linear (GEMM epilogues), conv2d → relu → max_pool2d and conv1d →
//!   relu → max_pool1d;
//! - **and a `storable_pool` after that** (a 2x2, stride-2 max pool), when the op before
//!   the relu `stores_pool` and the adapter allows ([`Op::can_store_pool`]): the pool
//!   then dispatches only its backward.
//!
//! `tests/snapshots/fusion__*.snap` show each rule's kernels before and after.

use serde::Serialize;

use crate::gpu::AdapterSummary;
use crate::model::Sequential;
use crate::op::FusionTraits;
#[cfg(doc)]
use crate::op::Op;

/// How one layer runs after fusion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FusedLayer {
    /// Its own kernels.
    Alone,
    /// A relu folded into the layers around it: no kernel of its own.
    Folded,
    /// An op doing a folded relu's work: applying the relu after it as it stores
    /// (`relu_after`, and maybe the pool after that: `pool`), and/or zeroing its input
    /// gradient where the relu before it passed nothing (`mask_before`).
    Fused {
        relu_after: bool,
        mask_before: bool,
        pool: PoolInStore,
    },
    /// An op after a folded relu that commutes with it: it reads the relu's output (the
    /// op before stored it) and its backward does the relu's.
    AfterRelu,
}

/// Whether an op stores the 2x2 max pool after its relu.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolInStore {
    /// No: the pool runs its own forward.
    No,
    /// Where the adapter allows (decided by [`Fusion::on_device`]).
    WhereDeviceAllows,
    /// Yes: the pool dispatches only its backward.
    Yes,
}

/// The fusion of every layer of one model, in layer order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fusion {
    pub layers: Vec<FusedLayer>,
}

/// The fusion pass over `model` (independent of the device; see [`Fusion::on_device`]).
pub fn fuse(model: &Sequential) -> Fusion {
    let traits: Vec<FusionTraits> = model.layers.iter().map(|l| l.op.fusion_traits()).collect();
    let t = |i: usize| traits.get(i).copied().unwrap_or_default();
    let folded: Vec<bool> = (0..model.layers.len())
        .map(|i| {
            t(i).is_relu
                && i > 0
                && model.is_chain_link(i)
                && model.is_chain_link(i + 1)
                && t(i - 1).relu_in_store
                && (t(i + 1).masks_input_grad || t(i + 1).commutes_with_relu)
        })
        .collect();
    let after = |i: usize| folded.get(i + 1).copied().unwrap_or(false);
    let before = |i: usize| i > 0 && folded[i - 1];
    let layers = (0..model.layers.len())
        .map(|i| {
            if folded[i] {
                FusedLayer::Folded
            } else if before(i) && !t(i).masks_input_grad {
                FusedLayer::AfterRelu
            } else if after(i) || before(i) {
                FusedLayer::Fused {
                    relu_after: after(i),
                    mask_before: before(i),
                    pool: if after(i) && t(i).stores_pool && t(i + 2).storable_pool {
                        PoolInStore::WhereDeviceAllows
                    } else {
                        PoolInStore::No
                    },
                }
            } else {
                FusedLayer::Alone
            }
        })
        .collect();
    Fusion { layers }
}

impl Fusion {
    /// Every layer on its own (what runs with fusion off).
    pub fn unfused(model: &Sequential) -> Fusion {
        Fusion {
            layers: vec![FusedLayer::Alone; model.layers.len()],
        }
    }

    /// The fusion on `adapter` at `batch`: every stored pool ([`PoolInStore::WhereDeviceAllows`],
    /// or `Yes`) becomes `Yes` where the op's kernel can store it there, else `No`.
    pub fn on_device(&self, model: &Sequential, adapter: &AdapterSummary, batch: usize) -> Fusion {
        let layers = self
            .layers
            .iter()
            .zip(&model.layers)
            .map(|(f, l)| match *f {
                FusedLayer::Fused {
                    relu_after,
                    mask_before,
                    pool: PoolInStore::WhereDeviceAllows | PoolInStore::Yes,
                } => FusedLayer::Fused {
                    relu_after,
                    mask_before,
                    pool: if l.op.can_store_pool(adapter, &l.input, batch) {
                        PoolInStore::Yes
                    } else {
                        PoolInStore::No
                    },
                },
                f => f,
            })
            .collect();
        Fusion { layers }
    }

    /// Whether the op two layers before layer `i` stores its forward.
    pub fn pool_stored_before(&self, i: usize) -> bool {
        i >= 2 && self.stores_pool(i - 2)
    }

    /// Whether layer `i` stores the pool two layers after it.
    pub fn stores_pool(&self, i: usize) -> bool {
        matches!(
            self.layers.get(i),
            Some(FusedLayer::Fused {
                pool: PoolInStore::Yes,
                ..
            })
        )
    }

    /// Checks that this fusion is one the kernels implement for `model`: each entry fits
    /// its layer's [`FusionTraits`] and agrees with its neighbours (a folded relu is a link
    /// of a chain with a fused layer on each side that does its work). Whether an op can
    /// store its pool depends on the adapter: [`Fusion::on_device`] settles that.
    pub fn check(&self, model: &Sequential) -> Result<(), String> {
        if self.layers.len() != model.layers.len() {
            return Err(format!(
                "fusion of {} layers for a model of {}",
                self.layers.len(),
                model.layers.len()
            ));
        }
        let at = |i: usize| self.layers.get(i).copied();
        let folded = |i: Option<usize>| i.and_then(at) == Some(FusedLayer::Folded);
        let traits = |i: usize| {
            model
                .layers
                .get(i)
                .map_or(FusionTraits::default(), |l| l.op.fusion_traits())
        };
        for (i, (f, l)) in self.layers.iter().zip(&model.layers).enumerate() {
            let prev = i.checked_sub(1);
            let t = traits(i);
            let ok = match *f {
                FusedLayer::Alone => !folded(prev) && !folded(Some(i + 1)),
                FusedLayer::Folded => {
                    t.is_relu
                        && model.is_chain_link(i)
                        && model.is_chain_link(i + 1)
                        && matches!(
                            prev.and_then(at),
                            Some(FusedLayer::Fused {
                                relu_after: true,
                                ..
                            })
                        )
                        && matches!(
                            at(i + 1),
                            Some(
                                FusedLayer::Fused {
                                    mask_before: true,
                                    ..
                                } | FusedLayer::AfterRelu
                            )
                        )
                }
                FusedLayer::Fused {
                    relu_after,
                    mask_before,
                    pool,
                } => {
                    (!relu_after || t.relu_in_store)
                        && (!mask_before || t.masks_input_grad)
                        && relu_after == folded(Some(i + 1))
                        && mask_before == folded(prev)
                        && (pool == PoolInStore::No
                            || (relu_after && t.stores_pool && traits(i + 2).storable_pool))
                }
                FusedLayer::AfterRelu => t.commutes_with_relu && folded(prev),
            };
            if !ok {
                return Err(format!(
                    "layer {i} ({}) cannot run as {f:?} next to {:?} and {:?}",
                    l.op.kind(),
                    prev.and_then(at),
                    at(i + 1)
                ));
            }
        }
        Ok(())
    }

    /// The kernels this model runs, by op (`linear.forward+relu`,
    /// `max_pool2d.backward+relu`): its forward, and its backward in the order it runs
    /// (last layer first), with a `grad_sum` before the backward of a layer whose output
    /// several layers read. A folded relu runs none, a view (flatten) none unless several
    /// layers read its input (then it copies its gradient), and a layer whose output
    /// needs no gradient ([`Sequential::needs_grad`]) runs no backward.
    pub fn kernels(&self, model: &Sequential) -> (Vec<String>, Vec<String>) {
        let mut forward = Vec::new();
        let mut backward = Vec::new();
        let needs = model.needs_grad();
        for (i, (f, l)) in self.layers.iter().zip(&model.layers).enumerate() {
            let kind = l.op.kind();
            let summed = needs[i + 1] && model.consumers.get(i + 1).is_some_and(|c| c.len() > 1);
            if l.op.is_view() || *f == FusedLayer::Folded {
                // A view shares its input's gradient buffer unless several layers read
                // that input; then it copies its gradient into its part.
                let input = l.inputs[0];
                if l.op.is_view()
                    && needs[input]
                    && model.consumers.get(input.0).is_some_and(|c| c.len() > 1)
                {
                    backward.push(format!("{kind}.backward"));
                }
                if summed {
                    backward.push("grad_sum".to_string());
                }
                continue;
            }
            let (fwd, bwd) = match *f {
                FusedLayer::Fused {
                    relu_after,
                    mask_before,
                    pool,
                } => {
                    let pool_kind = model.layers.get(i + 2).map_or("", |p| p.op.kind());
                    (
                        Some(format!(
                            "{kind}.forward{}{}",
                            if relu_after { "+relu" } else { "" },
                            match pool {
                                PoolInStore::No => String::new(),
                                PoolInStore::WhereDeviceAllows =>
                                    format!("(+{pool_kind} where the adapter allows)"),
                                PoolInStore::Yes => format!("+{pool_kind}"),
                            }
                        )),
                        format!("{kind}.backward{}", if mask_before { "+relu" } else { "" }),
                    )
                }
                FusedLayer::AfterRelu => (
                    match i.checked_sub(2).map(|c| self.layers[c]) {
                        Some(FusedLayer::Fused {
                            pool: PoolInStore::Yes,
                            ..
                        }) => None,
                        Some(FusedLayer::Fused {
                            pool: PoolInStore::WhereDeviceAllows,
                            ..
                        }) => Some(format!("{kind}.forward(where it does not)")),
                        _ => Some(format!("{kind}.forward")),
                    },
                    format!("{kind}.backward+relu"),
                ),
                _ => (Some(format!("{kind}.forward")), format!("{kind}.backward")),
            };
            forward.extend(fwd);
            if needs[i + 1] {
                backward.push(bwd);
            }
            // Built forward, run reversed: the sum of the gradient parts of this layer's
            // output (read by several layers) runs just before its backward.
            if summed {
                backward.push("grad_sum".to_string());
            }
        }
        backward.reverse();
        (forward, backward)
    }
}
