//! Data parallelism at the step level: two "ranks" (two train steps in one process) that
//! exchange gradient contributions reproduce one step accumulating the same micro-batches,
//! bit for bit — parameters, optimizer state, gradient norm and the loss sum.

mod common;

use common::gpu;
use ops::rng::Rng;
use ops::{
    Init, LayerSpec, LossKind, ModelDef, OptimizerKind, StepMetrics, TrainConfig, TrainStep,
};

fn model() -> ModelDef {
    ModelDef {
        input: vec![2, 6, 6],
        layers: serde_yaml::from_str(
            "[{conv2d: {out_channels: 3, kernel: 3, padding: 1}}, relu, flatten, {dropout: {p: 0.3}}, {linear: {out: 7}}, gelu, {layer_norm: {}}, {linear: {out: 4}}]",
        )
        .unwrap(),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    }
}

fn config(accumulation_steps: u32) -> TrainConfig {
    TrainConfig {
        batch: 5,
        loss: LossKind::CrossEntropy {
            label_smoothing: 0.1,
        },
        optimizer: OptimizerKind::adamw(0.9, 0.999, 1e-8, 0.01),
        clip_grad_norm: Some(0.7),
        accumulation_steps,
        seed: 7,
        class_weights: None,
        precision: ops::Precision::F32,
    }
}

/// Micro-batch `i`: rows (the last of every four is partial), features and labels.
fn micro_batch(i: u64) -> (usize, Vec<f32>, Vec<u32>) {
    let rows = if i % 4 == 3 { 3 } else { 5 };
    let mut rng = Rng::new(1000 + i);
    let x = rng.vec_uniform(rows * 72, -1.0, 1.0);
    let labels = (0..rows).map(|_| rng.below(4) as u32).collect();
    (rows, x, labels)
}

fn bits(step: &TrainStep) -> Vec<u32> {
    let gpu = gpu();
    let mut words: Vec<u32> = Vec::new();
    for t in step
        .param_tensors(gpu)
        .unwrap()
        .into_iter()
        .chain(step.optimizer_state(gpu).unwrap())
    {
        words.extend(t.data.iter().map(|v| v.to_bits()));
    }
    words
}

#[test]
fn two_ranks_reproduce_one_process_bit_for_bit() {
    let gpu = gpu();
    let micro_batches = 12u64;
    // Groups of 4 micro-batches: accumulate 2 on each of 2 ranks.
    let mut single = TrainStep::new(gpu, &model(), &config(4)).unwrap();
    let mut single_metrics = StepMetrics::default();
    for i in 0..micro_batches {
        let (rows, x, labels) = micro_batch(i);
        single.upload_batch(gpu, &x, &labels, None, rows).unwrap();
        single.record_step(gpu, 0.01, i).unwrap();
        if i == 5 {
            // A read in the middle: the exact loss sum does not care where reads fall.
            single_metrics.merge(&single.read_train_metrics(gpu).unwrap());
        }
    }
    single_metrics.merge(&single.read_train_metrics(gpu).unwrap());

    let mut ranks: Vec<TrainStep> = (0..2)
        .map(|_| {
            let mut s = TrainStep::new(gpu, &model(), &config(4)).unwrap();
            s.enable_data_parallel(gpu).unwrap();
            s
        })
        .collect();
    let mut updates = 0;
    for tick in 0..micro_batches / 2 {
        let mut exchanged = Vec::new();
        for (r, rank) in ranks.iter_mut().enumerate() {
            let i = tick * 2 + r as u64;
            let (rows, x, labels) = micro_batch(i);
            rank.upload_batch(gpu, &x, &labels, None, rows).unwrap();
            rank.record_contribution(gpu, i).unwrap();
            exchanged.push((rank.take_contribution(gpu).unwrap(), rows));
        }
        // Rank 0 adds them in order and hands its group to rank 1; both update.
        ranks[0]
            .add_contributions(exchanged.iter().map(|(g, r)| (g.as_slice(), *r)))
            .unwrap();
        let (micro, rows, sum) = ranks[0].group().unwrap();
        let (micro, rows, sum) = (micro, rows, sum.to_vec());
        ranks[1].set_group(micro, rows, &sum).unwrap();
        for rank in &mut ranks {
            updates += usize::from(rank.update_if_complete(gpu, 0.01).unwrap());
        }
    }
    assert_eq!(
        updates,
        2 * 3,
        "12 micro-batches in groups of 4, on both ranks"
    );
    let mut merged = StepMetrics::default();
    for rank in &mut ranks {
        merged.merge(&rank.read_train_metrics(gpu).unwrap());
    }
    let want = bits(&single);
    assert!(!want.is_empty());
    for rank in &ranks {
        assert_eq!(bits(rank), want, "a rank's parameters and optimizer state");
    }
    assert_eq!(merged.loss_exact, single_metrics.loss_exact);
    assert_eq!(merged.loss_sum.to_bits(), single_metrics.loss_sum.to_bits());
    assert_eq!(merged.samples, single_metrics.samples);
    assert_eq!(merged.correct, single_metrics.correct);
    assert_eq!(
        merged.last_grad_norm.to_bits(),
        single_metrics.last_grad_norm.to_bits()
    );
}

