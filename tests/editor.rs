//! The editor experience, measured with the language server VS Code's YAML extension runs
//! (yaml-language-server, from npm) against the committed schema: no diagnostics on the
//! examples, a diagnostic on the right line for each mistake of a set, every layer offered
//! when completing a layer list, and hover text on a stage's `kind`.
//!
//! `ENGINE_YAML_LANGUAGE_SERVER` names the server's executable (.ci/run installs it); the
//! test is skipped without it, unless `ENGINE_REQUIRE_LSP=1` (CI) makes that a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

struct Server {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    next_id: u64,
    /// Diagnostics received so far, by document URI (the latest publication wins).
    diagnostics: std::collections::HashMap<String, Vec<Value>>,
}

impl Server {
    fn start(executable: &str, root: &Path) -> Server {
        let mut child = Command::new(executable)
            .arg("--stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{executable}`: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length:") {
                        length = n.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&body)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        let mut server = Server {
            child,
            stdin,
            messages,
            next_id: 1,
            diagnostics: Default::default(),
        };
        let root_uri = uri(root);
        server.request(
            "initialize",
            json!({
                "processId": std::process::id(),
                "rootUri": root_uri,
                "capabilities": {
                    "textDocument": {
                        "completion": {"completionItem": {"snippetSupport": true, "documentationFormat": ["markdown", "plaintext"]}},
                        "hover": {"contentFormat": ["markdown", "plaintext"]},
                        "publishDiagnostics": {}
                    },
                    "workspace": {"configuration": true}
                }
            }),
        );
        server.notify("initialized", json!({}));
        server.notify(
            "workspace/didChangeConfiguration",
            json!({"settings": settings()}),
        );
        server
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len())
            .and_then(|()| self.stdin.flush())
            .expect("the server reads its input");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and waits for its response, answering the server's own requests
    /// and keeping its diagnostics meanwhile.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + WAIT;
        loop {
            let message = self
                .receive(deadline)
                .unwrap_or_else(|| panic!("no response to `{method}` within {WAIT:?}"));
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                return message.get("result").cloned().unwrap_or(Value::Null);
            }
        }
    }

    /// The next message, handling server requests and diagnostics on the way; `None` at
    /// the deadline.
    fn receive(&mut self, deadline: Instant) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match self.messages.recv_timeout(left) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => panic!("the language server exited"),
        };
        match message.get("method").and_then(Value::as_str) {
            Some("workspace/configuration") => {
                let items = message["params"]["items"].as_array().map_or(0, Vec::len);
                let answers: Vec<Value> = (0..items)
                    .map(
                        |i| match message["params"]["items"][i]["section"].as_str() {
                            Some("yaml") => settings()["yaml"].clone(),
                            _ => Value::Null,
                        },
                    )
                    .collect();
                let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": answers});
                self.send(&reply);
            }
            Some("textDocument/publishDiagnostics") => {
                let uri = message["params"]["uri"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let list = message["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                self.diagnostics.insert(uri, list);
            }
            Some(_) if message.get("id").is_some() => {
                // Registrations and other server requests: accept them.
                let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": null});
                self.send(&reply);
            }
            _ => {}
        }
        Some(message)
    }

    fn open(&mut self, uri: &str, text: &str) {
        self.diagnostics.remove(uri);
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}}),
        );
    }

    /// The diagnostics of `uri` once the server has published them (it validates after
    /// loading the schema; a later publication replaces an earlier one).
    fn diagnostics_of(&mut self, uri: &str) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        while !self.diagnostics.contains_key(uri) {
            if self.receive(deadline).is_none() {
                panic!("no diagnostics for {uri} within {WAIT:?}");
            }
        }
        // Settle: take any publication that follows shortly.
        let settle = Instant::now() + Duration::from_millis(500);
        while self.receive(settle).is_some() {}
        self.diagnostics[uri].clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn settings() -> Value {
    json!({"yaml": {"validate": true, "hover": true, "completion": true, "schemas": {}, "format": {"enable": false}}})
}

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn server() -> Option<Server> {
    match std::env::var("ENGINE_YAML_LANGUAGE_SERVER") {
        Ok(executable) => Some(Server::start(&executable, &repo())),
        Err(_) if std::env::var("ENGINE_REQUIRE_LSP").is_ok_and(|v| v == "1") => {
            panic!("ENGINE_REQUIRE_LSP=1 but ENGINE_YAML_LANGUAGE_SERVER is not set")
        }
        Err(_) => {
            eprintln!(
                "skipped: set ENGINE_YAML_LANGUAGE_SERVER to yaml-language-server's executable (npm install yaml-language-server@1.25)"
            );
            None
        }
    }
}

