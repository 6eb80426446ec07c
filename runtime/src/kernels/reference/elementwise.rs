use micromath::F32Ext;

use super::{clear_tail, ActFormat};
use crate::quant::{load, round_shift, store};

/// Parameters of a residual add (contract §5).
#[derive(Debug, Clone, Copy)]
pub struct AddRequant {
    pub multiplier_a: i32,
    pub multiplier_b: i32,
    pub shift: i8,
    pub out: ActFormat,
    pub min: i32,
    pub max: i32,
}

/// Residual add of `n` elements at byte offsets `a`, `b` and `out` of the arena. Element `i` is
/// read before it is written, so the output may alias either input exactly (same offset and
/// format), which is what the memory planner does to save a buffer.
pub fn add(arena: &mut [u8], n: usize, a: (usize, ActFormat), b: (usize, ActFormat), out: usize, rq: &AddRequant) {
    let r = (31 - rq.shift as i32) as u32;
    for i in 0..n {
        let xa = (load(&arena[a.0..], a.1.bits, i) - a.1.zero_point) as i64 * rq.multiplier_a as i64;
        let xb = (load(&arena[b.0..], b.1.bits, i) - b.1.zero_point) as i64 * rq.multiplier_b as i64;
        let q = round_shift(xa + xb, r) + rq.out.zero_point as i64;
        store(&mut arena[out..], rq.out.bits, i, q.max(rq.min as i64).min(rq.max as i64) as i32);
    }
    let bytes = rq.out.bits.packed_len(n);
    clear_tail(&mut arena[out..out + bytes], rq.out, n);
}

/// Softmax over rows of `row` elements into little-endian f32 (contract §5). `exp` is micromath's
/// on every target, called explicitly so that std's `f32::exp` can never be picked instead.
pub fn softmax(input: &[u8], fmt: ActFormat, scale: f32, row: usize, output: &mut [u8]) {
    softmax_rows::<false>(input, fmt, scale, row, output);
}

/// Log-softmax over rows of `row` elements into little-endian f32 (contract §5):
/// `d_i − ln Σ_j exp(d_j)` with softmax's `d_i`, `exp` and `ln` micromath's on every target.
/// Subtracting the log of the sum rather than taking the log of each probability keeps every
/// output finite: a probability that underflows to 0 would be `−inf`, its `d_i` is not.
pub fn log_softmax(input: &[u8], fmt: ActFormat, scale: f32, row: usize, output: &mut [u8]) {
    softmax_rows::<true>(input, fmt, scale, row, output);
}

/// The row walk [`softmax`] and [`log_softmax`] share: per row, its maximum, `d_i = s·(q_i − max)`
/// and `Σ exp(d_i)`, keeping per element what the last pass needs (`exp(d_i)` to divide by the
/// sum, or `d_i` to subtract its log from), in the output itself.
#[inline(always)]
fn softmax_rows<const LOG: bool>(input: &[u8], fmt: ActFormat, scale: f32, row: usize, output: &mut [u8]) {
    let n = output.len() / 4;
    let row = row.max(1);
    let mut start = 0;
    while start < n {
        let end = (start + row).min(n);
        let mut max = i32::MIN;
        for i in start..end {
            max = max.max(load(input, fmt.bits, i));
        }
        let mut sum = 0.0f32;
        for i in start..end {
            let d = scale * (load(input, fmt.bits, i) - max) as f32;
            let e = F32Ext::exp(d);
            let kept = if LOG { d } else { e };
            output[4 * i..4 * i + 4].copy_from_slice(&kept.to_le_bytes());
            sum += e;
        }
        // The row's maximum adds exp(0) ≈ 1, so the sum is about 1 or more and its log finite.
        let lse = if LOG { F32Ext::ln(sum) } else { 0.0 };
        for i in start..end {
            let bytes = &mut output[4 * i..4 * i + 4];
            let kept = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let y = if LOG { kept - lse } else { kept / sum };
            bytes.copy_from_slice(&y.to_le_bytes());
        }
        start = end;
    }
}

/// `y = s · (q − z)` into little-endian f32.
pub fn dequantize(input: &[u8], fmt: ActFormat, scale: f32, output: &mut [u8]) {
    for (i, chunk) in output.chunks_exact_mut(4).enumerate() {
        let y = scale * (load(input, fmt.bits, i) - fmt.zero_point) as f32;
        chunk.copy_from_slice(&y.to_le_bytes());
    }
}

/// Table lookup (contract §5): element `i` of channel `i % channels` becomes
/// `table[t·2^b + (q − lo)]`, `t` the channel when the table has a row per channel, else 0.
/// Input and output are disjoint.
pub fn lut(
    (input, in_fmt): (&[u8], ActFormat),
    table: &[u8],
    (n, channels): (usize, usize),
    (output, out_fmt): (&mut [u8], ActFormat),
) {
    let (lo, _) = in_fmt.bits.range();
    let row = 1usize << in_fmt.bits.get();
    let per_channel = table.len() > row;
    let channels = channels.max(1);
    for i in 0..n {
        let t = if per_channel { i % channels } else { 0 };
        let code = (load(input, in_fmt.bits, i) - lo) as usize;
        let v = table.get(t * row + code).map_or(out_fmt.zero_point, |&b| b as i8 as i32);
        store(output, out_fmt.bits, i, v);
    }
    clear_tail(output, out_fmt, n);
}

/// Elementwise product of `n` elements at byte offsets of the arena (contract §5): `b` has `n`
/// elements, or `b_len` elements repeated (one per channel). The output may alias `a` exactly.
pub fn mul(
    arena: &mut [u8],
    n: usize,
    a: (usize, ActFormat),
    b: (usize, ActFormat, usize),
    out: usize,
    rq: &AddRequant,
) {
    let b_len = b.2.max(1);
    for i in 0..n {
        let xa = load(&arena[a.0..], a.1.bits, i) - a.1.zero_point;
        let xb = load(&arena[b.0..], b.1.bits, i % b_len) - b.1.zero_point;
        let q = crate::quant::requant(xa * xb, rq.multiplier_a, rq.shift, rq.out.zero_point, rq.min, rq.max);
        store(&mut arena[out..], rq.out.bits, i, q);
    }
    let bytes = rq.out.bits.packed_len(n);
    clear_tail(&mut arena[out..out + bytes], rq.out, n);
}