#[test]
fn a_checkpoint_inside_a_group_holds_the_exchanged_sums() {
    let gpu = gpu();
    let mut a = TrainStep::new(gpu, &model(), &config(4)).unwrap();
    a.enable_data_parallel(gpu).unwrap();
    let (rows, x, labels) = micro_batch(0);
    a.upload_batch(gpu, &x, &labels, None, rows).unwrap();
    a.record_contribution(gpu, 0).unwrap();
    let c = a.take_contribution(gpu).unwrap();
    assert!(c.iter().any(|v| *v != 0.0));
    a.add_contributions([(c.as_slice(), rows)]).unwrap();
    assert!(!a.update_if_complete(gpu, 0.01).unwrap());
    let state = a.accumulation_state(gpu).unwrap();
    assert_eq!((state.micro, state.group_rows), (1, rows));
    let saved: Vec<f32> = state.grads.iter().flat_map(|t| t.data.clone()).collect();
    // 0 + c is c: the group's sum after one contribution (the packed layout has padding).
    let mut packed = c.iter();
    assert!(
        saved
            .iter()
            .all(|v| packed.any(|p| p.to_bits() == v.to_bits())),
        "the saved sums are the contribution's values, in order"
    );

    let mut b = TrainStep::new(gpu, &model(), &config(4)).unwrap();
    b.enable_data_parallel(gpu).unwrap();
    b.restore_accumulation(gpu, &state).unwrap();
    assert_eq!(b.accumulation_state(gpu).unwrap(), state);
}

#[test]
fn contributions_past_the_group_are_refused_and_change_nothing() {
    let gpu = gpu();
    let mut a = TrainStep::new(gpu, &model(), &config(2)).unwrap();
    a.enable_data_parallel(gpu).unwrap();
    let zeros = vec![0.0f32; a.contribution_len()];
    let three = [
        (zeros.as_slice(), 5),
        (zeros.as_slice(), 5),
        (zeros.as_slice(), 5),
    ];
    assert!(a.add_contributions(three).is_err());
    let short = [(&zeros[1..], 5)];
    assert!(a.add_contributions(short).is_err());
    let state = a.accumulation_state(gpu).unwrap();
    assert_eq!((state.micro, state.group_rows), (0, 0), "nothing was added");
}

#[test]
fn the_loss_sum_does_not_depend_on_order_or_reads() {
    // One row per micro-batch, losses of very different sizes, summed read by read and
    // all at once in the reverse order: the same exact sum.
    let gpu = gpu();
    let def = ModelDef {
        input: vec![1],
        layers: vec![LayerSpec::Linear(serde_yaml::from_str("{out: 1}").unwrap())],
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    };
    let cfg = TrainConfig {
        batch: 1,
        loss: LossKind::Fused(ops::loss::mse::mse()),
        optimizer: OptimizerKind::sgd(0.0, false, 0.0),
        accumulation_steps: 1,
        clip_grad_norm: None,
        seed: 1,
        class_weights: None,
        precision: ops::Precision::F32,
    };
    let mut step = TrainStep::new(gpu, &def, &cfg).unwrap();
    let targets = [3.0e6f32, 0.25, -1.5, 2.0e-3];
    let mut separately = StepMetrics::default();
    for (i, t) in targets.iter().enumerate() {
        step.upload_batch(gpu, &[0.0], &[0], Some(&[*t]), 1)
            .unwrap();
        step.record_step(gpu, 0.0, i as u64).unwrap();
        separately.merge(&step.read_train_metrics(gpu).unwrap());
    }
    let mut together = TrainStep::new(gpu, &def, &cfg).unwrap();
    for (i, t) in targets.iter().enumerate().rev() {
        together
            .upload_batch(gpu, &[0.0], &[0], Some(&[*t]), 1)
            .unwrap();
        together.record_step(gpu, 0.0, i as u64).unwrap();
    }
    let reversed = together.read_train_metrics(gpu).unwrap();
    assert_eq!(separately.loss_exact, reversed.loss_exact, "order-free");
    assert_eq!(separately.samples, 4);
    // lr 0: the prediction stays the initial bias b (input 0), each loss (b - t)^2 in f32.
    let b = step.param_tensors(gpu).unwrap()[1].data[0];
    let want: f64 = targets.iter().map(|t| f64::from((b - t) * (b - t))).sum();
    assert!(
        (separately.loss_sum - want).abs() <= 1e-6 * want,
        "{} vs {want}",
        separately.loss_sum
    );
}
