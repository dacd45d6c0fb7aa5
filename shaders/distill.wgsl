// distill: knowledge-distillation loss, fused forward and backward, one invocation per row
// (see ops/src/loss/distill.rs): alpha T^2 KL(softmax(t/T) || softmax(z/T)) + (1 - alpha) CE.
// Rows >= S.rows are padding: zero gradient and statistics.
const C: u32 = {{C}}u;
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> teacher: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_stats: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = bitcast<f32>({{TEMPERATURE}}u);
    let alpha = bitcast<f32>({{ALPHA}}u);
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
        // Maxima of the student's logits (for softmax(z) and softmax(z/T)) and the teacher's.
        var mx = logits[base];
        var arg = 0u;
        var mt = teacher[base];
        for (var j = 0u; j < C; j++) {
            let v = logits[base + j];
            if (v > mx) { mx = v; arg = j; }
            mt = max(mt, teacher[base + j]);
        }
        var sum = 0.0;
        var sum_s = 0.0;
        var sum_t = 0.0;
        for (var j = 0u; j < C; j++) {
            sum += exp(logits[base + j] - mx);
            sum_s += exp((logits[base + j] - mx) / t);
            sum_t += exp((teacher[base + j] - mt) / t);
        }
        let log_sum = log(sum);
        let log_sum_s = log(sum_s);
        let log_sum_t = log(sum_t);
        let zl = logits[base + label];
        var kl = 0.0;
        var above = 0u;
        for (var j = 0u; j < C; j++) {
            let v = logits[base + j];
            let log_ps = (v - mx) / t - log_sum_s;
            let log_pt = (teacher[base + j] - mt) / t - log_sum_t;
            let pt = exp(log_pt);
            kl += pt * (log_pt - log_ps);
            var hard = exp(v - mx - log_sum);
            if (j == label) { hard -= 1.0; }
            dlogits[base + j] = alpha * t * (exp(log_ps) - pt) + (1.0 - alpha) * hard;
            above += select(0u, 1u, v > zl);
        }
        row_stats[3u * r] = alpha * t * t * kl + (1.0 - alpha) * (mx + log_sum - zl);
        row_stats[3u * r + 1u] = select(0.0, 1.0, arg == label);
        row_stats[3u * r + 2u] = select(0.0, 1.0, above < 5u);
    }
}
