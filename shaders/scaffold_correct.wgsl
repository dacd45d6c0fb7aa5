// scaffold_correct: SCAFFOLD's drift correction c - c_i joins the local gradient sum
// (divided by S.grad_scale, as the optimizer scales the sum by it). c_i is the client's row
// F.slot of the control variates.
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<uniform> F: Fed;
@group(0) @binding(2) var<storage, read> server: array<f32>;
@group(0) @binding(3) var<storage, read> controls: array<f32>;
@group(0) @binding(4) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (S.grad_scale == 0.0) { return; }
    let scale = 1.0 / S.grad_scale;
    let row = F.slot * {{N}}u;
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        grads[i] = grads[i] + scale * (server[i] - controls[row + i]);
    }
}
