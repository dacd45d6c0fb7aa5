// concat_forward: y = [a | b] per sample (along the first per-sample dimension: channels
// or features); one invocation per output element. A and B are the per-sample lengths.
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let sample = i / ({{A}}u + {{B}}u);
        let j = i % ({{A}}u + {{B}}u);
        if (j < {{A}}u) {
            y[i] = a[sample * {{A}}u + j];
        } else {
            y[i] = b[sample * {{B}}u + j - {{A}}u];
        }
    }
}
