// layer_norm_forward: one invocation per row of D elements (rows are independent and D is
// small, so a serial two-pass mean/variance per invocation beats a barrier-heavy tree).
// stats[2*row] = mean, stats[2*row+1] = 1/sqrt(var + eps), kept for backward.
const D: u32 = {{D}}u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var row = gid.x; row < {{ROWS}}u; row += {{STRIDE}}u) {
        let base = row * D;
        var sum = 0.0;
        for (var j = 0u; j < D; j++) { sum += x[base + j]; }
        let mean = sum / f32(D);
        var sq = 0.0;
        for (var j = 0u; j < D; j++) { let c = x[base + j] - mean; sq += c * c; }
        let rstd = 1.0 / sqrt(sq / f32(D) + bitcast<f32>({{EPS}}u));
        for (var j = 0u; j < D; j++) {
            y[base + j] = (x[base + j] - mean) * rstd * gamma[j] + beta[j];
        }
        stats[2u * row] = mean;
        stats[2u * row + 1u] = rstd;
    }
}
