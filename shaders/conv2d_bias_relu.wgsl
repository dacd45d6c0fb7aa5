// conv2d_bias_relu: y[n][o][p] = y[n][o][p] + bias[o] (when BIAS), then max(., 0) (when
// RELU): the epilogue of the im2col + GEMM convolution (the GEMM adds biases per column,
// a conv's are per row).
const BIAS: bool = {{BIAS}};
const RELU: bool = {{RELU}};
@group(0) @binding(0) var<storage, read> bias: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        var v = y[i];
        if (BIAS) {
            v += bias[(i / {{PLANE}}u) % {{CO}}u];
        }
        if (RELU) {
            v = max(v, 0.0);
        }
        y[i] = v;
    }
}
