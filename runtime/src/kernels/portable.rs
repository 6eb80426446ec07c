//! Portable fast kernels: plain Rust, no instruction-set extension, for every target (Cortex-M0/M3,
//! RISC-V, and the fallback of the SIMD paths). Bit-exact with `reference` (tested against it).
//!
//! Convolution is an im2col GEMM over blocks of `PIX` output pixels: each pixel's receptive
//! field is gathered once as `i16` values `a − z` (taps in the padding are 0, contract §3) into a
//! stack buffer laid out `[k][pixel]`; each weight row is then read one 32-bit word at a time,
//! decoded (8, 4 or 2 bits per weight) once for all the block's pixels, and multiplied into
//! `PIX` accumulators. The cost of unpacking a 2- or 4-bit row is thus shared by the block, and
//! an 8-bit weight costs one sign extension.
//!
//! The convolution, depthwise and fully connected kernels take their buffers from the op's
//! scratch slice of the arena (`kernels::scratch`), sized from the layer, so every shape runs
//! here; only a caller that passes less scratch than `*_scratch_bytes` gets the reference kernel
//! (and the returned [`Path`] says so).

use super::reference::{self, ActFormat, AddRequant, Layer, PoolRequant, Requant, Window};
use super::scratch::{self, Scratch};
use super::util::{put, row_words, sum_bound, tail_word, unpack4, ChannelQ, Rq32};
use super::{KernelTable, Path};
use crate::quant::{load, store, Bits};

/// The portable kernels as a [`KernelTable`].
pub const TABLE: KernelTable = KernelTable { path: Path::Portable, conv2d, depthwise_conv2d, fully_connected };

/// Output pixels per block.
pub(crate) const PIX: usize = scratch::PIX;

/// `K` rounded up to whole 32-bit words of the packed row.
#[inline(always)]
fn padded_k(k: usize, bits: Bits) -> usize {
    let (words, per) = row_words(bits.packed_len(k), bits);
    words * per
}

/// Writes pixel `p`'s receptive field as `a − z` into `x[k·P + p]`, `k < K`, zero elsewhere up to
/// `kpad`.
#[allow(clippy::too_many_arguments)]
fn gather_i16<const P: usize>(
    g: &Window,
    input: &[u8],
    fmt: ActFormat,
    oy: usize,
    ox: usize,
    x: &mut [i16],
    p: usize,
    kpad: usize,
) {
    let (y0, y1, ky0) = g.rows(oy);
    let (x0, x1, kx0) = g.cols(ox);
    let c = g.in_c;
    let z = fmt.zero_point;
    let row_len = g.kernel_w * c;
    let k = g.kernel_h * row_len;
    let (left, mid) = (kx0 * c, (x1 - x0) * c);
    for ky in 0..g.kernel_h {
        let base = ky * row_len;
        if ky < ky0 || ky >= ky0 + (y1 - y0) {
            for i in base..base + row_len {
                x[i * P + p] = 0;
            }
            continue;
        }
        let src = ((y0 + ky - ky0) * g.in_w + x0) * c;
        for i in base..base + left {
            x[i * P + p] = 0;
        }
        if fmt.bits == Bits::B8 {
            for (i, &a) in input[src..src + mid].iter().enumerate() {
                x[(base + left + i) * P + p] = (a as i8 as i32 - z) as i16;
            }
        } else {
            for i in 0..mid {
                x[(base + left + i) * P + p] = (load(input, fmt.bits, src + i) - z) as i16;
            }
        }
        for i in base + left + mid..base + row_len {
            x[i * P + p] = 0;
        }
    }
    for i in k..kpad {
        x[i * P + p] = 0;
    }
}

/// `Σ_k w[k] · x[k·P + p]` for `p < P`, over a packed row (`x` zero past `K`).
#[inline(always)]
fn dot<const P: usize>(row: &[u8], bits: Bits, x: &[i16]) -> [i32; P] {
    // One loop per width, chosen once per row (a width test per word kept the word's step out
    // of line on the Cortex-M0: 11 instructions per MAC).
    match bits {
        Bits::B8 => dot_width::<P, 8>(row, x),
        Bits::B4 => dot_width::<P, 4>(row, x),
        Bits::B2 => dot_width::<P, 2>(row, x),
    }
}

