//! CPU references: every op's backward against central finite differences (f64 objective).

mod common;

use common::{attrs, random, random_away_from_zero, random_distinct, random_params};
use ops::layer::LayerSpec;
use ops::rng::Rng;
use ops::{CpuCtx, Tensor};

/// Checks `backward_cpu` against central differences of `L = sum(y * r)`.
fn check(spec: LayerSpec, x: Tensor, seed: u64) {
    let op = spec.build();
    let mut rng = Rng::new(seed);
    let input = x.sample_shape().to_vec();
    let params = random_params(&mut rng, op.as_ref(), &input);
    let ctx = CpuCtx {
        train: true,
        seed: 7,
        step: 3,
        layer: 1,
    };
    let y = op.forward_cpu(&x, &params, &ctx);
    let r = random(&mut rng, &y.shape, -1.0, 1.0);
    let (dx, dparams) = op.backward_cpu(&x, &params, &y, &r, &ctx);
    assert_eq!(dx.shape, x.shape, "{}: dx shape", op.kind());
    let objective = |x: &Tensor, params: &[Tensor]| -> f64 {
        let y = op.forward_cpu(x, params, &ctx);
        y.data
            .iter()
            .zip(&r.data)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    let h = 1e-2f32;
    let tol = |ana: f64| 2e-3 + 2e-2 * ana.abs();
    // Input gradient, at up to 40 positions.
    let step = (x.len() / 40).max(1);
    for i in (0..x.len()).step_by(step) {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.data[i] += h;
        xm.data[i] -= h;
        let num = (objective(&xp, &params) - objective(&xm, &params)) / (2.0 * h as f64);
        let ana = dx.data[i] as f64;
        assert!(
            (num - ana).abs() <= tol(ana),
            "{} dx[{i}]: numeric {num} vs analytic {ana}",
            op.kind()
        );
    }
    for (j, p) in params.iter().enumerate() {
        let step = (p.len() / 30).max(1);
        for i in (0..p.len()).step_by(step) {
            let (mut pp, mut pm) = (params.clone(), params.clone());
            pp[j].data[i] += h;
            pm[j].data[i] -= h;
            let num = (objective(&x, &pp) - objective(&x, &pm)) / (2.0 * h as f64);
            let ana = dparams[j].data[i] as f64;
            assert!(
                (num - ana).abs() <= tol(ana),
                "{} param {j}[{i}]: numeric {num} vs analytic {ana}",
                op.kind()
            );
        }
    }
}

#[test]
fn linear() {
    let mut rng = Rng::new(1);
    check(
        LayerSpec::Linear(attrs("{out: 5}")),
        random(&mut rng, &[3, 7], -1.0, 1.0),
        2,
    );
    check(
        LayerSpec::Linear(attrs("{out: 1, bias: false}")),
        random(&mut rng, &[1, 4], -1.0, 1.0),
        3,
    );
}

#[test]
fn conv2d() {
    let mut rng = Rng::new(4);
    check(
        LayerSpec::Conv2d(attrs("{out_channels: 3, kernel: 3, padding: 1}")),
        random(&mut rng, &[2, 2, 5, 4], -1.0, 1.0),
        5,
    );
    check(
        LayerSpec::Conv2d(attrs(
            "{out_channels: 2, kernel: 2, stride: 2, bias: false}",
        )),
        random(&mut rng, &[1, 3, 5, 5], -1.0, 1.0),
        6,
    );
}

/// Rectangular kernels, strides and paddings, and the 1-D ops built on them.
#[test]
fn rectangular_and_1d() {
    let mut rng = Rng::new(40);
    check(
        LayerSpec::Conv2d(attrs(
            "{out_channels: 3, kernel: [1, 3], stride: [1, 2], padding: [0, 1]}",
        )),
        random(&mut rng, &[2, 2, 3, 7], -1.0, 1.0),
        41,
    );
    check(
        LayerSpec::Conv2d(attrs(
            "{out_channels: 2, kernel: [3, 2], stride: [2, 1], padding: [1, 0], bias: false}",
        )),
        random(&mut rng, &[1, 3, 6, 5], -1.0, 1.0),
        42,
    );
    check(
        LayerSpec::Conv1d(attrs("{out_channels: 4, kernel: 5, padding: 2}")),
        random(&mut rng, &[2, 3, 11], -1.0, 1.0),
        43,
    );
    check(
        LayerSpec::Conv1d(attrs(
            "{out_channels: 2, kernel: 3, stride: 2, bias: false}",
        )),
        random(&mut rng, &[3, 2, 9], -1.0, 1.0),
        44,
    );
    check(
        LayerSpec::MaxPool2d(attrs("{kernel: [1, 3], stride: [1, 2]}")),
        random_distinct(&mut rng, &[2, 2, 3, 9]),
        45,
    );
    check(
        LayerSpec::MaxPool1d(attrs("{kernel: 2}")),
        random_distinct(&mut rng, &[2, 3, 9]),
        46,
    );
    check(
        LayerSpec::AvgPool1d(attrs("{kernel: 3, stride: 2}")),
        random(&mut rng, &[2, 3, 10], -1.0, 1.0),
        47,
    );
}

#[test]
fn pools() {
    let mut rng = Rng::new(7);
    check(
        LayerSpec::MaxPool2d(attrs("{kernel: 2}")),
        random_distinct(&mut rng, &[2, 3, 5, 4]),
        8,
    );
    check(
        LayerSpec::MaxPool2d(attrs("{kernel: 3, stride: 2}")),
        random_distinct(&mut rng, &[1, 2, 7, 6]),
        9,
    );
    check(
        LayerSpec::AvgPool2d(attrs("{kernel: 2}")),
        random(&mut rng, &[2, 3, 5, 4], -1.0, 1.0),
        10,
    );
    check(
        LayerSpec::AvgPool2d(attrs("{kernel: 3, stride: 1}")),
        random(&mut rng, &[1, 2, 5, 6], -1.0, 1.0),
        11,
    );
    check(
        LayerSpec::GlobalAvgPool,
        random(&mut rng, &[2, 3, 5, 4], -1.0, 1.0),
        12,
    );
    check(
        LayerSpec::GlobalAvgPool,
        random(&mut rng, &[3, 4, 9], -1.0, 1.0),
        13,
    );
}

#[test]
fn activations() {
    let mut rng = Rng::new(12);
    for spec in [
        LayerSpec::Relu,
        LayerSpec::Gelu,
        LayerSpec::Tanh,
        LayerSpec::Sigmoid,
        LayerSpec::LeakyRelu(attrs("{slope: 0.2}")),
        LayerSpec::Flatten,
    ] {
        check(spec, random_away_from_zero(&mut rng, &[3, 2, 5]), 13);
    }
}

#[test]
fn dropout_and_layer_norm() {
    let mut rng = Rng::new(14);
    check(
        LayerSpec::Dropout(attrs("{p: 0.4}")),
        random(&mut rng, &[3, 11], -1.0, 1.0),
        15,
    );
    check(
        LayerSpec::LayerNorm(attrs("{}")),
        random(&mut rng, &[3, 2, 9], -1.0, 1.0),
        16,
    );
}

#[test]
fn batch_norm() {
    let mut rng = Rng::new(31);
    // Features [F], channels of [C, L] and of [C, H, W].
    for (shape, seed) in [(&[7, 5][..], 32), (&[3, 4, 6], 33), (&[2, 3, 3, 4], 34)] {
        check(
            LayerSpec::BatchNorm(attrs("{}")),
            random(&mut rng, shape, -2.0, 2.0),
            seed,
        );
    }
}

#[test]
fn softmax_layers() {
    let mut rng = Rng::new(52);
    check(LayerSpec::Softmax, random(&mut rng, &[3, 7], -3.0, 3.0), 53);
    check(
        LayerSpec::LogSoftmax,
        random(&mut rng, &[2, 3, 5], -3.0, 3.0),
        54,
    );
}

/// Ids for an embedding of `rows` rows: whole numbers, some repeated, some outside the table.
fn ids(rng: &mut Rng, shape: &[usize], rows: usize) -> Tensor {
    let mut t = random(rng, shape, -1.0, rows as f32 + 1.0);
    t.data.iter_mut().for_each(|v| *v = v.floor());
    t
}

#[test]
fn embedding_and_slice() {
    let mut rng = Rng::new(61);
    check(
        LayerSpec::Embedding(attrs("{num_embeddings: 6, embedding_dim: 3}")),
        ids(&mut rng, &[4, 5], 6),
        62,
    );
    check(
        LayerSpec::Slice(attrs("{start: 2, end: 5}")),
        random(&mut rng, &[3, 7], -1.0, 1.0),
        63,
    );
    check(
        LayerSpec::Slice(attrs("{start: 1, end: 2}")),
        random(&mut rng, &[2, 3, 2, 2], -1.0, 1.0),
        64,
    );
}

#[test]
fn embedding_rows_gather_and_out_of_range_ids_read_zeros() {
    let op = LayerSpec::Embedding(attrs("{num_embeddings: 3, embedding_dim: 2}")).build();
    let table = Tensor::from_vec(&[3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let x = Tensor::from_vec(&[1, 4], vec![2.0, 0.0, 3.0, -1.0]).unwrap();
    let y = op.forward_cpu(&x, std::slice::from_ref(&table), &CpuCtx::default());
    assert_eq!(y.shape, vec![1, 4, 2]);
    assert_eq!(y.data, vec![5.0, 6.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
    // Two positions holding id 1: its row receives both gradients.
    let x = Tensor::from_vec(&[2, 1], vec![1.0, 1.0]).unwrap();
    let dy = Tensor::from_vec(&[2, 1, 2], vec![0.5, 1.0, 2.0, 4.0]).unwrap();
    let y = op.forward_cpu(&x, std::slice::from_ref(&table), &CpuCtx::default());
    let (_, grads) = op.backward_cpu(&x, &[table], &y, &dy, &CpuCtx::default());
    assert_eq!(grads[0].data, vec![0.0, 0.0, 2.5, 5.0, 0.0, 0.0]);
}

#[test]
fn losses() {
    use ops::loss::{cross_entropy::cross_entropy_cpu, mse::mse_cpu};
    let mut rng = Rng::new(17);
    let logits = random(&mut rng, &[4, 6], -2.0, 2.0);
    let labels = [1u32, 5, 0, 3];
    let targets = rng.vec_uniform(24, -1.0, 1.0);
    let h = 1e-2f32;
    for smoothing in [0.0f32, 0.1] {
        let out = cross_entropy_cpu(&logits, &labels, 3, smoothing);
        for i in 0..logits.len() {
            let (mut p, mut m) = (logits.clone(), logits.clone());
            p.data[i] += h;
            m.data[i] -= h;
            let num = (cross_entropy_cpu(&p, &labels, 3, smoothing).loss_sum
                - cross_entropy_cpu(&m, &labels, 3, smoothing).loss_sum)
                / (2.0 * h as f64);
            assert!(
                (num - out.grad.data[i] as f64).abs() < 1e-3,
                "ce grad {i}: {num} vs {}",
                out.grad.data[i]
            );
        }
    }
    // Class weights: finite differences of the weighted loss, and weight 1 everywhere is
    // the unweighted loss exactly.
    use ops::loss::cross_entropy::cross_entropy_weighted_cpu;
    let weights = [2.0f32, 0.5, 1.0, 3.0, 1.0, 0.25];
    let out = cross_entropy_weighted_cpu(&logits, &labels, 3, 0.1, Some(&weights));
    for i in 0..logits.len() {
        let (mut p, mut m) = (logits.clone(), logits.clone());
        p.data[i] += h;
        m.data[i] -= h;
        let num = (cross_entropy_weighted_cpu(&p, &labels, 3, 0.1, Some(&weights)).loss_sum
            - cross_entropy_weighted_cpu(&m, &labels, 3, 0.1, Some(&weights)).loss_sum)
            / (2.0 * h as f64);
        assert!(
            (num - out.grad.data[i] as f64).abs() < 1e-3,
            "weighted ce grad {i}"
        );
    }
    assert_eq!(
        cross_entropy_weighted_cpu(&logits, &labels, 3, 0.1, Some(&[1.0; 6])),
        cross_entropy_cpu(&logits, &labels, 3, 0.1)
    );
    // Regression losses: mse, l1 and huber (delta 0.5, so both branches are hit).
    use ops::loss::{huber::huber_cpu, l1::l1_cpu};
    type Loss<'a> = &'a dyn Fn(&Tensor) -> ops::loss::LossOutput;
    let regression: [(&str, Loss); 3] = [
        ("mse", &|y| mse_cpu(y, &targets, 3)),
        ("l1", &|y| l1_cpu(y, &targets, 3)),
        ("huber", &|y| huber_cpu(y, &targets, 3, 0.5)),
    ];
    for (name, loss) in regression {
        let out = loss(&logits);
        assert!(
            out.grad.data[18..].iter().all(|&g| g == 0.0),
            "{name}: padded row"
        );
        for i in 0..18 {
            let (mut p, mut m) = (logits.clone(), logits.clone());
            p.data[i] += h;
            m.data[i] -= h;
            let num = (loss(&p).loss_sum - loss(&m).loss_sum) / (2.0 * h as f64);
            assert!(
                (num - out.grad.data[i] as f64).abs() < 1e-3,
                "{name} grad {i}: {num} vs {}",
                out.grad.data[i]
            );
        }
    }
    // Far below the targets the gradient is the clamp, -delta / D, whatever the distance.
    let huber_far = huber_cpu(&logits, &[10.0; 24], 1, 0.5);
    assert!(
        huber_far.grad.data[..6]
            .iter()
            .all(|&g| (g + 0.5 / 6.0).abs() < 1e-7)
    );
    let out = mse_cpu(&logits, &targets, 3);
    for i in 0..logits.len() {
        let (mut p, mut m) = (logits.clone(), logits.clone());
        p.data[i] += h;
        m.data[i] -= h;
        let num = (mse_cpu(&p, &targets, 3).loss_sum - mse_cpu(&m, &targets, 3).loss_sum)
            / (2.0 * h as f64);
        assert!(
            (num - out.grad.data[i] as f64).abs() < 1e-3,
            "mse grad {i}: {num} vs {}",
            out.grad.data[i]
        );
    }
}

#[test]
fn layer_spec_yaml_forms() {
    use ops::conv2d::Conv2dAttrs;
    let specs: Vec<LayerSpec> = serde_yaml::from_str(
        "- relu\n- linear: {out: 100}\n- conv2d: {out_channels: 16, kernel: 3, padding: 1}\n- max_pool2d: {kernel: 2}\n- leaky_relu: {}\n- dropout: {p: 0.5}\n- layer_norm: {}\n- tanh: null\n- !gelu\n- !linear {out: 2}\n",
    )
    .unwrap();
    assert_eq!(specs[0], LayerSpec::Relu);
    assert_eq!(
        specs[2],
        LayerSpec::Conv2d(Conv2dAttrs {
            out_channels: 16,
            kernel: 3.into(),
            stride: 1.into(),
            padding: 1.into(),
            bias: true
        })
    );
    let rect: LayerSpec =
        serde_yaml::from_str("conv2d: {out_channels: 4, kernel: [1, 5], padding: [0, 2]}").unwrap();
    let LayerSpec::Conv2d(a) = rect else {
        panic!("{rect:?}")
    };
    assert_eq!(
        (a.kernel.hw(), a.padding.hw(), a.stride.hw()),
        ((1, 5), (0, 2), (1, 1))
    );
    for bad in ["kernel: [1, 2, 3]", "kernel: -1", "kernel: [1]"] {
        let yaml = format!("conv2d: {{out_channels: 4, {bad}}}");
        assert!(serde_yaml::from_str::<LayerSpec>(&yaml).is_err(), "{yaml}");
    }
    assert_eq!(specs.len(), 10);
    for (yaml, needle) in [
        ("- relu2", "unknown variant `relu2`"),
        ("- linear: {out: 3, outt: 4}", "unknown field `outt`"),
        ("- linear", "needs attributes"),
        ("- linear: {bias: false}", "missing field `out`"),
        ("- relu: {slope: 1}", "unknown field `slope`"),
        ("- {relu: null, tanh: null}", "exactly one key"),
    ] {
        let err = serde_yaml::from_str::<Vec<LayerSpec>>(yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{yaml}: {err}");
    }
    let schema = serde_json::to_string(&schemars::schema_for!(LayerSpec)).unwrap();
    assert!(schema.contains("Number of output features"), "{schema}");
}
