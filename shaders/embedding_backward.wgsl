// embedding_backward: one invocation per table value (row r, column d): adds to its
// gradient the sum of dy[p, d] over the valid rows' positions p holding id r, in position
// order (a gather instead of a scatter: no float atomics, fixed order).
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dweight: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let positions = S.rows * {{IDS}}u;
    for (var i = gid.x; i < {{N}}u; i += {{STRIDE}}u) {
        let r = f32(i / {{DIM}}u);
        let d = i % {{DIM}}u;
        var acc = 0.0;
        for (var p = 0u; p < positions; p++) {
            if (round(x[p]) == r) {
                acc += dy[p * {{DIM}}u + d];
            }
        }
        dweight[i] += acc;
    }
}
