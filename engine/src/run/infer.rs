//! Using a trained model: `engine eval` and `engine predict`. A model is a checkpoint
//! directory, `latest` (the newest checkpoint of a run), or a file written by `engine
//! export`; its [`ModelCard`] says how to rebuild it and feed it, so neither command needs
//! the pipeline (evaluating on a split of the pipeline's data set reads the pipeline the
//! checkpoint stores).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ops::gpu::{DeviceRequest, Gpu};
use ops::loss::LossTargets;
use ops::train::{EvalStep, ModelParams, NamedTensor};

use crate::card::{CARD_FORMAT, ModelCard, TaskCard};
use crate::data::{Columns, CsvSource, Dataset, Normalizer, Split, Task};
use crate::diag::Sources;
use crate::spec::{EvalMetric, SplitName};

use super::checkpoint::{self, CheckpointError};
use super::evaluate::{EvalOutcome, evaluate_split};
use super::{RunError, io_error};

/// The metadata key of the card in an exported safetensors file.
pub const CARD_KEY: &str = "engine.card";
/// The metadata key of the resolved pipeline in an exported safetensors file.
pub const PIPELINE_KEY: &str = "engine.pipeline";

/// A trained model loaded from disk.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// Where it came from.
    pub origin: PathBuf,
    /// Cards of the models it holds (one per training chain).
    pub cards: Vec<ModelCard>,
    /// All its weights.
    pub weights: Vec<NamedTensor>,
    /// The resolved pipeline that trained it.
    pub resolved_pipeline: Option<String>,
}

/// Why a model could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The model file or checkpoint could not be read (exit 2).
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    /// The model or the data do not fit (exit 1): what differs, and a hint.
    #[error("{0}")]
    Mismatch(String),
    /// Running it failed.
    #[error("{0}")]
    Run(#[from] RunError),
}

impl From<crate::data::DataError> for InferError {
    fn from(e: crate::data::DataError) -> Self {
        InferError::Mismatch(e.to_string())
    }
}

impl From<ops::gpu::GpuError> for InferError {
    fn from(e: ops::gpu::GpuError) -> Self {
        InferError::Run(RunError::Gpu(e))
    }
}

