//! Every op's GPU forward and backward against its CPU reference, on awkward sizes, with
//! outputs poisoned (NaN) before the kernels run and gradient accumulators pre-filled.

mod common;

use common::{
    assert_close, attrs, gpu, random, random_away_from_zero, random_distinct, random_params,
    run_layer,
};
use ops::layer::LayerSpec;
use ops::rng::Rng;
use ops::{CpuCtx, Tensor};

const TOL: f32 = 1e-4;

fn check(spec: LayerSpec, x: Tensor, seed: u64, train: bool) {
    let op = spec.build();
    let mut rng = Rng::new(seed);
    let input = x.sample_shape().to_vec();
    let mut params = random_params(&mut rng, op.as_ref(), &input);
    // Buffers (batch norm's running statistics) follow, positive as a variance is.
    for b in op.buffers(&input) {
        params.push(random(&mut rng, &b.shape, 0.5, 2.0));
    }
    let grad_init: Vec<Tensor> = params
        .iter()
        .map(|p| random(&mut rng, &p.shape, -1.0, 1.0))
        .collect();
    let ctx = CpuCtx {
        train,
        seed: 0x1234_5678_9abc,
        step: 5,
        layer: 2,
    };
    let y = op.forward_cpu(&x, &params, &ctx);
    let dy = random(&mut rng, &y.shape, -1.0, 1.0);
    let (dx, dparams) = op.backward_cpu(&x, &params, &y, &dy, &ctx);
    let run = run_layer(gpu(), op.as_ref(), &x, &params, &dy, &grad_init, &ctx);
    let kind = op.kind();
    assert_close(
        &format!("{kind} {:?} forward", x.shape),
        &run.y,
        &y.data,
        TOL,
    );
    assert_close(&format!("{kind} {:?} dx", x.shape), &run.dx, &dx.data, TOL);
    // Learnable tensors only: buffers get no gradient.
    for (j, (g, init)) in run
        .grads
        .iter()
        .zip(&grad_init)
        .take(dparams.len())
        .enumerate()
    {
        let want: Vec<f32> = init
            .data
            .iter()
            .zip(&dparams[j].data)
            .map(|(a, b)| a + b)
            .collect();
        assert_close(
            &format!("{kind} {:?} grad {j} (accumulated)", x.shape),
            g,
            &want,
            TOL,
        );
    }
}

#[test]
fn linear() {
    let mut rng = Rng::new(1);
    check(
        LayerSpec::Linear(attrs("{out: 5}")),
        random(&mut rng, &[1, 7], -1.0, 1.0),
        2,
        true,
    );
    check(
        LayerSpec::Linear(attrs("{out: 17}")),
        random(&mut rng, &[5, 33], -1.0, 1.0),
        3,
        true,
    );
    check(
        LayerSpec::Linear(attrs("{out: 3, bias: false}")),
        random(&mut rng, &[37, 8], -1.0, 1.0),
        4,
        true,
    );
    // Several GEMM workgroups along every axis (a workgroup covers 128 x 64 outputs), with
    // ragged edges: batch 131, 70 -> 133 (forward), 131 x 70 (dx), 133 x 70 (dW).
    check(
        LayerSpec::Linear(attrs("{out: 133}")),
        random(&mut rng, &[131, 70], -1.0, 1.0),
        5,
        true,
    );
}

#[test]
fn conv2d() {
    let mut rng = Rng::new(5);
    check(
        LayerSpec::Conv2d(attrs("{out_channels: 5, kernel: 3, padding: 1}")),
        random(&mut rng, &[2, 3, 7, 6], -1.0, 1.0),
        6,
        true,
    );
    check(
        LayerSpec::Conv2d(attrs(
            "{out_channels: 3, kernel: 3, stride: 2, bias: false}",
        )),
        random(&mut rng, &[1, 1, 9, 8], -1.0, 1.0),
        7,
        true,
    );
    check(
        LayerSpec::Conv2d(attrs("{out_channels: 7, kernel: 2, stride: 3, padding: 2}")),
        random(&mut rng, &[3, 2, 5, 5], -1.0, 1.0),
        8,
        true,
    );
}

