//! The `exec` callback's command: started without a shell in the pipeline's directory,
//! the event as one JSON object on its stdin, its output collected line by line, killed
//! at its timeout. Only the runner calls it, and only with `--allow-exec`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::callbacks::ExecFailure;

/// A command an `exec` callback asks the runner to run.
pub struct ExecRequest {
    /// The callback stage's id.
    pub name: String,
    pub command: Vec<String>,
    pub timeout: Duration,
    pub on_failure: ExecFailure,
    /// The event, without what only the runner knows (the checkpoint).
    pub event: serde_json::Value,
}

/// How a command ended.
pub(super) struct ExecOutcome {
    /// Its stdout, then its stderr, line by line.
    pub lines: Vec<String>,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

/// Runs `request`'s command in `dir` with `event` on stdin. The event is handed over as a
/// file in `out_dir` (removed once opened), not a pipe: a command that exits without
/// reading its input must not end the engine with SIGPIPE, whose default action the
/// binary restores for `engine plan | head`.
pub(super) fn run_command(
    request: &ExecRequest,
    dir: &Path,
    out_dir: &Path,
    event: &serde_json::Value,
) -> ExecOutcome {
    let failed = |why: String| ExecOutcome {
        lines: Vec::new(),
        failure: Some(why),
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Some((program, args)) = request.command.split_first() else {
        return failed("the command is empty".into());
    };
    let event_file = out_dir.join(format!(".exec-{}.json", request.name));
    let input = std::fs::write(&event_file, event.to_string() + "\n")
        .and_then(|()| std::fs::File::open(&event_file));
    let _ = std::fs::remove_file(&event_file);
    let input = match input {
        Ok(file) => file,
        Err(e) => {
            return failed(format!(
                "cannot write its event to `{}`: {e}",
                event_file.display()
            ));
        }
    };
    let mut child = match Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::from(input))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return failed(format!("cannot start `{program}`: {e}")),
    };
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        child.stdout.take().map(|s| collect(s, Arc::clone(&out))),
        child.stderr.take().map(|s| collect(s, Arc::clone(&err))),
    ];
    let deadline = Instant::now() + request.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "`{program}` did not finish within {:.1} s and was killed",
                    request.timeout.as_secs_f64()
                ));
            }
            Err(e) => break Err(format!("waiting for `{program}`: {e}")),
        }
    };
    if status.is_ok() {
        // The pipes close when the command exits (a child it left running may hold them:
        // then what it printed so far is taken).
        for reader in readers.into_iter().flatten() {
            let _ = reader.join();
        }
    }
    let mut lines = std::mem::take(&mut *out.lock().unwrap_or_else(|p| p.into_inner()));
    lines.append(&mut err.lock().unwrap_or_else(|p| p.into_inner()));
    let failure = match status {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("`{program}` exited with {s}")),
        Err(why) => Some(why),
    };
    ExecOutcome { lines, failure }
}

fn collect(
    stream: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            into.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    })
}
