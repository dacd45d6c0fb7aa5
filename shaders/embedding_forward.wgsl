// embedding_forward: one invocation per output value: y[p, d] = weight[id(p), d] for the
// id at position p (rounded; outside 0..ROWS reads zeros).
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let id = round(x[i / {{DIM}}u]);
        var value = 0.0;
        if (id >= 0.0 && id < f32({{ROWS}}u)) {
            value = weight[u32(id) * {{DIM}}u + i % {{DIM}}u];
        }
        y[i] = value;
    }
}
