// max_pool2d_backward_disjoint (stride == kernel: windows do not overlap): one invocation
// per window of the grid ceil(H / KH) x ceil(W / KW), which covers every input element
// exactly once. It loads the window's dy and arg-max once and writes all its inputs: dy at
// the arg-max, zero elsewhere (also for the partial windows past HO/WO that floor mode
// drops). Two loads per window instead of two per input element.
{{GEOM}}
const GH: u32 = (H + KH - 1u) / KH;
const GW: u32 = (W + KW - 1u) / KW;
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> arg: array<u32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let wx = i % GW;
        let wy = (i / GW) % GH;
        let plane = i / (GW * GH);
        var v = 0.0;
        var a = 0xffffffffu;
        if (wy < HO && wx < WO) {
            let o = (plane * HO + wy) * WO + wx;
            v = dy[o];
            a = arg[o];
        }
        let base = plane * H * W;
        for (var ky = 0u; ky < KH; ky++) {
            let iy = wy * KH + ky;
            for (var kx = 0u; kx < KW; kx++) {
                let ix = wx * KW + kx;
                if (iy < H && ix < W) {
                    let p = iy * W + ix;
                    dx[base + p] = select(0.0, v, a == p);
                }
            }
        }
    }
}
