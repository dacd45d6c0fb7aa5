//! The `engine` command line, as a library function so that a binary with its own
//! extensions (see [`crate::extend`]) runs the same commands.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::diag::{Sources, render};
use crate::{LoadError, load_pipeline};
use clap::{Parser, Subcommand, ValueEnum};

/// A declarative training engine: YAML pipelines validated as a graph, planned, and run
/// on WGSL compute shaders.
#[derive(Parser)]
#[command(name = "engine", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check pipelines and report every problem. Exit 0 valid, 1 invalid, 2 usage or I/O.
    Validate {
        /// Pipeline files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override a value by its YAML path, e.g. `stages.step.optimizer.lr=0.01`.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
        set: Vec<String>,
    },
    /// Print the execution plan: order, shapes, parameters, memory, LR and kernels.
    Plan {
        /// Pipeline file.
        file: PathBuf,
        /// Override a value by its YAML path.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
        set: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also build every chain and eval on the adapter and list the exact dispatches of
        /// one step and one eval batch (kernel, grid, bound buffers).
        #[arg(long)]
        dispatches: bool,
        /// Adapter for `--dispatches`: auto, vulkan, gl, or part of an adapter name.
        #[arg(long)]
        device: Option<String>,
        /// Federated pipelines: also load the train split and list every client's samples
        /// and label histogram.
        #[arg(long)]
        partition: bool,
        /// Show the plan as `mpirun -np N engine run` runs it (data parallel over N ranks).
        #[arg(long, value_name = "N", default_value_t = 1)]
        ranks: usize,
    },
    /// Print the stage graph (or, with --model, a model's layers) as Graphviz DOT.
    Graph {
        /// Pipeline file.
        file: PathBuf,
        /// Draw this model's nodes and the tensors they read instead of the stages.
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
        /// Override a value by its YAML path.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
        set: Vec<String>,
    },
    /// Print the pipeline JSON Schema (for editors).
    Schema,
    /// Train: run the pipeline end to end and write metrics to the output directory.
    Run {
        /// Pipeline file.
        file: PathBuf,
        /// Override a value by its YAML path.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
        set: Vec<String>,
        /// Adapter: `auto`, `vulkan`, `gl`, `cpu` (native, no GPU drivers), or part of an adapter name (`engine devices`).
        #[arg(long)]
        device: Option<String>,
        /// Output directory [default: runs/<pipeline name>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print only errors and the final summary.
        #[arg(long)]
        quiet: bool,
        /// Continue exactly from a checkpoint directory, or `latest` in the output directory.
        #[arg(long, value_name = "PATH|latest", conflicts_with = "init_from")]
        resume: Option<String>,
        /// Start from the weights of a checkpoint directory or a `.safetensors` file, with a
        /// fresh optimizer and schedule (fine-tuning, e.g. on another split).
        #[arg(long, value_name = "PATH")]
        init_from: Option<PathBuf>,
        /// Let `exec` callbacks run their commands (`engine plan` lists them); without it a
        /// pipeline with one is refused.
        #[arg(long)]
        allow_exec: bool,
        /// Under mpirun: how long a rank waits for the others at a gradient exchange before
        /// it ends the job, naming the ranks that did not answer.
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        rank_timeout: u64,
    },
    /// List the checkpoints in a directory with step, epoch and metric; marks latest and best.
    Checkpoints {
        /// A checkpoint directory (e.g. runs/<name>/checkpoints).
        dir: PathBuf,
    },
    /// Write a checkpoint's trained model as a self-describing safetensors file: its
    /// weights, and in the metadata its graph, columns, normalisation, classes or targets
    /// and pipeline (`engine predict` and `engine eval` work from the file alone).
    Export {
        /// Checkpoint directory (e.g. runs/<name>/checkpoints/step-00000450), or `latest`.
        checkpoint: String,
        /// Output file; its extension must agree with `--format`.
        #[arg(long)]
        out: PathBuf,
        /// File format [default: from the extension of `--out`].
        #[arg(long, value_enum)]
        format: Option<ExportFormat>,
        /// The model to export when the run trains several (default: the first).
        #[arg(long)]
        model_name: Option<String>,
        /// With `latest`: the run directory to look in [default: every run under runs/].
        #[arg(long)]
        run: Option<PathBuf>,
    },
    /// Evaluate a trained model: loss, accuracy, precision/recall/F1 per class, confusion
    /// matrix, ROC AUC (binary), or MAE/RMSE/R² (regression).
    Eval {
        /// A checkpoint directory, `latest`, or a file written by `engine export`.
        model: String,
        /// A CSV file with the columns the model was trained on, labels or targets included
        /// [default: the `--split` of the pipeline's data set].
        #[arg(long)]
        data: Option<PathBuf>,
        /// The split of the pipeline's data set to evaluate on.
        #[arg(long, value_enum, default_value_t = SplitArg::Test)]
        split: SplitArg,
        /// The model, when the run trains several.
        #[arg(long)]
        model_name: Option<String>,
        /// With `latest`: the run directory to look in [default: every run under runs/].
        #[arg(long)]
        run: Option<PathBuf>,
        /// Adapter: `auto`, `vulkan`, `gl`, `cpu`, or part of an adapter name.
        #[arg(long)]
        device: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Predict with a trained model on raw data (the columns it was trained on, not
    /// normalised): class names and probabilities, or values, one row per sample.
    Predict {
        /// A checkpoint directory, `latest`, or a file written by `engine export`.
        model: String,
        /// The CSV file to predict on.
        #[arg(long)]
        data: PathBuf,
        /// Output file, `.csv` or `.jsonl`.
        #[arg(long, default_value = "predictions.csv")]
        out: PathBuf,
        /// The model, when the run trains several.
        #[arg(long)]
        model_name: Option<String>,
        /// With `latest`: the run directory to look in [default: every run under runs/].
        #[arg(long)]
        run: Option<PathBuf>,
        /// Adapter: `auto`, `vulkan`, `gl`, `cpu`, or part of an adapter name.
        #[arg(long)]
        device: Option<String>,
    },
    /// List GPU adapters with backend, type and key limits.
    Devices,
    /// Write DIR/report.html from a run directory's metrics, pipeline, plan and run summary.
    Report {
        /// Run output directory (the `--out` of `engine run`).
        dir: PathBuf,
    },
    /// Time the pipeline's training step: samples/s, ms/step, first-step latency,
    /// GFLOP/s, submissions and read-backs per step, and a standalone matmul.
    Bench {
        /// Pipeline file.
        file: PathBuf,
        /// Override a value by its YAML path.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
        set: Vec<String>,
        /// Adapter: `auto`, `vulkan`, `gl`, `cpu`, or part of an adapter name.
        #[arg(long)]
        device: Option<String>,
        /// Timed steps per repetition.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// Untimed warm-up steps.
        #[arg(long, default_value_t = 20)]
        warmup: u32,
        /// Repetitions (the median is reported).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        repeats: u32,
        /// Timed rounds per repetition of a federated pipeline.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Keep the drivers' on-disk shader caches. By default `bench` turns them off for
        /// itself, so that the first step includes compiling every kernel, as on a fresh
        /// machine.
        #[arg(long)]
        warm_cache: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    /// safetensors with the model card in its metadata (`.safetensors`).
    Safetensors,
    /// An ONNX graph (opset 17) with the normalisation folded in (`.onnx`).
    Onnx,
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Train,
    Val,
    Test,
}

impl SplitArg {
    fn name(self) -> crate::spec::SplitName {
        use crate::spec::SplitName;
        match self {
            SplitArg::Train => SplitName::Train,
            SplitArg::Val => SplitName::Val,
            SplitArg::Test => SplitName::Test,
        }
    }
}

/// A checkpoint directory, an exported file, or `latest`.
fn model_path(model: &str, run: Option<&std::path::Path>) -> Result<PathBuf, String> {
    if model == "latest" {
        let path = crate::run::infer::latest_checkpoint(run).map_err(|e| e.to_string())?;
        // Several runs may hold checkpoints: say which one `latest` is.
        eprintln!("latest: {}", path.display());
        return Ok(path);
    }
    let path = PathBuf::from(model);
    let is_checkpoint_dir = path.file_name().is_some_and(|n| {
        n.to_string_lossy().starts_with("step-") || path.join("manifest.json").exists()
    });
    if path.is_dir() && !is_checkpoint_dir {
        // A run directory or its checkpoints folder: name what to pass instead.
        return Err(match crate::run::infer::latest_checkpoint(Some(&path)) {
            Ok(newest) => format!(
                "`{model}` holds checkpoints but is not one; pass one of them, e.g. `{}` (the newest), or `latest --run {model}`",
                newest.display()
            ),
            Err(_) => format!(
                "`{model}` is a directory without a checkpoint in it (give a checkpoint directory such as runs/<name>/checkpoints/step-00000450, a file written by `engine export`, or `latest`)"
            ),
        });
    }
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "`{model}` does not exist (give a checkpoint directory, a file written by `engine export`, or `latest`)"
        ))
    }
}

