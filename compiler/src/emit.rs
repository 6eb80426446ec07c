//! Lowering the quantized IR to the runtime's model format: integer layer parameters, tensor
//! table, memory plan, the model file's encoding (`hawq_runtime::format::encode`), and an atomic write.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use half::f16;
use hawq_runtime::format::{
    self, AddParams, ChannelParams, Clamp as QClamp, ConcatParams, ConcatPart, ConvParams, DType, DepthToSpaceParams,
    FcParams, InputLayout as RtLayout, LutParams, ModelMeta, MulParams, Op, PoolParams, RawInput, ResizeParams,
    SliceParams, TensorDesc, Tensors, UnaryParams, MAX_CONCAT_INPUTS,
};
use hawq_runtime::quant::{pack, Bits, BIAS_EXPONENT_MAX, BIAS_I32};
use rayon::prelude::*;
use serde::Serialize;

use crate::gptq::{Gptq, InputMoments};
use crate::ir::{Activation, Conv, Fc, Graph, InputLayout, OpKind};
use crate::plan::{self, Buffer};
use crate::quantize::{
    quantize_channel, quantize_channel_multiplier, quantize_multiplier, ActQuant, BitConfig, RawKind,
};

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

/// The table of an activation (contract §5, Lut): for every input code `q` (and channel, when the
/// function has one parameter per channel), `f(s_in·(q − z_in))` quantized to the output.
fn activation_table(f: &Activation, channels: usize, qin: &ActQuant, qout: &ActQuant) -> Vec<u8> {
    let rows = match f {
        Activation::PRelu(slopes) if slopes.len() > 1 => channels,
        _ => 1,
    };
    let (lo, hi) = qin.range();
    let mut table = Vec::with_capacity(rows << qin.bits);
    for c in 0..rows {
        for q in lo..=hi {
            table.push(qout.quantize(f.apply(qin.dequantize(q), c)) as i8 as u8);
        }
    }
    table
}

/// The integer parameters of one op, owning the bytes the runtime op will borrow.
struct Lowered {
    weights: Vec<u8>,
    bias: Vec<u8>,
    bias_exponent: u8,
    multiplier: Vec<u8>,
    shift_base: i8,
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
    rounded: &[(f32, Vec<i8>)],
) -> Result<Lowered> {
    let b = Bits::from_u8(bits).ok_or_else(|| anyhow!("node '{name}': weight bits {bits} not in 2/4/8"))?;
    let k = rows.first().map_or(0, |r| r.len());
    let row_bytes = b.packed_len(k);
    // Keep |bias| within the accumulator bound of contract §3.
    let bound = k as i64 * (1i64 << (bits - 1)) * ((1i64 << qin.bits) - 1);
    if bound >= 1 << 31 {
        bail!("node '{name}': {k} inputs at {bits}-bit weights could overflow the 32-bit accumulator");
    }
    let bias_limit = (1i64 << 31) - 1 - bound;
    let mut out =
        Lowered { weights: Vec::new(), bias: Vec::new(), bias_exponent: 0, multiplier: Vec::new(), shift_base: 0 };
    // Biases in accumulator units, before their rounding; multipliers as (mantissa, shift), and
    // as reals (output steps per accumulator unit).
    let mut biases = Vec::with_capacity(rows.len());
    let mut multipliers = Vec::with_capacity(rows.len());
    let mut steps_per_unit = Vec::with_capacity(rows.len());
    let grid = crate::quantize::WeightGrid::of(bits);
    for (c, ((row, &b_real), (s_w, q))) in rows.iter().zip(bias).zip(rounded).enumerate() {
        let b_real = b_real as f64 + bias_correction(bits, row, *s_w, q, |k| input_mean(c, k));
        let mut s_w = *s_w as f64;
        let mut q = std::borrow::Cow::Borrowed(q.as_slice());
        // A channel whose weights are tiny beside its bias (BatchNorm with γ ≈ 0 leaves weights
        // of 1e-30 and a bias) would need a bias beyond the accumulator at its own weight scale.
        // Coarsen its scale until the bias fits: the weights round to what that scale resolves,
        // usually nothing, since at the bound they move the output by less than the bias does.
        let fit = bias_limit as f64 / 2.0;
        if b_real.abs() / (qin.scale as f64 * s_w) > fit {
            s_w = b_real.abs() / (qin.scale as f64 * fit);
            let requantized = row.iter().map(|&w| grid.round(w as f64 / s_w));
            q = std::borrow::Cow::Owned(requantized.collect());
        }
        // A channel with no weight left is a constant, b/s_out output steps: give it the scale
        // at which its bias is 64 accumulator units per output step, with no other channel's
        // scale involved, instead of an arbitrary one (whatever its weights' scale was).
        let mut b_real = b_real;
        if q.iter().all(|&v| v == 0) {
            s_w = qout.scale as f64 / (64.0 * qin.scale as f64);
            // Beyond 2^bits output steps from any zero point the output saturates: the same
            // output from a bias that fits 16 bits.
            let saturating = qout.scale as f64 * f64::from(1u32 << qout.bits);
            b_real = b_real.clamp(-saturating, saturating);
        }
        let mut packed = vec![0u8; row_bytes];
        pack(&q, b, &mut packed);
        out.weights.extend_from_slice(&packed);
        let acc_scale = qin.scale as f64 * s_w;
        let real = acc_scale / qout.scale as f64;
        multipliers.push(quantize_channel_multiplier(real).map_err(|e| anyhow!("node '{name}': {e}"))?);
        steps_per_unit.push(real);
        biases.push(b_real / acc_scale);
    }
    let (words, shift_base) = channel_words(&multipliers);
    out.multiplier = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    out.shift_base = shift_base;
    (out.bias, out.bias_exponent) = encode_biases(&biases, &steps_per_unit, bias_limit);
    Ok(out)
}

