//! The `exec` callback: a command gets each event as JSON on stdin, its output is shown
//! prefixed, a failure warns or stops as asked, a timeout kills it, and nothing runs
//! without `--allow-exec` (the plan lists the commands).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{device, scratch};

const HOOK: &str = "import json, sys; e = json.load(sys.stdin); print('seen', e['trigger'], e['epoch'], e['evals']['test']['accuracy']); open(e['out_dir'] + '/events.jsonl', 'a').write(json.dumps(e) + chr(10))";

/// iris for three epochs with one more callback stage, written to a scratch directory.
fn pipeline(dir: &Path, callback: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let data = format!("{}/pipelines/data/", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string("pipelines/iris.yaml")
        .unwrap()
        .replace("path: data/", &format!("path: {data}"))
        .replace("schedule: {epochs: 60}", "schedule: {epochs: 3}")
        + &format!(
            "\n  - id: hook\n    kind: callback\n    callback: {callback}\n    after: [test]\n"
        );
    let path = dir.join("iris_exec.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn engine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .output()
        .expect("engine runs")
}

fn run(pipeline: &Path, out: &Path, allow: bool) -> Output {
    let device = device();
    let mut args = vec![
        "run",
        pipeline.to_str().unwrap(),
        "--device",
        &device,
        "--out",
        out.to_str().unwrap(),
    ];
    if allow {
        args.push("--allow-exec");
    }
    engine(&args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn python() -> bool {
    Command::new("python3").arg("--version").output().is_ok()
}

#[test]
fn a_command_gets_every_event_and_its_output_is_shown() {
    if !python() {
        eprintln!("skipped: no python3");
        return;
    }
    let dir = scratch("exec", "events");
    let hook = serde_json::to_string(HOOK).unwrap();
    let p = pipeline(
        &dir,
        &format!("{{type: exec, command: [python3, -c, {hook}]}}"),
    );

    let plan = engine(&["plan", p.to_str().unwrap()]);
    assert!(
        text(&plan.stdout).contains("exec hook: runs `python3 -c"),
        "{}",
        text(&plan.stdout)
    );
    assert!(text(&plan.stdout).contains("--allow-exec"));

    let out = dir.join("run");
    let refused = run(&p, &out, false);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[exec-not-allowed]"), "{stderr}");
    assert!(stderr.contains("iris_exec.yaml:"), "located: {stderr}");
    assert!(!out.exists(), "nothing written without --allow-exec");

    let done = run(&p, &out, true);
    let stdout = text(&done.stdout);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let events: Vec<serde_json::Value> = std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 3, "one event per epoch end");
    for (epoch, e) in events.iter().enumerate() {
        assert_eq!(e["trigger"], "epoch_end");
        assert_eq!(e["epoch"], epoch as u64);
        assert_eq!(e["callback"], "hook");
        assert!(e["step"].as_u64().unwrap() > 0);
        assert!(e["train"]["step"]["loss"].as_f64().is_some(), "{e}");
        let shown = format!(
            "[hook] seen epoch_end {epoch} {}",
            e["evals"]["test"]["accuracy"]
        );
        assert!(stdout.contains(&shown), "`{shown}` in\n{stdout}");
    }
}

#[test]
fn a_failing_command_warns_or_stops_and_a_slow_one_is_killed() {
    let dir = scratch("exec", "failures");
    let warn = pipeline(
        &dir.join("warn"),
        "{type: exec, command: [sh, -c, 'exit 3']}",
    );
    let out = run(&warn, &dir.join("warn/run"), true);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("warning: exec callback `hook`").count(),
        3,
        "{stderr}"
    );
    assert!(stderr.contains("exit status: 3"), "{stderr}");

    let stop = pipeline(
        &dir.join("stop"),
        "{type: exec, command: [sh, -c, 'exit 3'], on_failure: stop}",
    );
    let out = run(&stop, &dir.join("stop/run"), true);
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("error: exec callback `hook`: `sh` exited with exit status: 3"),
        "{stderr}"
    );

    let slow = pipeline(
        &dir.join("slow"),
        "{type: exec, command: [sh, -c, 'sleep 30'], timeout_s: 0.2}",
    );
    let out = run(&slow, &dir.join("slow/run"), true);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr
            .matches("did not finish within 0.2 s and was killed")
            .count(),
        3,
        "{stderr}"
    );
}