/// Errors and warnings (the server also sends hints).
fn problems(diagnostics: &[Value]) -> Vec<&Value> {
    diagnostics
        .iter()
        .filter(|d| d["severity"].as_u64().unwrap_or(1) <= 2)
        .collect()
}

/// 0-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> u64 {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in the document")) as u64
}

#[test]
fn the_schema_guides_an_editor() {
    let Some(mut server) = server() else {
        return;
    };

    // Every example is clean.
    let mut examples: Vec<PathBuf> = std::fs::read_dir(repo().join("pipelines"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 10);
    for path in &examples {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema="),
            "{}: no schema modeline",
            path.display()
        );
        let u = uri(path);
        server.open(&u, &text);
        let found = server.diagnostics_of(&u);
        assert!(
            problems(&found).is_empty(),
            "{}: {found:#?}",
            path.display()
        );
    }

    // Each mistake is marked on its line. The documents sit next to the examples (they are
    // not written to disk) so that the modeline finds the schema.
    let base = std::fs::read_to_string(repo().join("pipelines/digits_mlp.yaml")).unwrap();
    let mistakes = [
        ("batch_size: 32", "batch_size: 0"),
        (
            "optimizer: {kind: adam, lr: 0.001}",
            "optimizer: {kind: adam, lr: -0.001}",
        ),
        (
            "- relu\n      - linear: {out: 100}",
            "- dropout: {p: 1.0}\n      - linear: {out: 100}",
        ),
        (
            "fn: cross_entropy",
            "fn: cross_entropy\n    label_smoothing: 1.0",
        ),
        ("callback: {type: log}", "callback: {type: log, every: 5}"),
        (
            "    dataset: digits\n    split: train",
            "    dataset: digits\n    splitt: train",
        ),
        (
            "- relu\n      - linear: {out: 10}",
            "- relu6\n      - linear: {out: 10}",
        ),
        ("schedule: {epochs: 40}", "schedule: {epochs: 0}"),
    ];
    for (i, (from, to)) in mistakes.iter().enumerate() {
        assert!(base.contains(from), "the base holds `{from}`");
        let text = base.replacen(from, to, 1);
        let marked = to.lines().find(|l| !base.contains(l)).unwrap_or(to);
        let line = line_of(&text, marked.trim());
        let u = uri(&repo().join(format!("pipelines/mistake_{i}.yaml")));
        server.open(&u, &text);
        let found = server.diagnostics_of(&u);
        let lines: Vec<u64> = problems(&found)
            .iter()
            .filter_map(|d| d["range"]["start"]["line"].as_u64())
            .collect();
        assert!(
            lines.contains(&line),
            "`{to}`: expected a diagnostic on line {}, got {found:#?}",
            line + 1
        );
    }

    // Completing a layer list item offers every layer of the schema.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("pipelines/pipeline.schema.json")).unwrap(),
    )
    .unwrap();
    let layers: Vec<&str> = schema["$defs"]["LayerSpec"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["title"].as_str())
        .collect();
    assert!(layers.len() >= 20 && layers.contains(&"linear") && layers.contains(&"relu"));
    let anchor = "      - linear: {out: 10}\n";
    let text = base.replacen(anchor, &format!("{anchor}      - \n"), 1);
    let line = line_of(&text, "      - linear: {out: 10}") + 1;
    let u = uri(&repo().join("pipelines/completion.yaml"));
    server.open(&u, &text);
    let result = server.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": u}, "position": {"line": line, "character": 8}}),
    );
    let items = result
        .get("items")
        .or(Some(&result))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let offered: Vec<String> = items
        .iter()
        .filter_map(|i| i["label"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<&&str> = layers
        .iter()
        .filter(|l| {
            !offered
                .iter()
                .any(|o| o == *l || o.starts_with(&format!("{l}:")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not offered: {missing:?}; offered {offered:?}"
    );

    // Hovering a stage's `kind` explains it.
    let u = uri(&repo().join("pipelines/digits_mlp.yaml"));
    let line = line_of(&base, "kind: load");
    let hover = server.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": u}, "position": {"line": line, "character": 6}}),
    );
    let shown = hover["contents"].to_string();
    assert!(
        shown.contains("Reads batches"),
        "hover over `kind`: {hover}"
    );
}
