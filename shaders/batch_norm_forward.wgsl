// batch_norm_forward: y = (x - mean[c]) * rstd[c] * weight[c] + bias[c], c the channel of
// each element. Training reads the batch statistics batch_norm_stats wrote (mean_src and
// var_src both bind them: mean at 2c, rstd at 2c + 1); evaluation the running mean and
// variance.
const C: u32 = {{C}}u;
const SP: u32 = {{SPATIAL}}u;
const EVAL: bool = {{EVAL}};
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> mean_src: array<f32>;
@group(0) @binding(4) var<storage, read> var_src: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let c = (i / SP) % C;
        var mean: f32;
        var rstd: f32;
        if (EVAL) {
            mean = mean_src[c];
            rstd = 1.0 / sqrt(var_src[c] + bitcast<f32>({{EPS}}u));
        } else {
            mean = mean_src[2u * c];
            rstd = var_src[2u * c + 1u];
        }
        y[i] = (x[i] - mean) * rstd * weight[c] + bias[c];
    }
}
