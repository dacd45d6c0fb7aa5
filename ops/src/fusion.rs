//! The fusion pass: which layers of a sequential model run inside the kernels of their
//! neighbours. The planner runs [`fuse`] once per model and shows the result (`engine
//! plan`); [`crate::model::GpuModel::build`] executes what it is given — it decides nothing
//! — after [`Fusion::on_device`] settled the one rule that depends on the adapter.
//!
//! The rules:
//!
//! - **relu between two linear layers**: the linear before it applies `max(y, 0)` in its
//!   GEMM epilogue (the relu's output aliases the linear's), and the linear after it zeroes
//!   its input gradient where that output is not positive (the relu's backward) in the
//!   epilogue of its `dx` GEMM (the relu's input gradient aliases its output gradient);
//! - **relu between a conv2d and a max_pool2d**: the conv applies `max(y, 0)` in its store,
//!   and the pool records no arg-max for a window whose maximum is not positive, so its
//!   backward writes the relu's input gradient (`max_pool(relu(x)) = relu(max_pool(x))`;
//!   the arg-max of a positive maximum is a position where the relu passes the gradient);
//! - **and a 2x2, stride-2 pool after that**, on adapters where the conv's kernel can
//!   store the pooled maximum itself: the pool then dispatches only its backward.

use serde::Serialize;

use crate::conv2d::Conv2d;
use crate::gpu::AdapterSummary;
use crate::layer::LayerSpec;
use crate::max_pool2d::MaxPool2d;
use crate::model::Sequential;

/// How one layer runs after fusion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FusedLayer {
    /// Its own kernels.
    Alone,
    /// A relu folded into the layers around it: no kernel of its own.
    Folded,
    /// A linear layer that applies the relu after it (`relu_after`, forward) and/or the
    /// mask of the relu before it to its input gradient (`mask_before`, backward).
    Linear { relu_after: bool, mask_before: bool },
    /// A conv2d that applies the relu after it in its store, and maybe the max pool after
    /// that.
    Conv { pool: PoolInConv },
    /// A max pool after a folded relu: no arg-max for a non-positive maximum.
    PoolAfterRelu,
}

