// focal: fused softmax + focal loss forward and backward, one invocation per row.
// loss = -ALPHA (1 - p)^GAMMA log p; dz_j = ALPHA g (delta_jc - p_j) with
// g = GAMMA p (1 - p)^(GAMMA - 1) log p - (1 - p)^GAMMA. Rows >= S.rows are padding.
const D: u32 = {{D}}u;
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_stats: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let gamma = bitcast<f32>({{GAMMA}}u);
    let alpha = bitcast<f32>({{ALPHA}}u);
    for (var r = gid.x; r < {{BATCH}}u; r += {{STRIDE}}u) {
        let base = r * D;
        let label = labels[r];
        if (r >= S.rows || label >= D) {
            for (var j = 0u; j < D; j++) { dy[base + j] = 0.0; }
            row_stats[3u * r] = 0.0;
            row_stats[3u * r + 1u] = 0.0;
            row_stats[3u * r + 2u] = 0.0;
            continue;
        }
        var mx = y[base];
        var arg = 0u;
        for (var j = 0u; j < D; j++) {
            let v = y[base + j];
            if (v > mx) { mx = v; arg = j; }
        }
        // 1 - p summed over the other classes: no cancellation when p is near 1.
        var sum = 0.0;
        var others = 0.0;
        for (var j = 0u; j < D; j++) {
            let e = exp(y[base + j] - mx);
            sum += e;
            others += select(e, 0.0, j == label);
        }
        let zl = y[base + label];
        let p = exp(zl - mx) / sum;
        let q = max(others / sum, 1e-30);
        let log_p = (zl - mx) - log(sum);
        let g = gamma * p * pow(q, gamma - 1.0) * log_p - pow(q, gamma);
        var above = 0u;
        for (var j = 0u; j < D; j++) {
            let v = y[base + j];
            let delta = select(0.0, 1.0, j == label);
            dy[base + j] = alpha * g * (delta - exp(v - mx) / sum);
            above += select(0u, 1u, v > zl);
        }
        row_stats[3u * r] = -alpha * pow(q, gamma) * log_p;
        row_stats[3u * r + 1u] = select(0.0, 1.0, arg == label);
        row_stats[3u * r + 2u] = select(0.0, 1.0, above < 5u);
    }
}