/// [`dot`] for `B`-bit weights: `32 / B` weights per little-endian word.
#[inline(always)]
fn dot_width<const P: usize, const B: u32>(row: &[u8], x: &[i16]) -> [i32; P] {
    let per = (32 / B) as usize;
    let mut acc = [0i32; P];
    for (wb, xs) in row.chunks_exact(4).zip(x.chunks_exact(per * P)) {
        word_mac::<P, B>(u32::from_le_bytes([wb[0], wb[1], wb[2], wb[3]]), xs, &mut acc);
    }
    let full = row.len() / 4;
    if !row.len().is_multiple_of(4) {
        if let Some(xs) = x.get(full * per * P..(full + 1) * per * P) {
            word_mac::<P, B>(tail_word(row, full), xs, &mut acc);
        }
    }
    acc
}

/// One packed weight word (`32 / B` signed weights, the first in the low bits) into the `P`
/// accumulators, against `xs` (`P` values per weight).
#[inline(always)]
fn word_mac<const P: usize, const B: u32>(w: u32, xs: &[i16], acc: &mut [i32; P]) {
    for (j, xp) in xs.chunks_exact(P).take((32 / B) as usize).enumerate() {
        let wj = ((w << (32 - B - B * j as u32)) as i32) >> (32 - B);
        for (a, &xv) in acc.iter_mut().zip(xp) {
            *a = a.wrapping_add(wj.wrapping_mul(xv as i32));
        }
    }
}

