// zero: x[i] = 0 (the input gradient of an op whose input is not differentiable).
@group(0) @binding(0) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        x[i] = 0.0;
    }
}
