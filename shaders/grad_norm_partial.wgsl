// grad_norm_partial: PARTIALS invocations; invocation i sums g^2 over the contiguous chunk
// [i*CHUNK, min((i+1)*CHUNK, N)) serially. Fixed order: deterministic.
@group(0) @binding(0) var<storage, read> grads: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= {{PARTIALS}}u) { return; }
    let start = min(i * {{CHUNK}}u, {{N}}u);
    let end = min(start + {{CHUNK}}u, {{N}}u);
    var acc = 0.0;
    for (var j = start; j < end; j++) {
        let g = grads[j];
        acc += g * g;
    }
    partials[i] = acc;
}
