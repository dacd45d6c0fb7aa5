//! Shape inference: through every model's layers, and across the edges that connect
//! data, models and losses.

use std::collections::BTreeMap;

use ops::layer::LayerSpec;
use ops::model::TensorId;

use crate::diag::Diagnostic;
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::Stage;

use super::DatasetInfo;
use super::graph::{StageGraph, field_path};

/// The shapes through one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelShapes {
    /// Declared per-sample input shape.
    pub input: Vec<usize>,
    /// One entry per layer.
    pub layers: Vec<LayerShape>,
}

impl ModelShapes {
    /// Per-sample output shape of the model.
    pub fn output(&self) -> &[usize] {
        self.layers.last().map_or(&self.input, |l| &l.output)
    }

    /// Total learnable parameters.
    pub fn param_count(&self) -> usize {
        self.layers
            .iter()
            .map(|l| {
                l.params
                    .iter()
                    .map(|p| p.1.iter().product::<usize>())
                    .sum::<usize>()
            })
            .sum()
    }

    /// Total buffer values (state that is not learned).
    pub fn buffer_count(&self) -> usize {
        self.layers.iter().map(|l| l.buffer_values).sum()
    }

    /// Per-sample shape of tensor `t`.
    fn tensor_shape(&self, t: TensorId) -> &[usize] {
        match t.producer() {
            None => &self.input,
            Some(layer) => &self.layers[layer].output,
        }
    }

    /// The positions of the model's (flattened) input that tensor `t` holds as they are:
    /// all of them for the input, a range for a `slice` (or `flatten`) of such a tensor;
    /// `None` for a computed tensor.
    fn input_features(&self, t: TensorId) -> Option<std::ops::Range<usize>> {
        let Some(producer) = t.producer() else {
            return Some(0..numel(&self.input));
        };
        let layer = &self.layers[producer];
        let &[src] = layer.inputs.as_slice() else {
            return None;
        };
        let range = self.input_features(src)?;
        match &layer.spec {
            LayerSpec::Flatten => Some(range),
            LayerSpec::Slice(a) => {
                let inner = numel(&self.tensor_shape(src)[1..]);
                Some(range.start + a.start * inner..range.start + a.end * inner)
            }
            _ => None,
        }
    }

    /// Every embedding: its layer index, the input features it reads (`None` when it reads
    /// a computed tensor) and its `num_embeddings`.
    pub fn embeddings(&self) -> Vec<(usize, Option<std::ops::Range<usize>>, usize)> {
        self.layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match &l.spec {
                LayerSpec::Embedding(a) => {
                    Some((i, self.input_features(l.inputs[0]), a.num_embeddings))
                }
                _ => None,
            })
            .collect()
    }

    /// `node `emb`` or `layer 2`, for messages.
    fn layer_label(&self, i: usize) -> String {
        match &self.layers[i].name {
            Some(name) => format!("node `{name}`"),
            None => format!("layer {i}"),
        }
    }
}

/// One layer's shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerShape {
    /// Its node id (`None` in a `layers:` list).
    pub name: Option<String>,
    /// The layer.
    pub spec: LayerSpec,
    /// The tensors it reads (`TensorId::INPUT` the model's input, `output_of(i)` layer
    /// `i`'s).
    pub inputs: Vec<TensorId>,
    /// The layer as written, e.g. `linear(out=100)`.
    pub describe: String,
    /// Op kind.
    pub kind: &'static str,
    /// Per-sample output shape.
    pub output: Vec<usize>,
    /// Parameter names and shapes.
    pub params: Vec<(&'static str, Vec<usize>)>,
    /// Values of its buffers (state that is not learned: batch norm's running statistics).
    pub buffer_values: usize,
    /// Forward FLOPs per sample.
    pub flops: u64,
}

/// `linear(out=100)`: a layer spec in one short line.
pub fn describe_layer(layer: &LayerSpec) -> String {
    match serde_json::to_value(layer) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(name, attrs)| {
                let args = match attrs {
                    serde_json::Value::Object(a) => a
                        .into_iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| match v.as_f64() {
                            // Attributes are f32; print them as written, not widened.
                            Some(f) if v.is_f64() => format!("{k}={}", f as f32),
                            _ => format!("{k}={v}"),
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => other.to_string(),
                };
                format!("{name}({args})")
            })
            .collect(),
        _ => "?".into(),
    }
}

