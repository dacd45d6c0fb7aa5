// scaffold: global += lr * acc * inv_total (the mean client update); the server control
// c += acc_c / CLIENTS (every client of the federation, not only this round's); acc = acc_c = 0.
@group(0) @binding(0) var<uniform> F: Fed;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc_c: array<f32>;
@group(0) @binding(3) var<storage, read_write> server: array<f32>;
@group(0) @binding(4) var<storage, read_write> global_w: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let lr = bitcast<f32>({{LR}}u);
    let inv_clients = bitcast<f32>({{INV_CLIENTS}}u);
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        global_w[i] = global_w[i] + lr * acc[i] * F.inv_total;
        acc[i] = 0.0;
        server[i] = server[i] + acc_c[i] * inv_clients;
        acc_c[i] = 0.0;
    }
}
