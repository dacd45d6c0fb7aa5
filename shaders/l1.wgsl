// l1: one invocation per row; loss = mean_j |y - t|, dy = sign(y - t) / D (0 at a tie).
// Padded rows (r >= S.rows) get zero gradient and statistics.
const D: u32 = {{D}}u;
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_stats: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var r = gid.x; r < {{BATCH}}u; r += {{STRIDE}}u) {
        let base = r * D;
        let valid = r < S.rows;
        var acc = 0.0;
        for (var j = 0u; j < D; j++) {
            let diff = y[base + j] - targets[base + j];
            acc += abs(diff);
            dy[base + j] = select(0.0, sign(diff) / f32(D), valid);
        }
        row_stats[3u * r] = select(0.0, acc / f32(D), valid);
        row_stats[3u * r + 1u] = 0.0;
        row_stats[3u * r + 2u] = 0.0;
    }
}
