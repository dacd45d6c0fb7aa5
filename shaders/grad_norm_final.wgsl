// grad_norm_final: one invocation adds the partial sums in order; norm of the mean gradient
// = sqrt(sum) * grad_scale / loss scale (the scale the gradients carry: scale / batch); clip = min(1, clip_max / (norm + 1e-6)) when
// clipping is on. scalars[0] = clip / loss scale is the optimizer's factor (it unscales
// mixed precision's gradients); the loss scale is 1 without mixed precision.
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> scalars: array<f32>;
@group(0) @binding(3) var<storage, read_write> metrics: array<u32>;
{{LOSS_SCALE}}

@compute @workgroup_size(1)
fn main() {
    var acc = 0.0;
    for (var i = 0u; i < {{PARTIALS}}u; i++) { acc += partials[i]; }
    let scale = loss_scale();
    let norm = sqrt(acc) * S.grad_scale / scale;
    var clip = 1.0;
    if (S.clip_max > 0.0) {
        clip = min(1.0, S.clip_max / (norm + 1e-6));
    }
    scalars[0] = clip / scale;
    scalars[1] = norm;
    // A skipped mixed-precision update (inf or NaN) keeps the last applied norm.
    if (!SKIPS_NON_FINITE || (bitcast<u32>(norm) & 0x7f800000u) != 0x7f800000u) {
        metrics[5] = bitcast<u32>(norm);
    }
}
