// matmul: C[z] (+)= sum_r A[z,r] . B[z,r] (+ bias) (then relu, then * mask), operands
// addressed through strides (see ops/src/matmul.rs, which generates the tile code).
// Under mixed precision A, B, C and the mask may hold f16 values (stored activations):
// loads widen them to f32, stores round to f16; products and sums are f32 either way.
//
// Layout of the work, one of two (ops/src/matmul.rs picks):
// - rows per invocation: a workgroup of WG x WG invocations; invocation (x, y) owns rows
//   m0 + i * WG (i < TM) and columns n0 + j * WG (j < TN) of C, and loads its rows of A
//   itself.
// - rows shared by a subgroup (CPU adapters with 8-wide subgroups): a workgroup is one
//   subgroup of WG invocations owning TM consecutive rows; per k each invocation loads
//   every WG-th of those rows' A values and `subgroupBroadcast` hands them to the others,
//   so the subgroup loads TM / WG values of A instead of TM per invocation.
// Either way an invocation holds TM * TN scalar accumulators and per k does TM * TN FMAs:
// on the software adapters (lavapipe/llvmpipe run invocations as SIMD lanes and load
// storage buffers lane by lane, with a bounds check per element) the loads dominate, so
// the tile is made as large as the problem allows and shared loads are worth the most.
// Neighbouring invocations own neighbouring columns (coalesced on a GPU). No workgroup
// memory and no barriers. Edges: rows and columns are clamped (always in bounds, no
// branches in the k loop), stores are masked.
//
// Stores run in a loop over the tile's rows that shifts the accumulator rows up by one per
// iteration, so the epilogue's loads and stores appear TN times in the code, not TM * TN:
// the CPU adapters compile each memory access into a lane loop with bounds checks, and
// straight-line epilogues made a kernel take ~0.4 s to compile instead of ~0.07 s.

const M: u32 = {{M}}u;
const N: u32 = {{N}}u;
const K: u32 = {{K}}u;
const A_ROW: u32 = {{A_ROW}}u;
const A_COL: u32 = {{A_COL}}u;
const B_ROW: u32 = {{B_ROW}}u;
const B_COL: u32 = {{B_COL}}u;
const A_BATCH: u32 = {{A_BATCH}}u;
const B_BATCH: u32 = {{B_BATCH}}u;
const C_BATCH: u32 = {{C_BATCH}}u;
const REDUCE: u32 = {{REDUCE}}u;
const A_REDUCE: u32 = {{A_REDUCE}}u;
const B_REDUCE: u32 = {{B_REDUCE}}u;
const ACCUMULATE: u32 = {{ACCUMULATE}}u;
const RELU: u32 = {{RELU}}u;            // 1: out = max(out, 0) (fused activation)
const MASKED: u32 = {{MASKED}}u;        // 1: out = select(0, out, mask[z][m][n] > 0) (fused relu backward)
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const WG: u32 = {{WG}}u;
const RS: u32 = {{RS}}u;                // invocations along y = distance between an invocation's rows

@group(0) @binding(0) var<storage, read> a: array<{{A_ELEM}}>;
@group(0) @binding(1) var<storage, read> b: array<{{B_ELEM}}>;
@group(0) @binding(2) var<storage, read_write> c: array<{{C_ELEM}}>;
{{EXTRA_BINDINGS}}

// `v` has the bias added already (loaded once per column, before the store loop).
fn epilogue(z: u32, m: u32, n: u32, v: f32) {
    let i = z * C_BATCH + m * N + n;
    var out = v;
    if (ACCUMULATE == 1u) { out += f32(c[i]); }
    if (RELU == 1u) { out = max(out, 0.0); }
{{MASK_APPLY}}
    c[i] = {{C_STORE}};
}

@compute @workgroup_size({{WG}}, {{RS}}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>{{LANE}}) {
    let z = wid.z;
    let m0 = wid.y * (RS * TM) + lid.y;
    let n0 = wid.x * (WG * TN) + lid.x;
{{EARLY_EXIT}}
    // Clamped row offsets and column offsets.
{{SETUP}}
    for (var r = 0u; r < REDUCE; r++) {
        let abase = z * A_BATCH + r * A_REDUCE;
        let bbase = z * B_BATCH + r * B_REDUCE;
{{K_LOOPS}}
    }
{{STORES}}
}
