//! Checkpoints: weights as safetensors plus the full training state, written atomically
//! and verified by checksums on load. Layout of one checkpoint directory
//! `<out>/<dir>/step-00000123/` (documented in docs/checkpoints.md):
//!
//! - `weights.safetensors` — parameters, named `layers.<i>.<weight|bias|gamma|beta>`
//! - `optimizer.safetensors` — optimizer moments, `optimizer.step`, and the partially
//!   accumulated gradients (`grads.<param>`)
//! - `best.safetensors` — best weights kept for `early_stopping.restore_best` (optional)
//! - `state.json` — [`TrainingState`]: position, accumulators, callback state, pipeline
//! - `model.json` — the trained models' [`ModelCard`]s (graph, columns, normalisation,
//!   classes or targets), for `engine eval`, `engine predict` and `engine export`
//! - `manifest.json` — SHA-256 and size of every other file; written last

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use ops::train::NamedTensor;

use crate::card::ModelCard;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a checkpoint could not be written, found or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file could not be read or written.
    #[error("checkpoint I/O on `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The checkpoint is truncated, altered or malformed; it is not loaded.
    #[error("checkpoint `{path}` is corrupt: {reason}")]
    Corrupt {
        /// The checkpoint directory.
        path: PathBuf,
        /// What failed to verify.
        reason: String,
    },
    /// No checkpoint where one was asked for.
    #[error("no checkpoint found in `{0}`")]
    NotFound(PathBuf),
}

/// Sums of device metrics kept on the host between reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricSums {
    /// Sum of per-sample losses.
    pub loss_sum: f64,
    /// Correct top-1 predictions.
    pub correct: u64,
    /// Correct top-5 predictions.
    pub top5_correct: u64,
    /// Samples.
    pub samples: u64,
    /// Gradient norm at the last update.
    pub last_grad_norm: f32,
}

/// Everything besides tensors that an exact resume needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Layout version of this file.
    pub format: u32,
    /// Pipeline name.
    pub pipeline: String,
    /// Hash of the resolved pipeline.
    pub pipeline_hash: String,
    /// The resolved pipeline (YAML).
    pub resolved_pipeline: String,
    /// Optimizer steps of the lead chain (the run's step clock).
    pub step: u64,
    /// Micro-batches of the lead chain.
    pub micro: u64,
    /// Epoch the next batch belongs to.
    pub epoch: u64,
    /// Where each training chain stands, in plan order.
    pub chains: Vec<ChainState>,
    /// Lines of `metrics.jsonl` written when this checkpoint was taken.
    pub metrics_lines: u64,
    /// Callback state (early stopping counters, last metrics), as JSON.
    pub callbacks: serde_json::Value,
    /// Monitored metric for `keep_best`, when configured.
    pub monitor: Option<f64>,
    /// Whether a larger monitored metric is better.
    pub monitor_max: Option<bool>,
    /// Run seed.
    pub seed: u64,
    /// The trigger the checkpoint was taken at (`epoch_end`, `every 3 steps`, ...). A
    /// resumed run does not fire it again where the position does not move past it
    /// (`fit_start`, `epoch_start`, `batch_start`, `fit_end`).
    #[serde(default)]
    pub taken_at: String,
    /// Ranks of the data-parallel job that saved it (1: one process); a resume needs as
    /// many.
    #[serde(default = "one_rank")]
    pub ranks: usize,
}

/// Where one training chain stands: with its device tensors, all it needs to continue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainState {
    /// The chain's name (its step stage).
    pub name: String,
    /// Optimizer steps completed.
    pub step: u64,
    /// Micro-batches completed (seeds dropout: the dropout stream is a counter-based hash
    /// of (seed, layer, micro-batch, element), so this is its whole state).
    pub micro: u64,
    /// Index of the next batch within the current epoch (the epoch's order is a pure
    /// function of (seed, epoch), so this is the shuffle stream's whole state).
    pub next_batch: usize,
    /// Training samples processed.
    pub samples: u64,
    /// Micro-batches in the current accumulation group.
    pub accumulation_micro: u32,
    /// Samples in the current accumulation group.
    pub accumulation_rows: usize,
    /// Training metric sums since the last report of each `every_n_steps` period.
    pub windows: BTreeMap<u64, MetricSums>,
    /// Training metric sums of the current epoch.
    pub epoch_sums: MetricSums,
    /// Gradient norm at the last read of the device sums.
    pub last_grad_norm: f32,
}

