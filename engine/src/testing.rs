//! Snapshot testing for users: a pipeline's plan and the metrics of its first steps as
//! one stable text, for `insta::assert_snapshot!`. A change to the pipeline (or to the
//! engine) then shows up as a reviewable diff. See docs/testing.md.
//!
//! ```no_run
//! // tests/pipeline_snapshots.rs in your project
//! let text = engine::testing::snapshot_run("pipelines/my.yaml", &["datasets.d.source.samples=256"], 20).unwrap();
//! // insta::assert_snapshot!(text);
//! # let _ = text;
//! ```

use std::fmt::Write as _;
use std::path::Path;

use crate::diag::{Sources, render};
use crate::run::{RunOptions, run_plan};
use crate::{LoadError, load_pipeline};

/// Runs `steps` optimizer steps of a pipeline (with `--set`-style overrides) and returns
/// its plan followed by one line per training step and eval: step, epoch, loss and
/// accuracy, rounded to 6 significant digits so that the text is stable on one adapter
/// and reviewable as a diff. Wall-clock times are left out.
///
/// The adapter is taken from `ENGINE_TEST_BACKEND` (`vulkan` or `gl`), else from the
/// pipeline's `device:`.
/// Errors (an invalid pipeline, no adapter) come back as readable text.
pub fn snapshot_run(
    pipeline: impl AsRef<Path>,
    overrides: &[&str],
    steps: u64,
) -> Result<String, String> {
    let mut all: Vec<String> = overrides.iter().map(|o| (*o).to_string()).collect();
    all.push(format!("schedule={{steps: {steps}}}"));
    let mut sources = Sources::default();
    let checked = match load_pipeline(pipeline.as_ref(), &all, &mut sources) {
        Ok(c) => c,
        Err(LoadError::Invalid(d)) => return Err(render(&d, &sources, false)),
        Err(LoadError::Io(e)) => return Err(e),
    };
    let lowered = crate::plan::plan_pipeline(&checked);
    let plan = lowered.to_string();
    let out_dir = std::env::temp_dir().join(format!(
        "engine-snapshot-{}-{}",
        lowered.name,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out_dir);
    let device = test_device();
    let options = RunOptions {
        out_dir: out_dir.clone(),
        device,
        quiet: true,
        resume: None,
        metrics_every_steps: Some(1),
        init_from: None,
        record_dispatches: false,
    };
    run_plan(&lowered, &options).map_err(|e| e.to_string())?;
    let metrics =
        std::fs::read_to_string(out_dir.join(&lowered.metrics_file)).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&out_dir);
    let mut text = plan;
    text.push_str("\nmetrics (event stage step epoch loss accuracy)\n");
    for line in metrics.lines() {
        let record: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if record["event"] == "train" {
            continue; // the per-step records already cover it
        }
        let number = |key: &str| {
            record[key]
                .as_f64()
                .map_or("-".to_string(), |v| format!("{v:.6}"))
        };
        let _ = writeln!(
            text,
            "{} {} {} {} {} {}",
            record["event"].as_str().unwrap_or("?"),
            record["stage"].as_str().unwrap_or("?"),
            record["step"],
            record["epoch"],
            number("loss"),
            number("accuracy"),
        );
    }
    Ok(text)
}

/// Where a registered kernel is checked: `ENGINE_TEST_BACKEND`'s adapter, else `auto` on
/// wgpu (a registered kernel is WGSL; the cpu backend has no native form of it).
fn kernel_device() -> ops::gpu::DeviceRequest {
    test_device().unwrap_or(ops::gpu::DeviceRequest {
        needs_wgsl: true,
        ..Default::default()
    })
}

/// The adapter `ENGINE_TEST_BACKEND` asks for (`vulkan`, `gl` or `cpu`), if it names one.
fn test_device() -> Option<ops::gpu::DeviceRequest> {
    let backend = match std::env::var("ENGINE_TEST_BACKEND").as_deref() {
        Ok("vulkan") => ops::gpu::BackendChoice::Vulkan,
        Ok("gl") => ops::gpu::BackendChoice::Gl,
        Ok("cpu") => ops::gpu::BackendChoice::Cpu,
        _ => return None,
    };
    Some(ops::gpu::DeviceRequest {
        backend,
        name: None,
        nth: 0,
        needs_f16: false,
        needs_wgsl: false,
    })
}

