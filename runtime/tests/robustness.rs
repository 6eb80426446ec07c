//! The loader and interpreter on hostile input: random byte strings, mutated valid models and
//! models with adversarial field values. Nothing may panic; whatever the loader accepts must run
//! in an arena of the declared size, and must compute exactly what the naive model of the
//! contract computes over the same arena (so an accepted model can neither write outside its
//! output nor escape the contract's arithmetic). A handful of hand-made models check that each
//! kind of damage is reported as its own `Error` variant.

mod common;
mod naive;

use std::cell::RefCell;
use std::collections::BTreeMap;

use common::*;
use hawq_runtime::format::{
    DType, InputLayout, Op, RawInput, TensorDesc, Tensors, FORMAT_VERSION, HEADER_BYTES, MAGIC, MAX_TENSORS,
    TENSOR_RECORD_BYTES,
};
use hawq_runtime::quant::Bits;
use hawq_runtime::{Error, Interpreter, Model, Threads};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Loaded models with a larger arena are checked but not run.
const RUN_ARENA_CAP: usize = 16 << 20;
/// Loaded models needing more multiply-adds than this (runtime or naive) are not run.
const WORK_BUDGET: u64 = 4_000_000;

// ---------------------------------------------------------------------------------------------
// Blobs

/// A header for `body` (magic, version, flags 0, length, arena, CRC), then the body.
fn with_header(body: &[u8], arena_bytes: u32, version: u16) -> Vec<u8> {
    let mut blob = Vec::with_capacity(HEADER_BYTES + body.len());
    blob.extend_from_slice(&MAGIC);
    blob.extend_from_slice(&version.to_le_bytes());
    blob.extend_from_slice(&0u16.to_le_bytes());
    blob.extend_from_slice(&(body.len() as u32).to_le_bytes());
    blob.extend_from_slice(&arena_bytes.to_le_bytes());
    let sum = hawq_runtime::format::checksum(&blob[..16], body);
    blob.extend_from_slice(&sum.to_le_bytes());
    blob.extend_from_slice(body);
    blob
}

fn arena_field(blob: &[u8]) -> u32 {
    u32::from_le_bytes(blob[12..16].try_into().unwrap())
}

/// Recomputes the header's body length and CRC after the body was edited.
fn fix_up(blob: &mut Vec<u8>) {
    let body = blob[HEADER_BYTES..].to_vec();
    *blob = with_header(&body, arena_field(blob), FORMAT_VERSION);
}

// ---------------------------------------------------------------------------------------------
// The naive model over a whole arena

fn le_i16_at(bytes: &[u8], i: usize) -> i32 {
    i16::from_le_bytes(bytes[2 * i..2 * i + 2].try_into().unwrap()) as i32
}

fn bits_u32(b: Bits) -> u32 {
    b.get()
}

fn region(t: &TensorDesc) -> std::ops::Range<usize> {
    t.offset as usize..t.offset as usize + t.bytes()
}

/// The quantized values of `t` in `arena`.
fn read(arena: &[u8], t: &TensorDesc) -> Vec<i32> {
    let bits = bits_u32(t.dtype.bits().expect("quantized tensor"));
    naive::unpack(&arena[region(t)], bits, t.elements())
}

fn act_of(arena: &[u8], t: &TensorDesc) -> naive::Act {
    assert_eq!(t.shape[0], 1);
    naive::Act {
        h: t.shape[1] as usize,
        w: t.shape[2] as usize,
        c: t.shape[3] as usize,
        values: read(arena, t),
        zero_point: t.zero_point as i32,
    }
}

/// Unpacks `rows` weight rows of `k` values, each starting on a byte boundary.
fn weight_rows(bytes: &[u8], bits: u8, k: usize, rows: usize) -> Vec<i32> {
    let bits = bits as u32;
    let row_bytes = (k * bits as usize).div_ceil(8);
    (0..rows).flat_map(|r| naive::unpack(&bytes[r * row_bytes..(r + 1) * row_bytes], bits, k)).collect()
}

fn channels_of(c: &hawq_runtime::format::ChannelParams<'_>, n: usize) -> naive::Channels {
    naive::Channels {
        bias: (0..n)
            .map(|i| match c.bias_exponent {
                hawq_runtime::quant::BIAS_I32 => i32::from_le_bytes(c.bias[4 * i..4 * i + 4].try_into().unwrap()),
                e => le_i16_at(c.bias, i) << e,
            })
            .collect(),
        multiplier: (0..n).map(|i| (le_i16_at(c.multiplier, i) & 0xFFF) << 18).collect(),
        shift: (0..n).map(|i| (c.shift_base as i32 + ((le_i16_at(c.multiplier, i) & 0xFFFF) >> 12)) as i8).collect(),
    }
}

fn out_fmt(t: &TensorDesc, clamp: hawq_runtime::format::Clamp) -> naive::OutFmt {
    naive::OutFmt { zero_point: t.zero_point as i32, min: clamp.min as i32, max: clamp.max as i32 }
}

fn geom(out: &TensorDesc, k: (usize, usize), stride: (u8, u8), pad: (u8, u8)) -> naive::Geom {
    naive::Geom {
        kernel_h: k.0,
        kernel_w: k.1,
        stride_h: stride.0 as usize,
        stride_w: stride.1 as usize,
        pad_top: pad.0 as usize,
        pad_left: pad.1 as usize,
        out_h: out.shape[1] as usize,
        out_w: out.shape[2] as usize,
    }
}

fn window_work(input: &TensorDesc, output: &TensorDesc, kh: usize, kw: usize) -> (u64, u64) {
    let taps_inside = kh.min(input.shape[1] as usize) as u64 * kw.min(input.shape[2] as usize) as u64;
    let out = output.elements() as u64;
    (out.saturating_mul(taps_inside), out.saturating_mul(kh as u64 * kw as u64))
}

/// The tensor table decoded, in index order (every record of a loaded model decodes).
fn table(model: &Model<'_>) -> Vec<TensorDesc> {
    let t: Vec<TensorDesc> = model.tensors().iter().collect();
    assert_eq!(t.len(), model.tensors().len(), "a loaded model's table decodes whole");
    t
}

/// Multiply-adds of the runtime and of the naive model (which visits every tap of every window).
fn work(model: &Model<'_>) -> (u64, u64) {
    let t = table(model);
    let mut total = (0u64, 0u64);
    for op in model.ops() {
        let op = op.expect("validated op");
        let (rt, nv) = match op {
            Op::Conv2d(p) | Op::DepthwiseConv2d(p) => {
                let (i, o) = (&t[p.input as usize], &t[p.output as usize]);
                let (a, b) = window_work(i, o, p.kernel_h as usize, p.kernel_w as usize);
                let c = if matches!(op, Op::Conv2d(_)) { i.shape[3] as u64 } else { 1 };
                (a.saturating_mul(c), b.saturating_mul(c))
            }
            Op::AvgPool(p) | Op::MaxPool(p) => {
                let (i, o) = (&t[p.input as usize], &t[p.output as usize]);
                window_work(i, o, p.kernel_h as usize, p.kernel_w as usize)
            }
            Op::FullyConnected(p) => {
                let n = t[p.input as usize].elements() as u64 * t[p.output as usize].elements() as u64;
                (n, n)
            }
            other => {
                let n = t[other.output() as usize].elements() as u64;
                (n, n)
            }
        };
        total = (total.0.saturating_add(rt), total.1.saturating_add(nv));
    }
    total
}

/// A concatenation's part records, decoded here from the format's layout (tensor u16, shift i8,
/// a zero byte, multiplier i32, little-endian): `(tensor, multiplier, shift)`.
fn concat_records(parts: &[u8]) -> Vec<(u16, i32, i8)> {
    assert_eq!(parts.len() % 8, 0, "whole part records");
    parts
        .chunks_exact(8)
        .map(|r| (u16::from_le_bytes([r[0], r[1]]), i32::from_le_bytes([r[4], r[5], r[6], r[7]]), r[2] as i8))
        .collect()
}

/// Runs the model's ops with the naive model over a copy of the arena, writing each output back
/// packed, so the whole arena after `invoke` can be compared.
fn simulate(model: &Model<'_>, arena: &mut [u8]) {
    let t = table(model);
    for op in model.ops() {
        let op = op.expect("validated op");
        let out_t = t[op.output() as usize];
        let bytes: Vec<u8> = match op {
            Op::Conv2d(p) | Op::DepthwiseConv2d(p) => {
                let (i, o) = (&t[p.input as usize], &out_t);
                let x = act_of(arena, i);
                let oc = o.shape[3] as usize;
                let depthwise = matches!(op, Op::DepthwiseConv2d(_));
                let k = p.kernel_h as usize * p.kernel_w as usize * if depthwise { 1 } else { x.c };
                let w = weight_rows(p.weights, p.weight_bits, k, oc);
                let g = geom(
                    o,
                    (p.kernel_h as usize, p.kernel_w as usize),
                    (p.stride_h, p.stride_w),
                    (p.pad_top, p.pad_left),
                );
                let ch = channels_of(&p.channel, oc);
                let fmt = out_fmt(o, p.clamp);
                let v = if depthwise {
                    naive::depthwise_conv2d(&x, &w, &g, &ch, fmt)
                } else {
                    naive::conv2d(&x, &w, &g, &ch, fmt)
                };
                naive::pack(&v, bits_u32(o.dtype.bits().unwrap()))
            }
            Op::FullyConnected(p) => {
                let (i, o) = (&t[p.input as usize], &out_t);
                let x = read(arena, i);
                let w = weight_rows(p.weights, p.weight_bits, x.len(), o.elements());
                let ch = channels_of(&p.channel, o.elements());
                let v = naive::fully_connected(&x, i.zero_point as i32, &w, &ch, out_fmt(o, p.clamp));
                naive::pack(&v, bits_u32(o.dtype.bits().unwrap()))
            }
            Op::AvgPool(p) | Op::MaxPool(p) => {
                let (i, o) = (&t[p.input as usize], &out_t);
                let x = act_of(arena, i);
                let g = geom(
                    o,
                    (p.kernel_h as usize, p.kernel_w as usize),
                    (p.stride_h, p.stride_w),
                    (p.pad_top, p.pad_left),
                );
                let fmt = out_fmt(o, p.clamp);
                let v = if matches!(op, Op::AvgPool(_)) {
                    naive::avg_pool(&x, &g, p.multiplier, p.shift, fmt)
                } else {
                    naive::max_pool(&x, &g, p.multiplier, p.shift, fmt)
                };
                naive::pack(&v, bits_u32(o.dtype.bits().unwrap()))
            }
            Op::Add(p) => {
                let (a, b, o) = (&t[p.a as usize], &t[p.b as usize], &out_t);
                let v = naive::add(
                    &read(arena, a),
                    a.zero_point as i32,
                    p.multiplier_a,
                    &read(arena, b),
                    b.zero_point as i32,
                    p.multiplier_b,
                    p.shift,
                    out_fmt(o, p.clamp),
                );
                naive::pack(&v, bits_u32(o.dtype.bits().unwrap()))
            }
            Op::Reshape(p) => arena[region(&t[p.input as usize])].to_vec(),
            Op::Softmax(p) | Op::LogSoftmax(p) | Op::Dequantize(p) => {
                let i = &t[p.input as usize];
                let x = read(arena, i);
                let s = i.scale.to_f32();
                let kind = match op {
                    Op::Softmax(_) => FloatOp::Softmax,
                    Op::LogSoftmax(_) => FloatOp::LogSoftmax,
                    _ => FloatOp::Dequantize,
                };
                le_f32s(&kind.naive(&x, i.zero_point as i32, s, i.shape[3] as usize))
            }
            Op::Lut(p) => {
                let i = &t[p.input as usize];
                let table: Vec<i32> = p.table.iter().map(|&b| b as i8 as i32).collect();
                let v = naive::lut(&read(arena, i), bits_u32(i.dtype.bits().unwrap()), out_t.shape[3] as usize, &table);
                naive::pack(&v, bits_u32(out_t.dtype.bits().unwrap()))
            }
            Op::Mul(p) => {
                let (a, b, o) = (&t[p.a as usize], &t[p.b as usize], &out_t);
                let v = naive::mul(
                    &read(arena, a),
                    a.zero_point as i32,
                    &read(arena, b),
                    b.zero_point as i32,
                    o.shape[3] as usize,
                    p.multiplier,
                    p.shift,
                    out_fmt(o, p.clamp),
                );
                naive::pack(&v, bits_u32(o.dtype.bits().unwrap()))
            }
            Op::Concat(p) => {
                let parts: Vec<naive::Part> = concat_records(p.parts)
                    .into_iter()
                    .map(|(tensor, multiplier, shift)| naive::Part {
                        x: act_of(arena, &t[tensor as usize]),
                        multiplier,
                        shift,
                    })
                    .collect();
                let bits = bits_u32(out_t.dtype.bits().unwrap());
                naive::pack(&naive::concat(&parts, out_t.zero_point as i32, bits), bits)
            }
            Op::Slice(p) => {
                let x = act_of(arena, &t[p.input as usize]);
                let out = (out_t.shape[1] as usize, out_t.shape[2] as usize, out_t.shape[3] as usize);
                let v = naive::slice(&x, p.begin.map(|v| v as usize), p.step.map(|v| v as usize), out);
                naive::pack(&v, bits_u32(out_t.dtype.bits().unwrap()))
            }
            Op::Resize(p) => {
                let x = act_of(arena, &t[p.input as usize]);
                let v = naive::resize_nearest(&x, p.factor_h as usize, p.factor_w as usize);
                naive::pack(&v, bits_u32(out_t.dtype.bits().unwrap()))
            }
            Op::DepthToSpace(p) => {
                let x = act_of(arena, &t[p.input as usize]);
                let v = naive::depth_to_space(&x, p.block as usize);
                naive::pack(&v, bits_u32(out_t.dtype.bits().unwrap()))
            }
        };
        arena[region(&out_t)].copy_from_slice(&bytes);
    }
}

/// Whether [`simulate`] models every op of `model`.
fn simulated(model: &Model<'_>) -> bool {
    model.ops().flatten().all(|op| {
        !matches!(op, Op::Lut(_) | Op::Mul(_) | Op::Concat(_) | Op::Slice(_) | Op::Resize(_) | Op::DepthToSpace(_))
    })
}

