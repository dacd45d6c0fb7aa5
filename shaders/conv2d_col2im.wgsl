// conv2d_col2im: dx[n][c][iy][ix] = sum over kernel offsets (ky, kx) whose output position
// (oy, ox) with oy*SH + ky - PH = iy (and likewise for x) is valid, of
// dcol[n][(c*KH+ky)*KW+kx][oy*WO+ox].
// A gather (one invocation per input element) instead of a scatter: no atomics, fixed order.
{{GEOM}}
@group(0) @binding(0) var<storage, read> dcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let hw = HO * WO;
    let rows = C * KH * KW;
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let ix = i % W;
        let iy = (i / W) % H;
        let c = (i / (W * H)) % C;
        let n = i / (W * H * C);
        var acc = 0.0;
        for (var ky = 0u; ky < KH; ky++) {
            let ty = iy + PH;
            if (ty < ky || (ty - ky) % SH != 0u) { continue; }
            let oy = (ty - ky) / SH;
            if (oy >= HO) { continue; }
            for (var kx = 0u; kx < KW; kx++) {
                let tx = ix + PW;
                if (tx < kx || (tx - kx) % SW != 0u) { continue; }
                let ox = (tx - kx) / SW;
                if (ox >= WO) { continue; }
                let r = (c * KH + ky) * KW + kx;
                acc += dcol[(n * rows + r) * hw + oy * WO + ox];
            }
        }
        dx[i] = acc;
    }
}
