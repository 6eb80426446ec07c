//! Reads the body's [`ModelMeta`] from its postcard encoding without serde, and one [`Op`] at a
//! time from its fixed-layout record ([`super`]'s documentation has the layouts).
//!
//! serde's derived readers were about 7 KB of Cortex-M code for `Op` and 1 KB for `ModelMeta`.
//! [`take_meta`] accepts exactly the byte strings `postcard::take_from_bytes::<ModelMeta>` accepts
//! and decodes them to the same value and remainder. [`take_op`] is [`super::encode_op`]'s
//! inverse: every record decodes to the op that encodes to it, and nothing else decodes
//! (`runtime/tests/decode.rs` checks both, on valid, truncated, mutated and arbitrary bytes). An op
//! is read on every inference, so its record is fields at fixed offsets after one length test
//! (and one more for its byte strings), not varints.
//!
//! Postcard's encoding of the types the meta uses: `u8` one byte; `u16`, `u32` and enum variant
//! indices LEB128 varints of at most 3 / 5 bytes whose last byte may hold only the bits the type
//! has left; a byte string a `usize` varint length (at most `⌈bits/7⌉` bytes on this target) and
//! the bytes; structs their fields in order.

use crate::kernels::linked;

use super::{
    AddParams, ChannelParams, Clamp, ConcatParams, ConvParams, DepthToSpaceParams, FcParams, InputLayout, LutParams,
    ModelMeta, MulParams, Op, PoolParams, RawInput, ResizeParams, SliceParams, Tensors, UnaryParams,
};

/// The [`ModelMeta`] the body starts with, and the bytes after it (the ops); `None` where postcard
/// fails. By hand for the reason the ops are: serde's derived reader was about 1 KB of
/// Cortex-M code for nine fields read once.
pub fn take_meta(bytes: &[u8]) -> Option<(ModelMeta<'_>, &[u8])> {
    let mut r = Reader { rest: bytes };
    let meta = ModelMeta {
        tensors: Tensors::new(r.bytes()?),
        input: r.u16()?,
        output: r.u16()?,
        extra_outputs: r.bytes()?,
        raw_input: match r.u32()? {
            0 => RawInput::U8,
            1 => RawInput::I8,
            2 => RawInput::F32,
            _ => return None,
        },
        input_layout: match r.u32()? {
            0 => InputLayout::Nhwc,
            1 => InputLayout::Nchw,
            _ => return None,
        },
        scratch_offset: r.u32()?,
        scratch_bytes: r.u32()?,
        op_count: r.u16()?,
    };
    Some((meta, r.rest))
}

/// Op `bytes` starts with, and the bytes after it; `None` where they are no op record.
pub fn take_op(bytes: &[u8]) -> Option<(Op<'_>, &[u8])> {
    take_linked_op::<{ linked::ALL }>(bytes).ok()
}

/// Why [`take_linked_op`] read no op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an op record: an unknown kind, or fewer bytes than the record needs.
    Malformed,
    /// A known kind of op whose kernel the set `K` leaves out: its fields are not read (a
    /// one-model firmware carries no reader for the ops it never runs).
    NotLinked,
}

/// [`take_op`] for a build with the kernel set `K` ([`linked`]): ops outside it are refused
/// after their kind byte, and their reading is not compiled in.
pub fn take_linked_op<const K: u32>(bytes: &[u8]) -> Result<(Op<'_>, &[u8]), Refusal> {
    let Some(&kind) = bytes.first() else { return Err(Refusal::Malformed) };
    let needs = match kind {
        0 => linked::CONV2D,
        1 => linked::DEPTHWISE_CONV2D,
        2 => linked::FULLY_CONNECTED,
        3 => linked::AVG_POOL,
        4 => linked::MAX_POOL,
        5 => linked::ADD,
        6 => 0,
        7 => linked::SOFTMAX,
        8 => linked::DEQUANTIZE,
        9 => linked::LUT,
        10 => linked::MUL,
        11 => linked::CONCAT,
        12 => linked::SLICE,
        13 => linked::RESIZE,
        14 => linked::DEPTH_TO_SPACE,
        15 => linked::LOG_SOFTMAX,
        _ => return Err(Refusal::Malformed),
    };
    if !linked::has(K, needs) {
        return Err(Refusal::NotLinked);
    }
    record(kind, bytes).ok_or(Refusal::Malformed)
}

