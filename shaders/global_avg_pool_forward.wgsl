// global_avg_pool_forward: one invocation per (sample, channel), the mean of its PLANE
// values (summed in order).
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let base = i * {{PLANE}}u;
        var acc = 0.0;
        for (var j = 0u; j < {{PLANE}}u; j++) {
            acc += x[base + j];
        }
        y[i] = acc * (1.0 / f32({{PLANE}}u));
    }
}