/// The arena regions of the ops' scratch (contents unspecified after a run).
fn scratch_regions(model: &Model<'_>) -> Vec<std::ops::Range<usize>> {
    let t = table(model);
    let bits = |b: u8| hawq_runtime::quant::Bits::from_u8(b).expect("validated bits");
    let act = |i: u16| t[i as usize].dtype.bits().expect("quantized input");
    model
        .ops()
        .flatten()
        .filter_map(|op| {
            let (offset, bytes) = match op {
                Op::Conv2d(p) | Op::DepthwiseConv2d(p) => {
                    let (i, o) = (&t[p.input as usize], &t[p.output as usize]);
                    let g = hawq_runtime::kernels::Window {
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
                    let bytes = if matches!(op, Op::Conv2d(_)) {
                        hawq_runtime::kernels::conv2d_scratch_bytes(&g, bits(p.weight_bits), act(p.input))
                    } else {
                        hawq_runtime::kernels::depthwise_conv2d_scratch_bytes(&g, bits(p.weight_bits), act(p.input))
                    };
                    (p.scratch, bytes)
                }
                Op::FullyConnected(p) => {
                    let (n, m) = (t[p.input as usize].elements(), t[p.output as usize].elements());
                    (
                        p.scratch,
                        hawq_runtime::kernels::fully_connected_scratch_bytes(n, m, bits(p.weight_bits), act(p.input)),
                    )
                }
                _ => return None,
            };
            Some(offset as usize..offset as usize + bytes)
        })
        .filter(|r| !r.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Exercising one blob

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Rejected(&'static str),
    /// Loaded; arena or work too large to run here.
    LoadedNotRun,
    /// Loaded, ran, and matched the naive model over the whole arena.
    Ran,
}

fn variant(e: &Error) -> &'static str {
    match e {
        Error::Truncated => "Truncated",
        Error::BadMagic => "BadMagic",
        Error::UnsupportedVersion { .. } => "UnsupportedVersion",
        Error::ChecksumMismatch { .. } => "ChecksumMismatch",
        Error::Malformed => "Malformed",
        Error::TrailingBytes => "TrailingBytes",
        Error::TooManyTensors => "TooManyTensors",
        Error::BadShape { .. } => "BadShape",
        Error::TensorOutOfArena { .. } => "TensorOutOfArena",
        Error::BadZeroPoint { .. } => "BadZeroPoint",
        Error::ScratchOutOfArena => "ScratchOutOfArena",
        Error::OpScratchOutOfArena { .. } => "OpScratchOutOfArena",
        Error::ScratchOverlap { .. } => "ScratchOverlap",
        Error::BadTensorIndex { .. } => "BadTensorIndex",
        Error::WrongDtype { .. } => "WrongDtype",
        Error::ShapeMismatch { .. } => "ShapeMismatch",
        Error::UnsupportedBits { .. } => "UnsupportedBits",
        Error::BadParameter { .. } => "BadParameter",
        Error::WeightSizeMismatch { .. } => "WeightSizeMismatch",
        Error::AccumulatorOverflow { .. } => "AccumulatorOverflow",
        Error::OverlappingTensors { .. } => "OverlappingTensors",
        Error::ArenaTooSmall { .. } => "ArenaTooSmall",
        Error::SizeMismatch { .. } => "SizeMismatch",
        Error::EmptyModel => "EmptyModel",
        Error::ArenaSizeMismatch { .. } => "ArenaSizeMismatch",
        Error::KernelNotLinked { .. } => "KernelNotLinked",
        Error::NotInPlace { .. } => "NotInPlace",
    }
}

/// The kernel sets (`kernels::linked`): a set that holds every kernel the model needs
/// (`linked::required`) loads it and runs it to the same arena as the default set (`after`, from
/// `start`); one that lacks a kernel refuses it at load and at the interpreter's creation, naming
/// the first op that needs what is missing.
fn kernel_sets_agree(blob: &[u8], model: &Model<'_>, start: &[u8], after: &[u8]) {
    use hawq_runtime::kernels::linked::{self, *};
    let needs = linked::required(model).expect("a loaded model's ops decode");
    assert!(linked::has(ALL, needs), "{needs:#x} outside ALL");
    // The Cortex-M4's row forms are named, not needed: a set without them runs the model all
    // the same (its layers take the other form or the Rust rows).
    let needs = needs & !(HIGH_ROWS | OFFSET_ROWS);
    macro_rules! check {
        ($($set:expr),*) => {$(
            let mut arena = start.to_vec();
            let missing = linked::first_missing(model, $set).expect("ops decode");
            // The loader of a narrowed build refuses the same model at the same op.
            match Model::from_bytes_with_kernels::<{ $set }>(blob) {
                Ok(_) => assert_eq!(missing, None, "set {:#x}", $set),
                Err(e) => assert_eq!(Some(e), missing.map(|(op, _)| Error::KernelNotLinked { op }), "set {:#x}", $set),
            }
            match Interpreter::<{ $set }>::with_kernels(model, &mut arena) {
                Ok(mut it) => {
                    assert!(linked::has($set, needs), "set {:#x} accepted a model needing {needs:#x}", $set);
                    assert_eq!(missing, None);
                    it.invoke().expect("a validated model runs");
                    assert!(arena == after, "set {:#x}: another arena than every kernel's", $set);
                }
                Err(e) => {
                    let (op, lacks) = missing.expect("a refusal names an op");
                    assert_eq!(e, Error::KernelNotLinked { op }, "set {:#x}", $set);
                    assert!(!linked::has($set, needs) && lacks != 0 && lacks & $set == 0);
                    let op_needs = linked::op_needs(&model.ops().nth(op as usize).unwrap().unwrap(), model.tensors());
                    assert_eq!(op_needs.map(|n| n & !$set), Some(lacks));
                }
            }
        )*};
    }
    check!(
        CONV2D | WEIGHTS_8,
        ADD | MAX_POOL | AVG_POOL | SOFTMAX,
        ADD | SOFTMAX | LOG_SOFTMAX | DEQUANTIZE,
        OPS | WEIGHTS_8,
        OPS | WEIGHTS_8 | WEIGHTS_4 | WEIGHTS_2,
        ALL & !ACTS_4,
        ALL & !LONG_ROWS,
        ALL & !(LUT | MUL | CONCAT),
        ALL & !LOG_SOFTMAX,
        ALL & !DEPTHWISE_GENERAL,
        ALL & !CONV_GENERAL,
        ALL & !HIGH_ROWS,
        ALL & !(HIGH_ROWS | OFFSET_ROWS),
        ALL & !(SLICE | RESIZE | DEPTH_TO_SPACE | DEQUANTIZE | DEPTHWISE_CONV2D | FULLY_CONNECTED)
    );
}

/// The interpreter with the weights prepared once in a workspace (`Interpreter::with_workspace`,
/// the workspace full of garbage, exactly the size the model asks for or more) leaves the same
/// arena as `Interpreter::new`, over two inferences; a workspace one byte short is an error value.
fn workspace_agrees(model: &Model<'_>, start: &[u8], after: &[u8], seed: u64) {
    let needed = model.host_workspace_bytes();
    if needed > 0 {
        let (mut arena, mut short) = (start.to_vec(), garbage(needed - 1, seed));
        let e = Interpreter::with_workspace(model, &mut arena, &mut short).err();
        assert_eq!(e, Some(Error::SizeMismatch { expected: needed as u32, got: needed as u32 - 1 }));
        assert_eq!(arena, start, "a refused workspace ran nothing");
    }
    for more in [0, 7] {
        let mut arena = start.to_vec();
        let mut workspace = garbage(needed + more, seed ^ 0x3c3c);
        Interpreter::with_workspace(model, &mut arena, &mut workspace)
            .expect("a big enough workspace")
            .invoke()
            .expect("a validated model runs");
        assert!(arena == after, "workspace of {} bytes (+{more}): another arena than without it", needed + more);
    }
    // The prepared weights serve every inference: two in a row, against two without them.
    let (mut arena, mut plain) = (start.to_vec(), start.to_vec());
    let mut workspace = garbage(needed, seed ^ 0x4d4d);
    let mut it = Interpreter::with_workspace(model, &mut arena, &mut workspace).expect("a big enough workspace");
    let mut without = Interpreter::new(model, &mut plain).expect("the arena");
    for _ in 0..2 {
        it.invoke().expect("a validated model runs");
        without.invoke().expect("a validated model runs");
    }
    assert_eq!(it.output_bytes(), without.output_bytes(), "second inference: another output with the workspace");
    // An interpreter made again over the prepared workspace (as the C interface's `hawq_invoke`
    // makes one per call) computes the same without laying the weights out again, and so it does
    // over the workspace cut short; over the workspace scrambled past its first region's header
    // (that region's weights garbage, the other headers too) it runs all the same, whatever it
    // computes.
    let mut again = start.to_vec();
    let mut it = Interpreter::with_prepared_workspace(model, &mut again, &workspace).expect("a prepared workspace");
    it.invoke().expect("a validated model runs");
    assert_eq!(again, after, "an interpreter over the prepared workspace: another arena");
    if needed > 0 {
        // Cut a byte short, its last region is not whole: that op runs without it.
        let mut cut = start.to_vec();
        let mut it =
            Interpreter::with_prepared_workspace(model, &mut cut, &workspace[..needed - 1]).expect("the arena");
        it.invoke().expect("a validated model runs");
        assert_eq!(cut, after, "an interpreter over the prepared workspace cut short: another arena");
    }
    let scrambled: Vec<u8> = workspace.iter().enumerate().map(|(i, &b)| if i < 4 { b } else { b ^ 0xA5 }).collect();
    let mut arena = start.to_vec();
    Interpreter::with_prepared_workspace(model, &mut arena, &scrambled)
        .expect("the arena")
        .invoke()
        .expect("a scrambled workspace is read in bounds");
}

/// `Interpreter::invoke_threads` on 2 and 3 threads, every layer of two output rows or more
/// split into bands, leaves the arena `Interpreter::new`'s `invoke` leaves (the ops' scratch
/// aside: the bands after the first use the pool's).
fn threads_agree(model: &Model<'_>, start: &[u8], after: &[u8], scratch: &[std::ops::Range<usize>]) {
    for n in [2, 3] {
        let mut threads = Threads::new(model, n).expect("the threads start").min_macs(0);
        let mut arena = start.to_vec();
        let mut it = Interpreter::new(model, &mut arena).expect("the arena");
        it.invoke_threads(&mut threads).expect("a validated model runs");
        if let Some(i) = (0..arena.len()).find(|&i| !scratch.iter().any(|r| r.contains(&i)) && arena[i] != after[i]) {
            panic!("{n} threads: arena byte {i} is {:#04x}, one thread leaves {:#04x}", arena[i], after[i]);
        }
    }
}

/// Contract §6 for integer samples into an 8-bit input: element `i` of the NHWC tensor is
/// sample element `i` (or, for an NCHW model, element `(c, y, x)`), `x − 128` for uint8 and `x`
/// for int8.
fn raw_input_follows_the_contract(model: &Model<'_>, input: &[u8], raw: &[u8]) {
    let t = model.input();
    let kind = model.raw_input();
    if t.dtype != hawq_runtime::DType::I8 || kind == hawq_runtime::RawInput::F32 {
        return;
    }
    let (h, w, c) = (t.shape[1] as usize, t.shape[2] as usize, t.shape[3] as usize);
    let nchw = model.meta().input_layout == hawq_runtime::format::InputLayout::Nchw;
    for (i, &q) in input.iter().enumerate().take(t.elements()) {
        let src = if nchw { (i % c) * h * w + i / c } else { i };
        let want = match kind {
            hawq_runtime::RawInput::U8 => raw[src] as i32 - 128,
            _ => raw[src] as i8 as i32,
        };
        assert_eq!(q as i8 as i32, want, "input element {i} (sample element {src}, {kind:?}, nchw {nchw})");
    }
}

/// `write_input_interleaved` of a sample in `[H, W, C]` order writes what `write_input_raw` of
/// the same sample in the model's order writes; `write_input_rgb565` of a frame what
/// `write_input_interleaved` of its pixels widened to 8 bits writes (3-channel `u8` models; any
/// other is an error value).
fn interleaved_and_rgb565_inputs_agree(model: &Model<'_>, it: &mut Interpreter<'_, '_>, raw: &[u8]) {
    let t = model.input();
    let (h, w, c) = (t.shape[1] as usize, t.shape[2] as usize, t.shape[3] as usize);
    let width = model.raw_input().element_bytes();
    let nchw = model.meta().input_layout == hawq_runtime::format::InputLayout::Nchw;
    let mut interleaved = vec![0u8; raw.len()];
    for i in 0..t.elements() {
        let src = if nchw { (i % c) * h * w + i / c } else { i };
        interleaved[i * width..(i + 1) * width].copy_from_slice(&raw[src * width..(src + 1) * width]);
    }
    let want = it.input_bytes_mut().to_vec();
    it.input_bytes_mut().fill(0x5a);
    it.write_input_interleaved(&interleaved).expect("a sample of the right size");
    assert_eq!(it.input_bytes_mut(), &want[..], "interleaved input (nchw model: {nchw})");
    let pixels = t.elements() / c.max(1);
    let frame: Vec<u8> = raw.iter().take(2 * pixels).copied().chain(std::iter::repeat(0x33)).take(2 * pixels).collect();
    if model.raw_input() != hawq_runtime::RawInput::U8 || c != 3 {
        assert!(
            it.write_input_rgb565(&frame, false).is_err(),
            "RGB565 into a model of {c} channels of {:?}",
            model.raw_input()
        );
        return;
    }
    assert!(matches!(it.write_input_rgb565(&frame[1..], false), Err(Error::SizeMismatch { .. })));
    for big_endian in [false, true] {
        let pixels: Vec<u8> = frame
            .chunks_exact(2)
            .flat_map(|p| {
                let v = if big_endian { u16::from_be_bytes([p[0], p[1]]) } else { u16::from_le_bytes([p[0], p[1]]) };
                let widen = |x: u16, bits: u32| ((x << (8 - bits)) | (x >> (2 * bits - 8))) as u8;
                [widen(v >> 11, 5), widen((v >> 5) & 0x3F, 6), widen(v & 0x1F, 5)]
            })
            .collect();
        it.write_input_interleaved(&pixels).expect("a frame's pixels");
        let want = it.input_bytes_mut().to_vec();
        it.write_input_rgb565(&frame, big_endian).expect("a frame of the right size");
        assert_eq!(it.input_bytes_mut(), &want[..], "RGB565 (big endian: {big_endian})");
    }
}

/// Loads `blob`; if it loads, checks what the loader promises, runs it over a garbage arena of
/// the declared size through both input paths, and compares the whole arena with the naive
/// model's. Panics (failing the property) on any broken promise.
fn exercise(blob: &[u8], seed: u64) -> Outcome {
    let model = match Model::from_bytes(blob) {
        Ok(m) => m,
        Err(e) => return Outcome::Rejected(variant(&e)),
    };
    let n = model.arena_bytes();
    let tensors = table(&model);
    // Compared as records: a NaN scale is not equal to itself.
    let record = |t: &TensorDesc| t.to_record();
    for (i, t) in tensors.iter().enumerate() {
        assert!(t.offset as usize + t.bytes() <= n, "accepted tensor outside the arena: {t:?}");
        assert_eq!(model.tensor(i as u16).as_ref().map(record), Some(record(t)));
    }
    assert_eq!(model.tensor(tensors.len() as u16), None);
    assert_eq!(record(model.input()), record(&tensors[model.meta().input as usize]));
    assert_eq!(record(model.output()), record(&tensors[model.meta().output as usize]));
    assert_eq!(model.ops().count(), model.meta().op_count as usize);
    assert!(model.ops().all(|op| op.is_ok()));
    let _ = model.weight_bytes();
    let (rt_work, naive_work) = work(&model);
    if n > RUN_ARENA_CAP || rt_work > WORK_BUDGET {
        return Outcome::LoadedNotRun;
    }
    if n > 0 {
        let mut short = vec![0u8; n - 1];
        assert!(matches!(Interpreter::new(&model, &mut short), Err(Error::ArenaTooSmall { .. })));
    }

    // 1. Raw input path: any raw bytes of the right size are accepted (NaN, inf, any layout).
    let mut arena = garbage(n, seed);
    let mut it = Interpreter::new(&model, &mut arena).expect("an arena of the declared size");
    let raw_len = model.input().elements() * model.raw_input().element_bytes();
    assert!(matches!(it.write_input_raw(&vec![0u8; raw_len + 1]), Err(Error::SizeMismatch { .. })));
    let raw = garbage(raw_len, seed ^ 0x5555);
    it.write_input_raw(&raw).expect("raw input of the right size");
    raw_input_follows_the_contract(&model, it.input_bytes_mut(), &raw);
    interleaved_and_rgb565_inputs_agree(&model, &mut it, &raw);
    it.invoke().expect("a validated model runs");
    let mut out = vec![0f32; model.output().elements()];
    assert_eq!(it.read_output_f32(&mut out), Ok(out.len()));
    let mut floats = vec![0f32; model.input().elements()];
    for (i, f) in floats.iter_mut().enumerate() {
        *f = [0.0, -1e30, 1e30, f32::NAN, f32::INFINITY, 3.5, -0.5][(i + seed as usize) % 7];
    }
    it.write_input_f32(&floats).expect("f32 input of the right size");

    // 2. Arena garbage as the input; the naive model runs over a copy.
    let mut arena = garbage(n, seed.rotate_left(17));
    let start = arena.clone();
    let mut want = arena.clone();
    let mut it = Interpreter::new(&model, &mut arena).expect("an arena of the declared size");
    it.invoke().expect("a validated model runs");
    let _ = it.output_bytes();
    // The kernels may leave anything in their scratch; a scratch over another tensor (which only
    // the op's own input and output may not be) leaves that tensor's bytes to the kernel too.
    let scratch = scratch_regions(&model);
    let apart =
        |r: &std::ops::Range<usize>| tensors.iter().all(|t| r.end <= region(t).start || region(t).end <= r.start);
    let comparable = simulated(&model) && scratch.iter().all(apart);
    kernel_sets_agree(blob, &model, &start, &arena);
    workspace_agrees(&model, &start, &arena, seed);
    threads_agree(&model, &start, &arena, &scratch_regions(&model));
    if naive_work <= WORK_BUDGET && comparable {
        simulate(&model, &mut want);
        let unspecified = |i: usize| scratch.iter().any(|r| r.contains(&i));
        if let Some(i) = (0..n).find(|&i| !unspecified(i) && arena[i] != want[i]) {
            let owner: Vec<_> = tensors.iter().enumerate().filter(|(_, t)| region(t).contains(&i)).collect();
            panic!(
                "arena byte {i} is {:#04x}, the naive model says {:#04x} (tensors there: {owner:?})",
                arena[i], want[i]
            );
        }
    }
    Outcome::Ran
}

/// Runs `exercise` over `cases` random blobs; returns how often each outcome happened.
fn property<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    blob: impl Fn(&S::Value) -> (Vec<u8>, u64),
) -> BTreeMap<Outcome, u32> {
    let outcomes = RefCell::new(BTreeMap::new());
    let mut config = Config::with_cases(cases);
    config.failure_persistence = None;
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |v| {
        let (b, seed) = blob(&v);
        let outcome = std::panic::catch_unwind(|| exercise(&b, seed)).map_err(|e| {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            TestCaseError::fail(format!("panicked: {msg}; blob {b:02x?}"))
        })?;
        *outcomes.borrow_mut().entry(outcome).or_insert(0) += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let outcomes = outcomes.into_inner();
    eprintln!("{name}: {outcomes:?}");
    outcomes
}

fn ran(outcomes: &BTreeMap<Outcome, u32>) -> u32 {
    outcomes.get(&Outcome::Ran).copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Valid models to start from

/// A valid one-op model of any kind, or a chain of the format-5 ops ([`chain_spec`]), sometimes
/// followed by a dequantize or softmax of its output.
fn valid_spec() -> impl Strategy<Value = Spec> {
    let one = prop_oneof![
        conv_case(false, false).prop_map(|c| c.spec()),
        conv_case(true, false).prop_map(|c| c.spec()),
        fc_case(false).prop_map(|c| c.spec()),
        pool_case(true, false, false).prop_map(|c| c.spec()),
        pool_case(true, true, false).prop_map(|c| c.spec()),
        pool_case(false, false, false).prop_map(|c| c.spec()),
        add_case(false).prop_map(|c| c.spec()),
        reshape_case().prop_map(|c| c.spec()),
        float_out_case(FloatOp::Dequantize).prop_map(|c| c.spec()),
        float_out_case(FloatOp::Softmax).prop_map(|c| c.spec()),
        float_out_case(FloatOp::LogSoftmax).prop_map(|c| c.spec()),
        lut_case().prop_map(|c| c.spec()),
        mul_case(false).prop_map(|c| c.spec()),
        concat_case(false).prop_map(|c| c.spec()),
        slice_case().prop_map(|c| c.spec()),
        resize_case().prop_map(|c| c.spec()),
        depth_to_space_case().prop_map(|c| c.spec()),
        chain_spec(),
    ];
    (one, 0..5u8).prop_map(|(spec, tail)| match tail {
        0 => append_float_op(spec, FloatOp::Softmax),
        1 => append_float_op(spec, FloatOp::Dequantize),
        2 => append_float_op(spec, FloatOp::LogSoftmax),
        _ => spec,
    })
}

/// Appends a softmax, log-softmax or dequantize of the model's (quantized) output into a new f32
/// tensor.
fn append_float_op(mut spec: Spec, op: FloatOp) -> Spec {
    let out = spec.tensors[spec.output as usize];
    if out.dtype == DType::F32 {
        return spec;
    }
    let t = TensorDesc { dtype: DType::F32, offset: spec.arena_bytes, ..out };
    spec.arena_bytes += t.bytes() as u32;
    spec.tensors.push(t);
    let p = hawq_runtime::format::UnaryParams { input: spec.output, output: spec.tensors.len() as u16 - 1 };
    spec.ops.push(op.spec(p));
    spec.op_count += 1;
    spec.output = p.output;
    spec
}

/// Draws an op's parameters from one random word (xorshift64*), so that a chain is a short list
/// of words to shrink.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n ≥ 1`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + self.below((hi - lo + 1) as usize) as i32
    }

    /// True `k` times in `n`.
    fn chance(&mut self, k: usize, n: usize) -> bool {
        self.below(n) < k
    }

    /// A code of `bits` bits, often an extreme.
    fn code(&mut self, bits: u32) -> i32 {
        let (lo, hi) = act_range(bits);
        match self.below(8) {
            0 => lo,
            1 => hi,
            _ => self.range(lo, hi),
        }
    }
}

/// A model under construction by [`chain_spec`]: tensors one after another in the arena (with
/// small gaps), except outputs written in place.
struct Chain {
    tensors: Vec<TensorDesc>,
    ops: Vec<OpSpec>,
    end: u32,
}

impl Chain {
    fn push(&mut self, d: &mut Draw, t: TensorDesc) -> u16 {
        let t = TensorDesc { offset: self.end + d.below(4) as u32, ..t };
        self.end = t.offset + t.bytes() as u32;
        self.tensors.push(t);
        self.tensors.len() as u16 - 1
    }

    /// A new tensor of `shape` with random bits, zero point (often an extreme) and scale.
    fn fresh(&mut self, d: &mut Draw, shape: [usize; 4]) -> u16 {
        let bits = [4, 8][d.below(2)];
        let t = tensor(shape, dtype(bits), fresh_scale(d), d.code(bits), 0);
        self.push(d, t)
    }

    fn get(&self, i: u16) -> TensorDesc {
        self.tensors[i as usize]
    }

    fn disjoint(&self, a: u16, b: u16) -> bool {
        let (a, b) = (region(&self.get(a)), region(&self.get(b)));
        a.end <= b.start || b.end <= a.start
    }

    /// One op of a random format-5 kind reading `src` (or a tensor made for it); returns its
    /// output.
    fn step(&mut self, d: &mut Draw, src: u16) -> u16 {
        let x = self.get(src);
        let [_, h, w, c] = x.shape.map(|v| v as usize);
        let bits = x.dtype.bits().expect("quantized").get();
        match d.below(6) {
            0 => {
                let out_bits = [4, 8][d.below(2)];
                let rows = if d.chance(1, 2) { c } else { 1 };
                let table = (0..rows << bits).map(|_| d.code(out_bits) as i8 as u8).collect();
                let out = tensor([1, h, w, c], dtype(out_bits), fresh_scale(d), d.code(out_bits), 0);
                let output = self.push(d, out);
                self.ops.push(OpSpec::Lut(LutOwned { input: src, output, table }));
                output
            }
            1 => {
                let b_shape = if d.chance(1, 2) { [1, 1, 1, c] } else { [1, h, w, c] };
                let fits = |t: &TensorDesc| t.shape.map(|v| v as usize) == b_shape;
                let reuse: Vec<u16> = (0..self.tensors.len() as u16)
                    .filter(|&i| i != src && fits(&self.get(i)) && self.disjoint(i, src))
                    .collect();
                let b = if !reuse.is_empty() && d.chance(1, 2) {
                    reuse[d.below(reuse.len())]
                } else {
                    self.fresh(d, b_shape)
                };
                let (output, out_bits) = if d.chance(1, 3) {
                    // In place: a's region and dtype, a quantization of its own.
                    let t = TensorDesc { scale: fresh_scale(d), zero_point: d.code(bits) as i8, ..x };
                    self.tensors.push(t);
                    (self.tensors.len() as u16 - 1, bits)
                } else {
                    let out_bits = [4, 8][d.below(2)];
                    let t = tensor([1, h, w, c], dtype(out_bits), fresh_scale(d), d.code(out_bits), 0);
                    (self.push(d, t), out_bits)
                };
                let (lo, hi) = act_range(out_bits);
                let z = self.get(output).zero_point as i32;
                let clamp = match d.below(3) {
                    0 => (z, hi),
                    1 => {
                        let (a, b) = (d.range(lo, hi), d.range(lo, hi));
                        (a.min(b), a.max(b))
                    }
                    _ => (lo, hi),
                };
                self.ops.push(OpSpec::Mul(hawq_runtime::format::MulParams {
                    a: src,
                    b,
                    output,
                    multiplier: d.range(1 << 30, i32::MAX),
                    shift: d.range(-10, 0) as i8,
                    clamp: hawq_runtime::format::Clamp { min: clamp.0 as i8, max: clamp.1 as i8 },
                }));
                output
            }
            2 => {
                let mut parts = vec![src];
                let mut channels = c;
                for _ in 1..2 + d.below(7) {
                    let same_hw: Vec<u16> = (0..self.tensors.len() as u16)
                        .filter(|&i| {
                            let t = self.get(i);
                            (t.shape[1] as usize, t.shape[2] as usize) == (h, w) && channels + t.shape[3] as usize <= 32
                        })
                        .collect();
                    let part = if !same_hw.is_empty() && d.chance(1, 2) {
                        same_hw[d.below(same_hw.len())]
                    } else {
                        let pc = 1 + d.below(4);
                        self.fresh(d, [1, h, w, pc])
                    };
                    channels += self.get(part).shape[3] as usize;
                    parts.push(part);
                }
                let records: Vec<_> = parts
                    .iter()
                    .map(|&tensor| {
                        let (multiplier, shift) = if d.chance(1, 4) {
                            (1 << 30, 1)
                        } else {
                            (d.range(1 << 30, i32::MAX), d.range(-3, 3) as i8)
                        };
                        hawq_runtime::format::ConcatPart { tensor, multiplier, shift }
                    })
                    .collect();
                let out_bits = [4, 8][d.below(2)];
                let out = tensor([1, h, w, channels], dtype(out_bits), fresh_scale(d), d.code(out_bits), 0);
                let output = self.push(d, out);
                self.ops.push(OpSpec::Concat(ConcatOwned::new(output, &records)));
                output
            }
            3 => {
                let mut axis = |size: usize| {
                    let begin = d.below(size);
                    let step = 1 + d.below(3);
                    let most = (size - 1 - begin) / step + 1;
                    (begin, step, 1 + d.below(most))
                };
                let (y, xx, ch) = (axis(h), axis(w), axis(c));
                let output = self.push(d, TensorDesc { shape: [1, y.2 as u16, xx.2 as u16, ch.2 as u16], ..x });
                self.ops.push(OpSpec::Slice(hawq_runtime::format::SliceParams {
                    input: src,
                    output,
                    begin: [y.0 as u16, xx.0 as u16, ch.0 as u16],
                    step: [y.1 as u16, xx.1 as u16, ch.1 as u16],
                }));
                output
            }
            4 => {
                let fh = 1 + d.below((16 / h).clamp(1, 4));
                let fw = 1 + d.below((16 / w).clamp(1, 4));
                let output = self.push(d, TensorDesc { shape: [1, (h * fh) as u16, (w * fw) as u16, c as u16], ..x });
                self.ops.push(OpSpec::Resize(hawq_runtime::format::ResizeParams {
                    input: src,
                    output,
                    factor_h: fh as u8,
                    factor_w: fw as u8,
                }));
                output
            }
            _ => {
                let fits = |b: usize| c % (b * b) == 0 && h * b <= 24 && w * b <= 24;
                let (input, b) = match (fits(2), fits(3)) {
                    (true, true) => (src, 2 + d.below(2)),
                    (true, false) => (src, 2),
                    (false, true) => (src, 3),
                    _ => {
                        let b = 2 + d.below(2);
                        let (h, w) = (h.min(6), w.min(6));
                        let c = (1 + d.below(2)) * b * b;
                        (self.fresh(d, [1, h, w, c]), b)
                    }
                };
                let t = self.get(input);
                let [_, h, w, c] = t.shape.map(|v| v as usize);
                let output =
                    self.push(d, TensorDesc { shape: [1, (h * b) as u16, (w * b) as u16, (c / (b * b)) as u16], ..t });
                self.ops.push(OpSpec::DepthToSpace(hawq_runtime::format::DepthToSpaceParams {
                    input,
                    output,
                    block: b as u8,
                }));
                output
            }
        }
    }
}

/// A positive f16 scale, sometimes an odd one (the element moves must carry it unchanged).
fn fresh_scale(d: &mut Draw) -> half::f16 {
    if d.chance(1, 8) {
        half::f16::from_bits(1 + d.below(0x7BFF) as u16)
    } else {
        half::f16::from_f32((1 + d.below(64)) as f32 / 256.0)
    }
}

/// A model of 2..=6 format-5 ops (lookup, product, concatenation, slice, resize,
/// depth-to-space), each reading the previous op's output or an earlier tensor, with new tensors
/// made for their other inputs: random shapes, 4- and 8-bit tensors, products in place.
fn chain_spec() -> impl Strategy<Value = Spec> {
    (prop::array::uniform3(1..=6usize), any::<u64>(), vec(any::<u64>(), 2..=6)).prop_map(|(dims, seed, steps)| {
        let mut d = Draw(seed | 1);
        let mut chain = Chain { tensors: Vec::new(), ops: Vec::new(), end: 0 };
        let first = chain.fresh(&mut d, [1, dims[0], dims[1], dims[2]]);
        let mut last = first;
        for &step in &steps {
            let mut d = Draw(step | 1);
            // Mostly the previous output: a chain, not a fan.
            let src = if d.chance(3, 4) { last } else { d.below(chain.tensors.len()) as u16 };
            last = chain.step(&mut d, src);
        }
        let raw_input = match (chain.get(first).dtype, seed % 3) {
            (DType::I8, 0) => RawInput::I8,
            (DType::I8, 1) => RawInput::U8,
            _ => RawInput::F32,
        };
        Spec {
            op_count: chain.ops.len() as u16,
            arena_bytes: chain.end,
            tensors: chain.tensors,
            input: first,
            output: last,
            raw_input,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
            scratch_offset: 0,
            scratch_bytes: 0,
            ops: chain.ops,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// (1) Random byte strings

proptest! {
    #![proptest_config(Config { cases: 64, failure_persistence: None, ..Config::default() })]

    /// The header parser on short and arbitrary blobs.
    #[test]
    fn random_short_blobs_are_rejected(bytes in vec(any::<u8>(), 0..HEADER_BYTES)) {
        prop_assert_eq!(Model::from_bytes(&bytes).err(), Some(Error::Truncated));
    }
}

#[test]
fn random_bytes_never_panic() {
    let outcomes = property("random bytes", 20_000, (vec(any::<u8>(), 0..600), any::<u64>()), |(b, s)| (b.clone(), *s));
    // Almost all of these stop at the magic.
    assert!(outcomes.get(&Outcome::Rejected("BadMagic")).copied().unwrap_or(0) > 15_000);
}

#[test]
fn random_bodies_behind_a_valid_header_never_panic() {
    let strategy = (vec(any::<u8>(), 0..600), any::<u32>(), 0..3u8, any::<u64>());
    let outcomes = property("random bodies", 20_000, strategy, |(body, arena, size, seed)| {
        let arena = match size {
            0 => arena % 4096,
            1 => *arena,
            _ => u32::MAX,
        };
        (with_header(body, arena, FORMAT_VERSION), *seed)
    });
    assert_eq!(outcomes.get(&Outcome::Rejected("ChecksumMismatch")), None, "the CRC fix-up failed");
}

/// Valid tables followed by random bytes as the op list, so the op decoder and validator see them.
#[test]
fn random_ops_behind_valid_tables_never_panic() {
    // An op's variant tag, then mostly small bytes (short lengths, small indices and sizes).
    let op_bytes = (0..16u8, vec(prop_oneof![3 => 0..8u8, 1 => any::<u8>()], 0..80));
    let strategy = (valid_spec(), vec(op_bytes, 1..4), any::<u64>());
    let outcomes = property("random ops", 10_000, strategy, |(spec, ops, seed)| {
        let mut tables = spec.clone();
        tables.ops.clear();
        tables.op_count = ops.len() as u16;
        let blob = tables.encode();
        let mut body = blob[HEADER_BYTES..].to_vec();
        for (tag, bytes) in ops {
            body.push(*tag);
            body.extend_from_slice(bytes);
        }
        (with_header(&body, spec.arena_bytes, FORMAT_VERSION), *seed)
    });
    let decoded: u32 =
        outcomes.iter().filter(|(o, _)| !matches!(o, Outcome::Rejected("Malformed"))).map(|(_, n)| n).sum();
    assert!(decoded > 500, "too few random op lists got past the decoder: {outcomes:?}");
}

// ---------------------------------------------------------------------------------------------
// (2) Mutated valid models

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, value: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Truncate { keep: usize },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        4 => (any::<usize>(), prop_oneof![Just(0u8), Just(0xFF), Just(0x7F), Just(0x80), any::<u8>()])
            .prop_map(|(at, value)| Mutation::Set { at, value }),
        2 => (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<usize>(), 1..8usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        1 => (any::<usize>(), 1..16usize).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    let n = body.len();
    if n == 0 {
        return;
    }
    match m {
        Mutation::Flip { at, bit } => body[at % n] ^= 1 << bit,
        Mutation::Set { at, value } => body[at % n] = *value,
        Mutation::Insert { at, bytes } => {
            let at = at % (n + 1);
            body.splice(at..at, bytes.iter().copied());
        }
        Mutation::Delete { at, len } => {
            let at = at % n;
            body.drain(at..(at + len).min(n));
        }
        Mutation::Truncate { keep } => body.truncate(keep % n),
        Mutation::Duplicate { at, len } => {
            let at = at % n;
            let chunk = body[at..(at + len).min(n)].to_vec();
            body.splice(at..at, chunk);
        }
    }
}

#[test]
fn mutated_models_never_panic_and_run_as_specified_when_accepted() {
    let strategy = (valid_spec(), vec(mutation(), 1..4), 0..8u8, any::<u32>(), any::<u64>());
    let outcomes = property("mutated models", 15_000, strategy, |(spec, mutations, header, arena, seed)| {
        let mut blob = spec.encode();
        let mut body = blob.split_off(HEADER_BYTES);
        for m in mutations {
            apply(&mut body, m);
        }
        let arena = match header {
            0 => *arena,
            1 => spec.arena_bytes.saturating_add(arena % 64),
            2 => spec.arena_bytes.saturating_sub(arena % 4),
            _ => spec.arena_bytes,
        };
        let mut blob = with_header(&body, arena, FORMAT_VERSION);
        if header == &7 {
            // Occasionally leave the CRC stale: the checksum must catch the edit.
            let flip = (*seed as usize) % body.len().max(1);
            if let Some(b) = blob.get_mut(HEADER_BYTES + flip) {
                *b ^= 0x20;
            }
        }
        (blob, *seed)
    });
    assert!(ran(&outcomes) > 300, "too few mutated models were accepted and run: {outcomes:?}");
}

// ---------------------------------------------------------------------------------------------
// (3) Adversarial field values

#[derive(Debug, Clone)]
enum Field {
    Dim {
        tensor: u8,
        dim: u8,
        value: u16,
    },
    Offset {
        tensor: u8,
        value: u32,
    },
    Dtype {
        tensor: u8,
        dtype: u8,
    },
    ZeroPoint {
        tensor: u8,
        value: i8,
    },
    Scale {
        tensor: u8,
        bits: u16,
    },
    Arena(u32),
    Scratch {
        offset: u32,
        bytes: u32,
    },
    ModelInput(u16),
    ModelOutput(u16),
    Raw(u8),
    Nchw,
    OpCount(i8),
    /// Puts tensor `b` at tensor `a`'s offset plus `delta` (overlap or exact alias).
    Overlap {
        a: u8,
        b: u8,
        delta: i8,
    },
    Kernel {
        h: u16,
        w: u16,
    },
    Stride {
        h: u8,
        w: u8,
    },
    Pad {
        top: u8,
        left: u8,
    },
    WeightBits(u8),
    /// Shortens (`delta < 0`) or lengthens one of weights/bias/multiplier.
    ArrayLen {
        which: u8,
        delta: i8,
    },
    /// A layer's shift, or a conv/FC layer's base shift.
    ShiftValue(i8),
    /// A pooling or add multiplier `M`, or a channel's word (mantissa and shift offset: its low
    /// 16 bits).
    Multiplier {
        index: u8,
        value: i32,
    },
    Bias {
        index: u8,
        value: i16,
    },
    BiasExponent(u8),
    Clamp {
        min: i8,
        max: i8,
    },
    OpTensor {
        which: u8,
        value: u16,
    },
    DuplicateOp,
    /// A slice's begin along one axis.
    Begin {
        axis: u8,
        value: u16,
    },
    /// A slice's step along one axis.
    Step {
        axis: u8,
        value: u16,
    },
    /// A resize's factors, or a depth-to-space block (`h`).
    Factor {
        h: u8,
        w: u8,
    },
    /// One entry of a lookup table.
    TableEntry {
        index: u16,
        value: i8,
    },
    /// A concatenation's part count: its records repeated or dropped.
    Parts(u8),
}

fn small_or_any_u16() -> impl Strategy<Value = u16> {
    prop_oneof![4 => 0..12u16, 1 => Just(u16::MAX), 1 => Just(255u16), 1 => Just(256u16), 1 => any::<u16>()]
}

fn near_edges_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => 0..256u32,
        2 => (u32::MAX - 64)..=u32::MAX,
        1 => Just(u32::MAX / 4),
        1 => Just(1u32 << 31),
        1 => any::<u32>(),
    ]
}

fn field() -> impl Strategy<Value = Field> {
    let t = 0..4u8;
    prop_oneof![
        (t.clone(), 0..4u8, small_or_any_u16()).prop_map(|(tensor, dim, value)| Field::Dim { tensor, dim, value }),
        (t.clone(), near_edges_u32()).prop_map(|(tensor, value)| Field::Offset { tensor, value }),
        (t.clone(), 0..3u8).prop_map(|(tensor, dtype)| Field::Dtype { tensor, dtype }),
        (t.clone(), any::<i8>()).prop_map(|(tensor, value)| Field::ZeroPoint { tensor, value }),
        (t.clone(), any::<u16>()).prop_map(|(tensor, bits)| Field::Scale { tensor, bits }),
        near_edges_u32().prop_map(Field::Arena),
        (near_edges_u32(), near_edges_u32()).prop_map(|(offset, bytes)| Field::Scratch { offset, bytes }),
        small_or_any_u16().prop_map(Field::ModelInput),
        small_or_any_u16().prop_map(Field::ModelOutput),
        (0..3u8).prop_map(Field::Raw),
        Just(Field::Nchw),
        (-2..=2i8).prop_map(Field::OpCount),
        (t.clone(), t.clone(), any::<i8>()).prop_map(|(a, b, delta)| Field::Overlap { a, b, delta }),
        (small_or_any_u16(), small_or_any_u16()).prop_map(|(h, w)| Field::Kernel { h, w }),
        (prop_oneof![0..4u8, Just(255u8)], prop_oneof![0..4u8, Just(255u8)]).prop_map(|(h, w)| Field::Stride { h, w }),
        (prop_oneof![0..8u8, Just(255u8)], prop_oneof![0..8u8, Just(255u8)])
            .prop_map(|(top, left)| Field::Pad { top, left }),
        prop_oneof![0..10u8, any::<u8>()].prop_map(Field::WeightBits),
        (0..3u8, -5..=5i8).prop_map(|(which, delta)| Field::ArrayLen { which, delta }),
        prop_oneof![Just(-32i8), Just(31i8), Just(i8::MIN), Just(i8::MAX), Just(16i8), any::<i8>()]
            .prop_map(Field::ShiftValue),
        (
            any::<u8>(),
            prop_oneof![
                Just(-1i32),
                Just(i32::MIN),
                Just(i32::MAX),
                Just(0),
                Just(i16::MIN as i32),
                Just(i16::MAX as i32),
                any::<i32>()
            ]
        )
            .prop_map(|(index, value)| Field::Multiplier { index, value }),
        (any::<u8>(), prop_oneof![Just(i16::MIN), Just(i16::MAX), any::<i16>()])
            .prop_map(|(index, value)| Field::Bias { index, value }),
        prop_oneof![0..=17u8, Just(255u8)].prop_map(Field::BiasExponent),
        (any::<i8>(), any::<i8>()).prop_map(|(min, max)| Field::Clamp { min, max }),
        (0..3u8, prop_oneof![3 => 0..4u16, 1 => any::<u16>()])
            .prop_map(|(which, value)| Field::OpTensor { which, value }),
        Just(Field::DuplicateOp),
        (0..3u8, small_or_any_u16()).prop_map(|(axis, value)| Field::Begin { axis, value }),
        (0..3u8, small_or_any_u16()).prop_map(|(axis, value)| Field::Step { axis, value }),
        (prop_oneof![0..5u8, Just(255u8)], prop_oneof![0..5u8, Just(255u8)]).prop_map(|(h, w)| Field::Factor { h, w }),
        (any::<u16>(), prop_oneof![Just(-9i8), Just(8i8), Just(i8::MIN), Just(i8::MAX), any::<i8>()])
            .prop_map(|(index, value)| Field::TableEntry { index, value }),
        (0..=10u8).prop_map(Field::Parts),
    ]
}

fn set_len(v: &mut Vec<u8>, delta: i8) {
    let n = (v.len() as isize + delta as isize).max(0) as usize;
    v.resize(n, 0x5A);
}

fn set_i16(v: &mut [u8], index: u8, value: i16) {
    let n = v.len() / 2;
    if n > 0 {
        let i = index as usize % n;
        v[2 * i..2 * i + 2].copy_from_slice(&value.to_le_bytes());
    }
}

fn edit(spec: &mut Spec, f: &Field) {
    let nt = spec.tensors.len();
    let tensor = |i: u8| i as usize % nt;
    match *f {
        Field::Dim { tensor: i, dim, value } => spec.tensors[tensor(i)].shape[dim as usize % 4] = value,
        Field::Offset { tensor: i, value } => spec.tensors[tensor(i)].offset = value,
        Field::Dtype { tensor: i, dtype } => {
            spec.tensors[tensor(i)].dtype = [DType::I8, DType::I4, DType::F32][dtype as usize % 3]
        }
        Field::ZeroPoint { tensor: i, value } => spec.tensors[tensor(i)].zero_point = value,
        Field::Scale { tensor: i, bits } => spec.tensors[tensor(i)].scale = half::f16::from_bits(bits),
        Field::Arena(v) => spec.arena_bytes = v,
        Field::Scratch { offset, bytes } => (spec.scratch_offset, spec.scratch_bytes) = (offset, bytes),
        Field::ModelInput(v) => spec.input = v,
        Field::ModelOutput(v) => spec.output = v,
        Field::Raw(r) => spec.raw_input = [RawInput::U8, RawInput::I8, RawInput::F32][r as usize % 3],
        Field::Nchw => spec.input_layout = InputLayout::Nchw,
        Field::OpCount(d) => spec.op_count = (spec.op_count as i32 + d as i32).clamp(0, u16::MAX as i32) as u16,
        Field::Overlap { a, b, delta } => {
            let at = spec.tensors[tensor(a)].offset as i64 + delta as i64;
            spec.tensors[tensor(b)].offset = at.clamp(0, u32::MAX as i64) as u32;
        }
        Field::DuplicateOp => {
            let op = spec.ops[0].clone();
            spec.ops.push(op);
            spec.op_count += 1;
        }
        _ => edit_op(&mut spec.ops[0], f),
    }
}

fn edit_op(op: &mut OpSpec, f: &Field) {
    match op {
        OpSpec::Conv2d(p) | OpSpec::DepthwiseConv2d(p) => match *f {
            Field::Kernel { h, w } => (p.kernel_h, p.kernel_w) = (h as u8, w as u8),
            Field::Stride { h, w } => (p.stride_h, p.stride_w) = (h, w),
            Field::Pad { top, left } => (p.pad_top, p.pad_left) = (top, left),
            Field::WeightBits(b) => p.weight_bits = b,
            Field::ArrayLen { which, delta } => {
                set_len([&mut p.weights, &mut p.bias, &mut p.multiplier][which as usize % 3], delta)
            }
            Field::ShiftValue(value) => p.shift_base = value,
            Field::Multiplier { index, value } => set_i16(&mut p.multiplier, index, value as i16),
            Field::Bias { index, value } => set_i16(&mut p.bias, index, value),
            Field::BiasExponent(e) => p.bias_exponent = e,
            Field::Clamp { min, max } => p.clamp = hawq_runtime::format::Clamp { min, max },
            Field::OpTensor { which, value } => *[&mut p.input, &mut p.output][which as usize % 2] = value,
            _ => {}
        },
        OpSpec::FullyConnected(p) => match *f {
            Field::WeightBits(b) => p.weight_bits = b,
            Field::ArrayLen { which, delta } => {
                set_len([&mut p.weights, &mut p.bias, &mut p.multiplier][which as usize % 3], delta)
            }
            Field::ShiftValue(value) => p.shift_base = value,
            Field::Multiplier { index, value } => set_i16(&mut p.multiplier, index, value as i16),
            Field::Bias { index, value } => set_i16(&mut p.bias, index, value),
            Field::BiasExponent(e) => p.bias_exponent = e,
            Field::Clamp { min, max } => p.clamp = hawq_runtime::format::Clamp { min, max },
            Field::OpTensor { which, value } => *[&mut p.input, &mut p.output][which as usize % 2] = value,
            _ => {}
        },
        OpSpec::AvgPool(p) | OpSpec::MaxPool(p) => match *f {
            Field::Kernel { h, w } => (p.kernel_h, p.kernel_w) = (h, w),
            Field::Stride { h, w } => (p.stride_h, p.stride_w) = (h, w),
            Field::Pad { top, left } => (p.pad_top, p.pad_left) = (top, left),
            Field::ShiftValue(value) => p.shift = value,
            Field::Multiplier { value, .. } => p.multiplier = value,
            Field::Clamp { min, max } => p.clamp = hawq_runtime::format::Clamp { min, max },
            Field::OpTensor { which, value } => *[&mut p.input, &mut p.output][which as usize % 2] = value,
            _ => {}
        },
        OpSpec::Add(p) => match *f {
            Field::ShiftValue(value) => p.shift = value,
            Field::Multiplier { index, value } => {
                *[&mut p.multiplier_a, &mut p.multiplier_b][index as usize % 2] = value
            }
            Field::Clamp { min, max } => p.clamp = hawq_runtime::format::Clamp { min, max },
            Field::OpTensor { which, value } => *[&mut p.a, &mut p.b, &mut p.output][which as usize % 3] = value,
            _ => {}
        },
        OpSpec::Reshape(p) | OpSpec::Softmax(p) | OpSpec::LogSoftmax(p) | OpSpec::Dequantize(p) => {
            if let Field::OpTensor { which, value } = *f {
                *[&mut p.input, &mut p.output][which as usize % 2] = value;
            }
        }
        OpSpec::Lut(p) => match *f {
            Field::ArrayLen { delta, .. } => set_len(&mut p.table, delta),
            Field::TableEntry { index, value } if !p.table.is_empty() => {
                let i = index as usize % p.table.len();
                p.table[i] = value as u8;
            }
            Field::OpTensor { which, value } => *[&mut p.input, &mut p.output][which as usize % 2] = value,
            _ => {}
        },
        OpSpec::Mul(p) => match *f {
            Field::ShiftValue(value) => p.shift = value,
            Field::Multiplier { value, .. } => p.multiplier = value,
            Field::Clamp { min, max } => p.clamp = hawq_runtime::format::Clamp { min, max },
            Field::OpTensor { which, value } => *[&mut p.a, &mut p.b, &mut p.output][which as usize % 3] = value,
            _ => {}
        },
        OpSpec::Concat(p) => {
            let records = p.parts.len() / 8;
            match *f {
                Field::ArrayLen { delta, .. } => set_len(&mut p.parts, delta),
                Field::Parts(n) if records > 0 => {
                    let old = p.parts.clone();
                    p.parts = (0..n as usize).flat_map(|i| old[(i % records) * 8..][..8].to_vec()).collect();
                }
                Field::ShiftValue(value) if records > 0 => p.parts[2] = value as u8,
                Field::Multiplier { index, value } if records > 0 => {
                    let at = (index as usize % records) * 8 + 4;
                    p.parts[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
                Field::OpTensor { which: 0, value } => p.output = value,
                Field::OpTensor { which, value } if records > 0 => {
                    let at = (which as usize - 1) % records * 8;
                    p.parts[at..at + 2].copy_from_slice(&value.to_le_bytes());
                }
                _ => {}
            }
        }
        OpSpec::Slice(p) => match *f {
            Field::Begin { axis, value } => p.begin[axis as usize % 3] = value,
            Field::Step { axis, value } => p.step[axis as usize % 3] = value,
            Field::OpTensor { which, value } => *[&mut p.input, &mut p.output][which as usize % 2] = value,
            _ => {}
        },
        OpSpec::Resize(p) => match *f {
            Field::Factor { h, w } => (p.factor_h, p.factor_w) = (h, w),
            Field::OpTensor { which, value } => *[&mut p.input, &mut p.output][which as usize % 2] = value,
            _ => {}
        },
        OpSpec::DepthToSpace(p) => match *f {
            Field::Factor { h, .. } => p.block = h,
            Field::OpTensor { which, value } => *[&mut p.input, &mut p.output][which as usize % 2] = value,
            _ => {}
        },
    }
}

#[test]
fn adversarial_fields_never_panic_and_run_as_specified_when_accepted() {
    let strategy = (valid_spec(), vec(field(), 1..4), any::<u64>());
    let outcomes = property("adversarial fields", 20_000, strategy, |(spec, fields, seed)| {
        let mut spec = spec.clone();
        for f in fields {
            edit(&mut spec, f);
        }
        (spec.encode(), *seed)
    });
    assert!(ran(&outcomes) > 2000, "too few adversarial models were accepted and run: {outcomes:?}");
    let rejected: u32 = outcomes.iter().filter(|(o, _)| matches!(o, Outcome::Rejected(_))).map(|(_, n)| n).sum();
    assert!(rejected > 5000, "too few adversarial models were rejected: {outcomes:?}");
}

/// The unmodified generators' models all load and match the naive model over the whole arena.
#[test]
fn valid_models_load_and_run_as_specified() {
    let outcomes = property("valid models", 3000, (valid_spec(), any::<u64>()), |(spec, seed)| (spec.encode(), *seed));
    assert_eq!(ran(&outcomes), 3000, "{outcomes:?}");
}

/// Chains of the format-5 ops all load and match the naive model over the whole arena (every
/// intermediate tensor too: each has its own bytes, except products written in place).
#[test]
fn chains_of_the_format_5_ops_load_and_run_as_specified() {
    let outcomes =
        property("format-5 chains", 2000, (chain_spec(), any::<u64>()), |(spec, seed)| (spec.encode(), *seed));
    assert_eq!(ran(&outcomes), 2000, "{outcomes:?}");
}

// ---------------------------------------------------------------------------------------------
// Hand-made cases, one per error

/// A valid conv: 1×4×4×3 int8 input at 0, 3×3 kernel, 1×2×2×2 int8 output at 48.
fn conv_model() -> ConvCase {
    ConvCase {
        depthwise: false,
        input: naive::Act { h: 4, w: 4, c: 3, values: (0..48).map(|v| v - 24).collect(), zero_point: 3 },
        in_bits: 8,
        geom: naive::Geom {
            kernel_h: 3,
            kernel_w: 3,
            stride_h: 1,
            stride_w: 1,
            pad_top: 0,
            pad_left: 0,
            out_h: 2,
            out_w: 2,
        },
        out_c: 2,
        weight_bits: 4,
        weights: (0..54).map(|v| v % 15 - 7).collect(),
        channels: naive::Channels {
            bias: vec![100, -100],
            multiplier: vec![1 << 29, 749_993_984],
            shift: vec![-3, -5],
        },
        out: OutQ { bits: 8, zero_point: -5, min: -128, max: 127 },
        real: None,
        place: Placement { perm: 0, gaps: [0; 4] },
        fill: 3,
    }
}

fn load_err(spec: &Spec) -> Option<Error> {
    Model::from_bytes(&spec.encode()).err()
}

#[test]
fn the_hand_made_conv_is_valid() {
    let case = conv_model();
    let spec = case.spec();
    assert_eq!(spec.tensors[1].offset, 48);
    // The op's scratch follows the tensors.
    assert_eq!(spec.arena_bytes, 56 + scratch_bytes(&spec.tensors, &spec.ops[0]) as u32);
    assert_eq!(exercise(&spec.encode(), 1), Outcome::Ran);
}

#[test]
fn truncated_blob_is_truncated() {
    let blob = conv_model().spec().encode();
    for keep in [0, 1, HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + 1, blob.len() - 1] {
        assert_eq!(Model::from_bytes(&blob[..keep]).err(), Some(Error::Truncated), "kept {keep} bytes");
    }
}

#[test]
fn bad_magic_is_bad_magic() {
    let mut blob = conv_model().spec().encode();
    blob[0] = b'h';
    assert_eq!(Model::from_bytes(&blob).err(), Some(Error::BadMagic));
}

#[test]
fn other_version_is_unsupported() {
    let blob = conv_model().spec().encode();
    for version in [0, FORMAT_VERSION + 1, u16::MAX] {
        let other = with_header(&blob[HEADER_BYTES..], arena_field(&blob), version);
        assert_eq!(Model::from_bytes(&other).err(), Some(Error::UnsupportedVersion { found: version }));
    }
}

#[test]
fn edited_body_fails_the_checksum() {
    let mut blob = conv_model().spec().encode();
    let last = blob.len() - 1;
    blob[last] ^= 1;
    assert!(matches!(Model::from_bytes(&blob), Err(Error::ChecksumMismatch { .. })));
    // With the CRC fixed up, the loader parses the body again.
    fix_up(&mut blob);
    assert!(!matches!(Model::from_bytes(&blob), Err(Error::ChecksumMismatch { .. })));
}

/// A header whose arena field claims 4 GiB: the checksum covers the header, so the edit is caught
/// before a host allocates by it; with the checksum recomputed, the loader refuses an arena the
/// tensors do not need.
#[test]
fn header_size_fields_are_checked_before_use() {
    let blob = conv_model().spec().encode();
    let needed = arena_field(&blob);
    let mut edited = blob.clone();
    edited[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(Model::from_bytes(&edited), Err(Error::ChecksumMismatch { .. })));
    let body = &blob[HEADER_BYTES..];
    let huge = with_header(body, u32::MAX, FORMAT_VERSION);
    assert_eq!(Model::from_bytes(&huge).err(), Some(Error::ArenaSizeMismatch { declared: u32::MAX, needed }));
    // Rounding up to the planner's alignment is allowed; beyond it is not.
    let rounded = (needed as u64).next_multiple_of(hawq_runtime::model::ARENA_ALIGNMENT_MAX) as u32;
    assert!(Model::from_bytes(&with_header(body, rounded, FORMAT_VERSION)).is_ok());
    let over = with_header(body, rounded + 1, FORMAT_VERSION);
    assert!(matches!(Model::from_bytes(&over), Err(Error::ArenaSizeMismatch { .. })));
}

#[test]
fn trailing_and_malformed_bodies() {
    let mut blob = conv_model().spec().encode();
    blob.push(0);
    fix_up(&mut blob);
    assert_eq!(Model::from_bytes(&blob).err(), Some(Error::TrailingBytes));
    let blob = conv_model().spec().encode();
    let cut = with_header(&blob[HEADER_BYTES..blob.len() - 3], arena_field(&blob), FORMAT_VERSION);
    assert_eq!(Model::from_bytes(&cut).err(), Some(Error::Malformed));
    let mut spec = conv_model().spec();
    spec.op_count = 0;
    spec.ops.clear();
    assert_eq!(load_err(&spec), Some(Error::EmptyModel));
}

/// The tensor table is a byte string of whole 16-byte records: one byte short or over (a
/// truncated or padded table), or a record with an unknown dtype byte, is malformed; a body cut
/// inside the table (its length prefix promises more than the body holds) too; one record fewer
/// leaves an op naming a tensor that does not exist.
#[test]
fn truncated_and_odd_length_tensor_tables_are_rejected() {
    let spec = conv_model().spec();
    let table = spec.table();
    assert_eq!(table.len(), 2 * TENSOR_RECORD_BYTES);
    assert!(Model::from_bytes(&spec.encode_with_table(&table)).is_ok());
    for cut in [1, TENSOR_RECORD_BYTES - 1, TENSOR_RECORD_BYTES + 1] {
        let short = spec.encode_with_table(&table[..table.len() - cut]);
        assert_eq!(Model::from_bytes(&short).err(), Some(Error::Malformed), "{cut} bytes short");
    }
    for extra in [1, 7, TENSOR_RECORD_BYTES - 1] {
        let mut long = table.clone();
        long.extend(std::iter::repeat_n(0u8, extra));
        assert_eq!(Model::from_bytes(&spec.encode_with_table(&long)).err(), Some(Error::Malformed), "{extra} over");
    }
    let one_fewer = spec.encode_with_table(&table[..TENSOR_RECORD_BYTES]);
    assert!(matches!(Model::from_bytes(&one_fewer), Err(Error::BadTensorIndex { .. })));
    // No table at all: the model's input is not a tensor.
    let empty = spec.encode_with_table(&[]);
    assert_eq!(Model::from_bytes(&empty).err(), Some(Error::BadTensorIndex { op: u16::MAX }));
    for dtype in [3u8, 0x80, 0xFF] {
        let mut bad = table.clone();
        bad[TENSOR_RECORD_BYTES + 15] = dtype;
        assert_eq!(Model::from_bytes(&spec.encode_with_table(&bad)).err(), Some(Error::Malformed), "dtype {dtype}");
        assert_eq!(Tensors::new(&bad).get(1), None);
        assert_eq!(Tensors::new(&bad).iter().count(), 1, "the iterator stops at the undecodable record");
    }
    // The body cut inside the table: the byte string's length runs past the body's end.
    let blob = spec.encode();
    for keep in [1, 2, 10, 1 + table.len() - 1] {
        let cut = with_header(&blob[HEADER_BYTES..HEADER_BYTES + keep], arena_field(&blob), FORMAT_VERSION);
        assert_eq!(Model::from_bytes(&cut).err(), Some(Error::Malformed), "body cut after {keep} bytes");
    }
}

/// More than 64 tensors (the fixed table of format version 3): a 130-op chain of reshapes and
/// residual adds over 131 tensors loads, every descriptor reads back as written, and it runs to
/// exactly what the naive model computes over the whole arena. The model's size does not depend
/// on the table.
#[test]
fn a_model_of_more_than_64_tensors_loads_and_runs_as_specified() {
    let spec = reshape_add_chain(130);
    assert_eq!(spec.tensors.len(), 131);
    let blob = spec.encode();
    let model = Model::from_bytes(&blob).expect("a 131-tensor model loads");
    assert_eq!(model.tensors().len(), 131);
    let records: Vec<_> = model.tensors().iter().map(|t| t.to_record()).collect();
    assert_eq!(records, spec.tensors.iter().map(TensorDesc::to_record).collect::<Vec<_>>());
    assert_eq!(model.tensor(130).map(|t| t.to_record()), Some(spec.tensors[130].to_record()));
    assert_eq!(model.tensor(131), None);
    for seed in 0..4 {
        assert_eq!(exercise(&blob, seed), Outcome::Ran);
    }
    // Two input patterns through the raw-input path give different outputs: the chain is live.
    let run = |x: u8| run_model(&blob, &[x; 8], &[], 7).expect("runs");
    assert_ne!(run(0x10), run(0xF0));
    // Two words of header fields, the meta (a table slice and a few scalars), the cached input
    // and output descriptors and the op slice: no table. (Version 3 held 64 descriptors, > 1 KiB.)
    assert!(std::mem::size_of::<Model<'_>>() <= 128, "{}", std::mem::size_of::<Model<'_>>());
}

/// The table's only limit is the `u16` tensor index: 65,535 records load; one more is
/// `TooManyTensors`.
#[test]
fn the_tensor_count_is_limited_by_the_u16_index_only() {
    let spec = conv_model().spec();
    let table = spec.table();
    let mut big = table.clone();
    // Copies of the input's record: in the arena, and unused by the op.
    while big.len() < MAX_TENSORS * TENSOR_RECORD_BYTES {
        big.extend_from_slice(&table[..TENSOR_RECORD_BYTES]);
    }
    let blob = spec.encode_with_table(&big);
    let model = Model::from_bytes(&blob).expect("65,535 tensors load");
    assert_eq!(model.tensors().len(), MAX_TENSORS);
    assert_eq!(model.tensor(u16::MAX - 1).map(|t| t.to_record()), Some(spec.tensors[0].to_record()));
    big.extend_from_slice(&table[..TENSOR_RECORD_BYTES]);
    assert_eq!(Model::from_bytes(&spec.encode_with_table(&big)).err(), Some(Error::TooManyTensors));
}

#[test]
fn tensor_outside_the_arena() {
    let mut spec = conv_model().spec();
    spec.arena_bytes = 55;
    assert_eq!(load_err(&spec), Some(Error::TensorOutOfArena { tensor: 1 }));
    let mut spec = conv_model().spec();
    spec.tensors[0].offset = u32::MAX - 10;
    spec.arena_bytes = u32::MAX;
    assert_eq!(load_err(&spec), Some(Error::TensorOutOfArena { tensor: 0 }));
    let mut spec = conv_model().spec();
    spec.scratch_offset = spec.arena_bytes - 6;
    spec.scratch_bytes = 7;
    assert_eq!(load_err(&spec), Some(Error::ScratchOutOfArena));
}

#[test]
fn arena_too_small_at_interpreter_new() {
    let blob = conv_model().spec().encode();
    let model = Model::from_bytes(&blob).unwrap();
    // The tensors end at 56, the op's scratch after them.
    let needed = 56 + scratch_bytes(&conv_model().spec().tensors, &conv_model().spec().ops[0]) as u32;
    assert_eq!(model.arena_bytes(), needed as usize);
    let mut arena = vec![0u8; needed as usize - 1];
    assert_eq!(Interpreter::new(&model, &mut arena).err(), Some(Error::ArenaTooSmall { needed, got: needed - 1 }));
    let mut arena = vec![0u8; needed as usize];
    assert!(Interpreter::new(&model, &mut arena).is_ok());
}

/// The loader's checks of an op's scratch: inside the arena, clear of the op's input and output
/// (errors, never a panic); anywhere else it may be, at any byte offset, and the model runs as
/// the naive model says.
#[test]
fn op_scratch_must_lie_in_the_arena_clear_of_its_input_and_output() {
    let spec = conv_model().spec();
    let bytes = scratch_bytes(&spec.tensors, &spec.ops[0]) as u32;
    assert!(bytes > 0);
    let with = |offset: u32, arena: u32| {
        let mut s = spec.clone();
        if let OpSpec::Conv2d(p) = &mut s.ops[0] {
            p.scratch = offset;
        }
        s.arena_bytes = arena;
        s
    };
    // At the end (the default), and one byte on: it runs (any alignment).
    assert_eq!(load_err(&with(56, 56 + bytes)), None);
    assert_eq!(exercise(&with(57, 57 + bytes).encode(), 3), Outcome::Ran);
    assert_eq!(exercise(&with(59, 59 + bytes).encode(), 4), Outcome::Ran);
    // One byte past the arena's end, or anywhere past it.
    assert_eq!(load_err(&with(57, 56 + bytes)), Some(Error::OpScratchOutOfArena { op: 0 }));
    assert_eq!(load_err(&with(u32::MAX - 3, 56 + bytes)), Some(Error::OpScratchOutOfArena { op: 0 }));
    // Over the input (bytes 0..48) or the output (48..56), by any amount.
    for offset in [0, 10, 47, 48, 55] {
        let want = Some(Error::ScratchOverlap { op: 0 });
        assert_eq!(load_err(&with(offset, 56 + bytes)), want, "scratch at {offset}");
    }
    // Before the input: the tensors moved up.
    let mut before = with(0, 56 + bytes);
    for t in &mut before.tensors {
        t.offset += bytes;
    }
    assert_eq!(exercise(&before.encode(), 5), Outcome::Ran);
    // An FC layer's scratch the same way.
    let mut fc = fc_model(64, [0, 0], 0);
    if let OpSpec::FullyConnected(p) = &mut fc.ops[0] {
        p.scratch = 0;
    }
    assert_eq!(load_err(&fc), Some(Error::ScratchOverlap { op: 0 }));
    if let OpSpec::FullyConnected(p) = &mut fc.ops[0] {
        p.scratch = fc.arena_bytes;
    }
    assert_eq!(load_err(&fc), Some(Error::OpScratchOutOfArena { op: 0 }));
    // The declared arena may not be larger than the tensors and the scratch need.
    assert_eq!(
        load_err(&with(56, (56 + bytes).next_multiple_of(64) + 1)),
        Some(Error::ArenaSizeMismatch { declared: (56 + bytes).next_multiple_of(64) + 1, needed: 56 + bytes })
    );
}

#[test]
fn bad_shapes_and_indices() {
    let mut spec = conv_model().spec();
    spec.tensors[1].shape[2] = 0;
    assert_eq!(load_err(&spec), Some(Error::BadShape { tensor: 1 }));
    let mut spec = conv_model().spec();
    spec.tensors[0].shape = [u16::MAX; 4];
    spec.arena_bytes = u32::MAX;
    assert_eq!(load_err(&spec), Some(Error::BadShape { tensor: 0 }));
    let mut spec = conv_model().spec();
    spec.output = 2;
    assert_eq!(load_err(&spec), Some(Error::BadTensorIndex { op: u16::MAX }));
    let mut spec = conv_model().spec();
    if let OpSpec::Conv2d(p) = &mut spec.ops[0] {
        p.output = 9;
    }
    assert_eq!(load_err(&spec), Some(Error::BadTensorIndex { op: 0 }));
    let mut spec = conv_model().spec();
    spec.tensors[1].shape[1] = 5; // the fifth output row's window starts below the input
    spec.arena_bytes = 48 + 20;
    assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }));
}

#[test]
fn kernel_larger_than_input() {
    // A 6×6 kernel over a 4×4 input with a 2×2 output: the windows reach 3 rows and columns into
    // the implicit bottom/right padding, which is below the kernel size, so the model is valid.
    let mut spec = conv_model().spec();
    if let OpSpec::Conv2d(p) = &mut spec.ops[0] {
        (p.kernel_h, p.kernel_w) = (6, 6);
        p.weights = (0..2 * (6 * 6 * 3usize).div_ceil(2)).map(|i| (i * 37) as u8).collect();
    }
    spec.place_scratch(0);
    assert_eq!(exercise(&spec.encode(), 4), Outcome::Ran);
    // With a third output row, that row's window would start below the input.
    let mut tall = spec.clone();
    tall.tensors[1].shape[1] = 5;
    tall.arena_bytes = 48 + 20;
    assert_eq!(load_err(&tall), Some(Error::ShapeMismatch { op: 0 }));
    // Padding equal to the kernel would put a whole window in the padding.
    let mut spec = conv_model().spec();
    if let OpSpec::Conv2d(p) = &mut spec.ops[0] {
        p.pad_top = 3;
    }
    assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }));
    // A stride of zero.
    let mut spec = conv_model().spec();
    if let OpSpec::Conv2d(p) = &mut spec.ops[0] {
        p.stride_w = 0;
    }
    assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }));
}

