// scaffold_client: after a client's local steps (option II of Karimireddy et al. 2020):
// c_i' = c_i - c + (global_w - params) * client_scale, client_scale = 1 / (steps * lr);
// acc_c += c_i' - c_i; c_i = c_i'.
@group(0) @binding(0) var<uniform> F: Fed;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> global_w: array<f32>;
@group(0) @binding(3) var<storage, read> server: array<f32>;
@group(0) @binding(4) var<storage, read_write> controls: array<f32>;
@group(0) @binding(5) var<storage, read_write> acc_c: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = F.slot * {{N}}u;
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let ci = controls[row + i];
        let next = ci - server[i] + (global_w[i] - params[i]) * F.client_scale;
        acc_c[i] = acc_c[i] + (next - ci);
        controls[row + i] = next;
    }
}
