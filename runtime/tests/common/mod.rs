//! Shared by the property tests: random one-op cases (proptest strategies), an owned form of a
//! model that can be mutated before it is encoded, and a runner over a garbage-filled arena.
#![allow(dead_code)]

use half::f16;
use hawq_runtime::format::{
    encode, AddParams, ChannelParams, Clamp, ConcatParams, ConcatPart, ConvParams, DType, DepthToSpaceParams, FcParams,
    InputLayout, LutParams, ModelMeta, MulParams, Op, PoolParams, RawInput, ResizeParams, SliceParams, TensorDesc,
    Tensors, UnaryParams,
};
use hawq_runtime::quant::{pack, Bits};
use hawq_runtime::{Error, Interpreter, Model};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::naive::{self, Act, Channels, Geom, OutFmt};

// ---------------------------------------------------------------------------------------------
// Numbers and packing

pub fn act_range(bits: u32) -> (i32, i32) {
    (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
}

pub fn dtype(bits: u32) -> DType {
    match bits {
        4 => DType::I4,
        8 => DType::I8,
        _ => panic!("no activation dtype of {bits} bits"),
    }
}

pub fn bits_of(bits: u32) -> Bits {
    Bits::from_u8(bits as u8).expect("bit width")
}

/// Packs values with the runtime's `quant::pack` (unused high bits zero).
pub fn pack_values(values: &[i32], bits: u32) -> Vec<u8> {
    let v: Vec<i8> = values.iter().map(|&x| i8::try_from(x).expect("value fits i8")).collect();
    let b = bits_of(bits);
    let mut out = vec![0u8; b.packed_len(v.len())];
    pack(&v, b, &mut out);
    out
}

/// Weight rows of `row` values, each packed to start on a byte boundary (contract §2).
pub fn pack_rows(values: &[i32], row: usize, bits: u32) -> Vec<u8> {
    values.chunks(row).flat_map(|r| pack_values(r, bits)).collect()
}

pub fn le_i32s(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Per-channel biases as the format stores them (contract §1): `i16` values and the smallest
/// exponent `e` with every bias a multiple of `2^e` and `bias / 2^e` in `i16`. Panics when none
/// exists: the strategies below only make representable biases.
pub fn bias_bytes(biases: &[i32]) -> (Vec<u8>, u8) {
    let e = (0..=16u8).find(|&e| biases.iter().all(|&b| b % (1 << e) == 0 && i16::try_from(b >> e).is_ok()));
    match e {
        Some(e) => (biases.iter().flat_map(|&b| ((b >> e) as i16).to_le_bytes()).collect(), e),
        None => (biases.iter().flat_map(|&b| b.to_le_bytes()).collect(), hawq_runtime::quant::BIAS_I32),
    }
}

/// Per-channel multipliers `M` and shifts `s` as the format stores them (contract §1): a `u16`
/// per channel, `(s − s₀) << 12 | M / 2^18`, and the layer's base shift `s₀` (the smallest `s`).
/// Panics when they are not representable: the strategies below only make representable ones.
pub fn multiplier_bytes(multipliers: &[i32], shifts: &[i8]) -> (Vec<u8>, i8) {
    let base = shifts.iter().copied().min().unwrap_or(0);
    let bytes = multipliers
        .iter()
        .zip(shifts)
        .flat_map(|(&m, &s)| {
            assert!(m % (1 << 18) == 0 && (0..1 << 30).contains(&m), "multiplier {m} is not a 12-bit mantissa·2^18");
            let offset = (s as i32 - base as i32) as u16;
            assert!(offset < 16, "shifts {shifts:?} span more than 15");
            ((offset << 12) | (m >> 18) as u16).to_le_bytes()
        })
        .collect();
    (bytes, base)
}

pub fn le_f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn shift_bytes(values: &[i8]) -> Vec<u8> {
    values.iter().map(|&s| s as u8).collect()
}

/// `2^31 − 1 − K·2^(b−1)·(2^a − 1)`: the largest `|bias|` the loader accepts (contract §3).
pub fn bias_limit(reduction: usize, weight_bits: u32, in_bits: u32) -> i64 {
    (1i64 << 31) - 1 - reduction as i64 * (1i64 << (weight_bits - 1)) * ((1i64 << in_bits) - 1)
}

/// A positive real per-channel multiplier as `M = m₁₂·2^18` with the 12-bit mantissa
/// `m₁₂ ∈ [2^11, 2^12)`, and `s`, with `M · 2^(s−31) ≈ real`, the way the compiler does.
pub fn quantize_channel_multiplier(real: f64) -> (i32, i8) {
    assert!(real > 0.0 && real.is_finite());
    // real = f·2^e with f ∈ [0.5, 1) = (m₁₂ / 2^12)·2^e = m₁₂·2^18·2^(s−31) for s = e + 1.
    let mut e = real.log2().floor() as i32 + 1;
    let mut m = (real / 2f64.powi(e) * 2f64.powi(12)).round() as i32;
    if m == 1 << 12 {
        m = 1 << 11;
        e += 1;
    }
    let s = e + 1;
    assert!((-31..=30).contains(&s), "multiplier {real} needs shift {s}");
    (m << 18, s as i8)
}

/// Normalises a positive real multiplier into `M ∈ [2^30, 2^31)` and `s` with
/// `M · 2^(s−31) ≈ m`, the way the compiler does.
pub fn quantize_multiplier(m: f64) -> (i32, i8) {
    assert!(m > 0.0 && m.is_finite());
    let mut e = m.log2().floor() as i32 + 1;
    let mut f = m / 2f64.powi(e);
    while f >= 1.0 {
        f /= 2.0;
        e += 1;
    }
    while f < 0.5 {
        f *= 2.0;
        e -= 1;
    }
    let mut q = (f * 2f64.powi(31)).round() as i64;
    if q == 1 << 31 {
        q = 1 << 30;
        e += 1;
    }
    assert!((-31..=30).contains(&e), "multiplier {m} needs shift {e}");
    (q as i32, e as i8)
}

/// The integer multiplier of `m` at a given shift (for the smaller of add's two ratios).
pub fn multiplier_at(m: f64, shift: i8) -> i32 {
    let q = (m * 2f64.powi(31 - shift as i32)).round();
    assert!((0.0..2147483648.0).contains(&q));
    q as i32
}

// ---------------------------------------------------------------------------------------------
// Owned model description

#[derive(Debug, Clone, PartialEq)]
pub struct ConvOwned {
    pub input: u16,
    pub output: u16,
    pub kernel_h: u8,
    pub kernel_w: u8,
    pub stride_h: u8,
    pub stride_w: u8,
    pub pad_top: u8,
    pub pad_left: u8,
    pub weight_bits: u8,
    pub weights: Vec<u8>,
    pub bias: Vec<u8>,
    pub bias_exponent: u8,
    pub multiplier: Vec<u8>,
    pub shift_base: i8,
    pub clamp: Clamp,
    /// Arena offset of the op's scratch ([`scratch_bytes`] bytes).
    pub scratch: u32,
}

impl ConvOwned {
    fn params(&self) -> ConvParams<'_> {
        ConvParams {
            input: self.input,
            output: self.output,
            kernel_h: self.kernel_h,
            kernel_w: self.kernel_w,
            stride_h: self.stride_h,
            stride_w: self.stride_w,
            pad_top: self.pad_top,
            pad_left: self.pad_left,
            weight_bits: self.weight_bits,
            weights: &self.weights,
            channel: ChannelParams {
                bias: &self.bias,
                bias_exponent: self.bias_exponent,
                multiplier: &self.multiplier,
                shift_base: self.shift_base,
            },
            clamp: self.clamp,
            scratch: self.scratch,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FcOwned {
    pub input: u16,
    pub output: u16,
    pub weight_bits: u8,
    pub weights: Vec<u8>,
    pub bias: Vec<u8>,
    pub bias_exponent: u8,
    pub multiplier: Vec<u8>,
    pub shift_base: i8,
    pub clamp: Clamp,
    /// Arena offset of the op's scratch ([`scratch_bytes`] bytes).
    pub scratch: u32,
}

/// A table lookup with its table owned.
#[derive(Debug, Clone, PartialEq)]
pub struct LutOwned {
    pub input: u16,
    pub output: u16,
    /// Output codes as i8 bytes.
    pub table: Vec<u8>,
}

/// A concatenation with its part records owned.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcatOwned {
    pub output: u16,
    /// `CONCAT_PART_BYTES` per part (any length, for the loader's checks).
    pub parts: Vec<u8>,
}

impl ConcatOwned {
    pub fn new(output: u16, parts: &[ConcatPart]) -> Self {
        ConcatOwned { output, parts: parts.iter().flat_map(|&p| ConcatParams::encode_part(p)).collect() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum OpSpec {
    Conv2d(ConvOwned),
    DepthwiseConv2d(ConvOwned),
    FullyConnected(FcOwned),
    AvgPool(PoolParams),
    MaxPool(PoolParams),
    Add(AddParams),
    Reshape(UnaryParams),
    Softmax(UnaryParams),
    Dequantize(UnaryParams),
    LogSoftmax(UnaryParams),
    Lut(LutOwned),
    Mul(MulParams),
    Concat(ConcatOwned),
    Slice(SliceParams),
    Resize(ResizeParams),
    DepthToSpace(DepthToSpaceParams),
}

impl OpSpec {
    pub fn op(&self) -> Op<'_> {
        match self {
            OpSpec::Conv2d(p) => Op::Conv2d(p.params()),
            OpSpec::DepthwiseConv2d(p) => Op::DepthwiseConv2d(p.params()),
            OpSpec::FullyConnected(p) => Op::FullyConnected(FcParams {
                input: p.input,
                output: p.output,
                weight_bits: p.weight_bits,
                weights: &p.weights,
                channel: ChannelParams {
                    bias: &p.bias,
                    bias_exponent: p.bias_exponent,
                    multiplier: &p.multiplier,
                    shift_base: p.shift_base,
                },
                clamp: p.clamp,
                scratch: p.scratch,
            }),
            OpSpec::AvgPool(p) => Op::AvgPool(*p),
            OpSpec::MaxPool(p) => Op::MaxPool(*p),
            OpSpec::Add(p) => Op::Add(*p),
            OpSpec::Reshape(p) => Op::Reshape(*p),
            OpSpec::Softmax(p) => Op::Softmax(*p),
            OpSpec::Dequantize(p) => Op::Dequantize(*p),
            OpSpec::LogSoftmax(p) => Op::LogSoftmax(*p),
            OpSpec::Lut(p) => Op::Lut(LutParams { input: p.input, output: p.output, table: &p.table }),
            OpSpec::Mul(p) => Op::Mul(*p),
            OpSpec::Concat(p) => Op::Concat(ConcatParams { output: p.output, parts: &p.parts }),
            OpSpec::Slice(p) => Op::Slice(*p),
            OpSpec::Resize(p) => Op::Resize(*p),
            OpSpec::DepthToSpace(p) => Op::DepthToSpace(*p),
        }
    }

    fn blob_bytes(&self) -> usize {
        match self {
            OpSpec::Conv2d(p) | OpSpec::DepthwiseConv2d(p) => p.weights.len() + p.bias.len() + p.multiplier.len(),
            OpSpec::FullyConnected(p) => p.weights.len() + p.bias.len() + p.multiplier.len(),
            OpSpec::Lut(p) => p.table.len(),
            OpSpec::Concat(p) => p.parts.len(),
            _ => 0,
        }
    }
}

/// A model before encoding; every field can be set to anything, including values the loader must
/// reject.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub tensors: Vec<TensorDesc>,
    pub input: u16,
    pub output: u16,
    /// The further outputs' tensor indices, little-endian `u16`s (any bytes, for the loader's
    /// checks).
    pub extra_outputs: Vec<u8>,
    pub raw_input: RawInput,
    pub input_layout: InputLayout,
    pub scratch_offset: u32,
    pub scratch_bytes: u32,
    /// Written into the tables as is (normally `ops.len()`).
    pub op_count: u16,
    pub arena_bytes: u32,
    pub ops: Vec<OpSpec>,
}

/// Bytes of scratch `op` needs over `tensors` (the runtime's `kernels::*_scratch_bytes`; 0 for
/// ops without scratch or with tensors that do not exist or do not fit a window).
pub fn scratch_bytes(tensors: &[TensorDesc], op: &OpSpec) -> usize {
    use hawq_runtime::kernels;
    let get = |i: u16| tensors.get(i as usize);
    let bits = |b: u8| Bits::from_u8(b).unwrap_or(Bits::B8);
    let act = |t: &TensorDesc| t.dtype.bits().unwrap_or(Bits::B8);
    match op {
        OpSpec::Conv2d(p) | OpSpec::DepthwiseConv2d(p) => {
            let (Some(i), Some(o)) = (get(p.input), get(p.output)) else { return 0 };
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
            if matches!(op, OpSpec::Conv2d(_)) {
                kernels::conv2d_scratch_bytes(&g, bits(p.weight_bits), act(i))
            } else {
                kernels::depthwise_conv2d_scratch_bytes(&g, bits(p.weight_bits), act(i))
            }
        }
        OpSpec::FullyConnected(p) => {
            let (Some(i), Some(o)) = (get(p.input), get(p.output)) else { return 0 };
            kernels::fully_connected_scratch_bytes(i.elements(), o.elements(), bits(p.weight_bits), act(i))
        }
        _ => 0,
    }
}

/// The arena offset of `op`'s scratch, if it has one.
pub fn scratch_offset(op: &OpSpec) -> Option<u32> {
    match op {
        OpSpec::Conv2d(p) | OpSpec::DepthwiseConv2d(p) => Some(p.scratch),
        OpSpec::FullyConnected(p) => Some(p.scratch),
        _ => None,
    }
}

impl Spec {
    /// A model of one op over `tensors`, with the arena ending at the last tensor's end or the
    /// end of the op's scratch (placed by the caller), whichever is later.
    pub fn one_op(tensors: Vec<TensorDesc>, input: u16, output: u16, raw_input: RawInput, op: OpSpec) -> Spec {
        let mut arena = tensors.iter().map(|t| t.offset as u64 + t.bytes() as u64).max().unwrap_or(0);
        if let (Some(offset), bytes @ 1..) = (scratch_offset(&op), scratch_bytes(&tensors, &op)) {
            arena = arena.max(offset as u64 + bytes as u64);
        }
        Spec {
            tensors,
            input,
            output,
            raw_input,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
            scratch_offset: 0,
            scratch_bytes: 0,
            op_count: 1,
            arena_bytes: u32::try_from(arena).expect("arena fits u32"),
            ops: vec![op],
        }
    }

    /// Puts every op's scratch after the tensors (the first `gap` bytes after the last tensor's
    /// end, then one after another) and sets the arena to end there.
    pub fn place_scratch(&mut self, gap: u32) {
        let mut end = self.tensors.iter().map(|t| t.offset as u64 + t.bytes() as u64).max().unwrap_or(0) + gap as u64;
        for i in 0..self.ops.len() {
            let bytes = scratch_bytes(&self.tensors, &self.ops[i]) as u64;
            let at = u32::try_from(end).expect("arena fits u32");
            match &mut self.ops[i] {
                OpSpec::Conv2d(p) | OpSpec::DepthwiseConv2d(p) => p.scratch = at,
                OpSpec::FullyConnected(p) => p.scratch = at,
                _ => continue,
            }
            end += bytes;
        }
        self.arena_bytes = u32::try_from(end).expect("arena fits u32");
    }

    /// The tensor table's bytes: one record per tensor.
    pub fn table(&self) -> Vec<u8> {
        self.tensors.iter().flat_map(TensorDesc::to_record).collect()
    }

    /// Encodes with `hawq_runtime::format::encode`.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_table(&self.table())
    }

    /// Encodes with `table` as the tensor table's bytes instead of [`Spec::table`] (any bytes,
    /// for the loader's checks of the table itself).
    pub fn encode_with_table(&self, table: &[u8]) -> Vec<u8> {
        let meta = ModelMeta {
            tensors: Tensors::new(table),
            input: self.input,
            output: self.output,
            extra_outputs: &self.extra_outputs,
            raw_input: self.raw_input,
            input_layout: self.input_layout,
            scratch_offset: self.scratch_offset,
            scratch_bytes: self.scratch_bytes,
            op_count: self.op_count,
        };
        let ops: Vec<Op<'_>> = self.ops.iter().map(OpSpec::op).collect();
        let cap = 4096 + table.len() + 32 * self.ops.len() + self.ops.iter().map(OpSpec::blob_bytes).sum::<usize>() * 2;
        let mut buf = vec![0u8; cap];
        let n = encode(&meta, self.arena_bytes, &ops, &mut buf).expect("encode");
        buf.truncate(n);
        buf
    }
}

/// A model of `ops` operations over `ops + 1` tensors, each add's output in its own region of the
/// arena (so the whole arena can be compared with the naive model), each reshape's on its input
/// (a view): from an 8-element input, repeatedly a reshape to `[1, 2, 2, 2]`, a reshape back to
/// `[1, 1, 1, 8]`, and a residual add of that with the tensor three back. The adds' outputs alternate between 8 and 4 bits (the reshapes keep
/// their input's), with zero points and clamps that vary along the chain.
pub fn reshape_add_chain(ops: usize) -> Spec {
    let s = f16::from_f32(0.25);
    let mut tensors = vec![tensor([1, 1, 1, 8], DType::I8, s, 3, 0)];
    let mut specs = Vec::with_capacity(ops);
    let mut at = 8u32;
    for k in 1..=ops {
        let prev = tensors[k - 1];
        let (t, op) = match k % 3 {
            1 | 2 => {
                let shape = if k % 3 == 1 { [1, 2, 2, 2] } else { [1, 1, 1, 8] };
                let t = tensor(shape, prev.dtype, prev.scale, prev.zero_point as i32, prev.offset);
                (t, OpSpec::Reshape(UnaryParams { input: k as u16 - 1, output: k as u16 }))
            }
            _ => {
                let bits = if (k / 3) % 2 == 1 { 4 } else { 8 };
                let (lo, hi) = act_range(bits);
                let zero_point = (k as i32 % 5) - 2;
                let t = tensor([1, 1, 1, 8], dtype(bits), s, zero_point, at);
                let op = OpSpec::Add(AddParams {
                    a: k as u16 - 1,
                    b: k as u16 - 3,
                    output: k as u16,
                    multiplier_a: 1 << 30,
                    multiplier_b: 3 << 28,
                    shift: ((k / 3) % 3) as i8,
                    clamp: Clamp { min: (lo + (k as i32 % 2)) as i8, max: hi as i8 },
                });
                (t, op)
            }
        };
        if !matches!(op, OpSpec::Reshape(_)) {
            at += t.bytes() as u32;
        }
        tensors.push(t);
        specs.push(op);
    }
    Spec {
        tensors,
        input: 0,
        output: ops as u16,
        raw_input: RawInput::I8,
        input_layout: InputLayout::Nhwc,
        extra_outputs: Vec::new(),
        scratch_offset: 0,
        scratch_bytes: 0,
        op_count: ops as u16,
        arena_bytes: at,
        ops: specs,
    }
}

pub fn tensor(shape: [usize; 4], dtype: DType, scale: f16, zero_point: i32, offset: u32) -> TensorDesc {
    TensorDesc {
        shape: shape.map(|d| u16::try_from(d).expect("dimension fits u16")),
        dtype,
        scale,
        zero_point: i8::try_from(zero_point).expect("zero point fits i8"),
        offset,
    }
}

/// Deterministic garbage (xorshift64*), so a kernel that skips an output byte is caught.
pub fn garbage(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Loads `blob`, fills a garbage arena, writes `extra` tensors at their offsets and the input
/// through `Interpreter::input_bytes_mut`, invokes, and returns the output bytes.
pub fn run_model(blob: &[u8], input: &[u8], extra: &[(u32, Vec<u8>)], fill: u64) -> Result<Vec<u8>, Error> {
    let model = Model::from_bytes(blob)?;
    let mut arena = garbage(model.arena_bytes(), fill);
    for (offset, bytes) in extra {
        arena[*offset as usize..*offset as usize + bytes.len()].copy_from_slice(bytes);
    }
    let mut it = Interpreter::new(&model, &mut arena)?;
    let dst = it.input_bytes_mut();
    assert_eq!(dst.len(), input.len(), "input tensor size");
    dst.copy_from_slice(input);
    it.invoke()?;
    Ok(it.output_bytes().to_vec())
}

// ---------------------------------------------------------------------------------------------
// Cases

/// What the op must produce.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    Quant { bits: u32, values: Vec<i32>, min: i32, max: i32 },
    F32(Vec<f32>),
}

impl Expected {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Expected::Quant { bits, values, .. } => pack_values(values, *bits),
            Expected::F32(v) => le_f32s(v),
        }
    }
}

/// One random single-op model with its input and the naive model's answer.
pub trait Case: std::fmt::Debug {
    fn spec(&self) -> Spec;
    /// The packed model input.
    fn input_bytes(&self) -> Vec<u8>;
    /// Other tensors to place in the arena before running (offset, bytes).
    fn extra(&self) -> Vec<(u32, Vec<u8>)> {
        Vec::new()
    }
    /// Seed of the arena's initial garbage.
    fn fill(&self) -> u64;
    fn expected(&self) -> Expected;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActQ {
    pub bits: u32,
    pub zero_point: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutQ {
    pub bits: u32,
    pub zero_point: i32,
    pub min: i32,
    pub max: i32,
}

impl OutQ {
    pub fn fmt(&self) -> OutFmt {
        OutFmt { zero_point: self.zero_point, min: self.min, max: self.max }
    }

    pub fn clamp(&self) -> Clamp {
        Clamp { min: self.min as i8, max: self.max as i8 }
    }
}

/// Real scales behind the multipliers of a case, for the float check.
#[derive(Debug, Clone, PartialEq)]
pub struct Real {
    pub s_in: f64,
    /// Per output channel (conv/fc), or `[s_b]` for add.
    pub s_w: Vec<f64>,
    pub s_out: f64,
}

/// Where the op's tensors go: a permutation (Lehmer code) and gaps between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub perm: u8,
    pub gaps: [u8; 4],
}

impl Placement {
    /// Offsets for tensors of the given byte sizes, one after another in a permuted order.
    pub fn lay_out(&self, sizes: &[usize]) -> Vec<u32> {
        let mut rest: Vec<usize> = (0..sizes.len()).collect();
        let mut p = self.perm as usize;
        let mut offsets = vec![0u32; sizes.len()];
        let mut at = self.gaps[0] as usize;
        let mut j = 1;
        while !rest.is_empty() {
            let t = rest.remove(p % rest.len());
            p /= rest.len() + 1;
            offsets[t] = at as u32;
            at += sizes[t] + self.gaps[j % 4] as usize;
            j += 1;
        }
        offsets
    }

    fn raw_input(&self, in_bits: u32) -> RawInput {
        match (in_bits, self.gaps[3] % 3) {
            (8, 0) => RawInput::I8,
            (8, 1) => RawInput::U8,
            _ => RawInput::F32,
        }
    }
}

pub fn placement() -> impl Strategy<Value = Placement> {
    (any::<u8>(), prop::array::uniform4(0u8..12)).prop_map(|(perm, gaps)| Placement { perm, gaps })
}

// ---------------------------------------------------------------------------------------------
// Strategies for numbers

pub fn act_bits() -> impl Strategy<Value = u32> {
    prop_oneof![Just(4u32), Just(8u32)]
}

pub fn weight_bits() -> impl Strategy<Value = u32> {
    prop_oneof![Just(2u32), Just(4u32), Just(8u32)]
}

/// A zero point in the activation's range, often an extreme.
pub fn zero_point(bits: u32) -> impl Strategy<Value = i32> {
    let (lo, hi) = act_range(bits);
    prop_oneof![2 => Just(lo), 2 => Just(hi), 1 => Just(0), 5 => lo..=hi]
}

pub fn act_q() -> impl Strategy<Value = ActQ> {
    act_bits().prop_flat_map(|bits| zero_point(bits).prop_map(move |zero_point| ActQ { bits, zero_point }))
}

/// An activation value, often an extreme.
pub fn act_value(bits: u32) -> impl Strategy<Value = i32> {
    let (lo, hi) = act_range(bits);
    prop_oneof![6 => lo..=hi, 1 => Just(lo), 1 => Just(hi)]
}

/// A weight of the range the compiler emits (contract §1: `±127` and `±7` at 8 and 4 bits, all
/// of `−2..=1` at 2 bits), often an extreme; with `any_pattern`, sometimes `−2^(b−1)` at 8 and 4
/// bits, which the compiler never emits but the contract still defines.
pub fn weight_value(bits: u32, any_pattern: bool) -> BoxedStrategy<i32> {
    let m = (1 << (bits - 1)) - 1;
    if bits == 2 {
        return prop_oneof![8 => -m - 1..=m, 2 => Just(-m - 1), 1 => Just(-m), 2 => Just(m), 1 => Just(0)].boxed();
    }
    let narrow = prop_oneof![8 => -m..=m, 2 => Just(-m), 2 => Just(m), 1 => Just(0)];
    if any_pattern {
        prop_oneof![13 => narrow, 1 => Just(-m - 1)].boxed()
    } else {
        narrow.boxed()
    }
}

/// Output clamps: full range, ReLU, ReLU6-like, narrow.
pub fn out_q() -> impl Strategy<Value = OutQ> {
    act_q().prop_flat_map(|q| out_clamp(q.bits, q.zero_point))
}

pub fn out_clamp(bits: u32, zero_point: i32) -> impl Strategy<Value = OutQ> {
    let (lo, hi) = act_range(bits);
    let z = zero_point;
    prop_oneof![
        3 => Just((lo, hi)),
        2 => Just((z, hi)),
        1 => (z..=hi).prop_map(move |m| (z, m)),
        2 => (lo..=hi, lo..=hi).prop_map(|(a, b)| (a.min(b), a.max(b))),
    ]
    .prop_map(move |(min, max)| OutQ { bits, zero_point, min, max })
}

/// A layer's `M` (pooling, add): mostly normalised `[2^30, 2^31)`, sometimes anything the
/// format allows.
pub fn multiplier() -> impl Strategy<Value = i32> {
    prop_oneof![12 => (1i32 << 30)..=i32::MAX, 1 => 0..(1i32 << 30), 1 => Just(i32::MAX), 1 => Just(1 << 30)]
}

/// A channel's `M = m₁₂·2^18`: the 12-bit mantissa mostly normalised `[2^11, 2^12)`, sometimes
/// anything the format allows.
pub fn channel_multiplier() -> impl Strategy<Value = i32> {
    prop_oneof![12 => (1i32 << 11)..(1 << 12), 1 => 0..(1i32 << 11), 1 => Just((1 << 12) - 1), 1 => Just(1 << 11)]
        .prop_map(|m| m << 18)
}

/// The shifts of a layer's channels: a base shift (mostly −12..=0) and offsets of at most 15 above
/// it (contract §1), mostly small, within the format's range.
pub fn channel_shifts(oc: usize) -> impl Strategy<Value = Vec<i8>> {
    (shift_in(-12, 0), vec(prop_oneof![8 => Just(0i8), 4 => 0i8..=2, 1 => 0i8..=15], oc))
        .prop_map(|(base, offsets)| offsets.iter().map(|&o| base.saturating_add(o).min(30)).collect())
}

/// `s`: mostly in `lo..=hi`, sometimes the extremes of the format.
pub fn shift_in(lo: i8, hi: i8) -> impl Strategy<Value = i8> {
    prop_oneof![12 => lo..=hi, 1 => Just(-31i8), 1 => Just(30i8), 2 => -31i8..=30]
}

/// A bias `b·2^e` within the accepted bound `|bias| ≤ limit` for the layer's exponent `e`,
/// sometimes large (saturating) or extreme.
pub fn bias(limit: i64, e: u8) -> BoxedStrategy<i32> {
    if e == hawq_runtime::quant::BIAS_I32 {
        let l = limit.min(i32::MAX as i64) as i32;
        // Mostly within the range outputs are interior for, past i16 and odd (no exponent fits).
        let m = l.min(1 << 18);
        return prop_oneof![4 => -4096.min(l)..=4096.min(l), 2 => -m..=m, 1 => -l..=l, 1 => Just(l), 1 => Just(-l)]
            .boxed();
    }
    let l = (limit >> e).min(i16::MAX as i64) as i32;
    assert!(l >= 0);
    prop_oneof![6 => -4096.min(l)..=4096.min(l), 2 => -l..=l, 1 => Just(l), 1 => Just(-l), 1 => Just(0)]
        .prop_map(move |b| b << e)
        .boxed()
}

/// A layer's bias exponent: mostly 0, sometimes any the format allows, sometimes `i32` biases.
pub fn bias_exponent() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 1 => 1u8..=16, 1 => Just(16u8), 1 => Just(hawq_runtime::quant::BIAS_I32)]
}