#[test]
fn wrong_array_lengths_are_weight_size_mismatches() {
    for which in 0..3 {
        for delta in [-1i8, 1] {
            let mut spec = conv_model().spec();
            if let OpSpec::Conv2d(p) = &mut spec.ops[0] {
                set_len([&mut p.weights, &mut p.bias, &mut p.multiplier][which], delta);
            }
            assert_eq!(load_err(&spec), Some(Error::WeightSizeMismatch { op: 0 }), "array {which} {delta:+}");
        }
    }
}

#[test]
fn parameters_out_of_range() {
    let mut spec = conv_model().spec();
    if let OpSpec::Conv2d(p) = &mut spec.ops[0] {
        p.weight_bits = 3;
    }
    assert_eq!(load_err(&spec), Some(Error::UnsupportedBits { op: 0 }));
    for shift in [-32i8, 31, i8::MIN, i8::MAX] {
        let mut spec = conv_model().spec();
        if let OpSpec::Conv2d(p) = &mut spec.ops[0] {
            p.shift_base = shift;
        }
        assert_eq!(load_err(&spec), Some(Error::BadParameter { op: 0 }), "shift {shift}");
    }
    // A channel's shift offset (the top 4 bits of its word) may not carry it past 30.
    for (base, word, ok) in [(15i8, 0xF800u16, true), (16, 0xF800, false), (-31, 0x0800, true), (-32, 0x1800, false)] {
        let mut spec = conv_model().spec();
        if let OpSpec::Conv2d(p) = &mut spec.ops[0] {
            p.shift_base = base;
            set_i16(&mut p.multiplier, 0, word as i16);
        }
        let want = if ok { None } else { Some(Error::BadParameter { op: 0 }) };
        assert_eq!(load_err(&spec), want, "base {base} word {word:#06x}");
    }
    let mut spec = conv_model().spec();
    if let OpSpec::Conv2d(p) = &mut spec.ops[0] {
        p.bias_exponent = 17;
    }
    assert_eq!(load_err(&spec), Some(Error::BadParameter { op: 0 }));
    let mut spec = conv_model().spec();
    if let OpSpec::Conv2d(p) = &mut spec.ops[0] {
        p.clamp = hawq_runtime::format::Clamp { min: 5, max: 4 };
    }
    assert_eq!(load_err(&spec), Some(Error::BadParameter { op: 0 }));
    // A 4-bit output's clamp must lie in −8..=7.
    let mut case = conv_model();
    case.out = OutQ { bits: 4, zero_point: 0, min: -8, max: 7 };
    let mut spec = case.spec();
    if let OpSpec::Conv2d(p) = &mut spec.ops[0] {
        p.clamp.max = 8;
    }
    assert_eq!(load_err(&spec), Some(Error::BadParameter { op: 0 }));
    let mut spec = conv_model().spec();
    spec.tensors[1].dtype = DType::F32;
    spec.arena_bytes = 48 + 32;
    assert_eq!(load_err(&spec), Some(Error::WrongDtype { op: 0 }));
}

