//! Lowering the quantized IR to the runtime's model format: integer layer parameters, tensor
//! table, memory plan, postcard encoding, and an atomic write.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use half::f16;
use hawq_runtime::format::{
    self, AddParams, ChannelParams, Clamp as QClamp, ConvParams, DType, FcParams, InputLayout as RtLayout, ModelMeta,
    Op, PoolParams, RawInput, TensorDesc, UnaryParams,
};
use hawq_runtime::quant::{pack, Bits};
use ndarray::Array2;
use serde::Serialize;

use crate::gptq::InputMoments;
use crate::ir::{Graph, InputLayout, OpKind};
use crate::plan::{self, Buffer};
use crate::quantize::{quantize_channel, quantize_multiplier, ActQuant, BitConfig, RawKind};

/// One layer of a compiled model, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub op: String,
    pub weight_bits: Option<u8>,
    pub in_bits: u8,
    pub out_bits: u8,
    pub params: usize,
    pub weight_bytes: usize,
    pub macs: usize,
}

/// A compiled model: the blob and what it is made of.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub blob: Vec<u8>,
    pub layers: Vec<LayerReport>,
    pub arena_bytes: usize,
    pub weight_bytes: usize,
    /// ASCII picture of the arena plan.
    pub arena_map: String,
}

/// The integer parameters of one op, owning the bytes the runtime op will borrow.
struct Lowered {
    weights: Vec<u8>,
    bias: Vec<u8>,
    multiplier: Vec<u8>,
    shift: Vec<u8>,
}

fn narrow<T: TryFrom<usize>>(v: usize, what: &str, node: &str) -> Result<T> {
    T::try_from(v).map_err(|_| anyhow!("node '{node}': {what} {v} is too large for the model format"))
}

fn clamp_of(q: &ActQuant, c: crate::ir::Clamp) -> QClamp {
    let (lo, hi) = q.clamp_bounds(c);
    QClamp { min: lo as i8, max: hi as i8 }
}

fn full_range(q: &ActQuant) -> QClamp {
    let (lo, hi) = q.range();
    QClamp { min: lo as i8, max: hi as i8 }
}

/// Quantizes and packs a weight layer (rows = output channels) for input/output quantizations.
/// `input_mean(row, k)` is the calibration mean of the input that weight `k` of `row` multiplies:
/// the bias absorbs the expected output shift the rounding of the weights causes (empirical bias
/// correction, Nagel et al. 2019), which matters at 4 and 2 bits.
fn lower_weights(
    rows: &[&[f32]],
    bias: &[f32],
    bits: u8,
    (qin, qout): (&ActQuant, &ActQuant),
    name: &str,
    input_mean: impl Fn(usize, usize) -> f64,
    quantize_row: impl Fn(usize, &[f32]) -> (f32, Vec<i8>),
) -> Result<Lowered> {
    let b = Bits::from_u8(bits).ok_or_else(|| anyhow!("node '{name}': weight bits {bits} not in 2/4/8"))?;
    let k = rows.first().map_or(0, |r| r.len());
    let row_bytes = b.packed_len(k);
    // Keep |bias| within the accumulator bound of contract §3.
    let bound = k as i64 * (1i64 << (bits - 1)) * ((1i64 << qin.bits) - 1);
    let bias_limit = ((1i64 << 31) - 1 - bound).max(0);
    let mut out = Lowered { weights: Vec::new(), bias: Vec::new(), multiplier: Vec::new(), shift: Vec::new() };
    for (c, (row, &b_real)) in rows.iter().zip(bias).enumerate() {
        let (s_w, q) = quantize_row(c, row);
        // At 8 bits the rounding is fine and unbiased enough that the correction (which ignores
        // padding) measured no gain; it is applied where rounding errors are large.
        let shift_of_rounding: f64 = if bits < 8 {
            row.iter()
                .zip(&q)
                .enumerate()
                .map(|(k, (&w, &qw))| (w as f64 - s_w as f64 * qw as f64) * input_mean(c, k))
                .sum()
        } else {
            0.0
        };
        let b_real = b_real as f64 + shift_of_rounding;
        let mut packed = vec![0u8; row_bytes];
        pack(&q, b, &mut packed);
        out.weights.extend_from_slice(&packed);
        let acc_scale = qin.scale as f64 * s_w as f64;
        let (m, shift) =
            quantize_multiplier(acc_scale / qout.scale as f64).map_err(|e| anyhow!("node '{name}': {e}"))?;
        let bias_q = ((b_real / acc_scale).round() as i64).clamp(-bias_limit, bias_limit) as i32;
        out.bias.extend_from_slice(&bias_q.to_le_bytes());
        out.multiplier.extend_from_slice(&m.to_le_bytes());
        out.shift.push(shift as u8);
    }
    if bound >= 1 << 31 {
        bail!("node '{name}': {k} inputs at {bits}-bit weights could overflow the 32-bit accumulator");
    }
    Ok(out)
}

