// loss_scale_update: one invocation after grad_norm_final, PyTorch GradScaler's
// `_amp_update_scale_` on the device. The gradient norm (scalars[1], unscaled) is inf or
// NaN when any gradient was: then the update is skipped (scalars[2] = 1, read by the
// optimizer), the scale multiplied by BACKOFF and the count restarted; else after
// INTERVAL finite updates in a row the scale is multiplied by GROWTH (kept if that
// overflows) and the count restarted.
// state: [0] scale, [1] finite updates in a row, [2] updates skipped so far, which it
// copies to scalars[3]: optimizers whose update depends on their count (Adam's bias
// corrections) subtract it, since PyTorch does not count a skipped `optimizer.step()`.
@group(0) @binding(0) var<storage, read_write> scalars: array<f32>;
@group(0) @binding(1) var<storage, read_write> state: array<f32>;

fn finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(1)
fn main() {
    if (!finite(scalars[1])) {
        scalars[2] = 1.0;
        state[0] = state[0] * bitcast<f32>({{BACKOFF}}u);
        state[1] = 0.0;
        state[2] = state[2] + 1.0;
        scalars[3] = state[2];
        return;
    }
    scalars[2] = 0.0;
    scalars[3] = state[2];
    let successful = state[1] + 1.0;
    if (successful >= f32({{INTERVAL}}u)) {
        let grown = state[0] * bitcast<f32>({{GROWTH}}u);
        if (finite(grown)) {
            state[0] = grown;
        }
        state[1] = 0.0;
    } else {
        state[1] = successful;
    }
}