/// An FC layer over `k` 8-bit inputs with 8-bit weights of 1 and two channels of biases
/// `b·2^e`.
fn fc_model(k: usize, biases: [i16; 2], e: u8) -> Spec {
    let mut spec = conv_model().spec();
    let fc = FcOwned {
        input: 0,
        output: 1,
        weight_bits: 8,
        weights: vec![1; 2 * k],
        bias: biases.iter().flat_map(|b| b.to_le_bytes()).collect(),
        bias_exponent: e,
        multiplier: multiplier_bytes(&[1 << 29, 1 << 29], &[0, 0]).0,
        shift_base: 0,
        clamp: hawq_runtime::format::Clamp { min: -128, max: 127 },
        scratch: 0,
    };
    spec.tensors[0] = tensor([1, 1, 2, k.div_ceil(2)], DType::I8, half::f16::from_f32(1.0), 0, 0);
    spec.tensors[1] = tensor([1, 1, 1, 2], DType::I8, half::f16::from_f32(1.0), 0, k.next_multiple_of(2) as u32);
    spec.ops = vec![OpSpec::FullyConnected(fc)];
    spec.place_scratch(0);
    spec
}

/// The accumulator bound of contract §3 is exact on the grid of representable biases: with
/// `K = 64` 8-bit weights and inputs the limit is `2^31 − 1 − 64·128·255`; the largest bias
/// `b·2^16` within it loads and runs, the next one (`(b + 1)·2^16`, still an `i16` `b`) is
/// rejected, on both signs.
#[test]
fn accumulator_bound_is_exact() {
    let k = 64;
    let limit = bias_limit(k, 8, 8);
    let b = (limit >> 16) as i16;
    assert!(((b as i64 + 1) << 16) > limit && b < i16::MAX);
    for (bias, ok) in [(b, true), (-b, true), (b + 1, false), (-b - 1, false)] {
        let spec = fc_model(k, [0, bias], 16);
        let err = load_err(&spec);
        if ok {
            assert_eq!(err, None, "bias {bias}·2^16");
            assert_eq!(exercise(&spec.encode(), 5), Outcome::Ran);
        } else {
            assert_eq!(err, Some(Error::AccumulatorOverflow { op: 0 }), "bias {bias}·2^16");
        }
    }
    // A layer whose weights alone could overflow: 8-bit weights and inputs, K = 66 000 > 2^31 / (128 · 255).
    assert_eq!(load_err(&fc_model(66_000, [0, 0], 0)), Some(Error::AccumulatorOverflow { op: 0 }));
}