/// Whether a conv stores the 2x2 max pool after its relu.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolInConv {
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
    let spec = |i: usize| model.layers.get(i).map(|l| &l.spec);
    let is_linear = |i: usize| matches!(spec(i), Some(LayerSpec::Linear(_)));
    let folded: Vec<bool> = (0..model.layers.len())
        .map(|i| {
            matches!(spec(i), Some(LayerSpec::Relu))
                && i > 0
                && model.is_chain_link(i)
                && model.is_chain_link(i + 1)
                && ((is_linear(i - 1) && is_linear(i + 1))
                    || (matches!(spec(i - 1), Some(LayerSpec::Conv2d(_)))
                        && matches!(spec(i + 1), Some(LayerSpec::MaxPool2d(_)))))
        })
        .collect();
    let after = |i: usize| folded.get(i + 1).copied().unwrap_or(false);
    let before = |i: usize| i > 0 && folded[i - 1];
    let layers = (0..model.layers.len())
        .map(|i| match spec(i) {
            _ if folded[i] => FusedLayer::Folded,
            Some(LayerSpec::Linear(_)) if after(i) || before(i) => FusedLayer::Linear {
                relu_after: after(i),
                mask_before: before(i),
            },
            Some(LayerSpec::Conv2d(_)) if after(i) => FusedLayer::Conv {
                pool: match spec(i + 2) {
                    Some(LayerSpec::MaxPool2d(p))
                        if (MaxPool2d { attrs: *p }).is_2x2_stride_2() =>
                    {
                        PoolInConv::WhereDeviceAllows
                    }
                    _ => PoolInConv::No,
                },
            },
            Some(LayerSpec::MaxPool2d(_)) if before(i) => FusedLayer::PoolAfterRelu,
            _ => FusedLayer::Alone,
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

    /// The fusion on `adapter` at `batch`: every conv's pool ([`PoolInConv::WhereDeviceAllows`],
    /// or `Yes`) becomes `Yes` where the conv's kernel can store it there, else `No`.
    pub fn on_device(&self, model: &Sequential, adapter: &AdapterSummary, batch: usize) -> Fusion {
        let layers = self
            .layers
            .iter()
            .zip(&model.layers)
            .map(|(f, l)| match (f, &l.spec) {
                (
                    FusedLayer::Conv {
                        pool: PoolInConv::WhereDeviceAllows | PoolInConv::Yes,
                    },
                    LayerSpec::Conv2d(attrs),
                ) => FusedLayer::Conv {
                    pool: if (Conv2d { attrs: *attrs }).can_store_pool(adapter, &l.input, batch) {
                        PoolInConv::Yes
                    } else {
                        PoolInConv::No
                    },
                },
                (f, _) => *f,
            })
            .collect();
        Fusion { layers }
    }

    /// Whether the conv two layers before layer `i` stores its forward.
    pub fn pool_stored_by_conv(&self, i: usize) -> bool {
        i >= 2
            && self.layers[i - 2]
                == FusedLayer::Conv {
                    pool: PoolInConv::Yes,
                }
    }

    /// Checks that this fusion is one the kernels implement for `model`: each entry fits
    /// its layer and agrees with its neighbours (a folded relu is a link of a chain with a
    /// fused layer on each side that does its work). Whether a conv can store its pool
    /// depends on the adapter: [`Fusion::on_device`] settles that.
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
        for (i, (f, l)) in self.layers.iter().zip(&model.layers).enumerate() {
            let prev = i.checked_sub(1);
            let ok = match (f, &l.spec) {
                (FusedLayer::Alone, _) => !folded(prev) && !folded(Some(i + 1)),
                (FusedLayer::Folded, LayerSpec::Relu)
                    if model.is_chain_link(i) && model.is_chain_link(i + 1) =>
                {
                    let before = prev.and_then(at);
                    let after = at(i + 1);
                    matches!(
                        (before, after),
                        (
                            Some(FusedLayer::Linear {
                                relu_after: true,
                                ..
                            }),
                            Some(FusedLayer::Linear {
                                mask_before: true,
                                ..
                            })
                        ) | (
                            Some(FusedLayer::Conv { .. }),
                            Some(FusedLayer::PoolAfterRelu)
                        )
                    )
                }
                (
                    FusedLayer::Linear {
                        relu_after,
                        mask_before,
                    },
                    LayerSpec::Linear(_),
                ) => *relu_after == folded(Some(i + 1)) && *mask_before == folded(prev),
                (FusedLayer::Conv { pool }, LayerSpec::Conv2d(_)) => {
                    folded(Some(i + 1))
                        && (*pool == PoolInConv::No
                            || matches!(
                                model.layers.get(i + 2).map(|l| &l.spec),
                                Some(LayerSpec::MaxPool2d(p)) if (MaxPool2d { attrs: *p }).is_2x2_stride_2()
                            ))
                }
                (FusedLayer::PoolAfterRelu, LayerSpec::MaxPool2d(_)) => folded(prev),
                _ => false,
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
                    && model.consumers.get(input).is_some_and(|c| c.len() > 1)
                {
                    backward.push(format!("{kind}.backward"));
                }
                if summed {
                    backward.push("grad_sum".to_string());
                }
                continue;
            }
            let (fwd, bwd) = match f {
                FusedLayer::Linear {
                    relu_after,
                    mask_before,
                } => (
                    Some(format!(
                        "{kind}.forward{}",
                        if *relu_after { "+relu" } else { "" }
                    )),
                    format!("{kind}.backward{}", if *mask_before { "+relu" } else { "" }),
                ),
                FusedLayer::Conv { pool } => (
                    Some(format!(
                        "{kind}.forward+relu{}",
                        match pool {
                            PoolInConv::No => "",
                            PoolInConv::WhereDeviceAllows =>
                                "(+max_pool2d where the adapter allows)",
                            PoolInConv::Yes => "+max_pool2d",
                        }
                    )),
                    format!("{kind}.backward"),
                ),
                FusedLayer::PoolAfterRelu => (
                    match i.checked_sub(2).map(|c| self.layers[c]) {
                        Some(FusedLayer::Conv {
                            pool: PoolInConv::Yes,
                        }) => None,
                        Some(FusedLayer::Conv {
                            pool: PoolInConv::WhereDeviceAllows,
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
