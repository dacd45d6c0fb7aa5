// conv2d_col2im: dx[n][c][iy][ix] = sum over kernel offsets (ky, kx) whose output position
// (oy, ox) with oy*S + ky - P = iy (and likewise for x) is valid, of dcol[n][(c*KS+ky)*KS+kx][oy*WO+ox].
// A gather (one invocation per input element) instead of a scatter: no atomics, fixed order.
{{GEOM}}
@group(0) @binding(0) var<storage, read> dcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let hw = HO * WO;
    let rows = C * KS * KS;
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let ix = i % W;
        let iy = (i / W) % H;
        let c = (i / (W * H)) % C;
        let n = i / (W * H * C);
        var acc = 0.0;
        for (var ky = 0u; ky < KS; ky++) {
            let ty = iy + P;
            if (ty < ky || (ty - ky) % S != 0u) { continue; }
            let oy = (ty - ky) / S;
            if (oy >= HO) { continue; }
            for (var kx = 0u; kx < KS; kx++) {
                let tx = ix + P;
                if (tx < kx || (tx - kx) % S != 0u) { continue; }
                let ox = (tx - kx) / S;
                if (ox >= WO) { continue; }
                let r = (c * KS + ky) * KS + kx;
                acc += dcol[(n * rows + r) * hw + oy * WO + ox];
            }
        }
        dx[i] = acc;
    }
}
