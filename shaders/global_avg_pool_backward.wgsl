// global_avg_pool_backward: one invocation per input element, its channel's dy / PLANE.
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        dx[i] = dy[i / {{PLANE}}u] * (1.0 / f32({{PLANE}}u));
    }
}
