//! ONNX export: a model as an ONNX graph (opset 17), written as protobuf bytes by hand (the
//! handful of ONNX messages needed do not justify a protobuf code generator). Each op
//! says how it appears in ONNX ([`crate::op::Op::onnx`], next to its kernels); this module
//! walks the model, names tensors, adds the weights as initializers, and encodes the file.
//!
//! Tensors are batched (`[N, ...per-sample shape]`, `N` symbolic), as the engine's layers
//! see them.

use crate::model::{Sequential, TensorId};
use crate::train::NamedTensor;

/// The opset the graph is written for.
pub const OPSET: i64 = 17;

/// An attribute of an ONNX node.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// An integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A float.
    Float(f32),
}

/// One ONNX node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op_type: &'static str,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<(&'static str, Attr)>,
}

/// What an op sees when it writes its nodes: the names of its inputs, its parameter and
/// buffer tensors (in [`crate::op::Op::params`] then `buffers` order), the name its
/// result must have, and the per-sample shapes of its inputs.
pub struct OnnxCtx<'a> {
    pub inputs: &'a [String],
    pub params: &'a [String],
    pub output: &'a str,
    pub input_shapes: &'a [Vec<usize>],
    pub nodes: Vec<Node>,
    prefix: String,
}

impl OnnxCtx<'_> {
    /// Adds a node.
    pub fn node(
        &mut self,
        op_type: &'static str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<(&'static str, Attr)>,
    ) {
        self.nodes.push(Node {
            op_type,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attrs,
        });
    }

    /// A name for an intermediate tensor of this op.
    pub fn temp(&self, what: &str) -> String {
        format!("{}.{what}", self.prefix)
    }

    /// The op's only input.
    pub fn input(&self) -> &str {
        &self.inputs[0]
    }

    /// One node from the op's input and its parameters (in order) to its output: the form
    /// of most ops.
    pub fn with_params(&mut self, op_type: &'static str, attrs: Vec<(&'static str, Attr)>) {
        let mut inputs = vec![self.inputs[0].clone()];
        inputs.extend(self.params.iter().cloned());
        let output = self.output.to_string();
        self.nodes.push(Node {
            op_type,
            inputs,
            outputs: vec![output],
            attrs,
        });
    }

    /// One node from all the op's inputs to its output (merges: `Add`, `Concat`).
    pub fn merge(&mut self, op_type: &'static str, attrs: Vec<(&'static str, Attr)>) {
        let output = self.output.to_string();
        self.nodes.push(Node {
            op_type,
            inputs: self.inputs.to_vec(),
            outputs: vec![output],
            attrs,
        });
    }

    /// A 2-D pool: `kernel_shape` and `strides` from the pool's attributes.
    pub(crate) fn pool(&mut self, op_type: &'static str, attrs: &crate::max_pool2d::PoolAttrs) {
        let (kh, kw) = attrs.kernel.hw();
        let (sh, sw) = attrs.stride().hw();
        let i = |v: usize| v as i64;
        self.with_params(
            op_type,
            vec![
                ("kernel_shape", Attr::Ints(vec![i(kh), i(kw)])),
                ("strides", Attr::Ints(vec![i(sh), i(sw)])),
            ],
        );
    }
}

/// Pre- and post-processing folded into the graph: the input is raw features `[N, F]`,
/// `(x - input_offsets) * input_factors` feeds the model (reshaped to its input shape);
/// for regression the output is mapped back with `y / output_factors + output_offsets`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Processing {
    pub input_offsets: Vec<f32>,
    pub input_factors: Vec<f32>,
    pub output: Option<(Vec<f32>, Vec<f32>)>,
    /// Add a `probabilities` output (softmax of the logits).
    pub probabilities: bool,
}

