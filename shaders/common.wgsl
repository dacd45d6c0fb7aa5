// common.wgsl: prepended to every kernel.

// Per-step scalars, written once per step into one uniform buffer (see gpu::StepUniform).
struct Step {
    lr: f32,
    rows: u32,              // valid rows of this micro-batch (the rest is padding)
    step: u32,              // global micro-batch index (dropout key)
    seed_lo: u32,
    seed_hi: u32,
    grad_scale: f32,        // 1 / samples in the accumulation group
    bias_correction1: f32,  // Adam: 1 - beta1^t
    bias_correction2: f32,  // Adam: 1 - beta2^t
    clip_max: f32,          // max global grad norm; 0 = no clipping
    opt_t: u32,             // optimizer update count, 1-based
    pad0: u32,
    pad1: u32,
}

// PCG-style permutation; mirrors rng::pcg_hash.
fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Mirrors rng::hash_uniform: uniform in [0, 1) from (seed, layer, step, index).
fn hash_uniform(seed_lo: u32, seed_hi: u32, layer: u32, step: u32, index: u32) -> f32 {
    var h = pcg_hash(seed_lo);
    h = pcg_hash(h ^ seed_hi);
    h = pcg_hash(h ^ layer);
    h = pcg_hash(h ^ step);
    h = pcg_hash(h ^ index);
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

// tanh that never overflows to NaN on implementations computing it through exp.
fn tanh_safe(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}
