// conv2d_im2col: col[n][(c*KS + ky)*KS + kx][oy*WO + ox] = x[n][c][oy*S + ky - P][ox*S + kx - P]
// (zero outside the image). One invocation per col element, grid-stride loop; consecutive
// invocations write consecutive output positions (coalesced stores).
{{GEOM}}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> col: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let hw = HO * WO;
    let rows = C * KS * KS;
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let p = i % hw;
        let r = (i / hw) % rows;
        let n = i / (hw * rows);
        let c = r / (KS * KS);
        let ky = (r / KS) % KS;
        let kx = r % KS;
        let iy = i32((p / WO) * S + ky) - i32(P);
        let ix = i32((p % WO) * S + kx) - i32(P);
        var v = 0.0;
        if (iy >= 0 && iy < i32(H) && ix >= 0 && ix < i32(W)) {
            v = x[((n * C + c) * H + u32(iy)) * W + u32(ix)];
        }
        col[i] = v;
    }
}
