//! Which kernels a build links: a bit set, the const parameter of
//! [`Interpreter`](crate::Interpreter).
//!
//! A firmware that runs one model needs only that model's operations and bit widths. The kernel
//! set is a `u32` const generic threaded from the interpreter to the kernels: every op arm, every
//! weight width and every 4-bit activation branch is guarded by a test of the set, which the
//! compiler folds, so what the set leaves out is not in the binary (the TFLite Micro op
//! resolver's job, with no registration code and no table in RAM). The default is [`ALL`].
//!
//! [`required`] computes a model's set (the firmware's build script does it on the host, from
//! the model file; `hawq inspect` prints it); [`Interpreter::new`](crate::Interpreter::new)
//! refuses a model that needs a kernel outside the set ([`Error::KernelNotLinked`]), so a
//! narrower set never changes a result, it only fails early.

use crate::error::Error;
use crate::format::{DType, Op, Tensors};
use crate::model::Model;
use crate::quant::Bits;

use super::{forms, scratch};

pub const CONV2D: u32 = 1 << 0;
pub const DEPTHWISE_CONV2D: u32 = 1 << 1;
pub const FULLY_CONNECTED: u32 = 1 << 2;
pub const AVG_POOL: u32 = 1 << 3;
pub const MAX_POOL: u32 = 1 << 4;
pub const ADD: u32 = 1 << 5;
pub const SOFTMAX: u32 = 1 << 6;
pub const DEQUANTIZE: u32 = 1 << 7;
pub const LUT: u32 = 1 << 8;
pub const MUL: u32 = 1 << 9;
pub const CONCAT: u32 = 1 << 10;
pub const SLICE: u32 = 1 << 11;
pub const RESIZE: u32 = 1 << 12;
pub const DEPTH_TO_SPACE: u32 = 1 << 13;
/// Its own bit rather than softmax's: it calls `ln`, which a softmax model should not carry.
pub const LOG_SOFTMAX: u32 = 1 << 14;
/// 8-, 4- and 2-bit weights of convolutions and fully connected layers.
pub const WEIGHTS_8: u32 = 1 << 16;
pub const WEIGHTS_4: u32 = 1 << 17;
pub const WEIGHTS_2: u32 = 1 << 18;
/// 4-bit activations anywhere (an input or output of any op). 8-bit activations are always
/// linked: the fast paths are written for them.
pub const ACTS_4: u32 = 1 << 20;
/// Rows of more than [`LONG_ROW`] weights in a convolution (`kh·kw·in_c`) or a fully connected
/// layer (its inputs): past what the Cortex-M4 kernels' 32-bit sums hold at low widths, they run
/// on the portable kernel, which a build without them leaves out.
pub const LONG_ROWS: u32 = 1 << 21;

/// Depthwise layers that the Cortex-M4's plane kernel does not take whole (`dsp::planes`: 3×3 at
/// strides (1, 1) or (2, 2) on a map long enough, `in_c = out_c` a multiple of four): there they
/// run on the interleaved and portable depthwise kernels (10 KB of code), which a build without
/// them leaves out. Every other path ignores it.
pub const DEPTHWISE_GENERAL: u32 = 1 << 22;
/// Convolutions that the Cortex-M4 kernel takes through its general im2col
/// (`scratch::dsp_conv_general`: channels that do not fill a weight word and no band of rows;
/// a 3×3 kernel over one channel, whose kernel rows are under a word, a 4-bit input, a layer
/// too wide for the band): about 1 KB of code, which a build without them leaves out. Every
/// other path ignores it.
pub const CONV_GENERAL: u32 = 1 << 23;

/// The Cortex-M4's high-lane rows of 4- and 2-bit weights (each weight read in the top bits of a
/// halfword lane; `forms`): convolutions and fully connected layers whose sums and biases fit
/// that scale. Without it such layers take the offset-binary rows, or the kernel's Rust rows.
/// Every other path ignores it.
pub const HIGH_ROWS: u32 = 1 << 24;
/// The Cortex-M4's offset-binary rows of 4- and 2-bit weights (`forms`): the layers the
/// high-lane rows do not take. Without it such layers take the kernel's Rust rows (the same
/// bytes, more instructions). Every other path ignores it.
///
/// Neither row bit is a need: [`op_needs`] leaves them out and [`Interpreter::new`](crate::Interpreter::new)
/// accepts a model whatever forms its set links; [`required`] names the forms a model's layers
/// take, so that a firmware built from it links what it runs and nothing else (a model with
/// layers of both kinds, both: about 4–8 KB of code).
pub const OFFSET_ROWS: u32 = 1 << 25;

