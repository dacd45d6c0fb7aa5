//! `csv_log`: appends one row per trigger to a CSV file in the run's output directory —
//! step, epoch, each training chain's loss and accuracy, then each eval's — for a
//! spreadsheet or pandas.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use engine::extend::{Callback, Decision, Event, RunInfo, SpecError};
use schemars::JsonSchema;
use serde::Deserialize;

/// Settings of `type: csv_log`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvLogSpec {
    /// File name inside the run's output directory.
    #[serde(default = "default_file")]
    pub file: String,
    /// Stop the run once this eval metric reaches `stop_at` (`<eval>.accuracy`), if set.
    #[serde(default)]
    pub stop_at: Option<f64>,
    /// The eval whose accuracy `stop_at` reads.
    #[serde(default)]
    pub eval: Option<String>,
}

fn default_file() -> String {
    "metrics.csv".into()
}

/// The started callback: the open file and its columns, fixed by the first row.
pub struct CsvLog {
    out: BufWriter<File>,
    path: PathBuf,
    columns: Option<Vec<String>>,
    /// Data rows written (saved in checkpoints: a resumed run drops the rows written
    /// after its checkpoint, so the file reads as one uninterrupted run's).
    rows: u64,
    stop_at: Option<(String, f64)>,
}

impl Callback for CsvLog {
    type Spec = CsvLogSpec;
    const NAME: &'static str = "csv_log";
    const DESCRIPTION: &'static str = "Appends step, epoch and every chain's and eval's loss and accuracy to a CSV file in the output directory.";

    fn check(spec: &CsvLogSpec) -> Result<(), SpecError> {
        let plain = !spec.file.is_empty()
            && !spec.file.contains(['/', '\\'])
            && spec.file != ".."
            && spec.file != ".";
        if !plain {
            return Err(SpecError::at(
                "file",
                format!(
                    "`{}` is not a plain file name (it is written inside the output directory)",
                    spec.file
                ),
            ));
        }
        match (spec.stop_at, &spec.eval) {
            (Some(_), None) => Err(SpecError::at(
                "stop_at",
                "`stop_at` needs `eval`: the eval stage whose accuracy it reads",
            )),
            (Some(v), Some(_)) if !(0.0..=1.0).contains(&v) => Err(SpecError::at(
                "stop_at",
                format!("an accuracy is in [0, 1], found {v}"),
            )),
            _ => Ok(()),
        }
    }

    fn start(spec: CsvLogSpec, run: &RunInfo) -> Result<Self, String> {
        std::fs::create_dir_all(&run.out_dir).map_err(|e| e.to_string())?;
        let path = run.out_dir.join(&spec.file);
        // A resumed run goes on writing the file its first start wrote (its header first).
        let columns = if run.resumed {
            std::fs::read_to_string(&path).ok().and_then(|text| {
                let header = text.lines().next()?;
                Some(header.split(',').map(str::to_string).collect())
            })
        } else {
            None
        };
        // Always appending: rows go after whatever `restore` leaves in the file.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        if !run.resumed {
            file.set_len(0).map_err(|e| e.to_string())?;
        }
        Ok(CsvLog {
            out: BufWriter::new(file),
            path,
            rows: 0,
            columns,
            stop_at: spec.eval.zip(spec.stop_at),
        })
    }

    fn on_event(&mut self, event: &Event) -> Result<Decision, String> {
        let mut cells = vec![
            ("step".to_string(), event.step.to_string()),
            ("epoch".to_string(), event.epoch.to_string()),
        ];
        for (scope, metrics) in [("train", &event.train), ("eval", &event.evals)] {
            for (name, m) in metrics {
                let prefix = if scope == "train" {
                    format!("train.{name}")
                } else {
                    name.clone()
                };
                cells.push((format!("{prefix}.loss"), format!("{:.6}", m.loss)));
                cells.push((format!("{prefix}.accuracy"), format!("{:.6}", m.accuracy)));
            }
        }
        if self.columns.is_none() {
            // The header is the first row's columns (order the stage after its evals
            // with `after:` so that they are in it).
            let names: Vec<String> = cells.iter().map(|(k, _)| k.clone()).collect();
            writeln!(self.out, "{}", names.join(",")).map_err(|e| e.to_string())?;
            self.columns = Some(names);
        }
        let columns = self.columns.as_deref().unwrap_or_default();
        let row: Vec<String> = columns
            .iter()
            .map(|c| {
                cells
                    .iter()
                    .find(|(k, _)| k == c)
                    .map_or(String::new(), |(_, v)| v.clone())
            })
            .collect();
        writeln!(self.out, "{}", row.join(",")).map_err(|e| e.to_string())?;
        self.out.flush().map_err(|e| e.to_string())?;
        self.rows += 1;
        if let Some((eval, target)) = &self.stop_at
            && event.evals.get(eval).is_some_and(|m| m.accuracy >= *target)
        {
            return Ok(Decision::Stop);
        }
        Ok(Decision::Continue)
    }

    fn save(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "rows": self.rows }))
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), String> {
        let rows = state["rows"]
            .as_u64()
            .ok_or_else(|| format!("saved state {state} has no row count"))?;
        // Keep the header and the rows written up to the checkpoint.
        let text = std::fs::read_to_string(&self.path).map_err(|e| e.to_string())?;
        let kept: Vec<&str> = text.lines().take(1 + rows as usize).collect();
        let mut content = kept.join("\n");
        if !content.is_empty() {
            content.push('\n');
        }
        std::fs::write(&self.path, content).map_err(|e| e.to_string())?;
        self.rows = rows;
        if self.columns.is_none() && rows > 0 {
            self.columns = kept
                .first()
                .map(|h| h.split(',').map(str::to_string).collect());
        }
        Ok(())
    }
}
