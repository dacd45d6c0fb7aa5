// fedavg: the next global model is the weighted mean of the clients' models:
// global += acc * inv_total (acc = sum of weight * (client - global)); acc = 0.
@group(0) @binding(0) var<uniform> F: Fed;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<storage, read_write> global_w: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        global_w[i] = global_w[i] + acc[i] * F.inv_total;
        acc[i] = 0.0;
    }
}
