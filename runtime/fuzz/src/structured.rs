//! Builds a model from fuzzer bytes field by field (`arbitrary::Unstructured`) and encodes it
//! with `format::encode`: every field, including ones the byte-level targets rarely reach (an
//! f16 scale with its sign bit set needs a 3-byte varint), gets arbitrary values, while sizes are
//! mostly derived from the shapes so that many models pass the loader and run.

use half::f16;
use hawq_runtime::format::{
    encode, AddParams, ChannelParams, Clamp, ConcatParams, ConcatPart, ConvParams, DType, DepthToSpaceParams, FcParams,
    InputLayout, LutParams, ModelMeta, MulParams, Op, PoolParams, RawInput, ResizeParams, SliceParams, TensorDesc,
    Tensors, UnaryParams,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};

/// Mostly `small`, sometimes anything.
fn mostly(u: &mut Unstructured<'_>, small: std::ops::RangeInclusive<u16>) -> Result<u16> {
    if u.ratio(7, 8)? {
        u.int_in_range(small)
    } else {
        u.arbitrary()
    }
}

fn mostly_u8(u: &mut Unstructured<'_>, small: std::ops::RangeInclusive<u8>) -> Result<u8> {
    if u.ratio(7, 8)? {
        u.int_in_range(small)
    } else {
        u.arbitrary()
    }
}

fn tensor_index(u: &mut Unstructured<'_>, n: usize) -> Result<u16> {
    if u.ratio(15, 16)? {
        Ok(u.int_in_range(0..=n as u16 - 1)?)
    } else {
        u.arbitrary()
    }
}

fn bits_of(d: DType) -> usize {
    match d {
        DType::I8 => 8,
        DType::I4 => 4,
        DType::F32 => 32,
    }
}

/// A byte length: usually `exact`, sometimes off by a little or arbitrary.
fn length(u: &mut Unstructured<'_>, exact: usize) -> Result<usize> {
    Ok(match u.int_in_range(0..=15u8)? {
        0 => exact.saturating_sub(1),
        1 => exact.saturating_add(1),
        2 => u.int_in_range(0..=64usize)?,
        _ => exact,
    }
    .min(1 << 16))
}

/// Per-channel arrays for `n` channels: biases mostly small, multipliers mostly normalised,
/// shifts mostly in range.
struct Channels {
    bias: Vec<u8>,
    bias_exponent: u8,
    multiplier: Vec<u8>,
    shift_base: i8,
}

fn channels(u: &mut Unstructured<'_>, n: usize) -> Result<Channels> {
    let bias_exponent = if u.ratio(3, 4)? {
        0
    } else if u.ratio(1, 4)? {
        hawq_runtime::quant::BIAS_I32
    } else {
        u.int_in_range(0..=17)?
    };
    let bias_width = hawq_runtime::quant::Biases::bytes_per_channel(bias_exponent);
    let shift_base = if u.ratio(7, 8)? { u.int_in_range(-31..=15)? } else { u.arbitrary()? };
    let mut c = Channels { bias: Vec::new(), bias_exponent, multiplier: Vec::new(), shift_base };
    for _ in 0..length(u, n.saturating_mul(bias_width))? / bias_width {
        let b: i32 = if u.ratio(3, 4)? { u.int_in_range(-4096..=4096)? } else { u.arbitrary()? };
        if bias_width == 4 {
            c.bias.extend_from_slice(&b.to_le_bytes());
        } else {
            c.bias.extend_from_slice(&(b as i16).to_le_bytes());
        }
    }
    for _ in 0..length(u, n.saturating_mul(2))? / 2 {
        // A 12-bit mantissa and a 4-bit shift offset.
        let m: u16 = if u.ratio(7, 8)? {
            u.int_in_range(1 << 11..=0xFFF)? | (u.int_in_range(0..=3)? << 12)
        } else {
            u.arbitrary()?
        };
        c.multiplier.extend_from_slice(&m.to_le_bytes());
    }
    Ok(c)
}

