// lion: one fused pass over the packed parameters (vec4 per invocation, grid-stride):
// g = grad * grad_scale * clip; p *= 1 - lr wd; p -= lr sign(b1 m + (1 - b1) g);
// m = b2 m + (1 - b2) g; grad = 0.
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> scalars: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> state: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> params: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b1 = bitcast<f32>({{BETA1}}u);
    let b2 = bitcast<f32>({{BETA2}}u);
    let wd = bitcast<f32>({{WEIGHT_DECAY}}u);
    let scale = S.grad_scale * scalars[0];
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let g = grads[i] * scale;
        grads[i] = vec4<f32>(0.0);
        let m = state[i];
        var p = params[i] * (1.0 - S.lr * wd);
        p -= S.lr * sign(b1 * m + (1.0 - b1) * g);
        params[i] = p;
        state[i] = b2 * m + (1.0 - b2) * g;
    }
}
