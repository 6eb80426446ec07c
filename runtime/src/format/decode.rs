//! Reads the body's [`ModelMeta`] and one [`Op`] at a time from their postcard encoding without serde.
//!
//! The body stays postcard (the compiler writes it with `postcard::to_slice`); only the runtime's
//! reading of the op list is by hand. serde's derived deserializer of the 15-variant `Op` was
//! about 7 KB of Cortex-M code, the largest single piece of the loader; this is a fraction of it.
//! [`take_op`] accepts exactly the byte strings `postcard::take_from_bytes::<Op>` accepts and
//! decodes them to the same value and remainder (`runtime/tests/decode.rs` checks both on valid
//! encodings and on truncated and mutated ones).
//!
//! Postcard's encoding of the types the ops use: `u8` and `i8` one byte; `u16`, `u32` and the
//! variant index LEB128 varints of at most 3 / 5 bytes whose last byte may hold only the bits the
//! type has left; `i32` the zigzag of its `u32` varint; a byte string a `usize` varint length
//! (at most `⌈bits/7⌉` bytes on this target) and the bytes; arrays and structs their fields in
//! order.

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

/// Op `bytes` starts with, and the bytes after it; `None` where postcard fails.
pub fn take_op(bytes: &[u8]) -> Option<(Op<'_>, &[u8])> {
    take_linked_op::<{ linked::ALL }>(bytes).ok()
}

/// Why [`take_linked_op`] read no op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an op's encoding (what postcard refuses).
    Malformed,
    /// A well-formed variant index of an op whose kernel the set `K` leaves out: its fields are
    /// not read (a one-model firmware carries no decoder for the ops it never runs).
    NotLinked,
}

/// [`take_op`] for a build with the kernel set `K` ([`linked`]): ops outside it are refused
/// after their variant index, and their decoding is not compiled in.
pub fn take_linked_op<const K: u32>(bytes: &[u8]) -> Result<(Op<'_>, &[u8]), Refusal> {
    let mut r = Reader { rest: bytes };
    let op = r.op::<K>()?;
    Ok((op, r.rest))
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

    fn i8(&mut self) -> Option<i8> {
        self.u8().map(|b| b as i8)
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

    fn i32(&mut self) -> Option<i32> {
        let n = self.u32()?;
        Some(((n >> 1) as i32) ^ -((n & 1) as i32))
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

    fn clamp(&mut self) -> Option<Clamp> {
        Some(Clamp { min: self.i8()?, max: self.i8()? })
    }

    fn channel(&mut self) -> Option<ChannelParams<'a>> {
        Some(ChannelParams {
            bias: self.bytes()?,
            bias_exponent: self.u8()?,
            multiplier: self.bytes()?,
            shift_base: self.i8()?,
        })
    }

    fn conv(&mut self) -> Option<ConvParams<'a>> {
        Some(ConvParams {
            input: self.u16()?,
            output: self.u16()?,
            kernel_h: self.u8()?,
            kernel_w: self.u8()?,
            stride_h: self.u8()?,
            stride_w: self.u8()?,
            pad_top: self.u8()?,
            pad_left: self.u8()?,
            weight_bits: self.u8()?,
            weights: self.bytes()?,
            channel: self.channel()?,
            clamp: self.clamp()?,
            scratch: self.u32()?,
        })
    }

    fn pool(&mut self) -> Option<PoolParams> {
        Some(PoolParams {
            input: self.u16()?,
            output: self.u16()?,
            kernel_h: self.u16()?,
            kernel_w: self.u16()?,
            stride_h: self.u8()?,
            stride_w: self.u8()?,
            pad_top: self.u8()?,
            pad_left: self.u8()?,
            multiplier: self.i32()?,
            shift: self.i8()?,
            clamp: self.clamp()?,
        })
    }

    fn unary(&mut self) -> Option<UnaryParams> {
        Some(UnaryParams { input: self.u16()?, output: self.u16()? })
    }

    fn triple(&mut self) -> Option<[u16; 3]> {
        Some([self.u16()?, self.u16()?, self.u16()?])
    }

    fn op<const K: u32>(&mut self) -> Result<Op<'a>, Refusal> {
        self.op_fields::<K>().ok_or(Refusal::Malformed)?
    }

    /// The op after its variant index; `Some(Err(NotLinked))` for an op outside `K`.
    #[inline(always)]
    fn op_fields<const K: u32>(&mut self) -> Option<Result<Op<'a>, Refusal>> {
        let index = self.u32()?;
        let kind = match index {
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
            _ => return None,
        };
        if !linked::has(K, kind) {
            return Some(Err(Refusal::NotLinked));
        }
        Some(Ok(match index {
            0 => Op::Conv2d(self.conv()?),
            1 => Op::DepthwiseConv2d(self.conv()?),
            2 => Op::FullyConnected(FcParams {
                input: self.u16()?,
                output: self.u16()?,
                weight_bits: self.u8()?,
                weights: self.bytes()?,
                channel: self.channel()?,
                clamp: self.clamp()?,
                scratch: self.u32()?,
            }),
            3 => Op::AvgPool(self.pool()?),
            4 => Op::MaxPool(self.pool()?),
            5 => Op::Add(AddParams {
                a: self.u16()?,
                b: self.u16()?,
                output: self.u16()?,
                multiplier_a: self.i32()?,
                multiplier_b: self.i32()?,
                shift: self.i8()?,
                clamp: self.clamp()?,
            }),
            6 => Op::Reshape(self.unary()?),
            7 => Op::Softmax(self.unary()?),
            8 => Op::Dequantize(self.unary()?),
            9 => Op::Lut(LutParams { input: self.u16()?, output: self.u16()?, table: self.bytes()? }),
            10 => Op::Mul(MulParams {
                a: self.u16()?,
                b: self.u16()?,
                output: self.u16()?,
                multiplier: self.i32()?,
                shift: self.i8()?,
                clamp: self.clamp()?,
            }),
            11 => Op::Concat(ConcatParams { output: self.u16()?, parts: self.bytes()? }),
            12 => Op::Slice(SliceParams {
                input: self.u16()?,
                output: self.u16()?,
                begin: self.triple()?,
                step: self.triple()?,
            }),
            13 => Op::Resize(ResizeParams {
                input: self.u16()?,
                output: self.u16()?,
                factor_h: self.u8()?,
                factor_w: self.u8()?,
            }),
            14 => Op::DepthToSpace(DepthToSpaceParams { input: self.u16()?, output: self.u16()?, block: self.u8()? }),
            15 => Op::LogSoftmax(self.unary()?),
            _ => return None,
        }))
    }
}