/// Found by `adversarial_fields_never_panic_and_run_as_specified_when_accepted`: a 4-bit tensor
/// whose zero point lies outside −8..=7 passed the loader, although the accumulator bound of
/// contract §3 assumes |a − z| ≤ 15, so an accepted layer could overflow its i32 accumulator
/// (the reference kernel wrapped and saturated at the wrong end).
#[test]
fn four_bit_zero_point_outside_its_range_is_rejected() {
    let fc = |z: i32| {
        let tensors = vec![
            tensor([1, 1, 1, 1], DType::I4, half::f16::from_f32(1.0), z, 0),
            tensor([1, 1, 1, 1], DType::I8, half::f16::from_f32(1.0), 0, 1),
        ];
        let op = OpSpec::FullyConnected(FcOwned {
            input: 0,
            output: 1,
            weight_bits: 8,
            weights: vec![127],
            bias: i16::MAX.to_le_bytes().to_vec(),
            bias_exponent: 16,
            multiplier: multiplier_bytes(&[1 << 29], &[2]).0,
            shift_base: 2,
            clamp: hawq_runtime::format::Clamp { min: -128, max: 127 },
            scratch: 0,
        });
        let mut spec = Spec::one_op(tensors, 0, 1, RawInput::F32, op);
        spec.place_scratch(0);
        spec
    };
    // In range, the largest bias cannot overflow: (2^31 − 2^16) + 127·15 < 2^31.
    let ok = fc(-8).encode();
    assert_eq!(run_model(&ok, &[0x07], &[], 1), Ok(vec![127]));
    assert_eq!(exercise(&ok, 1), Outcome::Ran);
    // Out of range, the bound of §3 (|a − z| ≤ 15) would not hold.
    for (z, tensor) in [(-128, 0), (-9, 0), (8, 0), (31, 0)] {
        assert_eq!(load_err(&fc(z)), Some(Error::BadZeroPoint { tensor }), "zero point {z}");
    }
    let mut out_of_range_output = fc(0);
    out_of_range_output.tensors[1].dtype = DType::I4;
    out_of_range_output.tensors[1].zero_point = -9;
    if let OpSpec::FullyConnected(p) = &mut out_of_range_output.ops[0] {
        p.clamp = hawq_runtime::format::Clamp { min: -8, max: 7 };
    }
    assert_eq!(load_err(&out_of_range_output), Some(Error::BadZeroPoint { tensor: 1 }));
}

