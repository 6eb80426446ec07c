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

mod elementwise;
mod fuse;
mod rewrite;
mod shape_ops;

use std::collections::{HashMap, HashSet};
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
    /// Rank-3 sequence, stored NHWC as `[1, 1, L, C]`: a one-row feature map. Logical axis `i`
    /// is stored axis `p[i]` of `[N, L, C]` (the value's `[1, L, C]` without its H): [`SEQ`] for
    /// channel-major `[N, C, L]` (Conv1d), [`SEQ_LAST`] for channels-last `[N, L, C]` (Keras'
    /// Conv1D input, which TensorFlow converters unsqueeze and transpose to NCHW).
    Seq([usize; 3]),
}

/// Logical `[N, C, L]` axis `i` is stored axis `SEQ[i]` of `[N, L, C]`.
const SEQ: [usize; 3] = [0, 2, 1];
/// Logical `[N, L, C]`: stored as it is.
const SEQ_LAST: [usize; 3] = [0, 1, 2];

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

/// Largest tensor the importer accepts (activations and constants), in elements: 2^24. A
/// microcontroller's arena is kilobytes to a few megabytes, so no model this toolchain targets comes
/// near it, and the bound keeps a small malformed file (a huge pad, kernel or reshape) from making
/// the host allocate gigabytes before anything fails.
pub const MAX_ELEMENTS: usize = 1 << 24;

/// Largest window work of one convolution or pooling layer, output positions × kernel taps × input
/// channels, in elements: 2^26. It is the size of the float reference's im2col matrix and of the
/// patches GPTQ's moments read, which a huge kernel or padding could otherwise blow up.
pub const MAX_WINDOW_ELEMENTS: usize = 1 << 26;

/// Operators imported on activations.
const ACTIVATION_OPS: &[&str] = &[
    "Identity",
    "ReduceMean",
    "ReduceMax",
    "GlobalMaxPool",
    "Dropout",
    "Transpose",
    "Conv",
    "MatMul",
    "Gemm",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "BatchNormalization",
    "Relu",
    "Clip",
    "AveragePool",
    "MaxPool",
    "GlobalAveragePool",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Tile",
    "Softmax",
    "LogSoftmax",
    "Shape",
    "Constant",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Gelu",
    "PRelu",
    "Erf",
    "Concat",
    "Gather",
    "Slice",
    "Split",
    "Resize",
    "Upsample",
    "Pad",
    "ConvTranspose",
];

/// Operators evaluated only when all their inputs are constants (see `fold_constant`).
const CONSTANT_ONLY_OPS: &[&str] = &["Cast", "Sqrt", "Neg", "Reciprocal", "ConstantOfShape"];

/// The indices ONNX's Slice takes along an axis of `dim` elements, negative steps included (the
/// TorchScript exporter reverses Pad's pads with one).
fn slice_indices(start: i64, end: i64, step: i64, dim: usize) -> Result<Vec<usize>> {
    let d = dim as i64;
    if step == 0 {
        bail!("a slice step of 0");
    }
    let wrap = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, e) = (wrap(start).clamp(0, d), wrap(end).clamp(0, d));
        while i < e {
            out.push(i as usize);
            i += step;
        }
    } else {
        let (mut i, e) = (wrap(start).clamp(0, d - 1), wrap(end).clamp(-1, d - 1));
        while i > e {
            out.push(i as usize);
            i += step;
        }
    }
    Ok(out)
}

/// Loads and normalizes an ONNX file.
pub fn import(path: &Path) -> Result<Graph> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    import_model(&bytes, Some(dir)).map_err(|e| anyhow!("{}: {e:#}", path.display()))
}

/// Imports a model held in memory; weights in external files are refused (there is no folder
/// to find them in).
pub fn import_bytes(bytes: &[u8]) -> Result<Graph> {
    import_model(bytes, None)
}

/// Reads the external data of every initializer that has some into its `raw_data` (ONNX
/// external data: `location` relative to the model's folder, `offset`, `length`), checking that
/// the file stays inside that folder and the range inside the file before reading.
fn load_external_data(tensors: &mut [TensorProto], dir: Option<&Path>) -> Result<()> {
    for t in tensors.iter_mut().filter(|t| t.data_location == crate::onnx_proto::DATA_LOCATION_EXTERNAL) {
        let field = |key: &str| t.external_data.iter().find(|e| e.key == key).map(|e| e.value.clone());
        let what = format!("initializer '{}'", t.name);
        let Some(dir) = dir else { bail!("{what} uses external data, which needs the model file's folder") };
        let location = field("location").ok_or_else(|| anyhow!("{what}: external data without a 'location'"))?;
        let relative = Path::new(&location);
        if relative.is_absolute() || relative.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            bail!("{what}: external data location '{location}' must be a plain path inside the model's folder");
        }
        let number = |key: &str| -> Result<Option<u64>> {
            field(key)
                .map(|v| v.parse::<u64>().map_err(|_| anyhow!("{what}: external data {key} '{v}' is not a byte count")))
                .transpose()
        };
        let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
        let path = dir.join(relative);
        let mut file = std::fs::File::open(&path)
            .with_context(|| format!("{what}: cannot open its external data {}", path.display()))?;
        let size = file.metadata().with_context(|| format!("{what}: {}", path.display()))?.len();
        let length = length.unwrap_or(size.saturating_sub(offset));
        if offset.checked_add(length).is_none_or(|end| end > size) {
            bail!(
                "{what}: external data bytes {offset}..{} lie outside {} ({size} bytes)",
                offset.saturating_add(length),
                path.display()
            );
        }
        if length > MAX_EXTERNAL_TENSOR_BYTES {
            bail!("{what}: {length} bytes of external data; tensors are limited to {MAX_EXTERNAL_TENSOR_BYTES} bytes");
        }
        use std::io::{Read, Seek, SeekFrom};
        file.seek(SeekFrom::Start(offset)).with_context(|| format!("{what}: {}", path.display()))?;
        let mut raw = vec![0u8; length as usize];
        file.read_exact(&mut raw).with_context(|| format!("{what}: reading {}", path.display()))?;
        t.raw_data = raw;
        t.data_location = 0;
        t.external_data.clear();
    }
    Ok(())
}

/// The largest external tensor read (a model for a microcontroller has kilobytes to megabytes).
const MAX_EXTERNAL_TENSOR_BYTES: u64 = 1 << 30;

