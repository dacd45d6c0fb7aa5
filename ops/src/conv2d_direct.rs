//! Convolution kernels that read their input directly (no im2col buffer): the forward (and,
//! for stride 1, the input gradient as a convolution of `dy` with the transposed, flipped
//! weights) in `shaders/conv2d_direct.wgsl`, and the weight/bias gradient as per-chunk
//! partial sums (`shaders/conv2d_wgrad.wgsl`) folded in a fixed order by
//! `shaders/conv2d_wgrad_reduce.wgsl`. This module writes their register-tile code.

use std::fmt::Write;

use crate::Precision;
use crate::gpu::{
    AdapterSummary, BufferRef, Dispatch, GpuError, KernelBuilder, WG_1D, broadcast, grid_1d,
    shared_loads, shift_tile,
};

const DIRECT_WGSL: &str = include_str!("../../shaders/conv2d_direct.wgsl");
const WGRAD_WGSL: &str = include_str!("../../shaders/conv2d_wgrad.wgsl");
const REDUCE_WGSL: &str = include_str!("../../shaders/conv2d_wgrad_reduce.wgsl");

/// Most output channels per invocation of the direct kernel.
const TC_MAX: usize = 8;
/// Most output channels per invocation when a subgroup shares the weight loads (they cost
/// 1/8 then, so more channels per loaded input pay: W2 3,800 -> 4,100-4,500 samples/s on
/// lavapipe; 16 without sharing was not faster).
const TC_MAX_SHARED: usize = 16;
/// Most output pixels (of one row) per invocation of the direct kernel.
const TP_MAX: usize = 16;
/// Most accumulators per invocation of the weight-gradient kernel.
const WGRAD_ACC: usize = 144;
/// Invocations the weight-gradient kernel aims for (enough to fill the workgroups of a
/// few cores); the batch is split further into bands of output rows to get there.
const WGRAD_TARGET: usize = 1024;

/// WGSL for input column `ix{i} = {ox} * S + i - P` of an output column `ox`: `cx{i}`, the
/// column clamped into the row, and `vx{i}`, whether it lies inside (outside reads as zero).
fn input_column(out: &mut String, indent: &str, ox: &str, i: usize) {
    let _ = writeln!(
        out,
        "{indent}let ix{i} = i32({ox} * S + {i}u) - P;\n{indent}let cx{i} = u32(clamp(ix{i}, 0, i32(W) - 1));\n{indent}let vx{i} = ix{i} >= 0 && ix{i} < i32(W);"
    );
}

/// WGSL for input row `iy{tag} = oy * S + ky - P`: `vy{tag}`, whether it lies inside the
/// plane, and `row{tag}`, the first word of the clamped row in plane `xplane`.
fn input_row(out: &mut String, indent: &str, ky: &str, tag: &str) {
    let _ = writeln!(
        out,
        "{indent}let iy{tag} = i32(oy * S + {ky}) - P;\n{indent}let vy{tag} = iy{tag} >= 0 && iy{tag} < i32(H);\n{indent}let row{tag} = (xplane + u32(clamp(iy{tag}, 0, i32(H) - 1))) * W;"
    );
}

/// How a kernel's grid-stride loop (`for g = FIRST; g < GROUPS; g += STRIDE`) walks its
/// items: one item per invocation in workgroups of 64, or, with `lanes`, workgroups of one
/// subgroup whose invocations take `lanes` consecutive items per step (`lane` is the
/// invocation's index in it), so that they can share loads by broadcast.
struct LoopGrid {
    lanes: Option<usize>,
    workgroups: [u32; 3],
    stride: u32,
    steps: usize,
    /// WGSL deriving the item's coordinates from `g` (and `lane`).
    index: String,
}

impl LoopGrid {
    fn per_invocation(items: usize, index: &str) -> LoopGrid {
        let (workgroups, stride) = grid_1d(items);
        LoopGrid {
            lanes: None,
            workgroups,
            stride,
            steps: items,
            index: index.to_string(),
        }
    }