/// Found by `adversarial_fields_never_panic_and_run_as_specified_when_accepted`: softmax computes
/// `exp(s·(a − max))`, which is `exp` of a value ≤ 0 only when the input scale `s` is
/// non-negative. A negative, infinite or NaN scale passed the loader, and micromath's `exp` then
/// hit a debug assertion (`exponent <= 127`, a panic in debug builds; NaN bits in release) for
/// arguments in [88.72, 89.42) and for NaN: with `s = −1`, an element 89 below the row's maximum.
/// Log-softmax takes the same `exp` and is held to the same rule.
#[test]
fn softmax_input_scale_must_be_finite_and_non_negative() {
    for kind in [FloatOp::Softmax, FloatOp::LogSoftmax] {
        let softmax = |scale: half::f16| {
            let tensors = vec![
                tensor([1, 1, 1, 2], DType::I8, scale, 0, 0),
                tensor([1, 1, 1, 2], DType::F32, half::f16::from_f32(1.0), 0, 2),
            ];
            let op = kind.spec(hawq_runtime::format::UnaryParams { input: 0, output: 1 });
            Spec::one_op(tensors, 0, 1, RawInput::I8, op)
        };
        let input = [0u8, 89];
        for bad in [half::f16::from_f32(-1.0), half::f16::NAN, half::f16::INFINITY, half::f16::NEG_INFINITY] {
            assert_eq!(load_err(&softmax(bad)), Some(Error::BadParameter { op: 0 }), "{kind:?} scale {bad}");
        }
        for ok in
            [half::f16::ZERO, half::f16::NEG_ZERO, half::f16::MAX, half::f16::MIN_POSITIVE_SUBNORMAL, half::f16::ONE]
        {
            let blob = softmax(ok).encode();
            let got = run_model(&blob, &input, &[], 1).unwrap();
            let want = kind.naive(&[0, 89], 0, ok.to_f32(), 2);
            assert_eq!(got, le_f32s(&want), "{kind:?} scale {ok}");
            assert!(want.iter().all(|v| v.is_finite()), "{kind:?} scale {ok}: {want:?}");
            assert_eq!(exercise(&blob, 3), Outcome::Ran);
        }
    }
}

#[test]
fn overlapping_conv_input_and_output() {
    for offset in [0u32, 1, 47, 20] {
        let mut spec = conv_model().spec();
        spec.tensors[1].offset = offset;
        assert_eq!(load_err(&spec), Some(Error::OverlappingTensors { op: 0 }), "output at {offset}");
    }
    // Adjacent is fine.
    let mut spec = conv_model().spec();
    spec.tensors[1].offset = 48;
    assert_eq!(load_err(&spec), None);
}

/// A reshape is a view of its input's bytes: at any other offset, overlapping or apart, it is
/// refused at load (the interpreter copies nothing).
#[test]
fn a_reshape_must_be_its_input_s_bytes() {
    let case = ReshapeCase {
        in_shape: [1, 2, 3, 2],
        out_shape: [1, 1, 1, 12],
        bits: 8,
        zero_point: -3,
        values: (0..12).map(|v| v * 9 - 50).collect(),
        place: Placement { perm: 0, gaps: [4, 0, 0, 0] },
        fill: 5,
    };
    let spec = case.spec();
    assert_eq!(spec.tensors[1].offset, spec.tensors[0].offset);
    assert_eq!(exercise(&spec.encode(), 1), Outcome::Ran);
    for offset in [0u32, 3, 5, 16, 40] {
        let mut moved = spec.clone();
        moved.tensors[1].offset = offset;
        moved.arena_bytes = moved.arena_bytes.max(offset + 12).next_multiple_of(16);
        assert_eq!(load_err(&moved), Some(Error::NotInPlace { op: 0 }), "output at {offset}");
    }
}

#[test]
fn add_may_alias_only_exactly() {
    let case = AddCase {
        shape: [1, 1, 3, 3],
        a: (0..9).map(|v| v - 4).collect(),
        a_q: ActQ { bits: 4, zero_point: 1 },
        b: (0..9).map(|v| 4 - v).collect(),
        b_q: ActQ { bits: 4, zero_point: -2 },
        multiplier_a: 1 << 30,
        multiplier_b: 1 << 29,
        shift: 1,
        out: OutQ { bits: 4, zero_point: 0, min: -8, max: 7 },
        alias: Alias::A,
        real: None,
        place: Placement { perm: 0, gaps: [0; 4] },
        fill: 9,
    };
    let spec = case.spec();
    assert_eq!(spec.tensors[2].offset, spec.tensors[0].offset);
    assert_eq!(exercise(&spec.encode(), 2), Outcome::Ran);
    // Off by one byte: a partial overlap.
    let mut shifted = spec.clone();
    shifted.tensors[2].offset += 1;
    shifted.arena_bytes += 1;
    assert_eq!(load_err(&shifted), Some(Error::OverlappingTensors { op: 0 }));
    // Same offset, other dtype.
    let mut other = spec;
    other.tensors[2].dtype = DType::I8;
    if let OpSpec::Add(p) = &mut other.ops[0] {
        p.clamp = hawq_runtime::format::Clamp { min: -128, max: 127 };
    }
    other.arena_bytes += 9;
    assert_eq!(load_err(&other), Some(Error::OverlappingTensors { op: 0 }));
}

// ---------------------------------------------------------------------------------------------
// Hand-made cases of the format-5 ops, one per error

const NO_GAPS: Placement = Placement { perm: 0, gaps: [0; 4] };

/// Declares the arena the tensors need after some were moved or resized.
fn fit_arena(spec: &mut Spec) {
    spec.arena_bytes = spec.tensors.iter().map(|t| t.offset + t.bytes() as u32).max().unwrap_or(0);
}

/// A per-channel lookup: 1×2×3×3 int8 input (zero point 3) at 0, int4 output (zero point −2)
/// at 18, three rows of 256 codes in −8..=7.
fn lut_model() -> LutCase {
    LutCase {
        shape: [1, 2, 3, 3],
        in_q: ActQ { bits: 8, zero_point: 3 },
        out_q: ActQ { bits: 4, zero_point: -2 },
        table: (0..3 * 256).map(|i| (i * 7) % 16 - 8).collect(),
        values: (0..18).map(|i| i * 13 - 110).collect(),
        place: NO_GAPS,
        fill: 1,
    }
}

/// A product with one `b` per channel: 1×2×3×3 int8 `a` (zero point −128) at 0, int4 `b`
/// `[1, 1, 1, 3]` (zero point 7) at 18, int8 output (zero point 5) at 20.
fn mul_model() -> MulCase {
    MulCase {
        shape: [1, 2, 3, 3],
        a: (0..18).map(|i| i * 15 - 128).collect(),
        a_q: ActQ { bits: 8, zero_point: -128 },
        b: vec![-8, 0, 7],
        b_q: ActQ { bits: 4, zero_point: 7 },
        broadcast: true,
        multiplier: 1 << 30,
        shift: -4,
        out: OutQ { bits: 8, zero_point: 5, min: -128, max: 127 },
        in_place: false,
        real: None,
        place: NO_GAPS,
        fill: 2,
    }
}

/// [`mul_model`] with a `b` of the output's shape (int4 at 18, the output at 27).
fn mul_same_shape_model() -> MulCase {
    MulCase { broadcast: false, b: (0..18).map(|i| i % 16 - 8).collect(), ..mul_model() }
}

/// Three parts over 2×2 positions into a 4-bit output: int8 `[1, 2, 2, 1]` (zero point 0) at 0,
/// int4 `[1, 2, 2, 2]` (zero point −3) at 4, int8 `[1, 2, 2, 3]` (zero point 100) at 8, output
/// int4 `[1, 2, 2, 6]` (zero point 1) at 20.
fn concat_model() -> ConcatCase {
    let act = |c: usize, zero_point: i32, f: fn(i32) -> i32| naive::Act {
        h: 2,
        w: 2,
        c,
        values: (0..4 * c as i32).map(f).collect(),
        zero_point,
    };
    let part = |x: naive::Act, multiplier: i32, shift: i8| naive::Part { x, multiplier, shift };
    ConcatCase {
        parts: vec![
            (part(act(1, 0, |i| i * 30 - 100), 1 << 30, -3), 8),
            (part(act(2, -3, |i| i - 8), 3 << 29, 1), 4),
            (part(act(3, 100, |i| 127 - i * 20), 1 << 30, -2), 8),
        ],
        out: ActQ { bits: 4, zero_point: 1 },
        real: None,
        place: NO_GAPS,
        fill: 3,
    }
}

fn move_model(kind: Move, h: usize, w: usize, c: usize, bits: u32, zero_point: i32) -> MoveCase {
    let (lo, hi) = act_range(bits);
    let span = hi - lo + 1;
    let values = (0..(h * w * c) as i32).map(|i| lo + (i * 7) % span).collect();
    MoveCase {
        kind,
        input: naive::Act { h, w, c, values, zero_point },
        bits,
        scale: half::f16::from_f32(0.25),
        place: NO_GAPS,
        fill: 4,
    }
}

/// Rows 1 and 3, columns 0 and 3, channels 2..=6 of an int8 `[1, 5, 6, 7]` (zero point −7) at
/// 0, into `[1, 2, 2, 5]` at 210.
fn slice_model() -> MoveCase {
    move_model(Move::Slice { begin: [1, 0, 2], step: [2, 3, 1], out: (2, 2, 5) }, 5, 6, 7, 8, -7)
}

/// An int4 `[1, 2, 3, 3]` (zero point −8) at 0 upsampled by 2×3 into `[1, 4, 9, 3]` at 9.
fn resize_model() -> MoveCase {
    move_model(Move::Resize { fh: 2, fw: 3 }, 2, 3, 3, 4, -8)
}

/// An int8 `[1, 2, 3, 12]` (zero point 127) at 0, block 2, into `[1, 4, 6, 3]` at 72.
fn depth_to_space_model() -> MoveCase {
    move_model(Move::DepthToSpace { block: 2 }, 2, 3, 12, 8, 127)
}

