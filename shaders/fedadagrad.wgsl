// fedadagrad (Reddi et al. 2021, Algorithm 2): the averaged update d = acc * inv_total is the
// server's pseudo-gradient: m = beta1 m + (1 - beta1) d; v = v + d^2;
// global += lr m / (sqrt(v) + tau); acc = 0. State: m in [0, N), v in [N, 2N).
@group(0) @binding(0) var<uniform> F: Fed;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: array<f32>;
@group(0) @binding(3) var<storage, read_write> global_w: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let lr = bitcast<f32>({{LR}}u);
    let beta1 = bitcast<f32>({{BETA1}}u);
    let beta2 = bitcast<f32>({{BETA2}}u);
    let tau = bitcast<f32>({{TAU}}u);
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let d = acc[i] * F.inv_total;
        acc[i] = 0.0;
        let m = beta1 * state[i] + (1.0 - beta1) * d;
        var v = state[i + {{N}}u];
        v = v + d * d;
        state[i] = m;
        state[i + {{N}}u] = v;
        global_w[i] = global_w[i] + lr * m / (sqrt(v) + tau);
    }
}