    fn per_subgroup(lanes: usize, groups: usize, index: String) -> LoopGrid {
        const MAX_WORKGROUPS: usize = 1 << 15;
        let count = groups.clamp(1, MAX_WORKGROUPS) as u32;
        LoopGrid {
            lanes: Some(lanes),
            workgroups: [count, 1, 1],
            stride: count,
            steps: groups,
            index,
        }
    }

    /// The template's `{{WG}}`, `{{BUILTINS}}`, `{{FIRST}}`, `{{GROUPS}}`, `{{STRIDE}}`
    /// and `{{INDEX}}`.
    fn substitutions(&self) -> [(&'static str, String); 6] {
        let (wg, builtins, first) = match self.lanes {
            Some(l) => (
                l,
                "@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32",
                "wid.x",
            ),
            None => (
                WG_1D as usize,
                "@builtin(global_invocation_id) gid: vec3<u32>",
                "gid.x",
            ),
        };
        [
            ("WG", wg.to_string()),
            ("BUILTINS", builtins.to_string()),
            ("FIRST", first.to_string()),
            ("GROUPS", self.steps.to_string()),
            ("STRIDE", self.stride.to_string()),
            ("INDEX", self.index.clone()),
        ]
    }
}

/// A convolution as the direct kernel sees it: `ci` input channels of `h x w`, `co` output
/// channels of `ho x wo`, square kernel `k`, stride `s`, padding `p` (may be any value
/// that keeps `ho`/`wo` as given), weights addressed as
/// `o * w_co + c * w_ci + offset(ky, kx)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirectConv {
    pub batch: usize,
    pub ci: usize,
    pub co: usize,
    pub h: usize,
    pub w: usize,
    pub ho: usize,
    pub wo: usize,
    pub k: usize,
    pub s: usize,
    pub p: i64,
    pub w_co: usize,
    pub w_ci: usize,
    /// Read the kernel rotated by 180 degrees (`offset = (k-1-ky) * k + (k-1-kx)`).
    pub flip: bool,
}

impl DirectConv {
    /// Pixels per invocation: rows split into equal blocks of at most `TP_MAX`.
    fn tp(&self) -> usize {
        self.wo.div_ceil(self.wo.div_ceil(TP_MAX))
    }

    /// `y = conv(x, wt) (+ bias) (relu)`.
    pub fn dispatch(
        &self,
        kb: &mut KernelBuilder,
        x: &BufferRef,
        wt: &BufferRef,
        bias: Option<&BufferRef>,
        y: &BufferRef,
        relu: bool,
    ) -> Result<Dispatch, GpuError> {
        self.build(kb, x, wt, bias, &Output::Plain { y, relu })
    }

    /// `pool = max_pool_2x2(relu(conv(x, wt) (+ bias)))` and the pool's arg-max (`arg`,
    /// laid out like `pool`; no arg-max, `0xffffffff`, where the window's maximum is not
    /// positive, as `max_pool2d_forward` records it after a fused relu), without storing
    /// the convolution's output. The two rows of a window belong to two invocations of a
    /// subgroup, which exchange them with `subgroupShuffleXor`. `None` where that layout
    /// does not apply: adapters without 8-wide subgroups on the CPU, odd pixel blocks, or
    /// rows split into blocks that do not pair up within a subgroup.
    pub fn dispatch_pooled(
        &self,
        kb: &mut KernelBuilder,
        x: &BufferRef,
        wt: &BufferRef,
        bias: Option<&BufferRef>,
        pool: &BufferRef,
        arg: &BufferRef,
    ) -> Result<Option<Dispatch>, GpuError> {
        if !self.stores_pool(kb.gpu().adapter()) {
            return Ok(None);
        }
        self.build(kb, x, wt, bias, &Output::Pooled { pool, arg })
            .map(Some)
    }

    /// Whether [`DirectConv::dispatch_pooled`] applies on `adapter`.
    pub fn stores_pool(&self, adapter: &AdapterSummary) -> bool {
        let tp = self.tp();
        let blocks_per_row = self.wo.div_ceil(tp);
        let pairs_in_subgroup = adapter
            .broadcast_lanes()
            .is_some_and(|l| l % (2 * blocks_per_row) == 0);
        pairs_in_subgroup && tp.is_multiple_of(2) && !self.flip
    }