/// Checks a loss registered with [`crate::extend::Loss`] for the settings `params` (as
/// written under `params:`): on batches of awkward sizes with padding rows, its kernel
/// against its CPU reference (gradient, per-row loss, hits; outputs poisoned first so
/// that an unwritten value fails), and the reference's gradient against central finite
/// differences of its summed loss. The adapter is `ENGINE_TEST_BACKEND`'s, else any.
///
/// ```no_run
/// # use engine::extend::{Loss, LossOutput, LossTargets, Tensor, Truth};
/// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct S {}
/// # struct MyLoss;
/// # impl Loss for MyLoss { type Spec = S; const NAME: &'static str = "my_loss";
/// #   const DESCRIPTION: &'static str = ""; const TARGETS: LossTargets = LossTargets::Classes;
/// #   const WGSL: &'static str = "";
/// #   fn cpu(_: &S, _: &Tensor, _: Truth<'_>, _: usize) -> LossOutput { unimplemented!() } }
/// engine::testing::check_loss::<MyLoss>(serde_json::json!({})).unwrap();
/// ```
pub fn check_loss<L: crate::extend::Loss>(params: serde_json::Value) -> Result<(), String> {
    check_fused_loss(&(crate::extend::RegisteredLoss::of::<L>().lower)(params)?)
}

/// [`check_loss`] for a device loss with one fused kernel (a built-in regression loss,
/// or a registered loss lowered).
pub fn check_fused_loss(loss: &ops::loss::FusedLoss) -> Result<(), String> {
    use ops::loss::{LossTargets, Truth};
    use ops::rng::Rng;

    let gpu = ops::gpu::Gpu::new(&kernel_device()).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(7);
    // (batch, outputs per row, valid rows): padding rows, a grid-stride tail, odd widths.
    for (batch, d, rows) in [(5, 7, 5), (67, 10, 61), (130, 3, 129)] {
        let y = ops::Tensor {
            shape: vec![batch, d],
            data: rng.vec_uniform(batch * d, -3.0, 3.0),
        };
        let labels: Vec<u32> = (0..batch).map(|_| rng.below(d) as u32).collect();
        let values = rng.vec_uniform(batch * d, -2.0, 2.0);
        let truth = match loss.targets {
            LossTargets::Classes => Truth::Classes(&labels),
            LossTargets::Values => Truth::Values(&values),
        };
        let at = format!("batch {batch}, {d} outputs, {rows} valid rows");
        let cpu = loss.cpu(&y, truth, rows);
        let gpu_out = loss
            .run_gpu(&gpu, &y, truth, rows)
            .map_err(|e| format!("{at}: {e}"))?;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 + 1e-3 * b.abs();
        for (i, (g, c)) in gpu_out.grad.iter().zip(&cpu.grad.data).enumerate() {
            if !close(f64::from(*g), f64::from(*c)) {
                return Err(format!(
                    "{at}: gradient [{}, {}]: kernel {g}, CPU reference {c}",
                    i / d,
                    i % d
                ));
            }
        }
        let stat = |k: usize| -> f64 {
            gpu_out
                .row_stats
                .iter()
                .skip(k)
                .step_by(3)
                .map(|v| f64::from(*v))
                .sum()
        };
        if !close(stat(0), cpu.loss_sum) {
            return Err(format!(
                "{at}: summed loss: kernel {}, CPU reference {}",
                stat(0),
                cpu.loss_sum
            ));
        }
        if stat(1) != cpu.correct as f64 || stat(2) != cpu.top5_correct as f64 {
            return Err(format!(
                "{at}: hits (top-1, top-5): kernel ({}, {}), CPU reference ({}, {})",
                stat(1),
                stat(2),
                cpu.correct,
                cpu.top5_correct
            ));
        }
        // The reference's gradient against finite differences of its own loss.
        let h = 1e-2f32;
        for i in (0..rows * d).step_by(((rows * d) / 40).max(1)) {
            let mut plus = y.clone();
            plus.data[i] += h;
            let mut minus = y.clone();
            minus.data[i] -= h;
            let slope = (loss.cpu(&plus, truth, rows).loss_sum
                - loss.cpu(&minus, truth, rows).loss_sum)
                / f64::from(2.0 * h);
            let grad = f64::from(cpu.grad.data[i]);
            if (slope - grad).abs() > 2e-3 + 2e-2 * grad.abs() {
                return Err(format!(
                    "{at}: CPU gradient [{}, {}] is {grad} but finite differences give {slope}",
                    i / d,
                    i % d
                ));
            }
        }
    }
    Ok(())
}