/// The most a shared bias exponent may move any channel's output, in output steps: above it the
/// layer stores `i32` biases.
const BIAS_ROUNDING_MAX_STEPS: f64 = 1.0 / 32.0;

/// A layer's biases (accumulator units) as the blob stores them (contract §1), each within
/// `±limit` (the accumulator bound of §3): `i16` with the smallest shared exponent at which every
/// bias fits, when rounding to that exponent moves no channel's output by more than
/// [`BIAS_ROUNDING_MAX_STEPS`] (`steps_per_unit[c]` is channel `c`'s output steps per accumulator
/// unit); else `i32`, exact. One channel with a huge bias in its own units must not round away
/// every other channel's bias.
fn encode_biases(biases: &[f64], steps_per_unit: &[f64], limit: i64) -> (Vec<u8>, u8) {
    let clamped = || biases.iter().map(move |&b| b.clamp(-(limit as f64), limit as f64));
    let (narrow, e) = bias_with_exponent(&clamped().collect::<Vec<_>>(), limit);
    let rounding_steps = steps_per_unit.iter().fold(0f64, |m, &s| m.max(s)) * f64::from(1u32 << e) / 2.0;
    if e == 0 || rounding_steps <= BIAS_ROUNDING_MAX_STEPS {
        (narrow.iter().flat_map(|b| b.to_le_bytes()).collect(), e)
    } else {
        (clamped().flat_map(|b| (b.round() as i32).to_le_bytes()).collect(), BIAS_I32)
    }
}

/// A layer's multipliers `(m₁₂, s)` as the format stores them (contract §1): one base shift
/// `s₀` and a word `(s − s₀) << 12 | m₁₂` per channel. `s₀` is the smallest shift unless the
/// shifts span more than 15; then channels more than `2^15` times weaker than the strongest are
/// moved up to `s₀` with their mantissa divided accordingly (they lose precision, and contribute
/// almost nothing). A zero multiplier is the word 0.
fn channel_words(multipliers: &[(u16, i8)]) -> (Vec<u16>, i8) {
    let live = || multipliers.iter().filter(|(m, _)| *m != 0).map(|&(_, s)| s);
    let (lo, hi) = (live().min().unwrap_or(0), live().max().unwrap_or(0));
    let base = lo.max(hi - 15);
    let words = multipliers
        .iter()
        .map(|&(m, s)| {
            if m == 0 {
                0
            } else if s < base {
                (m as f64 / 2f64.powi((base - s) as i32)).round() as u16
            } else {
                (((s - base) as u16) << 12) | m
            }
        })
        .collect();
    (words, base)
}

/// A layer's biases (accumulator units) as `b·2^e` with `b` in `i16` (contract §1): the smallest
/// exponent at which every bias fits, each rounded to the nearest multiple of `2^e` and kept
/// within `|b·2^e| ≤ limit` (the accumulator bound of §3). The rounding costs at most `2^(e−1)`
/// accumulator units, a small fraction of an output step: a bias of many output steps is what
/// needs `e > 0`.
fn bias_with_exponent(biases: &[f64], limit: i64) -> (Vec<i16>, u8) {
    let largest = biases.iter().fold(0f64, |m, b| m.max(b.abs())).min(limit as f64);
    let e = (0..BIAS_EXPONENT_MAX).find(|&e| (largest / f64::from(1u32 << e)).round() <= i16::MAX as f64);
    let e = e.unwrap_or(BIAS_EXPONENT_MAX);
    let step = f64::from(1u32 << e);
    let b_limit = (limit >> e).min(i16::MAX as i64) as f64;
    (biases.iter().map(|&b| (b / step).round().clamp(-b_limit, b_limit) as i16).collect(), e)
}

/// The calibration mean of the input that weight `k` of output channel `row` multiplies: the
/// mean of that patch entry over positions and samples when the layer's input moments are known
/// (padding counts as the zeros the layer sees, so the correction is exact on average), else
/// the mean of the input channel.
fn input_mean<'a>(
    op: &'a OpKind,
    means: &'a [f64],
    moments: Option<&'a InputMoments>,
) -> impl Fn(usize, usize) -> f64 + 'a {
    let in_c = means.len().max(1);
    let (depthwise, per_group) = match op {
        OpKind::Conv(c) => (c.depthwise, (c.weight.shape()[0] / in_c).max(1)),
        _ => (false, 1),
    };
    move |row, k| match moments {
        Some(InputMoments::Shared(m)) => m.mean[k],
        Some(InputMoments::PerChannel(v)) => v[row / per_group].mean[k],
        _ => {
            let ch = if depthwise { row / per_group } else { k % in_c };
            means.get(ch).copied().unwrap_or(0.0)
        }
    }
}

