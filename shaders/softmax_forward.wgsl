// softmax_forward: one invocation per row of D (the last dimension): the row's maximum,
// then the sum of exp(x - max) in order; y = exp(x - max) / sum, or with LOG
// y = x - max - log(sum) (log_softmax).
const D: u32 = {{D}}u;
const LOG: bool = {{LOG}};
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var row = gid.x; row < {{N}}u; row += {{STRIDE}}u) {
        let base = row * D;
        var m = x[base];
        for (var j = 1u; j < D; j++) { m = max(m, x[base + j]); }
        var sum = 0.0;
        for (var j = 0u; j < D; j++) { sum += exp(x[base + j] - m); }
        let log_sum = log(sum);
        for (var j = 0u; j < D; j++) {
            let z = x[base + j] - m;
            y[base + j] = select(exp(z) / sum, z - log_sum, LOG);
        }
    }
}
