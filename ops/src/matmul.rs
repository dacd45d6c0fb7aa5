//! The register-tiled GEMM shared by linear and conv2d (`shaders/matmul.wgsl`).
//!
//! `C[z] (+)= sum_r A[z, r] · B[z, r] (+ bias)`, where operands are described by element
//! strides, so one kernel covers A·B, Aᵀ·B and A·Bᵀ, batched (over `z`, the dispatch's third
//! dimension) and batch-reduced (over `r`, summed in a fixed order inside an invocation).

use crate::gpu::{
    AdapterSummary, BufferRef, Dispatch, Elem, GpuError, KernelBuilder, broadcast, shared_loads,
    shift_tile,
};

const WGSL: &str = include_str!("../../shaders/matmul.wgsl");

/// Invocations per workgroup along each axis (8 x 8 = 64: two warps on a GPU).
const WG: usize = 8;
/// Most rows of C per invocation (strided by `WG`); each holds `TM x TN` accumulators.
const TM: usize = 16;
/// Most columns per invocation (strided by `WG`) on software adapters: 8 FMAs per loaded
/// element, where loads are what costs (W1: ~25% faster than 8 columns on lavapipe).
const TN_CPU: usize = 16;
/// Most columns per invocation on GPUs, where smaller tiles give small GEMMs more
/// workgroups (measured on an H100; 16 was not measured there).
const TN: usize = 8;
/// Most rows of a subgroup-shared tile (loaded `WG` at a time, so they cost little).
const TM_SHARED: usize = 32;
/// Most columns per invocation of a subgroup-shared tile.
const TN_SHARED: usize = 8;
/// k steps per iteration of the unrolled inner loop.
const UNROLL: usize = 1;

/// How the invocations of a workgroup split the rows of a tile (see `shaders/matmul.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rows {
    /// `WG x WG` invocations, each loading its own rows of A.
    PerInvocation,
    /// One subgroup of `WG` invocations sharing its rows of A through `subgroupBroadcast`.
    SharedBySubgroup,
}

impl Rows {
    /// Shared rows where broadcasts are register shuffles and loads are not: CPU adapters
    /// whose subgroups are exactly one workgroup row.
    fn for_adapter(adapter: &AdapterSummary) -> Rows {
        if adapter.broadcast_lanes() == Some(WG) {
            Rows::SharedBySubgroup
        } else {
            Rows::PerInvocation
        }
    }

    /// Invocations along y, which is also the distance between an invocation's rows.
    fn stride(self) -> usize {
        match self {
            Rows::PerInvocation => WG,
            Rows::SharedBySubgroup => 1,
        }
    }
}

/// Tile shape `(TM, TN, UNROLL)` for an adapter; `OPS_MATMUL_TILE=8x2x4` overrides it
/// (experiments).
fn tile(cpu_adapter: bool, rows: Rows) -> (usize, usize, usize) {
    if let Ok(v) = std::env::var("OPS_MATMUL_TILE") {
        let p: Vec<usize> = v.split('x').filter_map(|t| t.parse().ok()).collect();
        if let [tm, tn, u] = p[..]
            && tm > 0
            && tn > 0
            && u > 0
        {
            return (tm, tn, u);
        }
    }
    match rows {
        Rows::SharedBySubgroup => (TM_SHARED, TN_SHARED, UNROLL),
        Rows::PerInvocation if cpu_adapter => (TM, TN_CPU, UNROLL),
        Rows::PerInvocation => (TM, TN, UNROLL),
    }
}

/// What the operands of one GEMM hold and how its loads treat them.
#[derive(Clone, Copy, Debug)]
struct Operands {
    /// Mixed precision: f32 operands are rounded to f16 where they are loaded.
    f16: bool,
    a: Elem,
    b: Elem,
    c: Elem,
    /// The relu mask's values, when there is one.
    mask: Elem,
}

impl Operands {
    /// The expression loading `e` (an element of an operand holding `elem`) as an f32:
    /// f16 values are widened (they are exact in f32); under mixed precision f32 values
    /// are rounded to f16 once (`precision.rs`); products and sums are f32 either way.
    fn load(&self, elem: Elem, e: String) -> String {
        match elem {
            Elem::F16 => format!("f32({e})"),
            Elem::F32 if self.f16 => format!("operand({e})"),
            Elem::F32 => e,
        }
    }