fn import_model(bytes: &[u8], dir: Option<&Path>) -> Result<Graph> {
    let model = ModelProto::decode(bytes).map_err(|e| anyhow!("not a valid ONNX protobuf ({e})"))?;
    let mut graph = model.graph.ok_or_else(|| anyhow!("not an ONNX model: it has no graph"))?;
    load_external_data(&mut graph.initializer, dir)?;
    if graph.node.is_empty() {
        bail!("the ONNX graph has no nodes");
    }
    // Every unsupported operator at once, before any work: a user converting a model learns the
    // whole list in one run.
    unsupported_ops(&graph.node)?;
    let mut b = Builder {
        opset: model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(13, |o| o.version),
        ..Builder::default()
    };
    for t in &graph.initializer {
        if is_integer_type(i64::from(t.data_type)) {
            b.integer_consts.insert(t.name.clone());
        }
        b.vals.insert(
            t.name.clone(),
            Val::Const(tensor_to_array(t).with_context(|| format!("initializer '{}'", t.name))?),
        );
    }
    let output_names: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    rewrite::keras_prelu(&mut graph.node, &mut b.vals, &output_names);
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
    let reader_of = |name: &String| graph.node.iter().find(|n| n.input.first() == Some(name));
    let mut first = reader_of(&input.name);
    // A Pad moves no axis, so its reader tells: tf2onnx writes Keras' causal Conv1D on
    // `[N, L, C]` as a Pad of L, then the Unsqueeze and Transpose.
    while let Some(pad) = first.filter(|n| n.op_type == "Pad") {
        first = pad.output.first().and_then(reader_of);
    }
    let first_consumer = first.map(|n| n.op_type.as_str());
    // A rank-3 input likewise is `[N, C, L]` unless a Transpose reads it or an Unsqueeze makes it
    // `[N, 1, D1, D2]`: Keras' channels-last `[N, L, C]` as tf2onnx writes Conv1D (ExpandDims to
    // `[N, 1, L, C]`, then a Transpose to NCHW). An Unsqueeze elsewhere, `[N, C, 1, L]`, is
    // PyTorch's Conv1d-as-Conv2d on `[N, C, L]`.
    let unsqueeze_axes = first.filter(|n| n.op_type == "Unsqueeze").map(|n| match n.input.get(1) {
        Some(name) => match b.vals.get(name) {
            Some(Val::Const(c)) => integers(c, "the axes").unwrap_or_default(),
            _ => Vec::new(),
        },
        None => attr_ints(n, "axes").unwrap_or_default(),
    });
    let channel_major = match (first_consumer, dims.as_slice()) {
        (Some("Conv" | "ConvTranspose" | "BatchNormalization" | "MaxPool" | "AveragePool"), _) => true,
        (Some("Transpose"), _) => false,
        (Some("Unsqueeze"), [_, _, _]) => !matches!(unsqueeze_axes.as_deref(), Some([1 | -3])),
        (_, [_, _, _]) => true,
        (_, [_, d1, _, d3]) => d1 <= d3,
        _ => false,
    };
    let (layout, stored, input_layout) = match dims.as_slice() {
        [_, c, h, w] if channel_major => (Layout::Spatial(NCHW), vec![*h, *w, *c], InputLayout::Nchw),
        [_, h, w, c] => (Layout::Spatial(IDENTITY), vec![*h, *w, *c], InputLayout::Nhwc),
        [_, k] => (Layout::Flat(None), vec![*k], InputLayout::Nhwc),
        // A 1-D signal `[N, C, L]` (Conv1d), a one-row image to the runtime.
        [_, c, l] if channel_major => (Layout::Seq(SEQ), vec![1, *l, *c], InputLayout::Nchw),
        [_, l, c] => (Layout::Seq(SEQ_LAST), vec![1, *l, *c], InputLayout::Nhwc),
        other => bail!(
            "input '{}' has shape {other:?}; expected [N, C, H, W], [N, H, W, C], [N, C, L], [N, L, C] or [N, K]",
            input.name
        ),
    };
    let input_layout = if stored.len() == 3 && stored[2] == 1 { InputLayout::Nhwc } else { input_layout };
    let id = b.new_value(&input.name, stored)?;
    b.vals.insert(input.name.clone(), Val::Act(Act { id, layout }));

    for node in &graph.node {
        b.node(node).map_err(|e| anyhow!("node '{}' ({}): {e:#}", node_name(node), node.op_type))?;
    }
    if graph.output.is_empty() {
        bail!("the graph has no output");
    }
    let outputs: Vec<ValueId> = graph
        .output
        .iter()
        .map(|o| match b.vals.get(&o.name) {
            Some(Val::Act(a)) => Ok(a.id),
            Some(Val::Const(_)) => bail!("output '{}' is a constant", o.name),
            None => bail!("output '{}' is never produced", o.name),
        })
        .collect::<Result<_>>()?;
    let (output, extra_outputs) = (outputs[0], outputs[1..].to_vec());
    let mut g = Graph { values: b.values, nodes: b.nodes, input: id, output, input_layout, extra_outputs };
    fuse::fuse_activation_patterns(&mut g);
    // The runtime computes them in f32, which no later op reads.
    if let Some(n) = g.nodes.iter().position(|n| n.op.is_normalization()) {
        if n + 1 != g.nodes.len() {
            let what = if matches!(g.nodes[n].op, OpKind::Softmax) { "Softmax" } else { "LogSoftmax" };
            bail!(
                "node '{}' ({what}): supported only as the last operation, producing the model's output (the \
                 runtime computes it in f32, which no later operation reads); here '{}' ({}) follows it",
                g.nodes[n].name,
                g.nodes[n + 1].name,
                g.nodes[n + 1].op.name()
            );
        }
    }
    Ok(g)
}

/// The layout of a rank-4 reshape of a rank-4 map (stored with `perm`) that only moves unit
/// axes, as the Transpose it equals would give it: the non-unit axes keep their order and their
/// stored axes, the unit axes too. tf2onnx writes a Transpose of a map with H = W = 1 (or C = 1)
/// as such a Reshape, `[N, C, 1, 1]` to `[N, 1, 1, C]` before MobileNetV2's global pool; read
/// NCHW first, the channels would land on W.
fn moved_unit_axes(from: &[usize], to: &[usize], perm: &[usize; 4]) -> Option<[usize; 4]> {
    let non_unit = |shape: &[usize]| (1..4).filter(|&i| shape[i] != 1).collect::<Vec<_>>();
    let unit = |shape: &[usize]| (1..4).filter(|&i| shape[i] == 1).collect::<Vec<_>>();
    let (src, dst) = (non_unit(from), non_unit(to));
    if from.len() != 4 || to.len() != 4 || src.len() != dst.len() {
        return None;
    }
    if src.iter().zip(&dst).any(|(&s, &d)| from[s] != to[d]) {
        return None;
    }
    // Target axis i is source axis t[i].
    let mut t = [0usize; 4];
    for (&d, &s) in dst.iter().zip(&src).chain(unit(to).iter().zip(&unit(from))) {
        t[d] = s;
    }
    Some(std::array::from_fn(|i| perm[t[i]]))
}

/// The name errors give a node: its own, or its first output's when it has none.
fn node_name(node: &NodeProto) -> String {
    if node.name.is_empty() {
        node.output.first().cloned().unwrap_or_default()
    } else {
        node.name.clone()
    }
}

/// Errors listing every node whose operator the importer does not know, grouped by operator.
fn unsupported_ops(nodes: &[NodeProto]) -> Result<()> {
    let mut by_op: Vec<(String, Vec<String>)> = Vec::new();
    for node in nodes {
        let default_domain = node.domain.is_empty() || node.domain == "ai.onnx";
        let known =
            ACTIVATION_OPS.contains(&node.op_type.as_str()) || CONSTANT_ONLY_OPS.contains(&node.op_type.as_str());
        if default_domain && known {
            continue;
        }
        let op = if default_domain { node.op_type.clone() } else { format!("{}::{}", node.domain, node.op_type) };
        match by_op.iter_mut().find(|(o, _)| *o == op) {
            Some((_, names)) => names.push(node_name(node)),
            None => by_op.push((op, vec![node_name(node)])),
        }
    }
    // What to do instead, for the unsupported operators PyTorch users meet most.
    let hints: String = by_op.iter().filter_map(|(op, _)| unsupported_op_hint(op)).map(|h| format!("; {h}")).collect();
    match by_op.as_slice() {
        [] => Ok(()),
        [(op, names)] if names.len() == 1 => {
            let op_type = nodes.iter().find(|n| node_name(n) == names[0]).map_or("", |n| n.op_type.as_str());
            bail!("node '{}' ({op_type}): operator '{op}' is not supported{hints}", names[0])
        }
        groups => {
            const LISTED: usize = 3;
            let parts: Vec<String> = groups
                .iter()
                .map(|(op, names)| match names.as_slice() {
                    [one] => format!("{op} (node {one})"),
                    many => {
                        let shown = many.iter().take(LISTED).cloned().collect::<Vec<_>>().join(", ");
                        let more = if many.len() > LISTED { ", …" } else { "" };
                        format!("{op} ({} nodes: {shown}{more})", many.len())
                    }
                })
                .collect();
            bail!("unsupported ops: {}{hints}", parts.join(", "))
        }
    }
}

/// A way around an unsupported operator, where there is a usual one.
fn unsupported_op_hint(op: &str) -> Option<&'static str> {
    Some(match op {
        "GRU" | "LSTM" | "RNN" => "recurrent layers are not supported; a Conv1d or TCN over the sequence is",
        "LayerNormalization" | "GroupNormalization" | "InstanceNormalization" => {
            "normalization over computed statistics is not supported; BatchNormalization (folded) is"
        }
        "Erfc" => {
            "ONNX has no Erfc (tf2onnx writes Keras' exact gelu with it; onnxruntime refuses the file too); swish \
             imports as one table"
        }
        _ => return None,
    })
}

/// The element count of `shape`, checked for overflow and against [`MAX_ELEMENTS`].
fn bounded_elements(shape: &[usize], what: &str) -> Result<usize> {
    match shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
        Some(n) if n <= MAX_ELEMENTS => Ok(n),
        _ => {
            bail!("{what} of shape {shape:?} would have more than {MAX_ELEMENTS} elements (2^24, the importer's limit)")
        }
    }
}

/// `axis` in `[-rank, rank)` as an index.
fn axis_index(axis: i64, rank: usize, what: &str) -> Result<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        bail!("{what} {axis} is out of range for a rank-{rank} tensor");
    }
    Ok((if axis < 0 { axis + r } else { axis }) as usize)
}

/// Is `perm` a permutation of `0..n`?
fn is_permutation(perm: &[i64], n: usize) -> bool {
    let mut seen = vec![false; n];
    perm.len() == n
        && perm.iter().all(|&p| match usize::try_from(p).ok().and_then(|p| seen.get_mut(p)) {
            Some(s) if !*s => {
                *s = true;
                true
            }
            _ => false,
        })
}

/// Integer values of a constant (shapes, axes, indices); errors on fractions.
fn integers(c: &ArrayD<f64>, what: &str) -> Result<Vec<i64>> {
    c.iter()
        .map(|&x| {
            if !x.is_finite() || x.fract() != 0.0 {
                bail!("{what} holds {x}, which is not an integer");
            }
            // Beyond 2^53 only the exporters' "to the end" sentinels (±2^63) occur; they
            // saturate.
            Ok(x as i64)
        })
        .collect()
}