/// The longest row [`LONG_ROWS`] does not cover.
pub const LONG_ROW: usize = 65_536;

/// Every op's kernel (bits 0–14).
pub const OPS: u32 = (1 << 15) - 1;

/// Every kernel: the default set.
pub const ALL: u32 = OPS
    | WEIGHTS_8
    | WEIGHTS_4
    | WEIGHTS_2
    | ACTS_4
    | LONG_ROWS
    | DEPTHWISE_GENERAL
    | CONV_GENERAL
    | HIGH_ROWS
    | OFFSET_ROWS;

/// The names of the set's members, in bit order (for `hawq inspect` and build scripts).
pub const NAMES: [(u32, &str); 24] = [
    (CONV2D, "conv2d"),
    (DEPTHWISE_CONV2D, "depthwise_conv2d"),
    (FULLY_CONNECTED, "fully_connected"),
    (AVG_POOL, "avg_pool"),
    (MAX_POOL, "max_pool"),
    (ADD, "add"),
    (SOFTMAX, "softmax"),
    (DEQUANTIZE, "dequantize"),
    (LUT, "lut"),
    (MUL, "mul"),
    (CONCAT, "concat"),
    (SLICE, "slice"),
    (RESIZE, "resize"),
    (DEPTH_TO_SPACE, "depth_to_space"),
    (LOG_SOFTMAX, "log_softmax"),
    (WEIGHTS_8, "weights_8"),
    (WEIGHTS_4, "weights_4"),
    (WEIGHTS_2, "weights_2"),
    (ACTS_4, "acts_4"),
    (LONG_ROWS, "long_rows"),
    (DEPTHWISE_GENERAL, "depthwise_general"),
    (CONV_GENERAL, "conv_general"),
    (HIGH_ROWS, "high_rows"),
    (OFFSET_ROWS, "offset_rows"),
];

/// Whether `set` holds every kernel of `kernels`.
#[inline(always)]
pub const fn has(set: u32, kernels: u32) -> bool {
    set & kernels == kernels
}

/// The bit of `op`'s kind (0 for a reshape, which is a copy and always linked). Inlined, it is a
/// constant in each arm of a `match` on the op, so a test of the set folds away.
#[inline(always)]
pub fn kind(op: &Op<'_>) -> u32 {
    match op {
        Op::Conv2d(_) => CONV2D,
        Op::DepthwiseConv2d(_) => DEPTHWISE_CONV2D,
        Op::FullyConnected(_) => FULLY_CONNECTED,
        Op::AvgPool(_) => AVG_POOL,
        Op::MaxPool(_) => MAX_POOL,
        Op::Add(_) => ADD,
        Op::Reshape(_) => 0,
        Op::Softmax(_) => SOFTMAX,
        Op::Dequantize(_) => DEQUANTIZE,
        Op::Lut(_) => LUT,
        Op::Mul(_) => MUL,
        Op::Concat(_) => CONCAT,
        Op::Slice(_) => SLICE,
        Op::Resize(_) => RESIZE,
        Op::DepthToSpace(_) => DEPTH_TO_SPACE,
        Op::LogSoftmax(_) => LOG_SOFTMAX,
    }
}

/// The kernels one op needs: its own, its weight width, 4-bit activations if any of its tensors
/// is 4-bit, long rows, the general depthwise kernels. `None` when a tensor index is out of the
/// table (never for a loaded model).
pub fn op_needs(op: &Op<'_>, tensors: Tensors<'_>) -> Option<u32> {
    op_needs_under::<ALL>(op, tensors)
}

