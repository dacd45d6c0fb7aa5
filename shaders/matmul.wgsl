// matmul: C[z] (+)= sum_r A[z,r] . B[z,r] (+ bias), operands addressed through strides
// (see ops/src/matmul.rs). Each invocation computes a 4x4 register tile of C; an 8x8
// workgroup covers 32x32. No workgroup memory and no barriers: software adapters run a
// workgroup's invocations as SIMD lanes of one thread, where barriers are expensive.
// Edges: loads use clamped indices (always in bounds, no branches in the inner loop) and
// stores are masked.

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
const BIAS: u32 = {{BIAS}}u;            // 0 none, 1 per column, 2 per row
const ACCUMULATE: u32 = {{ACCUMULATE}}u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

fn load_a4(base: u32, k: u32) -> vec4<f32> {
    return vec4<f32>(a[base + k * A_COL], a[base + (k + 1u) * A_COL],
                     a[base + (k + 2u) * A_COL], a[base + (k + 3u) * A_COL]);
}

fn load_b4(b0: u32, b1: u32, b2: u32, b3: u32, k: u32) -> vec4<f32> {
    let o = k * B_ROW;
    return vec4<f32>(b[b0 + o], b[b1 + o], b[b2 + o], b[b3 + o]);
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m0 = gid.y * 4u;
    let n0 = gid.x * 4u;
    let z = gid.z;
    if (m0 >= M || n0 >= N) {
        return;
    }
    let m1 = min(m0 + 1u, M - 1u);
    let m2 = min(m0 + 2u, M - 1u);
    let m3 = min(m0 + 3u, M - 1u);
    let n1 = min(n0 + 1u, N - 1u);
    let n2 = min(n0 + 2u, N - 1u);
    let n3 = min(n0 + 3u, N - 1u);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let k4 = K & ~3u;
    for (var r = 0u; r < REDUCE; r++) {
        let abase = z * A_BATCH + r * A_REDUCE;
        let bbase = z * B_BATCH + r * B_REDUCE;
        let a0 = abase + m0 * A_ROW;
        let a1 = abase + m1 * A_ROW;
        let a2 = abase + m2 * A_ROW;
        let a3 = abase + m3 * A_ROW;
        let b0 = bbase + n0 * B_COL;
        let b1 = bbase + n1 * B_COL;
        let b2 = bbase + n2 * B_COL;
        let b3 = bbase + n3 * B_COL;
        for (var k = 0u; k < k4; k += 4u) {
            let r0 = load_a4(a0, k);
            let r1 = load_a4(a1, k);
            let r2 = load_a4(a2, k);
            let r3 = load_a4(a3, k);
            let c0 = load_b4(b0, b1, b2, b3, k);
            let c1 = load_b4(b0, b1, b2, b3, k + 1u);
            let c2 = load_b4(b0, b1, b2, b3, k + 2u);
            let c3 = load_b4(b0, b1, b2, b3, k + 3u);
            acc0 += r0.x * c0 + r0.y * c1 + r0.z * c2 + r0.w * c3;
            acc1 += r1.x * c0 + r1.y * c1 + r1.z * c2 + r1.w * c3;
            acc2 += r2.x * c0 + r2.y * c1 + r2.z * c2 + r2.w * c3;
            acc3 += r3.x * c0 + r3.y * c1 + r3.z * c2 + r3.w * c3;
        }
        for (var k = k4; k < K; k++) {
            let bk = load_b4(b0, b1, b2, b3, k);
            acc0 += a[a0 + k * A_COL] * bk;
            acc1 += a[a1 + k * A_COL] * bk;
            acc2 += a[a2 + k * A_COL] * bk;
            acc3 += a[a3 + k * A_COL] * bk;
        }
    }
    store_row(z, m0, n0, acc0);
    if (m0 + 1u < M) { store_row(z, m0 + 1u, n0, acc1); }
    if (m0 + 2u < M) { store_row(z, m0 + 2u, n0, acc2); }
    if (m0 + 3u < M) { store_row(z, m0 + 3u, n0, acc3); }
}

fn store_row(z: u32, m: u32, n0: u32, v: vec4<f32>) {
    let base = z * C_BATCH + m * N;
    for (var j = 0u; j < 4u; j++) {
        let n = n0 + j;
        if (n < N) {
            var out = v[j];
            if (BIAS == 1u) { out += bias[n]; }
            if (BIAS == 2u) { out += bias[m]; }
            if (ACCUMULATE == 1u) { out += c[base + n]; }
            c[base + n] = out;
        }
    }
}