/// The ONNX file of `model` with `weights` (named as its slots), with `processing` folded
/// in, and `metadata` key/value strings. Errors name a layer ONNX cannot express.
pub fn export(
    model: &Sequential,
    weights: &[NamedTensor],
    processing: &Processing,
    metadata: &[(String, String)],
) -> Result<Vec<u8>, String> {
    let mut nodes = Vec::new();
    let mut initializers: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut int_initializers: Vec<(String, Vec<i64>)> = Vec::new();
    let features: usize = model.input.iter().product();
    let mut tensor_names: Vec<String> = vec!["features.raw".to_string()];
    // Preprocessing: normalise, then reshape to the model's input shape.
    let mut current = "features.raw".to_string();
    if !processing.input_offsets.is_empty() {
        initializers.push((
            "preprocess.offsets".into(),
            vec![features],
            processing.input_offsets.clone(),
        ));
        initializers.push((
            "preprocess.factors".into(),
            vec![features],
            processing.input_factors.clone(),
        ));
        nodes.push(node(
            "Sub",
            &[&current, "preprocess.offsets"],
            &["preprocess.centred"],
        ));
        nodes.push(node(
            "Mul",
            &["preprocess.centred", "preprocess.factors"],
            &["preprocess.normalised"],
        ));
        current = "preprocess.normalised".to_string();
    }
    if model.input.len() > 1 {
        let mut shape = vec![-1i64];
        shape.extend(model.input.iter().map(|&d| d as i64));
        int_initializers.push(("preprocess.shape".into(), shape));
        nodes.push(node("Reshape", &[&current, "preprocess.shape"], &["input"]));
        current = "input".to_string();
    }
    tensor_names[0] = current;
    for (i, layer) in model.layers.iter().enumerate() {
        let params: Vec<String> = model
            .slots
            .iter()
            .filter(|s| s.layer == i)
            .map(|s| s.name.clone())
            .collect();
        for name in &params {
            let t = weights
                .iter()
                .find(|t| &t.name == name)
                .ok_or_else(|| format!("the weights lack tensor `{name}`"))?;
            initializers.push((t.name.clone(), t.shape.clone(), t.data.clone()));
        }
        let inputs: Vec<String> = layer
            .inputs
            .iter()
            .map(|&t: &TensorId| tensor_names[t.0].clone())
            .collect();
        let prefix = params
            .first()
            .and_then(|p| p.rsplit_once('.').map(|(l, _)| l.to_string()))
            .unwrap_or_else(|| format!("layers.{i}"));
        let output = format!("{prefix}.out");
        let mut ctx = OnnxCtx {
            inputs: &inputs,
            params: &params,
            output: &output,
            input_shapes: &layer.input_shapes,
            nodes: Vec::new(),
            prefix,
        };
        layer
            .op
            .onnx(&mut ctx)
            .map_err(|e| format!("layer {i} ({}): {e}", layer.op.kind()))?;
        nodes.extend(ctx.nodes);
        tensor_names.push(output);
    }
    let last = tensor_names.last().cloned().unwrap_or_default();
    let out_width: usize = model.output_shape().iter().product();
    let mut outputs = Vec::new();
    match &processing.output {
        Some((offsets, factors)) => {
            initializers.push((
                "postprocess.factors".into(),
                vec![out_width],
                factors.clone(),
            ));
            initializers.push((
                "postprocess.offsets".into(),
                vec![out_width],
                offsets.clone(),
            ));
            nodes.push(node(
                "Div",
                &[&last, "postprocess.factors"],
                &["postprocess.scaled"],
            ));
            nodes.push(node(
                "Add",
                &["postprocess.scaled", "postprocess.offsets"],
                &["output"],
            ));
        }
        None => nodes.push(node("Identity", &[&last], &["output"])),
    }
    outputs.push("output".to_string());
    if processing.probabilities {
        let mut n = node("Softmax", &["output"], &["probabilities"]);
        n.attrs.push(("axis", Attr::Int(-1)));
        nodes.push(n);
        outputs.push("probabilities".to_string());
    }
    Ok(encode_model(
        &nodes,
        &initializers,
        &int_initializers,
        features,
        &outputs,
        out_width,
        metadata,
    ))
}

fn node(op_type: &'static str, inputs: &[&str], outputs: &[&str]) -> Node {
    Node {
        op_type,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        attrs: Vec::new(),
    }
}

/// Protobuf wire encoding of the few ONNX messages used (field numbers from onnx.proto).
struct Pb(Vec<u8>);

