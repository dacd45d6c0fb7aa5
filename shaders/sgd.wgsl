// sgd: one fused pass over the packed parameter buffer (grid-stride, four parameters per
// invocation as vec4):
// g = grad * grad_scale * clip (+ wd p); buf = momentum buf + g; g = nesterov ? g + momentum buf : buf;
// p -= lr g; grad = 0 (ready for the next accumulation group).
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> scalars: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> state: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> params: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let momentum = bitcast<f32>({{MOMENTUM}}u);
    let wd = bitcast<f32>({{WEIGHT_DECAY}}u);
    let scale = S.grad_scale * scalars[0];
    // A mixed-precision update whose gradients overflowed is skipped (scalars[2], set by
    // loss_scale_update): parameters and state stay, the gradients are still consumed.
    if (scalars[2] != 0.0) {
        for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) { grads[i] = vec4<f32>(0.0); }
        return;
    }
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        var g = grads[i] * scale;
        grads[i] = vec4<f32>(0.0);
        let p = params[i];
        if (wd != 0.0) { g += wd * p; }
        if ({{HAS_STATE}}u == 1u) {
            let buf = momentum * state[i] + g;
            state[i] = buf;
            if ({{NESTEROV}}u == 1u) { g = g + momentum * buf; } else { g = buf; }
        }
        params[i] = p - S.lr * g;
    }
}
