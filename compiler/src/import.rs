//! ONNX import: decodes the protobuf, evaluates constant subgraphs, and normalizes the graph into
//! the IR: BatchNorm and per-channel affine ops folded into the producing Conv/Gemm, ReLU/Clip
//! fused, MatMul+Add/Gemm turned into fully connected layers, and layout Transposes removed by
//! tracking each tensor's layout instead of moving data.
//!
//! Layout tracking: every activation is stored NHWC (the runtime's order). Its ONNX (logical)
//! shape is related to the stored one by `perm`: logical axis `i` is stored axis `perm[i]`
//! (stored axes: 0 = N, 1 = H, 2 = W, 3 = C). A Transpose only changes `perm`. A flatten of a
//! channel-major tensor is stored in NHWC order, so the element permutation is folded into the
//! columns of the fully connected layer that reads it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ndarray::{Array1, Array2, Array4, ArrayD, Axis, IxDyn};
use prost::Message;

use crate::ir::{Clamp, Conv, Fc, Graph, InputLayout, Node, OpKind, Value, ValueId, Window};
use crate::onnx_proto::{data_type, AttributeProto, ModelProto, NodeProto, TensorProto};

/// Logical NCHW stored as NHWC.
const NCHW: [usize; 4] = [0, 3, 1, 2];
const IDENTITY: [usize; 4] = [0, 1, 2, 3];

#[derive(Debug, Clone)]
enum Layout {
    /// Rank-4 feature map.
    Spatial([usize; 4]),
    /// Rank-2 `[1, K]`; `Some(p)`: stored element `j` is logical element `p[j]`.
    Flat(Option<Vec<usize>>),
}

#[derive(Debug, Clone)]
struct Act {
    id: ValueId,
    layout: Layout,
}

#[derive(Debug, Clone)]
enum Val {
    Const(ArrayD<f64>),
    Act(Act),
}

/// Loads and normalizes an ONNX file.
pub fn import(path: &Path) -> Result<Graph> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    import_bytes(&bytes).map_err(|e| anyhow!("{}: {e:#}", path.display()))
}

pub fn import_bytes(bytes: &[u8]) -> Result<Graph> {
    let model = ModelProto::decode(bytes).map_err(|e| anyhow!("not a valid ONNX protobuf ({e})"))?;
    let graph = model.graph.ok_or_else(|| anyhow!("not an ONNX model: it has no graph"))?;
    if graph.node.is_empty() {
        bail!("the ONNX graph has no nodes");
    }
    let mut b = Builder::default();
    for t in &graph.initializer {
        b.vals.insert(
            t.name.clone(),
            Val::Const(tensor_to_array(t).with_context(|| format!("initializer '{}'", t.name))?),
        );
    }
    for node in &graph.node {
        for name in &node.input {
            *b.uses.entry(name.clone()).or_default() += 1;
        }
    }
    for out in &graph.output {
        *b.uses.entry(out.name.clone()).or_default() += 1;
    }
    // The model input: the first graph input that is not an initializer (opset-8 exports list
    // initializers among the inputs).
    let input = graph
        .input
        .iter()
        .find(|i| !b.vals.contains_key(&i.name))
        .ok_or_else(|| anyhow!("the graph has no non-constant input"))?;
    let dims = input_dims(input)?;
    // ONNX does not say whether a rank-4 input is NCHW or NHWC: a Conv reading it directly says
    // NCHW, a Transpose says NHWC (TensorFlow converters); otherwise the smaller of dims 1 and 3
    // is taken as the channels.
    let first_consumer = graph.node.iter().find(|n| n.input.first() == Some(&input.name)).map(|n| n.op_type.as_str());
    let channel_major = match (first_consumer, dims.as_slice()) {
        (Some("Conv" | "BatchNormalization" | "MaxPool" | "AveragePool"), _) => true,
        (Some("Transpose"), _) => false,
        (_, [_, d1, _, d3]) => d1 <= d3,
        _ => false,
    };
    let (layout, stored, input_layout) = match dims.as_slice() {
        [_, c, h, w] if channel_major => (Layout::Spatial(NCHW), vec![*h, *w, *c], InputLayout::Nchw),
        [_, h, w, c] => (Layout::Spatial(IDENTITY), vec![*h, *w, *c], InputLayout::Nhwc),
        [_, k] => (Layout::Flat(None), vec![*k], InputLayout::Nhwc),
        other => bail!("input '{}' has shape {other:?}; expected [N, C, H, W], [N, H, W, C] or [N, K]", input.name),
    };
    let input_layout = if stored.len() == 3 && stored[2] == 1 { InputLayout::Nhwc } else { input_layout };
    let id = b.new_value(&input.name, stored);
    b.vals.insert(input.name.clone(), Val::Act(Act { id, layout }));

    for node in &graph.node {
        b.node(node).map_err(|e| {
            let name =
                if node.name.is_empty() { node.output.first().cloned().unwrap_or_default() } else { node.name.clone() };
            anyhow!("node '{name}' ({}): {e:#}", node.op_type)
        })?;
    }
    let out_name = &graph.output.first().ok_or_else(|| anyhow!("the graph has no output"))?.name;
    let output = match b.vals.get(out_name) {
        Some(Val::Act(a)) => a.id,
        Some(Val::Const(_)) => bail!("output '{out_name}' is a constant"),
        None => bail!("output '{out_name}' is never produced"),
    };
    let g = Graph { values: b.values, nodes: b.nodes, input: id, output, input_layout };
    if let Some(n) = g.nodes.iter().position(|n| matches!(n.op, OpKind::Softmax)) {
        if n + 1 != g.nodes.len() {
            bail!("Softmax '{}' is supported only as the last operation", g.nodes[n].name);
        }
    }
    Ok(g)
}