/// A positive f16 scale, exactly representable, in `[2^lo, 2^(hi+1))`.
pub fn f16_scale(lo: i32, hi: i32) -> impl Strategy<Value = f16> {
    (lo..=hi, 0u16..1024).prop_map(|(e, m)| f16::from_f32(2f32.powi(e) * (1.0 + m as f32 / 1024.0)))
}

/// A log-uniform real in `[2^lo, 2^hi)`.
pub fn log_uniform(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    (lo..hi).prop_map(|e| 2f64.powf(e))
}

/// Per-channel bias/multiplier/shift, random (`real = false`) or derived from real scales.
pub fn channels(oc: usize, limit: i64, real: bool) -> BoxedStrategy<(Channels, Option<Real>)> {
    if !real {
        bias_exponent()
            .prop_flat_map(move |e| (vec((bias(limit, e), channel_multiplier()), oc), channel_shifts(oc)))
            .prop_map(|(v, shift)| {
                let channels = Channels {
                    bias: v.iter().map(|c| c.0).collect(),
                    multiplier: v.iter().map(|c| c.1).collect(),
                    shift,
                };
                (channels, None)
            })
            .boxed()
    } else {
        (log_uniform(-8.0, 0.0), log_uniform(-8.0, 0.0), vec((log_uniform(-12.0, 1.0), bias(limit, 0)), oc))
            .prop_map(|(s_in, s_out, per)| {
                let s_w: Vec<f64> = per.iter().map(|&(m, _)| m * s_out / s_in).collect();
                let q: Vec<(i32, i8)> = s_w.iter().map(|&sw| quantize_channel_multiplier(s_in * sw / s_out)).collect();
                let channels = Channels {
                    bias: per.iter().map(|p| p.1).collect(),
                    multiplier: q.iter().map(|p| p.0).collect(),
                    shift: q.iter().map(|p| p.1).collect(),
                };
                (channels, Some(Real { s_in, s_w, s_out }))
            })
            .boxed()
    }
}

