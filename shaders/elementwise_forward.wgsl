// Generic element-wise forward driver: y[i] = act_forward(x[i]).
// The activation's own file (relu.wgsl, gelu.wgsl, ...) supplies act_forward.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        y[i] = act_forward(x[i]);
    }
}
