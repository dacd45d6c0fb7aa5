// batch_norm_backward_params: one workgroup per channel (channels past the grid loop):
// over the valid rows, sum(dy) and sum(dy * xhat) in a fixed order. Adds them to the
// gradients of bias and weight, and keeps them at scratch[2C + 2c] and
// scratch[2C + 2c + 1] for the input gradient (the gradients accumulate over micro-batches;
// the input gradient needs this batch's sums alone).
const C: u32 = {{C}}u;
const SP: u32 = {{SPATIAL}}u;
const WG: u32 = 256u;
@group(0) @binding(0) var<uniform> S: Step;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(4) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbias: array<f32>;

var<workgroup> part: array<vec2<f32>, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let m = S.rows * SP;
    for (var c = wid.x; c < C; c += {{GROUPS}}u) {
        let mean = scratch[2u * c];
        let rstd = scratch[2u * c + 1u];
        var acc = vec2<f32>(0.0, 0.0);
        for (var j = t; j < m; j += WG) {
            let at = ((j / SP) * C + c) * SP + j % SP;
            let g = dy[at];
            acc += vec2<f32>(g, g * (x[at] - mean) * rstd);
        }
        part[t] = acc;
        workgroupBarrier();
        for (var w = WG / 2u; w > 0u; w = w / 2u) {
            if (t < w) {
                part[t] += part[t + w];
            }
            workgroupBarrier();
        }
        if (t == 0u) {
            let sums = part[0];
            scratch[2u * C + 2u * c] = sums.x;
            scratch[2u * C + 2u * c + 1u] = sums.y;
            dbias[c] += sums.x;
            dweight[c] += sums.y;
        }
        workgroupBarrier();
    }
}
