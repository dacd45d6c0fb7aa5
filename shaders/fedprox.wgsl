// fedprox: the proximal term's gradient mu * (w - w_global) joins the local gradient sum
// (the optimizer scales the sum by S.grad_scale = 1 / rows, so the term is divided by it).
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> global_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (S.grad_scale == 0.0) { return; }
    let mu = bitcast<f32>({{MU}}u) / S.grad_scale;
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        grads[i] = grads[i] + mu * (params[i] - global_w[i]);
    }
}