/// [`op_needs`] for a firmware that links the set `K`: a depthwise op, which such a firmware
/// never decodes unless `K` holds [`DEPTHWISE_CONV2D`], is examined only then (so that a firmware
/// without depthwise layers carries no code for [`DEPTHWISE_GENERAL`]'s test).
pub fn op_needs_under<const K: u32>(op: &Op<'_>, tensors: Tensors<'_>) -> Option<u32> {
    let weight_bits = match op {
        Op::Conv2d(p) | Op::DepthwiseConv2d(p) => Some(p.weight_bits),
        Op::FullyConnected(p) => Some(p.weight_bits),
        _ => None,
    };
    let weights = match weight_bits {
        Some(8) => WEIGHTS_8,
        Some(4) => WEIGHTS_4,
        Some(2) => WEIGHTS_2,
        _ => 0,
    };
    let mut acts = 0;
    for i in op.inputs().iter().copied().chain([op.output()]) {
        if tensors.get(i as usize)?.dtype == DType::I4 {
            acts = ACTS_4;
        }
    }
    let input = tensors.get(*op.inputs().first()? as usize)?;
    let row = match op {
        Op::Conv2d(p) => p.kernel_h as usize * p.kernel_w as usize * input.shape[3] as usize,
        Op::FullyConnected(_) => input.elements(),
        _ => 0,
    };
    let long = if row > LONG_ROW { LONG_ROWS } else { 0 };
    let general = match op {
        Op::DepthwiseConv2d(p) if has(K, DEPTHWISE_CONV2D) => {
            let g = crate::interpreter::conv_window(p, &input, &tensors.get(op.output() as usize)?);
            let bits = if input.dtype == DType::I4 { Bits::B4 } else { Bits::B8 };
            let planes = scratch::dw3_shape(&g, bits).is_some() && g.in_c.is_multiple_of(4);
            if planes {
                0
            } else {
                DEPTHWISE_GENERAL
            }
        }
        Op::Conv2d(p) if has(K, CONV2D) => {
            let g = crate::interpreter::conv_window(p, &input, &tensors.get(op.output() as usize)?);
            let bits = if input.dtype == DType::I4 { Bits::B4 } else { Bits::B8 };
            let weight_bits = Bits::from_width(p.weight_bits as u32);
            if scratch::dsp_conv_general(&g, weight_bits, bits) {
                CONV_GENERAL
            } else {
                0
            }
        }
        _ => 0,
    };
    Some(kind(op) | weights | acts | long | general)
}

/// The kernels `model` needs, the union of [`op_needs`] over its ops, and the row forms its
/// layers take ([`HIGH_ROWS`], [`OFFSET_ROWS`]): the set a firmware that runs it links.
pub fn required(model: &Model<'_>) -> Result<u32, Error> {
    let mut set = 0;
    for (index, op) in model.ops().enumerate() {
        let op = op?;
        let bad = Error::BadTensorIndex { op: index as u16 };
        set |= op_needs(&op, model.tensors()).ok_or(bad)?;
        set |= row_forms(&op, model.tensors()).ok_or(bad)?;
    }
    Ok(set)
}

/// The Cortex-M4 row forms of `op`'s 4- or 2-bit weights (`forms`: [`HIGH_ROWS`] or
/// [`OFFSET_ROWS`]); 0 for any other op. `None` when a tensor index is out of the table (never
/// for a loaded model).
pub fn row_forms(op: &Op<'_>, tensors: Tensors<'_>) -> Option<u32> {
    let (weights, bits, channel, clamp) = match op {
        Op::Conv2d(p) => (p.weights, p.weight_bits, &p.channel, p.clamp),
        Op::FullyConnected(p) => (p.weights, p.weight_bits, &p.channel, p.clamp),
        _ => return Some(0),
    };
    if bits == 8 {
        return Some(0);
    }
    let input = tensors.get(*op.inputs().first()? as usize)?;
    let output = tensors.get(op.output() as usize)?;
    let weight_bits = Bits::from_width(bits as u32);
    let layer =
        crate::interpreter::weighted_layer(weights, weight_bits, channel, clamp, [&input, &output], Default::default());
    let in_bits = layer.in_fmt.bits;
    Some(match op {
        Op::Conv2d(p) => {
            forms::conv_rows(&crate::interpreter::conv_window(p, &input, &output), weight_bits, in_bits, &layer.rq)
        }
        _ => forms::fc_rows(input.elements(), weight_bits, in_bits, &layer.rq),
    })
}

/// The first op of `model` that needs a kernel outside `set`, with what it misses.
pub fn first_missing(model: &Model<'_>, set: u32) -> Result<Option<(u16, u32)>, Error> {
    for (index, op) in model.ops().enumerate() {
        let needs = op_needs(&op?, model.tensors()).ok_or(Error::BadTensorIndex { op: index as u16 })?;
        if !has(set, needs) {
            return Ok(Some((index as u16, needs & !set)));
        }
    }
    Ok(None)
}

/// The members of `set`, by name.
pub fn names(set: u32) -> impl Iterator<Item = &'static str> {
    NAMES.iter().filter(move |(bit, _)| set & bit != 0).map(|(_, name)| *name)
}
