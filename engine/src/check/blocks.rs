//! Expands a model's `nodes:` into one flat list: each block instance becomes the block's
//! nodes, named `<instance>.<node>`, with its `$arg` attributes filled in; every input is
//! resolved to the flat node (or the model input) it reads. Reports malformed and reserved
//! ids, duplicates, unknown nodes and blocks, missing and unknown block arguments, and ops
//! that are not valid once the arguments are filled in, located where they are written (a
//! mistake inside a block at the block, once however many instances share it).

use std::collections::{BTreeMap, BTreeSet};

use ops::layer::LayerSpec;
use serde_json::Value;

use crate::diag::{Diagnostic, did_you_mean};
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::{BlockSpec, ModelSpec};

use super::wiring::INPUT;

/// One node of the expanded model.
#[derive(Debug, Clone)]
pub(super) struct FlatNode {
    /// `<node>`, or `<instance>.<node>` for a block's node.
    pub id: String,
    /// What it applies.
    pub op: LayerSpec,
    /// The tensors it reads: `None` the model's input, `Some(i)` flat node `i`.
    pub reads: Vec<Option<usize>>,
    /// Whether its `inputs:` is written (else it reads the node before it).
    pub inputs_written: bool,
    /// Where the node is written: in the model's `nodes:` or in a block's.
    pub path: Vec<Seg>,
}

impl FlatNode {
    /// The path of a key of the node (`id`, `op`, `inputs`, then an index).
    pub fn at(&self, tail: &[Seg]) -> Vec<Seg> {
        [&self.path[..], tail].concat()
    }
}

/// What a name resolves to while expanding.
#[derive(Clone, Copy, Debug)]
enum Ref {
    /// The model's input.
    Input,
    /// A flat node.
    Node(usize),
    /// A node that could not be expanded (already reported): readers stay quiet.
    Broken,
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// Diagnostics, each reported once: a block's mistake is found in every instance.
struct Report<'a> {
    out: &'a mut Vec<Diagnostic>,
    seen: BTreeSet<(&'static str, Option<(usize, usize)>)>,
    errors: usize,
}

impl Report<'_> {
    fn push(&mut self, d: Diagnostic) {
        let at = d.span.map(|s| (s.start, s.end));
        if d.span.is_none() || self.seen.insert((d.code, at)) {
            self.out.push(d);
        }
        self.errors += 1;
    }
}

/// Checks a node id written `what` (`in model `m``, `in block `b``); `reserved` says why
/// it may not be used.
fn check_id(
    parsed: &ParsedPipeline,
    id: &str,
    path: &[Seg],
    what: &str,
    reserved: Option<String>,
    report: &mut Report,
) {
    if !super::graph::is_well_formed_id(id) {
        report.push(
            Diagnostic::new(
                "invalid-id",
                format!("node id `{id}` {what} cannot be referred to"),
            )
            .at(parsed.span(path), "not a valid id")
            .expected_found(
                "letters, digits, `_` and `-`, starting with a letter or `_`",
                format!("`{id}`"),
            )
            .hint("node ids name parameters (`<id>.weight`); use e.g. `block1_fc`"),
        );
    } else if let Some(why) = reserved {
        report.push(
            Diagnostic::new(
                "reserved-name",
                format!("node id `{id}` {what} is reserved"),
            )
            .at(parsed.span(path), "reserved")
            .hint(format!("{why}; pick another id")),
        );
    }
}

/// The `$name` parameters a value uses, in order.
fn params_used(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.starts_with('$') => out.push(s[1..].to_string()),
        Value::Array(items) => items.iter().for_each(|v| params_used(v, out)),
        Value::Object(map) => map.values().for_each(|v| params_used(v, out)),
        _ => {}
    }
}

/// serde's words for the attribute types, as a user reads them.
fn plain(message: &str) -> String {
    message
        .replace("expected usize", "expected a whole number")
        .replace("expected f32", "expected a number")
        .replace("expected a boolean", "expected true or false")
}

