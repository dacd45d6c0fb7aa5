// metrics_reduce: a single invocation folds the per-row statistics of this micro-batch, in
// row order, into the device metrics (no float atomics; bit-for-bit deterministic).
// metrics: [0] loss sum (f32 bits), [1] Kahan compensation, [2] correct, [3] top-5 correct,
// [4] samples, [5] last global gradient norm (written by grad_norm_final).
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> row_stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> metrics: array<u32>;

@compute @workgroup_size(1)
fn main() {
    var loss = 0.0;
    var correct = 0u;
    var top5 = 0u;
    for (var r = 0u; r < S.rows; r++) {
        loss += row_stats[3u * r];
        correct += u32(row_stats[3u * r + 1u]);
        top5 += u32(row_stats[3u * r + 2u]);
    }
    // Kahan summation across micro-batches keeps the running f32 sum accurate.
    let sum = bitcast<f32>(metrics[0]);
    let comp = bitcast<f32>(metrics[1]);
    let yv = loss - comp;
    let t = sum + yv;
    metrics[1] = bitcast<u32>((t - sum) - yv);
    metrics[0] = bitcast<u32>(t);
    metrics[2] += correct;
    metrics[3] += top5;
    metrics[4] += S.rows;
}
