// conv2d_im2col: col[n][(c*KH + ky)*KW + kx][oy*WO + ox] = x[n][c][oy*SH + ky - PH][ox*SW + kx - PW]
// (zero outside the input): the columns a GEMM with the [CO, C*KH*KW] weight turns into the
// output. The path of convs the tiled direct kernels do not run (rectangular kernels,
// strides or paddings; conv1d). One invocation per column element.
{{GEOM}}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> col: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let hw = HO * WO;
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let ox = i % WO;
        let oy = (i / WO) % HO;
        let r = (i / hw) % (C * KH * KW);
        let n = i / (hw * C * KH * KW);
        let kx = r % KW;
        let ky = (r / KW) % KH;
        let c = r / (KW * KH);
        let iy = i32(oy * SH + ky) - i32(PH);
        let ix = i32(ox * SW + kx) - i32(PW);
        let inside = iy >= 0 && iy < i32(H) && ix >= 0 && ix < i32(W);
        let at = ((n * C + c) * H + u32(max(iy, 0))) * W + u32(max(ix, 0));
        col[i] = select(0.0, x[min(at, {{X_LEN}}u - 1u)], inside);
    }
}