/// Input size, kernel, stride and paddings along one axis; the output size follows as
/// `(in + pad_top + pad_bottom − k) / stride + 1` with both paddings in `0..k`.
fn axis(size: usize, k: usize, stride: usize, a: u8, b: u8) -> (usize, usize) {
    let mut top = a as usize % k;
    let bottom = b as usize % k;
    if size + top + bottom < k {
        top = k - 1;
    }
    (top, (size + top + bottom - k) / stride + 1)
}

/// `(h, w, geometry)` with sizes `1..=max_hw`, kernels `1..=max_k` (not necessarily square nor
/// smaller than the input), strides `1..=3`.
pub fn geometry(max_hw: usize, max_k: usize) -> impl Strategy<Value = (usize, usize, Geom)> {
    (1..=max_hw, 1..=max_hw, 1..=max_k, 1..=max_k, 1..=3usize, 1..=3usize, any::<[u8; 4]>()).prop_map(
        |(h, w, kh, kw, sh, sw, p)| {
            let (pad_top, out_h) = axis(h, kh, sh, p[0], p[1]);
            let (pad_left, out_w) = axis(w, kw, sw, p[2], p[3]);
            let g = Geom { kernel_h: kh, kernel_w: kw, stride_h: sh, stride_w: sw, pad_top, pad_left, out_h, out_w };
            (h, w, g)
        },
    )
}