/// Conv2D (contract §3–§4), the bytes of [`reference::conv2d`], with its buffers in `scratch`
/// (at least [`super::conv2d_scratch_bytes`]); returns the path that ran.
#[inline(never)]
pub fn conv2d(g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> Path {
    let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let row_bytes = weight_bits.packed_len(k);
    let kpad = padded_k(k, weight_bits);
    let mut s = Scratch::new(scratch);
    let (Some(x), Some(fast)) = (s.take::<i16>(kpad * PIX), s.take::<Rq32>(g.out_c)) else {
        reference::conv2d(g, layer, input, output);
        return Path::Scalar;
    };
    if row_bytes == 0 {
        reference::conv2d(g, layer, input, output);
        return Path::Scalar;
    }
    let bound = sum_bound(k, weight_bits, in_fmt.bits);
    Rq32::table(rq, 0, bound, 0, false, fast);
    let npix = g.out_h * g.out_w;
    let out_bits = rq.out.bits;
    let mut q0 = 0;
    while q0 < npix {
        let n = (npix - q0).min(PIX);
        for p in 0..PIX {
            if p < n {
                let q = q0 + p;
                gather_i16::<PIX>(g, input, in_fmt, q / g.out_w, q % g.out_w, x, p, kpad);
            } else {
                for i in 0..kpad {
                    x[i * PIX + p] = 0;
                }
            }
        }
        for (c, (row, f)) in weights.chunks_exact(row_bytes).zip(fast.iter()).enumerate() {
            let acc = dot::<PIX>(row, weight_bits, x);
            for (p, &a) in acc.iter().enumerate().take(n) {
                put(output, out_bits, (q0 + p) * g.out_c + c, f.apply(a, rq.min, rq.max));
            }
        }
        q0 += n;
    }
    reference::clear_tail(output, rq.out, npix * g.out_c);
    Path::Portable
}

/// Fully connected, the bytes of [`reference::fully_connected`], with its input as `i16` in
/// `scratch` (at least [`super::fully_connected_scratch_bytes`]); returns the path that ran.
#[inline(never)]
pub fn fully_connected(
    in_features: usize,
    out_features: usize,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
    let row_bytes = weight_bits.packed_len(in_features);
    let kpad = padded_k(in_features, weight_bits);
    let x = Scratch::new(scratch).take::<i16>(kpad);
    let (Some(x), false) = (x, row_bytes == 0) else {
        reference::fully_connected(in_features, out_features, layer, input, output);
        return Path::Scalar;
    };
    let z = in_fmt.zero_point;
    let (head, tail) = x.split_at_mut(in_features);
    if in_fmt.bits == Bits::B8 {
        for (v, &a) in head.iter_mut().zip(input) {
            *v = (a as i8 as i32 - z) as i16;
        }
    } else {
        for (k, v) in head.iter_mut().enumerate() {
            *v = (load(input, in_fmt.bits, k) - z) as i16;
        }
    }
    tail.fill(0);
    for (c, row) in weights.chunks_exact(row_bytes).take(out_features).enumerate() {
        let [acc] = dot::<1>(row, weight_bits, x);
        put(output, rq.out.bits, c, ChannelQ::new(rq, c).apply(acc));
    }
    reference::clear_tail(output, rq.out, out_features);
    Path::Portable
}

/// Depthwise Conv2D, the bytes of [`reference::depthwise_conv2d`], with its buffers in `scratch`
/// (at least [`super::depthwise_conv2d_scratch_bytes`]); returns the path that ran.
// The body is [`depthwise_channels`]' copy, not [`depthwise_inline`]'s: inlined into the DSP
// depthwise kernel (its fallback for other depth multipliers) the second copy had moved that
// kernel's register allocation (mobilenet-v1 of the zoo, 4-bit weights: +0.2%) and code (+0.5 KB).
pub fn depthwise_conv2d(g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> Path {
    let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
    let path = depthwise_channels(g, input, in_fmt, weights, weight_bits, rq, output, 0, scratch);
    reference::clear_tail(output, rq.out, g.out_h * g.out_w * g.out_c);
    path
}

/// [`depthwise_conv2d`], inlined into its caller (the AVX2 path compiles it with AVX2 enabled).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn depthwise_inline(
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
    let path = depthwise_channels_impl(g, input, in_fmt, weights, weight_bits, rq, output, 0, scratch);
    reference::clear_tail(output, rq.out, g.out_h * g.out_w * g.out_c);
    path
}

/// Depthwise Conv2D of the output channels `first..out_c` (the SIMD paths run the channels they
/// do not cover through this). Channels are processed in chunks
/// ([`scratch::portable_depthwise_chunk`]), with the chunk's weights unpacked once into a
/// `[tap][channel]` buffer and the taps outermost, so that the inner loop walks the NHWC
/// channels contiguously. Returns the path that ran (the reference, over the whole layer, when
/// `scratch` is too small).
// The layer's fields one by one, not a `Layer`: passed as values, the optimizer specializes
// this function for what its callers know of them (a firmware without 4-bit activations: an
// 8-bit input and output), which it did not through a pointer (+0.8 KB of code in dscnn's).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) fn depthwise_channels(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    weights: &[u8],
    weight_bits: Bits,
    rq: &Requant<'_>,
    output: &mut [u8],
    first: usize,
    scratch: &mut [u8],
) -> Path {
    depthwise_channels_impl(g, input, in_fmt, weights, weight_bits, rq, output, first, scratch)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn depthwise_channels_impl(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    weights: &[u8],
    weight_bits: Bits,
    rq: &Requant<'_>,
    output: &mut [u8],
    first: usize,
    scratch: &mut [u8],
) -> Path {
    let taps = g.kernel_h * g.kernel_w;
    let chunk = scratch::portable_depthwise_chunk(g);
    let mut s = Scratch::new(scratch);
    let bufs = (s.take::<i32>(chunk), s.take::<Rq32>(chunk), s.take::<i16>(taps * chunk));
    let (Some(acc), Some(cq), Some(w), false) = (bufs.0, bufs.1, bufs.2, taps == 0) else {
        reference::depthwise_conv2d(g, &Layer::new(in_fmt, weights, weight_bits, *rq), input, output);
        return Path::Scalar;
    };
    let row_bytes = weight_bits.packed_len(taps);
    // The 32-bit requantization (`Rq32`: no 64-bit multiply, a library call on the Cortex-M0).
    let bound = sum_bound(taps, weight_bits, in_fmt.bits);
    let mult = (g.out_c / g.in_c.max(1)).max(1);
    let z = in_fmt.zero_point;
    let mut c0 = first;
    while c0 < g.out_c {
        let nc = (g.out_c - c0).min(chunk);
        for j in 0..nc {
            let row = &weights[(c0 + j) * row_bytes..(c0 + j + 1) * row_bytes];
            for t in 0..taps {
                w[t * nc + j] = load(row, weight_bits, t) as i16;
            }
        }
        Rq32::table(rq, c0, bound, 0, false, &mut cq[..nc]);
        for oy in 0..g.out_h {
            let (y0, y1, ky0) = g.rows(oy);
            for ox in 0..g.out_w {
                let (x0, x1, kx0) = g.cols(ox);
                let acc = &mut acc[..nc];
                acc.fill(0);
                for (ky, y) in (ky0..).zip(y0..y1) {
                    for (kx, xx) in (kx0..).zip(x0..x1) {
                        let wt = &w[(ky * g.kernel_w + kx) * nc..][..nc];
                        let base = (y * g.in_w + xx) * g.in_c;
                        if mult == 1 && in_fmt.bits == Bits::B8 {
                            let a = &input[base + c0..base + c0 + nc];
                            for ((s, &wv), &av) in acc.iter_mut().zip(wt).zip(a) {
                                *s += wv as i32 * (av as i8 as i32 - z);
                            }
                        } else if mult == 1 && in_fmt.bits == Bits::B4 && (base + c0).is_multiple_of(2) {
                            // Two channels per byte, low nibble first (contract §2): a byte
                            // walk, not an indexed nibble load per channel (5× the 8-bit cost).
                            let a = &input[(base + c0) / 2..(base + c0 + nc).div_ceil(2)];
                            for ((s, wv), &byte) in acc.chunks_mut(2).zip(wt.chunks(2)).zip(a) {
                                s[0] += wv[0] as i32 * (((byte << 4) as i8 >> 4) as i32 - z);
                                if let (Some(s1), Some(&w1)) = (s.get_mut(1), wv.get(1)) {
                                    *s1 += w1 as i32 * ((byte as i8 >> 4) as i32 - z);
                                }
                            }
                        } else {
                            for (j, (s, &wv)) in acc.iter_mut().zip(wt).enumerate() {
                                let av = load(input, in_fmt.bits, base + (c0 + j) / mult);
                                *s += wv as i32 * (av - z);
                            }
                        }
                    }
                }
                let o = (oy * g.out_w + ox) * g.out_c + c0;
                for (j, &s) in acc.iter().enumerate() {
                    put(output, rq.out.bits, o + j, cq[j].apply(s, rq.min, rq.max));
                }
            }
        }
        c0 += nc;
    }
    Path::Portable
}

/// Residual add, same signature and bytes as [`reference::add`]. All-8-bit adds take a fast
/// loop; other formats run on the reference.
pub fn add(arena: &mut [u8], n: usize, a: (usize, ActFormat), b: (usize, ActFormat), out: usize, rq: &AddRequant) {
    add_inline(arena, n, a, b, out, rq)
}

/// [`add`], inlined into its caller (the AVX2 path compiles it with AVX2 enabled).
#[inline(always)]
pub(crate) fn add_inline(
    arena: &mut [u8],
    n: usize,
    a: (usize, ActFormat),
    b: (usize, ActFormat),
    out: usize,
    rq: &AddRequant,
) {
    let all8 = a.1.bits == Bits::B8 && b.1.bits == Bits::B8 && rq.out.bits == Bits::B8;
    let r = (31 - rq.shift as i32).clamp(1, 62) as u32;
    // The output must be disjoint from each input or equal to it (the validator's rule).
    let ok = |off: usize| off + n <= out || off >= out + n || off == out;
    let fits = |off: usize, bits: Bits| off + bits.packed_len(n) <= arena.len();
    if !fits(out, rq.out.bits) || !fits(a.0, a.1.bits) || !fits(b.0, b.1.bits) || !ok(a.0) || !ok(b.0) {
        return reference::add(arena, n, a, b, out, rq);
    }
    let p = AddP {
        za: a.1.zero_point,
        zb: b.1.zero_point,
        ma: rq.multiplier_a,
        mb: rq.multiplier_b,
        round: 1i64 << (r - 1),
        r,
        zo: rq.out.zero_point,
        lo: rq.min,
        hi: rq.max,
    };
    match (all8, r >= 32) {
        (true, true) => add_loop::<true>(arena, n, a.0, b.0, out, &p),
        (true, false) => add_loop::<false>(arena, n, a.0, b.0, out, &p),
        (false, big) => {
            // Some 4-bit tensor: chunks of 64 elements unpacked to bytes, computed, packed back
            // (a chunk is read before it is written, so exact aliasing is fine).
            const CHUNK: usize = 64;
            let mut start = 0;
            while start < n {
                let m = (n - start).min(CHUNK);
                let (mut ua, mut ub, mut v) = ([0u8; CHUNK], [0u8; CHUNK], [0u8; CHUNK]);
                unpack_any(&arena[a.0..], a.1.bits, start, &mut ua[..m]);
                unpack_any(&arena[b.0..], b.1.bits, start, &mut ub[..m]);
                for ((d, &x), &y) in v.iter_mut().zip(&ua).zip(&ub).take(m) {
                    let (x, y) = (x as i8 as i32, y as i8 as i32);
                    *d = if big { p.value::<true>(x, y) } else { p.value::<false>(x, y) } as u8;
                }
                let dst = &mut arena[out..];
                if rq.out.bits == Bits::B8 {
                    dst[start..start + m].copy_from_slice(&v[..m]);
                } else {
                    // `start` is even: whole bytes, the last one's high nibble 0 when `m` is odd.
                    for (d, pair) in dst[start / 2..].iter_mut().zip(v[..m].chunks(2)) {
                        *d = (pair[0] & 0x0F) | (pair.get(1).map_or(0, |&h| h << 4));
                    }
                }
                start += m;
            }
        }
    }
}

/// Values `start..start + dst.len()` of a packed 8- or 4-bit tensor, one `i8` per byte.
#[inline(always)]
fn unpack_any(src: &[u8], bits: Bits, start: usize, dst: &mut [u8]) {
    if bits == Bits::B8 {
        dst.copy_from_slice(&src[start..start + dst.len()]);
    } else {
        unpack4(src, start, dst);
    }
}

/// The constants of an add.
struct AddP {
    za: i32,
    zb: i32,
    ma: i32,
    mb: i32,
    round: i64,
    r: u32,
    zo: i32,
    lo: i32,
    hi: i32,
}

impl AddP {
    /// One element (contract §5); `BIG` when `r ≥ 32`. `|x| < 2^41`, so nothing overflows, and
    /// for `r ≥ 32` the quotient fits in 10 bits.
    #[inline(always)]
    fn apply<const BIG: bool>(&self, va: u8, vb: u8) -> u8 {
        self.value::<BIG>(va as i8 as i32, vb as i8 as i32) as u8
    }

    #[inline(always)]
    fn value<const BIG: bool>(&self, va: i32, vb: i32) -> i32 {
        let x = (va - self.za) as i64 * self.ma as i64 + (vb - self.zb) as i64 * self.mb as i64 + self.round;
        if BIG {
            ((((x >> 32) as i32) >> (self.r - 32)) + self.zo).max(self.lo).min(self.hi)
        } else {
            ((x >> self.r) + self.zo as i64).max(self.lo as i64).min(self.hi as i64) as i32
        }
    }
}

/// The add over 8-bit tensors at `a`, `b` into `out`, where the output is either disjoint from
/// an input or equal to it (the validator's rule, checked by the caller).
fn add_loop<const BIG: bool>(arena: &mut [u8], n: usize, a: usize, b: usize, out: usize, p: &AddP) {
    let f = |va: u8, vb: u8| p.apply::<BIG>(va, vb);
    let (left, rest) = arena.split_at_mut(out);
    let (dst, right) = rest.split_at_mut(n);
    let side = |off: usize| -> Option<&[u8]> {
        if off + n <= out {
            Some(&left[off..off + n])
        } else if off >= out + n {
            Some(&right[off - out - n..off - out])
        } else {
            None
        }
    };
    match (side(a), side(b)) {
        (Some(sa), Some(sb)) => {
            for ((d, &va), &vb) in dst.iter_mut().zip(sa).zip(sb) {
                *d = f(va, vb);
            }
        }
        (None, Some(sb)) => {
            for (d, &vb) in dst.iter_mut().zip(sb) {
                *d = f(*d, vb);
            }
        }
        (Some(sa), None) => {
            for (d, &va) in dst.iter_mut().zip(sa) {
                *d = f(va, *d);
            }
        }
        (None, None) => {
            for d in dst.iter_mut() {
                *d = f(*d, *d);
            }
        }
    }
}

/// Channels [`avg_pool`] sums at a time.
const POOL_CH: usize = 64;

/// Average pool, same signature and bytes as [`reference::avg_pool`]. An 8-bit input is read
/// pixel by pixel, every channel of a pixel in turn, into per-channel sums (the reference walks
/// the window once per channel); `Σ(a − z) = Σa − count·z` in the same wrapping 32-bit
/// arithmetic. A 4-bit input takes the reference.
pub fn avg_pool(g: &Window, input: &[u8], in_fmt: ActFormat, rq: &PoolRequant, output: &mut [u8]) {
    avg_pool_linked::<{ super::linked::ALL }>(g, input, in_fmt, rq, output)
}

/// [`avg_pool`] for the kernel set `K`: without 4-bit activations the reference kernel, which
/// only they need here, is not linked (nothing is written for a 4-bit input, which the
/// interpreter refuses in such a build).
// Inlined so that the x86 path's copy compiled for AVX2 (`x86::Avx2::avg_pool`) vectorizes it.
#[inline(always)]
pub(crate) fn avg_pool_linked<const K: u32>(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    rq: &PoolRequant,
    output: &mut [u8],
) {
    let c = g.in_c;
    if in_fmt.bits != Bits::B8 || c == 0 {
        if super::linked::has(K, super::linked::ACTS_4) {
            reference::avg_pool(g, input, in_fmt, rq, output);
        }
        return;
    }
    let mut o = 0;
    for oy in 0..g.out_h {
        let (y0, y1, _) = g.rows(oy);
        for ox in 0..g.out_w {
            let (x0, x1, _) = g.cols(ox);
            let count = (y1 - y0) * (x1 - x0);
            let m_c = rq.multiplier_for(count);
            let zero_sum = (count as i32).wrapping_mul(in_fmt.zero_point);
            let mut c0 = 0;
            while c0 < g.out_c {
                let n = (g.out_c - c0).min(POOL_CH);
                let mut sums = [0i32; POOL_CH];
                for y in y0..y1 {
                    let row = &input[(y * g.in_w + x0) * c..(y * g.in_w + x1) * c];
                    for px in row.chunks_exact(c) {
                        for (s, &a) in sums.iter_mut().zip(&px[c0..c0 + n]) {
                            *s = s.wrapping_add(a as i8 as i32);
                        }
                    }
                }
                for (j, &s) in sums[..n].iter().enumerate() {
                    store(output, rq.out.bits, o + c0 + j, rq.finish(s.wrapping_sub(zero_sum), m_c));
                }
                c0 += n;
            }
            o += g.out_c;
        }
    }
    reference::clear_tail(output, rq.out, o);
}