/// The bias shift that cancels the expected output shift of a channel's rounding,
/// `Σ_k (w_k − s·q_k) · E[x_k]` (empirical bias correction, Nagel et al. 2019). Below 8 bits
/// GPTQ rounds against the input covariance and leaves the mean to this correction, so the two
/// go together. At 8 bits the rounding is nearest, fine and nearly unbiased (a correction by the
/// input channels' means measured no gain there), and no correction is applied.
fn bias_correction(bits: u8, row: &[f32], s: f32, q: &[i8], mean: impl Fn(usize) -> f64) -> f64 {
    if bits >= 8 {
        return 0.0;
    }
    row.iter().zip(q).enumerate().map(|(k, (&w, &qw))| (w as f64 - s as f64 * qw as f64) * mean(k)).sum()
}

/// A weight layer's weights and biases as the compiled model holds them, in real units: the
/// rounded weights `s·q` and the bias with its correction (before the bias's own rounding to
/// the accumulator scale). `means` are the per-channel calibration means of its input. The
/// difference to the float layer is the perturbation whose loss curvature the allocation's Ω
/// measures.
pub fn fake_quantized(
    op: &OpKind,
    moments: Option<&InputMoments>,
    means: &[f64],
    bits: u8,
) -> Option<(Vec<f32>, Vec<f32>)> {
    fake_quantized_widths(op, moments, means, &[bits]).and_then(|mut v| v.pop())
}

/// [`fake_quantized`] at each width of `widths`, in that order (the GPTQ factorization of the
/// layer's moments is made once for all of them).
pub fn fake_quantized_widths(
    op: &OpKind,
    moments: Option<&InputMoments>,
    means: &[f64],
    widths: &[u8],
) -> Option<Vec<(Vec<f32>, Vec<f32>)>> {
    let bias = match op {
        OpKind::Conv(c) => c.bias.to_vec(),
        OpKind::Fc(f) => f.bias.to_vec(),
        _ => return None,
    };
    let mean = input_mean(op, means, moments);
    let rows = weight_rows(op);
    let per_width = round_layer_widths(op, moments, widths).into_iter().zip(widths).map(|(rounded, &bits)| {
        let weights = rounded.iter().flat_map(|(s, q)| q.iter().map(move |&v| s * v as f32)).collect();
        let bias = rows
            .iter()
            .zip(&rounded)
            .zip(&bias)
            .enumerate()
            .map(|(c, ((row, (s, q)), &b))| (b as f64 + bias_correction(bits, row, *s, q, |k| mean(c, k))) as f32)
            .collect();
        (weights, bias)
    });
    Some(per_width.collect())
}

/// How a layer's rows are rounded: GPTQ against the layer's input moments below 8 bits, nearest
/// rounding at 8 bits (already near-lossless) or when no moments are known.
pub(crate) struct RowQuantizer {
    /// Per group (one group for conv/FC, one per input channel for depthwise); empty when no
    /// width below 8 bits is wanted, or GPTQ cannot be used.
    groups: Vec<Gptq>,
}

impl RowQuantizer {
    /// The quantizer for the widths `widths` (the factorization is only made if one is below 8).
    pub(crate) fn new(moments: Option<&InputMoments>, widths: &[u8]) -> RowQuantizer {
        // Below 8 bits the bias absorbs the mean of the output error (`bias_correction`), so GPTQ
        // minimises what is left: the error's variance, on the input covariance.
        let factor = |m: &crate::gptq::Moments| Gptq::new(&m.covariance());
        let groups = match moments {
            Some(_) if widths.iter().all(|&bits| bits >= 8) => Vec::new(),
            Some(InputMoments::Shared(m)) => factor(m).into_iter().collect(),
            Some(InputMoments::PerChannel(ms)) => {
                let g: Option<Vec<_>> = ms.par_iter().map(factor).collect();
                g.unwrap_or_default()
            }
            None => Vec::new(),
        };
        RowQuantizer { groups }
    }

    pub(crate) fn quantize(&self, group: usize, w: &[f32], bits: u8) -> (f32, Vec<i8>) {
        match self.groups.get(group) {
            Some(g) if bits < 8 && g.inputs() == w.len() => g.quantize(w, bits),
            _ => quantize_channel(w, bits),
        }
    }

    /// GPTQ's roundings `start` of the rows `rows` of group `group`, improved by learned
    /// rounding below 8 bits (`learned_rounding.rs`: never worse on the output error).
    fn refine(&self, group: usize, rows: &[&[f32]], start: Vec<(f32, Vec<i8>)>, bits: u8) -> Vec<(f32, Vec<i8>)> {
        match self.groups.get(group) {
            Some(g) if bits < 8 && rows.iter().all(|r| r.len() == g.inputs()) => {
                let settings = crate::learned_rounding::Settings::default();
                crate::learned_rounding::refine_rows(g.covariance(), rows, &start, bits, &settings)
            }
            _ => start,
        }
    }
}