    fn any_f16(&self) -> bool {
        self.f16 || [self.a, self.b, self.c, self.mask].contains(&Elem::F16)
    }
}

fn wgsl_elem(elem: Elem) -> &'static str {
    match elem {
        Elem::F32 => "f32",
        Elem::F16 => "f16",
    }
}

/// The generated parts of `shaders/matmul.wgsl` for a `tm x tn` tile unrolled `unroll` times.
fn tile_code(
    rows: Rows,
    tm: usize,
    tn: usize,
    unroll: usize,
    bias: bool,
    masked: bool,
    ops: Operands,
) -> Vec<(&'static str, String)> {
    use std::fmt::Write;
    let shared = rows == Rows::SharedBySubgroup;
    let mut setup = String::new();
    if shared {
        // This invocation loads rows m0 + lane, m0 + lane + WG, ... of the tile.
        for q in 0..tm.div_ceil(WG) {
            let _ = writeln!(
                setup,
                "    let lr{q} = min(m0 + lane + {}u, M - 1u) * A_ROW;",
                q * WG
            );
        }
    } else {
        for i in 0..tm {
            let _ = writeln!(
                setup,
                "    let ar{i} = min(m0 + {i}u * RS, M - 1u) * A_ROW;"
            );
        }
    }
    for j in 0..tn {
        let _ = writeln!(
            setup,
            "    let bc{j} = min(n0 + {j}u * WG, N - 1u) * B_COL;"
        );
    }
    for i in 0..tm {
        for j in 0..tn {
            let _ = writeln!(setup, "    var c{i}_{j} = 0.0;");
        }
    }
    let step = |kk: &str| {
        let mut s = String::new();
        let _ = writeln!(s, "            {{");
        let _ = writeln!(s, "            let ak = abase + ({kk}) * A_COL;");
        let _ = writeln!(s, "            let bk = bbase + ({kk}) * B_ROW;");
        if shared {
            shared_loads(&mut s, "            ", tm, WG, "la", |q| {
                ops.load(ops.a, format!("a[ak + lr{q}]"))
            });
            for i in 0..tm {
                let _ = writeln!(s, "            let a{i} = {};", broadcast("la", i, WG));
            }
        } else {
            for i in 0..tm {
                let _ = writeln!(
                    s,
                    "            let a{i} = {};",
                    ops.load(ops.a, format!("a[ak + ar{i}]"))
                );
            }
        }
        for j in 0..tn {
            let _ = writeln!(
                s,
                "            let b{j} = {};",
                ops.load(ops.b, format!("b[bk + bc{j}]"))
            );
        }
        for i in 0..tm {
            for j in 0..tn {
                let _ = writeln!(s, "            c{i}_{j} = fma(a{i}, b{j}, c{i}_{j});");
            }
        }
        let _ = writeln!(s, "            }}");
        s
    };
    let mut loops = String::from("        var k = 0u;\n");
    if unroll > 1 {
        let body: String = (0..unroll).map(|u| step(&format!("k + {u}u"))).collect();
        let _ = writeln!(
            loops,
            "        for (; k + {unroll}u <= K; k += {unroll}u) {{\n{body}        }}"
        );
    }
    let _ = writeln!(
        loops,
        "        for (; k < K; k++) {{\n{}        }}",
        step("k")
    );
    // `m0 < M` holds here (the grid, or the early exit, ensures it), and so does `n0 < N`
    // unless the rows are shared: every invocation of a subgroup must reach the broadcasts.
    let mut stores = String::from("    let rows = min(TM, (M - m0 + RS - 1u) / RS);\n");
    let value = |j: usize| {
        if bias {
            format!("c0_{j} + bv{j}")
        } else {
            format!("c0_{j}")
        }
    };
    if bias {
        for j in 0..tn {
            let _ = writeln!(stores, "    let bv{j} = bias[min(n0 + {j}u * WG, N - 1u)];");
        }
    }
    let _ = writeln!(
        stores,
        "    for (var i = 0u; i < rows; i++) {{\n        let m = m0 + i * RS;"
    );
    for j in 0..tn {
        let guard = if j == 0 && !shared {
            String::new()
        } else {
            format!("if (n0 + {j}u * WG < N) ")
        };
        let _ = writeln!(
            stores,
            "        {guard}{{ epilogue(z, m, n0 + {j}u * WG, {}); }}",
            value(j)
        );
    }
    shift_tile(&mut stores, "        ", tm, tn, 1, |i, j| {
        format!("c{i}_{j}")
    });
    stores.push_str("    }\n");
    let mut bindings = String::new();
    let mut next = 3;
    for (present, decl, elem) in [(bias, "bias", Elem::F32), (masked, "mask", ops.mask)] {
        if present {
            let _ = writeln!(
                bindings,
                "@group(0) @binding({next}) var<storage, read> {decl}: array<{}>;",
                wgsl_elem(elem)
            );
            next += 1;
        }
    }
    let mask_apply = if masked {
        "    if (MASKED == 1u) { out = select(0.0, out, f32(mask[i]) > 0.0); }"
    } else {
        ""
    };
    let (lane, early_exit) = if shared {
        (", @builtin(subgroup_invocation_id) lane: u32", "")
    } else {
        ("", "    if (m0 >= M || n0 >= N) {\n        return;\n    }")
    };
    vec![
        ("TM", tm.to_string()),
        ("TN", tn.to_string()),
        ("WG", WG.to_string()),
        ("RS", rows.stride().to_string()),
        ("LANE", lane.to_string()),
        ("EARLY_EXIT", early_exit.to_string()),
        ("SETUP", setup),
        ("K_LOOPS", loops),
        ("STORES", stores),
        ("EXTRA_BINDINGS", bindings),
        ("MASK_APPLY", mask_apply.to_string()),
        ("A_ELEM", wgsl_elem(ops.a).to_string()),
        ("B_ELEM", wgsl_elem(ops.b).to_string()),
        ("C_ELEM", wgsl_elem(ops.c).to_string()),
        (
            "C_STORE",
            match ops.c {
                Elem::F32 => "out".to_string(),
                Elem::F16 => "store_f16(out)".to_string(),
            },
        ),
    ]
}