/// A checkpoint's tensors and state.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Training state.
    pub state: TrainingState,
    /// Parameters.
    pub weights: Vec<NamedTensor>,
    /// Optimizer state tensors.
    pub optimizer: Vec<NamedTensor>,
    /// Accumulated gradients.
    pub grads: Vec<NamedTensor>,
    /// Best weights, when early stopping keeps them.
    pub best: Option<Vec<NamedTensor>>,
    /// The cards of its trained models (`model.json`; absent in checkpoints of earlier
    /// versions).
    pub cards: Vec<ModelCard>,
}

/// One checkpoint found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointInfo {
    /// Its directory.
    pub path: PathBuf,
    /// Optimizer step.
    pub step: u64,
    /// Epoch of the next batch.
    pub epoch: u64,
    /// Micro-batches done.
    pub micro: u64,
    /// Monitored metric, when configured.
    pub monitor: Option<f64>,
    /// Whether a larger monitored metric is better.
    pub maximize: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    files: Vec<ManifestEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestEntry {
    name: String,
    bytes: u64,
    sha256: String,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Serialises named f32 tensors as safetensors bytes.
pub fn safetensors_bytes(tensors: &[NamedTensor]) -> Result<Vec<u8>, String> {
    safetensors_bytes_with(tensors, BTreeMap::new())
}

/// The `__metadata__` strings of safetensors bytes (empty when there are none).
pub fn safetensors_metadata(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    Ok(metadata
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default())
}

/// Serialises named f32 tensors as safetensors bytes with `metadata` strings.
pub fn safetensors_bytes_with(
    tensors: &[NamedTensor],
    metadata: BTreeMap<String, String>,
) -> Result<Vec<u8>, String> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.shape.clone(),
                bytemuck::cast_slice(&t.data).to_vec(),
            )
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let metadata = (!metadata.is_empty()).then(|| metadata.into_iter().collect());
    safetensors::tensor::serialize(views, metadata).map_err(|e| e.to_string())
}

/// Parses safetensors bytes of f32 tensors, in name order.
pub fn parse_safetensors(bytes: &[u8]) -> Result<Vec<NamedTensor>, String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out: Vec<NamedTensor> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            if view.dtype() != Dtype::F32 {
                return Err(format!(
                    "tensor `{name}` is {:?}, expected F32",
                    view.dtype()
                ));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Ok(NamedTensor {
                name,
                shape: view.shape().to_vec(),
                data,
            })
        })
        .collect::<Result<_, String>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut file = File::create(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// The directory name a checkpoint of `state` is saved under: `step-00000450`, or with the
/// micro-batch count when hooks inside a batch can save several times per optimizer step.
pub fn dir_name(state: &TrainingState) -> String {
    let in_batch = [
        "batch_start",
        "after_forward",
        "after_backward",
        "batch_end",
    ]
    .contains(&state.taken_at.as_str());
    if in_batch {
        format!("step-{:08}-micro-{:08}", state.step, state.micro)
    } else {
        format!("step-{:08}", state.step)
    }
}

/// Writes a checkpoint under `root` as `step-<step>`: into a temporary directory first,
/// every file fsynced, then renamed into place, so a crash never leaves a half-written
/// checkpoint under a real name.
pub fn save(root: &Path, checkpoint: &Checkpoint) -> Result<PathBuf, CheckpointError> {
    fs::create_dir_all(root).map_err(io(root))?;
    let name = dir_name(&checkpoint.state);
    let tmp = root.join(format!(".tmp-{name}"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: tmp.clone(),
        reason,
    };
    let mut optimizer = checkpoint.optimizer.clone();
    optimizer.extend(checkpoint.grads.iter().map(|g| NamedTensor {
        name: format!("grads.{}", g.name),
        ..g.clone()
    }));
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (
            "weights.safetensors",
            safetensors_bytes(&checkpoint.weights).map_err(corrupt)?,
        ),
        (
            "optimizer.safetensors",
            safetensors_bytes(&optimizer).map_err(corrupt)?,
        ),
        (
            "state.json",
            serde_json::to_vec_pretty(&checkpoint.state).map_err(|e| corrupt(e.to_string()))?,
        ),
    ];
    if let Some(best) = &checkpoint.best {
        files.push((
            "best.safetensors",
            safetensors_bytes(best).map_err(corrupt)?,
        ));
    }
    if !checkpoint.cards.is_empty() {
        files.push((
            "model.json",
            serde_json::to_vec_pretty(&checkpoint.cards).map_err(|e| corrupt(e.to_string()))?,
        ));
    }
    let mut manifest = Manifest { files: Vec::new() };
    for (file, bytes) in &files {
        write_synced(&tmp.join(file), bytes)?;
        manifest.files.push(ManifestEntry {
            name: (*file).to_string(),
            bytes: bytes.len() as u64,
            sha256: hex(bytes),
        });
    }
    let manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| corrupt(e.to_string()))?;
    write_synced(&tmp.join("manifest.json"), &manifest_bytes)?;
    let target = root.join(&name);
    if target.exists() {
        fs::remove_dir_all(&target).map_err(io(&target))?;
    }
    fs::rename(&tmp, &target).map_err(io(&target))?;
    if let Ok(dir) = File::open(root) {
        let _ = dir.sync_all();
    }
    Ok(target)
}

