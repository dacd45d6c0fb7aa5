// loss_scale_apply: the loss gradient times the current loss scale (mixed precision), so
// the backward pass carries scaled gradients and small ones survive f16 operands. The
// engine's loss gradient is per sample (the 1 / samples comes at the update), so it is
// also divided by the batch size: the backward's values are then PyTorch's for a mean
// loss times the scale, and overflow where PyTorch's would.
// state: [0] scale, [1] finite updates in a row (loss_scale_update keeps both).
@group(0) @binding(0) var<storage, read> state: array<f32>;
@group(0) @binding(1) var<storage, read_write> dlogits: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let scale = state[0] * bitcast<f32>({{INV_BATCH}}u);
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        dlogits[i] = dlogits[i] * scale;
    }
}
