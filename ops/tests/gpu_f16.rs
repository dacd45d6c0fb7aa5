//! 16-bit floats on the device (issue 14's mixed precision builds on them): an adapter
//! that reports `shader-f16` compiles and runs a kernel with `enable f16;`, and its
//! values are really rounded to f16 (10 mantissa bits), not kept in f32. An adapter
//! without it (Mesa's GL driver) is reported as such by `engine devices`.

mod common;

use ops::Gpu;
use ops::gpu::{BufferRef, KernelBuilder};

const ROUND_TRIP: &str = "enable f16;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i < {{N}}u {
        // Through f16 and an f16 product, accumulated back in f32.
        let h = f16(x[i]);
        y[i] = f32(h) + f32(h * f16(0.0));
    }
}
";

#[test]
fn an_adapter_with_shader_f16_rounds_through_16_bit_floats() {
    let gpu: Gpu = common::new_gpu();
    let adapter = gpu.adapter().clone();
    if !adapter.shader_f16 {
        eprintln!(
            "{} [{}] has no shader-f16: nothing to run (mixed precision refuses it)",
            adapter.name, adapter.backend
        );
        return;
    }
    // 1 + 2^-12 is between f16 neighbours 1 and 1 + 2^-10 (rounds to 1); 1 + 2^-10, 0.5,
    // -3.25 and 65504 (f16's largest) are exact; 70000 overflows to infinity.
    let input: Vec<f32> = vec![
        1.0 + 2f32.powi(-12),
        1.0 + 2f32.powi(-10),
        0.5,
        -3.25,
        65504.0,
        70000.0,
    ];
    let expected: Vec<f32> = vec![
        1.0,
        1.0 + 2f32.powi(-10),
        0.5,
        -3.25,
        65504.0,
        f32::INFINITY,
    ];
    let n = input.len();
    let x = gpu.storage_buffer("x", (n * 4) as u64).unwrap();
    let y = gpu.storage_buffer("y", (n * 4) as u64).unwrap();
    gpu.write(&x, 0, &input).unwrap();
    gpu.write(&y, 0, &vec![f32::NAN; n]).unwrap();
    let mut k = KernelBuilder::new(&gpu);
    let dispatch = k
        .compute(
            "f16_round_trip",
            &[ROUND_TRIP],
            &[("N", n.to_string())],
            &[&BufferRef::whole(&x), &BufferRef::whole(&y)],
            [1, 1, 1],
        )
        .expect("an adapter reporting shader-f16 compiles `enable f16;`");
    gpu.submit_dispatches([&dispatch]).unwrap();
    let out = gpu
        .read_f32(&BufferRef::whole(&y).words(0, n as u64))
        .unwrap();
    assert_eq!(out, expected, "on {} [{}]", adapter.name, adapter.backend);
}