/// Layer roundings already made, by a fingerprint of what they are a function of (weights,
/// input moments, width). The allocation scores every layer at every width and each compile
/// of a frontier point rounds its layers again; learned rounding costs seconds per layer, so it
/// is made once per process. The weights are kept to rule out a collision of fingerprints.
/// A layer's rounding: each output channel's scale and integers.
pub type LayerRounding = Vec<(f32, Vec<i8>)>;
type RoundingMemo = std::sync::Mutex<std::collections::HashMap<u64, (Vec<u32>, LayerRounding)>>;
static ROUNDINGS: std::sync::OnceLock<RoundingMemo> = std::sync::OnceLock::new();

/// Entries beyond which the memo is cleared (a long-lived process compiling many models).
const ROUNDING_MEMO_ENTRIES: usize = 4096;

fn fingerprint(rows: &[&[f32]], moments: Option<&InputMoments>, bits: u8) -> (u64, Vec<u32>) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let weights: Vec<u32> = rows.iter().flat_map(|r| r.iter().map(|w| w.to_bits())).collect();
    weights.hash(&mut h);
    rows.len().hash(&mut h);
    bits.hash(&mut h);
    let mut moment = |m: &crate::gptq::Moments| {
        m.second.iter().for_each(|v| v.to_bits().hash(&mut h));
        m.mean.iter().for_each(|v| v.to_bits().hash(&mut h));
    };
    match moments {
        Some(InputMoments::Shared(m)) => moment(m),
        Some(InputMoments::PerChannel(v)) => v.iter().for_each(&mut moment),
        None => {}
    }
    (h.finish(), weights)
}

/// The output channels (rows) of a weight layer's weights, in the IR's `[out_c, …]` order.
fn weight_rows(op: &OpKind) -> Vec<&[f32]> {
    let (flat, rows) = match op {
        OpKind::Conv(c) => (c.weight.as_slice(), c.weight.shape()[0]),
        OpKind::Fc(f) => (f.weight.as_slice(), f.weight.shape()[0]),
        _ => return Vec::new(),
    };
    match flat {
        Some(flat) if rows > 0 => flat.chunks(flat.len() / rows).collect(),
        _ => Vec::new(),
    }
}

/// Every output channel of a weight layer rounded as `emit` rounds it: its scale and integers.
pub fn round_layer(op: &OpKind, moments: Option<&InputMoments>, bits: u8) -> Vec<(f32, Vec<i8>)> {
    round_layer_widths(op, moments, &[bits]).pop().unwrap_or_default()
}

/// [`round_layer`] at each width of `widths`, in that order. Rows are rounded in parallel (each
/// row's rounding is independent of the others).
pub fn round_layer_widths(op: &OpKind, moments: Option<&InputMoments>, widths: &[u8]) -> Vec<Vec<(f32, Vec<i8>)>> {
    let rows = weight_rows(op);
    let memo = ROUNDINGS.get_or_init(Default::default);
    let keys: Vec<(u64, Vec<u32>)> = widths.iter().map(|&bits| fingerprint(&rows, moments, bits)).collect();
    let known = |key: &(u64, Vec<u32>)| {
        let memo = memo.lock().unwrap_or_else(|e| e.into_inner());
        memo.get(&key.0).filter(|(weights, _)| *weights == key.1).map(|(_, rounded)| rounded.clone())
    };
    let mut found: Vec<Option<LayerRounding>> = keys.iter().map(known).collect();
    let missing: Vec<u8> = widths.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(&b, _)| b).collect();
    if !missing.is_empty() {
        let quantizer = RowQuantizer::new(moments, &missing);
        // Depthwise rows share their input channel's moments: `rows / in_c` rows per channel.
        let per_group = match (op, moments) {
            (OpKind::Conv(c), Some(InputMoments::PerChannel(v))) if c.depthwise => (rows.len() / v.len().max(1)).max(1),
            _ => rows.len().max(1),
        };
        for &bits in &missing {
            let gptq: Vec<(f32, Vec<i8>)> =
                rows.par_iter().enumerate().map(|(r, row)| quantizer.quantize(r / per_group, row, bits)).collect();
            // Learned rounding per group of rows sharing their input moments (groups in
            // parallel; each group's result does not depend on the others or on the threads).
            let groups: Vec<(usize, &[&[f32]])> = rows.chunks(per_group).enumerate().collect();
            let refined: Vec<Vec<(f32, Vec<i8>)>> = groups
                .par_iter()
                .map(|&(g, group_rows)| {
                    let start = gptq[g * per_group..g * per_group + group_rows.len()].to_vec();
                    quantizer.refine(g, group_rows, start, bits)
                })
                .collect();
            let refined = refined.concat();
            for (slot, _) in found.iter_mut().zip(widths).filter(|(f, &b)| f.is_none() && b == bits) {
                *slot = Some(refined.clone());
            }
            let key = fingerprint(&rows, moments, bits);
            let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
            if memo.len() >= ROUNDING_MEMO_ENTRIES {
                memo.clear();
            }
            memo.insert(key.0, (key.1, refined));
        }
    }
    found.into_iter().map(|f| f.unwrap_or_default()).collect()
}

