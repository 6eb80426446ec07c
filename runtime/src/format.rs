//! The model file: a fixed 20-byte header, then the body: the tables (postcard), then the
//! operations one after another as fixed-layout records. Weights and the tensor table are
//! `&'a [u8]` borrowed from the blob, so a model in flash stays in flash; operations are read one
//! at a time as they run and tensor descriptors as they are read, so neither the op list nor the
//! tensor table costs RAM.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "HAWQ"
//!      4     2  format version (u16 LE)
//!      6     2  flags (u16 LE, 0)
//!      8     4  body length in bytes (u32 LE)
//!     12     4  arena bytes the model needs (u32 LE)
//!     16     4  CRC-32/ISO-HDLC of header bytes 0..16 and the body (u32 LE)
//!     20     …  body: postcard(ModelMeta), then meta.op_count op records
//! ```
//!
//! `ModelMeta` starts with the tensor table, a postcard byte string (varint byte length, then the
//! bytes) of fixed-size little-endian records, one per tensor, indexed from 0:
//!
//! ```text
//! offset  size  field
//!      0     8  shape: 4 × u16 LE, NHWC with N = 1 ([1, 1, 1, C] for vectors)
//!      8     4  offset in the arena in bytes (u32 LE)
//!     12     2  scale: IEEE binary16 bits (u16 LE); 1.0 for f32 tensors
//!     14     1  zero point (i8)
//!     15     1  dtype: 0 = i8, 1 = i4 (two per byte), 2 = f32
//! ```
//!
//! The loader rejects a table whose length is not a whole number of [`TENSOR_RECORD_BYTES`]
//! records, a record with another dtype byte, and more than [`MAX_TENSORS`] records (operations
//! name tensors by `u16` index).
//!
//! An op record is its kind byte (the [`Op`] variant's index), its fixed fields at fixed offsets,
//! little-endian (`u16`/`u32`/`i32` take 2/4/4 bytes, tensors are `u16` indices), and then its
//! byte strings back to back, each as long as its `u32` length field says:
//!
//! ```text
//! kind                          fixed bytes  fields at their offsets, then the byte strings
//!  0 conv2d, 1 depthwise_conv2d     32   the weighted fields (below), 26 kernel_h, 27 kernel_w,
//!                                        28 stride_h, 29 stride_w, 30 pad_top, 31 pad_left
//!  2 fully_connected                26   the weighted fields
//!                                        weighted: 1 weight_bits, 2 input, 4 output,
//!                                        6 bias_exponent, 7 shift_base (i8), 8 clamp min (i8),
//!                                        9 clamp max (i8), 10 scratch (u32), 14 weights length,
//!                                        18 bias length, 22 multiplier length; then weights, bias,
//!                                        multiplier
//!  3 avg_pool, 4 max_pool           20   1 stride_h, 2 stride_w, 3 pad_top, 4 pad_left,
//!                                        5 shift (i8), 6 clamp min, 7 clamp max, 8 input,
//!                                        10 output, 12 kernel_h, 14 kernel_w, 16 multiplier (i32)
//!  5 add                            18   1 shift, 2 clamp min, 3 clamp max, 4 a, 6 b, 8 output,
//!                                        10 multiplier_a (i32), 14 multiplier_b (i32)
//!  6 reshape, 7 softmax,             5   1 input, 3 output
//!  8 dequantize, 15 log_softmax
//!  9 lut                             9   1 input, 3 output, 5 table length; then the table
//! 10 mul                            14   1 shift, 2 clamp min, 3 clamp max, 4 a, 6 b, 8 output,
//!                                        10 multiplier (i32)
//! 11 concat                          7   1 output, 3 parts length; then the parts
//! 12 slice                          17   1 input, 3 output, 5 begin (3 × u16), 11 step (3 × u16)
//! 13 resize                          7   1 factor_h, 2 factor_w, 3 input, 5 output
//! 14 depth_to_space                  6   1 block, 2 input, 4 output
//! ```
//!
//! Every byte string of the right length is a record, and a record's bytes are the only encoding
//! of its op ([`decode::take_op`] and [`encode_op`] are inverse); what the fields may hold is the
//! validator's business (`Model::from_bytes`).

