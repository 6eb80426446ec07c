//! Shared by the fuzz targets: load a blob and, when it loads, run it.

pub mod structured;

use hawq_runtime::format::{Op, FORMAT_VERSION, HEADER_BYTES, MAGIC};
use hawq_runtime::{Interpreter, Model};

/// Models with a larger arena are loaded but not run.
pub const MAX_ARENA: usize = 1 << 20;
/// Models needing more multiply-adds than this are loaded but not run (a valid but huge layer
/// is slow, not wrong; running it would only make the fuzzer report timeouts).
pub const MAX_WORK: u64 = 20_000_000;

/// Multiply-adds the reference kernels spend on the model.
pub fn work(model: &Model<'_>) -> u64 {
    let t: Vec<_> = model.tensors().iter().collect();
    let mut total = 0u64;
    for op in model.ops() {
        let Ok(op) = op else { return u64::MAX };
        let out = t[op.output() as usize].elements() as u64;
        let window = |input: u16, kh: usize, kw: usize| {
            let i = &t[input as usize];
            kh.min(i.shape[1] as usize) as u64 * kw.min(i.shape[2] as usize) as u64
        };
        let n = match op {
            Op::Conv2d(p) => out
                .saturating_mul(window(p.input, p.kernel_h as usize, p.kernel_w as usize))
                .saturating_mul(t[p.input as usize].shape[3] as u64),
            Op::DepthwiseConv2d(p) => out.saturating_mul(window(p.input, p.kernel_h as usize, p.kernel_w as usize)),
            Op::AvgPool(p) | Op::MaxPool(p) => {
                out.saturating_mul(window(p.input, p.kernel_h as usize, p.kernel_w as usize))
            }
            Op::FullyConnected(p) => out.saturating_mul(t[p.input as usize].elements() as u64),
            _ => out,
        };
        total = total.saturating_add(n);
    }
    total
}

/// `Model::from_bytes`; if the model loads and is small enough, runs it in a zeroed arena of the
/// declared size: as is, after writing raw input derived from `blob`, and over an arena filled
/// with `blob`'s bytes. Any panic is a bug (the loader promised the model is safe to run).
pub fn load_and_run(blob: &[u8]) {
    let Ok(model) = Model::from_bytes(blob) else { return };
    let n = model.arena_bytes();
    if n > MAX_ARENA || work(&model) > MAX_WORK {
        return;
    }
    let mut arena = vec![0u8; n];
    let mut it = Interpreter::new(&model, &mut arena).expect("an arena of the declared size is accepted");
    it.invoke().expect("a validated model runs");
    let mut out = vec![0f32; model.output().elements()];
    it.read_output_f32(&mut out).expect("output buffer of the right size");

    let raw_len = model.input().elements() * model.raw_input().element_bytes();
    let raw: Vec<u8> = blob.iter().copied().cycle().skip(7).take(raw_len).collect();
    if raw.len() == raw_len {
        it.write_input_raw(&raw).expect("raw input of the right size");
        it.invoke().expect("a validated model runs");
        it.read_output_f32(&mut out).expect("output buffer of the right size");
    }

    // Every tensor, not only the model input, holding values taken from the blob.
    let mut arena: Vec<u8> = blob.iter().rev().copied().cycle().take(n).collect();
    arena.resize(n, 0);
    let mut it = Interpreter::new(&model, &mut arena).expect("an arena of the declared size is accepted");
    it.invoke().expect("a validated model runs");
}

/// A valid header (magic, version, length, CRC) for `body`, then the body: lets the fuzzer's
/// mutations reach the body parser and the validator instead of the checksum.
pub fn with_header(body: &[u8], arena_bytes: u32) -> Vec<u8> {
    let mut blob = Vec::with_capacity(HEADER_BYTES + body.len());
    blob.extend_from_slice(&MAGIC);
    blob.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    blob.extend_from_slice(&0u16.to_le_bytes());
    blob.extend_from_slice(&(body.len() as u32).to_le_bytes());
    blob.extend_from_slice(&arena_bytes.to_le_bytes());
    let sum = hawq_runtime::format::checksum(&blob[..16], body);
    blob.extend_from_slice(&sum.to_le_bytes());
    blob.extend_from_slice(body);
    blob
}
