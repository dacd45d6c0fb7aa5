//! Federated aggregation on the device against the CPU reference of each aggregator's
//! update rule, on a tiny model with batch norm (so the buffers' plain averaging is
//! covered too), and the local corrections of FedProx and SCAFFOLD against their closed
//! form on one SGD step.

mod common;

use common::{assert_close, gpu};
use ops::federated::{Adaptive, Aggregator, Federation, fedprox, scaffold};
use ops::rng::Rng;
use ops::{
    Init, LayerSpec, LossKind, ModelDef, NamedTensor, OptimizerKind, TrainConfig, TrainStep,
};

fn model() -> ModelDef {
    ModelDef {
        input: vec![6],
        layers: serde_yaml::from_str(
            "[{linear: {out: 5}}, {batch_norm: {}}, relu, {linear: {out: 3}}]",
        )
        .map(|l: Vec<LayerSpec>| l)
        .unwrap(),
        inputs: Vec::new(),
        init: Init::KaimingUniform,
    }
}

fn config(momentum: f32) -> TrainConfig {
    TrainConfig {
        batch: 4,
        loss: LossKind::CrossEntropy {
            label_smoothing: 0.0,
        },
        optimizer: OptimizerKind::sgd(momentum, false, 0.0),
        clip_grad_norm: None,
        accumulation_steps: 1,
        seed: 5,
        class_weights: None,
        precision: ops::Precision::F32,
    }
}

/// Trains `steps` local steps of 3 rows (a padded batch) on data keyed by `key`.
fn local_steps(step: &mut TrainStep, key: u64, steps: u64, lr: f32) {
    let gpu = gpu();
    let mut rng = Rng::new(key);
    for s in 0..steps {
        let x = rng.vec_uniform(3 * 6, -1.0, 1.0);
        let labels: Vec<u32> = (0..3).map(|_| rng.below(3) as u32).collect();
        step.upload_batch(gpu, &x, &labels, None, 3).unwrap();
        step.record_step(gpu, lr, s).unwrap();
    }
}

fn words(step: &TrainStep) -> Vec<f32> {
    let all = gpu().read_f32(&step.buffers().params).unwrap();
    all[..step.model().params_words()].to_vec()
}

fn adaptive() -> Adaptive {
    Adaptive {
        lr: 0.05,
        beta1: 0.9,
        beta2: 0.99,
        tau: 1e-3,
    }
}

/// Two rounds of clients [2, 0] then [1, 2] on the device; the CPU replays the server rule
/// from the client models read back after their local training.
fn rounds_match_cpu(aggregator: Aggregator, momentum: f32) {
    let gpu = gpu();
    let clients = 3;
    let lr = 0.1;
    let local = 2;
    let mut step = TrainStep::new(gpu, &model(), &config(momentum)).unwrap();
    let fed = Federation::new(gpu, &mut step, aggregator, clients).unwrap();
    let learnable = step.model().packed_len;
    let mut global = fed.global_words(gpu).unwrap();
    let all = global.len();
    let mut state = vec![0.0f32; learnable * aggregator.server_state().len()];
    let mut controls = vec![vec![0.0f32; learnable]; clients as usize];
    for (round, chosen) in [[2u32, 0], [1, 2]].iter().enumerate() {
        let mut sum = vec![0.0f32; all];
        let mut change_sum = vec![0.0f32; learnable];
        let mut total = 0.0f32;
        for &k in chosen {
            fed.begin_client(gpu, &mut step, k).unwrap();
            assert_eq!(
                words(&step),
                global,
                "client {k} starts from the global model"
            );
            local_steps(&mut step, 100 * round as u64 + u64::from(k), local, lr);
            let w = words(&step);
            let weight = if aggregator.weights_by_samples() {
                (3 * local) as f32 + k as f32
            } else {
                1.0
            };
            fed.end_client(gpu, k, weight, local, lr).unwrap();
            total += weight;
            for i in 0..all {
                sum[i] += weight * (w[i] - global[i]);
            }
            if matches!(aggregator, Aggregator::Scaffold { .. }) {
                let server = &state[..learnable];
                let change = scaffold::client_control_cpu(
                    &mut controls[k as usize],
                    server,
                    &global[..learnable],
                    &w[..learnable],
                    local,
                    lr,
                );
                for (s, c) in change_sum.iter_mut().zip(change) {
                    *s += c;
                }
            }
        }
        fed.aggregate(gpu, total).unwrap();
        let delta: Vec<f32> = sum.iter().map(|s| s * (1.0 / total)).collect();
        let (learn, tail) = global.split_at_mut(learnable);
        aggregator.server_step_cpu(learn, &delta[..learnable], &mut state);
        for (g, d) in tail.iter_mut().zip(&delta[learnable..]) {
            *g += d;
        }
        if matches!(aggregator, Aggregator::Scaffold { .. }) {
            scaffold::server_control_cpu(&mut state[..learnable], &change_sum, clients);
        }
        let name = aggregator.name();
        assert_close(
            &format!("{name} global, round {round}"),
            &fed.global_words(gpu).unwrap(),
            &global,
            1e-5,
        );
        assert_close(
            &format!("{name}: the step holds the global model"),
            &words(&step),
            &global,
            1e-5,
        );
        let saved = fed.state_tensors(gpu).unwrap();
        for (k, slot) in aggregator.server_state().iter().enumerate() {
            let t = saved
                .iter()
                .find(|t| t.name == format!("federated.{slot}"))
                .unwrap();
            assert_close(
                &format!("{name} {slot}"),
                &t.data,
                &state[k * learnable..(k + 1) * learnable],
                1e-5,
            );
        }
        if let Some(t) = saved.iter().find(|t| t.name == "federated.client_controls") {
            let flat: Vec<f32> = controls.iter().flatten().copied().collect();
            assert_close("scaffold client controls", &t.data, &flat, 1e-5);
        }
    }
}