/// Fixes the rounding `emit` (and [`round_layer`]) uses for the weights of `op` at `bits` with
/// these input moments: the whole-network refinement (`crate::refine`) chooses integers that no
/// per-layer rounding would, and its graph's weights are exactly `s·q`.
pub fn pin_rounding(op: &OpKind, moments: Option<&InputMoments>, bits: u8, rounding: Vec<(f32, Vec<i8>)>) {
    let rows = weight_rows(op);
    let key = fingerprint(&rows, moments, bits);
    let memo = ROUNDINGS.get_or_init(Default::default);
    let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
    if memo.len() >= ROUNDING_MEMO_ENTRIES {
        memo.clear();
    }
    memo.insert(key.0, (key.1, rounding));
}

/// `‖Q_b(W_c) − W_c‖²` of each output channel `c` of a weight layer with the quantizer `emit`
/// uses (HAWQ-V2's perturbation needs the weights the model will really hold).
pub fn weight_perturbation(op: &OpKind, moments: Option<&InputMoments>, bits: u8) -> Vec<f64> {
    weight_rows(op)
        .iter()
        .zip(round_layer(op, moments, bits))
        .map(|(row, (s, q))| row.iter().zip(q).map(|(&w, q)| (w as f64 - s as f64 * q as f64).powi(2)).sum::<f64>())
        .collect()
}

/// Whether convolution `node` is emitted as a fully connected layer: a dense (not depthwise)
/// window that covers its whole input, unpadded, so that its one output pixel is every output
/// channel's dot product with the whole input. Its weights `[out_c][kh][kw][in_c]` are then the
/// rows of a fully connected layer over the input's NHWC order, and its integer result is the
/// same, bit for bit (contract §3). Squeeze-and-excitation blocks and 1×1 classifier heads are
/// such convolutions; the convolution kernels, made for planes of pixels, spent about 250
/// instructions an output channel on one pixel of 24 input channels on the Cortex-M4 (the zoo's
/// mobilenet-v3-small). The compile report names them `conv as fc`.
pub fn runs_as_fully_connected(graph: &Graph, node: usize) -> bool {
    let n = &graph.nodes[node];
    let OpKind::Conv(c) = &n.op else { return false };
    let (h, w, _) = graph.values[n.inputs[0]].hwc();
    !c.depthwise && c.window.kernel == [h, w] && c.window.pads == [0; 4]
}

/// Bytes of arena scratch node `node`'s kernel takes at these weight and input bit widths (the
/// runtime's `kernels::*_scratch_bytes`, the most any microcontroller path needs); 0 for ops
/// without scratch.
pub fn scratch_bytes(graph: &Graph, node: usize, weight_bits: u8, in_bits: u8) -> usize {
    let n = &graph.nodes[node];
    let (Some(wb), Some(ib)) = (Bits::from_u8(weight_bits), Bits::from_u8(in_bits)) else {
        return 0;
    };
    match &n.op {
        OpKind::Conv(_) if runs_as_fully_connected(graph, node) => {
            let (i, o) = (graph.values[n.inputs[0]].elements(), graph.values[n.output].elements());
            hawq_runtime::kernels::fully_connected_scratch_bytes(i, o, wb, ib)
        }
        OpKind::Conv(c) => {
            let (h, w, ic) = graph.values[n.inputs[0]].hwc();
            let (oh, ow, oc) = graph.values[n.output].hwc();
            let g = hawq_runtime::kernels::Window {
                in_h: h,
                in_w: w,
                in_c: ic,
                out_h: oh,
                out_w: ow,
                out_c: oc,
                kernel_h: c.window.kernel[0],
                kernel_w: c.window.kernel[1],
                stride_h: c.window.stride[0],
                stride_w: c.window.stride[1],
                pad_top: c.window.pads[0],
                pad_left: c.window.pads[1],
            };
            if c.depthwise {
                hawq_runtime::kernels::depthwise_conv2d_scratch_bytes(&g, wb, ib)
            } else {
                hawq_runtime::kernels::conv2d_scratch_bytes(&g, wb, ib)
            }
        }
        OpKind::Fc(_) => {
            let (i, o) = (graph.values[n.inputs[0]].elements(), graph.values[n.output].elements());
            hawq_runtime::kernels::fully_connected_scratch_bytes(i, o, wb, ib)
        }
        _ => 0,
    }
}