/// How a layer's rows are rounded: GPTQ against the layer's input moments below 8 bits, nearest
/// rounding at 8 bits (already near-lossless) or when no moments are known.
pub(crate) struct RowQuantizer {
    bits: u8,
    /// Per group (one group for conv/FC, one per input channel for depthwise): H and the upper
    /// Cholesky factor of its dampened inverse.
    groups: Vec<(Array2<f64>, Array2<f64>)>,
}

impl RowQuantizer {
    pub(crate) fn new(moments: Option<&InputMoments>, bits: u8) -> RowQuantizer {
        let factor = |h: &Array2<f64>| crate::gptq::inverse_cholesky(h).map(|u| (h.clone(), u));
        let groups = match moments {
            Some(_) if bits >= 8 => Vec::new(),
            Some(InputMoments::Shared(h)) => factor(h).into_iter().collect(),
            Some(InputMoments::PerChannel(hs)) => {
                let g: Option<Vec<_>> = hs.iter().map(factor).collect();
                g.unwrap_or_default()
            }
            None => Vec::new(),
        };
        RowQuantizer { bits, groups }
    }

    pub(crate) fn quantize(&self, group: usize, w: &[f32]) -> (f32, Vec<i8>) {
        match self.groups.get(group) {
            Some((h, u)) if h.nrows() == w.len() => crate::gptq::quantize_row(w, self.bits, h, u),
            _ => quantize_channel(w, self.bits),
        }
    }
}

/// `‖Q_b(W) − W‖²` of a weight layer with the quantizer `emit` uses (HAWQ-V2's perturbation
/// needs the weights the model will really hold).
pub fn weight_perturbation(op: &OpKind, moments: Option<&InputMoments>, bits: u8) -> f64 {
    let (flat, rows, groups_of) = match op {
        OpKind::Conv(c) => {
            let rows = c.weight.shape()[0];
            let in_c = match moments {
                Some(InputMoments::PerChannel(v)) => v.len().max(1),
                _ => 1,
            };
            (c.weight.as_slice(), rows, if c.depthwise { (rows / in_c).max(1) } else { usize::MAX })
        }
        OpKind::Fc(f) => (f.weight.as_slice(), f.weight.shape()[0], usize::MAX),
        _ => return 0.0,
    };
    let Some(flat) = flat else { return 0.0 };
    let quantizer = RowQuantizer::new(moments, bits);
    flat.chunks(flat.len() / rows.max(1))
        .enumerate()
        .map(|(r, row)| {
            let group = if groups_of == usize::MAX { 0 } else { r / groups_of };
            let (s, q) = quantizer.quantize(group, row);
            row.iter().zip(q).map(|(&w, q)| (w as f64 - s as f64 * q as f64).powi(2)).sum::<f64>()
        })
        .sum()
}

fn channel(l: &Lowered) -> ChannelParams<'_> {
    ChannelParams { bias: &l.bias, multiplier: &l.multiplier, shift: &l.shift }
}

fn dtype(q: &ActQuant) -> DType {
    if q.bits == 4 {
        DType::I4
    } else {
        DType::I8
    }
}

