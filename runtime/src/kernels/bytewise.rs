//! 8-bit fast paths of the table lookup, the product, the max pool and the element-moving
//! operations (contract §5): byte loops and whole channel runs copied at once, where the reference kernels
//! go through the packed `load`/`store` of any bit width per element. Every path but the scalar
//! one uses them for all-8-bit tensors; the tests compare them with the reference byte for byte.

use super::reference::{self, ActFormat, AddRequant, ConcatInput, Hwc, PoolRequant, Window};
use crate::quant::{requant, requant_raw, Bits};

fn all8(fmts: &[ActFormat]) -> bool {
    fmts.iter().all(|f| f.bits == Bits::B8)
}

/// [`reference::lut`] for 8-bit tensors: one table byte per element.
pub fn lut(
    (input, in_fmt): (&[u8], ActFormat),
    table: &[u8],
    (n, channels): (usize, usize),
    (output, out_fmt): (&mut [u8], ActFormat),
) {
    if !all8(&[in_fmt, out_fmt]) || input.len() < n || output.len() < n {
        return reference::lut((input, in_fmt), table, (n, channels), (output, out_fmt));
    }
    match table {
        // One row: index by the byte's two's-complement value plus 128.
        t if t.len() == 256 => {
            let t: &[u8; 256] = t.try_into().unwrap_or(&[0; 256]);
            for (o, &q) in output[..n].iter_mut().zip(&input[..n]) {
                *o = t[(q ^ 0x80) as usize];
            }
        }
        _ => reference::lut((input, in_fmt), table, (n, channels), (output, out_fmt)),
    }
}

/// [`reference::max_pool`] for 8-bit tensors under the identity rescaling the compiler gives
/// every max pool (`M = 2^30, s = 1`, which `requant_raw` returns unchanged): per output pixel,
/// the channels' maxima over the window's taps, four taps per pass, kept in the output row (a
/// byte compare per tap and channel, where the reference unpacks, rescales in 64 bits and packs
/// each element), then the zero points' difference and the clamp where they do anything.
/// `false` (nothing written) for any other case.
pub fn max_pool(g: &Window, input: &[u8], in_fmt: ActFormat, rq: &PoolRequant, output: &mut [u8]) -> bool {
    let c = g.in_c;
    if !all8(&[in_fmt, rq.out])
        || rq.multiplier != 1 << 30
        || rq.shift != 1
        || g.out_c != c
        || input.len() < g.in_h * g.in_w * c
        || output.len() < g.out_h * g.out_w * c
    {
        return false;
    }
    // `finish(m − z_in)` under the identity: `m − z_in + z_out`, clamped.
    let dz = rq.out.zero_point - in_fmt.zero_point;
    let (lo, hi) = (rq.min, rq.max);
    let plain = dz == 0 && lo <= -128 && hi >= 127;
    let mut o = 0;
    for oy in 0..g.out_h {
        let (y0, y1, _) = g.rows(oy);
        for ox in 0..g.out_w {
            let (x0, x1, _) = g.cols(ox);
            let out = &mut output[o..o + c];
            o += c;
            if y0 >= y1 || x0 >= x1 {
                // No tap inside the input: the reference's maximum is the zero point.
                let q = rq.out.zero_point.max(lo).min(hi) as u8;
                out.iter_mut().for_each(|d| *d = q);
                continue;
            }
            // The taps four at a time, the last group padded with the window's first tap (a
            // maximum does not change for a repeated value): one pass over the channels per
            // group, the first writing the output, the others raising it.
            let (taps, row) = ((y1 - y0) * (x1 - x0), x1 - x0);
            let tap = |i: usize| {
                let i = if i < taps { i } else { 0 };
                let at = ((y0 + i / row) * g.in_w + x0 + i % row) * c;
                &input[at..at + c]
            };
            for start in (0..taps).step_by(4) {
                let (t0, t1, t2, t3) = (tap(start), tap(start + 1), tap(start + 2), tap(start + 3));
                let taps4 = out.iter_mut().zip(t0).zip(t1).zip(t2).zip(t3);
                if start == 0 {
                    for ((((d, &a), &b), &e), &f) in taps4 {
                        *d = (a as i8).max(b as i8).max(e as i8).max(f as i8) as u8;
                    }
                } else {
                    for ((((d, &a), &b), &e), &f) in taps4 {
                        *d = (a as i8).max(b as i8).max(e as i8).max(f as i8).max(*d as i8) as u8;
                    }
                }
            }
            // The compiler's max pools keep their input's quantization and the full range.
            if !plain {
                for d in out.iter_mut() {
                    *d = (*d as i8 as i32 + dz).max(lo).min(hi) as u8;
                }
            }
        }
    }
    true
}

