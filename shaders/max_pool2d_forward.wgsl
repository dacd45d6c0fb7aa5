// max_pool2d_forward: one invocation per output element; y = window max, arg = first
// position (iy * W + ix within the channel plane) holding it. RELU_ARG (the pool follows a
// relu fused into the layer before it): a window whose maximum is not positive records no
// arg-max (0xffffffff), so the backward passes no gradient there: the relu's backward.
const RELU_ARG: u32 = {{RELU_ARG}}u;
{{GEOM}}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> arg: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let ox = i % WO;
        let oy = (i / WO) % HO;
        let plane = i / (WO * HO);
        let base = plane * H * W;
        var best = -3.4028235e38;
        var best_i = oy * SH * W + ox * SW;
        var first = true;
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                let p = (oy * SH + ky) * W + ox * SW + kx;
                let v = x[base + p];
                if (first || v > best) {
                    best = v;
                    best_i = p;
                    first = false;
                }
            }
        }
        y[i] = best;
        if (RELU_ARG == 1u && !(best > 0.0)) {
            best_i = 0xffffffffu;
        }
        arg[i] = best_i;
    }
}