/// ONNX Reshape's target for an `input` shape: `0` copies the input's dimension at that index
/// (`allowzero` = 0), one `-1` takes what is left.
fn reshape_target(input: &[usize], spec: &[i64]) -> Result<Vec<usize>> {
    let total = bounded_elements(input, "the reshaped tensor")?;
    let mut dims = Vec::with_capacity(spec.len());
    let mut inferred = None;
    for (i, &d) in spec.iter().enumerate() {
        dims.push(match d {
            -1 if inferred.is_some() => bail!("shape {spec:?} has more than one -1"),
            -1 => {
                inferred = Some(i);
                1
            }
            0 => *input.get(i).ok_or_else(|| {
                anyhow!("shape {spec:?} copies dimension {i}, which the {input:?} input does not have")
            })?,
            d if d > 0 => usize::try_from(d).unwrap_or(usize::MAX),
            d => bail!("shape {spec:?} has the negative dimension {d}"),
        });
    }
    let known = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if let Some(i) = inferred {
        match known {
            Some(k) if k > 0 && total % k == 0 => dims[i] = total / k,
            _ => bail!("shape {spec:?}: no -1 makes {input:?} ({total} elements) fit"),
        }
    } else if known != Some(total) {
        bail!("cannot reshape {input:?} ({total} elements) to {spec:?}");
    }
    Ok(dims)
}

/// Errors unless every value of the constant `c` (input `name`) is finite.
fn check_finite(c: &ArrayD<f64>, name: &str) -> Result<()> {
    match c.iter().position(|x| !x.is_finite()) {
        Some(i) => bail!(
            "tensor '{name}' holds {} at element {i}; weights and constants must be finite",
            c.iter().nth(i).copied().unwrap_or(f64::NAN)
        ),
        None => Ok(()),
    }
}

/// Errors unless every value of a layer's f32 parameter is finite (f64 constants beyond the f32
/// range, or a folded scale that overflows, become infinities here).
fn check_finite_f32<'a>(values: impl IntoIterator<Item = &'a f32>, what: &str) -> Result<()> {
    match values.into_iter().position(|x| !x.is_finite()) {
        Some(i) => bail!(
            "{what} element {i} is not finite in f32 (a constant beyond ±3.4e38 or a folded scale that overflows)"
        ),
        None => Ok(()),
    }
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
    /// Outputs of constant zero Pads, with their input and spatial pads `[top, left, bottom,
    /// right]`, waiting for the Conv that takes them as padding.
    pending_pads: HashMap<String, (Act, [usize; 4])>,
    /// Rank-5 values of an upsampling by repetition (Keras 3's UpSampling2D), waiting for the
    /// Reshape that ends it.
    pending_repeats: HashMap<String, shape_ops::Repeat>,
    /// The model's default-domain opset.
    opset: i64,
    /// Names of the constants of an integer element type (shape arithmetic), whose Div
    /// truncates and whose Cast from a float drops the fraction: TorchScript's `chunk` computes
    /// `(C + 1) / 2` in int64, which is 8 for 16 channels, not 8.5.
    integer_consts: HashSet<String>,
}

fn is_integer_type(data_type: i64) -> bool {
    // UINT8 INT8 UINT16 INT16 INT32 INT64 BOOL UINT32 UINT64 (onnx.proto's TensorProto.DataType).
    matches!(data_type, 2..=7 | 9 | 12 | 13)
}

