// cross_entropy: fused softmax + cross entropy forward and backward, one invocation per row
// (classes are few; a serial max / sum / write pass per row needs no barriers).
// Rows >= S.rows are padding: zero gradient and statistics. With class weights each row's
// loss and gradient are scaled by its label's weight (WEIGHT is `1.0` without).
const C: u32 = {{C}}u;
{{WEIGHTS_DECL}}
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_stats: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let eps = bitcast<f32>({{SMOOTHING}}u);
    for (var r = gid.x; r < {{BATCH}}u; r += {{STRIDE}}u) {
        let base = r * C;
        let label = labels[r];
        if (r >= S.rows || label >= C) {
            for (var j = 0u; j < C; j++) { dlogits[base + j] = 0.0; }
            row_stats[3u * r] = 0.0;
            row_stats[3u * r + 1u] = 0.0;
            row_stats[3u * r + 2u] = 0.0;
            continue;
        }
        var mx = logits[base];
        var arg = 0u;
        var zsum = 0.0;
        for (var j = 0u; j < C; j++) {
            let v = logits[base + j];
            zsum += v;
            if (v > mx) { mx = v; arg = j; }
        }
        var sum = 0.0;
        for (var j = 0u; j < C; j++) { sum += exp(logits[base + j] - mx); }
        let zl = logits[base + label];
        let lse = mx + log(sum);
        var above = 0u;
        let w = {{WEIGHT}};
        for (var j = 0u; j < C; j++) {
            let v = logits[base + j];
            var q = eps / f32(C);
            if (j == label) { q += 1.0 - eps; }
            dlogits[base + j] = w * (exp(v - mx) / sum - q);
            above += select(0u, 1u, v > zl);
        }
        row_stats[3u * r] = w * (lse - (eps / f32(C) * zsum + (1.0 - eps) * zl));
        row_stats[3u * r + 1u] = select(0.0, 1.0, arg == label);
        row_stats[3u * r + 2u] = select(0.0, 1.0, above < 5u);
    }
}