fn channel(l: &Lowered) -> ChannelParams<'_> {
    ChannelParams { bias: &l.bias, bias_exponent: l.bias_exponent, multiplier: &l.multiplier, shift_base: l.shift_base }
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
    // The format's limits (u16 tensor indices, op count and dimensions) were checked before
    // calibration (`pipeline::check_format_limits`); checked again here for direct callers.
    crate::pipeline::check_format_limits(graph)?;
    // Tensor dtypes and sizes.
    let is_f32 = |v: usize| graph.nodes.iter().any(|n| n.output == v && n.op.is_normalization());
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
            if graph.is_output(v) {
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
            // A product may overwrite its first input the same way, never the per-channel gate.
            OpKind::Mul(_) => node.inputs.first().copied().filter(|&a| {
                buffers[a].last_use == i
                    && dtypes[a] == dtypes[out]
                    && sizes[a] == sizes[out]
                    && a != graph.input
                    && node.inputs[1] != a
            }),
            _ => None,
        };
        if let Some(a) = candidate {
            buffers[out].alias_of = Some(root(&buffers, a));
        }
    }
    // Each conv and FC op's scratch: a buffer alive during that op only, so it shares the arena
    // with tensors dead by then (and is disjoint from the op's input and output).
    let mut names: Vec<String> = graph.values.iter().map(|v| v.name.clone()).collect();
    let mut scratch_buffer: Vec<Option<usize>> = vec![None; n_nodes];
    for (i, node) in graph.nodes.iter().enumerate() {
        let bytes = scratch_bytes(graph, i, bits.weight_bits[i], acts[node.inputs[0]].bits);
        if bytes > 0 {
            scratch_buffer[i] = Some(buffers.len());
            buffers.push(Buffer { size: bytes, first_use: i, last_use: i, alias_of: None });
            names.push(format!("scratch of {}", node.name));
        }
    }
    let plan = plan::plan(&buffers, 4);
    plan::check(&buffers, &plan).map_err(|e| anyhow!("internal error: memory plan is inconsistent: {e}"))?;
    let arena_map = plan::ascii_map(&buffers, &plan, &names, 64);
    let scratch_at = |i: usize| -> Result<u32> {
        let offset = scratch_buffer[i].map_or(0, |b| plan.offsets[b]);
        u32::try_from(offset)
            .map_err(|_| anyhow!("the arena ({} bytes) does not fit the model format", plan.arena_bytes))
    };

    // The tensor table: one fixed-size record per value, read in place by the runtime.
    let table: Vec<u8> = graph
        .values
        .iter()
        .enumerate()
        .flat_map(|(v, val)| {
            let (h, w, c) = val.hwc();
            // Each fits: `check_format_limits` above.
            let dims = [1, h, w, c].map(|d| u16::try_from(d).unwrap_or(u16::MAX));
            TensorDesc {
                shape: dims,
                dtype: dtypes[v],
                scale: f16::from_f32(acts[v].scale),
                zero_point: acts[v].zero_point as i8,
                offset: plan.offsets[v] as u32,
            }
            .to_record()
        })
        .collect();

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
                let mean = input_mean(&node.op, &channel_means[node.inputs[0]], moments[i].as_ref());
                let bias = c.bias.as_slice().unwrap_or(&[]);
                let rounded = round_layer(&node.op, moments.get(i).and_then(Option::as_ref), bits.weight_bits[i]);
                Some(lower_weights(&rows, bias, bits.weight_bits[i], (qin, qout), &node.name, mean, &rounded)?)
            }
            OpKind::Fc(f) => {
                let k = f.weight.shape()[1];
                let flat = f.weight.as_slice().ok_or_else(|| anyhow!("weights not contiguous"))?;
                let rows: Vec<&[f32]> = flat.chunks(k).collect();
                let mean = input_mean(&node.op, &channel_means[node.inputs[0]], moments[i].as_ref());
                let bias = f.bias.as_slice().unwrap_or(&[]);
                let rounded = round_layer(&node.op, moments.get(i).and_then(Option::as_ref), bits.weight_bits[i]);
                Some(lower_weights(&rows, bias, bits.weight_bits[i], (qin, qout), &node.name, mean, &rounded)?)
            }
            _ => None,
        };
        layers.push(LayerReport {
            name: node.name.clone(),
            // The op the device runs: a convolution that is a fully connected layer says so.
            op: if runs_as_fully_connected(graph, i) { "conv as fc".into() } else { node.op.name().to_string() },
            weight_bits: node.op.has_weights().then_some(bits.weight_bits[i]),
            in_bits: qin.bits,
            out_bits: if dtypes[node.output] == DType::F32 { 32 } else { qout.bits },
            params: node.op.weight_count(),
            weight_bytes: l.as_ref().map_or(0, |l| l.weights.len() + l.bias.len() + l.multiplier.len()),
            macs: node.op.macs(&graph.values[node.output]),
        });
        lowered.push(l);
    }

    // Tables and concatenation parts, owned here for the ops to borrow.
    let mut tables: Vec<Vec<u8>> = vec![Vec::new(); n_nodes];
    for (i, node) in graph.nodes.iter().enumerate() {
        let name = node.name.as_str();
        match &node.op {
            OpKind::Activation(f) => {
                let channels = graph.values[node.output].hwc().2;
                tables[i] = activation_table(f, channels, &acts[node.inputs[0]], &acts[node.output]);
                layers[i].weight_bytes = tables[i].len();
            }
            OpKind::Concat => {
                if node.inputs.len() > MAX_CONCAT_INPUTS {
                    bail!(
                        "node '{name}': a concatenation of {} inputs; the runtime takes at most {MAX_CONCAT_INPUTS}",
                        node.inputs.len()
                    );
                }
                let qout = &acts[node.output];
                for &v in &node.inputs {
                    let (multiplier, shift) = quantize_multiplier(acts[v].scale as f64 / qout.scale as f64)
                        .map_err(|e| anyhow!("node '{name}': {e}"))?;
                    let tensor = narrow::<u16>(v, "tensor index", name)?;
                    tables[i].extend(ConcatParams::encode_part(ConcatPart { tensor, multiplier, shift }));
                }
            }
            _ => {}
        }
    }

    let mut ops: Vec<Op<'_>> = Vec::with_capacity(n_nodes);
    for (i, (node, l)) in graph.nodes.iter().zip(&lowered).enumerate() {
        let name = node.name.as_str();
        let input = narrow::<u16>(node.inputs[0], "tensor index", name)?;
        let output = narrow::<u16>(node.output, "tensor index", name)?;
        let (qin, qout) = (&acts[node.inputs[0]], &acts[node.output]);
        let op = match (&node.op, l) {
            // A fully connected layer, or a convolution that is one.
            (OpKind::Fc(Fc { clamp, .. }) | OpKind::Conv(Conv { clamp, .. }), Some(l))
                if matches!(node.op, OpKind::Fc(_)) || runs_as_fully_connected(graph, i) =>
            {
                Op::FullyConnected(FcParams {
                    input,
                    output,
                    weight_bits: bits.weight_bits[i],
                    weights: &l.weights,
                    channel: channel(l),
                    clamp: clamp_of(qout, *clamp),
                    scratch: scratch_at(i)?,
                })
            }
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
                    scratch: scratch_at(i)?,
                };
                if c.depthwise {
                    Op::DepthwiseConv2d(p)
                } else {
                    Op::Conv2d(p)
                }
            }
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
            (OpKind::LogSoftmax, _) => Op::LogSoftmax(UnaryParams { input, output }),
            (OpKind::Activation(_), _) => Op::Lut(LutParams { input, output, table: &tables[i] }),
            (OpKind::Mul(clamp), _) => {
                let qb = &acts[node.inputs[1]];
                let real = qin.scale as f64 * qb.scale as f64 / qout.scale as f64;
                let (multiplier, shift) = quantize_multiplier(real).map_err(|e| anyhow!("node '{name}': {e}"))?;
                Op::Mul(MulParams {
                    a: input,
                    b: narrow(node.inputs[1], "tensor index", name)?,
                    output,
                    multiplier,
                    shift,
                    clamp: clamp_of(qout, *clamp),
                })
            }
            (OpKind::Concat, _) => Op::Concat(ConcatParams { output, parts: &tables[i] }),
            (OpKind::Slice { begin, step }, _) => Op::Slice(SliceParams {
                input,
                output,
                begin: [
                    narrow(begin[0], "slice start", name)?,
                    narrow(begin[1], "slice start", name)?,
                    narrow(begin[2], "slice start", name)?,
                ],
                step: [
                    narrow(step[0], "slice step", name)?,
                    narrow(step[1], "slice step", name)?,
                    narrow(step[2], "slice step", name)?,
                ],
            }),
            (OpKind::Resize([fh, fw]), _) => Op::Resize(ResizeParams {
                input,
                output,
                factor_h: narrow(*fh, "resize factor", name)?,
                factor_w: narrow(*fw, "resize factor", name)?,
            }),
            (OpKind::DepthToSpace(b), _) => {
                Op::DepthToSpace(DepthToSpaceParams { input, output, block: narrow(*b, "block size", name)? })
            }
            _ => bail!("node '{name}': internal error: weights were not lowered"),
        };
        ops.push(op);
    }

    let extra_outputs: Vec<u8> = graph.extra_outputs.iter().flat_map(|&v| (v as u16).to_le_bytes()).collect();
    if graph.extra_outputs.len() > hawq_runtime::format::MAX_EXTRA_OUTPUTS {
        bail!(
            "the graph has {} outputs; the format holds at most {}",
            graph.extra_outputs.len() + 1,
            hawq_runtime::format::MAX_EXTRA_OUTPUTS + 1
        );
    }
    let meta = ModelMeta {
        tensors: Tensors::new(&table),
        input: graph.input as u16,
        output: graph.output as u16,
        extra_outputs: &extra_outputs,
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
        lowered.iter().flatten().map(|l| l.weights.len() + l.bias.len() + l.multiplier.len()).sum::<usize>()
            + tables.iter().map(Vec::len).sum::<usize>();
    let mut blob = vec![0u8; payload + table.len() + 64 * 1024 + 64 * graph.nodes.len()];
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
    let mut builder = tempfile::Builder::new();
    // tempfile creates 0600 files; asking open(2) for 0666 lets the umask decide, as
    // `File::create` does, so the output gets the permissions any other written file gets.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir).with_context(|| format!("{}: cannot create a file here", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("{}: write failed", path.display()))?;
    tmp.as_file().sync_all().ok();
    tmp.persist(path).map_err(|e| anyhow!("{}: cannot write ({})", path.display(), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Clamp, Conv, Graph, InputLayout, Node, Value, Window};
    use ndarray::{Array1, Array4};

    #[test]
    fn channel_words_share_a_base_shift() {
        assert_eq!(channel_words(&[(2048, -7), (4095, -5), (0, 0)]), (vec![2048, (2 << 12) | 4095, 0], -7));
        // Shifts spanning more than 15: the weakest channel moves up to the base.
        assert_eq!(channel_words(&[(3000, -20), (2048, -2)]), (vec![375, (15 << 12) | 2048], -17));
        assert_eq!(channel_words(&[]), (vec![], 0));
    }

    #[test]
    fn biases_take_the_smallest_exponent_that_fits() {
        let limit = (1i64 << 31) - 1;
        assert_eq!(bias_with_exponent(&[-32767.4, 32767.4, 0.6], limit), (vec![-32767, 32767, 1], 0));
        // 32767.6 rounds to 32768: one more bit.
        assert_eq!(bias_with_exponent(&[32767.6, -3.0, 5.0], limit), (vec![16384, -2, 3], 1));
        let (b, e) = bias_with_exponent(&[1e9, -7e8, 12345.0], limit);
        assert_eq!(e, 15);
        assert_eq!(b, vec![30518, -21362, 0]);
        // Never beyond the accumulator bound, nor past the largest exponent.
        assert_eq!(bias_with_exponent(&[5e9], limit), (vec![32767], 16));
        assert_eq!(bias_with_exponent(&[1e6], 70_000), (vec![17500], 2));
    }

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 40) as f32 / (1u64 << 24) as f32
    }

    /// One padded convolution (no clamp) on a `5 × 4 × 2` input.
    fn padded_conv(depthwise: bool, seed: &mut u64) -> Graph {
        let (in_c, out_c) = (2, if depthwise { 4 } else { 3 });
        let weight_in = if depthwise { 1 } else { in_c };
        let weight = Array4::from_shape_fn((out_c, 3, 3, weight_in), |_| lcg(seed) - 0.5);
        let bias = Array1::from_shape_fn(out_c, |_| lcg(seed) - 0.5);
        let window = Window { kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1] };
        let conv = Conv { weight, bias, window, depthwise, clamp: Clamp::NONE };
        Graph {
            values: vec![
                Value { name: "x".into(), shape: vec![5, 4, in_c] },
                Value { name: "y".into(), shape: vec![5, 4, out_c] },
            ],
            nodes: vec![Node { name: "conv".into(), op: OpKind::Conv(conv), inputs: vec![0], output: 1 }],
            input: 0,
            output: 1,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
        }
    }

    /// Mean and root mean square over samples and positions, per output channel, of the output
    /// change that replacing the layer's weights and biases by `(w, b)` causes.
    fn output_change(graph: &Graph, inputs: &[Vec<f32>], (w, b): (Vec<f32>, Vec<f32>)) -> Vec<(f64, f64)> {
        let mut quantized = graph.clone();
        if let OpKind::Conv(c) = &mut quantized.nodes[0].op {
            c.weight.as_slice_mut().unwrap().copy_from_slice(&w);
            c.bias.as_slice_mut().unwrap().copy_from_slice(&b);
        }
        let out_c = graph.values[1].hwc().2;
        let (mut sum, mut square, mut count) = (vec![0.0f64; out_c], vec![0.0f64; out_c], 0.0);
        for x in inputs {
            let float = &crate::float_exec::run_all(graph, x)[1];
            let quant = &crate::float_exec::run_all(&quantized, x)[1];
            for (i, (f, q)) in float.iter().zip(quant).enumerate() {
                sum[i % out_c] += f64::from(q - f);
                square[i % out_c] += f64::from(q - f).powi(2);
            }
            count += (float.len() / out_c) as f64;
        }
        sum.iter().zip(&square).map(|(s, q)| (s / count, (q / count).sqrt())).collect()
    }

    /// The corrected bias cancels the mean output shift of the rounding over the calibration
    /// samples and every output position, border positions (which read padding zeros) included;
    /// a correction by the input channels' means, blind to the padding, leaves a shift.
    #[test]
    fn bias_correction_cancels_the_mean_output_shift_padding_included() {
        let mut seed = 9;
        for depthwise in [false, true] {
            let graph = padded_conv(depthwise, &mut seed);
            // Post-ReLU-like inputs: positive, so the mean is far from zero.
            let inputs: Vec<Vec<f32>> = (0..40).map(|_| (0..40).map(|_| 0.5 + lcg(&mut seed)).collect()).collect();
            let moments = crate::gptq::input_moments(&graph, &inputs);
            let mut channel_means = vec![0.0f64; 2];
            for x in &inputs {
                x.iter().enumerate().for_each(|(i, &v)| channel_means[i % 2] += f64::from(v) / (20.0 * 40.0));
            }
            let op = &graph.nodes[0].op;
            let exact =
                output_change(&graph, &inputs, fake_quantized(op, moments[0].as_ref(), &channel_means, 2).unwrap());
            let blind = output_change(&graph, &inputs, fake_quantized(op, None, &channel_means, 2).unwrap());
            for (c, (&(mean, rms), &(blind_mean, blind_rms))) in exact.iter().zip(&blind).enumerate() {
                assert!(rms > 1e-2, "2-bit rounding should perturb the output");
                // f32 forward passes: ~1e-7 relative per output.
                assert!(mean.abs() <= 1e-5 * rms, "channel {c}: mean shift {mean} of rms {rms}");
                assert!(blind_mean.abs() > 1e-2 * blind_rms, "channel {c}: {blind_mean} of {blind_rms}");
            }
        }
    }
}
