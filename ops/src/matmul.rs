//! The register-tiled GEMM shared by linear and conv2d (`shaders/matmul.wgsl`).
//!
//! `C[z] (+)= sum_r A[z, r] · B[z, r] (+ bias)`, where operands are described by element
//! strides, so one kernel covers A·B, Aᵀ·B and A·Bᵀ, batched (over `z`, the dispatch's third
//! dimension) and batch-reduced (over `r`, summed in a fixed order inside an invocation).

use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder};

const WGSL: &str = include_str!("../../shaders/matmul.wgsl");

/// Outputs per invocation along each axis (a 4x4 register tile).
const TILE: usize = 4;
/// Invocations per workgroup along each axis.
const WG: usize = 8;

/// Where the bias is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bias {
    None = 0,
    /// `bias[n]` (linear).
    PerColumn = 1,
    /// `bias[m]` (conv2d: one per output channel).
    PerRow = 2,
}

/// Shape and strides of one GEMM. `A(m, k) = a[z*a_batch + r*a_reduce + m*a_row + k*a_col]`,
/// `B(k, n) = b[z*b_batch + r*b_reduce + k*b_row + n*b_col]`, `C(m, n) = c[z*c_batch + m*n_cols + n]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a_row: usize,
    pub a_col: usize,
    pub b_row: usize,
    pub b_col: usize,
    pub batch: usize,
    pub a_batch: usize,
    pub b_batch: usize,
    pub c_batch: usize,
    pub reduce: usize,
    pub a_reduce: usize,
    pub b_reduce: usize,
    pub bias: Bias,
    /// Add into C instead of overwriting it (gradient accumulation).
    pub accumulate: bool,
}

impl Gemm {
    /// Plain row-major `C[m,n] = A[m,k] · B[k,n]`.
    pub fn nn(m: usize, n: usize, k: usize) -> Gemm {
        Gemm {
            m,
            n,
            k,
            a_row: k,
            a_col: 1,
            b_row: n,
            b_col: 1,
            batch: 1,
            a_batch: 0,
            b_batch: 0,
            c_batch: 0,
            reduce: 1,
            a_reduce: 0,
            b_reduce: 0,
            bias: Bias::None,
            accumulate: false,
        }
    }

    /// `C[m,n] = A[m,k] · B[n,k]ᵀ`.
    pub fn nt(m: usize, n: usize, k: usize) -> Gemm {
        Gemm {
            b_row: 1,
            b_col: k,
            ..Gemm::nn(m, n, k)
        }
    }

    /// `C[m,n] = A[k,m]ᵀ · B[k,n]`.
    pub fn tn(m: usize, n: usize, k: usize) -> Gemm {
        Gemm {
            a_row: 1,
            a_col: m,
            ..Gemm::nn(m, n, k)
        }
    }

    /// Kernel name for plans, e.g. `matmul_nt`.
    fn name(&self) -> String {
        let ta = if self.a_col == 1 { "n" } else { "t" };
        let tb = if self.b_col == 1 { "n" } else { "t" };
        format!("matmul_{ta}{tb}")
    }

    /// Builds the dispatch. `bias` must be `Some` unless `self.bias == Bias::None`.
    pub fn dispatch(
        &self,
        k: &mut KernelBuilder,
        a: &BufferRef,
        b: &BufferRef,
        bias: Option<&BufferRef>,
        c: &BufferRef,
    ) -> Result<Dispatch, GpuError> {
        let s = |v: usize| v.to_string();
        let subst = [
            ("M", s(self.m)),
            ("N", s(self.n)),
            ("K", s(self.k)),
            ("A_ROW", s(self.a_row)),
            ("A_COL", s(self.a_col)),
            ("B_ROW", s(self.b_row)),
            ("B_COL", s(self.b_col)),
            ("A_BATCH", s(self.a_batch)),
            ("B_BATCH", s(self.b_batch)),
            ("C_BATCH", s(self.c_batch)),
            ("REDUCE", s(self.reduce)),
            ("A_REDUCE", s(self.a_reduce)),
            ("B_REDUCE", s(self.b_reduce)),
            ("BIAS", s(self.bias as usize)),
            ("ACCUMULATE", s(self.accumulate as usize)),
        ];
        // Without a bias the binding still has to exist: bind A again (never read).
        let bias = bias.unwrap_or(a);
        let per_group = TILE * WG;
        let groups = [
            self.n.div_ceil(per_group) as u32,
            self.m.div_ceil(per_group) as u32,
            self.batch as u32,
        ];
        k.compute(&self.name(), &[WGSL], &subst, &[a, b, bias, c], groups)
    }
}
