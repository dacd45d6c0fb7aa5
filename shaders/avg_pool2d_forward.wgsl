// avg_pool2d_forward: one invocation per output element, mean of its KH x KW window.
{{GEOM}}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let ox = i % WO;
        let oy = (i / WO) % HO;
        let base = (i / (WO * HO)) * H * W;
        var acc = 0.0;
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                acc += x[base + (oy * SH + ky) * W + ox * SW + kx];
            }
        }
        y[i] = acc * (1.0 / f32(KH * KW));
    }
}
