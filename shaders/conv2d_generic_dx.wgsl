// conv2d_generic_dx: the input gradient of conv2d_generic_forward, one invocation per
// input element: the sum, in a fixed order, of dy at every output its value fed times the
// weight it was multiplied by (a gather: no atomics).
{{GEOM}}
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> wt: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let ix = i % W;
        let iy = (i / W) % H;
        let c = (i / (W * H)) % CI;
        let n = i / (W * H * CI);
        var acc = 0.0;
        for (var o = 0u; o < CO; o++) {
            let dyo = (n * CO + o) * HO;
            let wc = (o * CI + c) * KH;
            for (var ky = 0u; ky < KH; ky++) {
                // Output row oy reads this row at offset ky when oy * SH + ky - PH == iy.
                let ty = i32(iy) + PH - i32(ky);
                if (ty < 0 || ty % i32(SH) != 0 || ty / i32(SH) >= i32(HO)) {
                    continue;
                }
                let dyr = (dyo + u32(ty / i32(SH))) * WO;
                let wr = (wc + ky) * KW;
                for (var kx = 0u; kx < KW; kx++) {
                    let tx = i32(ix) + PW - i32(kx);
                    if (tx >= 0 && tx % i32(SW) == 0 && tx / i32(SW) < i32(WO)) {
                        acc += dy[dyr + u32(tx / i32(SW))] * wt[wr + kx];
                    }
                }
            }
        }
        dx[i] = acc;
    }
}