/// Where the bias is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bias {
    None = 0,
    /// `bias[n]` (linear).
    PerColumn = 1,
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
    /// Fused activation: `C = max(C, 0)` after bias and accumulation.
    pub relu: bool,
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
            relu: false,
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
        self.dispatch_masked(k, a, b, bias, c, None)
    }

    /// Like [`Gemm::dispatch`]; with `mask`, each output is zeroed where `mask` (laid out
    /// like C) is not positive: the backward of a relu whose output is `mask`, fused into the
    /// GEMM producing its output gradient.
    pub fn dispatch_masked(
        &self,
        k: &mut KernelBuilder,
        a: &BufferRef,
        b: &BufferRef,
        bias: Option<&BufferRef>,
        c: &BufferRef,
        mask: Option<&BufferRef>,
    ) -> Result<Dispatch, GpuError> {
        let s = |v: usize| v.to_string();
        let adapter = k.gpu().adapter();
        let limit = u64::from(adapter.max_compute_workgroups_per_dimension);
        // The tile for a row layout, no bigger than the problem (a tile row or column past
        // the edge only repeats loads), and the workgroup grid it needs.
        let layout = |rows: Rows| {
            let (tm_max, tn_max, unroll) = tile(adapter.is_cpu(), rows);
            let tm = self.m.div_ceil(rows.stride()).clamp(1, tm_max);
            let tn = self.n.div_ceil(WG).clamp(1, tn_max);
            let groups = [
                self.n.div_ceil(WG * tn) as u64,
                self.m.div_ceil(rows.stride() * tm) as u64,
                self.batch as u64,
            ];
            (rows, tm, tn, unroll, groups)
        };
        // Shared rows make 4x more workgroups along y: past the limit (millions of rows),
        // the per-invocation layout still fits.
        let (rows, tm, tn, unroll, groups) = match layout(Rows::for_adapter(adapter)) {
            (Rows::SharedBySubgroup, ..) if self.m.div_ceil(TM_SHARED) as u64 > limit => {
                layout(Rows::PerInvocation)
            }
            chosen => chosen,
        };
        if let Some(&needed) = groups.iter().find(|&&g| g > limit) {
            return Err(GpuError::TooLarge {
                what: format!(
                    "the workgroups along one axis of a {} of {}x{}x{} (batch {})",
                    self.name(),
                    self.m,
                    self.n,
                    self.k,
                    self.batch
                ),
                needed,
                limit,
            });
        }
        let mut subst = vec![
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
            ("ACCUMULATE", s(self.accumulate as usize)),
            ("RELU", s(self.relu as usize)),
            ("MASKED", s(mask.is_some() as usize)),
            // Read by the native kernel only (the WGSL declares its bindings itself).
            (
                "BIAS",
                s((bias.is_some() && self.bias == Bias::PerColumn) as usize),
            ),
        ];
        let bias = bias.filter(|_| self.bias == Bias::PerColumn);
        let operands = Operands {
            f16: k.precision() == crate::Precision::F16,
            a: a.elem,
            b: b.elem,
            c: c.elem,
            mask: mask.map_or(Elem::F32, |m| m.elem),
        };
        subst.extend(tile_code(
            rows,
            tm,
            tn,
            unroll,
            bias.is_some(),
            mask.is_some(),
            operands,
        ));
        // Each fits in a u32: it is at most `limit` (checked above).
        let groups = groups.map(|g| g as u32);
        let mut bindings = vec![a, b, c];
        bindings.extend(bias);
        bindings.extend(mask);
        if operands.any_f16() {
            let name = format!("{}.f16", self.name());
            return k.compute(
                &name,
                &[crate::precision::F16_OPERAND_WGSL, WGSL],
                &subst,
                &bindings,
                groups,
            );
        }
        k.compute(&self.name(), &[WGSL], &subst, &bindings, groups)
    }
}