    fn build(
        &self,
        kb: &mut KernelBuilder,
        x: &BufferRef,
        wt: &BufferRef,
        bias: Option<&BufferRef>,
        output: &Output,
    ) -> Result<Dispatch, GpuError> {
        let load = loader(kb);
        let tp = self.tp();
        let lanes = kb.gpu().adapter().broadcast_lanes();
        let tc = self.co.min(if lanes.is_some() {
            TC_MAX_SHARED
        } else {
            TC_MAX
        });
        let (xb, cb) = (self.wo.div_ceil(tp), self.co.div_ceil(tc));
        let grid = match lanes {
            // Groups of `l` pixel blocks of one sample and channel block (padded: the
            // invocations past the last block compute clamped values and store nothing).
            Some(l) => {
                let per_plane = (self.ho * xb).div_ceil(l);
                LoopGrid::per_subgroup(
                    l,
                    self.batch * cb * per_plane,
                    format!(
                        "        let plane = g / {per_plane}u;\n        let block = (g % {per_plane}u) * {l}u + lane;\n        let valid = block < XB * HO;\n        let blockc = min(block, XB * HO - 1u);\n        let xb = blockc % XB;\n        let oy = blockc / XB;\n        let cb = plane % CB;\n        let n = plane / CB;"
                    ),
                )
            }
            None => LoopGrid::per_invocation(
                self.batch * cb * self.ho * xb,
                "        let valid = true;\n        let xb = g % XB;\n        let oy = (g / XB) % HO;\n        let cb = (g / (XB * HO)) % CB;\n        let n = g / (XB * HO * CB);",
            ),
        };
        let cols = (tp - 1) * self.s + self.k;
        let kx_offset = |kx: usize| if self.flip { self.k - 1 - kx } else { kx };
        let mut setup = String::new();
        for t in 0..cols {
            input_column(&mut setup, "        ", "ox0", t);
        }
        if let Some(l) = lanes {
            // This invocation loads entries lane, lane + l, ... of the list of (kx, channel)
            // weights (entry t: kx = t / TC, channel co0 + t % TC).
            for q in 0..(self.k * tc).div_ceil(l) {
                let kx = if self.flip {
                    format!("KS - 1u - lt{q} / TC")
                } else {
                    format!("lt{q} / TC")
                };
                let _ = writeln!(
                    setup,
                    "        let lt{q} = min(lane + {}u, KS * TC - 1u);\n        let lwo{q} = min(co0 + lt{q} % TC, CO - 1u) * W_CO + {kx};",
                    q * l
                );
            }
        }
        for j in 0..tc {
            if lanes.is_none() {
                let _ = writeln!(
                    setup,
                    "        let wb{j} = min(co0 + {j}u, CO - 1u) * W_CO;"
                );
            }
            for p in 0..tp {
                let _ = writeln!(setup, "        var a{j}_{p} = 0.0;");
            }
        }
        // One kernel row per iteration of a loop (not unrolled): the code holds one row's
        // loads, which is what the CPU adapters' compile time grows with.
        let mut body = String::new();
        let row_offset = if self.flip {
            "(KS - 1u - ky) * KS"
        } else {
            "ky * KS"
        };
        let _ = writeln!(
            body,
            "            for (var ky = 0u; ky < KS; ky++) {{\n            let wk = wc + {row_offset};"
        );
        input_row(&mut body, "            ", "ky", "");
        for t in 0..cols {
            let xv = load(format!("x[row + cx{t}]"));
            let _ = writeln!(
                body,
                "            let xv{t} = select(0.0, {xv}, vy && vx{t});"
            );
        }
        if let Some(l) = lanes {
            shared_loads(&mut body, "            ", self.k * tc, l, "lw", |q| {
                load(format!("wt[lwo{q} + wk]"))
            });
        }
        for kx in 0..self.k {
            for j in 0..tc {
                let weight = match lanes {
                    Some(l) => broadcast("lw", kx * tc + j, l),
                    None => load(format!("wt[wb{j} + wk + {}u]", kx_offset(kx))),
                };
                let _ = writeln!(body, "            let w{kx}_{j} = {weight};");
                for p in 0..tp {
                    let _ = writeln!(
                        body,
                        "            a{j}_{p} = fma(w{kx}_{j}, xv{}, a{j}_{p});",
                        p * self.s + kx
                    );
                }
            }
        }
        let _ = writeln!(body, "            }}");
        // Stores: a loop over the tile's pixels that shifts the accumulators down by one
        // pixel per iteration, so each channel's store appears once in the code. The bound
        // includes `arrayLength` (never the smaller) so that it is not a compile-time
        // constant when a row is one block: the compiler would unroll the loop again.
        let mut stores = String::new();
        if bias.is_some() {
            for j in 0..tc {
                let _ = writeln!(
                    stores,
                    "        let bv{j} = bias[min(co0 + {j}u, CO - 1u)];"
                );
            }
        }
        match output {
            Output::Plain { .. } => {
                let _ = writeln!(
                    stores,
                    "        let pixels = select(0u, min(min(TP, WO - ox0), arrayLength(&y)), valid);\n        for (var p = 0u; p < pixels; p++) {{"
                );
                for j in 0..tc {
                    let value = if bias.is_some() {
                        format!("a{j}_0 + bv{j}")
                    } else {
                        format!("a{j}_0")
                    };
                    let guard = if j == 0 {
                        String::new()
                    } else {
                        format!("if (co0 + {j}u < CO) ")
                    };
                    let _ = writeln!(
                        stores,
                        "            {guard}{{ store(n, co0 + {j}u, oy, ox0 + p, {value}); }}"
                    );
                }
                shift_tile(&mut stores, "            ", tp, tc, 1, |p, j| {
                    format!("a{j}_{p}")
                });
                stores.push_str("        }\n");
            }
            Output::Pooled { .. } => pooled_stores(&mut stores, tp, tc, bias.is_some()),
        }
        let (y, relu) = match output {
            Output::Plain { y, relu } => (*y, *relu),
            Output::Pooled { pool, .. } => (*pool, true),
        };
        let mut extra_bindings = String::new();
        let mut bindings = vec![x, wt, y];
        for (buffer, decl) in [
            (bias, "bias: array<f32>"),
            (output.arg(), "arg: array<u32>"),
        ] {
            if let Some(buffer) = buffer {
                let _ = writeln!(
                    extra_bindings,
                    "@group(0) @binding({}) var<storage, {}> {decl};",
                    bindings.len(),
                    if decl.starts_with("arg") {
                        "read_write"
                    } else {
                        "read"
                    }
                );
                bindings.push(buffer);
            }
        }
        let s = |v: usize| v.to_string();
        let mut subst = vec![
            ("CI", s(self.ci)),
            ("CO", s(self.co)),
            ("H", s(self.h)),
            ("W", s(self.w)),
            ("HO", s(self.ho)),
            ("WO", s(self.wo)),
            ("S", s(self.s)),
            ("P", self.p.to_string()),
            ("KS", s(self.k)),
            ("TP", s(tp)),
            ("TC", s(tc)),
            ("XB", s(xb)),
            ("CB", s(cb)),
            ("W_CO", s(self.w_co)),
            ("W_CI", s(self.w_ci)),
            ("EXTRA_BINDINGS", extra_bindings),
            ("HP", s(self.ho / 2)),
            ("WP", s(self.wo / 2)),
            ("RELU", s(relu as usize)),
            ("SETUP", setup),
            ("BODY", body),
            ("STORES", stores),
        ];
        subst.extend(grid.substitutions());
        let name = if self.flip {
            "conv2d_direct_dx"
        } else {
            "conv2d_direct"
        };
        let (name, sources) = with_precision(kb, name, DIRECT_WGSL);
        kb.compute(&name, &sources, &subst, &bindings, grid.workgroups)
    }
}