/// Values per sample above which a tensor cannot be a GPU buffer (1 GiB of f32).
const MAX_SAMPLE_VALUES: usize = 1 << 28;

/// Values in a shape, saturating instead of overflowing on absurd input.
fn numel(shape: &[usize]) -> usize {
    shape
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .unwrap_or(usize::MAX)
}

/// A diagnostic when a per-sample tensor is too large to hold, or when a layer's weights
/// (input x output values) would be.
fn too_large(input: &[usize], output: &[usize]) -> Option<String> {
    let (i, o) = (numel(input), numel(output));
    if o > MAX_SAMPLE_VALUES {
        return Some(format!(
            "its output {output:?} holds {o} values per sample, more than the {MAX_SAMPLE_VALUES} a GPU buffer can"
        ));
    }
    match i.checked_mul(o) {
        Some(w) if w <= 1 << 40 => None,
        _ => Some(format!(
            "input {input:?} times output {output:?} is too large to be a layer"
        )),
    }
}

pub(super) fn check(
    parsed: &ParsedPipeline,
    graph: &StageGraph,
    datasets: &BTreeMap<String, DatasetInfo>,
    acyclic: bool,
    out: &mut Vec<Diagnostic>,
) -> BTreeMap<String, ModelShapes> {
    let mut models = BTreeMap::new();
    for (name, model) in &parsed.pipeline.models {
        let base = vec![Seg::Key("models".into()), Seg::Key(name.clone())];
        if model.input.is_empty()
            || model.input.contains(&0)
            || numel(&model.input) > MAX_SAMPLE_VALUES
        {
            out.push(
                Diagnostic::new(
                    "invalid-shape",
                    format!("model `{name}` has input shape {:?}", model.input),
                )
                .at(
                    parsed.span(&[base.clone(), vec![Seg::Key("input".into())]].concat()),
                    "every dimension must be > 0",
                )
                .expected_found(
                    "a non-empty shape of positive sizes, e.g. [64] or [1, 28, 28]",
                    format!("{:?}", model.input),
                )
                .hint("declare the per-sample shape, without the batch dimension"),
            );
            continue;
        }
        let Some(wired) = super::wiring::wire(parsed, name, model, &base, out) else {
            continue;
        };
        let mut shapes: Vec<Vec<usize>> = vec![model.input.clone()];
        let mut layers = Vec::new();
        let mut ok = true;
        for (i, w) in wired.iter().enumerate() {
            let (layer, path) = (&w.spec, w.path.clone());
            let shape = shapes[w.inputs[0]].clone();
            let input_shapes: Vec<&[usize]> =
                w.inputs.iter().map(|&t| shapes[t].as_slice()).collect();
            // What produced tensor `t`, for messages.
            let source = |t: usize| -> String {
                match t {
                    0 => "the model input".to_string(),
                    t => format!(
                        "{} ({})",
                        wired[t - 1].label(t - 1),
                        layers.get(t - 1).map_or("?", |l: &LayerShape| l.kind)
                    ),
                }
            };
            let op = layer.build();
            if let Err(message) = op.check_attrs() {
                out.push(
                    Diagnostic::new(
                        "invalid-hyperparameter",
                        format!(
                            "{} ({}) of model `{name}`: {message}",
                            w.label(i),
                            op.kind()
                        ),
                    )
                    .at(parsed.span(&path), message.clone())
                    .hint("see docs/pipeline.md for the layer's valid values"),
                );
                // Shape rules assume valid attributes (a slice's start below its end).
                ok = false;
                break;
            }
            let result = op.output_shape_of(&input_shapes);
            if w.inputs.len() > 1
                && let Err(err) = &result
            {
                let found: Vec<String> = w
                    .inputs
                    .iter()
                    .map(|&t| format!("{:?} from {}", shapes[t], source(t)))
                    .collect();
                out.push(
                    Diagnostic::new(
                        "shape-mismatch",
                        format!(
                            "{} of model `{name}`: {} expects {}",
                            w.label(i),
                            err.op,
                            err.expected
                        ),
                    )
                    .at(
                        parsed.span(&path),
                        format!("inputs here are {}", found.join(" and ")),
                    )
                    // The op's words without the shapes it found (listed below).
                    .expected_found(
                        err.expected.split(", found").next().unwrap_or_default(),
                        found.join(", "),
                    )
                    .hint(shape_hint(op.kind(), &shapes[w.inputs[0]])),
                );
                ok = false;
                break;
            }
            match result {
                Ok(next) if too_large(&shape, &next).is_some() => {
                    let message = too_large(&shape, &next).unwrap_or_default();
                    out.push(
                        Diagnostic::new(
                            "invalid-shape",
                            format!(
                                "{} ({}) of model `{name}` is too large: {message}",
                                w.label(i),
                                op.kind()
                            ),
                        )
                        .at(parsed.span(&path), "too large")
                        .expected_found(
                            format!("at most {MAX_SAMPLE_VALUES} values per sample"),
                            format!("{next:?}"),
                        )
                        .hint("check the layer's size attributes for a typo"),
                    );
                    ok = false;
                    break;
                }
                Ok(next) => {
                    layers.push(LayerShape {
                        name: w.name.clone(),
                        spec: layer.clone(),
                        inputs: w.inputs.iter().map(|&t| TensorId(t)).collect(),
                        describe: describe_layer(layer),
                        kind: op.kind(),
                        params: op
                            .params(&shape)
                            .into_iter()
                            .map(|p| (p.name, p.shape))
                            .collect(),
                        buffer_values: op.buffers(&shape).iter().map(|b| b.len()).sum(),
                        flops: op.forward_flops(&shape),
                        output: next.clone(),
                    });
                    shapes.push(next);
                }
                Err(err) => {
                    let previous = source(w.inputs[0]);
                    out.push(
                        Diagnostic::new(
                            "shape-mismatch",
                            format!("{} of model `{name}`: {err}", w.label(i)),
                        )
                        .at(parsed.span(&path), format!("input here is {:?}", err.found))
                        .expected_found(
                            err.expected.clone(),
                            format!("{:?} from {previous}", err.found),
                        )
                        .hint(shape_hint(op.kind(), &err.found)),
                    );
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            let shapes = ModelShapes {
                input: model.input.clone(),
                layers,
            };
            for (i, _, _) in shapes.embeddings().into_iter().filter(|e| e.1.is_none()) {
                // Not the input (that reads ids), so a layer's output.
                let t = shapes.layers[i].inputs[0].producer().unwrap_or_default();
                out.push(
                    Diagnostic::new(
                        "embedding-of-computed-values",
                        format!(
                            "{} (embedding) of model `{name}` reads {} ({}), not ids",
                            wired[i].label(i),
                            shapes.layer_label(t),
                            shapes.layers[t].kind
                        ),
                    )
                    .at(parsed.span(&wired[i].path), "ids come from the data")
                    .hint("an embedding reads the model's input, or a `slice` of it, where the data set declares those features as `ids:`"),
                );
            }
            models.insert(name.clone(), shapes);
        }
    }
    // Shapes along a cycle are meaningless; the cycle is reported instead.
    if acyclic {
        check_edges(parsed, graph, datasets, &models, out);
    }
    models
}

/// How to fix a layer that cannot take its input of shape `found`.
fn shape_hint(kind: &str, found: &[usize]) -> &'static str {
    let two_d = matches!(kind, "conv2d" | "max_pool2d" | "avg_pool2d");
    let one_d = matches!(kind, "conv1d" | "max_pool1d" | "avg_pool1d");
    match (kind, found.len()) {
        ("linear" | "layer_norm", _) => {
            "insert `- flatten` before it, or fix the model's `input` shape"
        }
        ("add" | "concat", 1) => {
            "make the inputs agree: e.g. a `linear` on the skip path to change its width"
        }
        ("add" | "concat", _) => {
            "make the inputs agree: e.g. a 1x1 `conv2d` on the skip path (with the same stride) to change its channels and size"
        }
        (_, 2) if two_d => {
            "a [channels, length] signal takes `conv1d`, `max_pool1d` and `avg_pool1d`; an image is [channels, height, width], e.g. [1, 28, 28]"
        }
        (_, 3) if two_d => {
            "keep the height and width at least the kernel's (less twice the padding): a smaller kernel, more padding, or fewer pools before it"
        }
        _ if two_d => {
            "declare the input as [channels, height, width], e.g. [1, 28, 28], and keep the spatial size >= the kernel"
        }
        (_, 3) if one_d => {
            "an image [channels, height, width] takes `conv2d` (a `kernel: [1, k]` conv2d slides along the width only)"
        }
        (_, 2) if one_d => {
            "keep the length at least the kernel's (less twice the padding): a smaller kernel, more padding, or fewer pools before it"
        }
        _ if one_d => "declare the input as [channels, length], e.g. [1, 128]",
        _ => {
            "check the shapes the layers before it produce (the message says where its input comes from)"
        }
    }
}

/// The first model of the chain of forwards that ends in `model`: walks back from a
/// forward stage of `model` through the forwards feeding it (itself when it reads a load,
/// or when no forward runs it). `None` when a forward on the way has no resolved input.
fn first_model<'p>(
    parsed: &'p ParsedPipeline,
    graph: &StageGraph,
    model: &'p str,
) -> Option<&'p str> {
    let stages = &parsed.pipeline.stages;
    let Some(mut at) = stages
        .iter()
        .position(|s| matches!(s, Stage::Forward(f) if f.model == model))
    else {
        return Some(model);
    };
    for _ in 0..stages.len() {
        match graph.source_of(at, "input").map(|(s, _)| (s, &stages[s])) {
            Some((source, Stage::Forward(_))) => at = source,
            Some(_) => break,
            None => return None,
        }
    }
    match &stages[at] {
        Stage::Forward(f) => Some(&f.model),
        _ => Some(model),
    }
}