fn input_dims(input: &crate::onnx_proto::ValueInfoProto) -> Result<Vec<usize>> {
    let shape = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .ok_or_else(|| anyhow!("input '{}' has no tensor shape", input.name))?;
    // A symbolic or missing dimension is the batch only when it is the first.
    shape
        .dim
        .iter()
        .enumerate()
        .map(|(i, d)| match d.dim_value {
            Some(v) if v > 0 => Ok(v as usize),
            _ if i == 0 => Ok(1),
            _ => Err(anyhow!("input '{}' has an unknown dimension {i}", input.name)),
        })
        .collect()
}

#[derive(Default)]
struct Builder {
    vals: HashMap<String, Val>,
    uses: HashMap<String, usize>,
    values: Vec<Value>,
    nodes: Vec<Node>,
    /// Producer node of each value.
    producer: HashMap<ValueId, usize>,
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f)
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

fn attr_s(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// The stored (NHWC) shape `[1, H, W, C]` of a spatial act and its logical ONNX shape.
fn logical_shape(stored: [usize; 4], perm: [usize; 4]) -> [usize; 4] {
    [stored[perm[0]], stored[perm[1]], stored[perm[2]], stored[perm[3]]]
}

impl Builder {
    fn new_value(&mut self, name: &str, shape: Vec<usize>) -> ValueId {
        self.values.push(Value { name: name.to_string(), shape });
        self.values.len() - 1
    }

    fn push(
        &mut self,
        node: &NodeProto,
        op: OpKind,
        inputs: Vec<ValueId>,
        shape: Vec<usize>,
        layout: Layout,
    ) -> Result<()> {
        let out_name = node.output.first().ok_or_else(|| anyhow!("has no output"))?;
        let output = self.new_value(out_name, shape);
        let name = if node.name.is_empty() { out_name.clone() } else { node.name.clone() };
        self.nodes.push(Node { name, op, inputs, output });
        self.producer.insert(output, self.nodes.len() - 1);
        self.vals.insert(out_name.clone(), Val::Act(Act { id: output, layout }));
        Ok(())
    }

    fn get(&self, name: &str) -> Result<&Val> {
        self.vals.get(name).ok_or_else(|| anyhow!("input '{name}' is not produced by any earlier node"))
    }

    fn input(&self, node: &NodeProto, i: usize) -> Result<&Val> {
        let name = node.input.get(i).filter(|n| !n.is_empty()).ok_or_else(|| anyhow!("missing input {i}"))?;
        self.get(name)
    }

    fn optional_const(&self, node: &NodeProto, i: usize) -> Result<Option<ArrayD<f64>>> {
        match node.input.get(i).filter(|n| !n.is_empty()) {
            None => Ok(None),
            Some(name) => match self.get(name)? {
                Val::Const(c) => Ok(Some(c.clone())),
                Val::Act(_) => bail!("input {i} ('{name}') must be a constant"),
            },
        }
    }

    fn konst(&self, node: &NodeProto, i: usize) -> Result<ArrayD<f64>> {
        self.optional_const(node, i)?.ok_or_else(|| anyhow!("missing input {i}"))
    }

    fn set(&mut self, node: &NodeProto, v: Val) -> Result<()> {
        let out = node.output.first().ok_or_else(|| anyhow!("has no output"))?;
        self.vals.insert(out.clone(), v);
        Ok(())
    }

    fn logical(&self, a: &Act) -> Vec<usize> {
        let s = &self.values[a.id].shape;
        match &a.layout {
            Layout::Spatial(p) => logical_shape([1, s[0], s[1], s[2]], *p).to_vec(),
            Layout::Flat(_) => vec![1, s[0]],
        }
    }

    fn node(&mut self, node: &NodeProto) -> Result<()> {
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            bail!("operator domain '{}' is not supported", node.domain);
        }
        let all_const =
            node.input.iter().filter(|n| !n.is_empty()).all(|n| matches!(self.vals.get(n), Some(Val::Const(_))));
        if node.op_type == "Constant" {
            let a =
                attr(node, "value").and_then(|a| a.t.as_ref()).ok_or_else(|| anyhow!("attribute 'value' missing"))?;
            return self.set(node, Val::Const(tensor_to_array(a)?));
        }
        if all_const && !node.input.is_empty() {
            let v = self.fold_constant(node)?;
            return self.set(node, Val::Const(v));
        }
        match node.op_type.as_str() {
            "Identity" | "Dropout" => {
                let v = self.input(node, 0)?.clone();
                self.set(node, v)
            }
            "Transpose" => self.transpose(node),
            "Conv" => self.conv(node),
            "MatMul" | "Gemm" => self.fully_connected(node),
            "Add" | "Sub" | "Mul" | "Div" => self.binary(node),
            "BatchNormalization" => self.batch_norm(node),
            "Relu" => self.fuse_clamp(node, Clamp::RELU),
            "Clip" => {
                let lo = self.optional_const(node, 1)?.map_or(attr_f(node, "min", f32::NEG_INFINITY), |c| scalar(&c));
                let hi = self.optional_const(node, 2)?.map_or(attr_f(node, "max", f32::INFINITY), |c| scalar(&c));
                self.fuse_clamp(node, Clamp { lo, hi })
            }
            "AveragePool" | "MaxPool" | "GlobalAveragePool" => self.pool(node),
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => self.reshape(node),
            "Softmax" => self.softmax(node),
            "Shape" => {
                let Val::Act(a) = self.input(node, 0)?.clone() else { unreachable!("all-constant case handled above") };
                let s: Vec<f64> = self.logical(&a).iter().map(|&d| d as f64).collect();
                self.set(node, Val::Const(ArrayD::from_shape_vec(IxDyn(&[s.len()]), s)?))
            }
            other => bail!("operator '{other}' is not supported on activations"),
        }
    }

    fn act(&self, node: &NodeProto, i: usize) -> Result<Act> {
        match self.input(node, i)? {
            Val::Act(a) => Ok(a.clone()),
            Val::Const(_) => bail!("input {i} must be an activation, not a constant"),
        }
    }

    fn transpose(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let perm = attr_ints(node, "perm").ok_or_else(|| anyhow!("attribute 'perm' missing"))?;
        let layout = match (&a.layout, perm.as_slice()) {
            (Layout::Spatial(p), &[a0, a1, a2, a3]) => {
                let q = [a0 as usize, a1 as usize, a2 as usize, a3 as usize];
                if q.iter().any(|&x| x > 3) {
                    bail!("attribute 'perm' {perm:?} is invalid");
                }
                Layout::Spatial([p[q[0]], p[q[1]], p[q[2]], p[q[3]]])
            }
            (Layout::Flat(f), &[0, 1]) => Layout::Flat(f.clone()),
            _ => bail!("attribute 'perm' {perm:?} is not supported on a rank-{} tensor", self.logical(&a).len()),
        };
        if let Layout::Spatial(p) = layout {
            if p[0] != 0 {
                bail!("attribute 'perm' {perm:?} moves the batch axis");
            }
        }
        self.set(node, Val::Act(Act { id: a.id, layout }))
    }

    fn conv(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        if !matches!(a.layout, Layout::Spatial(p) if p == NCHW) {
            bail!("input must be a channel-major (NCHW) feature map");
        }
        let w = self.konst(node, 1)?;
        let bias = self.optional_const(node, 2)?;
        if w.ndim() != 4 {
            bail!("weight has rank {}; only 2-D convolutions are supported", w.ndim());
        }
        if let Some(d) = attr_ints(node, "dilations") {
            if d.iter().any(|&x| x != 1) {
                bail!("attribute 'dilations' {d:?} is not supported (only 1)");
            }
        }
        let (h, wd, c) = self.values[a.id].hwc();
        let (oc, icg, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
        let group = attr_i(node, "group", 1) as usize;
        let depthwise = group > 1;
        if depthwise && (group != c || icg != 1 || oc % c != 0) {
            bail!("attribute 'group' = {group} is not supported (only 1 or depthwise, group = input channels {c})");
        }
        if !depthwise && icg != c {
            bail!("weight expects {icg} input channels, the input has {c}");
        }
        let stride = attr_ints(node, "strides").unwrap_or(vec![1, 1]);
        let stride = [stride[0] as usize, *stride.get(1).unwrap_or(&stride[0]) as usize];
        let pads = self.pads(node, [h, wd], [kh, kw], stride)?;
        let window = Window { kernel: [kh, kw], stride, pads };
        let (oh, ow) = window
            .output_hw(h, wd)
            .ok_or_else(|| anyhow!("kernel {kh}x{kw} is larger than the padded input {h}x{wd}"))?;
        // OIHW → O, kh, kw, I.
        let weight = w.permuted_axes(IxDyn(&[0, 2, 3, 1])).mapv(|x| x as f32);
        let weight = Array4::from_shape_vec((oc, kh, kw, icg), weight.iter().copied().collect())?;
        let bias = match bias {
            Some(b) => Array1::from_iter(b.iter().map(|&x| x as f32)),
            None => Array1::zeros(oc),
        };
        if bias.len() != oc {
            bail!("bias has {} values for {oc} output channels", bias.len());
        }
        let op = OpKind::Conv(Conv { weight, bias, window, depthwise, clamp: Clamp::NONE });
        self.push(node, op, vec![a.id], vec![oh, ow, oc], Layout::Spatial(NCHW))
    }

    fn pads(&self, node: &NodeProto, hw: [usize; 2], kernel: [usize; 2], stride: [usize; 2]) -> Result<[usize; 4]> {
        let auto = attr_s(node, "auto_pad").unwrap_or_default();
        match auto.as_str() {
            "" | "NOTSET" => {
                let p = attr_ints(node, "pads").unwrap_or(vec![0; 4]);
                if p.len() != 4 || p.iter().any(|&x| x < 0) {
                    bail!("attribute 'pads' {p:?} is not supported");
                }
                Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
            }
            "VALID" => Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut pads = [0; 4];
                for d in 0..2 {
                    let out = hw[d].div_ceil(stride[d]);
                    let total = ((out - 1) * stride[d] + kernel[d]).saturating_sub(hw[d]);
                    let (small, big) = (total / 2, total - total / 2);
                    let (begin, end) = if auto == "SAME_UPPER" { (small, big) } else { (big, small) };
                    pads[d] = begin;
                    pads[d + 2] = end;
                }
                Ok(pads)
            }
            other => bail!("attribute 'auto_pad' = '{other}' is not supported"),
        }
    }

    fn pool(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        if !matches!(a.layout, Layout::Spatial(p) if p == NCHW) {
            bail!("input must be a channel-major (NCHW) feature map");
        }
        let (h, w, c) = self.values[a.id].hwc();
        let window = if node.op_type == "GlobalAveragePool" {
            Window { kernel: [h, w], stride: [1, 1], pads: [0; 4] }
        } else {
            let k = attr_ints(node, "kernel_shape").ok_or_else(|| anyhow!("attribute 'kernel_shape' missing"))?;
            if k.len() != 2 {
                bail!("attribute 'kernel_shape' {k:?} is not 2-D");
            }
            if attr_i(node, "ceil_mode", 0) != 0 {
                bail!("attribute 'ceil_mode' = 1 is not supported");
            }
            let kernel = [k[0] as usize, k[1] as usize];
            let s = attr_ints(node, "strides").unwrap_or(vec![1, 1]);
            let stride = [s[0] as usize, s[1] as usize];
            let pads = self.pads(node, [h, w], kernel, stride)?;
            if node.op_type == "AveragePool" && attr_i(node, "count_include_pad", 0) != 0 && pads.iter().any(|&p| p > 0)
            {
                bail!("attribute 'count_include_pad' = 1 with padding is not supported");
            }
            Window { kernel, stride, pads }
        };
        let (oh, ow) = window.output_hw(h, w).ok_or_else(|| anyhow!("pooling window larger than the input"))?;
        let op = if node.op_type == "MaxPool" { OpKind::MaxPool(window) } else { OpKind::AvgPool(window) };
        self.push(node, op, vec![a.id], vec![oh, ow, c], Layout::Spatial(NCHW))
    }

    fn fully_connected(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let Layout::Flat(perm) = a.layout.clone() else {
            bail!("input must be a [N, K] matrix; flatten the feature map first");
        };
        let k = self.values[a.id].elements();
        let b = self.konst(node, 1)?;
        if b.ndim() != 2 {
            bail!("weight has rank {}; expected 2", b.ndim());
        }
        // weight [out, in] in logical column order.
        let (mut weight, bias) = if node.op_type == "Gemm" {
            if attr_i(node, "transA", 0) != 0 {
                bail!("attribute 'transA' = 1 is not supported");
            }
            let alpha = attr_f(node, "alpha", 1.0) as f64;
            let beta = attr_f(node, "beta", 1.0) as f64;
            let b2 = b.into_dimensionality::<ndarray::Ix2>()?;
            let w = if attr_i(node, "transB", 0) != 0 { b2 } else { b2.reversed_axes() };
            let n = w.shape()[0];
            let bias = match self.optional_const(node, 2)? {
                Some(c) => c
                    .broadcast(IxDyn(&[n]))
                    .ok_or_else(|| anyhow!("bias C cannot broadcast to [{n}]"))?
                    .mapv(|x| x * beta),
                None => ArrayD::zeros(IxDyn(&[n])),
            };
            (w.mapv(|x| x * alpha), bias)
        } else {
            let w = b.into_dimensionality::<ndarray::Ix2>()?.reversed_axes();
            let n = w.shape()[0];
            (w, ArrayD::zeros(IxDyn(&[n])))
        };
        if weight.shape()[1] != k {
            bail!("weight expects {} inputs, the input has {k}", weight.shape()[1]);
        }
        if let Some(p) = perm {
            let logical = weight.clone();
            for (j, &src) in p.iter().enumerate() {
                weight.column_mut(j).assign(&logical.column(src));
            }
        }
        let n = weight.shape()[0];
        let weight = Array2::from_shape_fn((n, k), |(o, i)| weight[[o, i]] as f32);
        let bias = Array1::from_iter(bias.iter().map(|&x| x as f32));
        let op = OpKind::Fc(Fc { weight, bias, clamp: Clamp::NONE });
        self.push(node, op, vec![a.id], vec![n], Layout::Flat(None))
    }

    /// The node producing `a` if `a` feeds only the current node (so it may be rewritten).
    fn sole_producer(&self, node: &NodeProto, a: &Act) -> Option<usize> {
        let name = node.input.first()?;
        let used_once = self.uses.get(name).copied().unwrap_or(0) == 1;
        let p = *self.producer.get(&a.id)?;
        (used_once && self.nodes[p].output == a.id).then_some(p)
    }

    /// `y = x · mul + add`, per channel, folded into the Conv/FC that produced `x`.
    fn fold_affine(&mut self, node: &NodeProto, a: &Act, mul: &[f64], add: &[f64]) -> Result<()> {
        let p = self
            .sole_producer(node, a)
            .ok_or_else(|| anyhow!("cannot fold into the producer of its input (not a Conv/Gemm used only here)"))?;
        match &mut self.nodes[p].op {
            OpKind::Conv(c) if c.clamp.is_none() => {
                for (o, mut row) in c.weight.outer_iter_mut().enumerate() {
                    row.mapv_inplace(|w| (w as f64 * mul[o]) as f32);
                    c.bias[o] = (c.bias[o] as f64 * mul[o] + add[o]) as f32;
                }
            }
            OpKind::Fc(f) if f.clamp.is_none() => {
                for (o, mut row) in f.weight.outer_iter_mut().enumerate() {
                    row.mapv_inplace(|w| (w as f64 * mul[o]) as f32);
                    f.bias[o] = (f.bias[o] as f64 * mul[o] + add[o]) as f32;
                }
            }
            other => bail!("cannot fold a per-channel affine op into '{}'", other.name()),
        }
        self.set(node, Val::Act(a.clone()))
    }

    /// A constant broadcast to the act's logical shape, reduced to one value per stored channel;
    /// errors unless it is constant over every non-channel position.
    fn per_channel(&self, a: &Act, c: &ArrayD<f64>) -> Result<Vec<f64>> {
        let logical = self.logical(a);
        let full = c
            .broadcast(IxDyn(&logical))
            .ok_or_else(|| anyhow!("constant of shape {:?} does not broadcast to {:?}", c.shape(), logical))?;
        let stored: Vec<f64> = match &a.layout {
            Layout::Spatial(p) => {
                // Stored axis s holds logical axis inv[s].
                let mut inv = [0; 4];
                for (l, &s) in p.iter().enumerate() {
                    inv[s] = l;
                }
                full.permuted_axes(IxDyn(&inv)).iter().copied().collect()
            }
            Layout::Flat(perm) => {
                let flat: Vec<f64> = full.iter().copied().collect();
                match perm {
                    Some(p) => p.iter().map(|&i| flat[i]).collect(),
                    None => flat,
                }
            }
        };
        let ch = *self.values[a.id].shape.last().unwrap_or(&1);
        let per: Vec<f64> = stored[..ch].to_vec();
        if stored.chunks(ch).any(|chunk| chunk.iter().zip(&per).any(|(x, y)| x != y)) {
            bail!("constant varies across positions; only per-channel constants can be folded");
        }
        Ok(per)
    }

    fn binary(&mut self, node: &NodeProto) -> Result<()> {
        let (x, y) = (self.input(node, 0)?.clone(), self.input(node, 1)?.clone());
        let op = node.op_type.as_str();
        match (x, y) {
            (Val::Act(a), Val::Act(b)) if op == "Add" => {
                if self.values[a.id].shape != self.values[b.id].shape {
                    bail!(
                        "inputs have different shapes {:?} and {:?}",
                        self.values[a.id].shape,
                        self.values[b.id].shape
                    );
                }
                let same_layout = match (&a.layout, &b.layout) {
                    (Layout::Spatial(p), Layout::Spatial(q)) => p == q,
                    (Layout::Flat(p), Layout::Flat(q)) => p == q,
                    _ => false,
                };
                if !same_layout {
                    bail!("inputs are stored in different layouts");
                }
                let shape = self.values[a.id].shape.clone();
                self.push(node, OpKind::Add(Clamp::NONE), vec![a.id, b.id], shape, a.layout.clone())
            }
            (Val::Act(a), Val::Const(c)) | (Val::Const(c), Val::Act(a)) => {
                let act_first = matches!(self.input(node, 0)?, Val::Act(_));
                let k = self.per_channel(&a, &c)?;
                let n = k.len();
                let (mul, add): (Vec<f64>, Vec<f64>) = match (op, act_first) {
                    ("Add", _) => (vec![1.0; n], k),
                    ("Sub", true) => (vec![1.0; n], k.iter().map(|v| -v).collect()),
                    ("Sub", false) => (vec![-1.0; n], k),
                    ("Mul", _) => (k, vec![0.0; n]),
                    ("Div", true) => (k.iter().map(|v| 1.0 / v).collect(), vec![0.0; n]),
                    _ => bail!("constant / activation is not supported"),
                };
                self.fold_affine(node, &a, &mul, &add)
            }
            _ => bail!("'{op}' of two activations is not supported"),
        }
    }

    fn batch_norm(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let eps = attr_f(node, "epsilon", 1e-5) as f64;
        let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| self.konst(node, i));
        let (scale, bias, mean, var) = (scale?, bias?, mean?, var?);
        let mul: Vec<f64> = scale.iter().zip(var.iter()).map(|(s, v)| s / (v + eps).sqrt()).collect();
        let add: Vec<f64> = bias.iter().zip(mean.iter()).zip(&mul).map(|((b, m), k)| b - m * k).collect();
        let ch = *self.values[a.id].shape.last().unwrap_or(&0);
        if mul.len() != ch {
            bail!("has {} channels, the input has {ch}", mul.len());
        }
        if matches!(a.layout, Layout::Spatial(p) if p != NCHW) {
            bail!("input must be channel-major (NCHW)");
        }
        self.fold_affine(node, &a, &mul, &add)
    }

    fn fuse_clamp(&mut self, node: &NodeProto, clamp: Clamp) -> Result<()> {
        let a = self.act(node, 0)?;
        let p = self.sole_producer(node, &a).ok_or_else(|| {
            anyhow!("cannot fuse the activation: its input is not produced by a Conv, Gemm or Add used only here")
        })?;
        match &mut self.nodes[p].op {
            OpKind::Conv(c) => c.clamp = c.clamp.then(clamp),
            OpKind::Fc(f) => f.clamp = f.clamp.then(clamp),
            OpKind::Add(c) => *c = c.then(clamp),
            other => bail!("cannot fuse an activation into '{}'", other.name()),
        }
        self.set(node, Val::Act(a))
    }

    fn reshape(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let logical = self.logical(&a);
        let total: usize = logical.iter().product();
        let target: Vec<usize> = match node.op_type.as_str() {
            "Flatten" => {
                let axis = attr_i(node, "axis", 1);
                let axis = if axis < 0 { axis + logical.len() as i64 } else { axis } as usize;
                let head: usize = logical[..axis.min(logical.len())].iter().product();
                vec![head, total / head.max(1)]
            }
            "Reshape" => {
                let shape = self.konst(node, 1)?;
                let mut dims: Vec<i64> = shape.iter().map(|&x| x as i64).collect();
                for (i, d) in dims.iter_mut().enumerate() {
                    if *d == 0 {
                        *d = *logical.get(i).ok_or_else(|| anyhow!("shape {shape} copies a missing dimension"))? as i64;
                    }
                }
                let known: i64 = dims.iter().filter(|&&d| d > 0).product();
                dims.iter().map(|&d| if d < 0 { total / known.max(1) as usize } else { d as usize }).collect()
            }
            _ => {
                // Squeeze/Unsqueeze: drop or add unit axes.
                let axes = match self.optional_const(node, 1)? {
                    Some(c) => c.iter().map(|&x| x as i64).collect(),
                    None => attr_ints(node, "axes").unwrap_or_default(),
                };
                let mut dims = logical.clone();
                if node.op_type == "Squeeze" {
                    let mut keep = Vec::new();
                    for (i, &d) in dims.iter().enumerate() {
                        let named = axes.iter().any(|&x| (if x < 0 { x + dims.len() as i64 } else { x }) as usize == i);
                        if !(d == 1 && (axes.is_empty() || named)) {
                            keep.push(d);
                        }
                    }
                    dims = keep;
                } else {
                    let rank = dims.len() + axes.len();
                    let mut sorted: Vec<usize> =
                        axes.iter().map(|&x| (if x < 0 { x + rank as i64 } else { x }) as usize).collect();
                    sorted.sort_unstable();
                    for ax in sorted {
                        dims.insert(ax.min(dims.len()), 1);
                    }
                }
                dims
            }
        };
        if target.iter().product::<usize>() != total {
            bail!("cannot reshape {logical:?} to {target:?}");
        }
        if target.first() != Some(&1) {
            bail!("reshape to {target:?} changes the batch axis");
        }
        // stored position of each logical (row-major) element of the source.
        let src_order = self.stored_positions(&a);
        match target.len() {
            2 => {
                let perm = if src_order.iter().enumerate().all(|(i, &s)| i == s) {
                    None
                } else {
                    // stored element j of the new flat tensor (we keep the storage) is logical src_order⁻¹(j).
                    let mut inv = vec![0; src_order.len()];
                    for (l, &s) in src_order.iter().enumerate() {
                        inv[s] = l;
                    }
                    Some(inv)
                };
                let layout = Layout::Flat(perm);
                self.alias_or_reshape(node, a, vec![target[1]], layout)
            }
            4 => {
                // Choose a layout whose stored order matches the source's bytes.
                for perm in [NCHW, IDENTITY] {
                    let stored_shape = {
                        let mut s = [0; 4];
                        for (l, &st) in perm.iter().enumerate() {
                            s[st] = target[l];
                        }
                        s
                    };
                    let candidate = Act { id: a.id, layout: Layout::Spatial(perm) };
                    let order = positions(&target, &stored_shape, &perm);
                    if order == src_order {
                        let _ = candidate;
                        return self.alias_or_reshape(node, a, stored_shape[1..].to_vec(), Layout::Spatial(perm));
                    }
                }
                bail!("reshape {logical:?} → {target:?} needs a data transpose, which is not supported")
            }
            r => bail!("reshape to rank {r} ({target:?}) is not supported"),
        }
    }

    /// For each logical (row-major) element of `a`, its position in storage.
    fn stored_positions(&self, a: &Act) -> Vec<usize> {
        let s = &self.values[a.id].shape;
        match &a.layout {
            Layout::Spatial(p) => positions(&logical_shape([1, s[0], s[1], s[2]], *p), &[1, s[0], s[1], s[2]], p),
            Layout::Flat(None) => (0..s[0]).collect(),
            Layout::Flat(Some(p)) => {
                let mut pos = vec![0; p.len()];
                for (j, &l) in p.iter().enumerate() {
                    pos[l] = j;
                }
                pos
            }
        }
    }

    fn alias_or_reshape(&mut self, node: &NodeProto, a: Act, shape: Vec<usize>, layout: Layout) -> Result<()> {
        if self.values[a.id].shape == shape {
            return self.set(node, Val::Act(Act { id: a.id, layout }));
        }
        self.push(node, OpKind::Reshape, vec![a.id], shape, layout)
    }

    fn softmax(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let rank = self.logical(&a).len() as i64;
        let axis = attr_i(node, "axis", if rank == 2 { 1 } else { -1 });
        let axis = if axis < 0 { axis + rank } else { axis };
        let last_stored = match &a.layout {
            Layout::Flat(None) => axis == 1,
            Layout::Spatial(p) => p[axis as usize] == 3 && self.values[a.id].shape[..2] == [1, 1],
            Layout::Flat(Some(_)) => false,
        };
        if !last_stored {
            bail!("Softmax over axis {axis} is not supported (only over the class axis of a [N, K] tensor)");
        }
        let k = self.values[a.id].elements();
        self.push(node, OpKind::Softmax, vec![a.id], vec![k], Layout::Flat(None))
    }

    fn fold_constant(&self, node: &NodeProto) -> Result<ArrayD<f64>> {
        let c = |i: usize| self.konst(node, i);
        let binary = |f: fn(f64, f64) -> f64| -> Result<ArrayD<f64>> {
            let (x, y) = (c(0)?, c(1)?);
            let shape = broadcast_shape(x.shape(), y.shape())?;
            let xb = x.broadcast(IxDyn(&shape)).ok_or_else(|| anyhow!("broadcast"))?;
            let yb = y.broadcast(IxDyn(&shape)).ok_or_else(|| anyhow!("broadcast"))?;
            Ok(ndarray::Zip::from(&xb).and(&yb).map_collect(|&a, &b| f(a, b)))
        };
        Ok(match node.op_type.as_str() {
            "Identity" | "Cast" | "Dropout" => c(0)?,
            "Add" => binary(|a, b| a + b)?,
            "Sub" => binary(|a, b| a - b)?,
            "Mul" => binary(|a, b| a * b)?,
            "Div" => binary(|a, b| a / b)?,
            "Sqrt" => c(0)?.mapv(f64::sqrt),
            "Neg" => c(0)?.mapv(|x| -x),
            "Reciprocal" => c(0)?.mapv(|x| 1.0 / x),
            "Transpose" => {
                let x = c(0)?;
                let perm: Vec<usize> = match attr_ints(node, "perm") {
                    Some(p) => p.iter().map(|&v| v as usize).collect(),
                    None => (0..x.ndim()).rev().collect(),
                };
                x.permuted_axes(IxDyn(&perm)).as_standard_layout().to_owned()
            }
            "Reshape" => {
                let x = c(0)?;
                let shape = c(1)?;
                let total = x.len();
                let mut dims: Vec<i64> = shape.iter().map(|&v| v as i64).collect();
                for (i, d) in dims.iter_mut().enumerate() {
                    if *d == 0 {
                        *d = x.shape()[i] as i64;
                    }
                }
                let known: i64 = dims.iter().filter(|&&d| d > 0).product();
                let dims: Vec<usize> =
                    dims.iter().map(|&d| if d < 0 { total / known as usize } else { d as usize }).collect();
                ArrayD::from_shape_vec(IxDyn(&dims), x.as_standard_layout().iter().copied().collect())?
            }
            "Unsqueeze" | "Squeeze" => {
                let x = c(0)?;
                let axes: Vec<i64> = match self.optional_const(node, 1)? {
                    Some(a) => a.iter().map(|&v| v as i64).collect(),
                    None => attr_ints(node, "axes").unwrap_or_default(),
                };
                let mut dims: Vec<usize> = x.shape().to_vec();
                if node.op_type == "Unsqueeze" {
                    let rank = dims.len() + axes.len();
                    let mut ax: Vec<usize> =
                        axes.iter().map(|&a| (if a < 0 { a + rank as i64 } else { a }) as usize).collect();
                    ax.sort_unstable();
                    for a in ax {
                        dims.insert(a, 1);
                    }
                } else {
                    let rank = dims.len() as i64;
                    let drop: Vec<usize> = axes.iter().map(|&a| (if a < 0 { a + rank } else { a }) as usize).collect();
                    dims = dims
                        .iter()
                        .enumerate()
                        .filter(|(i, &d)| !(d == 1 && (drop.is_empty() || drop.contains(i))))
                        .map(|(_, &d)| d)
                        .collect();
                }
                ArrayD::from_shape_vec(IxDyn(&dims), x.as_standard_layout().iter().copied().collect())?
            }
            "Concat" => {
                let axis = attr_i(node, "axis", 0);
                let parts: Vec<ArrayD<f64>> = (0..node.input.len()).map(c).collect::<Result<_>>()?;
                let axis = if axis < 0 { axis + parts[0].ndim() as i64 } else { axis } as usize;
                let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
                ndarray::concatenate(Axis(axis), &views)?
            }
            "Gather" => {
                let x = c(0)?;
                let idx = c(1)?;
                let axis = attr_i(node, "axis", 0);
                let axis = if axis < 0 { axis + x.ndim() as i64 } else { axis } as usize;
                let n = x.shape()[axis] as i64;
                let picks: Vec<usize> =
                    idx.iter().map(|&i| if (i as i64) < 0 { (i as i64 + n) as usize } else { i as usize }).collect();
                let g = x.select(Axis(axis), &picks);
                if idx.ndim() == 0 {
                    g.index_axis(Axis(axis), 0).to_owned()
                } else {
                    g
                }
            }
            "Shape" => {
                let x = c(0)?;
                let s: Vec<f64> = x.shape().iter().map(|&d| d as f64).collect();
                ArrayD::from_shape_vec(IxDyn(&[s.len()]), s)?
            }
            other => bail!("operator '{other}' is not supported in constant folding"),
        })
    }
}

