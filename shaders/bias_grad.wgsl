// bias_grad: db[c] += sum over samples n and positions i of dy[n][c][i].
// One invocation per channel; it walks samples and positions in a fixed order, so the sum
// is deterministic without atomics. Layout: dy is [OUTER, CHANNELS, INNER] row-major.
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var c = gid.x; c < {{CHANNELS}}u; c += {{STRIDE}}u) {
        var acc = 0.0;
        for (var n = 0u; n < {{OUTER}}u; n++) {
            let base = (n * {{CHANNELS}}u + c) * {{INNER}}u;
            for (var i = 0u; i < {{INNER}}u; i++) {
                acc += dy[base + i];
            }
        }
        db[c] += acc;
    }
}