use half::f16;
use serde::{Deserialize, Serialize};

pub mod decode;

use crate::error::Error;

pub const MAGIC: [u8; 4] = *b"HAWQ";
/// 7: the same bytes, but a 3×3 depthwise layer's kernel scratch is larger where the Cortex-M4
/// plane kernel takes it (`kernels::scratch::dw3_shape`). The scratch size is not stored: it is
/// a function of the op, and a file planned with the old function could have its scratch
/// overlap a tensor alive across the op (a residual branch) under the new one, which the loader
/// cannot see (it checks the op's own input and output). Such files are refused by version.
///
/// 6: the ops are fixed-layout records (module documentation), read in place field by field;
/// they were postcard, whose varints cost the Cortex-M4 about 280 instructions to decode a fully
/// connected op on every inference (sine-mlp: 20% of its time), against about 70.
///
/// Version 5 also holds [`Op::LogSoftmax`], added after it without a new version: it is a new
/// variant index at the end of [`Op`], so every file written before reads as before, and a runtime
/// that predates it refuses such a file (an unknown variant is [`Error::Malformed`]) instead of
/// misreading it; a new version would have turned every existing model file away for an op
/// they do not use.
///
/// 5: conv, depthwise and fully connected ops carry the arena offset of their scratch
/// (`scratch`), planned by the compiler; the kernels keep no buffer on the stack.
/// 4: the tensor table is a byte string of fixed-size records read in place (version 3 stored
/// postcard-encoded descriptors the loader copied into a 64-entry table in RAM, which capped
/// models at 64 tensors and cost that RAM on every model).
/// 3: the checksum covers the header too; a layer's biases may be `i32` (`quant::BIAS_I32`).
pub const FORMAT_VERSION: u16 = 7;
pub const HEADER_BYTES: usize = 20;
/// The most tensors a model may have: operations and the model's input/output name tensors by
/// `u16` index, so 65,535 records (indices 0..=65,534) and the count itself fit a `u16`. The
/// table is read in place, so the limit costs no RAM.
pub const MAX_TENSORS: usize = u16::MAX as usize;
/// Bytes of one tensor record (layout in the module documentation).
pub const TENSOR_RECORD_BYTES: usize = 16;

/// CRC-32 (ISO-HDLC, zlib's and PNG's) of every nibble value: the checksum four bits at a time
/// from a 64-byte table rather than the usual 1 KiB one, which on a microcontroller is flash taken
/// from the model; it costs about twice the table-driven loop's instructions, once per load.
const CRC32_NIBBLES: [u32; 16] = {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 4 {
            c = if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// The CRC-32 register after `bytes` (no pre- or post-inversion).
fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc ^= b as u32;
        crc = (crc >> 4) ^ CRC32_NIBBLES[(crc & 15) as usize];
        crc = (crc >> 4) ^ CRC32_NIBBLES[(crc & 15) as usize];
    }
    crc
}

/// Element type of a tensor in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DType {
    /// 8-bit quantized, one per byte.
    I8,
    /// 4-bit quantized, two per byte (contract §2).
    I4,
    /// IEEE binary32, little-endian (softmax, log-softmax and dequantize outputs).
    F32,
}

impl DType {
    pub fn bytes_for(self, elements: usize) -> usize {
        match self {
            DType::I8 => elements,
            DType::I4 => elements.div_ceil(2),
            DType::F32 => elements.saturating_mul(4),
        }
    }

    /// The record's dtype byte.
    pub fn to_u8(self) -> u8 {
        match self {
            DType::I8 => 0,
            DType::I4 => 1,
            DType::F32 => 2,
        }
    }

    pub fn from_u8(v: u8) -> Option<DType> {
        match v {
            0 => Some(DType::I8),
            1 => Some(DType::I4),
            2 => Some(DType::F32),
            _ => None,
        }
    }

