// softmax_backward: one invocation per row of D, from the forward's output y:
// softmax: dx = y * (dy - sum(dy * y)); log_softmax (LOG): dx = dy - exp(y) * sum(dy).
const D: u32 = {{D}}u;
const LOG: bool = {{LOG}};
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var row = gid.x; row < {{N}}u; row += {{STRIDE}}u) {
        let base = row * D;
        var s = 0.0;
        for (var j = 0u; j < D; j++) {
            s += select(dy[base + j] * y[base + j], dy[base + j], LOG);
        }
        for (var j = 0u; j < D; j++) {
            let g = dy[base + j];
            dx[base + j] = select(y[base + j] * (g - s), g - exp(y[base + j]) * s, LOG);
        }
    }
}
