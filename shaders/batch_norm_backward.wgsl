// batch_norm_backward: the input gradient through the batch statistics,
// dx = weight * rstd * (dy - sum(dy) / m - xhat * sum(dy * xhat) / m) over the m valid
// values of the channel; padded rows get zero (they must not reach earlier layers).
const C: u32 = {{C}}u;
const SP: u32 = {{SPATIAL}}u;
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> scratch: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let inv_m = 1.0 / f32(max(S.rows * SP, 1u));
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        if (i / (C * SP) >= S.rows) {
            dx[i] = 0.0;
            continue;
        }
        let c = (i / SP) % C;
        let rstd = scratch[2u * c + 1u];
        let xhat = (x[i] - scratch[2u * c]) * rstd;
        let sum_dy = scratch[2u * C + 2u * c];
        let sum_dyx = scratch[2u * C + 2u * c + 1u];
        dx[i] = weight[c] * rstd * (dy[i] - sum_dy * inv_m - xhat * sum_dyx * inv_m);
    }
}