/// Where the direct kernel writes.
enum Output<'a> {
    /// The convolution's output (`relu`: `max(., 0)`).
    Plain { y: &'a BufferRef, relu: bool },
    /// A 2x2, stride-2 max pool of the relu'd output, and its arg-max.
    Pooled {
        pool: &'a BufferRef,
        arg: &'a BufferRef,
    },
}

impl Output<'_> {
    fn arg(&self) -> Option<&BufferRef> {
        match self {
            Output::Plain { .. } => None,
            Output::Pooled { arg, .. } => Some(arg),
        }
    }
}

/// The direct kernel's pooled stores: per pair of pixels, for each channel, the relu'd
/// values of this row and (`subgroupShuffleXor` by `XB`, the blocks per row) of the next
/// row form a 2x2 window; the invocation holding its top row stores the maximum (first
/// wins on ties, in row-major order, as `max_pool2d_forward`) and its arg-max. The loop
/// bound is the same in every invocation (shuffles need all of them), and shifts the
/// accumulators by two pixels per iteration.
fn pooled_stores(stores: &mut String, tp: usize, tc: usize, bias: bool) {
    let _ = writeln!(
        stores,
        "        let top = valid && oy % 2u == 0u;\n        let prow = oy / 2u;\n        let pairs = min(TP / 2u, arrayLength(&y));\n        for (var p = 0u; p < pairs; p++) {{\n            let pcol = ox0 / 2u + p;\n            let keep = top && prow < HP && pcol < WP;\n            let first = 2u * prow * WO + 2u * pcol;"
    );
    for j in 0..tc {
        let biased = |p: usize| {
            if bias {
                format!("a{j}_{p} + bv{j}")
            } else {
                format!("a{j}_{p}")
            }
        };
        let _ = writeln!(
            stores,
            "            {{\n            let v0 = max({}, 0.0);\n            let v1 = max({}, 0.0);\n            let v2 = subgroupShuffleXor(v0, XB);\n            let v3 = subgroupShuffleXor(v1, XB);\n            var best = v0;\n            var at = first;\n            if (v1 > best) {{ best = v1; at = first + 1u; }}\n            if (v2 > best) {{ best = v2; at = first + WO; }}\n            if (v3 > best) {{ best = v3; at = first + WO + 1u; }}\n            if (keep && co0 + {j}u < CO) {{\n                let o = ((n * CO + co0 + {j}u) * HP + prow) * WP + pcol;\n                y[o] = best;\n                arg[o] = select(0xffffffffu, at, best > 0.0);\n            }}\n            }}",
            biased(0),
            biased(1)
        );
    }
    shift_tile(stores, "            ", tp, tc, 2, |p, j| {
        format!("a{j}_{p}")
    });
    stores.push_str("        }\n");
}

