// layer_norm_backward: one invocation per row.
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma, xhat = (x - mean) * rstd.
const D: u32 = {{D}}u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var row = gid.x; row < {{ROWS}}u; row += {{STRIDE}}u) {
        let base = row * D;
        let mean = stats[2u * row];
        let rstd = stats[2u * row + 1u];
        var sum_g = 0.0;
        var sum_gx = 0.0;
        for (var j = 0u; j < D; j++) {
            let g = dy[base + j] * gamma[j];
            sum_g += g;
            sum_gx += g * (x[base + j] - mean) * rstd;
        }
        let mean_g = sum_g / f32(D);
        let mean_gx = sum_gx / f32(D);
        for (var j = 0u; j < D; j++) {
            let xhat = (x[base + j] - mean) * rstd;
            dx[base + j] = rstd * (dy[base + j] * gamma[j] - mean_g - xhat * mean_gx);
        }
    }
}
