// avg_pool2d_backward: one invocation per input element, gathering dy / (KH*KW) from every
// window that covers it (fixed order, no atomics).
{{GEOM}}
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let ix = i % W;
        let iy = (i / W) % H;
        let plane = i / (W * H);
        let oy_lo = select(0u, (iy - KH + 1u + SH - 1u) / SH, iy + 1u > KH);
        let oy_hi = min(iy / SH, HO - 1u);
        let ox_lo = select(0u, (ix - KW + 1u + SW - 1u) / SW, ix + 1u > KW);
        let ox_hi = min(ix / SW, WO - 1u);
        var acc = 0.0;
        for (var oy = oy_lo; oy <= oy_hi; oy++) {
            for (var ox = ox_lo; ox <= ox_hi; ox++) {
                acc += dy[(plane * HO + oy) * WO + ox];
            }
        }
        dx[i] = acc * (1.0 / f32(KH * KW));
    }
}