/// [`reference::mul`] for 8-bit tensors.
pub fn mul(
    arena: &mut [u8],
    n: usize,
    a: (usize, ActFormat),
    b: (usize, ActFormat, usize),
    out: usize,
    rq: &AddRequant,
) {
    let b_len = b.2.max(1);
    let fits = |off: usize, len: usize| off.checked_add(len).is_some_and(|end| end <= arena.len());
    // The output must be disjoint from each input or equal to `a` (the validator's rule).
    let disjoint = |off: usize, len: usize| off + len <= out || off >= out + n;
    if !all8(&[a.1, b.1, rq.out])
        || !fits(a.0, n)
        || !fits(b.0, b_len)
        || !fits(out, n)
        || !(a.0 == out || disjoint(a.0, n))
        || !disjoint(b.0, b_len)
        || !n.is_multiple_of(b_len)
    {
        return reference::mul(arena, n, a, b, out, rq);
    }
    let (za, zb) = (a.1.zero_point, b.1.zero_point);
    for start in (0..n).step_by(b_len) {
        for c in 0..b_len {
            let xa = arena[a.0 + start + c] as i8 as i32 - za;
            let xb = arena[b.0 + c] as i8 as i32 - zb;
            let q = requant(xa * xb, rq.multiplier_a, rq.shift, rq.out.zero_point, rq.min, rq.max);
            arena[out + start + c] = q as u8;
        }
    }
}

/// [`reference::concat_part`] for 8-bit tensors: a channel run copied at once when the input
/// already has the output's quantization (multiplier `2^30`, shift 1, equal zero points).
pub fn concat_part(
    arena: &mut [u8],
    positions: usize,
    part: &ConcatInput,
    (out, out_fmt, out_channels): (usize, ActFormat, usize),
    first_channel: usize,
) {
    let c = part.channels;
    let fits = |off: usize, len: usize| off.checked_add(len).is_some_and(|end| end <= arena.len());
    if !all8(&[part.fmt, out_fmt])
        || first_channel + c > out_channels
        || !fits(part.offset, positions * c)
        || !fits(out, positions * out_channels)
    {
        return reference::concat_part(arena, positions, part, (out, out_fmt, out_channels), first_channel);
    }
    let identity = part.multiplier == 1 << 30 && part.shift == 1 && part.fmt.zero_point == out_fmt.zero_point;
    for p in 0..positions {
        let (src, dst) = (part.offset + p * c, out + p * out_channels + first_channel);
        if identity {
            arena.copy_within(src..src + c, dst);
        } else {
            for k in 0..c {
                let q = arena[src + k] as i8 as i32 - part.fmt.zero_point;
                let v = (out_fmt.zero_point as i64 + requant_raw(q, part.multiplier, part.shift)).clamp(-128, 127);
                arena[dst + k] = v as u8;
            }
        }
    }
}

/// [`reference::slice`] for 8-bit tensors: contiguous channel runs copied at once.
pub fn slice(
    input: &[u8],
    in_shape: Hwc,
    fmt: ActFormat,
    begin: [usize; 3],
    step: [usize; 3],
    out_shape: Hwc,
    output: &mut [u8],
) {
    let (_, in_w, in_c) = in_shape;
    let (h, w, c) = out_shape;
    let last_row = ((begin[0] + (h.max(1) - 1) * step[0]) * in_w + begin[1] + (w.max(1) - 1) * step[1]) * in_c;
    let in_bounds = last_row + begin[2] + (c.max(1) - 1) * step[2] < input.len() && output.len() >= h * w * c;
    if fmt.bits != Bits::B8 || step[2] != 1 || !in_bounds {
        return reference::slice(input, in_shape, fmt, begin, step, out_shape, output);
    }
    let mut i = 0;
    for y in 0..h {
        for x in 0..w {
            let row = ((begin[0] + y * step[0]) * in_w + begin[1] + x * step[1]) * in_c + begin[2];
            output[i..i + c].copy_from_slice(&input[row..row + c]);
            i += c;
        }
    }
}

/// [`reference::resize_nearest`] for 8-bit tensors: each source pixel's channels copied.
pub fn resize_nearest(input: &[u8], in_shape: Hwc, fmt: ActFormat, (fh, fw): (usize, usize), output: &mut [u8]) {
    let (h, w, c) = in_shape;
    if fmt.bits != Bits::B8 || input.len() < h * w * c || output.len() < h * fh * w * fw * c {
        return reference::resize_nearest(input, in_shape, fmt, (fh, fw), output);
    }
    let mut i = 0;
    for y in 0..h * fh {
        for x in 0..w * fw {
            let src = ((y / fh) * w + x / fw) * c;
            output[i..i + c].copy_from_slice(&input[src..src + c]);
            i += c;
        }
    }
}

/// [`reference::depth_to_space`] for 8-bit tensors: each phase's channel run copied.
pub fn depth_to_space(input: &[u8], in_shape: Hwc, fmt: ActFormat, block: usize, output: &mut [u8]) {
    let (h, w, c) = in_shape;
    let oc = c / (block * block).max(1);
    if fmt.bits != Bits::B8 || block == 0 || input.len() < h * w * c || output.len() < h * w * c {
        return reference::depth_to_space(input, in_shape, fmt, block, output);
    }
    let mut i = 0;
    for y in 0..h * block {
        for x in 0..w * block {
            let src = ((y / block) * w + x / block) * c + ((y % block) * block + x % block) * oc;
            output[i..i + oc].copy_from_slice(&input[src..src + oc]);
            i += oc;
        }
    }
}