/// The direct kernels' tiling edges: rows wider than one pixel block (19 -> 2 blocks of 10),
/// channel counts that leave partial channel blocks (11, 20 with 8- and 16-wide blocks,
/// kernel 5's 5-wide weight-gradient blocks), batch 1, kernel 1, stride 2 with padding,
/// padding >= kernel at stride 1 (input gradient through the GEMM + col2im fallback), and
/// a weight gradient split into row bands that do not divide the height (23 rows, 2 per band).
/// On adapters with 8-wide subgroups the kernels share loads across a subgroup: pixel
/// blocks not a multiple of 8 (10, padded to 16), fewer weights than lanes (kernel 2 x 3
/// channels), and input channels in groups of 8 (8, 16, 24) with partial output channel
/// blocks (20 = 16 + 4; 5) and stride 2.
#[test]
fn conv2d_direct_edges() {
    let mut rng = Rng::new(15);
    let cases: [(&str, &[usize]); 9] = [
        ("{out_channels: 11, kernel: 3, padding: 1}", &[1, 3, 5, 19]),
        ("{out_channels: 20, kernel: 5, padding: 2}", &[2, 2, 6, 9]),
        ("{out_channels: 9, kernel: 1, bias: false}", &[2, 5, 3, 4]),
        (
            "{out_channels: 4, kernel: 3, stride: 2, padding: 1}",
            &[2, 3, 9, 20],
        ),
        ("{out_channels: 3, kernel: 2, padding: 3}", &[1, 2, 4, 3]),
        ("{out_channels: 16, kernel: 3, padding: 1}", &[4, 16, 23, 5]),
        ("{out_channels: 1, kernel: 3}", &[3, 1, 3, 17]),
        ("{out_channels: 20, kernel: 3, padding: 1}", &[2, 8, 6, 7]),
        (
            "{out_channels: 5, kernel: 3, stride: 2, padding: 1}",
            &[2, 24, 9, 8],
        ),
    ];
    for (i, (a, shape)) in cases.into_iter().enumerate() {
        check(
            LayerSpec::Conv2d(attrs(a)),
            random(&mut rng, shape, -1.0, 1.0),
            20 + i as u64,
            true,
        );
    }
}

/// Rectangular kernels, strides and paddings (the generic conv kernels), the 1-D conv and
/// pools over them, and rectangular pooling windows.
#[test]
fn rectangular_and_1d() {
    let mut rng = Rng::new(50);
    let cases: [(LayerSpec, &[usize], bool); 9] = [
        (
            LayerSpec::Conv2d(attrs("{out_channels: 5, kernel: [1, 5], padding: [0, 2]}")),
            &[3, 4, 1, 37],
            false,
        ),
        (
            LayerSpec::Conv2d(attrs(
                "{out_channels: 3, kernel: [3, 2], stride: [2, 1], padding: [1, 0], bias: false}",
            )),
            &[2, 2, 7, 6],
            false,
        ),
        (
            LayerSpec::Conv2d(attrs(
                "{out_channels: 4, kernel: 3, stride: [1, 2], padding: 1}",
            )),
            &[2, 3, 5, 9],
            false,
        ),
        (
            LayerSpec::Conv1d(attrs("{out_channels: 16, kernel: 7, padding: 3}")),
            &[5, 2, 64],
            false,
        ),
        (
            LayerSpec::Conv1d(attrs("{out_channels: 3, kernel: 4, stride: 3}")),
            &[2, 5, 20],
            false,
        ),
        // Kernel 1: a square conv2d inside, so conv1d runs the tiled kernels.
        (
            LayerSpec::Conv1d(attrs("{out_channels: 6, kernel: 1}")),
            &[3, 4, 10],
            false,
        ),
        (
            LayerSpec::MaxPool1d(attrs("{kernel: 2}")),
            &[3, 4, 17],
            true,
        ),
        (
            LayerSpec::MaxPool1d(attrs("{kernel: 3, stride: 2}")),
            &[2, 3, 15],
            true,
        ),
        (
            LayerSpec::AvgPool1d(attrs("{kernel: 4}")),
            &[2, 3, 18],
            false,
        ),
    ];
    for (i, (spec, shape, distinct)) in cases.into_iter().enumerate() {
        let x = if distinct {
            random_distinct(&mut rng, shape)
        } else {
            random(&mut rng, shape, -1.0, 1.0)
        };
        check(spec, x, 60 + i as u64, true);
    }
    check(
        LayerSpec::MaxPool2d(attrs("{kernel: [2, 3], stride: [2, 1]}")),
        random_distinct(&mut rng, &[2, 2, 6, 7]),
        70,
        true,
    );
    check(
        LayerSpec::AvgPool2d(attrs("{kernel: [1, 3]}")),
        random(&mut rng, &[2, 2, 3, 9], -1.0, 1.0),
        71,
        true,
    );
}

