// conv2d_generic_wgrad: the weight gradient of conv2d_generic_forward, one invocation per
// weight element (CO * CI * KH * KW of them) summing dy * x over the batch and the output
// positions in a fixed order, added into the gradient; the invocations after them add the
// bias gradient, one per output channel (the sum of its dy). No atomics.
{{GEOM}}
const NW: u32 = CO * CI * KH * KW;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;
@group(0) @binding(3) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        var acc = 0.0;
        if (i >= NW) {
            let o = i - NW;
            for (var n = 0u; n < BATCH; n++) {
                let base = (n * CO + o) * HO * WO;
                for (var j = 0u; j < HO * WO; j++) {
                    acc += dy[base + j];
                }
            }
            db[o] += acc;
            continue;
        }
        let kx = i % KW;
        let ky = (i / KW) % KH;
        let c = (i / (KW * KH)) % CI;
        let o = i / (KW * KH * CI);
        for (var n = 0u; n < BATCH; n++) {
            let xc = (n * CI + c) * H;
            let dyo = (n * CO + o) * HO;
            for (var oy = 0u; oy < HO; oy++) {
                let iy = i32(oy * SH + ky) - PH;
                if (iy < 0 || iy >= i32(H)) {
                    continue;
                }
                let xr = (xc + u32(iy)) * W;
                let dyr = (dyo + oy) * WO;
                for (var ox = 0u; ox < WO; ox++) {
                    let ix = i32(ox * SW + kx) - PW;
                    if (ix >= 0 && ix < i32(W)) {
                        acc += dy[dyr + ox] * x[xr + u32(ix)];
                    }
                }
            }
        }
        dw[i] += acc;
    }
}