/// The native (cpu backend) implementation of the `matmul_*` kernels: the same
/// constants and bindings (`a, b, c[, bias][, mask]`), the product through
/// `matrixmultiply`'s sgemm, then bias, relu and mask as the WGSL epilogue does.
pub(crate) fn native(c: &crate::gpu::cpu::Constants) -> Result<Box<dyn NativeKernel>, GpuError> {
    Ok(Box::new(NativeGemm {
        m: c.usize("M")?,
        n: c.usize("N")?,
        k: c.usize("K")?,
        a_row: c.usize("A_ROW")? as isize,
        a_col: c.usize("A_COL")? as isize,
        b_row: c.usize("B_ROW")? as isize,
        b_col: c.usize("B_COL")? as isize,
        a_batch: c.usize("A_BATCH")?,
        b_batch: c.usize("B_BATCH")?,
        c_batch: c.usize("C_BATCH")?,
        reduce: c.usize("REDUCE")?,
        a_reduce: c.usize("A_REDUCE")?,
        b_reduce: c.usize("B_REDUCE")?,
        accumulate: c.flag("ACCUMULATE")?,
        relu: c.flag("RELU")?,
        masked: c.flag("MASKED")?,
        bias: c.flag("BIAS")?,
        product: std::sync::Mutex::default(),
    }))
}

use crate::gpu::cpu::NativeKernel;

struct NativeGemm {
    m: usize,
    n: usize,
    k: usize,
    a_row: isize,
    a_col: isize,
    b_row: isize,
    b_col: isize,
    a_batch: usize,
    b_batch: usize,
    c_batch: usize,
    reduce: usize,
    a_reduce: usize,
    b_reduce: usize,
    accumulate: bool,
    relu: bool,
    masked: bool,
    bias: bool,
    /// The product of an accumulating GEMM before it is added to C.
    product: std::sync::Mutex<Vec<f32>>,
}

/// Multiply-adds per piece of a native GEMM: big enough that a piece amortises its packing,
/// small enough that two threads share a layer's GEMM.
const NATIVE_PIECE_FLOPS: usize = 1 << 20;
/// Fewest columns of a native GEMM slab (but for the last): each slab packs A once.
const NATIVE_SLAB_COLUMNS: usize = 64;
/// Fewest rows of a native GEMM band (bands only split a GEMM that has no other pieces).
const NATIVE_BAND_ROWS: usize = 16;