#[test]
fn fedavg_matches_cpu() {
    rounds_match_cpu(Aggregator::FedAvg, 0.9);
}

#[test]
fn fedavgm_matches_cpu() {
    rounds_match_cpu(
        Aggregator::FedAvgM {
            lr: 0.7,
            momentum: 0.9,
        },
        0.0,
    );
}

#[test]
fn fedadam_matches_cpu() {
    rounds_match_cpu(Aggregator::FedAdam(adaptive()), 0.0);
}

#[test]
fn fedyogi_matches_cpu() {
    rounds_match_cpu(Aggregator::FedYogi(adaptive()), 0.0);
}

#[test]
fn fedadagrad_matches_cpu() {
    rounds_match_cpu(Aggregator::FedAdagrad(adaptive()), 0.0);
}

#[test]
fn scaffold_matches_cpu() {
    rounds_match_cpu(Aggregator::Scaffold { lr: 1.0 }, 0.0);
}

/// One SGD step of the plain and the corrected step from the same parameters: the corrected
/// one moves by `lr ×` the correction more.
fn one_step_from(
    step: &mut TrainStep,
    fed: &Federation,
    params: &[NamedTensor],
    lr: f32,
) -> Vec<f32> {
    let gpu = gpu();
    fed.begin_client(gpu, step, 0).unwrap();
    step.load_params(gpu, params).unwrap();
    local_steps(step, 77, 1, lr);
    words(step)[..step.model().packed_len].to_vec()
}

#[test]
fn fedprox_adds_the_proximal_gradient() {
    let gpu = gpu();
    let lr = 0.1;
    let mu = 0.5;
    let mut plain = TrainStep::new(gpu, &model(), &config(0.0)).unwrap();
    let mut prox = TrainStep::new(gpu, &model(), &config(0.0)).unwrap();
    let plain_fed = Federation::new(gpu, &mut plain, Aggregator::FedAvg, 2).unwrap();
    let prox_fed = Federation::new(gpu, &mut prox, Aggregator::FedProx { mu }, 2).unwrap();
    let global = prox_fed.global_words(gpu).unwrap();
    let learnable = prox.model().packed_len;
    // Parameters away from the global model, so the proximal term is not zero.
    let mut rng = Rng::new(3);
    let moved: Vec<NamedTensor> = prox
        .param_tensors(gpu)
        .unwrap()
        .into_iter()
        .map(|mut t| {
            for v in &mut t.data {
                *v += rng.uniform_in(-0.3, 0.3) as f32;
            }
            t
        })
        .collect();
    let start = {
        prox_fed.begin_client(gpu, &mut prox, 0).unwrap();
        prox.load_params(gpu, &moved).unwrap();
        words(&prox)[..learnable].to_vec()
    };
    let a = one_step_from(&mut plain, &plain_fed, &moved, lr);
    let b = one_step_from(&mut prox, &prox_fed, &moved, lr);
    let mut correction = vec![0.0f32; learnable];
    fedprox::correct_cpu(&mut correction, &start, &global[..learnable], mu);
    let expected: Vec<f32> = a.iter().zip(&correction).map(|(w, c)| w - lr * c).collect();
    assert_close("fedprox step", &b, &expected, 1e-5);
    assert!(
        correction.iter().any(|c| c.abs() > 1e-3),
        "the test moved the parameters"
    );
}

#[test]
fn scaffold_corrects_local_gradients() {
    let gpu = gpu();
    let lr = 0.1;
    let mut plain = TrainStep::new(gpu, &model(), &config(0.0)).unwrap();
    let mut corrected = TrainStep::new(gpu, &model(), &config(0.0)).unwrap();
    let plain_fed = Federation::new(gpu, &mut plain, Aggregator::FedAvg, 2).unwrap();
    let fed = Federation::new(gpu, &mut corrected, Aggregator::Scaffold { lr: 1.0 }, 2).unwrap();
    let learnable = corrected.model().packed_len;
    let mut rng = Rng::new(4);
    let server = rng.vec_uniform(learnable, -0.5, 0.5);
    let controls = rng.vec_uniform(2 * learnable, -0.5, 0.5);
    fed.load_state(
        gpu,
        &corrected,
        &[
            NamedTensor {
                name: "federated.server_control".into(),
                shape: vec![learnable],
                data: server.clone(),
            },
            NamedTensor {
                name: "federated.client_controls".into(),
                shape: vec![2, learnable],
                data: controls.clone(),
            },
        ],
    )
    .unwrap();
    let params = plain.param_tensors(gpu).unwrap();
    let a = one_step_from(&mut plain, &plain_fed, &params, lr);
    let b = one_step_from(&mut corrected, &fed, &params, lr);
    let mut correction = vec![0.0f32; learnable];
    scaffold::correct_cpu(&mut correction, &server, &controls[..learnable]);
    let expected: Vec<f32> = a.iter().zip(&correction).map(|(w, c)| w - lr * c).collect();
    assert_close("scaffold step", &b, &expected, 1e-5);
}

#[test]
fn a_client_outside_the_federation_is_refused() {
    let gpu = gpu();
    let mut step = TrainStep::new(gpu, &model(), &config(0.0)).unwrap();
    let fed = Federation::new(gpu, &mut step, Aggregator::FedAvg, 2).unwrap();
    let err = fed.begin_client(gpu, &mut step, 2).unwrap_err().to_string();
    assert!(err.contains("outside the federation of 2 clients"), "{err}");
}