/// Weight (and bias) gradient of a convolution with `c` input channels of `h x w`, `co`
/// output channels of `ho x wo`, kernel `k`, stride `s`, padding `p`, weights `[co][c][k][k]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WeightGrad {
    pub batch: usize,
    pub c: usize,
    pub co: usize,
    pub h: usize,
    pub w: usize,
    pub ho: usize,
    pub wo: usize,
    pub k: usize,
    pub s: usize,
    pub p: usize,
    pub bias: bool,
}

impl WeightGrad {
    fn tc(&self) -> usize {
        (WGRAD_ACC / (self.k * self.k)).clamp(1, 16).min(self.co)
    }

    /// (row bands per sample, rows per band).
    fn bands(&self) -> (usize, usize) {
        let per_sample = self.co.div_ceil(self.tc()) * self.c;
        let want = WGRAD_TARGET
            .div_ceil(per_sample * self.batch)
            .clamp(1, self.ho);
        let rpg = self.ho.div_ceil(want);
        (self.ho.div_ceil(rpg), rpg)
    }

    fn chunk_words(&self) -> usize {
        self.co * self.c * self.k * self.k + if self.bias { self.co } else { 0 }
    }

    /// Scratch words for the partial sums.
    pub fn scratch_words(&self) -> usize {
        self.batch * self.bands().0 * self.chunk_words()
    }