/// The checkpoint `latest` means: the newest checkpoint under `run_dir` (a run's `--out`),
/// or, without one, under any run in `runs/`.
pub fn latest_checkpoint(run_dir: Option<&Path>) -> Result<PathBuf, InferError> {
    let runs: Vec<PathBuf> = match run_dir {
        Some(dir) => vec![dir.to_path_buf()],
        None => subdirs(Path::new("runs")),
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for run in &runs {
        for root in std::iter::once(run.clone()).chain(subdirs(run)) {
            if let Ok(path) = checkpoint::latest(&root)
                && let Ok(modified) = path.metadata().and_then(|m| m.modified())
            {
                found.push((modified, path));
            }
        }
    }
    found.sort();
    found.pop().map(|(_, p)| p).ok_or_else(|| {
        let place = run_dir.map_or("runs/".to_string(), |d| format!("`{}`", d.display()));
        InferError::Mismatch(format!(
            "no checkpoint found under {place} (hint: add a `checkpoint` callback to the pipeline, or name a checkpoint directory or an exported file)"
        ))
    })
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Loads a checkpoint directory (verified against its manifest) or an exported file.
pub fn load_model(path: &Path) -> Result<LoadedModel, InferError> {
    if path.is_dir() {
        let c = checkpoint::load(path)?;
        if c.cards.is_empty() {
            return Err(InferError::Mismatch(format!(
                "checkpoint `{}` holds no model card (model.json): it was written by an earlier version of the engine, or its model runs behind a frozen encoder (hint: train again to get one)",
                path.display()
            )));
        }
        return Ok(LoadedModel {
            origin: path.to_path_buf(),
            cards: c.cards,
            weights: c.weights,
            resolved_pipeline: Some(c.state.resolved_pipeline),
        });
    }
    if path.extension().is_some_and(|e| e == "onnx") {
        return Err(InferError::Mismatch(format!(
            "`{}` is an ONNX file, for other runtimes (onnxruntime, …); `engine eval` and `engine predict` read a checkpoint or the `.safetensors` export (hint: `engine export CHECKPOINT --out model.safetensors`)",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let weights = checkpoint::parse_safetensors(&bytes).map_err(corrupt)?;
    let metadata = checkpoint::safetensors_metadata(&bytes).map_err(corrupt)?;
    let card_text = metadata.get(CARD_KEY).ok_or_else(|| {
        InferError::Mismatch(format!(
            "`{}` carries no model card (metadata `{CARD_KEY}`): it holds weights only (hint: export a checkpoint with `engine export` to get a self-describing file)",
            path.display()
        ))
    })?;
    let card: ModelCard = serde_json::from_str(card_text)
        .map_err(|e| corrupt(format!("its model card does not parse: {e}")))?;
    Ok(LoadedModel {
        origin: path.to_path_buf(),
        cards: vec![card],
        weights,
        resolved_pipeline: metadata.get(PIPELINE_KEY).cloned(),
    })
}

impl LoadedModel {
    /// The card of model `name`, or the only (first) one.
    pub fn card(&self, name: Option<&str>) -> Result<&ModelCard, InferError> {
        let card = match name {
            None => self.cards.first(),
            Some(n) => self.cards.iter().find(|c| c.model == n),
        };
        let card = card.ok_or_else(|| {
            let names: Vec<String> = self
                .cards
                .iter()
                .map(|c| format!("`{}`", c.model))
                .collect();
            InferError::Mismatch(format!(
                "`{}` holds no model `{}`; it holds {}",
                self.origin.display(),
                name.unwrap_or(""),
                names.join(", ")
            ))
        })?;
        if card.format != CARD_FORMAT {
            return Err(InferError::Mismatch(format!(
                "the model card of `{}` has format {}, this engine reads format {CARD_FORMAT}",
                self.origin.display(),
                card.format
            )));
        }
        Ok(card)
    }
}

/// The model on the device with its weights, ready to run batches of `card.eval_batch`.
fn build(
    gpu: &Gpu,
    card: &ModelCard,
    weights: &[NamedTensor],
    origin: &Path,
) -> Result<EvalStep, InferError> {
    let params = ModelParams::new(gpu, &card.def, 0, card.layer_names.as_deref())?;
    let mut own = Vec::new();
    for slot in &params.model().slots {
        match weights.iter().find(|t| t.name == slot.name) {
            Some(t) if t.shape == slot.shape => own.push(t.clone()),
            Some(t) => {
                return Err(InferError::Mismatch(format!(
                    "`{}`: tensor `{}` has shape {:?} but model `{}` expects {:?}",
                    origin.display(),
                    slot.name,
                    t.shape,
                    card.model,
                    slot.shape
                )));
            }
            None => {
                return Err(InferError::Mismatch(format!(
                    "`{}` lacks tensor `{}` (shape {:?}) of model `{}`",
                    origin.display(),
                    slot.name,
                    slot.shape,
                    card.model
                )));
            }
        }
    }
    params.load(gpu, &own)?;
    Ok(EvalStep::for_params(
        gpu,
        &params,
        card.eval_loss.kind().map_err(InferError::Mismatch)?,
        card.eval_loss.class_weights().as_deref(),
        card.eval_batch.max(1),
    )?)
}

/// Reads a CSV file the way the model's training data was read: the same feature columns
/// (by name through the header, or by position), with its labels or targets when
/// `answers`, then applies the stored normalisation (and target scaling).
fn read_csv(card: &ModelCard, path: &Path, answers: bool) -> Result<Dataset, InferError> {
    let (Some(features), Some(answer)) = (&card.input.features, &card.input.answer) else {
        return Err(InferError::Mismatch(format!(
            "model `{}` was trained on {} data; `--data` reads CSV files, which only a model trained on CSV data knows the columns of (hint: evaluate it on a split with `--split`)",
            card.model, card.input.kind
        )));
    };
    let mut csv = CsvSource::new(path);
    csv.header = card.input.header;
    csv.features = features.clone();
    csv.shape = Some(card.input.shape.clone());
    csv.categorical = card.input.categorical.clone();
    match (&card.task, answers) {
        (
            TaskCard::Classify {
                classes,
                class_names,
            },
            true,
        ) => {
            csv.label = answer.clone();
            csv.task = Task::Classify {
                classes: Some(*classes),
            };
            csv.class_names = class_names.clone();
        }
        (TaskCard::Regress { .. }, true) => {
            csv.label = answer.clone();
            csv.task = Task::Regress;
        }
        (_, false) => {
            csv.label = Columns::List(Vec::new());
            csv.task = Task::Regress;
        }
    }
    let mut data = csv.load()?;
    let width = data.sample_len();
    let normalizer = card.normalize.normalizer(width).ok_or_else(|| {
        InferError::Mismatch(format!(
            "the model card's normalisation holds {} values, the model reads {width} features",
            card.normalize.offsets.len()
        ))
    })?;
    normalizer.apply(&mut data)?;
    if let (TaskCard::Regress { scaling, .. }, true) = (&card.task, answers) {
        target_scaling(card, scaling)?.apply_targets(&mut data)?;
    }
    Ok(data)
}

fn target_scaling(
    card: &ModelCard,
    scaling: &crate::card::Scaling,
) -> Result<Normalizer, InferError> {
    scaling.normalizer(card.task.outputs()).ok_or_else(|| {
        InferError::Mismatch(format!(
            "the model card's target scaling holds {} values, the model predicts {}",
            scaling.offsets.len(),
            card.task.outputs()
        ))
    })
}

/// What `engine eval` measured.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// The model's name.
    pub model: String,
    /// What was evaluated: `test split of iris` or a file.
    pub on: String,
    /// The metrics, in order.
    pub metrics: Vec<EvalMetric>,
    /// The numbers.
    pub outcome: EvalOutcome,
}

/// Every metric that fits the card's task.
fn all_metrics(card: &ModelCard) -> Vec<EvalMetric> {
    let (targets, classes) = match &card.task {
        TaskCard::Regress { .. } => (LossTargets::Values, 0),
        TaskCard::Classify { classes, .. } => (LossTargets::Classes, *classes),
    };
    EvalMetric::all()
        .filter(|m| m.fits(targets))
        .filter(|m| targets == LossTargets::Values || classes >= m.row().min_classes)
        .filter(|m| !m.row().binary_only || classes == 2)
        .collect()
}

/// `engine eval`: the model's metrics on a CSV file (`data`) or on a split of the data set
/// it was trained on, batched as its evals were (the same numbers as the run's eval).
pub fn eval_model(
    model: &LoadedModel,
    card: &ModelCard,
    data: Option<&Path>,
    split: SplitName,
    device: &DeviceRequest,
) -> Result<EvalReport, InferError> {
    let (dataset, on) = match data {
        Some(path) => (
            Split::whole(Arc::new(read_csv(card, path, true)?)),
            format!("`{}`", path.display()),
        ),
        None => (
            pipeline_split(model, card, split)?,
            format!("the {} split of the pipeline's data set", split.as_str()),
        ),
    };
    let gpu = Gpu::new(device)?;
    let mut step = build(&gpu, card, &model.weights, &model.origin)?;
    let scaling = match &card.task {
        TaskCard::Regress { scaling, .. } => target_scaling(card, scaling)?,
        TaskCard::Classify { .. } => Normalizer::identity(0),
    };
    let names: Vec<String> = (0..card.task.outputs())
        .map(|i| card.task.class_name(i))
        .collect();
    let metrics = all_metrics(card);
    let outcome = evaluate_split(
        &gpu,
        &mut step,
        &dataset,
        card.eval_batch.max(1),
        card.eval_loss.one_hot(),
        &metrics,
        &scaling,
        Some(&names),
    )?;
    Ok(EvalReport {
        model: card.model.clone(),
        on,
        metrics,
        outcome,
    })
}

/// A split of the data set the card's model trained on, loaded and normalised as the run
/// did (from the pipeline the checkpoint stores, relative to the pipeline's directory).
fn pipeline_split(
    model: &LoadedModel,
    card: &ModelCard,
    split: SplitName,
) -> Result<Split, InferError> {
    let text = model.resolved_pipeline.as_ref().ok_or_else(|| {
        InferError::Mismatch(format!(
            "`{}` stores no pipeline to find its data set in (hint: pass `--data FILE`)",
            model.origin.display()
        ))
    })?;
    let mut sources = Sources::default();
    let path = card
        .pipeline_dir
        .join(format!("{}.resolved.yaml", card.pipeline));
    let file = sources.add(path.display().to_string(), text.clone());
    let problems = |d: Vec<crate::diag::Diagnostic>| {
        InferError::Mismatch(format!(
            "the pipeline stored with the model no longer checks (its data moved?): {}",
            d.iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        ))
    };
    let parsed = crate::parse::parse_pipeline(&mut sources, file, &path, &[]).map_err(problems)?;
    let checked = crate::check::check_pipeline(parsed).map_err(problems)?;
    let plan = crate::plan::plan_pipeline(&checked);
    let chain = plan
        .chains
        .iter()
        .find(|c| c.model == card.model)
        .ok_or_else(|| {
            InferError::Mismatch(format!(
                "the stored pipeline trains no model `{}`",
                card.model
            ))
        })?;
    let prepared = crate::data::prepare(&plan.datasets[chain.dataset.0].config)?;
    let found = prepared.split(split).ok_or_else(|| {
        InferError::Mismatch(format!(
            "data set `{}` has no {} split (hint: choose another with `--split`, or pass `--data FILE`)",
            plan.datasets[chain.dataset.0].name,
            split.as_str()
        ))
    })?;
    Ok(found)
}

/// What `engine predict` wrote.
#[derive(Debug, Clone)]
pub struct PredictSummary {
    /// Samples predicted.
    pub rows: usize,
    /// The file written.
    pub out: PathBuf,
}

/// `engine predict`: runs the model on the raw rows of a CSV file (the columns its
/// training data had, unnormalised) and writes one prediction per row to `out` — CSV
/// (`.csv`) or JSON lines (`.jsonl`): the class name and per-class probabilities, or the
/// predicted values in the targets' units.
pub fn predict(
    model: &LoadedModel,
    card: &ModelCard,
    data: &Path,
    out: &Path,
    device: &DeviceRequest,
) -> Result<PredictSummary, InferError> {
    let jsonl = match out.extension().and_then(|e| e.to_str()) {
        Some("csv") => false,
        Some("jsonl") => true,
        _ => {
            return Err(InferError::Mismatch(format!(
                "`{}`: predictions are written as `.csv` or `.jsonl`; the extension says which",
                out.display()
            )));
        }
    };
    let dataset = read_csv(card, data, false)?;
    let gpu = Gpu::new(device)?;
    let mut step = build(&gpu, card, &model.weights, &model.origin)?;
    let batch = card.eval_batch.max(1);
    let width = dataset.sample_len();
    let outputs = card.task.outputs();
    let mut values = Vec::with_capacity(dataset.len() * outputs);
    for chunk in dataset.features.chunks(batch * width.max(1)) {
        let rows = chunk.len() / width.max(1);
        step.upload_batch(&gpu, chunk, &[], None, rows)?;
        step.record(&gpu)?;
        values.extend(step.read_outputs(&gpu)?);
    }
    let mut text = Vec::new();
    match &card.task {
        TaskCard::Classify { .. } => {
            let names: Vec<String> = (0..outputs).map(|i| card.task.class_name(i)).collect();
            if !jsonl {
                let header: Vec<String> =
                    names.iter().map(|n| format!("p_{}", csv_cell(n))).collect();
                writeln!(text, "row,class,{}", header.join(",")).map_err(io(out))?;
            }
            for (row, z) in values.chunks(outputs.max(1)).enumerate() {
                let p = crate::scores::softmax(z);
                let class = &names[crate::scores::argmax(z)];
                if jsonl {
                    let probabilities: BTreeMap<&str, f64> = names
                        .iter()
                        .map(String::as_str)
                        .zip(p.iter().copied())
                        .collect();
                    let record = serde_json::json!({"row": row, "class": class, "probabilities": probabilities});
                    writeln!(text, "{record}").map_err(io(out))?;
                } else {
                    let cells: Vec<String> = p.iter().map(|v| format!("{v:.6}")).collect();
                    writeln!(text, "{row},{},{}", csv_cell(class), cells.join(","))
                        .map_err(io(out))?;
                }
            }
        }
        TaskCard::Regress { targets, scaling } => {
            let scaling = target_scaling(card, scaling)?;
            let mut y: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
            scaling.invert(&mut y);
            if !jsonl {
                let header: Vec<String> = targets.iter().map(|t| csv_cell(t)).collect();
                writeln!(text, "row,{}", header.join(",")).map_err(io(out))?;
            }
            for (row, v) in y.chunks(outputs.max(1)).enumerate() {
                if jsonl {
                    let mut record = serde_json::Map::new();
                    record.insert("row".into(), row.into());
                    for (name, value) in targets.iter().zip(v) {
                        record.insert(name.clone(), (*value).into());
                    }
                    writeln!(text, "{}", serde_json::Value::Object(record)).map_err(io(out))?;
                } else {
                    let cells: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
                    writeln!(text, "{row},{}", cells.join(",")).map_err(io(out))?;
                }
            }
        }
    }
    std::fs::write(out, text).map_err(|source| InferError::Run(io_error(out)(source)))?;
    Ok(PredictSummary {
        rows: dataset.len(),
        out: out.to_path_buf(),
    })
}

fn io(out: &Path) -> impl Fn(std::io::Error) -> InferError + '_ {
    move |source| InferError::Run(io_error(out)(source))
}

/// A CSV cell: quoted when it holds a comma, a quote or a line break.
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// `engine export --format onnx`: the card's model as an ONNX graph (opset 17) with the
/// preprocessing folded in — input `features.raw` `[N, F]`, the raw features in the
/// columns the model was trained on; output `output` (logits, or values in the targets'
/// units) and, for classification, `probabilities` — and the card in its metadata
/// (`engine.card`). Returns the number of weight tensors written.
pub fn export_onnx(model: &LoadedModel, card: &ModelCard, out: &Path) -> Result<usize, InferError> {
    let mut seq = ops::model::Sequential::new(&card.def).map_err(InferError::Mismatch)?;
    if let Some(names) = &card.layer_names {
        seq.rename_layers(names).map_err(InferError::Mismatch)?;
    }
    let features: usize = seq.input.iter().product();
    let normalizer = card.normalize.normalizer(features).ok_or_else(|| {
        InferError::Mismatch(format!(
            "the model card's normalisation holds {} values, the model reads {features} features",
            card.normalize.offsets.len()
        ))
    })?;
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let mut processing = ops::onnx::Processing::default();
    if !normalizer.is_identity() {
        processing.input_offsets = f32s(normalizer.offsets());
        processing.input_factors = f32s(normalizer.factors());
    }
    match &card.task {
        TaskCard::Classify { .. } => processing.probabilities = true,
        TaskCard::Regress { scaling, .. } => {
            let scaling = target_scaling(card, scaling)?;
            if !scaling.is_identity() {
                processing.output = Some((f32s(scaling.offsets()), f32s(scaling.factors())));
            }
        }
    }
    let card_json = serde_json::to_string(card).map_err(|e| InferError::Mismatch(e.to_string()))?;
    let metadata = vec![
        (CARD_KEY.to_string(), card_json),
        (
            "engine.pipeline_hash".to_string(),
            card.pipeline_hash.clone(),
        ),
    ];
    let bytes = ops::onnx::export(&seq, &model.weights, &processing, &metadata).map_err(|e| {
        InferError::Mismatch(format!(
            "model `{}` cannot be written as ONNX: {e}",
            card.model
        ))
    })?;
    std::fs::write(out, bytes).map_err(io(out))?;
    Ok(seq.slots.len())
}