/// For each element of a row-major `logical` shape, its index in row-major `stored` storage,
/// where logical axis `i` is stored axis `perm[i]`.
fn positions(logical: &[usize], stored: &[usize], perm: &[usize]) -> Vec<usize> {
    let total: usize = logical.iter().product();
    let mut strides = vec![1; stored.len()];
    for i in (0..stored.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * stored[i + 1];
    }
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0; logical.len()];
    for _ in 0..total {
        out.push(idx.iter().zip(perm).map(|(&i, &p)| i * strides[p]).sum());
        for d in (0..logical.len()).rev() {
            idx[d] += 1;
            if idx[d] < logical[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let x = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
            let y = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
            match (x, y) {
                (x, y) if x == y => Ok(x),
                (1, y) => Ok(y),
                (x, 1) => Ok(x),
                _ => Err(anyhow!("shapes {a:?} and {b:?} do not broadcast")),
            }
        })
        .collect()
}

fn scalar(c: &ArrayD<f64>) -> f32 {
    c.iter().next().copied().unwrap_or(0.0) as f32
}

/// Decodes an ONNX tensor into f64 values (exact for every integer an ONNX shape can hold).
fn tensor_to_array(t: &TensorProto) -> Result<ArrayD<f64>> {
    if t.data_location == 1 {
        bail!("tensor '{}' uses external data, which is not supported", t.name);
    }
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let n: usize = dims.iter().product();
    let raw = &t.raw_data;
    let values: Vec<f64> = match t.data_type {
        data_type::FLOAT if !raw.is_empty() => {
            raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect()
        }
        data_type::FLOAT => t.float_data.iter().map(|&x| x as f64).collect(),
        data_type::DOUBLE if !raw.is_empty() => {
            raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
        }
        data_type::DOUBLE => t.double_data.clone(),
        data_type::INT64 if !raw.is_empty() => {
            raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64).collect()
        }
        data_type::INT64 => t.int64_data.iter().map(|&x| x as f64).collect(),
        data_type::INT32 if !raw.is_empty() => {
            raw.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect()
        }
        data_type::INT32 | data_type::BOOL => t.int32_data.iter().map(|&x| x as f64).collect(),
        data_type::UINT8 if !raw.is_empty() => raw.iter().map(|&x| x as f64).collect(),
        data_type::INT8 if !raw.is_empty() => raw.iter().map(|&x| x as i8 as f64).collect(),
        data_type::UINT8 | data_type::INT8 => t.int32_data.iter().map(|&x| x as f64).collect(),
        other => bail!("tensor '{}' has data type {other}, which is not supported", t.name),
    };
    if values.len() != n {
        bail!("tensor '{}' has {} values for shape {:?}", t.name, values.len(), dims);
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&dims), values)?)
}