/// Loads a checkpoint directory, verifying every file against the manifest first.
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let manifest_path = path.join("manifest.json");
    if !manifest_path.exists() {
        return Err(if path.exists() {
            corrupt("manifest.json is missing (the save did not finish)".into())
        } else {
            CheckpointError::NotFound(path.to_path_buf())
        });
    }
    let manifest: Manifest =
        serde_json::from_slice(&fs::read(&manifest_path).map_err(io(&manifest_path))?)
            .map_err(|e| corrupt(format!("manifest.json: {e}")))?;
    let read = |name: &str| -> Result<Option<Vec<u8>>, CheckpointError> {
        let Some(entry) = manifest.files.iter().find(|f| f.name == name) else {
            return Ok(None);
        };
        let file = path.join(name);
        let bytes = fs::read(&file).map_err(io(&file))?;
        if bytes.len() as u64 != entry.bytes {
            return Err(corrupt(format!(
                "{name} has {} bytes, the manifest says {}",
                bytes.len(),
                entry.bytes
            )));
        }
        if hex(&bytes) != entry.sha256 {
            return Err(corrupt(format!(
                "{name} does not match its SHA-256 checksum"
            )));
        }
        Ok(Some(bytes))
    };
    let required = |bytes: Option<Vec<u8>>, name: &str| {
        bytes.ok_or_else(|| corrupt(format!("{name} is not in the manifest")))
    };
    let weights = parse_safetensors(&required(
        read("weights.safetensors")?,
        "weights.safetensors",
    )?)
    .map_err(&corrupt)?;
    let all_optimizer = parse_safetensors(&required(
        read("optimizer.safetensors")?,
        "optimizer.safetensors",
    )?)
    .map_err(&corrupt)?;
    let state: TrainingState =
        serde_json::from_slice(&required(read("state.json")?, "state.json")?)
            .map_err(|e| corrupt(format!("state.json: {e}")))?;
    let best = read("best.safetensors")?
        .map(|b| parse_safetensors(&b))
        .transpose()
        .map_err(&corrupt)?;
    let cards: Vec<ModelCard> = read("model.json")?
        .map(|b| serde_json::from_slice(&b))
        .transpose()
        .map_err(|e| corrupt(format!("model.json: {e}")))?
        .unwrap_or_default();
    let (grads, optimizer): (Vec<_>, Vec<_>) = all_optimizer
        .into_iter()
        .partition(|t| t.name.starts_with("grads."));
    let grads = grads
        .into_iter()
        .map(|g| NamedTensor {
            name: g.name.strip_prefix("grads.").unwrap_or(&g.name).to_string(),
            ..g
        })
        .collect();
    Ok(Checkpoint {
        state,
        weights,
        optimizer,
        grads,
        best,
        cards,
    })
}

/// Weights from a checkpoint directory (verified) or a `.safetensors` file (as written by
/// `engine export`).
pub fn load_weights(path: &Path) -> Result<Vec<NamedTensor>, CheckpointError> {
    if path.is_dir() {
        return Ok(load(path)?.weights);
    }
    let bytes = fs::read(path).map_err(io(path))?;
    parse_safetensors(&bytes).map_err(|reason| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })
}

/// Checkpoints under `root` whose save finished (they have a manifest), oldest first.
pub fn list(root: &Path) -> Result<Vec<CheckpointInfo>, CheckpointError> {
    let mut found = Vec::new();
    let entries = fs::read_dir(root).map_err(io(root))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("step-") || !path.join("manifest.json").exists() {
            continue;
        }
        let state_path = path.join("state.json");
        let state: Option<TrainingState> = fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match state {
            Some(s) => found.push(CheckpointInfo {
                path,
                micro: s.micro,
                step: s.step,
                epoch: s.epoch,
                monitor: s.monitor,
                maximize: s.monitor_max,
            }),
            None => found.push(CheckpointInfo {
                path,
                micro: 0,
                step: name[5..].parse().unwrap_or(0),
                epoch: 0,
                monitor: None,
                maximize: None,
            }),
        }
    }
    found.sort_by_key(|c| (c.step, c.micro));
    Ok(found)
}