/// How to fix a model node's input that names no node: a node inside a block use
/// (`block2.out`, as `engine plan` prints it) is read through the use; else the closest
/// name, or the names there are.
fn unknown_node_hint<'a>(
    input: &str,
    nodes: &[crate::spec::NodeSpec],
    candidates: impl Iterator<Item = &'a str> + Clone,
) -> String {
    if let Some((prefix, inner)) = input.split_once('.')
        && let Some(use_) = nodes.iter().find(|n| n.id == prefix && n.block.is_some())
    {
        return format!(
            "`{inner}` is a node inside `{prefix}` (a use of block `{}`), which the model cannot read; read `{prefix}` for the block's output (its last node)",
            use_.block.as_deref().unwrap_or_default()
        );
    }
    did_you_mean(input, candidates.clone()).unwrap_or_else(|| {
        format!(
            "the model's nodes: {}",
            candidates
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// The declared argument closest to a misspelt one.
fn closest_arg(arg: &str, args: &[String]) -> Option<String> {
    args.iter()
        .min_by_key(|a| strsim::damerau_levenshtein(arg, a))
        .cloned()
}

/// `$name` values replaced by the block's arguments; `Err` names an unknown parameter.
fn fill(value: &Value, args: &BTreeMap<String, Value>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) if s.starts_with('$') => match args.get(&s[1..]) {
            Some(v) => v.clone(),
            None => return Err(s[1..].to_string()),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill(v, args))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill(v, args)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// The flat nodes of `model` (written as `nodes:` at `base`), or `None` after reporting
/// why it cannot be expanded.
pub(super) fn expand(
    parsed: &ParsedPipeline,
    name: &str,
    model: &ModelSpec,
    base: &[Seg],
    out: &mut Vec<Diagnostic>,
) -> Option<Vec<FlatNode>> {
    let blocks = &parsed.pipeline.blocks;
    let mut report = Report {
        out,
        seen: BTreeSet::new(),
        errors: 0,
    };
    let node_path = |j: usize| -> Vec<Seg> { [base, &[key("nodes"), Seg::Index(j)]].concat() };
    // Pass 1: ids, and where each node's flat nodes go. A block instance's id names its
    // last node (the block's output).
    let mut scope: BTreeMap<&str, Ref> = BTreeMap::new();
    let mut first_of: Vec<usize> = Vec::new();
    let mut block_of: Vec<Option<&BlockSpec>> = Vec::new();
    let mut count = 0usize;
    for (j, node) in model.nodes.iter().enumerate() {
        let id_path = [node_path(j), vec![key("id")]].concat();
        // Parameter names are `<node>.<param>` (`<model>.<node>.<param>` with several
        // models); checkpoints keep gradients as `grads.<tensor>` and tell a model's
        // tensors by their `<model>.` prefix, so neither may be a node id.
        let reserved = if node.id == INPUT {
            Some(format!("`{INPUT}` names the model's input"))
        } else if node.id == "grads" {
            Some("checkpoints keep accumulated gradients as `grads.<tensor>`".to_string())
        } else if parsed.pipeline.models.contains_key(&node.id) {
            Some(format!(
                "`{}` is a model's name, and tensors named `{}.<...>` are that model's",
                node.id, node.id
            ))
        } else {
            None
        };
        check_id(
            parsed,
            &node.id,
            &id_path,
            &format!("in model `{name}`"),
            reserved,
            &mut report,
        );
        let block = match (&node.op, &node.block) {
            (Some(_), None) => None,
            (None, Some(b)) => match blocks.get(b) {
                Some(spec) if !spec.nodes.is_empty() => Some(spec),
                Some(_) => {
                    report.push(
                        Diagnostic::new("empty-block", format!("block `{b}` has no nodes"))
                            .at(parsed.span(&[key("blocks"), key(b)]), "no nodes")
                            .hint("give the block `nodes:`, written as a model's"),
                    );
                    None
                }
                None => {
                    report.push(
                        Diagnostic::new(
                            "unknown-block",
                            format!(
                                "node `{}` of model `{name}` instantiates block `{b}`, which is not defined",
                                node.id
                            ),
                        )
                        .at(
                            parsed.span(&[node_path(j), vec![key("block")]].concat()),
                            "unknown block",
                        )
                        .maybe_hint(
                            did_you_mean(b, blocks.keys().map(String::as_str)).or_else(|| {
                                Some("define it under the pipeline's `blocks:`".to_string())
                            }),
                        ),
                    );
                    None
                }
            },
            (op, _) => {
                report.push(
                    Diagnostic::new(
                        "node-op-or-block",
                        format!(
                            "node `{}` of model `{name}` needs exactly one of `op:` and `block:`",
                            node.id
                        ),
                    )
                    .at(
                        parsed.span(&node_path(j)),
                        if op.is_some() { "both" } else { "neither" },
                    )
                    .hint("a node applies an op (`op: relu`) or instantiates a block (`block: residual`)"),
                );
                None
            }
        };
        let size = match (block, &node.op) {
            (Some(b), _) => b.nodes.len(),
            (None, Some(_)) if node.block.is_none() => 1,
            _ => 0,
        };
        first_of.push(count);
        block_of.push(block);
        let this = if size == 0 {
            Ref::Broken
        } else {
            Ref::Node(count + size - 1)
        };
        count += size;
        // Indexed whatever its id, so that nodes reading it are not reported too.
        if scope.insert(&node.id, this).is_some() {
            let first = model
                .nodes
                .iter()
                .position(|n| n.id == node.id)
                .unwrap_or(0);
            report.push(
                Diagnostic::new(
                    "duplicate-node",
                    format!("model `{name}` has two nodes with id `{}`", node.id),
                )
                .at(parsed.span(&id_path), "second node with this id")
                .note(format!("the first is node {first}"))
                .hint("give each node its own id"),
            );
        }
    }
    // Pass 2: the flat nodes, in listing order.
    let model_names: Vec<&str> = model
        .nodes
        .iter()
        .map(|n| n.id.as_str())
        .chain([INPUT])
        .collect();
    let mut flat: Vec<Option<FlatNode>> = vec![None; count];
    for (j, node) in model.nodes.iter().enumerate() {
        let path = node_path(j);
        let written = node.inputs.clone();
        let names: Vec<String> = match &written {
            Some(names) => names.clone(),
            None if j == 0 => vec![INPUT.to_string()],
            None => vec![model.nodes[j - 1].id.clone()],
        };
        // The node's inputs, resolved in the model's scope.
        let mut reads = Vec::new();
        for (k, input) in names.iter().enumerate() {
            match scope.get(input.as_str()) {
                Some(&r) => reads.push(r),
                None if input == INPUT => reads.push(Ref::Input),
                None => {
                    reads.push(Ref::Broken);
                    report.push(
                        Diagnostic::new(
                            "unknown-node",
                            format!(
                                "node `{}` of model `{name}` reads `{input}`, which is not a node of the model",
                                node.id
                            ),
                        )
                        .at(
                            parsed.span(&[path.clone(), vec![key("inputs"), Seg::Index(k)]].concat()),
                            "unknown node",
                        )
                        .hint(unknown_node_hint(
                            input,
                            &model.nodes,
                            model_names.iter().copied().filter(|c| *c != node.id),
                        )),
                    );
                }
            }
        }
        match (block_of[j], &node.op) {
            (None, Some(op)) if node.block.is_none() => {
                flat[first_of[j]] =
                    flat_node(node.id.clone(), op.clone(), &reads, written.is_some(), path);
            }
            (Some(block), _) => {
                let block_name = node.block.as_deref().unwrap_or_default();
                let instance = Instance {
                    parsed,
                    model: name,
                    id: &node.id,
                    block_name,
                    block,
                    path: &path,
                    first: first_of[j],
                };
                instance.expand(
                    &node.args,
                    &reads,
                    written.is_some(),
                    &mut flat,
                    &mut report,
                );
            }
            _ => {}
        }
    }
    if report.errors > 0 {
        return None;
    }
    flat.into_iter().collect()
}

/// A flat node once every input resolved (`None` if one is broken: already reported).
fn flat_node(
    id: String,
    op: LayerSpec,
    reads: &[Ref],
    inputs_written: bool,
    path: Vec<Seg>,
) -> Option<FlatNode> {
    let reads = reads
        .iter()
        .map(|r| match r {
            Ref::Input => Some(None),
            Ref::Node(i) => Some(Some(*i)),
            Ref::Broken => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(FlatNode {
        id,
        op,
        reads,
        inputs_written,
        path,
    })
}

/// One node of a model instantiating a block.
struct Instance<'a> {
    parsed: &'a ParsedPipeline,
    model: &'a str,
    id: &'a str,
    block_name: &'a str,
    block: &'a BlockSpec,
    /// Where the instance is written.
    path: &'a [Seg],
    /// Flat index of the block's first node.
    first: usize,
}

impl Instance<'_> {
    /// Writes the block's nodes into `flat[first..]`; `reads` are the instance's inputs.
    fn expand(
        &self,
        given: &BTreeMap<String, Value>,
        reads: &[Ref],
        inputs_written: bool,
        flat: &mut [Option<FlatNode>],
        report: &mut Report,
    ) {
        let (parsed, block, id, block_name) = (self.parsed, self.block, self.id, self.block_name);
        let def = [key("blocks"), key(block_name)];
        let at = |tail: &[Seg]| parsed.span(&[self.path, tail].concat());
        let errors_before = report.errors;
        // Arguments: every required one given, none unknown.
        let declared: Vec<&str> = block
            .args
            .iter()
            .map(String::as_str)
            .chain(block.defaults.keys().map(String::as_str))
            .collect();
        let unknown: Vec<&String> = given
            .keys()
            .filter(|a| !declared.contains(&a.as_str()))
            .collect();
        // A misspelt argument is reported once, as unknown with its did-you-mean, not also
        // as the missing one it was meant to be.
        let meant: Vec<String> = unknown
            .iter()
            .filter(|a| did_you_mean(a, block.args.iter().map(String::as_str)).is_some())
            .filter_map(|a| closest_arg(a, &block.args))
            .collect();
        let missing: Vec<&String> = block
            .args
            .iter()
            .filter(|a| !given.contains_key(*a) && !meant.contains(a))
            .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ");
            report.push(
                Diagnostic::new(
                    "missing-block-arg",
                    format!(
                        "node `{id}` of model `{}` instantiates block `{block_name}` without its argument{} {list}",
                        self.model,
                        if missing.len() == 1 { "" } else { "s" }
                    ),
                )
                .at(
                    at(&[key(if given.is_empty() { "block" } else { "args" })]),
                    "missing arguments",
                )
                .hint(format!(
                    "give them in `args:`, e.g. `args: {{{}}}`",
                    missing
                        .iter()
                        .map(|a| format!("{a}: ..."))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
        for arg in unknown {
            report.push(
                Diagnostic::new(
                    "unknown-block-arg",
                    format!("block `{block_name}` has no parameter `{arg}`"),
                )
                .at(
                    parsed.key_span(&[self.path, &[key("args"), key(arg)]].concat()),
                    "not a parameter of the block",
                )
                .maybe_hint(did_you_mean(arg, declared.iter().copied()).or_else(|| {
                    Some(if declared.is_empty() {
                        format!("block `{block_name}` takes no arguments")
                    } else {
                        format!("its parameters: {}", declared.join(", "))
                    })
                })),
            );
        }
        if report.errors > errors_before {
            // Filling in the ops needs every argument.
            return;
        }
        if reads.len() != block.inputs.len() {
            let n = reads.len();
            report.push(
                Diagnostic::new(
                    "wrong-input-count",
                    format!(
                        "node `{id}` (block `{block_name}`) of model `{}` reads {n} input{} but the block takes {}",
                        self.model,
                        if n == 1 { "" } else { "s" },
                        block.inputs.len()
                    ),
                )
                .at(at(&[key("inputs")]), format!("{n} input{}", if n == 1 { "" } else { "s" }))
                .expected_found(
                    format!("{} inputs ({})", block.inputs.len(), block.inputs.join(", ")),
                    n.to_string(),
                )
                .hint("list one node per block input in `inputs:`"),
            );
            return;
        }
        let mut args = block.defaults.clone();
        args.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
        // The block's scope: its inputs, then its nodes.
        let mut scope: BTreeMap<&str, Ref> = block
            .inputs
            .iter()
            .map(String::as_str)
            .zip(reads.iter().copied())
            .collect();
        for (k, node) in block.nodes.iter().enumerate() {
            let id_path = [&def[..], &[key("nodes"), Seg::Index(k), key("id")]].concat();
            let reserved = block
                .inputs
                .contains(&node.id)
                .then(|| format!("`{}` names an input of the block", node.id));
            check_id(
                parsed,
                &node.id,
                &id_path,
                &format!("in block `{block_name}`"),
                reserved,
                report,
            );
            if scope.insert(&node.id, Ref::Node(self.first + k)).is_some()
                && !block.inputs.contains(&node.id)
            {
                report.push(
                    Diagnostic::new(
                        "duplicate-node",
                        format!("block `{block_name}` has two nodes with id `{}`", node.id),
                    )
                    .at(parsed.span(&id_path), "second node with this id")
                    .hint("give each node its own id"),
                );
            }
        }
        let names: Vec<&str> = scope.keys().copied().collect();
        for (k, node) in block.nodes.iter().enumerate() {
            let path = [&def[..], &[key("nodes"), Seg::Index(k)]].concat();
            let op_path = [&path[..], &[key("op")]].concat();
            let op = match fill(&node.op, &args) {
                Err(unknown) => {
                    report.push(
                        Diagnostic::new(
                            "unknown-block-param",
                            format!(
                                "node `{}` of block `{block_name}` uses `${unknown}`, which is not a parameter of the block",
                                node.id
                            ),
                        )
                        .at(parsed.span(&op_path), format!("`${unknown}`"))
                        .maybe_hint(did_you_mean(&unknown, declared.iter().copied()).or_else(|| {
                            Some("declare it in the block's `args:` (or `defaults:`)".to_string())
                        })),
                    );
                    None
                }
                Ok(filled) => match serde_json::from_value::<LayerSpec>(filled.clone()) {
                    Ok(op) => Some(op),
                    Err(e) => {
                        // A value this use gave is the likely culprit: point there (each
                        // use with a bad argument is then reported); else at the block.
                        let mut used = Vec::new();
                        params_used(&node.op, &mut used);
                        let culprit = used.iter().find(|u| given.contains_key(*u));
                        let e = plain(&e.to_string());
                        report.push(match culprit {
                            Some(arg) => Diagnostic::new(
                                "invalid-block-op",
                                format!(
                                    "argument `{arg}` of `{id}` does not fit node `{}` of block `{block_name}`: {e}",
                                    node.id
                                ),
                            )
                            .at(at(&[key("args"), key(arg)]), format!("used as `${arg}`"))
                            .note(format!(
                                "with it, block `{block_name}`'s node `{}` reads `{filled}`",
                                node.id
                            ))
                            .hint(format!(
                                "give `{arg}` a value that attribute takes (the layers table in docs/pipeline.md)"
                            )),
                            None => Diagnostic::new(
                                "invalid-block-op",
                                format!(
                                    "node `{}` of block `{block_name}` is not a valid layer in `{id}`: {e}",
                                    node.id
                                ),
                            )
                            .at(parsed.span(&op_path), "with the arguments filled in")
                            .note(format!("in `{id}` the op reads `{filled}`"))
                            .hint("write the op as in a `layers:` list, with `$name` where a use's argument goes"),
                        });
                        None
                    }
                },
            };
            let written = node.inputs.clone();
            let inputs: Vec<String> = match &written {
                Some(names) => names.clone(),
                None if k == 0 => vec![block.inputs[0].clone()],
                None => vec![block.nodes[k - 1].id.clone()],
            };
            let mut node_reads = Vec::new();
            for (i, input) in inputs.iter().enumerate() {
                match scope.get(input.as_str()) {
                    Some(&r) => node_reads.push(r),
                    None => {
                        node_reads.push(Ref::Broken);
                        report.push(
                            Diagnostic::new(
                                "unknown-node",
                                format!(
                                    "node `{}` of block `{block_name}` reads `{input}`, which is neither a node nor an input of the block",
                                    node.id
                                ),
                            )
                            .at(
                                parsed.span(&[&path[..], &[key("inputs"), Seg::Index(i)]].concat()),
                                "unknown node",
                            )
                            .hint(
                                did_you_mean(
                                    input,
                                    names.iter().copied().filter(|c| *c != node.id),
                                )
                                .unwrap_or_else(|| {
                                    format!(
                                        "a block's node reads the block's inputs ({}) or its other nodes",
                                        block
                                            .inputs
                                            .iter()
                                            .map(|i| format!("`{i}`"))
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    )
                                }),
                            ),
                        );
                    }
                }
            }
            if let Some(op) = op {
                // The first node of a block without `inputs:` reads the instance's first
                // input; its inputs are then the instance's, as written there.
                let written = written.is_some() || (k == 0 && inputs_written);
                flat[self.first + k] =
                    flat_node(format!("{id}.{}", node.id), op, &node_reads, written, path);
            }
        }
    }
}
