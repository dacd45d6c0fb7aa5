// fed_client_delta: a client's update joins the round's sum, in client order:
// acc += weight * (params - global), over every word of the model (parameters and buffers).
@group(0) @binding(0) var<uniform> F: Fed;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> global_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        acc[i] = acc[i] + F.weight * (params[i] - global_w[i]);
    }
}