/// Checks a layer registered with [`crate::extend::Layer`] for the settings `settings`,
/// on a batch of `batch` samples of per-sample shape `input`: its kernels against its
/// CPU reference (output, input gradient, accumulated parameter gradients; outputs
/// poisoned first), and the reference's gradients against central finite differences of
/// `Σ y·dy` for a random `dy`. The adapter is `ENGINE_TEST_BACKEND`'s, else any.
pub fn check_layer<L: crate::extend::Layer>(
    settings: serde_json::Value,
    batch: usize,
    input: &[usize],
) -> Result<(), String> {
    use ops::rng::Rng;
    use ops::{CpuCtx, Tensor};

    let op = (crate::extend::LayerEntry::of::<L>().make)(&settings)
        .map_err(|e| crate::spec::tagged::split_marked(&e).1.to_string())?;
    if op.kind() != L::NAME {
        return Err(format!(
            "its op's kind() is `{}`, not its name `{}`",
            op.kind(),
            L::NAME
        ));
    }
    let gpu = ops::gpu::Gpu::new(&kernel_device()).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(11);
    let mut shape = vec![batch];
    shape.extend_from_slice(input);
    let random = |rng: &mut Rng, shape: &[usize]| Tensor {
        shape: shape.to_vec(),
        data: rng.vec_uniform(shape.iter().product(), -2.0, 2.0),
    };
    let x = random(&mut rng, &shape);
    let params: Vec<Tensor> = op
        .params(input)
        .iter()
        .map(|p| random(&mut rng, &p.shape))
        .collect();
    let grad_init: Vec<Tensor> = params.iter().map(|p| random(&mut rng, &p.shape)).collect();
    let ctx = CpuCtx {
        train: true,
        seed: 0x1234_5678,
        step: 3,
        layer: 1,
    };
    let y = op.forward_cpu(&x, &params, &ctx);
    let dy = random(&mut rng, &y.shape);
    let (dx, dparams) = op.backward_cpu(&x, &params, &y, &dy, &ctx);
    let run = ops::testing::run_layer(&gpu, op.as_ref(), &x, &params, &dy, &grad_init, &ctx)
        .map_err(|e| e.to_string())?;
    let close = |what: &str, got: &[f32], want: &[f32]| -> Result<(), String> {
        let err = ops::tensor::rel_max_diff(got, want);
        if got.len() == want.len() && err <= 1e-4 {
            Ok(())
        } else {
            Err(format!(
                "{what}: kernel and CPU reference differ by {err:e} (relative)"
            ))
        }
    };
    close("forward", &run.y, &y.data)?;
    close("input gradient", &run.dx, &dx.data)?;
    for (j, ((g, init), d)) in run.grads.iter().zip(&grad_init).zip(&dparams).enumerate() {
        let want: Vec<f32> = init.data.iter().zip(&d.data).map(|(a, b)| a + b).collect();
        close(
            &format!("gradient of parameter {j} (accumulated)"),
            g,
            &want,
        )?;
    }
    // Finite differences of Σ y·dy, the loss whose gradient backward computes.
    let objective = |x: &Tensor, params: &[Tensor]| -> f64 {
        let y = op.forward_cpu(x, params, &ctx);
        y.data
            .iter()
            .zip(&dy.data)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum()
    };
    let h = 1e-2f32;
    let fd = |what: String, analytic: f32, plus: f64, minus: f64| -> Result<(), String> {
        let slope = (plus - minus) / f64::from(2.0 * h);
        let analytic = f64::from(analytic);
        if (slope - analytic).abs() > 5e-3 + 3e-2 * analytic.abs() {
            return Err(format!(
                "{what}: CPU gradient {analytic}, finite differences {slope}"
            ));
        }
        Ok(())
    };
    for i in (0..x.data.len()).step_by((x.data.len() / 24).max(1)) {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.data[i] += h;
        xm.data[i] -= h;
        fd(
            format!("input [{i}]"),
            dx.data[i],
            objective(&xp, &params),
            objective(&xm, &params),
        )?;
    }
    for (j, p) in params.iter().enumerate() {
        for i in (0..p.data.len()).step_by((p.data.len() / 8).max(1)) {
            let (mut pp, mut pm) = (params.clone(), params.clone());
            pp[j].data[i] += h;
            pm[j].data[i] -= h;
            fd(
                format!("parameter {j} [{i}]"),
                dparams[j].data[i],
                objective(&x, &pp),
                objective(&x, &pm),
            )?;
        }
    }
    Ok(())
}