/// Lowers `graph` with activation quantization `acts` and bit widths `bits` to a model blob.
/// `channel_means[v]` is the calibration mean of value `v` per channel (bias correction).
pub fn emit(
    graph: &Graph,
    acts: &[ActQuant],
    channel_means: &[Vec<f64>],
    moments: &[Option<InputMoments>],
    bits: &BitConfig,
    raw: RawKind,
) -> Result<Compiled> {
    let n_nodes = graph.nodes.len();
    if n_nodes == 0 {
        bail!("the model computes nothing: after normalization it has no operations");
    }
    if graph.values.len() > format::MAX_TENSORS {
        bail!("the model has {} tensors; the format holds at most {}", graph.values.len(), format::MAX_TENSORS);
    }
    // Tensor dtypes and sizes.
    let is_f32 = |v: usize| graph.nodes.iter().any(|n| n.output == v && matches!(n.op, OpKind::Softmax));
    let dtypes: Vec<DType> =
        (0..graph.values.len()).map(|v| if is_f32(v) { DType::F32 } else { dtype(&acts[v]) }).collect();
    let sizes: Vec<usize> = graph.values.iter().zip(&dtypes).map(|(v, d)| d.bytes_for(v.elements())).collect();

    // Lifetimes and in-place aliases for the planner.
    let consumers = graph.consumers();
    let producer: Vec<Option<usize>> =
        (0..graph.values.len()).map(|v| graph.nodes.iter().position(|n| n.output == v)).collect();
    let mut buffers: Vec<Buffer> = (0..graph.values.len())
        .map(|v| {
            let first = producer[v].unwrap_or(0);
            let mut last = consumers[v].iter().copied().max().unwrap_or(first);
            if v == graph.output {
                last = n_nodes - 1;
            }
            Buffer { size: sizes[v], first_use: first, last_use: last, alias_of: None }
        })
        .collect();
    let root = |buffers: &[Buffer], mut v: usize| {
        while let Some(a) = buffers[v].alias_of {
            v = a;
        }
        v
    };
    for (i, node) in graph.nodes.iter().enumerate() {
        let out = node.output;
        let candidate = match node.op {
            OpKind::Reshape => Some(node.inputs[0]),
            // The add's output may overwrite an input that dies here (contract: element i is read
            // before it is written).
            OpKind::Add(_) => node.inputs.iter().copied().find(|&a| {
                buffers[a].last_use == i && dtypes[a] == dtypes[out] && sizes[a] == sizes[out] && a != graph.input
            }),
            _ => None,
        };
        if let Some(a) = candidate {
            buffers[out].alias_of = Some(root(&buffers, a));
        }
    }
    let plan = plan::plan(&buffers, 4);
    plan::check(&buffers, &plan).map_err(|e| anyhow!("internal error: memory plan is inconsistent: {e}"))?;
    let names: Vec<String> = graph.values.iter().map(|v| v.name.clone()).collect();
    let arena_map = plan::ascii_map(&buffers, &plan, &names, 64);

    let tensors: heapless::Vec<TensorDesc, { format::MAX_TENSORS }> = graph
        .values
        .iter()
        .enumerate()
        .map(|(v, val)| {
            let (h, w, c) = val.hwc();
            let dims = [1, h, w, c].map(|d| u16::try_from(d).unwrap_or(u16::MAX));
            TensorDesc {
                shape: dims,
                dtype: dtypes[v],
                scale: f16::from_f32(acts[v].scale),
                zero_point: acts[v].zero_point as i8,
                offset: plan.offsets[v] as u32,
            }
        })
        .collect();
    if let Some(v) = graph.values.iter().find(|v| v.shape.iter().any(|&d| d > u16::MAX as usize)) {
        bail!("tensor '{}' has a dimension above 65535: {:?}", v.name, v.shape);
    }

    // Integer parameters per node.
    let mut lowered: Vec<Option<Lowered>> = Vec::with_capacity(n_nodes);
    let mut layers = Vec::with_capacity(n_nodes);
    for (i, node) in graph.nodes.iter().enumerate() {
        let (qin, qout) = (&acts[node.inputs[0]], &acts[node.output]);
        let l = match &node.op {
            OpKind::Conv(c) => {
                let k = c.weight.len() / c.weight.shape()[0];
                let flat = c.weight.as_slice().ok_or_else(|| anyhow!("weights not contiguous"))?;
                let rows: Vec<&[f32]> = flat.chunks(k).collect();
                let means = &channel_means[node.inputs[0]];
                let in_c = means.len().max(1);
                let per_group = (c.weight.shape()[0] / in_c).max(1);
                let mean = |row: usize, k: usize| {
                    let ch = if c.depthwise { row / per_group } else { k % in_c };
                    means.get(ch).copied().unwrap_or(0.0)
                };
                let bias = c.bias.as_slice().unwrap_or(&[]);
                let rounding = RowQuantizer::new(moments.get(i).and_then(Option::as_ref), bits.weight_bits[i]);
                let quantize =
                    |row: usize, w: &[f32]| rounding.quantize(if c.depthwise { row / per_group } else { 0 }, w);
                Some(lower_weights(&rows, bias, bits.weight_bits[i], (qin, qout), &node.name, mean, quantize)?)
            }
            OpKind::Fc(f) => {
                let k = f.weight.shape()[1];
                let flat = f.weight.as_slice().ok_or_else(|| anyhow!("weights not contiguous"))?;
                let rows: Vec<&[f32]> = flat.chunks(k).collect();
                let means = &channel_means[node.inputs[0]];
                let mean = |_: usize, k: usize| means.get(k).copied().unwrap_or(0.0);
                let bias = f.bias.as_slice().unwrap_or(&[]);
                let rounding = RowQuantizer::new(moments.get(i).and_then(Option::as_ref), bits.weight_bits[i]);
                let quantize = |_: usize, w: &[f32]| rounding.quantize(0, w);
                Some(lower_weights(&rows, bias, bits.weight_bits[i], (qin, qout), &node.name, mean, quantize)?)
            }
            _ => None,
        };
        layers.push(LayerReport {
            name: node.name.clone(),
            op: node.op.name().to_string(),
            weight_bits: node.op.has_weights().then_some(bits.weight_bits[i]),
            in_bits: qin.bits,
            out_bits: if dtypes[node.output] == DType::F32 { 32 } else { qout.bits },
            params: node.op.weight_count(),
            weight_bytes: l.as_ref().map_or(0, |l| l.weights.len() + l.bias.len() + l.multiplier.len() + l.shift.len()),
            macs: node.op.macs(&graph.values[node.output]),
        });
        lowered.push(l);
    }

    let mut ops: Vec<Op<'_>> = Vec::with_capacity(n_nodes);
    for (i, (node, l)) in graph.nodes.iter().zip(&lowered).enumerate() {
        let name = node.name.as_str();
        let input = narrow::<u16>(node.inputs[0], "tensor index", name)?;
        let output = narrow::<u16>(node.output, "tensor index", name)?;
        let (qin, qout) = (&acts[node.inputs[0]], &acts[node.output]);
        let op = match (&node.op, l) {
            (OpKind::Conv(c), Some(l)) => {
                let w = &c.window;
                let p = ConvParams {
                    input,
                    output,
                    kernel_h: narrow(w.kernel[0], "kernel height", name)?,
                    kernel_w: narrow(w.kernel[1], "kernel width", name)?,
                    stride_h: narrow(w.stride[0], "stride", name)?,
                    stride_w: narrow(w.stride[1], "stride", name)?,
                    pad_top: narrow(w.pads[0], "padding", name)?,
                    pad_left: narrow(w.pads[1], "padding", name)?,
                    weight_bits: bits.weight_bits[i],
                    weights: &l.weights,
                    channel: channel(l),
                    clamp: clamp_of(qout, c.clamp),
                };
                if c.depthwise {
                    Op::DepthwiseConv2d(p)
                } else {
                    Op::Conv2d(p)
                }
            }
            (OpKind::Fc(f), Some(l)) => Op::FullyConnected(FcParams {
                input,
                output,
                weight_bits: bits.weight_bits[i],
                weights: &l.weights,
                channel: channel(l),
                clamp: clamp_of(qout, f.clamp),
            }),
            (OpKind::AvgPool(w) | OpKind::MaxPool(w), _) => {
                let (multiplier, shift) = if matches!(node.op, OpKind::MaxPool(_)) {
                    (1 << 30, 1)
                } else {
                    quantize_multiplier(qin.scale as f64 / qout.scale as f64)
                        .map_err(|e| anyhow!("node '{name}': {e}"))?
                };
                let p = PoolParams {
                    input,
                    output,
                    kernel_h: narrow(w.kernel[0], "kernel height", name)?,
                    kernel_w: narrow(w.kernel[1], "kernel width", name)?,
                    stride_h: narrow(w.stride[0], "stride", name)?,
                    stride_w: narrow(w.stride[1], "stride", name)?,
                    pad_top: narrow(w.pads[0], "padding", name)?,
                    pad_left: narrow(w.pads[1], "padding", name)?,
                    multiplier,
                    shift,
                    clamp: full_range(qout),
                };
                if matches!(node.op, OpKind::MaxPool(_)) {
                    Op::MaxPool(p)
                } else {
                    Op::AvgPool(p)
                }
            }
            (OpKind::Add(clamp), _) => {
                let qb = &acts[node.inputs[1]];
                let (ra, rb) = (qin.scale as f64 / qout.scale as f64, qb.scale as f64 / qout.scale as f64);
                let (_, shift) = quantize_multiplier(ra.max(rb)).map_err(|e| anyhow!("node '{name}': {e}"))?;
                let m = |r: f64| (r * 2f64.powi(31 - shift as i32)).round().min(i32::MAX as f64) as i32;
                Op::Add(AddParams {
                    a: input,
                    b: narrow(node.inputs[1], "tensor index", name)?,
                    output,
                    multiplier_a: m(ra),
                    multiplier_b: m(rb),
                    shift,
                    clamp: clamp_of(qout, *clamp),
                })
            }
            (OpKind::Reshape, _) => Op::Reshape(UnaryParams { input, output }),
            (OpKind::Softmax, _) => Op::Softmax(UnaryParams { input, output }),
            _ => bail!("node '{name}': internal error: weights were not lowered"),
        };
        ops.push(op);
    }

    let meta = ModelMeta {
        tensors,
        input: graph.input as u16,
        output: graph.output as u16,
        raw_input: match raw {
            RawKind::U8 => RawInput::U8,
            RawKind::I8 => RawInput::I8,
            RawKind::F32 => RawInput::F32,
        },
        input_layout: match graph.input_layout {
            InputLayout::Nhwc => RtLayout::Nhwc,
            InputLayout::Nchw => RtLayout::Nchw,
        },
        scratch_offset: 0,
        scratch_bytes: 0,
        op_count: narrow(n_nodes, "op count", "graph")?,
    };
    let payload: usize =
        lowered.iter().flatten().map(|l| l.weights.len() + l.bias.len() + l.multiplier.len() + l.shift.len()).sum();
    let mut blob = vec![0u8; payload + 64 * 1024 + 64 * graph.nodes.len()];
    let len = format::encode(&meta, plan.arena_bytes as u32, &ops, &mut blob).map_err(|e| anyhow!("encoding: {e}"))?;
    blob.truncate(len);
    // The runtime's own loader is the final check of what we emit.
    hawq_runtime::Model::from_bytes(&blob)
        .map_err(|e| anyhow!("internal error: the runtime rejects the emitted model: {e}"))?;
    let weight_bytes = layers.iter().map(|l| l.weight_bytes).sum();
    Ok(Compiled { blob, layers, arena_bytes: plan.arena_bytes, weight_bytes, arena_map })
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then a rename,
/// so a reader never sees a half-written model.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("{}: cannot create a file here", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("{}: write failed", path.display()))?;
    tmp.as_file().sync_all().ok();
    tmp.persist(path).map_err(|e| anyhow!("{}: cannot write ({})", path.display(), e.error))?;
    Ok(())
}
