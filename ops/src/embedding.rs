//! Embedding: integer ids → learned vectors. A per-sample input `[L]` (or any shape) of
//! ids becomes `[L, embedding_dim]`, row `id` of the `weight` table `[num_embeddings,
//! embedding_dim]` for each id (PyTorch's `nn.Embedding`, its weight drawn from N(0, 1)).
//!
//! Ids travel as f32 values of the model input (exact up to 2^24): a data set declares
//! which features hold ids (`ids:`, checked whole and in range, never normalised), and the
//! check requires an embedding to read the model's input or a `slice` of it. An id outside
//! `0..num_embeddings` reads a zero vector and receives no gradient.
//!
//! The weight gradient is a scatter-add; with no float atomics in WGSL it runs as a gather:
//! one invocation per table element sums `dy` over the batch's positions holding its id,
//! in position order (deterministic), `num_embeddings · embedding_dim · rows · L` reads.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gpu::{Dispatch, GpuError, KernelBuilder, LayerIo};
use crate::op::{CpuCtx, Op, ParamFill, ParamSpec, ShapeError, numel};
use crate::tensor::Tensor;

const FORWARD_WGSL: &str = include_str!("../../shaders/embedding_forward.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../shaders/embedding_backward.wgsl");
const ZERO_WGSL: &str = include_str!("../../shaders/zero.wgsl");

/// Ids at or past this are not exact in f32.
const MAX_IDS: usize = 1 << 24;

/// Embedding attributes (PyTorch's names).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingAttrs {
    /// Rows of the table: ids lie in `0..num_embeddings`.
    pub num_embeddings: usize,
    /// Length of each vector.
    pub embedding_dim: usize,
}

/// The embedding op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedding {
    /// Its attributes.
    pub attrs: EmbeddingAttrs,
}

/// The table row an id value selects, when it names one (rounded half to even, as WGSL's
/// `round`).
fn row(value: f32, rows: usize) -> Option<usize> {
    let id = value.round_ties_even();
    (id >= 0.0 && (id as usize) < rows).then_some(id as usize)
}

impl Op for Embedding {
    fn kind(&self) -> &'static str {
        "embedding"
    }
    fn check_attrs(&self) -> Result<(), String> {
        let EmbeddingAttrs {
            num_embeddings,
            embedding_dim,
        } = self.attrs;
        if num_embeddings == 0 || embedding_dim == 0 {
            return Err(format!(
                "embedding num_embeddings and embedding_dim must be at least 1, found {num_embeddings} and {embedding_dim}"
            ));
        }
        if num_embeddings > MAX_IDS {
            return Err(format!(
                "embedding num_embeddings must be at most 2^24 = {MAX_IDS} (ids travel as f32), found {num_embeddings}"
            ));
        }
        Ok(())
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ShapeError> {
        if input.is_empty() {
            return Err(ShapeError::new("embedding", "ids of shape [L]", input));
        }
        Ok([input, &[self.attrs.embedding_dim]].concat())
    }
    fn params(&self, _input: &[usize]) -> Vec<ParamSpec> {
        let EmbeddingAttrs {
            num_embeddings,
            embedding_dim,
        } = self.attrs;
        vec![ParamSpec {
            name: "weight",
            shape: vec![num_embeddings, embedding_dim],
            fan_in: num_embeddings,
            fan_out: embedding_dim,
            fill: ParamFill::StandardNormal,
        }]
    }
    fn forward_flops(&self, _input: &[usize]) -> u64 {
        0
    }
    fn is_elementwise(&self) -> bool {
        false
    }
    fn forward_cpu(&self, x: &Tensor, params: &[Tensor], _ctx: &CpuCtx) -> Tensor {
        let (rows, dim) = (self.attrs.num_embeddings, self.attrs.embedding_dim);
        let mut shape = x.shape.clone();
        shape.push(dim);
        let mut y = Tensor::zeros(&shape);
        for (out, &id) in y.data.chunks_mut(dim).zip(&x.data) {
            if let Some(r) = row(id, rows) {
                out.copy_from_slice(&params[0].data[r * dim..(r + 1) * dim]);
            }
        }
        y
    }
    fn backward_cpu(
        &self,
        x: &Tensor,
        _params: &[Tensor],
        _y: &Tensor,
        dy: &Tensor,
        _ctx: &CpuCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let (rows, dim) = (self.attrs.num_embeddings, self.attrs.embedding_dim);
        let mut dw = Tensor::zeros(&[rows, dim]);
        for (g, &id) in dy.data.chunks(dim).zip(&x.data) {
            if let Some(r) = row(id, rows) {
                for (acc, v) in dw.data[r * dim..(r + 1) * dim].iter_mut().zip(g) {
                    *acc += v;
                }
            }
        }
        // Ids are not differentiable.
        (Tensor::zeros(&x.shape), vec![dw])
    }
    fn gpu_forward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let d = k.compute_1d(
            "embedding_forward",
            &[FORWARD_WGSL],
            io.batch * numel(&io.output_shape),
            &[
                ("ROWS", self.attrs.num_embeddings.to_string()),
                ("DIM", self.attrs.embedding_dim.to_string()),
            ],
            &[&io.x, &io.params[0], &io.y],
        )?;
        Ok(vec![d])
    }
    fn gpu_backward(&self, k: &mut KernelBuilder, io: &LayerIo) -> Result<Vec<Dispatch>, GpuError> {
        let mut out = vec![k.compute_1d(
            "embedding_backward",
            &[BACKWARD_WGSL],
            self.attrs.num_embeddings * self.attrs.embedding_dim,
            &[
                ("DIM", self.attrs.embedding_dim.to_string()),
                ("IDS", numel(&io.input_shape).to_string()),
            ],
            &[&io.step, &io.x, &io.dy, &io.grads[0]],
        )?];
        if let Some(dx) = &io.dx {
            out.push(k.compute_1d("zero", &[ZERO_WGSL], dx.len_words() as usize, &[], &[dx])?);
        }
        Ok(out)
    }
}