#[test]
fn pools() {
    let mut rng = Rng::new(9);
    check(
        LayerSpec::MaxPool2d(attrs("{kernel: 2}")),
        random_distinct(&mut rng, &[2, 3, 7, 5]),
        10,
        true,
    );
    check(
        LayerSpec::MaxPool2d(attrs("{kernel: 3, stride: 2}")),
        random_distinct(&mut rng, &[1, 5, 7, 9]),
        11,
        true,
    );
    check(
        LayerSpec::MaxPool2d(attrs("{kernel: 2, stride: 3}")),
        random_distinct(&mut rng, &[3, 1, 8, 7]),
        12,
        true,
    );
    check(
        LayerSpec::AvgPool2d(attrs("{kernel: 2}")),
        random(&mut rng, &[2, 3, 7, 5], -1.0, 1.0),
        13,
        true,
    );
    check(
        LayerSpec::AvgPool2d(attrs("{kernel: 3, stride: 2}")),
        random(&mut rng, &[1, 5, 7, 9], -1.0, 1.0),
        14,
        true,
    );
    // Over a 2-D map and a 1-D signal; 3 x 7 x 5 values a channel, 13 a channel.
    check(
        LayerSpec::GlobalAvgPool,
        random(&mut rng, &[2, 3, 7, 5], -1.0, 1.0),
        15,
        true,
    );
    check(
        LayerSpec::GlobalAvgPool,
        random(&mut rng, &[3, 5, 13], -1.0, 1.0),
        16,
        true,
    );
}

#[test]
fn activations() {
    let mut rng = Rng::new(15);
    for spec in [
        LayerSpec::Relu,
        LayerSpec::Gelu,
        LayerSpec::Tanh,
        LayerSpec::Sigmoid,
        LayerSpec::LeakyRelu(attrs("{slope: 0.3}")),
    ] {
        check(
            spec.clone(),
            random_away_from_zero(&mut rng, &[3, 37]),
            16,
            true,
        );
        check(spec, random(&mut rng, &[1, 5, 3, 3], -8.0, 8.0), 17, true);
    }
    check(
        LayerSpec::Flatten,
        random(&mut rng, &[3, 2, 5, 3], -1.0, 1.0),
        18,
        true,
    );
}

#[test]
fn dropout() {
    let mut rng = Rng::new(19);
    check(
        LayerSpec::Dropout(attrs("{p: 0.3}")),
        random(&mut rng, &[3, 71], -1.0, 1.0),
        20,
        true,
    );
    check(
        LayerSpec::Dropout(attrs("{p: 0.3}")),
        random(&mut rng, &[2, 13], -1.0, 1.0),
        21,
        false,
    );
    check(
        LayerSpec::Dropout(attrs("{p: 0.0}")),
        random(&mut rng, &[2, 13], -1.0, 1.0),
        22,
        true,
    );
}

#[test]
fn layer_norm() {
    let mut rng = Rng::new(23);
    check(
        LayerSpec::LayerNorm(attrs("{}")),
        random(&mut rng, &[3, 2, 13], -2.0, 2.0),
        24,
        true,
    );
    check(
        LayerSpec::LayerNorm(attrs("{eps: 0.001}")),
        random(&mut rng, &[1, 70], -1.0, 3.0),
        25,
        true,
    );
}

