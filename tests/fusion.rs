//! The fusion pass, rule by rule: each model's kernels per step before fusion (every layer
//! alone) and after (`ops::fusion::fuse`), snapshotted. The pass decides from the ops'
//! fusion properties; `ops/tests/gpu_train.rs` checks the fused models' gradients against
//! the CPU reference and finite differences.

use ops::fusion::{Fusion, fuse};
use ops::model::{Sequential, TensorId};
use ops::{Init, LayerSpec, ModelDef};

/// A model of `layers` (a YAML list) over `input`, layer `i` reading the tensors
/// `inputs[i]` (`TensorId` numbers; empty: a chain).
fn model(input: &[usize], layers: &str, inputs: Vec<Vec<usize>>) -> ModelDef {
    let layers: Vec<LayerSpec> = serde_yaml::from_str(layers).expect("layers parse");
    ModelDef {
        input: input.to_vec(),
        layers,
        inputs: inputs
            .into_iter()
            .map(|reads| reads.into_iter().map(TensorId).collect())
            .collect(),
        init: Init::KaimingUniform,
    }
}

/// The model, the fusion and the kernels before and after, as text.
fn before_after(def: &ModelDef, layers: &str) -> String {
    let seq = Sequential::new(def).expect("model builds");
    let fused = fuse(&seq);
    let show = |fusion: &Fusion| {
        let (forward, backward) = fusion.kernels(&seq);
        format!(
            "  forward:  {}\n  backward: {}\n",
            forward.join(", "),
            backward.join(", ")
        )
    };
    let fusion: Vec<String> = fused.layers.iter().map(|f| format!("{f:?}")).collect();
    format!(
        "model: {:?} -> {layers}\nfusion: [{}]\nbefore (every layer alone):\n{}after:\n{}",
        def.input,
        fusion.join(", "),
        show(&Fusion::unfused(&seq)),
        show(&fused)
    )
}

fn snapshot(name: &str, input: &[usize], layers: &str, inputs: Vec<Vec<usize>>) {
    let def = model(input, layers, inputs);
    insta::assert_snapshot!(name, before_after(&def, layers));
}

#[test]
fn relu_between_linears_folds_into_their_gemm_epilogues() {
    snapshot(
        "linear_relu_linear",
        &[16],
        "[{linear: {out: 32}}, relu, {linear: {out: 10}}]",
        vec![],
    );
}

#[test]
fn relu_between_conv_and_2x2_pool_folds_and_the_pool_may_run_in_the_conv() {
    snapshot(
        "conv2d_relu_max_pool2d",
        &[1, 8, 8],
        "[{conv2d: {out_channels: 4, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 2}}, flatten, {linear: {out: 3}}]",
        vec![],
    );
}

#[test]
fn an_overlapping_pool_takes_the_relu_but_is_not_stored_by_the_conv() {
    snapshot(
        "conv2d_relu_overlapping_pool",
        &[1, 8, 8],
        "[{conv2d: {out_channels: 4, kernel: 3, padding: 1}}, relu, {max_pool2d: {kernel: 3, stride: 1}}, flatten, {linear: {out: 3}}]",
        vec![],
    );
}

#[test]
fn conv1d_relu_pool_fuses_as_its_2d_twin() {
    snapshot(
        "conv1d_relu_max_pool1d",
        &[2, 24],
        "[{conv1d: {out_channels: 4, kernel: 5, padding: 2}}, relu, {max_pool1d: {kernel: 2}}, flatten, {linear: {out: 3}}]",
        vec![],
    );
}

#[test]
fn a_relu_whose_output_a_residual_also_reads_stays_alone() {
    // linear -> relu -> linear -> add(relu's output): the relu is no link of a chain.
    snapshot(
        "residual_relu_not_folded",
        &[8],
        "[{linear: {out: 8}}, relu, {linear: {out: 8}}, add, {linear: {out: 3}}]",
        vec![vec![0], vec![1], vec![2], vec![3, 2], vec![4]],
    );
}

#[test]
fn a_relu_after_batch_norm_stays_alone() {
    // batch norm cannot apply the relu as it stores.
    snapshot(
        "batch_norm_relu_not_folded",
        &[1, 8, 8],
        "[{conv2d: {out_channels: 4, kernel: 3, padding: 1}}, {batch_norm: {}}, relu, {max_pool2d: {kernel: 2}}, flatten, {linear: {out: 3}}]",
        vec![],
    );
}