/// A global pool: the window is the whole input.
pub fn global_geometry(max_hw: usize) -> impl Strategy<Value = (usize, usize, Geom)> {
    (1..=max_hw, 1..=max_hw, 1..=3usize).prop_map(|(h, w, s)| {
        let g =
            Geom { kernel_h: h, kernel_w: w, stride_h: s, stride_w: s, pad_top: 0, pad_left: 0, out_h: 1, out_w: 1 };
        (h, w, g)
    })
}

fn act(h: usize, w: usize, c: usize, q: ActQ) -> impl Strategy<Value = Act> {
    vec(act_value(q.bits), h * w * c).prop_map(move |values| Act { h, w, c, values, zero_point: q.zero_point })
}

fn scale_or(real: Option<f64>) -> f16 {
    real.map_or(f16::from_f32(0.0625), f16::from_f64)
}

// ---------------------------------------------------------------------------------------------
// Conv2D and depthwise Conv2D

#[derive(Debug, Clone)]
pub struct ConvCase {
    pub depthwise: bool,
    pub input: Act,
    pub in_bits: u32,
    pub geom: Geom,
    pub out_c: usize,
    pub weight_bits: u32,
    /// `[out_c][kh][kw][in_c]` (conv) or `[out_c][kh][kw]` (depthwise), unpacked.
    pub weights: Vec<i32>,
    pub channels: Channels,
    pub out: OutQ,
    pub real: Option<Real>,
    pub place: Placement,
    pub fill: u64,
}

impl ConvCase {
    pub fn reduction(&self) -> usize {
        let k = self.geom.kernel_h * self.geom.kernel_w;
        if self.depthwise {
            k
        } else {
            k * self.input.c
        }
    }

    pub fn out_shape(&self) -> [usize; 4] {
        [1, self.geom.out_h, self.geom.out_w, self.out_c]
    }

    pub fn owned(&self, input: u16, output: u16) -> ConvOwned {
        let g = &self.geom;
        ConvOwned {
            input,
            output,
            kernel_h: g.kernel_h as u8,
            kernel_w: g.kernel_w as u8,
            stride_h: g.stride_h as u8,
            stride_w: g.stride_w as u8,
            pad_top: g.pad_top as u8,
            pad_left: g.pad_left as u8,
            weight_bits: self.weight_bits as u8,
            weights: pack_rows(&self.weights, self.reduction(), self.weight_bits),
            bias: bias_bytes(&self.channels.bias).0,
            bias_exponent: bias_bytes(&self.channels.bias).1,
            multiplier: multiplier_bytes(&self.channels.multiplier, &self.channels.shift).0,
            shift_base: multiplier_bytes(&self.channels.multiplier, &self.channels.shift).1,
            clamp: self.out.clamp(),
            scratch: 0,
        }
    }
}

impl Case for ConvCase {
    fn spec(&self) -> Spec {
        let x = &self.input;
        let in_dtype = dtype(self.in_bits);
        let out_dtype = dtype(self.out.bits);
        let n_out = self.geom.out_h * self.geom.out_w * self.out_c;
        let offs = self.place.lay_out(&[in_dtype.bytes_for(x.values.len()), out_dtype.bytes_for(n_out)]);
        let real = self.real.as_ref();
        let tensors = vec![
            tensor([1, x.h, x.w, x.c], in_dtype, scale_or(real.map(|r| r.s_in)), x.zero_point, offs[0]),
            tensor(self.out_shape(), out_dtype, scale_or(real.map(|r| r.s_out)), self.out.zero_point, offs[1]),
        ];
        let op =
            if self.depthwise { OpSpec::DepthwiseConv2d(self.owned(0, 1)) } else { OpSpec::Conv2d(self.owned(0, 1)) };
        let mut spec = Spec::one_op(tensors, 0, 1, self.place.raw_input(self.in_bits), op);
        // The scratch after the tensors, at any byte offset.
        spec.place_scratch(self.place.gaps[3] as u32 % 4);
        spec
    }

    fn input_bytes(&self) -> Vec<u8> {
        pack_values(&self.input.values, self.in_bits)
    }

    fn fill(&self) -> u64 {
        self.fill
    }

    fn expected(&self) -> Expected {
        let values = if self.depthwise {
            naive::depthwise_conv2d(&self.input, &self.weights, &self.geom, &self.channels, self.out.fmt())
        } else {
            naive::conv2d(&self.input, &self.weights, &self.geom, &self.channels, self.out.fmt())
        };
        Expected::Quant { bits: self.out.bits, values, min: self.out.min, max: self.out.max }
    }
}

