// slice_backward: dx[s, j] = dy[s, j - OFFSET] for OFFSET <= j < OFFSET + LEN, else 0;
// TOTAL values a sample.
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let sample = i / {{TOTAL}}u;
        let j = i % {{TOTAL}}u;
        var value = 0.0;
        if (j >= {{OFFSET}}u && j < {{OFFSET}}u + {{LEN}}u) {
            value = dy[sample * {{LEN}}u + j - {{OFFSET}}u];
        }
        dx[i] = value;
    }
}
