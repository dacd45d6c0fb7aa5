// concat_backward: one input's gradient, its slice of dy: dx[sample, j] = dy[sample,
// OFFSET + j], LEN values a sample out of TOTAL.
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let sample = i / {{LEN}}u;
        dx[i] = dy[sample * {{TOTAL}}u + {{OFFSET}}u + i % {{LEN}}u];
    }
}