/// Per-sample shape of a stage output, when known.
fn port_shape(
    parsed: &ParsedPipeline,
    datasets: &BTreeMap<String, DatasetInfo>,
    models: &BTreeMap<String, ModelShapes>,
    stage: usize,
    port: &str,
) -> Option<Vec<usize>> {
    match (&parsed.pipeline.stages[stage], port) {
        (Stage::Load(l), "features") => datasets.get(&l.dataset).map(|d| d.shape.clone()),
        (Stage::Load(_), "labels") => Some(vec![]),
        (Stage::Forward(f), _) => models.get(&f.model).map(|m| m.output().to_vec()),
        _ => None,
    }
}

/// The features each embedding of `model` reads are ids of data set `dataset` (fed by
/// stage `stage` through its `field`), within its `num_embeddings`.
#[allow(clippy::too_many_arguments)]
fn check_ids(
    parsed: &ParsedPipeline,
    stage: usize,
    field: &str,
    model_name: &str,
    model: &ModelShapes,
    dataset: &str,
    ds: &DatasetInfo,
    out: &mut Vec<Diagnostic>,
) {
    let ids_path = [
        Seg::Key("datasets".into()),
        Seg::Key(dataset.into()),
        Seg::Key("ids".into()),
    ];
    // An invalid declaration is reported where it is written.
    if ds.ids.is_some() && !ds.valid_ids() {
        return;
    }
    for (i, range, rows) in model.embeddings() {
        let Some(range) = range else { continue };
        let what = format!(
            "{} (embedding) of model `{model_name}` reads features {}..{} of data set `{dataset}`",
            model.layer_label(i),
            range.start,
            range.end
        );
        let stage_id = parsed.pipeline.stages[stage].id();
        match &ds.ids {
            None => out.push(
                Diagnostic::new("embedding-without-ids", format!("{what}, which declares no `ids:`"))
                    .at(parsed.span(&field_path(stage, field)), "features of this data set")
                    .stage(stage_id)
                    .hint(format!(
                        "declare them under `datasets.{dataset}`: `ids: {{start: {}, end: {}, count: <number of ids>}}` (ids are then checked and never normalised)",
                        range.start, range.end
                    )),
            ),
            Some(ids) if range.start < ids.start || range.end > ids.end => out.push(
                Diagnostic::new("embedding-without-ids", format!("{what}, but its ids are features {}..{}", ids.start, ids.end))
                    .at(parsed.span(&ids_path), "the id features")
                    .stage(stage_id)
                    .hint("slice the id features for the embedding (`slice: {start, end}` on the model's input), or widen `ids`"),
            ),
            Some(ids) if ids.count > rows => out.push(
                Diagnostic::new(
                    "embedding-too-small",
                    format!("{what}: ids in 0..{}, but its table has num_embeddings {rows}", ids.count),
                )
                .at(parsed.span(&[&ids_path[..], &[Seg::Key("count".into())]].concat()), format!("{} ids", ids.count))
                .stage(stage_id)
                .expected_found(format!("num_embeddings >= {}", ids.count), rows.to_string())
                .hint(format!("set the embedding's `num_embeddings: {}`", ids.count)),
            ),
            Some(_) => {}
        }
    }
}