/// The native (cpu backend) `embedding_forward`: each id's row (zeros for an id out of
/// range), ids rounded half to even as WGSL's `round`.
pub(crate) fn native_forward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeEmbedding {
        n: c.usize("N")?,
        dim: c.usize("DIM")?.max(1),
        rows: c.usize("ROWS")?,
        ids: 0,
        backward: false,
    }))
}

/// The native (cpu backend) `embedding_backward`: each row sums the gradients of its
/// positions in position order, then adds the sum (one piece per row).
pub(crate) fn native_backward(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeEmbedding {
        n: c.usize("N")?,
        dim: c.usize("DIM")?.max(1),
        rows: 0,
        ids: c.usize("IDS")?,
        backward: true,
    }))
}

struct NativeEmbedding {
    n: usize,
    dim: usize,
    rows: usize,
    ids: usize,
    backward: bool,
}

impl crate::gpu::cpu::NativeKernel for NativeEmbedding {
    fn bindings(&self) -> (usize, usize) {
        if self.backward { (4, 4) } else { (3, 3) }
    }

    fn writes(&self, i: usize) -> bool {
        i == if self.backward { 3 } else { 2 }
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let dim = self.dim;
        if self.backward {
            let positions = io.step(0).rows as usize * self.ids;
            let (x, dy) = (io.f32(1), io.f32(2));
            io.f32_mut(3)[..self.n]
                .par_chunks_mut(dim)
                .enumerate()
                .for_each(|(r, dw)| {
                    // As the WGSL: the row's terms summed from zero in position order,
                    // then added to the gradient once (so accumulation groups add up
                    // the same way however they are split), a stack block of the row at
                    // a time.
                    const BLOCK: usize = 64;
                    for d0 in (0..dim).step_by(BLOCK) {
                        let width = BLOCK.min(dim - d0);
                        let mut acc = [0f32; BLOCK];
                        for (p, &id) in x[..positions].iter().enumerate() {
                            if id.round_ties_even() == r as f32 {
                                let g = &dy[p * dim + d0..][..width];
                                for (a, g) in acc.iter_mut().zip(g) {
                                    *a += g;
                                }
                            }
                        }
                        for (w, a) in dw[d0..d0 + width].iter_mut().zip(&acc) {
                            *w += a;
                        }
                    }
                });
            return;
        }
        let (x, weight) = (io.f32(0), io.f32(1));
        io.f32_mut(2)[..self.n]
            .par_chunks_mut(dim)
            .enumerate()
            .for_each(|(p, y)| {
                let id = x[p].round_ties_even();
                if id >= 0.0 && id < self.rows as f32 {
                    y.copy_from_slice(&weight[id as usize * dim..][..dim]);
                } else {
                    y.fill(0.0);
                }
            });
    }
}