/// Loads `model` (a path or `latest`), picks its card and runs `f` on the device asked
/// for; a failure comes with its exit code.
fn with_model<T>(
    model: &str,
    run: Option<&std::path::Path>,
    name: Option<&str>,
    device: Option<&str>,
    f: impl FnOnce(
        &crate::run::infer::LoadedModel,
        &crate::card::ModelCard,
        &ops::gpu::DeviceRequest,
    ) -> Result<T, crate::run::infer::InferError>,
) -> Result<T, (u8, String)> {
    let failed = |e: crate::run::infer::InferError| (infer_exit(&e), e.to_string());
    let path = model_path(model, run).map_err(|e| (2, e))?;
    let loaded = crate::run::infer::load_model(&path).map_err(failed)?;
    let card = loaded.card(name).map_err(failed)?;
    let request = device.map(device_request).unwrap_or_default();
    f(&loaded, card, &request).map_err(failed)
}

/// Exit code of a failed eval or predict: 1 for a model or data that does not fit, 2 for
/// I/O and the device.
fn infer_exit(e: &crate::run::infer::InferError) -> u8 {
    use crate::run::infer::InferError;
    match e {
        InferError::Mismatch(_) => 1,
        InferError::Checkpoint(crate::run::checkpoint::CheckpointError::Corrupt { .. }) => 1,
        InferError::Run(crate::run::RunError::Data(_)) => 1,
        _ => 2,
    }
}