/// The record of a known `kind` at the start of `b` (module documentation of [`super`]).
#[inline(always)]
fn record(kind: u8, b: &[u8]) -> Option<(Op<'_>, &[u8])> {
    Some(match kind {
        0 | 1 => {
            let (h, rest) = b.split_first_chunk::<32>()?;
            let (w, rest) = weighted(h, rest)?;
            let conv = ConvParams {
                input: w.io[0],
                output: w.io[1],
                kernel_h: h[26],
                kernel_w: h[27],
                stride_h: h[28],
                stride_w: h[29],
                pad_top: h[30],
                pad_left: h[31],
                weight_bits: w.weight_bits,
                weights: w.weights,
                channel: w.channel,
                clamp: w.clamp,
                scratch: w.scratch,
            };
            (if kind == 0 { Op::Conv2d(conv) } else { Op::DepthwiseConv2d(conv) }, rest)
        }
        2 => {
            let (h, rest) = b.split_first_chunk::<26>()?;
            let (w, rest) = weighted(h, rest)?;
            let fc = FcParams {
                input: w.io[0],
                output: w.io[1],
                weight_bits: w.weight_bits,
                weights: w.weights,
                channel: w.channel,
                clamp: w.clamp,
                scratch: w.scratch,
            };
            (Op::FullyConnected(fc), rest)
        }
        3 | 4 => {
            let (h, rest) = b.split_first_chunk::<20>()?;
            let pool = PoolParams {
                input: u16_at(h, 8),
                output: u16_at(h, 10),
                kernel_h: u16_at(h, 12),
                kernel_w: u16_at(h, 14),
                stride_h: h[1],
                stride_w: h[2],
                pad_top: h[3],
                pad_left: h[4],
                multiplier: u32_at(h, 16) as i32,
                shift: h[5] as i8,
                clamp: clamp_at(h, 6),
            };
            (if kind == 3 { Op::AvgPool(pool) } else { Op::MaxPool(pool) }, rest)
        }
        5 => {
            let (h, rest) = b.split_first_chunk::<18>()?;
            let add = AddParams {
                a: u16_at(h, 4),
                b: u16_at(h, 6),
                output: u16_at(h, 8),
                multiplier_a: u32_at(h, 10) as i32,
                multiplier_b: u32_at(h, 14) as i32,
                shift: h[1] as i8,
                clamp: clamp_at(h, 2),
            };
            (Op::Add(add), rest)
        }
        6 | 7 | 8 | 15 => {
            let (h, rest) = b.split_first_chunk::<5>()?;
            let p = UnaryParams { input: u16_at(h, 1), output: u16_at(h, 3) };
            let op = match kind {
                6 => Op::Reshape(p),
                7 => Op::Softmax(p),
                8 => Op::Dequantize(p),
                _ => Op::LogSoftmax(p),
            };
            (op, rest)
        }
        9 => {
            let (h, rest) = b.split_first_chunk::<9>()?;
            let ([table], rest) = strings([u32_at(h, 5)], rest)?;
            (Op::Lut(LutParams { input: u16_at(h, 1), output: u16_at(h, 3), table }), rest)
        }
        10 => {
            let (h, rest) = b.split_first_chunk::<14>()?;
            let mul = MulParams {
                a: u16_at(h, 4),
                b: u16_at(h, 6),
                output: u16_at(h, 8),
                multiplier: u32_at(h, 10) as i32,
                shift: h[1] as i8,
                clamp: clamp_at(h, 2),
            };
            (Op::Mul(mul), rest)
        }
        11 => {
            let (h, rest) = b.split_first_chunk::<7>()?;
            let ([parts], rest) = strings([u32_at(h, 3)], rest)?;
            (Op::Concat(ConcatParams { output: u16_at(h, 1), parts }), rest)
        }
        12 => {
            let (h, rest) = b.split_first_chunk::<17>()?;
            let slice = SliceParams {
                input: u16_at(h, 1),
                output: u16_at(h, 3),
                begin: [u16_at(h, 5), u16_at(h, 7), u16_at(h, 9)],
                step: [u16_at(h, 11), u16_at(h, 13), u16_at(h, 15)],
            };
            (Op::Slice(slice), rest)
        }
        13 => {
            let (h, rest) = b.split_first_chunk::<7>()?;
            let resize = ResizeParams { input: u16_at(h, 3), output: u16_at(h, 5), factor_h: h[1], factor_w: h[2] };
            (Op::Resize(resize), rest)
        }
        14 => {
            let (h, rest) = b.split_first_chunk::<6>()?;
            (Op::DepthToSpace(DepthToSpaceParams { input: u16_at(h, 2), output: u16_at(h, 4), block: h[1] }), rest)
        }
        _ => return None,
    })
}