fn same_layout(a: &Layout, b: &Layout) -> bool {
    match (a, b) {
        (Layout::Spatial(p), Layout::Spatial(q)) => p == q,
        (Layout::Flat(p), Layout::Flat(q)) => p == q,
        (Layout::Seq(p), Layout::Seq(q)) => p == q,
        _ => false,
    }
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

/// A float attribute that must be finite (epsilon, alpha, beta).
fn attr_finite(node: &NodeProto, name: &str, default: f32) -> Result<f32> {
    let v = attr_f(node, name, default);
    if !v.is_finite() {
        bail!("attribute '{name}' = {v} is not finite");
    }
    Ok(v)
}

/// A per-spatial-axis attribute (`kernel_shape`, `strides`, `dilations`): two values in
/// `1..=MAX_ELEMENTS`, or `default` when absent.
fn spatial_attr(node: &NodeProto, name: &str, default: Option<[usize; 2]>) -> Result<[usize; 2]> {
    let Some(v) = attr_ints(node, name) else {
        return default.ok_or_else(|| anyhow!("attribute '{name}' missing"));
    };
    match v.as_slice() {
        &[a, b] if (1..=MAX_ELEMENTS as i64).contains(&a) && (1..=MAX_ELEMENTS as i64).contains(&b) => {
            Ok([a as usize, b as usize])
        }
        _ => bail!("attribute '{name}' {v:?} must be two values in 1..={MAX_ELEMENTS}, one per spatial axis"),
    }
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
    /// A new activation; errors on an empty dimension or more than [`MAX_ELEMENTS`] elements.
    fn new_value(&mut self, name: &str, shape: Vec<usize>) -> Result<ValueId> {
        if shape.contains(&0) {
            bail!("tensor '{name}' would have the empty shape {shape:?}");
        }
        bounded_elements(&shape, &format!("tensor '{name}'"))?;
        self.values.push(Value { name: name.to_string(), shape });
        Ok(self.values.len() - 1)
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
        let output = self.new_value(out_name, shape)?;
        let name = if node.name.is_empty() { out_name.clone() } else { node.name.clone() };
        self.nodes.push(Node { name, op, inputs, output });
        self.producer.insert(output, self.nodes.len() - 1);
        self.vals.insert(out_name.clone(), Val::Act(Act { id: output, layout }));
        Ok(())
    }

    fn get(&self, name: &str) -> Result<&Val> {
        self.vals.get(name).ok_or_else(|| {
            if self.pending_pads.contains_key(name) {
                anyhow!("input '{name}' is a Pad's output; a constant zero Pad is supported only directly before a Conv (it becomes the Conv's padding)")
            } else {
                anyhow!("input '{name}' is not produced by any earlier node")
            }
        })
    }

    fn input(&self, node: &NodeProto, i: usize) -> Result<&Val> {
        let name = node.input.get(i).filter(|n| !n.is_empty()).ok_or_else(|| anyhow!("missing input {i}"))?;
        self.get(name)
    }

    /// Constant input `i`, if given; it must be finite.
    fn optional_const(&self, node: &NodeProto, i: usize) -> Result<Option<ArrayD<f64>>> {
        let c = self.optional_const_with_infinities(node, i)?;
        if let (Some(c), Some(name)) = (&c, node.input.get(i)) {
            check_finite(c, name)?;
        }
        Ok(c)
    }

    /// Constant input `i`, if given, infinities allowed (Clip's bounds).
    fn optional_const_with_infinities(&self, node: &NodeProto, i: usize) -> Result<Option<ArrayD<f64>>> {
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

    /// Sets a constant output, recording whether its element type is an integer one.
    fn set_const(&mut self, node: &NodeProto, v: ArrayD<f64>, integer: bool) -> Result<()> {
        let out = node.output.first().ok_or_else(|| anyhow!("has no output"))?;
        if integer {
            self.integer_consts.insert(out.clone());
        } else {
            self.integer_consts.remove(out);
        }
        self.set(node, Val::Const(v))
    }

    /// Whether constant input `i` has an integer element type.
    fn integer_input(&self, node: &NodeProto, i: usize) -> bool {
        node.input.get(i).is_some_and(|n| self.integer_consts.contains(n))
    }

    /// Whether the constant `node` computes has an integer element type: ONNX's arithmetic,
    /// shape and gather operators keep their data input's type.
    fn integer_output(&self, node: &NodeProto) -> bool {
        match node.op_type.as_str() {
            "Shape" => true,
            "Cast" => is_integer_type(attr_i(node, "to", i64::from(data_type::FLOAT))),
            "ConstantOfShape" => {
                attr(node, "value").and_then(|a| a.t.as_ref()).is_some_and(|t| is_integer_type(i64::from(t.data_type)))
            }
            "Sqrt" | "Reciprocal" => false,
            _ => self.integer_input(node, 0),
        }
    }

    fn logical(&self, a: &Act) -> Vec<usize> {
        let s = &self.values[a.id].shape;
        match &a.layout {
            Layout::Spatial(p) => logical_shape([1, s[0], s[1], s[2]], *p).to_vec(),
            Layout::Flat(_) => vec![1, s[0]],
            Layout::Seq(p) => p.iter().map(|&i| [1, s[1], s[2]][i]).collect(),
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
            return self.set_const(node, tensor_to_array(a)?, is_integer_type(i64::from(a.data_type)));
        }
        if all_const && !node.input.is_empty() {
            let v = self.fold_constant(node)?;
            return self.set_const(node, v, self.integer_output(node));
        }
        if let Some(r) = node.input.first().and_then(|n| self.pending_repeats.get(n)).cloned() {
            return self.continue_repeat(node, r);
        }
        if matches!(node.op_type.as_str(), "Unsqueeze" | "Squeeze" | "Transpose") {
            if let Some((a, pads)) = node.input.first().and_then(|n| self.pending_pads.get(n)).cloned() {
                return self.layout_op_on_pad(node, a, pads);
            }
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
            "Relu" => self.clamp(node, Clamp::RELU),
            "Clip" => {
                // A bound beyond f32 (±1e300, ±inf) means no clamp on that side.
                let bound = |i: usize, name: &str, default: f32| -> Result<f32> {
                    let v = match self.optional_const_with_infinities(node, i)? {
                        Some(c) if c.len() == 1 => scalar(&c),
                        Some(c) => bail!("the '{name}' input has {} values; expected one", c.len()),
                        None => attr_f(node, name, default),
                    };
                    if v.is_nan() {
                        bail!("the '{name}' bound is NaN");
                    }
                    Ok(v)
                };
                let (lo, hi) = (bound(1, "min", f32::NEG_INFINITY)?, bound(2, "max", f32::INFINITY)?);
                if lo == f32::INFINITY || hi == f32::NEG_INFINITY {
                    bail!("bounds [{lo}, {hi}] leave no finite value");
                }
                self.clamp(node, Clamp { lo, hi })
            }
            "AveragePool" | "MaxPool" | "GlobalAveragePool" | "GlobalMaxPool" => self.pool(node),
            "ReduceMean" | "ReduceMax" => self.reduce(node),
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => self.reshape(node),
            "Tile" => bail!(
                "Tile is supported only as Keras 3's UpSampling2D writes it (Unsqueeze, Tile of the new axis, \
                 Reshape); Resizing(interpolation='nearest') converts to a Resize, which imports"
            ),
            "Softmax" => self.softmax(node, OpKind::Softmax),
            "LogSoftmax" => self.softmax(node, OpKind::LogSoftmax),
            "Sigmoid" | "Tanh" | "HardSigmoid" | "HardSwish" | "LeakyRelu" | "Elu" | "Selu" | "Gelu" | "PRelu"
            | "Erf" => self.activation(node),
            "Concat" => self.concat(node),
            "Slice" => self.slice(node),
            "Split" => self.split(node),
            "Gather" => self.gather(node),
            "Resize" | "Upsample" => self.resize(node, self.opset),
            "Pad" => self.pad(node),
            "ConvTranspose" => self.conv_transpose(node),
            "Shape" => {
                let a = self.act(node, 0)?;
                let s: Vec<f64> = self.logical(&a).iter().map(|&d| d as f64).collect();
                self.set_const(node, ArrayD::from_shape_vec(IxDyn(&[s.len()]), s)?, true)
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
                if !is_permutation(&perm, 4) {
                    bail!("attribute 'perm' {perm:?} is not a permutation of the 4 axes");
                }
                let q = [a0 as usize, a1 as usize, a2 as usize, a3 as usize];
                Layout::Spatial([p[q[0]], p[q[1]], p[q[2]], p[q[3]]])
            }
            (Layout::Flat(f), &[0, 1]) => Layout::Flat(f.clone()),
            (Layout::Seq(p), &[0, a1, a2]) if is_permutation(&perm, 3) => {
                Layout::Seq([0, p[a1 as usize], p[a2 as usize]])
            }
            _ => bail!("attribute 'perm' {perm:?} is not supported on a rank-{} tensor", self.logical(&a).len()),
        };
        if let Layout::Spatial(p) = layout {
            if p[0] != 0 {
                bail!("attribute 'perm' {perm:?} moves the batch axis");
            }
        }
        self.set(node, Val::Act(Act { id: a.id, layout }))
    }

    /// An Unsqueeze, Squeeze or Transpose between a zero Pad and its Conv (tf2onnx's Keras
    /// Conv1D: Pad, Unsqueeze to `[N, 1, L, C]`, Transpose to NCHW, Conv). These only relabel the
    /// stored map, so the pads, kept in stored H and W, still lie around the same map.
    fn layout_op_on_pad(&mut self, node: &NodeProto, a: Act, pads: [usize; 4]) -> Result<()> {
        let (input, output) = (node.input[0].clone(), node.output.first().cloned().unwrap_or_default());
        self.vals.insert(input.clone(), Val::Act(a.clone()));
        let result = match node.op_type.as_str() {
            "Transpose" => self.transpose(node),
            _ => self.reshape(node),
        };
        self.vals.remove(&input);
        result?;
        match self.vals.remove(&output) {
            Some(Val::Act(b)) if b.id == a.id => {
                self.pending_pads.insert(output, (b, pads));
                Ok(())
            }
            _ => bail!("a Pad followed by {} that moves data is not supported (only before a Conv)", node.op_type),
        }
    }

    /// The channel-major feature map a Conv or pool reads, whether it is a sequence, and the node
    /// with its 1-D attributes in their one-row 2-D form when it is.
    fn windowed_input<'n>(&self, node: &'n NodeProto) -> Result<(Act, bool, std::borrow::Cow<'n, NodeProto>)> {
        let a = match node.input.first().and_then(|n| self.pending_pads.get(n)) {
            Some((a, _)) if node.op_type == "Conv" => a.clone(),
            Some(_) => bail!("a Pad before {} is not supported (only before a Conv)", node.op_type),
            None => self.act(node, 0)?,
        };
        let seq = matches!(a.layout, Layout::Seq(p) if p == SEQ);
        if !seq && !matches!(a.layout, Layout::Spatial(p) if p == NCHW) {
            bail!("input must be a channel-major (NCHW or NCL) feature map");
        }
        let node = if seq { std::borrow::Cow::Owned(one_row(node)) } else { std::borrow::Cow::Borrowed(node) };
        Ok((a, seq, node))
    }

    fn conv(&mut self, node: &NodeProto) -> Result<()> {
        let (a, seq, node) = self.windowed_input(node)?;
        let node = node.as_ref();
        let mut w = self.konst(node, 1)?;
        let bias = self.optional_const(node, 2)?;
        if seq {
            if w.ndim() != 3 {
                bail!("weight has rank {} for a 1-D input; expected [O, I, K]", w.ndim());
            }
            w.insert_axis_inplace(Axis(2));
        }
        if w.ndim() != 4 {
            bail!("weight has rank {}; only 1-D and 2-D convolutions are supported", w.ndim());
        }
        if w.shape().contains(&0) {
            bail!("weight has the empty shape {:?}", w.shape());
        }
        if let Some(k) = attr_ints(node, "kernel_shape") {
            if k != [w.shape()[2] as i64, w.shape()[3] as i64] {
                bail!(
                    "attribute 'kernel_shape' {k:?} does not match the weight's {}x{} kernel",
                    w.shape()[2],
                    w.shape()[3]
                );
            }
        }
        let dilations = spatial_attr(node, "dilations", Some([1, 1]))?;
        if dilations != [1, 1] {
            w = dilate(&w, dilations)?;
        }
        let (h, wd, c) = self.values[a.id].hwc();
        let (oc, icg, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
        let group = attr_i(node, "group", 1);
        if group < 1 {
            bail!("attribute 'group' = {group} must be positive");
        }
        let depthwise = group > 1 && group == c as i64 && icg == 1;
        if depthwise && oc % c != 0 {
            bail!("depthwise: {oc} output channels are not a multiple of the {c} input channels");
        }
        if group > 1 && !depthwise {
            let g = group as usize;
            if icg * g != c || oc % g != 0 {
                bail!("attribute 'group' = {group} does not divide {c} input and {oc} output channels");
            }
            // A grouped convolution as the dense one it equals: each output channel's weights
            // are zero outside its group (exact; the zeros cost multiply-adds).
            bounded_elements(&[oc, c, kh, kw], "the grouped kernel as a dense one")?;
            let grouped = w;
            w = ArrayD::from_shape_fn(IxDyn(&[oc, c, kh, kw]), |ix| {
                let group_of_output = ix[0] / (oc / g);
                let offset = ix[1] as isize - (group_of_output * icg) as isize;
                if (0..icg as isize).contains(&offset) {
                    grouped[[ix[0], offset as usize, ix[2], ix[3]].as_slice()]
                } else {
                    0.0
                }
            });
        } else if !depthwise && icg != c {
            bail!("weight expects {icg} input channels, the input has {c}");
        }
        let icg = if depthwise { 1 } else { c };
        let stride = spatial_attr(node, "strides", Some([1, 1]))?;
        let mut pads = self.pads(node, [h, wd], [kh, kw], stride)?;
        // A zero Pad in front: more padding (a 1-D map's pads are on its W).
        if let Some((_, extra)) = node.input.first().and_then(|n| self.pending_pads.get(n)) {
            let extra = if seq { [0, extra[1], 0, extra[3]] } else { *extra };
            if seq && (extra[0] > 0 || extra[2] > 0) {
                bail!("internal error: a 1-D map padded on its row axis");
            }
            for (p, e) in pads.iter_mut().zip(extra) {
                *p += e;
            }
        }
        let window = Window { kernel: [kh, kw], stride, pads };
        let (oh, ow) = window
            .output_hw(h, wd)
            .ok_or_else(|| anyhow!("kernel {kh}x{kw} is larger than the padded input {h}x{wd}"))?;
        bounded_elements(&[oh, ow, oc], "the output")?;
        check_window_work([oh, ow], [kh, kw], if depthwise { 1 } else { icg })?;
        if (0..4).any(|i| pads[i] >= [kh, kw][i % 2]) {
            // Every window holds an input pixel (contract §3; the runtime's loader refuses others).
            bail!(
                "attribute 'pads' {pads:?} (a zero Pad in front included) must be smaller than the {kh}x{kw} kernel: \
                 outputs along the border would see only padding"
            );
        }
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
        check_finite_f32(&weight, &format!("weight '{}'", node.input[1]))?;
        check_finite_f32(&bias, "bias")?;
        let op = OpKind::Conv(Conv { weight, bias, window, depthwise, clamp: Clamp::NONE });
        let layout = if seq { Layout::Seq(SEQ) } else { Layout::Spatial(NCHW) };
        self.push(node, op, vec![a.id], vec![oh, ow, oc], layout)
    }

    fn pads(&self, node: &NodeProto, hw: [usize; 2], kernel: [usize; 2], stride: [usize; 2]) -> Result<[usize; 4]> {
        let auto = attr_s(node, "auto_pad").unwrap_or_default();
        match auto.as_str() {
            "" | "NOTSET" => {
                let p = attr_ints(node, "pads").unwrap_or(vec![0; 4]);
                if p.len() != 4 || p.iter().any(|&x| !(0..=MAX_ELEMENTS as i64).contains(&x)) {
                    bail!(
                        "attribute 'pads' {p:?} must be four values in 0..={MAX_ELEMENTS} (top, left, bottom, right)"
                    );
                }
                Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
            }
            "VALID" => Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut pads = [0; 4];
                for d in 0..2 {
                    if stride[d] == 0 {
                        bail!("stride 0 with auto_pad '{auto}'");
                    }
                    // Sizes here are at most MAX_ELEMENTS each, so the arithmetic stays far from
                    // overflow.
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
        let (a, seq, node) = self.windowed_input(node)?;
        let node = node.as_ref();
        let (h, w, c) = self.values[a.id].hwc();
        let window = if node.op_type == "GlobalAveragePool" || node.op_type == "GlobalMaxPool" {
            Window { kernel: [h, w], stride: [1, 1], pads: [0; 4] }
        } else {
            let kernel = spatial_attr(node, "kernel_shape", None)?;
            let dilations = spatial_attr(node, "dilations", Some([1, 1]))?;
            if dilations != [1, 1] {
                bail!("attribute 'dilations' {dilations:?} is not supported (only 1)");
            }
            let stride = spatial_attr(node, "strides", Some([1, 1]))?;
            let pads = self.pads(node, [h, w], kernel, stride)?;
            // As onnxruntime requires: a window never lies wholly in the padding.
            if (0..4).any(|i| pads[i] >= kernel[i % 2]) {
                bail!("attribute 'pads' {pads:?} must be smaller than the {}x{} kernel", kernel[0], kernel[1]);
            }
            let mut window = Window { kernel, stride, pads };
            let ceil_mode = attr_i(node, "ceil_mode", 0) != 0;
            if ceil_mode {
                window.pads = ceil_mode_pads(&window, [h, w])?;
            }
            if node.op_type == "AveragePool" && attr_i(node, "count_include_pad", 0) != 0 && pads.iter().any(|&p| p > 0)
            {
                if ceil_mode {
                    bail!("'count_include_pad' = 1 with 'ceil_mode' = 1 and padding is not supported");
                }
                // Every window divides by the whole kernel: a depthwise convolution with equal
                // weights, zero padding included.
                let (oh, ow) = window.output_hw(h, w).ok_or_else(|| anyhow!("pooling window larger than the input"))?;
                check_window_work([oh, ow], window.kernel, 1)?;
                let taps = (kernel[0] * kernel[1]) as f32;
                let weight = Array4::from_elem((c, kernel[0], kernel[1], 1), 1.0 / taps);
                let op =
                    OpKind::Conv(Conv { weight, bias: Array1::zeros(c), window, depthwise: true, clamp: Clamp::NONE });
                let layout = if seq { Layout::Seq(SEQ) } else { Layout::Spatial(NCHW) };
                return self.push(node, op, vec![a.id], vec![oh, ow, c], layout);
            }
            window
        };
        let (oh, ow) = window.output_hw(h, w).ok_or_else(|| anyhow!("pooling window larger than the input"))?;
        bounded_elements(&[oh, ow, c], "the output")?;
        check_window_work([oh, ow], window.kernel, c)?;
        let op = if node.op_type == "MaxPool" || node.op_type == "GlobalMaxPool" {
            OpKind::MaxPool(window)
        } else {
            OpKind::AvgPool(window)
        };
        let layout = if seq { Layout::Seq(SEQ) } else { Layout::Spatial(NCHW) };
        self.push(node, op, vec![a.id], vec![oh, ow, c], layout)
    }

    /// ReduceMean / ReduceMax over the spatial axes (H and W of a feature map, L of a sequence):
    /// a global average or max pool. Axes come from the attribute (opset < 18) or input 1.
    fn reduce(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let rank = self.logical(&a).len();
        let axes = match self.optional_const(node, 1)? {
            Some(c) => integers(&c, "the axes")?,
            None => attr_ints(node, "axes").unwrap_or_default(),
        };
        let mut axes: Vec<usize> = axes.iter().map(|&x| axis_index(x, rank, "the axes")).collect::<Result<_>>()?;
        axes.sort_unstable();
        axes.dedup();
        // The logical axes stored as H and W (a sequence has only W).
        let spatial: Vec<usize> = match &a.layout {
            Layout::Spatial(p) => (0..4).filter(|&l| p[l] == 1 || p[l] == 2).collect(),
            Layout::Seq(p) => (0..3).filter(|&l| p[l] == 1).collect(),
            Layout::Flat(_) => Vec::new(),
        };
        if axes.is_empty() || axes != spatial {
            bail!(
                "{} over axes {axes:?} of a {:?} tensor is not supported (only over the spatial axes {spatial:?}, as a global pool)",
                node.op_type,
                self.logical(&a)
            );
        }
        let (h, w, c) = self.values[a.id].hwc();
        let window = Window { kernel: [h, w], stride: [1, 1], pads: [0; 4] };
        check_window_work([1, 1], window.kernel, c)?;
        let op = if node.op_type == "ReduceMax" { OpKind::MaxPool(window) } else { OpKind::AvgPool(window) };
        if attr_i(node, "keepdims", 1) == 0 {
            // The remaining logical axes are [N, C], stored as the channel vector.
            self.push(node, op, vec![a.id], vec![c], Layout::Flat(None))
        } else {
            self.push(node, op, vec![a.id], vec![1, 1, c], a.layout.clone())
        }
    }

    fn fully_connected(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let channels_last = match a.layout {
            Layout::Seq(p) => p[2] == 2,
            Layout::Spatial(p) => p[3] == 3,
            Layout::Flat(_) => false,
        };
        if node.op_type == "MatMul" && channels_last {
            return self.per_position_matmul(node, a);
        }
        let Layout::Flat(perm) = a.layout.clone() else {
            bail!(
                "input must be a [N, K] matrix, or a MatMul's [N, L, C] / [N, H, W, C] map with the channels last; \
                 flatten the feature map first"
            );
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
            let alpha = attr_finite(node, "alpha", 1.0)? as f64;
            let beta = attr_finite(node, "beta", 1.0)? as f64;
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
        check_finite_f32(&weight, &format!("weight '{}'", node.input[1]))?;
        check_finite_f32(&bias, "bias")?;
        let op = OpKind::Fc(Fc { weight, bias, clamp: Clamp::NONE });
        self.push(node, op, vec![a.id], vec![n], Layout::Flat(None))
    }

    /// A MatMul of a map whose logical last axis is its stored channel axis (`[N, L, C]` after
    /// `x.transpose(1, 2)`, `[N, H, W, C]` after `permute(0, 2, 3, 1)`, Keras' Dense on a
    /// sequence) by a constant `[C, M]`: the same Linear at every position, a 1×1 convolution.
    fn per_position_matmul(&mut self, node: &NodeProto, a: Act) -> Result<()> {
        let b = self.konst(node, 1)?;
        let (h, w, c) = self.values[a.id].hwc();
        if b.ndim() != 2 || b.shape()[0] != c {
            bail!("weight has shape {:?}; expected [{c}, M] for an input of {c} channels", b.shape());
        }
        let m = b.shape()[1];
        let weight = Array4::from_shape_fn((m, 1, 1, c), |(o, _, _, i)| b[[i, o]] as f32);
        check_finite_f32(&weight, &format!("weight '{}'", node.input[1]))?;
        let window = Window { kernel: [1, 1], stride: [1, 1], pads: [0; 4] };
        let op = OpKind::Conv(Conv { weight, bias: Array1::zeros(m), window, depthwise: false, clamp: Clamp::NONE });
        self.push(node, op, vec![a.id], vec![h, w, m], a.layout.clone())
    }

    /// The node producing `a` if `a` feeds only the current node (so it may be rewritten).
    fn sole_producer(&self, node: &NodeProto, a: &Act) -> Option<usize> {
        let name = node.input.first()?;
        let used_once = self.uses.get(name).copied().unwrap_or(0) == 1;
        let p = *self.producer.get(&a.id)?;
        (used_once && self.nodes[p].output == a.id).then_some(p)
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
            // Both sequence permutations are their own inverses.
            Layout::Seq(p) => full.permuted_axes(IxDyn(p)).iter().copied().collect(),
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
            (Val::Act(a), Val::Act(b)) if op == "Mul" => self.mul_activations(node, a, b),
            (Val::Act(a), Val::Act(b)) if op == "Add" => {
                if self.values[a.id].shape != self.values[b.id].shape {
                    bail!(
                        "inputs have different shapes {:?} and {:?}",
                        self.values[a.id].shape,
                        self.values[b.id].shape
                    );
                }
                if !same_layout(&a.layout, &b.layout) {
                    bail!("inputs are stored in different layouts");
                }
                let shape = self.values[a.id].shape.clone();
                self.push(node, OpKind::Add(Clamp::NONE), vec![a.id, b.id], shape, a.layout.clone())
            }
            (Val::Act(a), Val::Const(c)) | (Val::Const(c), Val::Act(a)) => {
                let act_first = matches!(self.input(node, 0)?, Val::Act(_));
                let const_name = &node.input[usize::from(act_first)];
                check_finite(&c, const_name)?;
                let (a, k) = match self.per_channel(&a, &c) {
                    Ok(k) => (a, k),
                    Err(e) => match self.as_channel_vector(node, &a)? {
                        Some(v) => {
                            let k = self.per_channel(&v, &c)?;
                            (v, k)
                        }
                        None => return Err(e),
                    },
                };
                if op == "Div" {
                    if let Some(ch) = k.iter().position(|&v| v == 0.0) {
                        bail!("divisor '{const_name}' is zero (channel {ch})");
                    }
                }
                let n = k.len();
                let (mul, add): (Vec<f64>, Vec<f64>) = match (op, act_first) {
                    ("Add", _) => (vec![1.0; n], k),
                    ("Sub", true) => (vec![1.0; n], k.iter().map(|v| -v).collect()),
                    ("Sub", false) => (vec![-1.0; n], k),
                    ("Mul", _) => (k, vec![0.0; n]),
                    ("Div", true) => (k.iter().map(|v| 1.0 / v).collect(), vec![0.0; n]),
                    _ => bail!("constant / activation is not supported"),
                };
                self.affine(node, &a, &mul, &add)
            }
            _ => bail!("'{op}' of two activations is not supported"),
        }
    }

    /// A map holding a vector along H or W (every other stored axis 1) relabelled, with the
    /// same bytes, as one pixel of that many channels; `None` for any other map. A rank-4 reshape
    /// of a vector is read NCHW first, which puts `[N, 1, 1, M]` on W: Keras' Dense on a
    /// `Reshape((1, 1, C))` (squeeze-and-excitation), which tf2onnx writes as a MatMul on
    /// `[N, C]` reshaped to `[N, 1, 1, M]`, adds its bias along that axis.
    fn as_channel_vector(&mut self, node: &NodeProto, a: &Act) -> Result<Option<Act>> {
        let Layout::Spatial(p) = a.layout else { return Ok(None) };
        let stored = self.values[a.id].hwc();
        let k = self.values[a.id].elements();
        if stored.2 == k || ![stored.0, stored.1].contains(&k) {
            return Ok(None);
        }
        // The logical axis stored where the vector lies becomes the channel axis; the other
        // non-batch axes (all 1) take H and W.
        let vector_axis = if stored.0 == k { 1 } else { 2 };
        let l = (1..4).find(|&l| p[l] == vector_axis).unwrap_or(3);
        let mut free = [1, 2].into_iter();
        let q: [usize; 4] = std::array::from_fn(|i| match i {
            0 => 0,
            i if i == l => 3,
            _ => free.next().unwrap_or(0),
        });
        let mut relabel = node.clone();
        relabel.name = format!("{}/as_channels", node_name(node));
        relabel.output = vec![format!("{}/as_channels", node.output.first().cloned().unwrap_or_default())];
        self.push(&relabel, OpKind::Reshape, vec![a.id], vec![1, 1, k], Layout::Spatial(q))?;
        let Some(Val::Act(v)) = self.vals.get(&relabel.output[0]).cloned() else {
            bail!("internal error: the relabelled vector is missing");
        };
        Ok(Some(v))
    }

    fn batch_norm(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        // Before the parameter counts: those are checked against the stored channels, which are
        // ONNX's axis 1 only in a channel-major layout.
        if matches!(a.layout, Layout::Spatial(p) if p != NCHW) || matches!(a.layout, Layout::Seq(p) if p != SEQ) {
            bail!("input must be channel-major (NCHW or NCL)");
        }
        let eps = attr_finite(node, "epsilon", 1e-5)? as f64;
        let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| self.konst(node, i));
        let (scale, bias, mean, var) = (scale?, bias?, mean?, var?);
        let ch = *self.values[a.id].shape.last().unwrap_or(&0);
        for (i, (what, t)) in [("scale", &scale), ("bias", &bias), ("mean", &mean), ("var", &var)].iter().enumerate() {
            if t.len() != ch {
                bail!("{what} '{}' has {} values, the input has {ch} channels", node.input[i + 1], t.len());
            }
        }
        if let Some((c, v)) = var.iter().enumerate().find(|(_, &v)| v < 0.0 || v + eps <= 0.0) {
            bail!(
                "var '{}' is {v} at channel {c} with epsilon {eps}; it must be ≥ 0 with var + epsilon > 0",
                node.input[4]
            );
        }
        let mul: Vec<f64> = scale.iter().zip(var.iter()).map(|(s, v)| s / (v + eps).sqrt()).collect();
        let add: Vec<f64> = bias.iter().zip(mean.iter()).zip(&mul).map(|((b, m), k)| b - m * k).collect();
        self.affine(node, &a, &mul, &add)
    }

    fn reshape(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let logical = self.logical(&a);
        let total: usize = logical.iter().product();
        let target: Vec<usize> = match node.op_type.as_str() {
            "Flatten" => {
                let axis = attr_i(node, "axis", 1);
                // Flatten's axis may also be the rank itself (everything in the first dimension).
                let rank = logical.len() as i64;
                if !(-rank..=rank).contains(&axis) {
                    bail!("attribute 'axis' {axis} is out of range for a rank-{rank} tensor");
                }
                let axis = (if axis < 0 { axis + rank } else { axis }) as usize;
                let head: usize = logical[..axis].iter().product();
                vec![head, total / head.max(1)]
            }
            "Reshape" => {
                let shape = self.konst(node, 1)?;
                reshape_target(&logical, &integers(&shape, "the shape")?)?
            }
            _ => squeeze_or_unsqueeze(&node.op_type, &logical, &self.axes(node)?)?,
        };
        if target.iter().product::<usize>() != total {
            bail!("cannot reshape {logical:?} to {target:?}");
        }
        if target.first() != Some(&1) {
            bail!("reshape to {target:?} changes the batch axis");
        }
        // stored position of each logical (row-major) element of the source.
        let src_order = self.stored_positions(&a);
        let kept = self.kept_layout(node, &a, &logical, target.len())?;
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
                // Choose a layout whose stored order matches the source's bytes, the one an
                // Unsqueeze keeps first.
                let kept = match kept {
                    Some(Layout::Spatial(p)) => vec![p],
                    _ => vec![],
                };
                let relabel = match &a.layout {
                    Layout::Spatial(p) => moved_unit_axes(&logical, &target, p),
                    _ => None,
                };
                for perm in kept.into_iter().chain(relabel).chain([NCHW, IDENTITY]) {
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
            3 => {
                // The layout a Squeeze keeps, then channel-major: a 4-D NCHW map reshaped to 3-D
                // is a Conv1d's sequence.
                let kept = match kept {
                    Some(Layout::Seq(p)) => vec![p],
                    _ => vec![],
                };
                for perm in kept.into_iter().chain([SEQ, SEQ_LAST]) {
                    let mut stored_shape = vec![1; 3];
                    for (l, &st) in perm.iter().enumerate().skip(1) {
                        stored_shape[st] = target[l];
                    }
                    if positions(&target, &stored_shape, &perm) == src_order {
                        return self.alias_or_reshape(node, a, stored_shape, Layout::Seq(perm));
                    }
                }
                bail!("reshape {logical:?} → {target:?} needs a data transpose, which is not supported")
            }
            5 if node.op_type == "Unsqueeze" && matches!(a.layout, Layout::Spatial(_)) => {
                self.start_repeat(node, a, &logical)
            }
            // ShuffleNet's channel shuffle is the usual rank-5 reshape; say so, since the
            // Transpose after it is what cannot be done.
            5 => bail!(
                "reshape to rank 5 ({target:?}) is not supported; if it is a channel shuffle (Reshape, Transpose, \
                 Reshape), that permutes channels, which no runtime operation does yet"
            ),
            r => bail!("reshape to rank {r} ({target:?}) is not supported"),
        }
    }

    /// The layout an Unsqueeze of a sequence to a one-row map, or a Squeeze of a one-row map's
    /// row axis back to a sequence, keeps: the unit axis is the stored H, every other axis stays
    /// where it is stored. With unit dimensions several layouts order the bytes alike, and only
    /// this one keeps the channels where the Conv or Transpose that follows expects them (tf2onnx
    /// writes a Keras Conv1D on `[N, L, C]` as Unsqueeze to `[N, 1, L, C]`, a Transpose to NCHW
    /// and the Conv; taking that `[N, 1, L, C]` as NCHW would put the channels in W).
    fn kept_layout(&self, node: &NodeProto, a: &Act, logical: &[usize], rank: usize) -> Result<Option<Layout>> {
        // Stored sequence axes [N, L, C] are the one-row map's stored N, W, C.
        const SEQ_TO_MAP: [usize; 3] = [0, 2, 3];
        let axes = match node.op_type.as_str() {
            "Unsqueeze" | "Squeeze" => self.axes(node)?,
            _ => return Ok(None),
        };
        Ok(match (node.op_type.as_str(), &a.layout, logical.len(), rank) {
            ("Unsqueeze", Layout::Seq(p), 3, 4) if axes.len() == 1 => {
                let k = axis_index(axes[0], 4, "axis")?;
                if k == 0 {
                    // A new leading axis is not a row: the batch stays stored first.
                    return Ok(None);
                }
                let mut rest = p.iter().map(|&s| SEQ_TO_MAP[s]);
                let q: [usize; 4] = std::array::from_fn(|i| if i == k { 1 } else { rest.next().unwrap_or(0) });
                Some(Layout::Spatial(q))
            }
            ("Squeeze", Layout::Spatial(p), 4, 3) => {
                // Rank 4 to 3 removes exactly one unit axis, named or not.
                let k = match axes.as_slice() {
                    [x] => axis_index(*x, 4, "axis")?,
                    _ => match logical.iter().position(|&d| d == 1) {
                        Some(k) => k,
                        None => return Ok(None),
                    },
                };
                if p[k] != 1 {
                    return Ok(None);
                }
                let mut rest =
                    (0..4).filter(|&i| i != k).map(|i| SEQ_TO_MAP.iter().position(|&s| s == p[i]).unwrap_or(0));
                Some(Layout::Seq(std::array::from_fn(|_| rest.next().unwrap_or(0))))
            }
            _ => None,
        })
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
            Layout::Seq(p) => positions(&self.logical(a), &[1, s[1], s[2]], p),
        }
    }

    fn alias_or_reshape(&mut self, node: &NodeProto, a: Act, shape: Vec<usize>, layout: Layout) -> Result<()> {
        if self.values[a.id].shape == shape {
            return self.set(node, Val::Act(Act { id: a.id, layout }));
        }
        self.push(node, OpKind::Reshape, vec![a.id], shape, layout)
    }

    /// Squeeze/Unsqueeze axes: input 1 (opset 13) or the `axes` attribute.
    fn axes(&self, node: &NodeProto) -> Result<Vec<i64>> {
        Ok(match self.optional_const(node, 1)? {
            Some(c) => integers(&c, "the axes")?,
            None => attr_ints(node, "axes").unwrap_or_default(),
        })
    }

    /// Softmax or LogSoftmax (`op`). The runtime normalizes one row of a sample's every element,
    /// stored in their logical order: the class axis of `[N, K]` (or of `[N, K, 1, 1]`, `[N, 1, K]`).
    /// Before opset 13 the operators normalize the dims from `axis` (default 1) on, flattened;
    /// from 13 on, `axis` alone (default −1). Whatever equals that row is taken.
    fn softmax(&mut self, node: &NodeProto, op: OpKind) -> Result<()> {
        let a = self.act(node, 0)?;
        let logical = self.logical(&a);
        let rank = logical.len();
        let flattens = self.opset < 13;
        let axis = axis_index(attr_i(node, "axis", if flattens { 1 } else { -1 }), rank, "attribute 'axis'")?;
        let semantics = if flattens {
            format!("at opset {} it normalizes dims {axis}.. of {logical:?} flattened", self.opset)
        } else {
            format!("at opset {} it normalizes dim {axis} of {logical:?} alone", self.opset)
        };
        if axis == 0 {
            bail!("'axis' 0 is not supported: {semantics}, across the batch; only the class axis is");
        }
        // The dims besides the batch that the row leaves out must be 1, so that the row is the
        // whole sample.
        let outside = |i: usize| if flattens { i < axis } else { i != axis };
        if let Some(i) = (1..rank).find(|&i| outside(i) && logical[i] != 1) {
            bail!(
                "'axis' {axis} is not supported: {semantics}, so dim {i} ({}) holds separate rows; only one row of \
                 a sample's every element is (the class axis of [N, K])",
                logical[i]
            );
        }
        // The device's rows run along the stored channel axis, so the row must be the channels
        // (a permuted flat vector would also put the outputs in another order).
        let stored = &self.values[a.id].shape;
        let along_channels = match &a.layout {
            Layout::Flat(None) => true,
            Layout::Spatial(_) | Layout::Seq(_) => stored[..stored.len() - 1].iter().all(|&d| d == 1),
            Layout::Flat(Some(_)) => false,
        };
        if !along_channels {
            bail!(
                "a row of {logical:?} stored as {stored:?} across positions rather than channels is not supported \
                 (only over the class axis of a [N, K] tensor)"
            );
        }
        let k = self.values[a.id].elements();
        self.push(node, op, vec![a.id], vec![k], Layout::Flat(None))
    }

    fn fold_constant(&self, node: &NodeProto) -> Result<ArrayD<f64>> {
        let c = |i: usize| self.konst(node, i);
        let binary = |f: fn(f64, f64) -> f64| -> Result<ArrayD<f64>> {
            let (x, y) = (c(0)?, c(1)?);
            let shape = broadcast_shape(x.shape(), y.shape())?;
            bounded_elements(&shape, "the result")?;
            let xb = x.broadcast(IxDyn(&shape)).ok_or_else(|| anyhow!("broadcast"))?;
            let yb = y.broadcast(IxDyn(&shape)).ok_or_else(|| anyhow!("broadcast"))?;
            Ok(ndarray::Zip::from(&xb).and(&yb).map_collect(|&a, &b| f(a, b)))
        };
        let integer = self.integer_input(node, 0);
        Ok(match node.op_type.as_str() {
            "Identity" | "Dropout" => c(0)?,
            // A float cast to an integer type drops its fraction (onnxruntime truncates).
            "Cast" if self.integer_output(node) && !integer => c(0)?.mapv(f64::trunc),
            "Cast" => c(0)?,
            "Add" => binary(|a, b| a + b)?,
            "Sub" => binary(|a, b| a - b)?,
            "Mul" => binary(|a, b| a * b)?,
            "Div" if integer => {
                if c(1)?.iter().any(|&d| d == 0.0) {
                    bail!("integer division by zero");
                }
                // Integer division truncates toward zero.
                binary(|a, b| (a / b).trunc())?
            }
            "Div" => binary(|a, b| a / b)?,
            "Sqrt" => c(0)?.mapv(f64::sqrt),
            "Neg" => c(0)?.mapv(|x| -x),
            "Reciprocal" => c(0)?.mapv(|x| 1.0 / x),
            "Transpose" => {
                let x = c(0)?;
                let perm: Vec<i64> = match attr_ints(node, "perm") {
                    Some(p) => p,
                    None => (0..x.ndim() as i64).rev().collect(),
                };
                if !is_permutation(&perm, x.ndim()) {
                    bail!("attribute 'perm' {perm:?} is not a permutation of the {} axes", x.ndim());
                }
                let perm: Vec<usize> = perm.iter().map(|&p| p as usize).collect();
                x.permuted_axes(IxDyn(&perm)).as_standard_layout().to_owned()
            }
            "Reshape" => {
                let x = c(0)?;
                let dims = reshape_target(x.shape(), &integers(&c(1)?, "the shape")?)?;
                ArrayD::from_shape_vec(IxDyn(&dims), x.as_standard_layout().iter().copied().collect())?
            }
            "Unsqueeze" | "Squeeze" => {
                let x = c(0)?;
                let dims = squeeze_or_unsqueeze(&node.op_type, x.shape(), &self.axes(node)?)?;
                ArrayD::from_shape_vec(IxDyn(&dims), x.as_standard_layout().iter().copied().collect())?
            }
            "Concat" => {
                let parts: Vec<ArrayD<f64>> = (0..node.input.len()).map(c).collect::<Result<_>>()?;
                let rank = parts[0].ndim();
                let axis = axis_index(attr_i(node, "axis", 0), rank, "attribute 'axis'")?;
                if let Some(p) = parts
                    .iter()
                    .find(|p| p.ndim() != rank || (0..rank).any(|d| d != axis && p.shape()[d] != parts[0].shape()[d]))
                {
                    bail!(
                        "inputs of shapes {:?} and {:?} do not concatenate on axis {axis}",
                        parts[0].shape(),
                        p.shape()
                    );
                }
                let mut shape = parts[0].shape().to_vec();
                shape[axis] =
                    parts.iter().try_fold(0usize, |n, p| n.checked_add(p.shape()[axis])).unwrap_or(usize::MAX);
                bounded_elements(&shape, "the result")?;
                let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
                ndarray::concatenate(Axis(axis), &views)?
            }
            "Gather" => {
                let x = c(0)?;
                let idx = c(1)?;
                let axis = axis_index(attr_i(node, "axis", 0), x.ndim(), "attribute 'axis'")?;
                let n = x.shape()[axis];
                let picks: Vec<usize> = integers(&idx, "the indices")?
                    .into_iter()
                    .map(|i| match axis_index(i, n, "index") {
                        Ok(i) => Ok(i),
                        Err(_) => bail!("index {i} is out of range for axis {axis} of size {n}"),
                    })
                    .collect::<Result<_>>()?;
                let mut shape = x.shape().to_vec();
                shape[axis] = picks.len();
                bounded_elements(&shape, "the result")?;
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
            "Slice" => {
                let mut x = c(0)?;
                let list = |i: usize, name: &str| -> Result<Option<Vec<i64>>> {
                    Ok(match node.input.get(i).filter(|n| !n.is_empty()) {
                        Some(_) => Some(integers(&c(i)?, name)?),
                        None => attr_ints(node, name),
                    })
                };
                let starts = list(1, "starts")?.ok_or_else(|| anyhow!("'starts' missing"))?;
                let ends = list(2, "ends")?.ok_or_else(|| anyhow!("'ends' missing"))?;
                let axes = list(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
                let steps = list(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
                if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
                    bail!("starts, ends, axes and steps have different lengths");
                }
                for k in 0..starts.len() {
                    let axis = axis_index(axes[k], x.ndim(), "the axes")?;
                    let picks = slice_indices(starts[k], ends[k], steps[k], x.shape()[axis])?;
                    x = x.select(Axis(axis), &picks);
                }
                x
            }
            "ConstantOfShape" => {
                let dims: Vec<usize> = integers(&c(0)?, "the shape")?
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| anyhow!("negative dimension {d}")))
                    .collect::<Result<_>>()?;
                bounded_elements(&dims, "the result")?;
                let value = match attr(node, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => tensor_to_array(t)?.iter().next().copied().unwrap_or(0.0),
                    None => 0.0,
                };
                ArrayD::from_elem(IxDyn(&dims), value)
            }
            other => bail!("operator '{other}' is not supported in constant folding"),
        })
    }
}

/// The shape Squeeze (`op` "Squeeze") or Unsqueeze makes of `dims` with `axes`, as ONNX defines
/// them: a squeezed axis must have size 1 (no axes: every unit axis goes); unsqueezed axes index
/// the output and must be distinct.
fn squeeze_or_unsqueeze(op: &str, dims: &[usize], axes: &[i64]) -> Result<Vec<usize>> {
    if op == "Squeeze" {
        let named: Vec<usize> = axes.iter().map(|&x| axis_index(x, dims.len(), "axis")).collect::<Result<_>>()?;
        if let Some(&i) = named.iter().find(|&&i| dims[i] != 1) {
            bail!("cannot squeeze axis {i} of {dims:?}: its size is {}, not 1", dims[i]);
        }
        Ok(dims
            .iter()
            .enumerate()
            .filter(|&(i, &d)| !(d == 1 && (named.is_empty() || named.contains(&i))))
            .map(|(_, &d)| d)
            .collect())
    } else {
        let rank = dims.len() + axes.len();
        let mut sorted: Vec<usize> = axes.iter().map(|&x| axis_index(x, rank, "axis")).collect::<Result<_>>()?;
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            bail!("axes {axes:?} repeat an axis");
        }
        let mut out = dims.to_vec();
        // Ascending distinct axes below `rank`: axis j of the sorted list is at most
        // `dims.len() + j`, the length when it is inserted.
        for ax in sorted {
            out.insert(ax, 1);
        }
        Ok(out)
    }
}

/// Errors when a window layer's work, output positions × taps × channels, exceeds
/// [`MAX_WINDOW_ELEMENTS`].
fn check_window_work(out: [usize; 2], kernel: [usize; 2], channels: usize) -> Result<()> {
    let work = [out[0], out[1], kernel[0], kernel[1], channels].iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if work.is_none_or(|w| w > MAX_WINDOW_ELEMENTS) {
        bail!(
            "a {}x{} output with a {}x{} kernel over {channels} channels is more window work than the \
             importer's limit of {MAX_WINDOW_ELEMENTS} (2^26) elements",
            out[0],
            out[1],
            kernel[0],
            kernel[1]
        );
    }
    Ok(())
}

/// For each element of a row-major `logical` shape, its index in row-major `stored` storage,
/// where logical axis `i` is stored axis `perm[i]`.
/// A 1-D Conv/pool node as the 2-D node over a one-row image: `kernel_shape`, `strides`,
/// `dilations` `[k]` → `[1, k]`, `pads` `[b, e]` → `[0, b, 0, e]`.
fn one_row(node: &NodeProto) -> NodeProto {
    let mut n = node.clone();
    for a in &mut n.attribute {
        match (a.name.as_str(), a.ints.as_slice()) {
            ("kernel_shape" | "strides" | "dilations", &[k]) => a.ints = vec![1, k],
            ("pads", &[b, e]) => a.ints = vec![0, b, 0, e],
            _ => {}
        }
    }
    n
}

/// The pads that make a window's output size the `ceil_mode` one: ONNX's
/// `⌈(n + pads − k) / s⌉ + 1`, less one when the last window would start in the end padding,
/// the extra on the bottom and right (those taps are outside the input: max ignores them and
/// the average does not count them).
fn ceil_mode_pads(window: &Window, hw: [usize; 2]) -> Result<[usize; 4]> {
    let mut pads = window.pads;
    for d in 0..2 {
        let (k, s) = (window.kernel[d], window.stride[d].max(1));
        let span = (hw[d] + pads[d] + pads[d + 2])
            .checked_sub(k)
            .ok_or_else(|| anyhow!("pooling window larger than the input"))?;
        let mut out = span.div_ceil(s) + 1;
        if (out - 1) * s >= hw[d] + pads[d] {
            out -= 1;
        }
        let needed = (out - 1) * s + k;
        pads[d + 2] += needed.saturating_sub(hw[d] + pads[d] + pads[d + 2]);
    }
    Ok(pads)
}

/// A dilated kernel as the plain kernel it equals: taps `d` apart, zeros between (exact; the
/// zeros cost multiply-adds, which a dilated kernel path would not).
fn dilate(w: &ArrayD<f64>, [dh, dw]: [usize; 2]) -> Result<ArrayD<f64>> {
    let (o, i, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
    let (eh, ew) = ((kh - 1) * dh + 1, (kw - 1) * dw + 1);
    bounded_elements(&[o, i, eh, ew], "the dilated kernel")?;
    let mut out = ArrayD::zeros(IxDyn(&[o, i, eh, ew]));
    for ((a, b, y, x), &v) in w.indexed_iter().map(|(ix, v)| ((ix[0], ix[1], ix[2], ix[3]), v)) {
        out[[a, b, y * dh, x * dw].as_slice()] = v;
    }
    Ok(out)
}

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
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| anyhow!("tensor '{}' has the negative dimension {d}", t.name)))
        .collect::<Result<_>>()?;
    let n = bounded_elements(&dims, &format!("tensor '{}'", t.name))?;
    let raw = &t.raw_data;
    let width = match t.data_type {
        data_type::FLOAT | data_type::INT32 => 4,
        data_type::DOUBLE | data_type::INT64 => 8,
        _ => 1,
    };
    if !raw.is_empty() && raw.len() != n * width {
        bail!(
            "tensor '{}' has {} bytes of raw data for shape {:?} ({n} values of {width} bytes)",
            t.name,
            raw.len(),
            dims
        );
    }
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

#[cfg(test)]
mod operator_table {
    /// The operators of one `## <heading>` table of docs/OPERATORS.md (first column, split on
    /// commas).
    fn table(doc: &str, heading: &str) -> Vec<String> {
        let section = doc.split("\n## ").find(|s| s.starts_with(heading)).unwrap_or_default();
        let mut ops: Vec<String> = section
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| operator") && !l.starts_with("|---"))
            .flat_map(|l| {
                l.split('|').nth(1).unwrap_or_default().split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>()
            })
            .collect();
        ops.sort();
        ops
    }

    fn sorted(list: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn operator_table_is_the_importer_s() {
        let doc = include_str!("../../../docs/OPERATORS.md");
        assert_eq!(table(doc, "On activations"), sorted(super::ACTIVATION_OPS), "docs/OPERATORS.md, on activations");
        assert_eq!(table(doc, "On constants only"), sorted(super::CONSTANT_ONLY_OPS), "docs/OPERATORS.md, constants");
    }
}