fn print_eval(report: &crate::run::infer::EvalReport) {
    let m = &report.outcome.summary;
    println!("model {} on {}", report.model, report.on);
    println!("{}", crate::run::describe_eval("eval", &report.metrics, m));
    if let Some(r) = &report.outcome.report {
        let width = r
            .per_class
            .iter()
            .map(|c| c.class.len())
            .max()
            .unwrap_or(5)
            .max(5);
        println!(
            "{:<width$}  {:>9}  {:>9}  {:>9}  {:>7}",
            "class", "precision", "recall", "f1", "support"
        );
        for c in &r.per_class {
            println!(
                "{:<width$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>7}",
                c.class, c.precision, c.recall, c.f1, c.support
            );
        }
        println!("confusion (rows: actual, columns: predicted)");
        for (c, line) in r.per_class.iter().zip(&r.confusion) {
            let cells: Vec<String> = line.iter().map(|n| format!("{n:>6}")).collect();
            println!("{:<width$}  {}", c.class, cells.join(""));
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Runs the command line on this process's arguments; the exit code to return from `main`.
/// Call it before the program starts any thread (see [`crate::Engine::main`]).
pub fn main() -> ExitCode {
    #[cfg(unix)]
    // SAFETY: restores the default action for SIGPIPE before any thread starts, so that
    // `engine plan p.yaml | head` ends quietly, as Unix tools do, instead of panicking
    // on the closed pipe.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: set before any thread starts. Mesa's GL and Vulkan drivers print a
        // warning on every start without it; the directory is only used for sockets.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
    // Before anything uses rayon: ranks started side by side on this host share its cores.
    if let Err(e) = crate::ranks::share_host_cores() {
        eprintln!("warning: {e}");
    }
    let cli = Cli::parse();
    if let Command::Bench {
        warm_cache: false, ..
    } = cli.command
    {
        // SAFETY: no other thread has started yet.
        unsafe { crate::run::turn_off_shader_caches() };
    }
    match cli.command {
        Command::Validate { files, set } => {
            let mut worst = 0;
            for file in files {
                let mut sources = Sources::default();
                match load_pipeline(&file, &set, &mut sources) {
                    Ok(_) => println!("{}: valid", file.display()),
                    Err(e) => worst = worst.max(report(e, &sources)),
                }
            }
            ExitCode::from(worst)
        }
        Command::Plan {
            file,
            set,
            format,
            dispatches,
            device,
            partition,
            ranks,
        } => with_pipeline(&file, &set, |checked| {
            let plan = match crate::plan::plan_pipeline(checked).data_parallel(ranks) {
                Ok(plan) => plan,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            };
            let extras = partition
                .then(|| crate::run::partition_summary(&plan))
                .transpose()
                .and_then(|p| {
                    let d = dispatches
                        .then(|| {
                            crate::run::dispatch_plan(&plan, device.as_deref().map(device_request))
                        })
                        .transpose()?;
                    Ok((p, d))
                });
            let (partition, listed) = match extras {
                Ok(found) => found,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            };
            match format {
                Format::Text => {
                    print!("{plan}");
                    if let Some(t) = &partition {
                        println!();
                        print!("{t}");
                    }
                    if let Some(d) = &listed {
                        println!();
                        print!("{d}");
                    }
                }
                Format::Json => {
                    let mut value = serde_json::to_value(&plan).unwrap_or_default();
                    if let Some(map) = value.as_object_mut() {
                        if let Some(d) = &listed {
                            map.insert(
                                "dispatches".into(),
                                serde_json::to_value(d).unwrap_or_default(),
                            );
                        }
                        if let Some(p) = &partition {
                            map.insert(
                                "partition".into(),
                                serde_json::to_value(p).unwrap_or_default(),
                            );
                        }
                    }
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&value).unwrap_or_default()
                    );
                }
            }
            0
        }),
        Command::Graph { file, set, model } => with_pipeline(&file, &set, |checked| match model {
            None => {
                print!("{}", crate::dot::to_dot(checked));
                0
            }
            Some(name) => match crate::dot::model_to_dot(checked, &name) {
                Some(dot) => {
                    print!("{dot}");
                    0
                }
                None => {
                    let models: Vec<&str> = checked.models.keys().map(String::as_str).collect();
                    let hint = crate::diag::did_you_mean(&name, models.iter().copied())
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default();
                    eprintln!(
                        "error: the pipeline has no model `{name}`{hint}; its models: {}",
                        models.join(", ")
                    );
                    2
                }
            },
        }),
        Command::Schema => {
            print!("{}", crate::schema::pipeline_schema());
            ExitCode::SUCCESS
        }
        Command::Run {
            file,
            set,
            device,
            out,
            quiet,
            resume,
            init_from,
            allow_exec,
            rank_timeout,
        } => with_pipeline_and_sources(&file, &set, |checked, sources| {
            if !allow_exec {
                let refused = crate::check::exec_commands(checked);
                if !refused.is_empty() {
                    return report(LoadError::Invalid(refused), sources);
                }
            }
            let ranks = match crate::ranks::join(std::time::Duration::from_secs(rank_timeout)) {
                Ok(ranks) => ranks,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            };
            let plan = match crate::plan::plan_pipeline(checked).data_parallel(ranks.size()) {
                Ok(plan) => plan,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            };
            if ranks.size() > 1 && !crate::check::exec_commands(checked).is_empty() {
                eprintln!(
                    "error: `exec` callbacks do not run data parallel yet (each rank would run the command); run without mpirun"
                );
                return 2;
            }
            let lead = ranks.rank() == 0;
            let out_dir = out.unwrap_or_else(|| PathBuf::from("runs").join(&plan.name));
            let resume = match resume.as_deref() {
                None => None,
                Some("latest") => {
                    let root = out_dir.join(&plan.checkpoint_dir);
                    match crate::run::checkpoint::latest(&root) {
                        Ok(path) => Some(path),
                        Err(e) => {
                            eprintln!("error: --resume latest: {e}");
                            return 2;
                        }
                    }
                }
                Some(path) => Some(PathBuf::from(path)),
            };
            let options = crate::run::RunOptions {
                out_dir,
                device: device.as_deref().map(device_request),
                quiet: quiet || !lead,
                resume,
                metrics_every_steps: None,
                init_from,
                record_dispatches: false,
            };
            match crate::run::run_plan_on(&plan, &options, ranks.as_ref()) {
                Ok(_) if !lead => 0,
                Ok(summary) => {
                    // In firing order, with the metrics each eval computes.
                    for e in &plan.evals {
                        let Some(m) = summary.evals.get(&e.name) else {
                            continue;
                        };
                        println!("{}", crate::run::describe_eval(&e.name, &e.metrics, m));
                    }
                    println!(
                        "{} steps on {}, {:.0} samples/s",
                        summary.steps, summary.adapter, summary.samples_per_second
                    );
                    if let Some(path) = &summary.metrics_path {
                        println!("metrics: {}", path.display());
                    }
                    match crate::report::write_report(&options.out_dir) {
                        Ok(path) => println!("report: {}", path.display()),
                        Err(e) => eprintln!("warning: report not written: {e}"),
                    }
                    0
                }
                Err(crate::run::RunError::NoShaderF16 { chain, adapter }) => {
                    let located = crate::check::f16_unavailable(checked, &chain, &adapter);
                    let code = report(LoadError::Invalid(located), sources);
                    ranks.abort(i32::from(code));
                    code
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    // The other ranks would wait for this one at their next exchange.
                    let code = match e {
                        crate::run::RunError::NonFinite(_) | crate::run::RunError::Data(_) => 1,
                        crate::run::RunError::Gpu(ops::gpu::GpuError::ParamMismatch { .. }) => 1,
                        crate::run::RunError::Checkpoint(
                            crate::run::checkpoint::CheckpointError::Corrupt { .. },
                        ) => 1,
                        _ => 2,
                    };
                    ranks.abort(i32::from(code));
                    code
                }
            }
        }),
        Command::Checkpoints { dir } => match crate::run::checkpoint::list(&dir) {
            Ok(list) if list.is_empty() => {
                eprintln!("no checkpoints in `{}`", dir.display());
                ExitCode::from(1)
            }
            Ok(list) => {
                let latest = list.last().map(|c| c.path.clone());
                let maximize = list.iter().rev().find_map(|c| c.maximize);
                let best = maximize
                    .and_then(|max| crate::run::checkpoint::best(&list, max))
                    .map(|c| c.path.clone());
                println!(
                    "{:<40} {:>8} {:>6} {:>12}  marks",
                    "checkpoint", "step", "epoch", "metric"
                );
                for c in &list {
                    let mut marks = Vec::new();
                    if Some(&c.path) == latest.as_ref() {
                        marks.push("latest");
                    }
                    if Some(&c.path) == best.as_ref() {
                        marks.push("best");
                    }
                    let metric = c.monitor.map_or("-".to_string(), |m| format!("{m:.6}"));
                    let name = c
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    println!(
                        "{name:<40} {:>8} {:>6} {metric:>12}  {}",
                        c.step,
                        c.epoch,
                        marks.join(", ")
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Export {
            checkpoint,
            out,
            format,
            model_name,
            run,
        } => {
            let given = out.extension().and_then(|e| e.to_str());
            let format = match (format, given) {
                (Some(f), _) => f,
                (None, Some("onnx")) => ExportFormat::Onnx,
                (None, Some("safetensors")) => ExportFormat::Safetensors,
                (None, _) => {
                    eprintln!(
                        "error: cannot tell the format of `{}` from its extension (hint: name the file `model.safetensors` or `model.onnx`, or pass `--format`)",
                        out.display()
                    );
                    return ExitCode::from(2);
                }
            };
            let extension = match format {
                ExportFormat::Safetensors => "safetensors",
                ExportFormat::Onnx => "onnx",
            };
            if given != Some(extension) {
                eprintln!(
                    "error: `{}` does not end in `.{extension}`, the extension of `--format {extension}` (hint: name the file `model.{extension}`)",
                    out.display()
                );
                return ExitCode::from(2);
            }
            let checkpoint = match model_path(&checkpoint, run.as_deref()) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if format == ExportFormat::Onnx {
                let path = checkpoint.display().to_string();
                return match with_model(
                    &path,
                    None,
                    model_name.as_deref(),
                    None,
                    |loaded, card, _| {
                        crate::run::infer::export_onnx(loaded, card, &out)
                            .map(|n| (card.model.clone(), n))
                    },
                ) {
                    Ok((model, n)) => {
                        println!(
                            "wrote model {model} ({n} tensors, preprocessing folded in) to {}",
                            out.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err((code, e)) => {
                        eprintln!("error: {e}");
                        ExitCode::from(code)
                    }
                };
            }
            match crate::run::checkpoint::export(&checkpoint, &out, model_name.as_deref()) {
                Ok(e) => {
                    match &e.model {
                        Some(m) => println!(
                            "wrote model {m} ({} tensors, with its card) to {}",
                            e.tensors,
                            out.display()
                        ),
                        None => println!(
                            "wrote {} tensors to {} (the checkpoint has no model card: weights only)",
                            e.tensors,
                            out.display()
                        ),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Eval {
            model,
            data,
            split,
            model_name,
            run,
            device,
            json,
        } => {
            let result = with_model(
                &model,
                run.as_deref(),
                model_name.as_deref(),
                device.as_deref(),
                |loaded, card, request| {
                    crate::run::infer::eval_model(
                        loaded,
                        card,
                        data.as_deref(),
                        split.name(),
                        request,
                    )
                },
            );
            match result {
                Ok(report) => {
                    if json {
                        let value = serde_json::json!({
                            "model": report.model,
                            "on": report.on,
                            "summary": report.outcome.summary,
                            "report": report.outcome.report,
                        });
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&value).unwrap_or_default()
                        );
                    } else {
                        print_eval(&report);
                    }
                    ExitCode::SUCCESS
                }
                Err((code, e)) => {
                    eprintln!("error: {e}");
                    ExitCode::from(code)
                }
            }
        }
        Command::Predict {
            model,
            data,
            out,
            model_name,
            run,
            device,
        } => {
            let result = with_model(
                &model,
                run.as_deref(),
                model_name.as_deref(),
                device.as_deref(),
                |loaded, card, request| {
                    crate::run::infer::predict(loaded, card, &data, &out, request)
                },
            );
            match result {
                Ok(summary) => {
                    println!(
                        "wrote {} predictions to {}",
                        summary.rows,
                        summary.out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err((code, e)) => {
                    eprintln!("error: {e}");
                    ExitCode::from(code)
                }
            }
        }
        Command::Bench {
            file,
            set,
            device,
            steps,
            warmup,
            repeats,
            rounds,
            json,
            warm_cache: _,
        } => with_pipeline(&file, &set, |checked| {
            let options = crate::run::BenchOptions {
                warmup,
                steps,
                repeats,
                rounds,
            };
            match crate::run::bench_pipeline(
                &crate::plan::plan_pipeline(checked),
                device.as_deref().map(device_request),
                options,
            ) {
                Ok(report) if json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).unwrap_or_default()
                    );
                    0
                }
                Ok(report) => {
                    print!("{report}");
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    2
                }
            }
        }),
        Command::Report { dir } => match crate::report::write_report(&dir) {
            Ok(path) => {
                println!("report: {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Devices => {
            let adapters = ops::gpu::list_adapters();
            if adapters.iter().all(|a| a.backend == "cpu") {
                eprintln!(
                    "no GPU adapter found (only the native cpu backend); for Vulkan or GL on Debian/Ubuntu install Mesa's drivers: apt-get install mesa-vulkan-drivers (Vulkan) or libegl-mesa0 (GL)"
                );
            }
            for a in adapters {
                if a.backend == "cpu" {
                    println!(
                        "{} [cpu] native code on rayon's threads (RAYON_NUM_THREADS), GEMMs by matrixmultiply, no f16 (`--device cpu`)",
                        a.name
                    );
                    continue;
                }
                let subgroups = a
                    .subgroup_size
                    .map_or("no subgroup operations".to_string(), |n| {
                        format!("subgroups of {n}")
                    });
                let f16 = if a.shader_f16 {
                    "f16 shaders"
                } else {
                    "no f16 shaders"
                };
                println!(
                    "{} [{}] {}: max buffer {} MiB, max storage binding {} MiB, workgroup x <= {}, storage buffers per stage {}, {subgroups}, {f16}",
                    a.name,
                    a.backend,
                    a.device_type,
                    a.max_buffer_size >> 20,
                    a.max_storage_buffer_binding_size >> 20,
                    a.max_compute_workgroup_size_x,
                    a.max_storage_buffers_per_shader_stage
                );
            }
            ExitCode::SUCCESS
        }
    }
}

/// `--device auto|vulkan|gl|cpu|<adapter name part>`.
fn device_request(text: &str) -> ops::gpu::DeviceRequest {
    use ops::gpu::{BackendChoice, DeviceRequest};
    let (backend, name) = match text.to_ascii_lowercase().as_str() {
        "auto" => (BackendChoice::Auto, None),
        "vulkan" => (BackendChoice::Vulkan, None),
        "gl" | "gles" | "opengl" => (BackendChoice::Gl, None),
        "cpu" => (BackendChoice::Cpu, None),
        _ => (BackendChoice::Auto, Some(text.to_string())),
    };
    DeviceRequest {
        backend,
        name,
        needs_wgsl: crate::extend::registry().brings_kernels(),
        ..DeviceRequest::default()
    }
}

fn with_pipeline(
    file: &std::path::Path,
    set: &[String],
    f: impl FnOnce(&crate::check::CheckedPipeline) -> u8,
) -> ExitCode {
    with_pipeline_and_sources(file, set, |checked, _| f(checked))
}

/// As [`with_pipeline`], with the sources for locating further diagnostics.
fn with_pipeline_and_sources(
    file: &std::path::Path,
    set: &[String],
    f: impl FnOnce(&crate::check::CheckedPipeline, &Sources) -> u8,
) -> ExitCode {
    let mut sources = Sources::default();
    match load_pipeline(file, set, &mut sources) {
        Ok(checked) => ExitCode::from(f(&checked, &sources)),
        Err(e) => ExitCode::from(report(e, &sources)),
    }
}

/// Prints a load failure to stderr and returns its exit code.
fn report(error: LoadError, sources: &Sources) -> u8 {
    match error {
        LoadError::Io(message) => {
            eprintln!("error: {message}");
            2
        }
        LoadError::Invalid(diagnostics) => {
            let color = std::io::stderr().is_terminal();
            eprint!("{}", render(&diagnostics, sources, color));
            let n = diagnostics.len();
            eprintln!("{n} problem{} found", if n == 1 { "" } else { "s" });
            1
        }
    }
}