/// The fields a convolution's and a fully connected op's records share (their first 26 bytes).
struct Weighted<'a> {
    io: [u16; 2],
    weight_bits: u8,
    weights: &'a [u8],
    channel: ChannelParams<'a>,
    clamp: Clamp,
    scratch: u32,
}

/// The shared fields of a record whose fixed part is `h`, and its byte strings from `rest`.
#[inline(always)]
fn weighted<'a, const N: usize>(h: &[u8; N], rest: &'a [u8]) -> Option<(Weighted<'a>, &'a [u8])> {
    const { assert!(N >= 26) };
    let ([weights, bias, multiplier], rest) = strings([u32_at(h, 14), u32_at(h, 18), u32_at(h, 22)], rest)?;
    let w = Weighted {
        io: [u16_at(h, 2), u16_at(h, 4)],
        weight_bits: h[1],
        weights,
        channel: ChannelParams { bias, bias_exponent: h[6], multiplier, shift_base: h[7] as i8 },
        clamp: clamp_at(h, 8),
        scratch: u32_at(h, 10),
    };
    Some((w, rest))
}

/// Byte strings of the given lengths from the start of `rest`, and the bytes after them.
#[inline(always)]
fn strings<const N: usize>(lengths: [u32; N], mut rest: &[u8]) -> Option<([&[u8]; N], &[u8])> {
    let mut out: [&[u8]; N] = [&[]; N];
    for (s, n) in out.iter_mut().zip(lengths) {
        (*s, rest) = rest.split_at_checked(n as usize)?;
    }
    Some((out, rest))
}

#[inline(always)]
fn u16_at<const N: usize>(h: &[u8; N], i: usize) -> u16 {
    u16::from_le_bytes([h[i], h[i + 1]])
}

#[inline(always)]
fn u32_at<const N: usize>(h: &[u8; N], i: usize) -> u32 {
    u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]])
}

#[inline(always)]
fn clamp_at<const N: usize>(h: &[u8; N], i: usize) -> Clamp {
    Clamp { min: h[i] as i8, max: h[i + 1] as i8 }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    /// A varint of a `bits`-bit integer, as postcard reads it: one byte inline (tensor indices,
    /// small offsets: the common case, read on every op of every inference), longer ones in
    /// [`Reader::long_varint`], one copy for every field (inlined into each, the decoder was
    /// three times the size).
    #[inline(always)]
    fn varint(&mut self, bits: u32) -> Option<usize> {
        match self.rest.split_first() {
            Some((&b, rest)) if b < 0x80 => {
                self.rest = rest;
                Some(b as usize)
            }
            _ => self.long_varint(bits),
        }
    }

    /// A varint of more than one byte, or none: at most the bits a `bits`-bit type has (the
    /// last byte may not set bits past them). Shifts by a running count, no division: a model's
    /// larger tensors' lengths come here on every invoke. In a `usize`: every field fits one
    /// (`bits` ≤ 32, or `usize::BITS` for lengths), and on 32-bit cores 64-bit shifts are long.
    #[inline(never)]
    fn long_varint(&mut self, bits: u32) -> Option<usize> {
        const { assert!(usize::BITS >= 32) };
        let (mut out, mut shift) = (0usize, 0u32);
        loop {
            let b = self.u8()?;
            let low = (b & 0x7F) as usize;
            if shift >= bits || (bits - shift < 7 && low >> (bits - shift) != 0) {
                return None;
            }
            out |= low << shift;
            if b & 0x80 == 0 {
                return Some(out);
            }
            shift += 7;
        }
    }

    fn u16(&mut self) -> Option<u16> {
        self.varint(16).map(|v| v as u16)
    }

    fn u32(&mut self) -> Option<u32> {
        self.varint(32).map(|v| v as u32)
    }

    #[inline(never)]
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.varint(usize::BITS)?;
        if len > self.rest.len() {
            return None;
        }
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(bytes)
    }
}