impl Pb {
    fn new() -> Pb {
        Pb(Vec::new())
    }
    fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }
    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    fn message(&mut self, field: u32, m: Pb) {
        self.bytes(field, &m.0);
    }
    fn float(&mut self, field: u32, f: f32) {
        self.key(field, 5);
        self.0.extend_from_slice(&f.to_le_bytes());
    }
}

const FLOAT: i64 = 1;
const INT64: i64 = 7;

fn tensor_f32(name: &str, dims: &[usize], data: &[f32]) -> Pb {
    let mut t = Pb::new();
    for &d in dims {
        t.int(1, d as i64);
    }
    t.int(2, FLOAT);
    t.string(8, name);
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.bytes(9, &raw);
    t
}

fn tensor_i64(name: &str, data: &[i64]) -> Pb {
    let mut t = Pb::new();
    t.int(1, data.len() as i64);
    t.int(2, INT64);
    t.string(8, name);
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.bytes(9, &raw);
    t
}

/// A float tensor `[N, width]` value info, `N` symbolic.
fn value_info(name: &str, width: usize) -> Pb {
    let mut dim_n = Pb::new();
    dim_n.string(2, "N");
    let mut dim_w = Pb::new();
    dim_w.int(1, width as i64);
    let mut shape = Pb::new();
    shape.message(1, dim_n);
    shape.message(1, dim_w);
    let mut tensor = Pb::new();
    tensor.int(1, FLOAT);
    tensor.message(2, shape);
    let mut ty = Pb::new();
    ty.message(1, tensor);
    let mut v = Pb::new();
    v.string(1, name);
    v.message(2, ty);
    v
}

fn encode_node(n: &Node, index: usize) -> Pb {
    let mut m = Pb::new();
    for i in &n.inputs {
        m.string(1, i);
    }
    for o in &n.outputs {
        m.string(2, o);
    }
    m.string(3, &format!("{}_{index}", n.op_type));
    m.string(4, n.op_type);
    for (name, attr) in &n.attrs {
        let mut a = Pb::new();
        a.string(1, name);
        match attr {
            Attr::Float(f) => {
                a.float(2, *f);
                a.int(20, 1);
            }
            Attr::Int(i) => {
                a.int(3, *i);
                a.int(20, 2);
            }
            Attr::Ints(is) => {
                for i in is {
                    a.int(8, *i);
                }
                a.int(20, 7);
            }
        }
        m.message(5, a);
    }
    m
}

fn encode_model(
    nodes: &[Node],
    initializers: &[(String, Vec<usize>, Vec<f32>)],
    int_initializers: &[(String, Vec<i64>)],
    features: usize,
    outputs: &[String],
    out_width: usize,
    metadata: &[(String, String)],
) -> Vec<u8> {
    let mut graph = Pb::new();
    for (i, n) in nodes.iter().enumerate() {
        graph.message(1, encode_node(n, i));
    }
    graph.string(2, "engine");
    for (name, dims, data) in initializers {
        graph.message(5, tensor_f32(name, dims, data));
    }
    for (name, data) in int_initializers {
        graph.message(5, tensor_i64(name, data));
    }
    graph.message(11, value_info("features.raw", features));
    for o in outputs {
        graph.message(12, value_info(o, out_width));
    }
    let mut model = Pb::new();
    model.int(1, 8); // IR version 8 (ONNX 1.10+), which opset 17 needs at least.
    model.string(2, "engine");
    model.string(3, env!("CARGO_PKG_VERSION"));
    model.message(7, graph);
    let mut opset = Pb::new();
    opset.string(1, "");
    opset.int(2, OPSET);
    model.message(8, opset);
    for (k, v) in metadata {
        let mut entry = Pb::new();
        entry.string(1, k);
        entry.string(2, v);
        model.message(14, entry);
    }
    model.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_wire_format() {
        let mut pb = Pb::new();
        pb.int(1, 300);
        assert_eq!(pb.0, vec![0x08, 0xac, 0x02]);
        let mut pb = Pb::new();
        pb.string(2, "hi");
        assert_eq!(pb.0, vec![0x12, 2, b'h', b'i']);
        let mut pb = Pb::new();
        pb.float(2, 1.0);
        assert_eq!(pb.0, vec![0x15, 0, 0, 0x80, 0x3f]);
    }
}