    /// The packing of a quantized dtype; `None` for f32.
    pub fn bits(self) -> Option<crate::quant::Bits> {
        match self {
            DType::I8 => Some(crate::quant::Bits::B8),
            DType::I4 => Some(crate::quant::Bits::B4),
            DType::F32 => None,
        }
    }
}

/// One tensor of the arena: NHWC shape with batch 1 (`[1, 1, 1, C]` for vectors).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TensorDesc {
    pub shape: [u16; 4],
    pub dtype: DType,
    /// Quantization scale; for f32 tensors unused (1.0).
    pub scale: f16,
    pub zero_point: i8,
    /// Byte offset in the arena.
    pub offset: u32,
}

impl TensorDesc {
    pub fn elements(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }

    pub fn bytes(&self) -> usize {
        self.dtype.bytes_for(self.elements())
    }

    /// The tensor's record in the table (layout in the module documentation).
    pub fn to_record(&self) -> [u8; TENSOR_RECORD_BYTES] {
        let mut r = [0u8; TENSOR_RECORD_BYTES];
        for (i, d) in self.shape.iter().enumerate() {
            r[2 * i..2 * i + 2].copy_from_slice(&d.to_le_bytes());
        }
        r[8..12].copy_from_slice(&self.offset.to_le_bytes());
        r[12..14].copy_from_slice(&self.scale.to_bits().to_le_bytes());
        r[14] = self.zero_point as u8;
        r[15] = self.dtype.to_u8();
        r
    }

    /// Decodes a record; `None` when its dtype byte names no dtype.
    pub fn from_record(r: &[u8; TENSOR_RECORD_BYTES]) -> Option<TensorDesc> {
        let u16_at = |i: usize| u16::from_le_bytes([r[i], r[i + 1]]);
        Some(TensorDesc {
            shape: [u16_at(0), u16_at(2), u16_at(4), u16_at(6)],
            dtype: DType::from_u8(r[15])?,
            scale: f16::from_bits(u16_at(12)),
            zero_point: r[14] as i8,
            offset: u32::from_le_bytes([r[8], r[9], r[10], r[11]]),
        })
    }
}

/// The tensor table: records borrowed from the blob, decoded on access (a `Copy` view, two
/// words). Any bytes can be wrapped; `Model::from_bytes` accepts only whole records that all
/// decode, each checked against the arena, so a loaded model's table yields every descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tensors<'a> {
    #[serde(borrow)]
    bytes: &'a [u8],
}

impl<'a> Tensors<'a> {
    /// A table over `bytes` (records back to back, see [`TensorDesc::to_record`]); a trailing
    /// partial record is not a tensor.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Tensors { bytes }
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The number of whole records.
    pub fn len(&self) -> usize {
        self.bytes.len() / TENSOR_RECORD_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tensor `index`, decoded; `None` past the end or for a record that does not decode.
    pub fn get(&self, index: usize) -> Option<TensorDesc> {
        let start = index.checked_mul(TENSOR_RECORD_BYTES)?;
        let record = self.bytes.get(start..start.checked_add(TENSOR_RECORD_BYTES)?)?;
        TensorDesc::from_record(record.try_into().ok()?)
    }

    /// The descriptors in index order, up to the first record that does not decode (a loaded
    /// model has none).
    pub fn iter(&self) -> impl Iterator<Item = TensorDesc> + 'a {
        self.bytes.chunks_exact(TENSOR_RECORD_BYTES).map_while(|r| r.try_into().ok().and_then(TensorDesc::from_record))
    }
}

/// What the firmware hands to the model's input (contract §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RawInput {
    /// Unsigned bytes (pixels): `q = x − 128`.
    U8,
    /// Signed bytes (e.g. int8 MFCC): `q = x`.
    I8,
    /// Floats, quantized with the input tensor's scale and zero point.
    F32,
}

impl RawInput {
    pub fn element_bytes(self) -> usize {
        match self {
            RawInput::U8 | RawInput::I8 => 1,
            RawInput::F32 => 4,
        }
    }
}

/// Element order in which the firmware hands over the input (the source model's layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputLayout {
    /// The arena's own NHWC order.
    Nhwc,
    /// Channel-major `[C, H, W]` (PyTorch exports): transposed while the input is written.
    Nchw,
}

