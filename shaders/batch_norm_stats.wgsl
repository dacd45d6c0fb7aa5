// batch_norm_stats: one workgroup per channel (channels past the grid loop): the mean and
// biased variance over the valid rows and every position of the channel. Each invocation
// sums a fixed subset, then a fixed tree adds the parts, so the result is the same on
// every run. Writes stats[2c] = mean, stats[2c + 1] = 1/sqrt(var + eps) for the forward
// and backward, and moves the running statistics towards the batch's with the momentum
// (the running variance from the unbiased variance, as PyTorch).
const C: u32 = {{C}}u;
const SP: u32 = {{SPATIAL}}u;
const WG: u32 = 256u;
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_var: array<f32>;

var<workgroup> part: array<f32, 256>;

fn total(t: u32, value: f32) -> f32 {
    part[t] = value;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (t < w) {
            part[t] += part[t + w];
        }
        workgroupBarrier();
    }
    let sum = part[0];
    workgroupBarrier();
    return sum;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let m = S.rows * SP;
    let count = f32(max(m, 1u));
    let momentum = bitcast<f32>({{MOMENTUM}}u);
    for (var c = wid.x; c < C; c += {{GROUPS}}u) {
        var acc = 0.0;
        for (var j = t; j < m; j += WG) {
            acc += x[((j / SP) * C + c) * SP + j % SP];
        }
        let mean = total(t, acc) / count;
        var sq = 0.0;
        for (var j = t; j < m; j += WG) {
            let d = x[((j / SP) * C + c) * SP + j % SP] - mean;
            sq += d * d;
        }
        let ss = total(t, sq);
        if (t == 0u) {
            let biased = ss / count;
            stats[2u * c] = mean;
            stats[2u * c + 1u] = 1.0 / sqrt(biased + bitcast<f32>({{EPS}}u));
            let unbiased = select(biased, ss / f32(m - 1u), m > 1u);
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean;
            running_var[c] = (1.0 - momentum) * running_var[c] + momentum * unbiased;
        }
    }
}