fn clamp(u: &mut Unstructured<'_>, out: &TensorDesc) -> Result<Clamp> {
    Ok(match (u.int_in_range(0..=3u8)?, out.dtype) {
        (0, _) => Clamp { min: u.arbitrary()?, max: u.arbitrary()? },
        (1, DType::I4) => Clamp { min: out.zero_point.clamp(-8, 7), max: 7 },
        (1, _) => Clamp { min: out.zero_point, max: 127 },
        (_, DType::I4) => Clamp { min: -8, max: 7 },
        _ => Clamp { min: -128, max: 127 },
    })
}

/// Owned arrays of one op, so that the borrowed `Op` can be built afterwards.
enum Draft {
    Conv { depthwise: bool, p: ConvParams<'static>, weights: Vec<u8>, ch: Channels },
    Fc { p: FcParams<'static>, weights: Vec<u8>, ch: Channels },
    Lut { input: u16, output: u16, table: Vec<u8> },
    Concat { output: u16, parts: Vec<u8> },
    Plain(Op<'static>),
}

const EMPTY: ChannelParams<'static> = ChannelParams { bias: &[], bias_exponent: 0, multiplier: &[], shift_base: 0 };

/// The most tensors a generated model gets: beyond the 64 of format version 3's fixed table, so
/// larger tables are exercised, yet small enough to keep the inputs short.
const TABLE_CAP: usize = 80;

/// The tensor table under construction, with the end of the last tensor placed.
struct Table {
    tensors: Vec<TensorDesc>,
    end: u64,
}

impl Table {
    fn len(&self) -> usize {
        self.tensors.len()
    }

    fn get(&self, i: u16) -> Option<TensorDesc> {
        self.tensors.get(i as usize).copied()
    }

    /// Appends a tensor of `shape` and `dtype` (arbitrary scale and zero point, mostly valid),
    /// usually right after the last one, sometimes at an arbitrary or an existing offset.
    fn push(&mut self, u: &mut Unstructured<'_>, shape: [u16; 4], dtype: DType) -> Result<u16> {
        if self.tensors.len() >= TABLE_CAP {
            return u.int_in_range(0..=self.len() as u16 - 1);
        }
        let scale = if u.ratio(3, 4)? {
            f16::from_f32(u.int_in_range(1..=64u8)? as f32 / 64.0)
        } else {
            f16::from_bits(u.arbitrary()?)
        };
        let zero_point: i8 = match dtype {
            DType::I4 if u.ratio(7, 8)? => u.int_in_range(-8..=7)?,
            _ => u.arbitrary()?,
        };
        let elements: u64 = shape.iter().map(|&d| d as u64).product();
        let bytes = elements.saturating_mul(bits_of(dtype) as u64).div_ceil(8);
        let offset = match u.int_in_range(0..=15u8)? {
            0 => u.arbitrary()?,
            1 if !self.tensors.is_empty() => self.tensors[u.choose_index(self.tensors.len())?].offset,
            _ => (self.end.min(u32::MAX as u64) as u32).saturating_add(u.int_in_range(0..=3u32)?),
        };
        self.end = self.end.max((offset as u64).saturating_add(bytes));
        self.tensors.push(TensorDesc { shape, dtype, scale, zero_point, offset });
        Ok(self.len() as u16 - 1)
    }

    /// A tensor of `shape` quantized like `like` (what slice, resize and depth-to-space need),
    /// sometimes with another dtype, scale or zero point.
    fn push_like(&mut self, u: &mut Unstructured<'_>, shape: [u16; 4], like: Option<TensorDesc>) -> Result<u16> {
        let like = like.unwrap_or(TensorDesc::default_like());
        let index = self.push(u, shape, like.dtype)?;
        if index as usize == self.len() - 1 && u.ratio(7, 8)? {
            let t = &mut self.tensors[index as usize];
            (t.scale, t.zero_point) = (like.scale, like.zero_point);
        }
        Ok(index)
    }

    /// A free tensor of random shape and dtype.
    fn push_random(&mut self, u: &mut Unstructured<'_>) -> Result<u16> {
        let shape = [
            if u.ratio(15, 16)? { 1 } else { mostly(u, 0..=3)? },
            mostly(u, 1..=8)?,
            mostly(u, 1..=8)?,
            mostly(u, 1..=8)?,
        ];
        let dtype = *u.choose(&[DType::I8, DType::I8, DType::I4, DType::F32])?;
        self.push(u, shape, dtype)
    }

    /// An existing tensor (mostly), or anything.
    fn pick(&self, u: &mut Unstructured<'_>) -> Result<u16> {
        if u.ratio(15, 16)? {
            Ok(u.int_in_range(0..=self.len() as u16 - 1)?)
        } else {
            u.arbitrary()
        }
    }

    /// The op's output: usually a new tensor of the shape the op produces (`derived`), else an
    /// existing one.
    fn output(&mut self, u: &mut Unstructured<'_>, derived: [u16; 4], float: bool) -> Result<u16> {
        if u.ratio(3, 4)? {
            let dtype = if float { DType::F32 } else { *u.choose(&[DType::I8, DType::I8, DType::I4])? };
            self.push(u, derived, dtype)
        } else {
            self.pick(u)
        }
    }
}

/// Output size of a window along one axis with a random bottom padding below the kernel.
fn out_size(u: &mut Unstructured<'_>, size: u16, kernel: u16, stride: u8, pad: u8) -> Result<u16> {
    let bottom = u.int_in_range(0..=kernel.saturating_sub(1))? as u32;
    let total = size as u32 + pad as u32 + bottom;
    Ok(if total < kernel as u32 || stride == 0 {
        1
    } else {
        ((total - kernel as u32) / stride as u32 + 1).min(u16::MAX as u32) as u16
    })
}

fn draft(u: &mut Unstructured<'_>, table: &mut Table) -> Result<Draft> {
    let input = table.pick(u)?;
    let ti = table.get(input);
    let shape = ti.map_or([1, 1, 1, 1], |t| t.shape);
    let elements = ti.map_or(1, |t| t.elements());
    let kind = u.int_in_range(0..=15u8)?;
    Ok(match kind {
        0 | 1 => {
            let depthwise = kind == 1;
            let weight_bits = *u.choose(&[2u8, 4, 8, 8, 3])?;
            let (kh, kw) = (mostly_u8(u, 1..=5)?, mostly_u8(u, 1..=5)?);
            let (sh, sw) = (mostly_u8(u, 1..=3)?, mostly_u8(u, 1..=3)?);
            let (pt, pl) = (mostly_u8(u, 0..=kh.saturating_sub(1))?, mostly_u8(u, 0..=kw.saturating_sub(1))?);
            let oc = if depthwise { shape[3].saturating_mul(u.int_in_range(1..=2)?) } else { mostly(u, 1..=8)? };
            let derived = [1, out_size(u, shape[1], kh as u16, sh, pt)?, out_size(u, shape[2], kw as u16, sw, pl)?, oc];
            let output = table.output(u, derived, false)?;
            let to = table.get(output).unwrap_or(TensorDesc::default_like());
            let p = ConvParams {
                input,
                output,
                kernel_h: kh,
                kernel_w: kw,
                stride_h: sh,
                stride_w: sw,
                pad_top: pt,
                pad_left: pl,
                weight_bits,
                weights: &[],
                channel: EMPTY,
                clamp: clamp(u, &to)?,
                scratch: 0,
            };
            let out_c = to.shape[3] as usize;
            let k = kh as usize * kw as usize * if depthwise { 1 } else { shape[3] as usize };
            let row = (k * weight_bits as usize).div_ceil(8);
            let len = length(u, row.saturating_mul(out_c))?.min(u.len());
            let weights = u.bytes(len)?.to_vec();
            Draft::Conv { depthwise, p, weights, ch: channels(u, out_c)? }
        }
        2 => {
            let weight_bits = *u.choose(&[2u8, 4, 8])?;
            let outs = mostly(u, 1..=16)?;
            let output = table.output(u, [1, 1, 1, outs], false)?;
            let to = table.get(output).unwrap_or(TensorDesc::default_like());
            let outs = to.elements();
            let row = elements.saturating_mul(weight_bits as usize).div_ceil(8);
            let clamp = clamp(u, &to)?;
            let p = FcParams { input, output, weight_bits, weights: &[], channel: EMPTY, clamp, scratch: 0 };
            let len = length(u, row.saturating_mul(outs))?.min(u.len());
            let weights = u.bytes(len)?.to_vec();
            Draft::Fc { p, weights, ch: channels(u, outs)? }
        }
        3 | 4 => {
            let (kh, kw) = if u.ratio(1, 4)? { (shape[1], shape[2]) } else { (mostly(u, 1..=6)?, mostly(u, 1..=6)?) };
            let (sh, sw) = (mostly_u8(u, 1..=3)?, mostly_u8(u, 1..=3)?);
            let pt = mostly_u8(u, 0..=kh.saturating_sub(1).min(255) as u8)?;
            let pl = mostly_u8(u, 0..=kw.saturating_sub(1).min(255) as u8)?;
            let derived = [1, out_size(u, shape[1], kh, sh, pt)?, out_size(u, shape[2], kw, sw, pl)?, shape[3]];
            let output = table.output(u, derived, false)?;
            let to = table.get(output).unwrap_or(TensorDesc::default_like());
            let p = PoolParams {
                input,
                output,
                kernel_h: kh,
                kernel_w: kw,
                stride_h: sh,
                stride_w: sw,
                pad_top: pt,
                pad_left: pl,
                multiplier: if u.ratio(7, 8)? { u.int_in_range(1 << 30..=i32::MAX)? } else { u.arbitrary()? },
                shift: if u.ratio(7, 8)? { u.int_in_range(-31..=30)? } else { u.arbitrary()? },
                clamp: clamp(u, &to)?,
            };
            Draft::Plain(if kind == 3 { Op::AvgPool(p) } else { Op::MaxPool(p) })
        }
        5 => {
            let b = if u.ratio(1, 2)? {
                let dtype = *u.choose(&[DType::I8, DType::I4])?;
                table.push(u, shape, dtype)?
            } else {
                table.pick(u)?
            };
            // Sometimes in place: the output is input a or b itself.
            let output = match u.int_in_range(0..=7u8)? {
                0 => input,
                1 => b,
                _ => table.output(u, shape, false)?,
            };
            let to = table.get(output).unwrap_or(TensorDesc::default_like());
            Draft::Plain(Op::Add(AddParams {
                a: input,
                b,
                output,
                multiplier_a: u.arbitrary::<i32>()? & i32::MAX,
                multiplier_b: u.arbitrary::<i32>()? & i32::MAX,
                shift: if u.ratio(7, 8)? { u.int_in_range(-31..=30)? } else { u.arbitrary()? },
                clamp: clamp(u, &to)?,
            }))
        }
        6 => {
            let flat = [1, 1, 1, elements.min(u16::MAX as usize) as u16];
            let output = if u.ratio(1, 4)? {
                input
            } else if u.ratio(3, 4)? {
                let dtype = ti.map_or(DType::I8, |t| t.dtype);
                table.push(u, flat, dtype)?
            } else {
                table.pick(u)?
            };
            Draft::Plain(Op::Reshape(UnaryParams { input, output }))
        }
        7 => Draft::Plain(Op::Softmax(UnaryParams { input, output: table.output(u, shape, true)? })),
        8 => Draft::Plain(Op::Dequantize(UnaryParams { input, output: table.output(u, shape, true)? })),
        15 => Draft::Plain(Op::LogSoftmax(UnaryParams { input, output: table.output(u, shape, true)? })),
        9 => {
            // One row of 2^b codes, or one per channel; entries mostly in the output's range.
            let output = table.output(u, shape, false)?;
            let to = table.get(output).unwrap_or(TensorDesc::default_like());
            let row = 1usize << ti.map_or(8, |t| bits_of(t.dtype).min(8));
            let rows = if u.ratio(1, 2)? { to.shape[3] as usize } else { 1 };
            let (lo, hi) = if to.dtype == DType::I4 { (-8, 7) } else { (-128, 127) };
            let mut entries = Vec::new();
            for _ in 0..length(u, row.saturating_mul(rows))?.min(4096) {
                let v: i8 = if u.ratio(15, 16)? { u.int_in_range(lo..=hi)? } else { u.arbitrary()? };
                entries.push(v as u8);
            }
            Draft::Lut { input, output, table: entries }
        }
        10 => {
            // b of a's shape, one value per channel, or anything; sometimes in place.
            let b = match u.int_in_range(0..=3u8)? {
                0 => table.pick(u)?,
                1 => {
                    let dtype = *u.choose(&[DType::I8, DType::I4])?;
                    table.push(u, shape, dtype)?
                }
                _ => {
                    let dtype = *u.choose(&[DType::I8, DType::I4])?;
                    table.push(u, [1, 1, 1, shape[3]], dtype)?
                }
            };
            let output = match u.int_in_range(0..=7u8)? {
                0 | 1 => input,
                2 => b,
                _ => table.output(u, shape, false)?,
            };
            let to = table.get(output).unwrap_or(TensorDesc::default_like());
            Draft::Plain(Op::Mul(MulParams {
                a: input,
                b,
                output,
                multiplier: if u.ratio(7, 8)? { u.int_in_range(1 << 30..=i32::MAX)? } else { u.arbitrary()? },
                shift: if u.ratio(7, 8)? { u.int_in_range(-12..=2)? } else { u.arbitrary()? },
                clamp: clamp(u, &to)?,
            }))
        }
        11 => {
            // Mostly 2..=8 parts of the input's height and width; sometimes none, too many, or
            // records of the wrong length.
            let count = if u.ratio(7, 8)? { u.int_in_range(2..=8usize)? } else { u.int_in_range(0..=10usize)? };
            let mut parts = Vec::new();
            let mut channels = 0u16;
            for k in 0..count {
                let tensor = if k == 0 {
                    input
                } else if u.ratio(3, 4)? {
                    let c = mostly(u, 1..=4)?;
                    let dtype = *u.choose(&[DType::I8, DType::I4])?;
                    table.push(u, [1, shape[1], shape[2], c], dtype)?
                } else {
                    table.pick(u)?
                };
                channels = channels.saturating_add(table.get(tensor).map_or(1, |t| t.shape[3]));
                let multiplier = if u.ratio(7, 8)? { u.int_in_range(1 << 30..=i32::MAX)? } else { u.arbitrary()? };
                let shift = if u.ratio(7, 8)? { u.int_in_range(-3..=3)? } else { u.arbitrary()? };
                parts.extend_from_slice(&ConcatParams::encode_part(ConcatPart { tensor, multiplier, shift }));
            }
            let len = length(u, parts.len())?;
            parts.resize(len, u.arbitrary()?);
            let output = table.output(u, [1, shape[1], shape[2], channels.max(1)], false)?;
            Draft::Concat { output, parts }
        }
        12 => {
            // Mostly inside the input: begin in range, step 1..=3, the output's extent what fits.
            let mut begin = [0u16; 3];
            let mut step = [1u16; 3];
            let mut out = [1u16; 4];
            for axis in 0..3 {
                let size = shape[axis + 1].max(1);
                begin[axis] = mostly(u, 0..=size - 1)?;
                step[axis] = mostly(u, 1..=3)?;
                let most =
                    if begin[axis] < size && step[axis] > 0 { (size - 1 - begin[axis]) / step[axis] + 1 } else { 1 };
                out[axis + 1] = if u.ratio(7, 8)? { u.int_in_range(1..=most)? } else { mostly(u, 1..=8)? };
            }
            let output = if u.ratio(7, 8)? { table.push_like(u, out, ti)? } else { table.pick(u)? };
            Draft::Plain(Op::Slice(SliceParams { input, output, begin, step }))
        }
        13 => {
            let (fh, fw) = (mostly_u8(u, 1..=4)?, mostly_u8(u, 1..=4)?);
            let mut out = [1, shape[1].saturating_mul(fh as u16), shape[2].saturating_mul(fw as u16), shape[3]];
            if u.ratio(1, 16)? {
                out[u.int_in_range(1..=3)?] = mostly(u, 1..=8)?;
            }
            let output = if u.ratio(7, 8)? { table.push_like(u, out, ti)? } else { table.pick(u)? };
            Draft::Plain(Op::Resize(ResizeParams { input, output, factor_h: fh, factor_w: fw }))
        }
        _ => {
            let block = mostly_u8(u, 1..=3)?;
            let b = block.max(1) as u16;
            let mut out =
                [1, shape[1].saturating_mul(b), shape[2].saturating_mul(b), (shape[3] / (b * b).max(1)).max(1)];
            if u.ratio(1, 16)? {
                out[u.int_in_range(1..=3)?] = mostly(u, 1..=8)?;
            }
            let output = if u.ratio(7, 8)? { table.push_like(u, out, ti)? } else { table.pick(u)? };
            Draft::Plain(Op::DepthToSpace(DepthToSpaceParams { input, output, block }))
        }
    })
}

trait DefaultLike {
    fn default_like() -> Self;
}

impl DefaultLike for TensorDesc {
    /// Stands in for a tensor index that does not exist (the loader will reject the op).
    fn default_like() -> Self {
        TensorDesc { shape: [1, 1, 1, 1], dtype: DType::I8, scale: f16::ONE, zero_point: 0, offset: 0 }
    }
}

/// A model blob built from `data`, or `None` when the bytes run out early.
pub fn build(data: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(data);
    build_from(&mut u).ok()
}

/// Bytes of scratch `op` needs over the table's tensors (the runtime's `kernels::*_scratch_bytes`;
/// 0 when its tensors do not exist or are not quantized).
fn scratch_bytes(op: &Op<'_>, table: &Table) -> usize {
    use hawq_runtime::kernels;
    use hawq_runtime::quant::Bits;
    let bits = |b: u8| Bits::from_u8(b);
    let act = |t: &TensorDesc| t.dtype.bits();
    match op {
        Op::Conv2d(p) | Op::DepthwiseConv2d(p) => {
            let (Some(i), Some(o)) = (table.get(p.input), table.get(p.output)) else { return 0 };
            let (Some(wb), Some(ib)) = (bits(p.weight_bits), act(&i)) else { return 0 };
            let g = kernels::Window {
                in_h: i.shape[1] as usize,
                in_w: i.shape[2] as usize,
                in_c: i.shape[3] as usize,
                out_h: o.shape[1] as usize,
                out_w: o.shape[2] as usize,
                out_c: o.shape[3] as usize,
                kernel_h: p.kernel_h as usize,
                kernel_w: p.kernel_w as usize,
                stride_h: p.stride_h as usize,
                stride_w: p.stride_w as usize,
                pad_top: p.pad_top as usize,
                pad_left: p.pad_left as usize,
            };
            if matches!(op, Op::Conv2d(_)) {
                kernels::conv2d_scratch_bytes(&g, wb, ib)
            } else {
                kernels::depthwise_conv2d_scratch_bytes(&g, wb, ib)
            }
        }
        Op::FullyConnected(p) => {
            let (Some(i), Some(o)) = (table.get(p.input), table.get(p.output)) else { return 0 };
            let (Some(wb), Some(ib)) = (bits(p.weight_bits), act(&i)) else { return 0 };
            kernels::fully_connected_scratch_bytes(i.elements(), o.elements(), wb, ib)
        }
        _ => 0,
    }
}

fn build_from(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut table = Table { tensors: Vec::new(), end: 0 };
    for _ in 0..u.int_in_range(1..=3u8)? {
        table.push_random(u)?;
    }
    let first = 0u16;
    let count = u.int_in_range(1..=3usize)?;
    let mut drafts = Vec::new();
    for _ in 0..count {
        drafts.push(draft(u, &mut table)?);
    }
    let ops: Vec<Op<'_>> = drafts
        .iter()
        .map(|d| match d {
            Draft::Conv { depthwise, p, weights, ch } => {
                let p = ConvParams {
                    weights,
                    channel: ChannelParams {
                        bias: &ch.bias,
                        bias_exponent: ch.bias_exponent,
                        multiplier: &ch.multiplier,
                        shift_base: ch.shift_base,
                    },
                    ..*p
                };
                if *depthwise {
                    Op::DepthwiseConv2d(p)
                } else {
                    Op::Conv2d(p)
                }
            }
            Draft::Fc { p, weights, ch } => Op::FullyConnected(FcParams {
                weights,
                channel: ChannelParams {
                    bias: &ch.bias,
                    bias_exponent: ch.bias_exponent,
                    multiplier: &ch.multiplier,
                    shift_base: ch.shift_base,
                },
                ..*p
            }),
            Draft::Lut { input, output, table } => Op::Lut(LutParams { input: *input, output: *output, table }),
            Draft::Concat { output, parts } => Op::Concat(ConcatParams { output: *output, parts }),
            Draft::Plain(op) => *op,
        })
        .collect();
    // Each conv and FC op's scratch: mostly after the tensors (at any byte offset), sometimes
    // anywhere.
    let mut ops = ops;
    for op in ops.iter_mut() {
        let bytes = scratch_bytes(op, &table) as u64;
        let at = if u.ratio(15, 16)? {
            let at = (table.end.saturating_add(u.int_in_range(0..=3u64)?)).min(u32::MAX as u64) as u32;
            table.end = table.end.max((at as u64).saturating_add(bytes));
            at
        } else {
            u.arbitrary()?
        };
        match op {
            Op::Conv2d(p) | Op::DepthwiseConv2d(p) => p.scratch = at,
            Op::FullyConnected(p) => p.scratch = at,
            _ => {}
        }
    }
    let n = table.len();
    let arena = if u.ratio(15, 16)? { table.end.min(u32::MAX as u64) as u32 } else { u.arbitrary()? };
    let last = ops.last().map_or(0, |op| op.output());
    let mut records: Vec<u8> = table.tensors.iter().flat_map(TensorDesc::to_record).collect();
    if u.ratio(1, 32)? {
        // A table that is not a whole number of records, or a record with an unknown dtype.
        let at = u.choose_index(records.len().max(1))?;
        if u.ratio(1, 2)? {
            records.truncate(at);
        } else if let Some(b) = records.get_mut(at | 15) {
            *b = u.int_in_range(3..=255)?;
        }
    }
    // Mostly none; sometimes a few, valid or not, or an odd byte count.
    let extra_outputs: Vec<u8> = if u.ratio(7, 8)? {
        Vec::new()
    } else {
        let count = u.int_in_range(1..=3usize)?;
        let mut bytes: Vec<u8> = (0..count)
            .map(|_| tensor_index(u, n))
            .collect::<Result<Vec<u16>>>()?
            .iter()
            .flat_map(|t| t.to_le_bytes())
            .collect();
        if u.ratio(1, 8)? {
            bytes.pop();
        }
        bytes
    };
    let meta = ModelMeta {
        tensors: Tensors::new(&records),
        extra_outputs: &extra_outputs,
        input: if u.ratio(7, 8)? { first } else { tensor_index(u, n)? },
        output: if u.ratio(7, 8)? { last } else { tensor_index(u, n)? },
        raw_input: *u.choose(&[RawInput::U8, RawInput::I8, RawInput::F32])?,
        input_layout: if u.ratio(1, 4)? { InputLayout::Nchw } else { InputLayout::Nhwc },
        scratch_offset: if u.ratio(15, 16)? { 0 } else { u.arbitrary()? },
        scratch_bytes: if u.ratio(15, 16)? { 0 } else { u.arbitrary()? },
        op_count: if u.ratio(15, 16)? { ops.len() as u16 } else { u.int_in_range(0..=4)? },
    };
    let size = 4096
        + records.len()
        + drafts
            .iter()
            .map(|d| match d {
                Draft::Conv { weights, ch, .. } | Draft::Fc { weights, ch, .. } => {
                    weights.len() + ch.bias.len() + ch.multiplier.len()
                }
                Draft::Lut { table, .. } => table.len(),
                Draft::Concat { parts, .. } => parts.len(),
                Draft::Plain(_) => 0,
            })
            .sum::<usize>()
            * 2;
    let mut buf = vec![0u8; size];
    let used = encode(&meta, arena, &ops, &mut buf).expect("the buffer is large enough");
    buf.truncate(used);
    Ok(buf)
}