/// The tables at the start of the body.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta<'a> {
    #[serde(borrow)]
    pub tensors: Tensors<'a>,
    pub input: u16,
    /// The first (or only) output.
    pub output: u16,
    /// The graph's further outputs, little-endian `u16` tensor indices (at most
    /// [`MAX_EXTRA_OUTPUTS`]); empty for a single-output model.
    #[serde(borrow)]
    pub extra_outputs: &'a [u8],
    pub raw_input: RawInput,
    pub input_layout: InputLayout,
    /// Region of the arena kernels may use as scratch (`scratch_bytes` of each kernel).
    pub scratch_offset: u32,
    pub scratch_bytes: u32,
    pub op_count: u16,
}

/// Output clamp in the output's quantized domain: fused ReLU/ReLU6 or the full range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clamp {
    pub min: i8,
    pub max: i8,
}

/// Conv2D and depthwise Conv2D (NHWC). The bottom/right padding follows from the shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvParams<'a> {
    pub input: u16,
    pub output: u16,
    pub kernel_h: u8,
    pub kernel_w: u8,
    pub stride_h: u8,
    pub stride_w: u8,
    pub pad_top: u8,
    pub pad_left: u8,
    pub weight_bits: u8,
    /// Packed rows, one per output channel (contract §2).
    pub weights: &'a [u8],
    pub channel: ChannelParams<'a>,
    pub clamp: Clamp,
    /// Byte offset in the arena of the op's scratch: `kernels::conv2d_scratch_bytes` (or
    /// `depthwise_conv2d_scratch_bytes`) bytes, a function of the geometry and bit widths, that
    /// the kernel may overwrite; disjoint from the op's input and output.
    pub scratch: u32,
}

/// Fully connected: the input's elements (any shape) are the reduction axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcParams<'a> {
    pub input: u16,
    pub output: u16,
    pub weight_bits: u8,
    pub weights: &'a [u8],
    pub channel: ChannelParams<'a>,
    pub clamp: Clamp,
    /// Byte offset in the arena of the op's `kernels::fully_connected_scratch_bytes` bytes of
    /// scratch (as [`ConvParams::scratch`]).
    pub scratch: u32,
}

/// Per output channel bias and requantization (contract §1), little-endian arrays borrowed from
/// the blob: 4 bytes per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelParams<'a> {
    /// With `bias_exponent` in `0..=16`: an i16 `b` per channel, the bias is `b·2^bias_exponent`.
    /// With `bias_exponent == quant::BIAS_I32`: an i32 per channel, the bias itself.
    pub bias: &'a [u8],
    /// `0..=16` or `quant::BIAS_I32`, one for the layer.
    pub bias_exponent: u8,
    /// u16 `w` per channel: mantissa `m = (w & 0xFFF)·2^3` (`M = m·2^15`), shift
    /// `s = shift_base + (w >> 12)`.
    pub multiplier: &'a [u8],
    pub shift_base: i8,
}

/// Average and max pooling. `M · 2^(s−31) = s_in / s_out` (contract §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolParams {
    pub input: u16,
    pub output: u16,
    pub kernel_h: u16,
    pub kernel_w: u16,
    pub stride_h: u8,
    pub stride_w: u8,
    pub pad_top: u8,
    pub pad_left: u8,
    pub multiplier: i32,
    pub shift: i8,
    pub clamp: Clamp,
}

/// Residual add of two tensors of the same shape (contract §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddParams {
    pub a: u16,
    pub b: u16,
    pub output: u16,
    pub multiplier_a: i32,
    pub multiplier_b: i32,
    pub shift: i8,
    pub clamp: Clamp,
}

/// An elementwise function as a table of the input's codes (contract §5): element `i` of channel
/// `c` becomes `table[t · 2^b + (q − lo)]`, `b` and `lo` the input's bit width and smallest code,
/// `t = c` when the table holds one row per channel and `t = 0` when it holds one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LutParams<'a> {
    pub input: u16,
    pub output: u16,
    /// Output codes as i8 bytes.
    pub table: &'a [u8],
}