/// Batch norm in training (batch statistics, running statistics updated with momentum) and
/// in evaluation (running statistics), against the CPU reference.
#[test]
fn batch_norm() {
    use ops::Op;
    use ops::batch_norm::BatchNorm;
    let mut rng = Rng::new(41);
    for (shape, momentum) in [
        (&[9, 70][..], 0.1),
        (&[5, 3, 11], 0.25),
        (&[4, 6, 5, 7], 0.1),
        (&[300, 2], 1.0),
    ] {
        let x = random(&mut rng, shape, -2.0, 3.0);
        let op = BatchNorm {
            attrs: attrs(&format!("{{momentum: {momentum}}}")),
        };
        let c = shape[1];
        let mut params = random_params(&mut rng, &op, x.sample_shape());
        params.push(random(&mut rng, &[c], -1.0, 1.0));
        params.push(random(&mut rng, &[c], 0.5, 2.0));
        let grad_init: Vec<Tensor> = params
            .iter()
            .map(|p| random(&mut rng, &p.shape, -1.0, 1.0))
            .collect();
        for train in [true, false] {
            let ctx = CpuCtx {
                train,
                ..CpuCtx::default()
            };
            let y = op.forward_cpu(&x, &params, &ctx);
            let what = format!("batch_norm {shape:?} train={train}");
            let dy = random(&mut rng, &y.shape, -1.0, 1.0);
            let run = run_layer(gpu(), &op, &x, &params, &dy, &grad_init, &ctx);
            assert_close(&format!("{what} forward"), &run.y, &y.data, TOL);
            let (want_mean, want_var) = if train {
                op.running_update_cpu(&x, &params[2].data, &params[3].data)
            } else {
                (params[2].data.clone(), params[3].data.clone())
            };
            assert_close(
                &format!("{what} running_mean"),
                &run.params[2],
                &want_mean,
                TOL,
            );
            assert_close(
                &format!("{what} running_var"),
                &run.params[3],
                &want_var,
                TOL,
            );
            if train {
                let (dx, dparams) = op.backward_cpu(&x, &params, &y, &dy, &ctx);
                assert_close(&format!("{what} dx"), &run.dx, &dx.data, TOL);
                for j in 0..2 {
                    let want: Vec<f32> = grad_init[j]
                        .data
                        .iter()
                        .zip(&dparams[j].data)
                        .map(|(a, b)| a + b)
                        .collect();
                    assert_close(&format!("{what} grad {j}"), &run.grads[j], &want, TOL);
                }
            }
        }
    }
}

#[test]
fn softmax_layers() {
    let mut rng = Rng::new(80);
    // Rows of 10 (class scores) and of 300; large logits (no overflow: the max goes first).
    check(
        LayerSpec::Softmax,
        random(&mut rng, &[7, 10], -4.0, 4.0),
        81,
        true,
    );
    check(
        LayerSpec::Softmax,
        random(&mut rng, &[2, 3, 300], -60.0, 90.0),
        82,
        true,
    );
    check(
        LayerSpec::LogSoftmax,
        random(&mut rng, &[7, 10], -4.0, 4.0),
        83,
        true,
    );
    check(
        LayerSpec::LogSoftmax,
        random(&mut rng, &[2, 300], -60.0, 90.0),
        84,
        true,
    );
}

#[test]
fn embedding_and_slice() {
    let mut rng = Rng::new(90);
    // Ids: whole numbers, repeated, some outside the table (zero vectors, no gradient); a
    // table wider than a workgroup and more positions than one.
    for (shape, rows, dim, seed) in [
        (&[5, 7][..], 11, 3, 91),
        (&[33, 9], 40, 70, 92),
        (&[3, 2, 4], 5, 2, 93),
    ] {
        let mut x = random(&mut rng, shape, -1.0, rows as f32 + 1.0);
        x.data.iter_mut().for_each(|v| *v = v.floor());
        check(
            LayerSpec::Embedding(attrs(&format!(
                "{{num_embeddings: {rows}, embedding_dim: {dim}}}"
            ))),
            x,
            seed,
            true,
        );
    }
    check(
        LayerSpec::Slice(attrs("{start: 3, end: 70}")),
        random(&mut rng, &[9, 80], -1.0, 1.0),
        94,
        true,
    );
    check(
        LayerSpec::Slice(attrs("{start: 0, end: 1}")),
        random(&mut rng, &[4, 3, 5, 5], -1.0, 1.0),
        95,
        true,
    );
}

/// The registry walk: every registered layer, with its example attributes, on the first
/// of a few input shapes it accepts, against its CPU reference. A new layer is covered
/// here without a test of its own (the tests above add awkward sizes per op).
#[test]
fn every_registered_layer_agrees_with_its_cpu_reference() {
    let mut rng = Rng::new(100);
    let shapes: [&[usize]; 4] = [&[3, 6, 5], &[2, 9], &[12], &[4, 3, 6, 5]];
    for (i, spec) in ops::layer::registry().into_iter().enumerate() {
        let op = spec.build();
        if op.arity() != (1, 1) {
            // `add` and `concat` read two inputs: tests/gpu_ops' graph tests and
            // gpu_train's residual models cover them.
            continue;
        }
        let Some(shape) = shapes.iter().find(|s| op.output_shape(&s[1..]).is_ok()) else {
            panic!("{}: none of {shapes:?} fits", op.kind());
        };
        let mut x = random(&mut rng, shape, -2.0, 2.0);
        if op.kind() == "embedding" {
            // Ids: whole numbers inside the example's table.
            x.data.iter_mut().for_each(|v| *v = (v.abs() * 2.0).floor());
        }
        check(spec, x, 200 + i as u64, true);
    }
}
