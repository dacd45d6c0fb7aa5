//! The kernels the cpu backend runs natively (see `gpu/cpu.rs`): one line per kernel name,
//! pointing at the implementation beside the op's WGSL binding. A kernel missing here is
//! refused when a plan that needs it is built.

use crate::gpu::GpuError;
use crate::gpu::cpu::{Constants, Io, NativeFactory, NativeKernel};

/// Elements per piece of the element-wise native kernels (optimizers, zeroing): fixed, so
/// the work splits the same way under any thread count.
pub(crate) const ELEMENTS_PER_PIECE: usize = 1 << 14;

/// Every table of natively implemented kernels (families keep their own).
pub(crate) static TABLES: &[&[(&str, NativeFactory)]] = &[
    KERNELS,
    crate::loss::NATIVE_KERNELS,
    crate::federated::NATIVE_KERNELS,
];

/// The natively implemented kernels of layers and training steps, by the name their op
/// builds them under.
static KERNELS: &[(&str, NativeFactory)] = &[
    ("matmul_nn", crate::matmul::native),
    ("matmul_nt", crate::matmul::native),
    ("matmul_tn", crate::matmul::native),
    ("matmul_tt", crate::matmul::native),
    ("bias_grad", crate::reduce::native_bias_grad),
    ("cross_entropy", crate::loss::cross_entropy::native),
    ("metrics_reduce", metrics_reduce),
    ("grad_norm_partial", crate::optim::clip::native_partial),
    ("grad_norm_final", crate::optim::clip::native_final),
    ("sgd", crate::optim::sgd::native),
    ("adam", crate::optim::adam::native),
    ("adamw", crate::optim::adam::native),
    ("zero", zero),
    ("relu_forward", crate::relu::native_forward),
    ("relu_backward", crate::relu::native_backward),
    ("tanh_forward", crate::tanh::native_forward),
    ("tanh_backward", crate::tanh::native_backward),
    ("sigmoid_forward", crate::sigmoid::native_forward),
    ("sigmoid_backward", crate::sigmoid::native_backward),
    ("gelu_forward", crate::gelu::native_forward),
    ("gelu_backward", crate::gelu::native_backward),
    ("leaky_relu_forward", crate::leaky_relu::native_forward),
    ("leaky_relu_backward", crate::leaky_relu::native_backward),
    ("dropout", crate::dropout::native),
    ("softmax_forward", crate::softmax::native_forward),
    ("softmax_backward", crate::softmax::native_backward),
    ("add", crate::add::native_add),
    ("grad_sum", crate::add::native_add),
    ("grad_sum_into", crate::add::native_add_into),
    ("concat_forward", crate::concat::native_forward),
    ("concat_backward", crate::concat::native_take),
    ("slice_forward", crate::concat::native_take),
    ("slice_backward", crate::slice::native_backward),
    ("layer_norm_forward", crate::layer_norm::native_forward),
    ("layer_norm_backward", crate::layer_norm::native_backward),
    (
        "layer_norm_backward_params",
        crate::layer_norm::native_backward_params,
    ),
    ("batch_norm_stats", crate::batch_norm::native_stats),
    ("batch_norm_forward", crate::batch_norm::native_forward),
    ("batch_norm_backward", crate::batch_norm::native_backward),
    (
        "batch_norm_backward_params",
        crate::batch_norm::native_backward_params,
    ),
    ("avg_pool2d_forward", crate::avg_pool2d::native_forward),
    ("avg_pool2d_backward", crate::avg_pool2d::native_backward),
    ("embedding_forward", crate::embedding::native_forward),
    ("embedding_backward", crate::embedding::native_backward),
    (
        "global_avg_pool_forward",
        crate::global_avg_pool::native_forward,
    ),
    (
        "global_avg_pool_backward",
        crate::global_avg_pool::native_backward,
    ),
    ("conv2d_im2col", crate::conv2d::native_im2col),
    ("conv2d_col2im", crate::conv2d::native_col2im),
    ("conv2d_bias_relu", crate::conv2d::native_bias_relu),
    ("max_pool2d_forward", crate::max_pool2d::native_forward),
    ("max_pool2d_backward", crate::max_pool2d::native_backward),
    (
        "max_pool2d_backward_disjoint",
        crate::max_pool2d::native_backward,
    ),
];

/// `metrics_reduce.wgsl`: folds the micro-batch's row statistics, in row order, into the
/// device metrics (the loss sum as 96-bit fixed point, see the shader).
fn metrics_reduce(_: &Constants) -> Result<Box<dyn NativeKernel>, GpuError> {
    Ok(Box::new(MetricsReduce))
}

struct MetricsReduce;

impl NativeKernel for MetricsReduce {
    fn bindings(&self) -> (usize, usize) {
        (3, 3)
    }

    fn writes(&self, i: usize) -> bool {
        i == 2
    }

    fn run(&self, io: &Io<'_>) {
        let rows = io.step(0).rows as usize;
        let stats = io.f32(1);
        let metrics = io.u32_mut(2);
        let (mut loss, mut correct, mut top5) = (0.0f32, 0u32, 0u32);
        for r in stats[..3 * rows].chunks_exact(3) {
            loss += r[0];
            correct += r[1] as u32;
            top5 += r[2] as u32;
        }
        if !loss.is_finite() || loss.abs() >= 1_099_511_627_776.0 {
            metrics[7] = (f32::from_bits(metrics[7]) + loss).to_bits();
        } else {
            // |loss| * 2^32 rounded once, two's complement for a negative sum.
            let a = f64::from(loss.abs()) * 4_294_967_296.0;
            let mut w = a.round_ties_even() as u128;
            if loss < 0.0 {
                w = (!w).wrapping_add(1);
            }
            let old = (u128::from(metrics[6]) << 64)
                | (u128::from(metrics[1]) << 32)
                | u128::from(metrics[0]);
            let sum = old.wrapping_add(w);
            metrics[0] = sum as u32;
            metrics[1] = (sum >> 32) as u32;
            metrics[6] = (sum >> 64) as u32;
        }
        // Wrapping, as the WGSL's u32 arithmetic.
        metrics[2] = metrics[2].wrapping_add(correct);
        metrics[3] = metrics[3].wrapping_add(top5);
        metrics[4] = metrics[4].wrapping_add(rows as u32);
    }
}

/// `zero.wgsl`: `x[i] = 0`.
fn zero(c: &Constants) -> Result<Box<dyn NativeKernel>, GpuError> {
    Ok(Box::new(Zero(c.usize("N")?)))
}

struct Zero(usize);

impl NativeKernel for Zero {
    fn bindings(&self) -> (usize, usize) {
        (1, 1)
    }

    fn writes(&self, _: usize) -> bool {
        true
    }

    fn run(&self, io: &Io<'_>) {
        io.f32_mut(0)[..self.0].fill(0.0);
    }
}