/// Elementwise product (contract §5); `b` has `a`'s shape or one element per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MulParams {
    pub a: u16,
    pub b: u16,
    pub output: u16,
    pub multiplier: i32,
    pub shift: i8,
    pub clamp: Clamp,
}

/// The most outputs a model has besides its first.
pub const MAX_EXTRA_OUTPUTS: usize = 255;

/// Bytes of one part of a [`ConcatParams`]: tensor (u16), shift (i8), zero byte, multiplier (i32),
/// little-endian.
pub const CONCAT_PART_BYTES: usize = 8;
/// The most inputs one concatenation takes (the compiler chains longer ones).
pub const MAX_CONCAT_INPUTS: usize = 8;

/// Concatenation along the channel axis, each input requantized into the output (contract §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcatParams<'a> {
    pub output: u16,
    /// [`CONCAT_PART_BYTES`] per input, in channel order.
    pub parts: &'a [u8],
}

/// One input of a concatenation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcatPart {
    pub tensor: u16,
    pub multiplier: i32,
    pub shift: i8,
}

impl ConcatParams<'_> {
    pub fn part_count(&self) -> usize {
        self.parts.len() / CONCAT_PART_BYTES
    }

    /// Part `i`; `None` past the end.
    pub fn part(&self, i: usize) -> Option<ConcatPart> {
        let r = self.parts.get(i * CONCAT_PART_BYTES..(i + 1) * CONCAT_PART_BYTES)?;
        Some(ConcatPart {
            tensor: u16::from_le_bytes([r[0], r[1]]),
            shift: r[2] as i8,
            multiplier: i32::from_le_bytes([r[4], r[5], r[6], r[7]]),
        })
    }

    /// The record of one part, as [`ConcatParams::part`] reads it.
    pub fn encode_part(part: ConcatPart) -> [u8; CONCAT_PART_BYTES] {
        let m = part.multiplier.to_le_bytes();
        let t = part.tensor.to_le_bytes();
        [t[0], t[1], part.shift as u8, 0, m[0], m[1], m[2], m[3]]
    }
}

/// `out[y, x, c] = in[begin_h + y·step_h, begin_w + x·step_w, begin_c + c·step_c]`, with the
/// output's shape as the extent; input and output share their quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceParams {
    pub input: u16,
    pub output: u16,
    /// `[h, w, c]`.
    pub begin: [u16; 3],
    pub step: [u16; 3],
}

/// Nearest-neighbour upsampling by integer factors, `out[y, x] = in[y / f_h, x / f_w]`; input
/// and output share their quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeParams {
    pub input: u16,
    pub output: u16,
    pub factor_h: u8,
    pub factor_w: u8,
}

/// `out[y·b + i, x·b + j, c] = in[y, x, (i·b + j)·C + c]` (ONNX DepthToSpace, DCR); input and
/// output share their quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthToSpaceParams {
    pub input: u16,
    pub output: u16,
    pub block: u8,
}

