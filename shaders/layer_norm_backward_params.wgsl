// layer_norm_backward_params: one invocation per feature j, summing over rows in order:
// dgamma[j] += sum dy * xhat, dbeta[j] += sum dy (accumulating; the optimizer zeroes them).
const D: u32 = {{D}}u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbeta: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var j = gid.x; j < D; j += {{STRIDE}}u) {
        var sg = 0.0;
        var sb = 0.0;
        for (var row = 0u; row < {{ROWS}}u; row++) {
            let i = row * D + j;
            let xhat = (x[i] - stats[2u * row]) * stats[2u * row + 1u];
            sg += dy[i] * xhat;
            sb += dy[i];
        }
        dgamma[j] += sg;
        dbeta[j] += sb;
    }
}