fn check_edges(
    parsed: &ParsedPipeline,
    graph: &StageGraph,
    datasets: &BTreeMap<String, DatasetInfo>,
    models: &BTreeMap<String, ModelShapes>,
    out: &mut Vec<Diagnostic>,
) {
    // (model, data set) pairs whose ids are checked: a load and an eval feeding the same
    // data to a model are reported once.
    let mut ids_checked = std::collections::BTreeSet::new();
    for (i, stage) in parsed.pipeline.stages.iter().enumerate() {
        match stage {
            Stage::Forward(f) => {
                let Some(model) = models.get(&f.model) else {
                    continue;
                };
                let Some((src, port)) = graph.source_of(i, "input") else {
                    continue;
                };
                let Some(found) = port_shape(parsed, datasets, models, src, &port) else {
                    continue;
                };
                match &parsed.pipeline.stages[src] {
                    Stage::Load(load) => {
                        if let Some(ds) = datasets.get(&load.dataset)
                            && ids_checked.insert((f.model.as_str(), load.dataset.as_str()))
                        {
                            check_ids(parsed, i, "input", &f.model, model, &load.dataset, ds, out);
                        }
                    }
                    // Another model's output is computed: no ids for an embedding.
                    Stage::Forward(before) => {
                        for (layer, _, _) in
                            model.embeddings().into_iter().filter(|e| e.1.is_some())
                        {
                            out.push(
                                Diagnostic::new(
                                    "embedding-of-computed-values",
                                    format!(
                                        "{} (embedding) of model `{}` reads the model's input, which model `{}` computes, not ids",
                                        model.layer_label(layer),
                                        f.model,
                                        before.model
                                    ),
                                )
                                .at(parsed.span(&field_path(i, "input")), "computed, not ids")
                                .stage(stage.id())
                                .hint("an embedding reads ids from the data: feed this model from a `load` of a data set that declares them (`ids:`)"),
                            );
                        }
                    }
                    _ => {}
                }
                if numel(&found) != numel(&model.input) {
                    out.push(
                        Diagnostic::new(
                            "shape-mismatch",
                            format!("model `{}` expects input {:?} ({} values) but `{}` is {found:?} ({} values)", f.model, model.input, numel(&model.input), f.input, numel(&found)),
                        )
                        .at(parsed.span(&field_path(i, "input")), format!("this is {found:?}"))
                        .stage(stage.id())
                        .expected_found(format!("{:?} per sample", model.input), format!("{found:?} per sample"))
                        .hint(format!("set `models.{}.input` to {found:?} (a first layer then sees that shape)", f.model)),
                    );
                }
            }
            Stage::Loss(l) => {
                let Some((src, port)) = graph.source_of(i, "logits") else {
                    continue;
                };
                let Some(logits) = port_shape(parsed, datasets, models, src, &port) else {
                    continue;
                };
                let teacher = graph
                    .source_of(i, "teacher")
                    .and_then(|(t, port)| port_shape(parsed, datasets, models, t, &port));
                if let (Some(teacher), Some(t)) = (teacher, &l.teacher)
                    && teacher != logits
                {
                    out.push(
                        Diagnostic::new(
                            "shape-mismatch",
                            format!("the teacher `{t}` outputs {teacher:?} but the student `{}` {logits:?}", l.logits),
                        )
                        .at(parsed.span(&field_path(i, "teacher")), format!("this is {teacher:?}"))
                        .stage(stage.id())
                        .expected_found(format!("{logits:?}"), format!("{teacher:?}"))
                        .hint("distil from a teacher with the student's classes"),
                    );
                }
                // Cross entropy (and distillation) apply softmax to the logits themselves.
                if let Stage::Forward(f) = &parsed.pipeline.stages[src]
                    && let Some(last) = models.get(&f.model).and_then(|m| m.layers.last())
                    && last.kind == "softmax"
                    && l.function.row().applies_softmax
                {
                    out.push(
                        Diagnostic::new(
                            "softmax-before-loss",
                            format!(
                                "model `{}` ends in softmax, but `{}` applies softmax to its logits itself",
                                f.model,
                                l.function.as_str()
                            ),
                        )
                        .at(parsed.span(&field_path(i, "logits")), "probabilities, not logits")
                        .stage(stage.id())
                        .hint("end the model with `log_softmax` (cross entropy of log-probabilities equals that of the logits) or with its last linear layer"),
                    );
                }
                let ds = graph.source_of(i, "target").and_then(|(t, _)| {
                    match &parsed.pipeline.stages[t] {
                        Stage::Load(load) => datasets.get(&load.dataset),
                        _ => None,
                    }
                });
                let Some(ds) = ds else { continue };
                // A loss that does not fit the task is reported by the task check.
                let fits = ds.fits(l.function);
                let classes = ds.outputs();
                if fits && logits != [classes] {
                    let name = l.function.as_str();
                    let what = if ds.is_regression() {
                        "a regression loss needs one output per target column".to_string()
                    } else if l.function.row().targets.is_none() {
                        format!("{name} compares outputs with one-hot targets, one value per class")
                    } else {
                        format!("{name} needs one logit per class")
                    };
                    out.push(
                        Diagnostic::new(
                            "shape-mismatch",
                            format!(
                                "{what}: expected [{classes}] but `{}` is {logits:?}",
                                l.logits
                            ),
                        )
                        .at(
                            parsed.span(&field_path(i, "logits")),
                            format!("this is {logits:?}"),
                        )
                        .stage(stage.id())
                        .expected_found(
                            format!(
                                "[{classes}] ({} in the target's data set)",
                                ds.outputs_described()
                            ),
                            format!("{logits:?}"),
                        )
                        .hint(format!("end the model with `- linear: {{out: {classes}}}`")),
                    );
                }
            }
            Stage::Eval(e) => {
                let (Some(model), Some(ds)) = (models.get(&e.model), datasets.get(&e.dataset))
                else {
                    continue;
                };
                // The eval feeds the data to the first model of the chain its model ends
                // (unknown while the chain has a broken reference: reported already).
                let Some(first) = first_model(parsed, graph, &e.model) else {
                    continue;
                };
                let Some(first_shapes) = models.get(first) else {
                    continue;
                };
                if ids_checked.insert((first, e.dataset.as_str())) {
                    check_ids(
                        parsed,
                        i,
                        "dataset",
                        first,
                        first_shapes,
                        &e.dataset,
                        ds,
                        out,
                    );
                }
                let input = &first_shapes.input;
                if numel(&ds.shape) != numel(input) {
                    out.push(
                        Diagnostic::new("shape-mismatch", format!("model `{first}` expects input {input:?} but data set `{}` has samples of shape {:?}", e.dataset, ds.shape))
                            .at(parsed.span(&field_path(i, "dataset")), "samples of this data set")
                            .stage(stage.id())
                            .expected_found(format!("{input:?}"), format!("{:?}", ds.shape))
                            .hint("evaluate the model on data shaped like its training data"),
                    );
                } else if model.output() != [ds.outputs()] {
                    out.push(
                        Diagnostic::new(
                            "shape-mismatch",
                            format!(
                                "model `{}` outputs {:?} but data set `{}` has {}",
                                e.model,
                                model.output(),
                                e.dataset,
                                ds.outputs_described()
                            ),
                        )
                        .at(parsed.span(&field_path(i, "model")), "this model")
                        .stage(stage.id())
                        .expected_found(
                            format!("[{}]", ds.outputs()),
                            format!("{:?}", model.output()),
                        )
                        .hint(format!(
                            "end the model with `- linear: {{out: {}}}`",
                            ds.outputs()
                        )),
                    );
                }
            }
            _ => {}
        }
    }
}