/// An operation with one input and one output and no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnaryParams {
    pub input: u16,
    pub output: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op<'a> {
    #[serde(borrow)]
    Conv2d(ConvParams<'a>),
    #[serde(borrow)]
    DepthwiseConv2d(ConvParams<'a>),
    #[serde(borrow)]
    FullyConnected(FcParams<'a>),
    AvgPool(PoolParams),
    MaxPool(PoolParams),
    Add(AddParams),
    /// Same bytes, new shape; free when the planner aliases input and output.
    Reshape(UnaryParams),
    /// Softmax over the last axis into an f32 tensor.
    Softmax(UnaryParams),
    /// Quantized to f32.
    Dequantize(UnaryParams),
    #[serde(borrow)]
    Lut(LutParams<'a>),
    Mul(MulParams),
    #[serde(borrow)]
    Concat(ConcatParams<'a>),
    Slice(SliceParams),
    Resize(ResizeParams),
    DepthToSpace(DepthToSpaceParams),
    /// Log-softmax over the last axis into an f32 tensor. Last, so that every earlier variant
    /// keeps its index (the record's kind byte): a new op goes at the end, and a runtime that
    /// predates it refuses a file with it as malformed rather than misreading it.
    LogSoftmax(UnaryParams),
}

impl Op<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d(_) => "conv2d",
            Op::DepthwiseConv2d(_) => "depthwise_conv2d",
            Op::FullyConnected(_) => "fully_connected",
            Op::AvgPool(_) => "avg_pool",
            Op::MaxPool(_) => "max_pool",
            Op::Add(_) => "add",
            Op::Reshape(_) => "reshape",
            Op::Softmax(_) => "softmax",
            Op::Dequantize(_) => "dequantize",
            Op::Lut(_) => "lut",
            Op::Mul(_) => "mul",
            Op::Concat(_) => "concat",
            Op::Slice(_) => "slice",
            Op::Resize(_) => "resize",
            Op::DepthToSpace(_) => "depth_to_space",
            Op::LogSoftmax(_) => "log_softmax",
        }
    }

    /// The output tensor index.
    pub fn output(&self) -> u16 {
        match self {
            Op::Conv2d(p) | Op::DepthwiseConv2d(p) => p.output,
            Op::FullyConnected(p) => p.output,
            Op::AvgPool(p) | Op::MaxPool(p) => p.output,
            Op::Add(p) => p.output,
            Op::Reshape(p) | Op::Softmax(p) | Op::Dequantize(p) => p.output,
            Op::Lut(p) => p.output,
            Op::Mul(p) => p.output,
            Op::Concat(p) => p.output,
            Op::Slice(p) => p.output,
            Op::Resize(p) => p.output,
            Op::DepthToSpace(p) => p.output,
            Op::LogSoftmax(p) => p.output,
        }
    }

    /// The input tensor indices: one, two, or a concatenation's (at most [`MAX_CONCAT_INPUTS`]
    /// are listed).
    pub fn inputs(&self) -> heapless::Vec<u16, MAX_CONCAT_INPUTS> {
        let mut v = heapless::Vec::new();
        let Some((a, b)) = self.operands() else {
            if let Op::Concat(p) = self {
                for part in (0..p.part_count()).map_while(|i| p.part(i)) {
                    if v.push(part.tensor).is_err() {
                        break;
                    }
                }
            }
            return v;
        };
        let _ = v.push(a);
        if let Some(b) = b {
            let _ = v.push(b);
        }
        v
    }

    /// The input tensor and the second input of the ops that have one or two (every op but a
    /// concatenation, whose parts [`Op::inputs`] lists).
    pub fn operands(&self) -> Option<(u16, Option<u16>)> {
        Some(match self {
            Op::Conv2d(p) | Op::DepthwiseConv2d(p) => (p.input, None),
            Op::FullyConnected(p) => (p.input, None),
            Op::AvgPool(p) | Op::MaxPool(p) => (p.input, None),
            Op::Add(p) => (p.a, Some(p.b)),
            Op::Mul(p) => (p.a, Some(p.b)),
            Op::Reshape(p) | Op::Softmax(p) | Op::Dequantize(p) => (p.input, None),
            Op::Lut(p) => (p.input, None),
            Op::Slice(p) => (p.input, None),
            Op::Resize(p) => (p.input, None),
            Op::DepthToSpace(p) => (p.input, None),
            Op::LogSoftmax(p) => (p.input, None),
            Op::Concat(_) => return None,
        })
    }
}

/// The parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub body_len: u32,
    pub arena_bytes: u32,
    pub checksum: u32,
}

/// The blob's checksum: the header's first 16 bytes (magic, version, flags, body length, arena
/// bytes) and the body, so that a corrupted size field is caught before anyone allocates by it.
pub fn checksum(header_fields: &[u8], body: &[u8]) -> u32 {
    !crc32_update(crc32_update(!0, header_fields), body)
}