/// Conv2D (`depthwise = false`, 1..=7 channels in and out) or depthwise Conv2D (depth
/// multiplier 1 or 2); `real` derives the multipliers from real scales.
pub fn conv_case(depthwise: bool, real: bool) -> impl Strategy<Value = ConvCase> {
    (geometry(9, 5), 1..=7usize, 1..=7usize, 1..=2usize, act_q(), out_q(), weight_bits(), placement(), any::<u64>())
        .prop_flat_map(move |((h, w, geom), ic, oc, mult, in_q, out, wbits, place, fill)| {
            let out_c = if depthwise { ic * mult } else { oc };
            let k = geom.kernel_h * geom.kernel_w * if depthwise { 1 } else { ic };
            let limit = bias_limit(k, wbits, in_q.bits);
            (vec(weight_value(wbits, !real), out_c * k), act(h, w, ic, in_q), channels(out_c, limit, real)).prop_map(
                move |(weights, input, (channels, real))| ConvCase {
                    depthwise,
                    input,
                    in_bits: in_q.bits,
                    geom,
                    out_c,
                    weight_bits: wbits,
                    weights,
                    channels,
                    out,
                    real,
                    place,
                    fill,
                },
            )
        })
}

// ---------------------------------------------------------------------------------------------
// Fully connected

#[derive(Debug, Clone)]
pub struct FcCase {
    /// Any NHWC shape: FC reduces over all its elements.
    pub input: Act,
    pub in_bits: u32,
    pub out_features: usize,
    pub weight_bits: u32,
    /// `[out][in]`, unpacked.
    pub weights: Vec<i32>,
    pub channels: Channels,
    pub out: OutQ,
    pub real: Option<Real>,
    pub place: Placement,
    pub fill: u64,
}

impl Case for FcCase {
    fn spec(&self) -> Spec {
        let x = &self.input;
        let (in_dtype, out_dtype) = (dtype(self.in_bits), dtype(self.out.bits));
        let offs = self.place.lay_out(&[in_dtype.bytes_for(x.values.len()), out_dtype.bytes_for(self.out_features)]);
        let real = self.real.as_ref();
        let tensors = vec![
            tensor([1, x.h, x.w, x.c], in_dtype, scale_or(real.map(|r| r.s_in)), x.zero_point, offs[0]),
            tensor(
                [1, 1, 1, self.out_features],
                out_dtype,
                scale_or(real.map(|r| r.s_out)),
                self.out.zero_point,
                offs[1],
            ),
        ];
        let fc = FcOwned {
            input: 0,
            output: 1,
            weight_bits: self.weight_bits as u8,
            weights: pack_rows(&self.weights, x.values.len(), self.weight_bits),
            bias: bias_bytes(&self.channels.bias).0,
            bias_exponent: bias_bytes(&self.channels.bias).1,
            multiplier: multiplier_bytes(&self.channels.multiplier, &self.channels.shift).0,
            shift_base: multiplier_bytes(&self.channels.multiplier, &self.channels.shift).1,
            clamp: self.out.clamp(),
            scratch: 0,
        };
        let mut spec = Spec::one_op(tensors, 0, 1, self.place.raw_input(self.in_bits), OpSpec::FullyConnected(fc));
        // The scratch after the tensors, at any byte offset.
        spec.place_scratch(self.place.gaps[3] as u32 % 4);
        spec
    }

    fn input_bytes(&self) -> Vec<u8> {
        pack_values(&self.input.values, self.in_bits)
    }

    fn fill(&self) -> u64 {
        self.fill
    }

    fn expected(&self) -> Expected {
        let values = naive::fully_connected(
            &self.input.values,
            self.input.zero_point,
            &self.weights,
            &self.channels,
            self.out.fmt(),
        );
        Expected::Quant { bits: self.out.bits, values, min: self.out.min, max: self.out.max }
    }
}

pub fn fc_case(real: bool) -> impl Strategy<Value = FcCase> {
    (1..=5usize, 1..=5usize, 1..=9usize, 1..=17usize, act_q(), out_q(), weight_bits(), placement(), any::<u64>())
        .prop_flat_map(move |(h, w, c, out_features, in_q, out, wbits, place, fill)| {
            let k = h * w * c;
            let limit = bias_limit(k, wbits, in_q.bits);
            (vec(weight_value(wbits, !real), out_features * k), act(h, w, c, in_q), channels(out_features, limit, real))
                .prop_map(move |(weights, input, (channels, real))| FcCase {
                    input,
                    in_bits: in_q.bits,
                    out_features,
                    weight_bits: wbits,
                    weights,
                    channels,
                    out,
                    real,
                    place,
                    fill,
                })
        })
}

// ---------------------------------------------------------------------------------------------
// Average and max pool

#[derive(Debug, Clone)]
pub struct PoolCase {
    pub avg: bool,
    pub input: Act,
    pub in_bits: u32,
    pub geom: Geom,
    pub multiplier: i32,
    pub shift: i8,
    pub out: OutQ,
    /// `(s_in, s_out)` behind the multiplier, for the float check.
    pub real: Option<(f64, f64)>,
    pub place: Placement,
    pub fill: u64,
}

impl Case for PoolCase {
    fn spec(&self) -> Spec {
        let (x, g) = (&self.input, &self.geom);
        let (in_dtype, out_dtype) = (dtype(self.in_bits), dtype(self.out.bits));
        let n_out = g.out_h * g.out_w * x.c;
        let offs = self.place.lay_out(&[in_dtype.bytes_for(x.values.len()), out_dtype.bytes_for(n_out)]);
        let tensors = vec![
            tensor([1, x.h, x.w, x.c], in_dtype, scale_or(self.real.map(|r| r.0)), x.zero_point, offs[0]),
            tensor(
                [1, g.out_h, g.out_w, x.c],
                out_dtype,
                scale_or(self.real.map(|r| r.1)),
                self.out.zero_point,
                offs[1],
            ),
        ];
        let p = PoolParams {
            input: 0,
            output: 1,
            kernel_h: g.kernel_h as u16,
            kernel_w: g.kernel_w as u16,
            stride_h: g.stride_h as u8,
            stride_w: g.stride_w as u8,
            pad_top: g.pad_top as u8,
            pad_left: g.pad_left as u8,
            multiplier: self.multiplier,
            shift: self.shift,
            clamp: self.out.clamp(),
        };
        let op = if self.avg { OpSpec::AvgPool(p) } else { OpSpec::MaxPool(p) };
        Spec::one_op(tensors, 0, 1, self.place.raw_input(self.in_bits), op)
    }

    fn input_bytes(&self) -> Vec<u8> {
        pack_values(&self.input.values, self.in_bits)
    }

    fn fill(&self) -> u64 {
        self.fill
    }

    fn expected(&self) -> Expected {
        let values = if self.avg {
            naive::avg_pool(&self.input, &self.geom, self.multiplier, self.shift, self.out.fmt())
        } else {
            naive::max_pool(&self.input, &self.geom, self.multiplier, self.shift, self.out.fmt())
        };
        Expected::Quant { bits: self.out.bits, values, min: self.out.min, max: self.out.max }
    }
}

/// Pool requantization: random `(M, s)`, the identity `(2^30, 1)`, or (with `real`) derived from
/// real scales.
/// `(M, s, real scales)` of a pool.
type PoolQuant = (i32, i8, Option<(f64, f64)>);

fn pool_quant(real: bool) -> BoxedStrategy<PoolQuant> {
    if real {
        (log_uniform(-8.0, 0.0), log_uniform(-3.0, 3.0))
            .prop_map(|(s_in, ratio)| {
                let s_out = s_in / ratio;
                let (m, s) = quantize_multiplier(s_in / s_out);
                (m, s, Some((s_in, s_out)))
            })
            .boxed()
    } else {
        // Window sums and single values are small next to a conv accumulator: shifts up to 4 let
        // them saturate too.
        prop_oneof![4 => (multiplier(), shift_in(-6, 4)).prop_map(|(m, s)| (m, s, None)), 1 => Just((1 << 30, 1, None))]
            .boxed()
    }
}

