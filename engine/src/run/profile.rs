//! The `profile` callback's measurements: host wall time per stage of the loop, and
//! per-kernel device time measured by the host around single-kernel submissions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use ops::train::KernelTiming;
use serde::Serialize;

/// Wall time spent per stage of the training loop.
#[derive(Debug, Default)]
pub(super) struct StageClock {
    stages: BTreeMap<String, (Duration, u64)>,
}

impl StageClock {
    pub fn add(&mut self, stage: &str, elapsed: Duration) {
        // Look up before inserting: the hot path must not allocate a key per batch.
        match self.stages.get_mut(stage) {
            Some(entry) => {
                entry.0 += elapsed;
                entry.1 += 1;
            }
            None => {
                self.stages.insert(stage.to_string(), (elapsed, 1));
            }
        }
    }
}

#[derive(Serialize)]
struct StageRow<'a> {
    stage: &'a str,
    seconds: f64,
    calls: u64,
}

#[derive(Serialize)]
struct KernelRow<'a> {
    kernel: &'a str,
    ms_per_dispatch: f64,
    share_of_step: f64,
}

#[derive(Serialize)]
struct Profile<'a> {
    method: &'static str,
    micro_batches: u64,
    stages: Vec<StageRow<'a>>,
    kernels: Vec<KernelRow<'a>>,
}

/// Writes `profile.json` and returns the same as a table.
pub(super) fn write(
    path: &Path,
    clock: &StageClock,
    kernels: &[KernelTiming],
    micro_batches: u64,
) -> std::io::Result<String> {
    let total: f64 = kernels.iter().map(|k| k.seconds).sum::<f64>().max(1e-12);
    let profile = Profile {
        method: "host timing: each kernel submitted alone and waited for, 5 repetitions (no GPU timestamp queries)",
        micro_batches,
        stages: clock
            .stages
            .iter()
            .map(|(s, (d, n))| StageRow {
                stage: s,
                seconds: d.as_secs_f64(),
                calls: *n,
            })
            .collect(),
        kernels: kernels
            .iter()
            .map(|k| KernelRow {
                kernel: &k.kernel,
                ms_per_dispatch: k.seconds * 1e3,
                share_of_step: k.seconds / total,
            })
            .collect(),
    };
    std::fs::write(
        path,
        serde_json::to_string_pretty(&profile).map_err(std::io::Error::other)? + "\n",
    )?;
    let mut table = String::from("profile: wall time per stage\n");
    for row in &profile.stages {
        let _ = writeln!(
            table,
            "  {:<36} {:>9.3} s {:>8} calls",
            row.stage, row.seconds, row.calls
        );
    }
    let _ = writeln!(
        table,
        "profile: device time per kernel (host-timed, one kernel per submission)"
    );
    for row in &profile.kernels {
        let _ = writeln!(
            table,
            "  {:<36} {:>9.3} ms {:>6.1}%",
            row.kernel,
            row.ms_per_dispatch,
            row.share_of_step * 100.0
        );
    }
    let _ = writeln!(table, "  written to {}", path.display());
    Ok(table)
}