/// Every hand-made model of this section, named.
fn format_5_models() -> Vec<(&'static str, Spec)> {
    vec![
        ("lut", lut_model().spec()),
        ("mul", mul_model().spec()),
        ("mul same shape", mul_same_shape_model().spec()),
        ("concat", concat_model().spec()),
        ("slice", slice_model().spec()),
        ("resize", resize_model().spec()),
        ("depth_to_space", depth_to_space_model().spec()),
    ]
}

#[test]
fn the_hand_made_format_5_models_are_valid() {
    assert_eq!(slice_model().spec().tensors[1].offset, 210);
    assert_eq!(resize_model().spec().tensors[1].offset, 9);
    assert_eq!(depth_to_space_model().spec().tensors[1].offset, 72);
    assert_eq!(concat_model().spec().tensors[3].offset, 20);
    assert_eq!(mul_model().spec().tensors[2].offset, 20);
    for (name, spec) in format_5_models() {
        assert_eq!(exercise(&spec.encode(), 1), Outcome::Ran, "{name}");
    }
}

/// Runs `spec` with `edit` applied to its only op.
fn edit_op_of(mut spec: Spec, edit: impl FnOnce(&mut OpSpec)) -> Spec {
    edit(&mut spec.ops[0]);
    spec
}

fn with_table(spec: Spec, table: Vec<u8>) -> Spec {
    edit_op_of(spec, |op| match op {
        OpSpec::Lut(p) => p.table = table,
        other => panic!("not a lookup: {other:?}"),
    })
}

/// A table holds `2^b` codes per row (`b` the input's bits) and one row or one per channel:
/// any other length is a `WeightSizeMismatch`, for 8- and 4-bit inputs alike.
#[test]
fn lut_table_of_the_wrong_length_is_a_weight_size_mismatch() {
    for in_bits in [8u32, 4] {
        let mut case = lut_model();
        case.in_q = ActQ { bits: in_bits, zero_point: 0 };
        let (lo, hi) = act_range(in_bits);
        case.values = (0..18).map(|i| (lo + i * 5).min(hi)).collect();
        let row = 1usize << in_bits;
        let other_row = if in_bits == 8 { 16 } else { 256 };
        for rows in [1, 3] {
            let spec = with_table(case.spec(), (0..rows * row).map(|i| (i % 8) as u8).collect());
            assert_eq!(exercise(&spec.encode(), rows as u64), Outcome::Ran, "{in_bits}-bit input, {rows} rows");
        }
        for len in [0, 1, row - 1, row + 1, 2 * row, 3 * row - 1, 3 * row + 1, 4 * row, other_row, 3 * other_row] {
            let spec = with_table(case.spec(), vec![0; len]);
            assert_eq!(
                load_err(&spec),
                Some(Error::WeightSizeMismatch { op: 0 }),
                "{in_bits}-bit input, {len} entries"
            );
        }
    }
}

/// Every entry is an output code: a 4-bit output's table may hold only −8..=7.
#[test]
fn lut_entries_outside_the_output_range_are_bad_parameters() {
    for (out_bits, entry, ok) in [
        (4u32, 7i8, true),
        (4, -8, true),
        (4, 8, false),
        (4, -9, false),
        (4, i8::MAX, false),
        (4, i8::MIN, false),
        (8, i8::MAX, true),
        (8, i8::MIN, true),
    ] {
        for index in [0, 517, 3 * 256 - 1] {
            let mut case = lut_model();
            case.out_q = ActQ { bits: out_bits, zero_point: 0 };
            case.table[index] = entry as i32;
            let spec = case.spec();
            if ok {
                assert_eq!(exercise(&spec.encode(), index as u64), Outcome::Ran, "{out_bits}-bit output, {entry}");
            } else {
                let want = Some(Error::BadParameter { op: 0 });
                assert_eq!(load_err(&spec), want, "{out_bits}-bit output, entry {entry} at {index}");
            }
        }
    }
}

#[test]
fn lut_input_and_output_are_disjoint_quantized_tensors_of_one_shape() {
    let mut case = lut_model();
    case.out_q = ActQ { bits: 8, zero_point: 0 };
    // Not even in place: same offset, dtype and size.
    for offset in [0u32, 1, 17] {
        let mut spec = case.spec();
        spec.tensors[1].offset = offset;
        fit_arena(&mut spec);
        assert_eq!(load_err(&spec), Some(Error::OverlappingTensors { op: 0 }), "output at {offset}");
    }
    let mut spec = lut_model().spec();
    spec.tensors[1].shape = [1, 3, 2, 3];
    assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }));
    let mut spec = lut_model().spec();
    spec.tensors[1].dtype = DType::F32;
    fit_arena(&mut spec);
    assert_eq!(load_err(&spec), Some(Error::WrongDtype { op: 0 }));
}

/// `b` has the output's shape or `[1, 1, 1, C]`; `a` has the output's shape.
#[test]
fn mul_b_must_have_the_output_shape_or_one_value_per_channel() {
    for (shape, ok) in [
        ([1, 1, 1, 3], true),
        ([1, 2, 3, 3], true),
        ([1, 1, 1, 1], false),
        ([1, 1, 1, 2], false),
        ([1, 1, 1, 4], false),
        ([1, 1, 3, 3], false),
        ([1, 2, 1, 3], false),
        ([1, 2, 3, 1], false),
        ([1, 3, 2, 3], false),
        ([1, 1, 1, 18], false),
        ([3, 1, 1, 1], false),
        ([2, 1, 1, 3], false),
    ] {
        let mut spec = mul_model().spec();
        spec.tensors[1].shape = shape;
        spec.tensors[1].offset = 38;
        fit_arena(&mut spec);
        if ok {
            assert_eq!(exercise(&spec.encode(), 5), Outcome::Ran, "b {shape:?}");
        } else {
            assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }), "b {shape:?}");
        }
    }
    let mut spec = mul_model().spec();
    spec.tensors[0].shape = [1, 3, 2, 3];
    assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }));
    let mut spec = mul_model().spec();
    spec.tensors[1].dtype = DType::F32;
    spec.tensors[1].offset = 38;
    fit_arena(&mut spec);
    assert_eq!(load_err(&spec), Some(Error::WrongDtype { op: 0 }));
}

/// The product is written element by element after both factors are read, so the output may be
/// `a` itself (same offset, dtype and size), never `b` (which, one value per channel, is read
/// again after its bytes would have been overwritten), and nothing partly.
#[test]
fn mul_may_write_over_a_exactly_but_never_over_b() {
    // a at 0..18, b at 18..20, output at 20..38.
    let mut in_place = mul_model().spec();
    in_place.tensors[2].offset = 0;
    fit_arena(&mut in_place);
    assert_eq!(exercise(&in_place.encode(), 6), Outcome::Ran);
    // Partly over a, or over a with another dtype (another size).
    let mut partly = in_place.clone();
    partly.tensors[2].offset = 1;
    fit_arena(&mut partly);
    assert_eq!(load_err(&partly), Some(Error::OverlappingTensors { op: 0 }));
    let mut other_dtype = in_place.clone();
    other_dtype.tensors[2].dtype = DType::I4;
    if let OpSpec::Mul(p) = &mut other_dtype.ops[0] {
        p.clamp = hawq_runtime::format::Clamp { min: -8, max: 7 };
    }
    other_dtype.tensors[2].zero_point = 0;
    assert_eq!(load_err(&other_dtype), Some(Error::OverlappingTensors { op: 0 }));
    // b overlapping the output anywhere; adjacent on either side is fine.
    for (offset, ok) in [(17u32, true), (18, true), (19, false), (20, false), (36, false), (37, false), (38, true)] {
        // At 17, b shares a byte with a, which is only read: allowed.
        let mut spec = mul_model().spec();
        spec.tensors[1].offset = offset;
        fit_arena(&mut spec);
        if ok {
            assert_eq!(exercise(&spec.encode(), offset as u64), Outcome::Ran, "b at {offset}");
        } else {
            assert_eq!(load_err(&spec), Some(Error::OverlappingTensors { op: 0 }), "b at {offset}");
        }
    }
    // b exactly the output's bytes, with the output's shape and dtype.
    let mut spec = mul_same_shape_model().spec();
    let out = spec.tensors[2];
    spec.tensors[1] = TensorDesc { zero_point: 0, ..out };
    assert_eq!(load_err(&spec), Some(Error::OverlappingTensors { op: 0 }));
    // x·x: into its own output it runs; in place over x it would overwrite b.
    let square = edit_op_of(mul_same_shape_model().spec(), |op| {
        if let OpSpec::Mul(p) = op {
            p.b = p.a;
        }
    });
    assert_eq!(exercise(&square.encode(), 7), Outcome::Ran);
    let mut square_in_place = square;
    square_in_place.tensors[2].offset = 0;
    assert_eq!(load_err(&square_in_place), Some(Error::OverlappingTensors { op: 0 }));
}

#[test]
fn mul_parameters_out_of_range() {
    let mul = |f: &dyn Fn(&mut hawq_runtime::format::MulParams)| {
        edit_op_of(mul_model().spec(), |op| {
            if let OpSpec::Mul(p) = op {
                f(p)
            }
        })
    };
    for shift in [-32i8, 31, i8::MIN, i8::MAX] {
        assert_eq!(load_err(&mul(&|p| p.shift = shift)), Some(Error::BadParameter { op: 0 }), "shift {shift}");
    }
    for shift in [-31i8, 30] {
        assert_eq!(exercise(&mul(&|p| p.shift = shift).encode(), 8), Outcome::Ran, "shift {shift}");
    }
    for m in [-1, i32::MIN] {
        assert_eq!(load_err(&mul(&|p| p.multiplier = m)), Some(Error::BadParameter { op: 0 }), "multiplier {m}");
    }
    for m in [0, i32::MAX] {
        assert_eq!(exercise(&mul(&|p| p.multiplier = m).encode(), 9), Outcome::Ran, "multiplier {m}");
    }
    let clamp = |min, max| hawq_runtime::format::Clamp { min, max };
    assert_eq!(load_err(&mul(&|p| p.clamp = clamp(5, 4))), Some(Error::BadParameter { op: 0 }));
    // A 4-bit output's clamp lies in −8..=7.
    let mut case = mul_model();
    case.out = OutQ { bits: 4, zero_point: 0, min: -8, max: 7 };
    assert_eq!(exercise(&case.spec().encode(), 10), Outcome::Ran);
    for (min, max) in [(-9, 7), (-8, 8), (-128, 127)] {
        case.out.min = min;
        case.out.max = max;
        assert_eq!(load_err(&case.spec()), Some(Error::BadParameter { op: 0 }), "clamp {min}..={max}");
    }
}

fn with_parts(spec: Spec, parts: Vec<u8>) -> Spec {
    edit_op_of(spec, |op| match op {
        OpSpec::Concat(p) => p.parts = parts,
        other => panic!("not a concatenation: {other:?}"),
    })
}

fn concat_part(tensor: u16, multiplier: i32, shift: i8) -> hawq_runtime::format::ConcatPart {
    hawq_runtime::format::ConcatPart { tensor, multiplier, shift }
}

/// One to eight parts of whole 8-byte records: none, nine, or a record cut short or padded is a
/// `BadParameter`.
#[test]
fn concat_takes_one_to_eight_whole_part_records() {
    let spec = concat_model().spec();
    let parts = match &spec.ops[0] {
        OpSpec::Concat(p) => p.parts.clone(),
        _ => unreachable!(),
    };
    assert_eq!(parts.len(), 24);
    assert_eq!(load_err(&with_parts(spec.clone(), Vec::new())), Some(Error::BadParameter { op: 0 }));
    for len in [1, 7, 9, 15, 17, 23, 25, 31] {
        let mut p = parts.clone();
        p.resize(len, 0);
        assert_eq!(load_err(&with_parts(spec.clone(), p)), Some(Error::BadParameter { op: 0 }), "{len} bytes");
    }
    // Part 0 (one channel) n times into an output of n channels: 1..=8 run, 9 and 10 do not.
    for n in 1..=10u16 {
        let mut spec =
            with_parts(spec.clone(), ConcatOwned::new(3, &vec![concat_part(0, 1 << 30, 1); n as usize]).parts);
        spec.tensors[3].shape = [1, 2, 2, n];
        fit_arena(&mut spec);
        if n <= 8 {
            assert_eq!(exercise(&spec.encode(), n as u64), Outcome::Ran, "{n} parts");
        } else {
            assert_eq!(load_err(&spec), Some(Error::BadParameter { op: 0 }), "{n} parts");
        }
    }
}

/// Every part has the output's height and width, the parts' channels add up to the output's,
/// and every tensor is quantized and exists.
#[test]
fn concat_parts_must_fit_the_output() {
    for shape in [[1, 1, 2, 2], [1, 2, 1, 2], [1, 1, 4, 2], [1, 4, 1, 2], [2, 1, 2, 2], [2, 2, 2, 1]] {
        let mut spec = concat_model().spec();
        spec.tensors[1].shape = shape;
        assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }), "part 1 {shape:?}");
    }
    for c in [1u16, 5, 7, 12] {
        let mut spec = concat_model().spec();
        spec.tensors[3].shape[3] = c;
        fit_arena(&mut spec);
        assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }), "output of {c} channels");
    }
    let mut spec = concat_model().spec();
    spec.tensors[2].dtype = DType::F32;
    spec.tensors[2].offset = 32;
    fit_arena(&mut spec);
    assert_eq!(load_err(&spec), Some(Error::WrongDtype { op: 0 }));
    let mut spec = concat_model().spec();
    spec.tensors[3].dtype = DType::F32;
    fit_arena(&mut spec);
    assert_eq!(load_err(&spec), Some(Error::WrongDtype { op: 0 }));
    let parts =
        ConcatOwned::new(3, &[concat_part(0, 1 << 30, 0), concat_part(1, 1 << 30, 0), concat_part(4, 1 << 30, 0)]);
    assert_eq!(load_err(&with_parts(concat_model().spec(), parts.parts)), Some(Error::BadTensorIndex { op: 0 }));
    let mut spec = concat_model().spec();
    if let OpSpec::Concat(p) = &mut spec.ops[0] {
        p.output = 4;
    }
    assert_eq!(load_err(&spec), Some(Error::BadTensorIndex { op: 0 }));
}

#[test]
fn concat_part_parameters_out_of_range() {
    let with_part_1 = |multiplier: i32, shift: i8| {
        let parts = [concat_part(0, 1 << 30, -3), concat_part(1, multiplier, shift), concat_part(2, 1 << 30, -2)];
        with_parts(concat_model().spec(), ConcatOwned::new(3, &parts).parts)
    };
    for shift in [-32i8, 31, i8::MIN, i8::MAX] {
        assert_eq!(load_err(&with_part_1(1 << 30, shift)), Some(Error::BadParameter { op: 0 }), "shift {shift}");
    }
    for m in [-1, i32::MIN] {
        assert_eq!(load_err(&with_part_1(m, 0)), Some(Error::BadParameter { op: 0 }), "multiplier {m}");
    }
    for (m, shift) in [(0, 0), (i32::MAX, 30), (i32::MAX, -31), (1, 30)] {
        assert_eq!(exercise(&with_part_1(m, shift).encode(), 11), Outcome::Ran, "multiplier {m}, shift {shift}");
    }
}

/// The parts are only read: they may overlap each other, never the output.
#[test]
fn concat_parts_may_not_overlap_the_output() {
    // Parts at 0..4, 4..8 and 8..20; the output at 20..32.
    for (offset, ok) in [(8u32, true), (19, false), (20, false), (31, false), (32, true)] {
        let mut spec = concat_model().spec();
        spec.tensors[2].offset = offset;
        fit_arena(&mut spec);
        if ok {
            assert_eq!(exercise(&spec.encode(), offset as u64), Outcome::Ran, "part 2 at {offset}");
        } else {
            assert_eq!(load_err(&spec), Some(Error::OverlappingTensors { op: 0 }), "part 2 at {offset}");
        }
    }
    let mut spec = concat_model().spec();
    spec.tensors[3].offset = 0;
    assert_eq!(load_err(&spec), Some(Error::OverlappingTensors { op: 0 }), "output over part 0");
    // The output as one of its own parts (its channels added up as if it were another input).
    let mut spec = concat_model().spec();
    let parts = [concat_part(0, 1 << 30, 0), concat_part(3, 1 << 30, 0)];
    spec.tensors[3].shape[3] = 7;
    fit_arena(&mut spec);
    assert_eq!(
        load_err(&with_parts(spec, ConcatOwned::new(3, &parts).parts)),
        Some(Error::OverlappingTensors { op: 0 })
    );
    // Parts 0 and 1 sharing bytes.
    let mut spec = concat_model().spec();
    spec.tensors[1].offset = 0;
    assert_eq!(exercise(&spec.encode(), 12), Outcome::Ran);
}

