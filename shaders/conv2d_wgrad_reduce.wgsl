// conv2d_wgrad_reduce: dW[i] += sum over chunks (in order) of part[chunk][i]; the last CO
// words of a chunk (when BIAS) are the bias gradient: db[o] += sum of part[chunk][WW + o].
const WW: u32 = {{WW}}u;       // weight words
const WN: u32 = {{WN}}u;       // words per chunk
const CHUNKS: u32 = {{CHUNKS}}u;
const BIAS: u32 = {{BIAS}}u;

@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
{{DB_BINDING}}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < WN; i += {{STRIDE}}u) {
        var acc = 0.0;
        for (var ch = 0u; ch < CHUNKS; ch++) {
            acc += part[ch * WN + i];
        }
        if (i < WW) {
            dw[i] += acc;
        } else {
{{DB_ADD}}
        }
    }
}