/// Checks an optimizer registered with [`crate::extend::OptimizerRule`] for the settings
/// `settings` (as written beside `kind:`, `lr` included): three updates of its kernel
/// against three of its CPU reference, from the same parameters and gradients —
/// parameters and state after each, and the gradients zeroed. The adapter is
/// `ENGINE_TEST_BACKEND`'s, else any.
pub fn check_optimizer<R: crate::extend::OptimizerRule>(
    settings: serde_json::Value,
) -> Result<(), String> {
    let spec = (crate::spec::OptimizerEntry::of::<R>().parse)(settings)
        .map_err(|e| crate::spec::tagged::split_marked(&e).1.to_string())?;
    check_optimizer_spec(&spec)
}

/// [`check_optimizer`] for an optimizer as a pipeline writes it (any registered one).
pub fn check_optimizer_spec(spec: &crate::spec::OptimizerSpec) -> Result<(), String> {
    use ops::rng::Rng;

    let bad: Vec<String> = spec
        .bounds()
        .0
        .into_iter()
        .filter(|b| !b.ok)
        .map(|b| format!("`{}` must be {}, found {}", b.key, b.expected, b.found))
        .collect();
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    let optimizer = spec.lower();
    optimizer.check()?;
    if optimizer.kernel() != spec.name() {
        return Err(format!(
            "its device optimizer's kind() is `{}`, not its name `{}`",
            optimizer.kernel(),
            spec.name()
        ));
    }
    let lr = spec.lr() as f32;
    let gpu = ops::gpu::Gpu::new(&kernel_device()).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(5);
    let len = 4 * 37;
    let mut cpu_params = rng.vec_uniform(len, -1.0, 1.0);
    let mut cpu_state = vec![0.0f32; len * optimizer.state_names().len()];
    let (mut gpu_params, mut gpu_state) = (cpu_params.clone(), cpu_state.clone());
    for t in 1..=3u64 {
        let grads = rng.vec_uniform(len, -1.0, 1.0);
        optimizer.step_cpu(&mut cpu_params, &grads, &mut cpu_state, lr, t);
        let run =
            ops::testing::run_optimizer(&gpu, &optimizer, &gpu_params, &grads, &gpu_state, lr, t)
                .map_err(|e| e.to_string())?;
        for (what, got, want) in [
            ("parameters", &run.params, &cpu_params),
            ("state", &run.state, &cpu_state),
        ] {
            let err = ops::tensor::rel_max_diff(got, want);
            if got.len() != want.len() || err > 1e-5 {
                return Err(format!(
                    "update {t}: {what}: kernel and CPU reference differ by {err:e} (relative)"
                ));
            }
        }
        if run.grads.iter().any(|g| *g != 0.0) {
            return Err(format!(
                "update {t}: the kernel left the gradients non-zero (it must zero what it reads)"
            ));
        }
        gpu_params = run.params;
        gpu_state = run.state;
    }
    Ok(())
}
