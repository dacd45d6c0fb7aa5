// fedavgm: server momentum over the averaged update d = acc * inv_total:
// m = beta * m + d; global += lr * m; acc = 0.
@group(0) @binding(0) var<uniform> F: Fed;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: array<f32>;
@group(0) @binding(3) var<storage, read_write> global_w: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let lr = bitcast<f32>({{LR}}u);
    let beta = bitcast<f32>({{MOMENTUM}}u);
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let d = acc[i] * F.inv_total;
        acc[i] = 0.0;
        let m = beta * state[i] + d;
        state[i] = m;
        global_w[i] = global_w[i] + lr * m;
    }
}
