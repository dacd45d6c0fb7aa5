// conv2d_generic_forward: a convolution with any kernel height and width, strides and
// padding (rectangular kernels; conv1d is a conv over [C, 1, L]): one invocation per output
// element, summing over input channels and kernel offsets in a fixed order (+ bias[o])
// (then max(., 0) when RELU). Square kernels, strides and paddings run conv2d_direct.
{{GEOM}}
const BIAS: bool = {{BIAS}};
const RELU: bool = {{RELU}};
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> wt: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let ox = i % WO;
        let oy = (i / WO) % HO;
        let o = (i / (WO * HO)) % CO;
        let n = i / (WO * HO * CO);
        var acc = 0.0;
        if (BIAS) {
            acc = bias[o];
        }
        for (var c = 0u; c < CI; c++) {
            let xc = (n * CI + c) * H;
            let wc = (o * CI + c) * KH;
            for (var ky = 0u; ky < KH; ky++) {
                let iy = i32(oy * SH + ky) - PH;
                if (iy < 0 || iy >= i32(H)) {
                    continue;
                }
                let xr = (xc + u32(iy)) * W;
                let wr = (wc + ky) * KW;
                for (var kx = 0u; kx < KW; kx++) {
                    let ix = i32(ox * SW + kx) - PW;
                    if (ix >= 0 && ix < i32(W)) {
                        acc += x[xr + u32(ix)] * wt[wr + kx];
                    }
                }
            }
        }
        if (RELU) {
            acc = max(acc, 0.0);
        }
        y[i] = acc;
    }
}