/// The largest power of two not above `v` (at least 1).
fn prev_power_of_two(v: usize) -> usize {
    if v <= 1 {
        1
    } else {
        1 << (usize::BITS - 1 - v.leading_zeros())
    }
}

/// k per block of matrixmultiply's sgemm (`S_KC`, 256 unless its build sets
/// `MATMUL_SGEMM_KC`, which the engine's does not): within one block it adds the whole
/// product to C with one rounding. The data-parallel bit-identity tests on the cpu backend
/// (`ops/tests/data_parallel.rs`) would catch a smaller block.
const SGEMM_KC: usize = 256;

impl NativeGemm {
    /// One past the largest word a GEMM over `batch` entries touches in an operand
    /// addressed `z * batch_stride + r * reduce_stride + i * row + j * col` (i < rows,
    /// j < cols); 0 when it touches none.
    fn extent(batch: usize, reduce: usize, strides: [usize; 4], rows: usize, cols: usize) -> usize {
        let [b, r, row, col] = strides;
        if batch == 0 || reduce == 0 || rows == 0 || cols == 0 {
            return 0;
        }
        (batch - 1) * b + (reduce - 1) * r + (rows - 1) * row + (cols - 1) * col + 1
    }

    /// Whether an accumulating GEMM may let sgemm add into C (`beta = 1`) and still give
    /// `C + (A·B)` with the product complete: one reduction step, K within one block of
    /// k, and no bias to add before C.
    fn direct_accumulate(&self) -> bool {
        self.reduce == 1 && self.k <= SGEMM_KC && !self.bias
    }
}

impl NativeKernel for NativeGemm {
    fn bindings(&self) -> (usize, usize) {
        let n = 3 + usize::from(self.bias) + usize::from(self.masked);
        (n, n)
    }

    fn writes(&self, i: usize) -> bool {
        i == 2
    }

