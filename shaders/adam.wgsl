// adam / adamw: one fused pass over the packed parameter buffer (grid-stride, four
// parameters per invocation as vec4). state holds m in [0, N) and v in [N, 2N) (N vec4s).
// Gradients are scaled by grad_scale * clip, consumed and zeroed.
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> scalars: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> state: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> params: array<vec4<f32>>;

// 1 - exp(x) for x <= 0 without the cancellation of `1.0 - exp(x)` near 0 (Adam's
// 1 - 0.999^t at small t): a Taylor series below |x| = 1/4 (truncation < 1e-7 relative).
fn one_minus_exp(x: f32) -> f32 {
    if (x > -0.25) {
        return -x * (1.0 + x / 2.0 * (1.0 + x / 3.0 * (1.0 + x / 4.0 * (1.0 + x / 5.0 * (1.0 + x / 6.0)))));
    }
    return 1.0 - exp(x);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b1 = bitcast<f32>({{BETA1}}u);
    let b2 = bitcast<f32>({{BETA2}}u);
    let eps = bitcast<f32>({{EPS}}u);
    let wd = bitcast<f32>({{WEIGHT_DECAY}}u);
    let scale = S.grad_scale * scalars[0];
    // A mixed-precision update whose gradients overflowed is skipped (scalars[2], set by
    // loss_scale_update): parameters and state stay, the gradients are still consumed.
    if (scalars[2] != 0.0) {
        for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) { grads[i] = vec4<f32>(0.0); }
        return;
    }
    var step_size = S.lr / S.bias_correction1;
    var sqrt_bc2 = sqrt(S.bias_correction2);
    // Mixed precision: updates skipped so far (scalars[3], from loss_scale_update) are not
    // Adam steps, as in PyTorch; the host's count includes them.
    // 1 - beta^t from t ln beta (ln beta from the host in f64): `pow` may go through
    // log2, whose absolute error is large next to log2(0.999).
    if ({{COUNTS_SKIPPED}}u == 1u && scalars[3] > 0.0) {
        let t = max(f32(S.opt_t) - scalars[3], 1.0);
        step_size = S.lr / one_minus_exp(t * bitcast<f32>({{LN_BETA1}}u));
        sqrt_bc2 = sqrt(one_minus_exp(t * bitcast<f32>({{LN_BETA2}}u)));
    }
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        var g = grads[i] * scale;
        grads[i] = vec4<f32>(0.0);
        var p = params[i];
        if ({{DECOUPLED}}u == 1u) {
            p = p * (1.0 - S.lr * wd);
        } else {
            g = g + wd * p;
        }
        let m = b1 * state[i] + (1.0 - b1) * g;
        let v = b2 * state[{{N}}u + i] + (1.0 - b2) * g * g;
        state[i] = m;
        state[{{N}}u + i] = v;
        params[i] = p - step_size * (m / (sqrt(v) / sqrt_bc2 + eps));
    }
}