pub fn pool_case(avg: bool, global: bool, real: bool) -> impl Strategy<Value = PoolCase> {
    let geom = if global { global_geometry(12).boxed() } else { geometry(9, 6).boxed() };
    (geom, 1..=7usize, act_q(), out_q(), pool_quant(real), placement(), any::<u64>()).prop_flat_map(
        move |((h, w, geom), c, in_q, out, (multiplier, shift, real), place, fill)| {
            act(h, w, c, in_q).prop_map(move |input| PoolCase {
                avg,
                input,
                in_bits: in_q.bits,
                geom,
                multiplier,
                shift,
                out,
                real,
                place,
                fill,
            })
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Residual add

/// Which input, if any, the output aliases (same offset and dtype).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alias {
    None,
    A,
    B,
}

#[derive(Debug, Clone)]
pub struct AddCase {
    pub shape: [usize; 4],
    pub a: Vec<i32>,
    pub a_q: ActQ,
    pub b: Vec<i32>,
    pub b_q: ActQ,
    pub multiplier_a: i32,
    pub multiplier_b: i32,
    pub shift: i8,
    pub out: OutQ,
    pub alias: Alias,
    /// `(s_a, s_b, s_out)`, for the float check.
    pub real: Option<(f64, f64, f64)>,
    pub place: Placement,
    pub fill: u64,
}

impl AddCase {
    /// Offsets of a, b and the output.
    fn offsets(&self) -> [u32; 3] {
        let n = self.a.len();
        let (da, db) = (dtype(self.a_q.bits), dtype(self.b_q.bits));
        match self.alias {
            Alias::None => {
                let o = self.place.lay_out(&[da.bytes_for(n), db.bytes_for(n), dtype(self.out.bits).bytes_for(n)]);
                [o[0], o[1], o[2]]
            }
            Alias::A => {
                let o = self.place.lay_out(&[da.bytes_for(n), db.bytes_for(n)]);
                [o[0], o[1], o[0]]
            }
            Alias::B => {
                let o = self.place.lay_out(&[da.bytes_for(n), db.bytes_for(n)]);
                [o[0], o[1], o[1]]
            }
        }
    }
}

impl Case for AddCase {
    fn spec(&self) -> Spec {
        let o = self.offsets();
        let r = self.real;
        let tensors = vec![
            tensor(self.shape, dtype(self.a_q.bits), scale_or(r.map(|r| r.0)), self.a_q.zero_point, o[0]),
            tensor(self.shape, dtype(self.b_q.bits), scale_or(r.map(|r| r.1)), self.b_q.zero_point, o[1]),
            tensor(self.shape, dtype(self.out.bits), scale_or(r.map(|r| r.2)), self.out.zero_point, o[2]),
        ];
        let op = OpSpec::Add(AddParams {
            a: 0,
            b: 1,
            output: 2,
            multiplier_a: self.multiplier_a,
            multiplier_b: self.multiplier_b,
            shift: self.shift,
            clamp: self.out.clamp(),
        });
        Spec::one_op(tensors, 0, 2, self.place.raw_input(self.a_q.bits), op)
    }

    fn input_bytes(&self) -> Vec<u8> {
        pack_values(&self.a, self.a_q.bits)
    }

    fn extra(&self) -> Vec<(u32, Vec<u8>)> {
        vec![(self.offsets()[1], pack_values(&self.b, self.b_q.bits))]
    }

    fn fill(&self) -> u64 {
        self.fill
    }

    fn expected(&self) -> Expected {
        let values = naive::add(
            &self.a,
            self.a_q.zero_point,
            self.multiplier_a,
            &self.b,
            self.b_q.zero_point,
            self.multiplier_b,
            self.shift,
            self.out.fmt(),
        );
        Expected::Quant { bits: self.out.bits, values, min: self.out.min, max: self.out.max }
    }
}

/// Add requantization: random, or derived from real scales with one shared shift chosen for the
/// larger ratio (contract §5).
/// `(M_a, M_b, s, real scales)` of an add.
type AddQuant = (i32, i32, i8, Option<(f64, f64, f64)>);

fn add_quant(real: bool) -> BoxedStrategy<AddQuant> {
    if real {
        (log_uniform(-8.0, 0.0), log_uniform(-8.0, 0.0), log_uniform(-8.0, 0.0))
            .prop_map(|(sa, sb, so)| {
                let (ra, rb) = (sa / so, sb / so);
                let (m_big, s) = quantize_multiplier(ra.max(rb));
                let m_small = multiplier_at(ra.min(rb), s);
                let (ma, mb) = if ra >= rb { (m_big, m_small) } else { (m_small, m_big) };
                (ma, mb, s, Some((sa, sb, so)))
            })
            .boxed()
    } else {
        (
            prop_oneof![3 => multiplier(), 1 => 0..(1i32 << 30)],
            prop_oneof![3 => multiplier(), 1 => 0..(1i32 << 30)],
            shift_in(-6, 4),
        )
            .prop_map(|(ma, mb, s)| (ma, mb, s, None))
            .boxed()
    }
}

pub fn add_case(real: bool) -> impl Strategy<Value = AddCase> {
    let alias = prop_oneof![2 => Just(Alias::None), 1 => Just(Alias::A), 1 => Just(Alias::B)];
    (prop::array::uniform3(1..=6usize), act_q(), act_q(), alias, act_bits(), add_quant(real), placement(), any::<u64>())
        .prop_flat_map(move |(dims, a_q, b_q, alias, out_bits, quant, place, fill)| {
            let shape = [1, dims[0], dims[1], dims[2]];
            let n = dims.iter().product::<usize>();
            let out_bits = match alias {
                Alias::None => out_bits,
                Alias::A => a_q.bits,
                Alias::B => b_q.bits,
            };
            let out = zero_point(out_bits).prop_flat_map(move |z| out_clamp(out_bits, z));
            (vec(act_value(a_q.bits), n), vec(act_value(b_q.bits), n), out).prop_map(move |(a, b, out)| AddCase {
                shape,
                a,
                a_q,
                b,
                b_q,
                multiplier_a: quant.0,
                multiplier_b: quant.1,
                shift: quant.2,
                out,
                alias,
                real: quant.3,
                place,
                fill,
            })
        })
}

// ---------------------------------------------------------------------------------------------
// Reshape, dequantize, softmax

#[derive(Debug, Clone)]
pub struct ReshapeCase {
    pub in_shape: [usize; 4],
    pub out_shape: [usize; 4],
    pub bits: u32,
    pub zero_point: i32,
    pub values: Vec<i32>,
    pub place: Placement,
    pub fill: u64,
}

impl Case for ReshapeCase {
    fn spec(&self) -> Spec {
        let d = dtype(self.bits);
        // A reshape is a view: its output is its input's bytes (the loader refuses another offset).
        let offs = [self.place.gaps[0] as u32; 2];
        let s = f16::from_f32(0.5);
        let tensors = vec![
            tensor(self.in_shape, d, s, self.zero_point, offs[0]),
            tensor(self.out_shape, d, s, self.zero_point, offs[1]),
        ];
        Spec::one_op(
            tensors,
            0,
            1,
            self.place.raw_input(self.bits),
            OpSpec::Reshape(UnaryParams { input: 0, output: 1 }),
        )
    }

    fn input_bytes(&self) -> Vec<u8> {
        pack_values(&self.values, self.bits)
    }

    fn fill(&self) -> u64 {
        self.fill
    }

    fn expected(&self) -> Expected {
        let (min, max) = act_range(self.bits);
        Expected::Quant { bits: self.bits, values: self.values.clone(), min, max }
    }
}

pub fn reshape_case() -> impl Strategy<Value = ReshapeCase> {
    (prop::array::uniform3(1..=7usize), 0..4usize, act_q(), placement(), any::<u64>()).prop_flat_map(
        |(d, form, q, place, fill)| {
            let n = d[0] * d[1] * d[2];
            let in_shape = [1, d[0], d[1], d[2]];
            let out_shape = match form {
                0 => [1, 1, 1, n],
                1 => [1, d[2], d[1], d[0]],
                2 => [1, d[0] * d[1], 1, d[2]],
                _ => [n, 1, 1, 1],
            };
            vec(act_value(q.bits), n).prop_map(move |values| ReshapeCase {
                in_shape,
                out_shape,
                bits: q.bits,
                zero_point: q.zero_point,
                values,
                place,
                fill,
            })
        },
    )
}

/// The ops from a quantized tensor into f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatOp {
    Dequantize,
    /// Over the last axis.
    Softmax,
    /// Over the last axis.
    LogSoftmax,
}

impl FloatOp {
    pub fn spec(self, p: UnaryParams) -> OpSpec {
        match self {
            FloatOp::Dequantize => OpSpec::Dequantize(p),
            FloatOp::Softmax => OpSpec::Softmax(p),
            FloatOp::LogSoftmax => OpSpec::LogSoftmax(p),
        }
    }

    /// The naive model of the op on `x` (codes), of a tensor with `zero_point`, `scale` and
    /// rows of `row` elements.
    pub fn naive(self, x: &[i32], zero_point: i32, scale: f32, row: usize) -> Vec<f32> {
        match self {
            FloatOp::Dequantize => naive::dequantize(x, zero_point, scale),
            FloatOp::Softmax => naive::softmax(x, scale, row),
            FloatOp::LogSoftmax => naive::log_softmax(x, scale, row),
        }
    }
}

/// Dequantize, softmax or log-softmax over the last axis, into f32.
#[derive(Debug, Clone)]
pub struct FloatOutCase {
    pub op: FloatOp,
    pub shape: [usize; 4],
    pub bits: u32,
    pub zero_point: i32,
    pub scale: f16,
    pub values: Vec<i32>,
    pub place: Placement,
    pub fill: u64,
}

impl Case for FloatOutCase {
    fn spec(&self) -> Spec {
        let d = dtype(self.bits);
        let n = self.values.len();
        let offs = self.place.lay_out(&[d.bytes_for(n), DType::F32.bytes_for(n)]);
        let tensors = vec![
            tensor(self.shape, d, self.scale, self.zero_point, offs[0]),
            tensor(self.shape, DType::F32, f16::from_f32(1.0), 0, offs[1]),
        ];
        let p = UnaryParams { input: 0, output: 1 };
        let op = self.op.spec(p);
        Spec::one_op(tensors, 0, 1, self.place.raw_input(self.bits), op)
    }

    fn input_bytes(&self) -> Vec<u8> {
        pack_values(&self.values, self.bits)
    }

    fn fill(&self) -> u64 {
        self.fill
    }

    fn expected(&self) -> Expected {
        let s = self.scale.to_f32();
        Expected::F32(self.op.naive(&self.values, self.zero_point, s, self.shape[3]))
    }
}

pub fn float_out_case(op: FloatOp) -> impl Strategy<Value = FloatOutCase> {
    let scale = prop_oneof![
        8 => f16_scale(-12, 3),
        1 => Just(f16::MAX),
        1 => Just(f16::MIN_POSITIVE_SUBNORMAL),
        1 => (1u16..0x7C00).prop_map(f16::from_bits),
    ];
    (prop::array::uniform4(1..=6usize), act_q(), scale, placement(), any::<u64>()).prop_flat_map(
        move |(d, q, scale, place, fill)| {
            let shape = [1, d[0], d[1], d[2] + d[3]];
            let n = shape.iter().product::<usize>();
            vec(act_value(q.bits), n).prop_map(move |values| FloatOutCase {
                op,
                shape,
                bits: q.bits,
                zero_point: q.zero_point,
                scale,
                values,
                place,
                fill,
            })
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Table lookup

#[derive(Debug, Clone)]
pub struct LutCase {
    pub shape: [usize; 4],
    pub in_q: ActQ,
    pub out_q: ActQ,
    /// Output codes, `2^b` per row (`b` the input's bits): one row, or one per channel.
    pub table: Vec<i32>,
    pub values: Vec<i32>,
    pub place: Placement,
    pub fill: u64,
}

impl Case for LutCase {
    fn spec(&self) -> Spec {
        let n = self.values.len();
        let (di, d_out) = (dtype(self.in_q.bits), dtype(self.out_q.bits));
        let offs = self.place.lay_out(&[di.bytes_for(n), d_out.bytes_for(n)]);
        let tensors = vec![
            tensor(self.shape, di, f16::from_f32(0.125), self.in_q.zero_point, offs[0]),
            tensor(self.shape, d_out, f16::from_f32(0.03125), self.out_q.zero_point, offs[1]),
        ];
        let table = self.table.iter().map(|&v| v as i8 as u8).collect();
        let op = OpSpec::Lut(LutOwned { input: 0, output: 1, table });
        Spec::one_op(tensors, 0, 1, self.place.raw_input(self.in_q.bits), op)
    }

    fn input_bytes(&self) -> Vec<u8> {
        pack_values(&self.values, self.in_q.bits)
    }

    fn fill(&self) -> u64 {
        self.fill
    }

    fn expected(&self) -> Expected {
        let values = naive::lut(&self.values, self.in_q.bits, self.shape[3], &self.table);
        let (min, max) = act_range(self.out_q.bits);
        Expected::Quant { bits: self.out_q.bits, values, min, max }
    }
}

/// A lookup over 1..=7 per axis (odd sizes included), 4- or 8-bit in and out, with one table
/// shared by all channels or one per channel, entries often at the output's extremes.
pub fn lut_case() -> impl Strategy<Value = LutCase> {
    (prop::array::uniform3(1..=7usize), act_q(), act_q(), any::<bool>(), placement(), any::<u64>()).prop_flat_map(
        |(d, in_q, out_q, per_channel, place, fill)| {
            let shape = [1, d[0], d[1], d[2]];
            let rows = if per_channel { d[2] } else { 1 };
            let n = d[0] * d[1] * d[2];
            (vec(act_value(out_q.bits), rows << in_q.bits), vec(act_value(in_q.bits), n))
                .prop_map(move |(table, values)| LutCase { shape, in_q, out_q, table, values, place, fill })
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Elementwise product

#[derive(Debug, Clone)]
pub struct MulCase {
    pub shape: [usize; 4],
    pub a: Vec<i32>,
    pub a_q: ActQ,
    /// `a`'s shape, or one value per channel (`broadcast`).
    pub b: Vec<i32>,
    pub b_q: ActQ,
    pub broadcast: bool,
    pub multiplier: i32,
    pub shift: i8,
    pub out: OutQ,
    /// The output is `a` itself (same offset and dtype).
    pub in_place: bool,
    /// `(s_a, s_b, s_out)`, for the float check.
    pub real: Option<(f64, f64, f64)>,
    pub place: Placement,
    pub fill: u64,
}

impl MulCase {
    /// Offsets of a, b and the output.
    fn offsets(&self) -> [u32; 3] {
        let (da, db) = (dtype(self.a_q.bits), dtype(self.b_q.bits));
        let (na, nb) = (da.bytes_for(self.a.len()), db.bytes_for(self.b.len()));
        if self.in_place {
            let o = self.place.lay_out(&[na, nb]);
            [o[0], o[1], o[0]]
        } else {
            let o = self.place.lay_out(&[na, nb, dtype(self.out.bits).bytes_for(self.a.len())]);
            [o[0], o[1], o[2]]
        }
    }

    fn b_shape(&self) -> [usize; 4] {
        if self.broadcast {
            [1, 1, 1, self.shape[3]]
        } else {
            self.shape
        }
    }
}

impl Case for MulCase {
    fn spec(&self) -> Spec {
        let o = self.offsets();
        let r = self.real;
        let tensors = vec![
            tensor(self.shape, dtype(self.a_q.bits), scale_or(r.map(|r| r.0)), self.a_q.zero_point, o[0]),
            tensor(self.b_shape(), dtype(self.b_q.bits), scale_or(r.map(|r| r.1)), self.b_q.zero_point, o[1]),
            tensor(self.shape, dtype(self.out.bits), scale_or(r.map(|r| r.2)), self.out.zero_point, o[2]),
        ];
        let op = OpSpec::Mul(MulParams {
            a: 0,
            b: 1,
            output: 2,
            multiplier: self.multiplier,
            shift: self.shift,
            clamp: self.out.clamp(),
        });
        Spec::one_op(tensors, 0, 2, self.place.raw_input(self.a_q.bits), op)
    }

    fn input_bytes(&self) -> Vec<u8> {
        pack_values(&self.a, self.a_q.bits)
    }

    fn extra(&self) -> Vec<(u32, Vec<u8>)> {
        vec![(self.offsets()[1], pack_values(&self.b, self.b_q.bits))]
    }

    fn fill(&self) -> u64 {
        self.fill
    }

    fn expected(&self) -> Expected {
        let values = naive::mul(
            &self.a,
            self.a_q.zero_point,
            &self.b,
            self.b_q.zero_point,
            self.shape[3],
            self.multiplier,
            self.shift,
            self.out.fmt(),
        );
        Expected::Quant { bits: self.out.bits, values, min: self.out.min, max: self.out.max }
    }
}

/// `(M, s, real scales)` of a product: random (shifts around the `2^-16..2^0` that products of
/// up to 255·255 need), or derived from real scales, `M·2^(s−31) = s_a·s_b / s_out`.
type MulQuant = (i32, i8, Option<(f64, f64, f64)>);

fn mul_quant(real: bool) -> BoxedStrategy<MulQuant> {
    if real {
        (log_uniform(-6.0, 0.0), log_uniform(-6.0, 0.0), log_uniform(-10.0, -2.0))
            .prop_map(|(sa, sb, so)| {
                let (m, s) = quantize_multiplier(sa * sb / so);
                (m, s, Some((sa, sb, so)))
            })
            .boxed()
    } else {
        (prop_oneof![4 => multiplier(), 1 => 0..(1i32 << 30)], shift_in(-10, 0)).prop_map(|(m, s)| (m, s, None)).boxed()
    }
}

/// A product over 1..=6 per axis, `b` of `a`'s shape or one value per channel, sometimes
/// written over `a` in place.
pub fn mul_case(real: bool) -> impl Strategy<Value = MulCase> {
    (
        prop::array::uniform3(1..=6usize),
        act_q(),
        act_q(),
        any::<bool>(),
        prop_oneof![3 => Just(false), 1 => Just(true)],
        act_bits(),
        mul_quant(real),
        placement(),
        any::<u64>(),
    )
        .prop_flat_map(move |(dims, a_q, b_q, broadcast, in_place, out_bits, quant, place, fill)| {
            let shape = [1, dims[0], dims[1], dims[2]];
            let n = dims.iter().product::<usize>();
            let nb = if broadcast { dims[2] } else { n };
            let out_bits = if in_place { a_q.bits } else { out_bits };
            let out = zero_point(out_bits).prop_flat_map(move |z| out_clamp(out_bits, z));
            (vec(act_value(a_q.bits), n), vec(act_value(b_q.bits), nb), out).prop_map(move |(a, b, out)| MulCase {
                shape,
                a,
                a_q,
                b,
                b_q,
                broadcast,
                multiplier: quant.0,
                shift: quant.1,
                out,
                in_place,
                real: quant.2,
                place,
                fill,
            })
        })
}

// ---------------------------------------------------------------------------------------------
// Concatenation

#[derive(Debug, Clone)]
pub struct ConcatCase {
    /// The inputs, all of one height and width, with their bits.
    pub parts: Vec<(naive::Part, u32)>,
    pub out: ActQ,
    /// `(s_in of each part, s_out)`, for the float check.
    pub real: Option<(Vec<f64>, f64)>,
    pub place: Placement,
    pub fill: u64,
}

impl ConcatCase {
    fn offsets(&self) -> Vec<u32> {
        let mut sizes: Vec<usize> =
            self.parts.iter().map(|(p, bits)| dtype(*bits).bytes_for(p.x.values.len())).collect();
        sizes.push(dtype(self.out.bits).bytes_for(self.out_elements()));
        self.place.lay_out(&sizes)
    }

    fn channels(&self) -> usize {
        self.parts.iter().map(|(p, _)| p.x.c).sum()
    }

    fn out_elements(&self) -> usize {
        let x = &self.parts[0].0.x;
        x.h * x.w * self.channels()
    }
}

impl Case for ConcatCase {
    fn spec(&self) -> Spec {
        let offs = self.offsets();
        let k = self.parts.len();
        let real = self.real.as_ref();
        let mut tensors: Vec<TensorDesc> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, (p, bits))| {
                let s = scale_or(real.map(|r| r.0[i]));
                tensor([1, p.x.h, p.x.w, p.x.c], dtype(*bits), s, p.x.zero_point, offs[i])
            })
            .collect();
        let x = &self.parts[0].0.x;
        let s_out = scale_or(real.map(|r| r.1));
        tensors.push(tensor([1, x.h, x.w, self.channels()], dtype(self.out.bits), s_out, self.out.zero_point, offs[k]));
        let parts: Vec<ConcatPart> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, (p, _))| ConcatPart { tensor: i as u16, multiplier: p.multiplier, shift: p.shift })
            .collect();
        let op = OpSpec::Concat(ConcatOwned::new(k as u16, &parts));
        Spec::one_op(tensors, 0, k as u16, self.place.raw_input(self.parts[0].1), op)
    }

    fn input_bytes(&self) -> Vec<u8> {
        let (p, bits) = &self.parts[0];
        pack_values(&p.x.values, *bits)
    }

    fn extra(&self) -> Vec<(u32, Vec<u8>)> {
        let offs = self.offsets();
        self.parts.iter().enumerate().skip(1).map(|(i, (p, bits))| (offs[i], pack_values(&p.x.values, *bits))).collect()
    }

    fn fill(&self) -> u64 {
        self.fill
    }

    fn expected(&self) -> Expected {
        let parts: Vec<naive::Part> = self.parts.iter().map(|(p, _)| p.clone()).collect();
        let values = naive::concat(&parts, self.out.zero_point, self.out.bits);
        let (min, max) = act_range(self.out.bits);
        Expected::Quant { bits: self.out.bits, values, min, max }
    }
}

/// `(M, s)` of one part: mostly random with shifts that both saturate and keep values inside,
/// sometimes the identity `(2^30, 1)`.
fn concat_part_quant() -> impl Strategy<Value = (i32, i8)> {
    prop_oneof![4 => (multiplier(), shift_in(-3, 3)), 1 => Just((1i32 << 30, 1i8))]
}

/// A concatenation of 2..=8 parts of 1..=5 channels each over 1..=5 × 1..=5 positions, every part
/// with its own bits, zero point and requantization; `real` derives the multipliers from real
/// scales.
pub fn concat_case(real: bool) -> impl Strategy<Value = ConcatCase> {
    let part = (1..=5usize, act_q(), concat_part_quant(), log_uniform(-8.0, 0.0));
    (1..=5usize, 1..=5usize, vec(part, 2..=8), act_q(), log_uniform(-8.0, 0.0), placement(), any::<u64>())
        .prop_flat_map(move |(h, w, parts, out, s_out, place, fill)| {
            let acts: Vec<_> = parts.iter().map(|&(c, q, _, _)| act(h, w, c, q)).collect();
            (acts, Just(parts)).prop_map(move |(acts, parts)| {
                let real = real.then(|| (parts.iter().map(|p| p.3).collect::<Vec<f64>>(), s_out));
                let parts = acts
                    .into_iter()
                    .zip(&parts)
                    .map(|(x, &(_, q, (m, s), s_in))| {
                        let (multiplier, shift) =
                            if real.is_some() { quantize_multiplier(s_in / s_out) } else { (m, s) };
                        (naive::Part { x, multiplier, shift }, q.bits)
                    })
                    .collect();
                ConcatCase { parts, out, real: real.clone(), place, fill }
            })
        })
}

// ---------------------------------------------------------------------------------------------
// Slice, nearest resize, depth-to-space: elements moved unchanged

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Slice { begin: [usize; 3], step: [usize; 3], out: (usize, usize, usize) },
    Resize { fh: usize, fw: usize },
    DepthToSpace { block: usize },
}

#[derive(Debug, Clone)]
pub struct MoveCase {
    pub kind: Move,
    pub input: Act,
    pub bits: u32,
    pub scale: f16,
    pub place: Placement,
    pub fill: u64,
}

impl MoveCase {
    pub fn out_shape(&self) -> [usize; 4] {
        let x = &self.input;
        match self.kind {
            Move::Slice { out, .. } => [1, out.0, out.1, out.2],
            Move::Resize { fh, fw } => [1, x.h * fh, x.w * fw, x.c],
            Move::DepthToSpace { block } => [1, x.h * block, x.w * block, x.c / (block * block)],
        }
    }
}

impl Case for MoveCase {
    fn spec(&self) -> Spec {
        let x = &self.input;
        let d = dtype(self.bits);
        let out_shape = self.out_shape();
        let offs = self.place.lay_out(&[d.bytes_for(x.values.len()), d.bytes_for(out_shape.iter().product())]);
        let tensors = vec![
            tensor([1, x.h, x.w, x.c], d, self.scale, x.zero_point, offs[0]),
            tensor(out_shape, d, self.scale, x.zero_point, offs[1]),
        ];
        let op = match self.kind {
            Move::Slice { begin, step, .. } => OpSpec::Slice(SliceParams {
                input: 0,
                output: 1,
                begin: begin.map(|v| v as u16),
                step: step.map(|v| v as u16),
            }),
            Move::Resize { fh, fw } => {
                OpSpec::Resize(ResizeParams { input: 0, output: 1, factor_h: fh as u8, factor_w: fw as u8 })
            }
            Move::DepthToSpace { block } => {
                OpSpec::DepthToSpace(DepthToSpaceParams { input: 0, output: 1, block: block as u8 })
            }
        };
        Spec::one_op(tensors, 0, 1, self.place.raw_input(self.bits), op)
    }

    fn input_bytes(&self) -> Vec<u8> {
        pack_values(&self.input.values, self.bits)
    }

    fn fill(&self) -> u64 {
        self.fill
    }

    fn expected(&self) -> Expected {
        let x = &self.input;
        let values = match self.kind {
            Move::Slice { begin, step, out } => naive::slice(x, begin, step, out),
            Move::Resize { fh, fw } => naive::resize_nearest(x, fh, fw),
            Move::DepthToSpace { block } => naive::depth_to_space(x, block),
        };
        let (min, max) = act_range(self.bits);
        Expected::Quant { bits: self.bits, values, min, max }
    }
}

fn move_case(shape: impl Strategy<Value = (usize, usize, usize, Move)>) -> impl Strategy<Value = MoveCase> {
    let scale = prop_oneof![4 => f16_scale(-10, 2), 1 => (1u16..0x7C00).prop_map(f16::from_bits)];
    (shape, act_q(), scale, placement(), any::<u64>()).prop_flat_map(|((h, w, c, kind), q, scale, place, fill)| {
        act(h, w, c, q).prop_map(move |input| MoveCase { kind, input, bits: q.bits, scale, place, fill })
    })
}

/// One axis of a slice of an axis of `size`: `(begin, step, count)` with the last element read
/// inside the axis, often reaching its end.
fn slice_axis(size: usize) -> impl Strategy<Value = (usize, usize, usize)> {
    (0..size, prop_oneof![3 => 1..=3usize, 1 => 1..=size.max(1)], any::<u16>(), any::<bool>()).prop_map(
        move |(begin, step, k, longest)| {
            let most = (size - 1 - begin) / step + 1;
            (begin, step, if longest { most } else { 1 + k as usize % most })
        },
    )
}

/// A slice with steps of an input of 1..=9 per axis.
pub fn slice_case() -> impl Strategy<Value = MoveCase> {
    move_case(prop::array::uniform3(1..=9usize).prop_flat_map(|d| {
        (slice_axis(d[0]), slice_axis(d[1]), slice_axis(d[2])).prop_map(move |(y, x, c)| {
            let kind = Move::Slice { begin: [y.0, x.0, c.0], step: [y.1, x.1, c.1], out: (y.2, x.2, c.2) };
            (d[0], d[1], d[2], kind)
        })
    }))
}

/// Nearest upsampling by factors 1..=4 of an input of 1..=6 × 1..=6 × 1..=5.
pub fn resize_case() -> impl Strategy<Value = MoveCase> {
    move_case(
        (1..=6usize, 1..=6usize, 1..=5usize, 1..=4usize, 1..=4usize)
            .prop_map(|(h, w, c, fh, fw)| (h, w, c, Move::Resize { fh, fw })),
    )
}

/// Depth-to-space with blocks 2..=3 (sometimes 1) of an input of 1..=5 × 1..=5 × (1..=4)·block².
pub fn depth_to_space_case() -> impl Strategy<Value = MoveCase> {
    let block = prop_oneof![4 => 2..=3usize, 1 => Just(1usize)];
    move_case(
        (1..=5usize, 1..=5usize, 1..=4usize, block)
            .prop_map(|(h, w, oc, b)| (h, w, oc * b * b, Move::DepthToSpace { block: b })),
    )
}