/// Reads and checks the header; returns it with the body slice.
pub fn split_header(blob: &[u8]) -> Result<(Header, &[u8]), Error> {
    let head = blob.get(..HEADER_BYTES).ok_or(Error::Truncated)?;
    if head[0..4] != MAGIC {
        return Err(Error::BadMagic);
    }
    let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let header = Header { version: u16_at(4), body_len: u32_at(8), arena_bytes: u32_at(12), checksum: u32_at(16) };
    if header.version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion { found: header.version });
    }
    let body =
        blob.get(HEADER_BYTES..).and_then(|rest| rest.get(..header.body_len as usize)).ok_or(Error::Truncated)?;
    let computed = checksum(&head[..16], body);
    if computed != header.checksum {
        return Err(Error::ChecksumMismatch { expected: header.checksum, computed });
    }
    Ok((header, body))
}

/// Serializes a model into `out`; returns the number of bytes written. No allocation: the
/// compiler and the tests hand in a buffer large enough (`Error::Truncated` otherwise).
pub fn encode(meta: &ModelMeta<'_>, arena_bytes: u32, ops: &[Op<'_>], out: &mut [u8]) -> Result<usize, Error> {
    if out.len() < HEADER_BYTES {
        return Err(Error::Truncated);
    }
    let (head, body) = out.split_at_mut(HEADER_BYTES);
    let mut used = postcard::to_slice(meta, body).map_err(|_| Error::Truncated)?.len();
    for op in ops {
        used += encode_op(op, &mut body[used..]).ok_or(Error::Truncated)?;
    }
    head[0..4].copy_from_slice(&MAGIC);
    head[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    head[6..8].copy_from_slice(&0u16.to_le_bytes());
    head[8..12].copy_from_slice(&(used as u32).to_le_bytes());
    head[12..16].copy_from_slice(&arena_bytes.to_le_bytes());
    let sum = checksum(&head[..16], &body[..used]);
    head[16..20].copy_from_slice(&sum.to_le_bytes());
    Ok(HEADER_BYTES + used)
}

/// Writes `op`'s record (module documentation) at the start of `out`; returns its length, or
/// `None` when `out` is too short or a byte string longer than `u32::MAX`.
pub fn encode_op(op: &Op<'_>, out: &mut [u8]) -> Option<usize> {
    let mut w = RecordWriter { out, at: 0 };
    let kind = op_kind(op);
    match op {
        Op::Conv2d(p) | Op::DepthwiseConv2d(p) => {
            w.weighted(kind, p.weight_bits, [p.input, p.output], &p.channel, p.clamp, p.scratch, p.weights)?;
            w.bytes(&[p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_top, p.pad_left])?;
            w.strings(&[p.weights, p.channel.bias, p.channel.multiplier])?;
        }
        Op::FullyConnected(p) => {
            w.weighted(kind, p.weight_bits, [p.input, p.output], &p.channel, p.clamp, p.scratch, p.weights)?;
            w.strings(&[p.weights, p.channel.bias, p.channel.multiplier])?;
        }
        Op::AvgPool(p) | Op::MaxPool(p) => {
            w.bytes(&[kind, p.stride_h, p.stride_w, p.pad_top, p.pad_left, p.shift as u8])?;
            w.bytes(&[p.clamp.min as u8, p.clamp.max as u8])?;
            w.u16s(&[p.input, p.output, p.kernel_h, p.kernel_w])?;
            w.bytes(&p.multiplier.to_le_bytes())?;
        }
        Op::Add(p) => {
            w.bytes(&[kind, p.shift as u8, p.clamp.min as u8, p.clamp.max as u8])?;
            w.u16s(&[p.a, p.b, p.output])?;
            w.bytes(&p.multiplier_a.to_le_bytes())?;
            w.bytes(&p.multiplier_b.to_le_bytes())?;
        }
        Op::Mul(p) => {
            w.bytes(&[kind, p.shift as u8, p.clamp.min as u8, p.clamp.max as u8])?;
            w.u16s(&[p.a, p.b, p.output])?;
            w.bytes(&p.multiplier.to_le_bytes())?;
        }
        Op::Reshape(p) | Op::Softmax(p) | Op::Dequantize(p) | Op::LogSoftmax(p) => {
            w.bytes(&[kind])?;
            w.u16s(&[p.input, p.output])?;
        }
        Op::Lut(p) => {
            w.bytes(&[kind])?;
            w.u16s(&[p.input, p.output])?;
            w.lengths(&[p.table])?;
            w.strings(&[p.table])?;
        }
        Op::Concat(p) => {
            w.bytes(&[kind])?;
            w.u16s(&[p.output])?;
            w.lengths(&[p.parts])?;
            w.strings(&[p.parts])?;
        }
        Op::Slice(p) => {
            w.bytes(&[kind])?;
            w.u16s(&[p.input, p.output])?;
            w.u16s(&p.begin)?;
            w.u16s(&p.step)?;
        }
        Op::Resize(p) => {
            w.bytes(&[kind, p.factor_h, p.factor_w])?;
            w.u16s(&[p.input, p.output])?;
        }
        Op::DepthToSpace(p) => {
            w.bytes(&[kind, p.block])?;
            w.u16s(&[p.input, p.output])?;
        }
    }
    Some(w.at)
}

/// The record's kind byte: the variant's index in [`Op`].
pub fn op_kind(op: &Op<'_>) -> u8 {
    match op {
        Op::Conv2d(_) => 0,
        Op::DepthwiseConv2d(_) => 1,
        Op::FullyConnected(_) => 2,
        Op::AvgPool(_) => 3,
        Op::MaxPool(_) => 4,
        Op::Add(_) => 5,
        Op::Reshape(_) => 6,
        Op::Softmax(_) => 7,
        Op::Dequantize(_) => 8,
        Op::Lut(_) => 9,
        Op::Mul(_) => 10,
        Op::Concat(_) => 11,
        Op::Slice(_) => 12,
        Op::Resize(_) => 13,
        Op::DepthToSpace(_) => 14,
        Op::LogSoftmax(_) => 15,
    }
}

/// Appends a record's fields to a byte slice.
struct RecordWriter<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl RecordWriter<'_> {
    fn bytes(&mut self, b: &[u8]) -> Option<()> {
        self.out.get_mut(self.at..self.at.checked_add(b.len())?)?.copy_from_slice(b);
        self.at += b.len();
        Some(())
    }

    fn u16s(&mut self, v: &[u16]) -> Option<()> {
        v.iter().try_for_each(|x| self.bytes(&x.to_le_bytes()))
    }

    fn lengths(&mut self, strings: &[&[u8]]) -> Option<()> {
        strings.iter().try_for_each(|s| self.bytes(&u32::try_from(s.len()).ok()?.to_le_bytes()))
    }

    fn strings(&mut self, strings: &[&[u8]]) -> Option<()> {
        strings.iter().try_for_each(|s| self.bytes(s))
    }

    /// The 26 bytes a convolution's and a fully connected op's records start with.
    #[allow(clippy::too_many_arguments)]
    fn weighted(
        &mut self,
        kind: u8,
        weight_bits: u8,
        io: [u16; 2],
        c: &ChannelParams<'_>,
        clamp: Clamp,
        scratch: u32,
        weights: &[u8],
    ) -> Option<()> {
        self.bytes(&[kind, weight_bits])?;
        self.u16s(&io)?;
        self.bytes(&[c.bias_exponent, c.shift_base as u8, clamp.min as u8, clamp.max as u8])?;
        self.bytes(&scratch.to_le_bytes())?;
        self.lengths(&[weights, c.bias, c.multiplier])
    }
}

/// A model blob with the alignment kernels may rely on (16 bytes), for `include_model!`.
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

/// Embeds a compiled model in the firmware image, 16-byte aligned, as a `&'static [u8]`:
///
/// ```text
/// static MODEL: &[u8] = hawq_runtime::include_model!("../model.hq");
/// ```
#[macro_export]
macro_rules! include_model {
    ($path:expr) => {{
        static ALIGNED: &$crate::format::Aligned<[u8]> = &$crate::format::Aligned(*include_bytes!($path));
        &ALIGNED.0
    }};
}