fn with_slice(begin: [u16; 3], step: [u16; 3], out: [u16; 4]) -> Spec {
    let mut spec = slice_model().spec();
    spec.tensors[1].shape = out;
    fit_arena(&mut spec);
    edit_op_of(spec, |op| {
        if let OpSpec::Slice(p) = op {
            (p.begin, p.step) = (begin, step);
        }
    })
}

/// The last element read along each axis, `begin + (n − 1)·step`, lies inside the input; a step
/// of 0 is refused even for one element.
#[test]
fn slice_must_stay_inside_its_input() {
    // Input [1, 5, 6, 7]; output [1, 2, 2, 5] unless stated.
    let out = [1, 2, 2, 5];
    for (begin, step, ok) in [
        ([2, 0, 2], [2, 3, 1], true),
        ([3, 0, 2], [2, 3, 1], false),
        ([0, 0, 2], [4, 3, 1], true),
        ([1, 0, 2], [4, 3, 1], false),
        ([1, 2, 2], [2, 3, 1], true),
        ([1, 3, 2], [2, 3, 1], false),
        ([1, 0, 2], [2, 5, 1], true),
        ([1, 0, 2], [2, 6, 1], false),
        ([1, 0, 2], [2, 3, 1], true),
        ([1, 0, 3], [2, 3, 1], false),
        ([1, 0, 0], [2, 3, 2], false),
        ([0, 0, 0], [0, 3, 1], false),
        ([0, 0, 0], [2, 0, 1], false),
        ([0, 0, 0], [2, 3, 0], false),
        ([u16::MAX, 0, 0], [1, 1, 1], false),
        ([0, 0, 0], [u16::MAX, 1, 1], false),
        ([u16::MAX, u16::MAX, u16::MAX], [u16::MAX, u16::MAX, u16::MAX], false),
    ] {
        let spec = with_slice(begin, step, out);
        if ok {
            assert_eq!(exercise(&spec.encode(), 13), Outcome::Ran, "begin {begin:?} step {step:?}");
        } else {
            assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }), "begin {begin:?} step {step:?}");
        }
    }
    // One element per axis: any step ≥ 1 reads only `begin`; a step of 0 is still refused.
    assert_eq!(exercise(&with_slice([4, 5, 6], [9, 9, 9], [1, 1, 1, 1]).encode(), 14), Outcome::Ran);
    for axis in 0..3 {
        let mut step = [1, 1, 1];
        step[axis] = 0;
        let spec = with_slice([0, 0, 0], step, [1, 1, 1, 1]);
        assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }), "step 0 on axis {axis}");
    }
    // An output longer than the input along an axis, with step 1.
    for out in [[1, 6, 1, 1], [1, 1, 7, 1], [1, 1, 1, 8], [2, 1, 1, 1]] {
        let spec = with_slice([0, 0, 0], [1, 1, 1], out);
        assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }), "output {out:?}");
    }
}

fn with_resize(factor_h: u8, factor_w: u8, out: [u16; 4]) -> Spec {
    let mut spec = resize_model().spec();
    spec.tensors[1].shape = out;
    fit_arena(&mut spec);
    edit_op_of(spec, |op| {
        if let OpSpec::Resize(p) = op {
            (p.factor_h, p.factor_w) = (factor_h, factor_w);
        }
    })
}

/// The output is the input's height and width times the factors, its channels unchanged.
#[test]
fn resize_factors_must_be_positive_and_give_the_output_shape() {
    // Input [1, 2, 3, 3].
    for (fh, fw, out, ok) in [
        (2u8, 3u8, [1u16, 4, 9, 3], true),
        (1, 1, [1, 2, 3, 3], true),
        (4, 1, [1, 8, 3, 3], true),
        (1, 4, [1, 2, 12, 3], true),
        (0, 3, [1, 4, 9, 3], false),
        (2, 0, [1, 4, 9, 3], false),
        (0, 0, [1, 2, 3, 3], false),
        (0, 0, [1, 1, 1, 3], false),
        (3, 2, [1, 4, 9, 3], false),
        (2, 3, [1, 5, 9, 3], false),
        (2, 3, [1, 4, 8, 3], false),
        (2, 3, [1, 4, 9, 2], false),
        (2, 3, [1, 4, 9, 4], false),
        (2, 3, [2, 4, 9, 3], false),
        (255, 255, [1, 4, 9, 3], false),
        (255, 255, [1, 510, 765, 3], true),
    ] {
        let spec = with_resize(fh, fw, out);
        if ok {
            assert_eq!(exercise(&spec.encode(), 15), Outcome::Ran, "factors {fh}×{fw} into {out:?}");
        } else {
            assert_eq!(load_err(&spec), Some(Error::ShapeMismatch { op: 0 }), "factors {fh}×{fw} into {out:?}");
        }
    }
}

fn with_block(block: u8, in_c: u16, out: [u16; 4]) -> Spec {
    let mut spec = depth_to_space_model().spec();
    spec.tensors[0].shape[3] = in_c;
    spec.tensors[1].shape = out;
    spec.tensors[1].offset = spec.tensors[0].bytes() as u32;
    fit_arena(&mut spec);
    edit_op_of(spec, |op| {
        if let OpSpec::DepthToSpace(p) = op {
            p.block = block;
        }
    })
}

/// The block divides the channels as `b²` and the output is `[1, H·b, W·b, C/b²]`.
#[test]
fn depth_to_space_block_must_divide_the_channels_and_give_the_output_shape() {
    // Input [1, 2, 3, C].
    for (block, in_c, out, ok) in [
        (2u8, 12u16, [1u16, 4, 6, 3], true),
        (3, 18, [1, 6, 9, 2], true),
        (1, 12, [1, 2, 3, 12], true),
        (3, 9, [1, 6, 9, 1], true),
        (0, 12, [1, 4, 6, 3], false),
        (0, 12, [1, 2, 3, 12], false),
        (0, 12, [1, 1, 1, 1], false),
        (3, 12, [1, 6, 9, 1], false),
        (2, 13, [1, 4, 6, 3], false),
        (2, 6, [1, 4, 6, 1], false),
        (2, 12, [1, 4, 6, 2], false),
        (2, 12, [1, 4, 6, 4], false),
        (2, 12, [1, 6, 4, 3], false),
        (2, 12, [1, 2, 3, 12], false),
        (2, 12, [2, 4, 6, 3], false),
        (255, 12, [1, 4, 6, 3], false),
    ] {
        let spec = with_block(block, in_c, out);
        if ok {
            assert_eq!(exercise(&spec.encode(), 16), Outcome::Ran, "block {block}, {in_c} channels into {out:?}");
        } else {
            let want = Some(Error::ShapeMismatch { op: 0 });
            assert_eq!(load_err(&spec), want, "block {block}, {in_c} channels into {out:?}");
        }
    }
}

/// Slice, resize and depth-to-space move codes unchanged: the output has the input's dtype,
/// scale and zero point (`WrongDtype` otherwise), both are quantized, and they are disjoint.
#[test]
fn element_moves_keep_their_input_quantization_and_do_not_overlap() {
    for (name, spec) in [
        ("slice", slice_model().spec()),
        ("resize", resize_model().spec()),
        ("depth_to_space", depth_to_space_model().spec()),
    ] {
        let (input, output) = (spec.tensors[0], spec.tensors[1]);
        let (lo, hi) = act_range(input.dtype.bits().unwrap().get());
        let other_zero_point = if input.zero_point as i32 == hi { lo } else { input.zero_point as i32 + 1 } as i8;
        let other_dtype = if input.dtype == DType::I8 { DType::I4 } else { DType::I8 };
        let edits: [(&str, TensorDesc); 6] = [
            ("zero point", TensorDesc { zero_point: other_zero_point, ..output }),
            ("scale", TensorDesc { scale: half::f16::from_f32(0.5), ..output }),
            ("scale sign", TensorDesc { scale: half::f16::from_f32(-0.25), ..output }),
            ("dtype", TensorDesc { dtype: other_dtype, zero_point: 0, ..output }),
            ("f32 output", TensorDesc { dtype: DType::F32, ..output }),
            (
                "input's zero point, other scale",
                TensorDesc { scale: half::f16::from_bits(input.scale.to_bits() + 1), ..output },
            ),
        ];
        for (what, t) in edits {
            let mut s = spec.clone();
            s.tensors[1] = t;
            fit_arena(&mut s);
            assert_eq!(load_err(&s), Some(Error::WrongDtype { op: 0 }), "{name}: {what}");
        }
        // The input f32 too (as a second tensor; the model's input stays quantized).
        let mut s = spec.clone();
        s.tensors.push(TensorDesc { dtype: DType::F32, offset: s.arena_bytes, ..input });
        s.tensors[1].dtype = DType::F32;
        s.tensors[1].offset = s.arena_bytes + s.tensors[2].bytes() as u32;
        fit_arena(&mut s);
        let s = edit_op_of(s, |op| match op {
            OpSpec::Slice(p) => p.input = 2,
            OpSpec::Resize(p) => p.input = 2,
            OpSpec::DepthToSpace(p) => p.input = 2,
            _ => unreachable!(),
        });
        assert_eq!(load_err(&s), Some(Error::WrongDtype { op: 0 }), "{name}: f32 input and output");
        for offset in [0u32, 1, input.bytes() as u32 - 1] {
            let mut s = spec.clone();
            s.tensors[1].offset = offset;
            fit_arena(&mut s);
            assert_eq!(load_err(&s), Some(Error::OverlappingTensors { op: 0 }), "{name}: output at {offset}");
        }
    }
}

/// Each input of each hand-made format-5 model placed at every offset around its output: the
/// loader refuses exactly the overlapping placements (`OverlappingTensors`), except a product's
/// output written over `a` exactly, and every placement it accepts runs as the naive model says.
#[test]
fn format_5_inputs_overlap_their_output_nowhere_but_in_place() {
    for (name, spec) in format_5_models() {
        let out_index = spec.ops[0].op().output() as usize;
        let inputs: std::collections::BTreeSet<u16> = spec.ops[0].op().inputs().into_iter().collect();
        let (a, is_mul) = match &spec.ops[0] {
            OpSpec::Mul(p) => (p.a as usize, true),
            _ => (usize::MAX, false),
        };
        for &k in &inputs {
            let k = k as usize;
            let (in_bytes, out_bytes) = (spec.tensors[k].bytes() as i64, spec.tensors[out_index].bytes() as i64);
            let mut accepted = 0;
            for delta in -in_bytes - 1..=out_bytes + 1 {
                let mut s = spec.clone();
                for t in &mut s.tensors {
                    t.offset += in_bytes as u32 + 1;
                }
                let at = s.tensors[out_index].offset as i64 + delta;
                s.tensors[k].offset = at as u32;
                fit_arena(&mut s);
                let (i, o) = (region(&s.tensors[k]), region(&s.tensors[out_index]));
                let overlaps = i.start < o.end && o.start < i.end;
                let in_place = is_mul && k == a && i == o && s.tensors[k].dtype == s.tensors[out_index].dtype;
                if overlaps && !in_place {
                    let want = Some(Error::OverlappingTensors { op: 0 });
                    assert_eq!(load_err(&s), want, "{name}: input {k} at {delta:+} from the output");
                } else {
                    let seed = delta.unsigned_abs();
                    assert_eq!(exercise(&s.encode(), seed), Outcome::Ran, "{name}: input {k} at {delta:+}");
                    accepted += 1;
                }
            }
            // Adjacent or one byte apart on either side, and in place for a product's a.
            assert_eq!(accepted, 4 + (is_mul && k == a) as usize, "{name}: input {k}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds for the fuzzer

/// A fixed sample of valid models (the same every run). With `HAWQ_WRITE_FUZZ_SEEDS=1` they are
/// written to `runtime/fuzz/corpus/load_and_run/` as blobs and to
/// `runtime/fuzz/corpus/load_and_run_body/` as `arena_bytes (u32 LE) ++ body`, the input format of
/// the CRC-fixing target.
#[test]
fn fuzz_seeds_load_and_run() {
    let mut runner = TestRunner::deterministic();
    let strategy = valid_spec();
    let mut seeds = vec![conv_model().spec().encode()];
    for _ in 0..40 {
        let spec = strategy.new_tree(&mut runner).expect("tree").current();
        let blob = spec.encode();
        if blob.len() <= 4096 {
            seeds.push(blob);
        }
    }
    assert!(seeds.len() >= 24);
    for (i, blob) in seeds.iter().enumerate() {
        assert_eq!(exercise(blob, i as u64), Outcome::Ran, "seed {i}");
    }
    if std::env::var_os("HAWQ_WRITE_FUZZ_SEEDS").is_some() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let (whole, body) = (root.join("load_and_run"), root.join("load_and_run_body"));
        std::fs::create_dir_all(&whole).unwrap();
        std::fs::create_dir_all(&body).unwrap();
        for (i, blob) in seeds.iter().enumerate() {
            std::fs::write(whole.join(format!("seed-{i:02}")), blob).unwrap();
            let mut b = blob[12..16].to_vec();
            b.extend_from_slice(&blob[HEADER_BYTES..]);
            std::fs::write(body.join(format!("seed-{i:02}")), b).unwrap();
        }
        eprintln!("wrote {} seeds under {}", seeds.len(), root.display());
    }
}

/// The further outputs of a model with several: each a tensor of the table, in whole `u16`
/// records, readable after a run; anything else is refused at load.
#[test]
fn further_outputs_name_tensors_in_whole_records() {
    let mut spec = mul_model().spec();
    let last = spec.tensors.len() as u16 - 1;
    spec.extra_outputs = [0u16, last].iter().flat_map(|t| t.to_le_bytes()).collect();
    let blob = spec.encode();
    assert_eq!(exercise(&blob, 1), Outcome::Ran);
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.output_count(), 3);
    assert_eq!((model.output_tensor(1), model.output_tensor(2), model.output_tensor(3)), (Some(0), Some(last), None));
    assert_eq!(model.output_tensor(usize::MAX), None);
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut it = Interpreter::new(&model, &mut arena).unwrap();
    it.invoke().unwrap();
    assert_eq!(it.output_bytes_at(0), Some(it.output_bytes()));
    assert_eq!(it.output_bytes_at(2).map(<[u8]>::len), model.tensor(last).map(|t| t.bytes()));
    assert!(it.output_bytes_at(3).is_none());
    let mut bad = spec.clone();
    bad.extra_outputs = (spec.tensors.len() as u16).to_le_bytes().to_vec();
    assert_eq!(exercise(&bad.encode(), 1), Outcome::Rejected("BadTensorIndex"));
    bad.extra_outputs = vec![0, 0, 1];
    assert_eq!(exercise(&bad.encode(), 1), Outcome::Rejected("Malformed"));
}

#[test]
fn every_error_has_its_own_summary_and_names_its_subject_as_its_message_does() {
    let all = [
        Error::Truncated,
        Error::BadMagic,
        Error::UnsupportedVersion { found: 9 },
        Error::ChecksumMismatch { expected: 1, computed: 2 },
        Error::Malformed,
        Error::TrailingBytes,
        Error::TooManyTensors,
        Error::BadShape { tensor: 3 },
        Error::TensorOutOfArena { tensor: 4 },
        Error::BadZeroPoint { tensor: 5 },
        Error::ScratchOutOfArena,
        Error::OpScratchOutOfArena { op: 6 },
        Error::ScratchOverlap { op: 7 },
        Error::BadTensorIndex { op: 8 },
        Error::WrongDtype { op: 9 },
        Error::ShapeMismatch { op: 10 },
        Error::UnsupportedBits { op: 11 },
        Error::BadParameter { op: 12 },
        Error::WeightSizeMismatch { op: 13 },
        Error::AccumulatorOverflow { op: 14 },
        Error::OverlappingTensors { op: 15 },
        Error::ArenaTooSmall { needed: 16, got: 1 },
        Error::SizeMismatch { expected: 17, got: 1 },
        Error::EmptyModel,
        Error::ArenaSizeMismatch { declared: 18, needed: 1 },
        Error::KernelNotLinked { op: 19 },
    ];
    let variants: std::collections::BTreeSet<_> = all.iter().map(variant).collect();
    let summaries: std::collections::BTreeSet<_> = all.iter().map(Error::summary).collect();
    assert_eq!((variants.len(), summaries.len()), (all.len(), all.len()));
    for e in all {
        let message = e.to_string();
        assert!(!e.summary().is_empty());
        if let Some((what, index)) = e.subject() {
            assert!(message.contains(&format!("{what} {index}")), "{message}");
        }
    }
}

/// RGB565's widening by repeated top bits is within one step of the exact `v·255/max`, and 0 and
/// the largest value map to 0 and 255.
#[test]
fn rgb565_widening_is_within_a_step_of_exact() {
    for (bits, max) in [(5u32, 31u16), (6, 63)] {
        for v in 0..=max {
            let widened = ((v << (8 - bits)) | (v >> (2 * bits - 8))) as f64;
            let exact = v as f64 * 255.0 / max as f64;
            assert!((widened - exact).abs() <= 1.0, "{v} of {bits} bits: {widened} against {exact}");
        }
    }
}