    /// `dw += sum conv-correlation(dy, x)` (and `db += sum dy`) through `part` (scratch of
    /// at least [`WeightGrad::scratch_words`] words).
    pub fn dispatches(
        &self,
        kb: &mut KernelBuilder,
        x: &BufferRef,
        dy: &BufferRef,
        part: &BufferRef,
        dw: &BufferRef,
        db: Option<&BufferRef>,
    ) -> Result<Vec<Dispatch>, GpuError> {
        let load = loader(kb);
        let tc = self.tc();
        let kk = self.k * self.k;
        let cb = self.co.div_ceil(tc);
        let (rg, rpg) = self.bands();
        let chunks = self.batch * rg;
        let wn = self.chunk_words();
        let n = chunks * self.c * cb;
        let lanes = kb
            .gpu()
            .adapter()
            .broadcast_lanes()
            .filter(|l| self.c.is_multiple_of(*l));
        let grid = match lanes {
            // Groups of `l` consecutive input channels (C is a multiple of `l`).
            Some(l) => LoopGrid::per_subgroup(
                l,
                n / l,
                format!(
                    "        let c = (g * {l}u) % C + lane;\n        let cb = (g * {l}u / C) % CB;\n        let chunk = g * {l}u / (C * CB);"
                ),
            ),
            None => LoopGrid::per_invocation(
                n,
                "        let cb = g % CB;\n        let c = (g / CB) % C;\n        let chunk = g / (CB * C);",
            ),
        };
        let bias = self.bias && db.is_some();
        let mut setup = String::new();
        if let Some(l) = lanes {
            // This invocation loads dy for channels co0 + lane, co0 + lane + l, ...
            for q in 0..tc.div_ceil(l) {
                let _ = writeln!(
                    setup,
                    "        let dyl{q} = (n * CO + min(co0 + lane + {}u, CO - 1u)) * HO * WO;",
                    q * l
                );
            }
        }
        for j in 0..tc {
            if lanes.is_none() {
                let _ = writeln!(
                    setup,
                    "        let dyo{j} = (n * CO + min(co0 + {j}u, CO - 1u)) * HO * WO;"
                );
            }
            for q in 0..kk {
                let _ = writeln!(setup, "        var g{j}_{q} = 0.0;");
            }
            if bias {
                let _ = writeln!(setup, "        var b{j} = 0.0;");
            }
        }
        let mut body = String::new();
        if let Some(l) = lanes {
            shared_loads(&mut body, "                ", tc, l, "dl", |q| {
                load(format!("dy[dyl{q} + p]"))
            });
        }
        for j in 0..tc {
            let d = match lanes {
                Some(l) => broadcast("dl", j, l),
                None => load(format!("dy[dyo{j} + p]")),
            };
            let _ = writeln!(body, "                let d{j} = {d};");
        }
        // Input rows depend on the output row only.
        let mut row = String::new();
        for ky in 0..self.k {
            input_row(&mut row, "            ", &format!("{ky}u"), &ky.to_string());
        }
        let load_x = |out: &mut String, indent: &str, decl: &str, ky: usize, kx: usize| {
            let xv = load(format!("x[row{ky} + cx{kx}]"));
            let _ = writeln!(
                out,
                "{indent}{decl}xv{ky}_{kx} = select(0.0, {xv}, vy{ky} && vx{kx});"
            );
        };
        let sliding = self.s == 1;
        if sliding {
            // Stride 1: the window slides one column per pixel, so each pixel loads only
            // its right column and shifts the others left (register moves).
            for kx in 0..self.k - 1 {
                input_column(&mut row, "            ", "0u", kx);
            }
            for ky in 0..self.k {
                for kx in 0..self.k - 1 {
                    load_x(&mut row, "            ", "var ", ky, kx);
                }
                let _ = writeln!(row, "            var xv{ky}_{} = 0.0;", self.k - 1);
            }
            input_column(&mut body, "                ", "ox", self.k - 1);
            for ky in 0..self.k {
                load_x(&mut body, "                ", "", ky, self.k - 1);
            }
        } else {
            for kx in 0..self.k {
                input_column(&mut body, "                ", "ox", kx);
            }
            for ky in 0..self.k {
                for kx in 0..self.k {
                    load_x(&mut body, "                ", "let ", ky, kx);
                }
            }
        }
        for j in 0..tc {
            for ky in 0..self.k {
                for kx in 0..self.k {
                    let q = ky * self.k + kx;
                    let _ = writeln!(
                        body,
                        "                g{j}_{q} = fma(d{j}, xv{ky}_{kx}, g{j}_{q});"
                    );
                }
            }
            if bias {
                let _ = writeln!(body, "                b{j} += d{j};");
            }
        }
        if sliding {
            for ky in 0..self.k {
                for kx in 0..self.k - 1 {
                    let _ = writeln!(body, "                xv{ky}_{kx} = xv{ky}_{};", kx + 1);
                }
            }
        }
        // Stores: a loop over the block's channels that shifts the accumulators down by one
        // channel per iteration, so the KS * KS stores appear once in the code (`arrayLength`
        // keeps the bound from being a constant the compiler would unroll, as for the
        // direct kernel's stores).
        let mut stores = String::from(
            "        let channels = min(min(TC, CO - co0), arrayLength(&part));\n        for (var j = 0u; j < channels; j++) {\n            let w = base + ((co0 + j) * C + c) * KK;\n",
        );
        for q in 0..kk {
            let _ = writeln!(stores, "            part[w + {q}u] = g0_{q};");
        }
        if bias {
            let _ = writeln!(
                stores,
                "            if (c == 0u) {{ part[base + CO * C * KK + co0 + j] = b0; }}"
            );
        }
        shift_tile(&mut stores, "            ", tc, kk, 1, |j, q| {
            format!("g{j}_{q}")
        });
        if bias {
            shift_tile(&mut stores, "            ", tc, 1, 1, |j, _| {
                format!("b{j}")
            });
        }
        stores.push_str("        }\n");
        let s = |v: usize| v.to_string();
        let mut subst = vec![
            ("C", s(self.c)),
            ("CO", s(self.co)),
            ("H", s(self.h)),
            ("W", s(self.w)),
            ("HO", s(self.ho)),
            ("WO", s(self.wo)),
            ("S", s(self.s)),
            ("P", s(self.p)),
            ("TC", s(tc)),
            ("CB", s(cb)),
            ("RG", s(rg)),
            ("RPG", s(rpg)),
            ("WN", s(wn)),
            ("KK", s(kk)),
            ("BIAS", s(bias as usize)),
            ("SETUP", setup),
            ("ROW", row),
            ("BODY", body),
            ("STORES", stores),
        ];
        subst.extend(grid.substitutions());
        let part = part.words(0, (chunks * wn) as u64);
        let (name, sources) = with_precision(kb, "conv2d_wgrad", WGRAD_WGSL);
        let wgrad = kb.compute(&name, &sources, &subst, &[x, dy, &part], grid.workgroups)?;
        let (groups, stride) = grid_1d(wn);
        let ww = self.co * self.c * kk;
        let (db_binding, db_add) = if bias {
            (
                "@group(0) @binding(2) var<storage, read_write> db: array<f32>;",
                "            db[i - WW] += acc;",
            )
        } else {
            ("", "")
        };
        let subst = [
            ("WW", s(ww)),
            ("WN", s(wn)),
            ("CHUNKS", s(chunks)),
            ("BIAS", s(bias as usize)),
            ("STRIDE", stride.to_string()),
            ("DB_BINDING", db_binding.to_string()),
            ("DB_ADD", db_add.to_string()),
        ];
        let mut bindings = vec![&part, dw];
        if bias {
            bindings.extend(db);
        }
        let reduce = kb.compute(
            "conv2d_wgrad_reduce",
            &[REDUCE_WGSL],
            &subst,
            &bindings,
            groups,
        )?;
        Ok(vec![wgrad, reduce])
    }
}

/// A kernel's name and sources at the builder's precision: f16 operands add `operand()`
/// (`precision.rs`) and `.f16` to the name.
fn with_precision(
    kb: &KernelBuilder,
    name: &str,
    wgsl: &'static str,
) -> (String, Vec<&'static str>) {
    match kb.precision() {
        Precision::F32 => (name.to_string(), vec![wgsl]),
        Precision::F16 => (
            format!("{name}.f16"),
            vec![crate::precision::F16_OPERAND_WGSL, wgsl],
        ),
    }
}

/// Wraps a load expression in `operand()` when the kernel rounds its operands to f16.
fn loader(kb: &KernelBuilder) -> impl Fn(String) -> String + use<> {
    let f16 = kb.precision() == Precision::F16;
    move |e: String| if f16 { format!("operand({e})") } else { e }
}
