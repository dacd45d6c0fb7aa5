// add_into: y[i] += x[i] (the third and later gradients of a tensor that feeds several ops,
// added in a fixed order).
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        y[i] = y[i] + x[i];
    }
}
