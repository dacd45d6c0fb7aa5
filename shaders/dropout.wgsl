// dropout: out[i] = in[i] * (keep ? SCALE : 0), keep = hash_uniform(seed, layer, step, i) >= P.
// The same kernel serves forward (in = x, out = y) and backward (in = dy, out = dx).
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = bitcast<f32>({{P}}u);
    let scale = bitcast<f32>({{SCALE}}u);
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let u = hash_uniform(S.seed_lo, S.seed_hi, {{LAYER}}u, S.step, i);
        dst[i] = select(0.0, src[i] * scale, u >= p);
    }
}