    fn check(&self, lens: &[usize], grid: [u32; 3]) -> Result<(), String> {
        let batch = grid[2] as usize;
        let (m, n, k) = (self.m, self.n, self.k);
        let a = [
            self.a_batch,
            self.a_reduce,
            self.a_row as usize,
            self.a_col as usize,
        ];
        let b = [
            self.b_batch,
            self.b_reduce,
            self.b_row as usize,
            self.b_col as usize,
        ];
        let c = Self::extent(batch, 1, [self.c_batch, 0, n, 1], m, n);
        let mut need = vec![
            ("A", 0, Self::extent(batch, self.reduce, a, m, k)),
            ("B", 1, Self::extent(batch, self.reduce, b, k, n)),
            ("C", 2, c),
        ];
        if self.bias {
            need.push(("the bias", 3, n));
        }
        if self.masked {
            need.push(("the mask", 3 + usize::from(self.bias), c));
        }
        for (what, i, words) in need {
            if lens[i] < words {
                return Err(format!("{what} needs {words} words, {} are bound", lens[i]));
            }
        }
        // Pieces of different batch entries write C at once: their blocks must not overlap.
        if batch > 1 && self.c_batch < m * n {
            return Err(format!(
                "batch entries {} words apart overlap in a {m} x {n} C",
                self.c_batch
            ));
        }
        Ok(())
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use crate::gpu::cpu::{SendPtr, for_pieces_sized};
        let (m, n, k) = (self.m, self.n, self.k);
        // The batch is the grid's third axis (`check` held it against the buffers).
        let batch = io.grid()[2] as usize;
        if m == 0 || n == 0 || batch == 0 {
            return;
        }
        let a = io.f32(0);
        let b = io.f32(1);
        let c = SendPtr(io.f32_mut(2).as_mut_ptr());
        let bias = self.bias.then(|| io.f32(3));
        let mask = self.masked.then(|| io.f32(3 + usize::from(self.bias)));
        // Accumulating, the product is formed apart and then added to C, as the WGSL does
        // (`C = (A·B + bias) + C`): adding micro-batch gradients into C must give the same
        // bits as summing them elsewhere (the data-parallel contract), which sgemm's
        // `beta = 1` (C updated block by block of k) would not.
        // (`product` grows once, at the first run: steady state allocates nothing.)
        let mut product = self
            .product
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // sgemm's `beta = 1` is that same addition when one block of k covers K (a
        // single rounding of product + C) and nothing comes between them.
        let separate = self.accumulate && !self.direct_accumulate();
        if separate && product.len() < batch * m * n {
            product.resize(batch * m * n, 0.0);
        }
        let (dst, dst_batch) = if separate {
            (SendPtr(product.as_mut_ptr()), m * n)
        } else {
            (c, self.c_batch)
        };
        // Pieces are column slabs of each batch entry's C, fixed by the shape alone (see
        // `gpu::cpu`): every output still sums over r and k in one order.
        // Each slab packs A again: at least NATIVE_SLAB_COLUMNS columns keep that small.
        // Without batch or column slabs to share, rows split into bands (a batch-reduced
        // weight gradient: its sum over r must stay in one piece).
        let work = m * k * self.reduce;
        // A power of two, so that common thread counts share the slabs evenly.
        let slabs = prev_power_of_two(
            (work * n / NATIVE_PIECE_FLOPS).clamp(1, (n / NATIVE_SLAB_COLUMNS).max(1)),
        );
        let width = n.div_ceil(slabs).div_ceil(16) * 16;
        let slabs = n.div_ceil(width).max(1);
        let bands = if batch * slabs == 1 {
            (work * n / NATIVE_PIECE_FLOPS).clamp(1, m.div_ceil(NATIVE_BAND_ROWS))
        } else {
            1
        };
        let rows = m.div_ceil(bands);
        let bands = m.div_ceil(rows).max(1);
        let (a_ptr, b_ptr) = (a.as_ptr() as usize, b.as_ptr() as usize);
        let total = batch * work * n;
        for_pieces_sized(batch * slabs * bands, total, |piece| {
            let (z, s, band) = (
                piece / (slabs * bands),
                (piece / bands) % slabs,
                piece % bands,
            );
            let n0 = s * width;
            let cols = width.min(n - n0);
            let m0 = band * rows;
            let m = rows.min(self.m - m0);
            // SAFETY: the strides and extents are the kernel's constants, which address
            // inside the bound ranges exactly as the WGSL does (a kernel built for these
            // buffers; `product` holds batch x m x n); pieces write disjoint blocks of the
            // destination (batch entry, columns, rows).
            unsafe {
                let p0 = dst.get().add(z * dst_batch + m0 * n + n0);
                for r in 0..self.reduce {
                    let ap = (a_ptr as *const f32)
                        .add(z * self.a_batch + r * self.a_reduce)
                        .offset(m0 as isize * self.a_row);
                    let bp = (b_ptr as *const f32)
                        .add(z * self.b_batch + r * self.b_reduce)
                        .offset(n0 as isize * self.b_col);
                    let beta = if r > 0 || (self.accumulate && !separate) {
                        1.0
                    } else {
                        0.0
                    };
                    matrixmultiply::sgemm(
                        m, k, cols, 1.0, ap, self.a_row, self.a_col, bp, self.b_row, self.b_col,
                        beta, p0, n as isize, 1,
                    );
                }
                if !separate && bias.is_none() && !self.relu && mask.is_none() {
                    return;
                }
                let c0 = c.get().add(z * self.c_batch + m0 * n + n0);
                for i in 0..m {
                    // Accumulated apart, the product row lives apart from C's; otherwise
                    // it is C's row itself, read before it is written.
                    let sum = p0.add(i * n);
                    let row = std::slice::from_raw_parts_mut(c0.add(i * n), cols);
                    let i = m0 + i;
                    // The WGSL's epilogue: bias, then C, then relu, then the mask.
                    for (j, v) in row.iter_mut().enumerate() {
                        let mut out = if separate { *sum.add(j) } else { *v };
                        if let Some(bias) = bias {
                            out += bias[n0 + j];
                        }
                        if separate {
                            out += *v;
                        }
                        if self.relu {
                            out = out.max(0.0);
                        }
                        *v = out;
                    }
                    if let Some(mask) = mask {
                        let at = z * self.c_batch + i * n + n0;
                        for (v, g) in row.iter_mut().zip(&mask[at..at + cols]) {
                            // Zeroed unless positive (NaN too), as the WGSL's select.
                            let positive = *g > 0.0;
                            if !positive {
                                *v = 0.0;
                            }
                        }
                    }
                }
            }
        });
    }
}
