// metrics_reduce: a single invocation folds the per-row statistics of this micro-batch, in
// row order, into the device metrics (no float atomics; bit-for-bit deterministic).
// metrics: [0] loss sum low word, [1] middle word, [2] correct, [3] top-5 correct,
// [4] samples, [5] last global gradient norm (written by grad_norm_final), [6] loss sum
// high word, [7] non-finite carrier (f32 bits).
//
// The loss sum is exact: each micro-batch's f32 sum is rounded once to a 96-bit two's
// complement fixed-point number with 32 fraction bits and added as an integer. Integer
// addition is associative, so the total is the same however micro-batches are grouped —
// across accumulation groups, reads and data-parallel ranks. A non-finite
// micro-batch sum (or one of 2^40 or more, so that 2^23 of them cannot wrap the sum) is
// added to the f32 carrier instead, so NaN and inf still show.
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> row_stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> metrics: array<u32>;

const TWO_32: f32 = 4294967296.0;

// |v| * 2^32 as three 32-bit words (low, middle, high). Exact apart from one rounding of
// the fraction bits below 2^-32: a has 24 significant bits, so every subtraction is exact.
fn fixed_words(a: f32) -> vec3<u32> {
    let hi = floor(a / TWO_32);
    let r = a - hi * TWO_32;
    let mid = floor(r);
    let lo = round((r - mid) * TWO_32);
    return vec3<u32>(u32(lo), u32(mid), u32(hi));
}

fn add96(a: vec3<u32>, b: vec3<u32>) -> vec3<u32> {
    let s0 = a.x + b.x;
    let c0 = select(0u, 1u, s0 < a.x);
    let t1 = a.y + b.y;
    let c1 = select(0u, 1u, t1 < a.y);
    let s1 = t1 + c0;
    let c2 = select(0u, 1u, s1 < t1);
    return vec3<u32>(s0, s1, a.z + b.z + c1 + c2);
}

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
    let a = abs(loss);
    // Exponent bits all set: inf or NaN (WGSL has no isNan a compiler must keep).
    let non_finite = (bitcast<u32>(loss) & 0x7f800000u) == 0x7f800000u;
    if (non_finite || a >= 1099511627776.0) {
        metrics[7] = bitcast<u32>(bitcast<f32>(metrics[7]) + loss);
    } else {
        var w = fixed_words(a);
        if (loss < 0.0) {
            w = add96(~w, vec3<u32>(1u, 0u, 0u));
        }
        let sum = add96(vec3<u32>(metrics[0], metrics[1], metrics[6]), w);
        metrics[0] = sum.x;
        metrics[1] = sum.y;
        metrics[6] = sum.z;
    }
    metrics[2] += correct;
    metrics[3] += top5;
    metrics[4] += S.rows;
}