/// The newest checkpoint under `root` that verifies; newer corrupt ones are skipped with
/// a warning on stderr.
pub fn latest(root: &Path) -> Result<PathBuf, CheckpointError> {
    for info in list(root)?.into_iter().rev() {
        match load(&info.path) {
            Ok(_) => return Ok(info.path),
            Err(e) => eprintln!("warning: skipping {e}"),
        }
    }
    Err(CheckpointError::NotFound(root.to_path_buf()))
}

/// The best checkpoint by its monitored metric.
pub fn best(infos: &[CheckpointInfo], maximize: bool) -> Option<&CheckpointInfo> {
    infos
        .iter()
        .filter(|c| c.monitor.is_some_and(f64::is_finite))
        .max_by(|a, b| {
            let (x, y) = (a.monitor.unwrap_or(0.0), b.monitor.unwrap_or(0.0));
            let order = x.total_cmp(&y);
            let order = if maximize { order } else { order.reverse() };
            order.then(a.step.cmp(&b.step))
        })
}

/// Deletes all but the newest `keep_last` checkpoints, always keeping the best one.
pub fn prune(
    root: &Path,
    keep_last: Option<u32>,
    keep_best_max: Option<bool>,
) -> Result<(), CheckpointError> {
    let Some(keep) = keep_last else { return Ok(()) };
    let infos = list(root)?;
    let best_path = keep_best_max
        .and_then(|max| best(&infos, max))
        .map(|c| c.path.clone());
    let cut = infos.len().saturating_sub(keep as usize);
    for info in &infos[..cut] {
        if Some(&info.path) != best_path.as_ref() {
            fs::remove_dir_all(&info.path).map_err(io(&info.path))?;
        }
    }
    Ok(())
}

/// What `engine export` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// Tensors written.
    pub tensors: usize,
    /// The model whose card the file carries (`None`: a checkpoint without a card, weights
    /// only).
    pub model: Option<String>,
}

/// Writes a checkpoint's verified weights as a safetensors file (atomically). With a model
/// card (checkpoints since cards exist) the file holds that model's tensors and carries
/// the card and the resolved pipeline in its metadata (`engine.card`, `engine.pipeline`),
/// so `engine predict` and `engine eval` work from it alone. `model` picks one model of a
/// run that trains several (default: the first).
pub fn export(
    checkpoint: &Path,
    out: &Path,
    model: Option<&str>,
) -> Result<Exported, CheckpointError> {
    let loaded = load(checkpoint)?;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: checkpoint.to_path_buf(),
        reason,
    };
    let card = match model {
        None => loaded.cards.first(),
        Some(name) => Some(
            loaded
                .cards
                .iter()
                .find(|c| c.model == name)
                .ok_or_else(|| {
                    CheckpointError::NotFound(checkpoint.join(format!("model `{name}`")))
                })?,
        ),
    };
    let (weights, metadata) = match card {
        None => (loaded.weights.clone(), BTreeMap::new()),
        Some(card) => {
            let mut seq = ops::model::Sequential::new(&card.def).map_err(&corrupt)?;
            if let Some(names) = &card.layer_names {
                seq.rename_layers(names).map_err(&corrupt)?;
            }
            let weights: Vec<NamedTensor> = loaded
                .weights
                .iter()
                .filter(|t| seq.slots.iter().any(|s| s.name == t.name))
                .cloned()
                .collect();
            let mut metadata = BTreeMap::new();
            metadata.insert(
                super::infer::CARD_KEY.to_string(),
                serde_json::to_string(card).map_err(|e| corrupt(e.to_string()))?,
            );
            metadata.insert(
                super::infer::PIPELINE_KEY.to_string(),
                loaded.state.resolved_pipeline.clone(),
            );
            metadata.insert(
                "engine.pipeline_hash".to_string(),
                card.pipeline_hash.clone(),
            );
            (weights, metadata)
        }
    };
    let bytes = safetensors_bytes_with(&weights, metadata).map_err(corrupt)?;
    let tmp = out.with_extension("safetensors.tmp");
    write_synced(&tmp, &bytes)?;
    fs::rename(&tmp, out).map_err(io(out))?;
    Ok(Exported {
        tensors: weights.len(),
        model: card.map(|c| c.model.clone()),
    })
}

fn one_rank() -> usize {
    1
}
