//! The convolution driver of the AVX2 and AVX-VNNI paths (a fully connected layer is its
//! one-pixel case): an im2col GEMM over blocks of [`PIX`] output pixels and [`CH`] output
//! channels, read along `K` one 256-bit chunk at a time. What differs between the two
//! instruction sets is a [`FieldDot`]: how a receptive field is held (AVX2: `i16` values `a − z`
//! for `VPMADDWD`; AVX-VNNI: bytes `a + 128` for `VPDPBUSD`, which multiplies unsigned by signed
//! bytes), how a chunk of weights is read, and the multiply-accumulate.
//!
//! A field that holds `a − z + o` per value makes sums `Σ w·(a − z) + o·Σw`; the second term
//! joins each channel's bias once per layer (`Σw` from the same multiply-accumulate against a
//! field of ones). Each product is at most `255·128` in magnitude and neither instruction
//! saturates its 32-bit sums, so they are exact for `K ≤ K_MAX` (65,536). A block's eight sums
//! (4 pixels × 2 channels) are reduced across lanes into one register and requantized together:
//! [`Rq32`] in vector form ([`LaneQ`]: `VPSLLVD`, the 32 × 16-bit high product from two
//! `VPMULLD`, `VPSRAVD`, the clamp).
//!
//! The block (`K` values a pixel, a partial last chunk copied zero-padded into a register) and
//! each channel's requantization ([`RqTable`], `28·out_c` bytes) live in the op's planned
//! scratch, which holds both for any `K` and channel count (`8·⌈K⌉₄ + 28·out_c` bytes or more
//! for a convolution); a fully connected layer's scratch (`2·⌈K⌉₄`) has no room for the table,
//! and its one pixel makes each channel's requantization as it goes.

use core::arch::x86_64::*;

use super::super::reference::{self, ActFormat, Layer, Window};
use super::super::scratch::Scratch;
use super::super::util::{put, sum_bound, ChannelQ, Rq32};
use super::{LaneQ, K_MAX};
use crate::quant::Bits;

/// Output pixels per block.
const PIX: usize = 4;
/// Output channels per block.
const CH: usize = 2;

/// The part of [`conv_blocks`] that differs per instruction set. A value of it proves that the
/// CPU has the instructions its methods use (it is made from the path's proof), and the methods
/// are inlined into the driver, itself inlined into a function compiled for those instructions.
pub(super) trait FieldDot: Copy {
    /// Bytes per value of a receptive field.
    const BYTES: usize;
    /// Values per 256-bit chunk of a field.
    const CHUNK: usize = 32 / Self::BYTES;
    /// The receptive field of output pixel `(oy, ox)` into `dst` (`K·BYTES` bytes, `K` the
    /// field's length): `a − z + offset` per value, taps in the padding `offset`.
    fn field(self, g: &Window, input: &[u8], fmt: ActFormat, oy: usize, ox: usize, dst: &mut [u8]);
    /// Weights `CHUNK·j..` of a packed `B`-bit row as [`FieldDot::mac`] takes them. `row` holds
    /// the row and whatever follows it in the weights (read only within `row`; past its end,
    /// zeros); the weights past `K` meet field values that are 0.
    fn weights<const B: usize>(self, row: &[u8], j: usize) -> __m256i;
    /// [`FieldDot::weights`] of a chunk that lies inside `row` (all but a row's partial last
    /// one); zeros otherwise. Without the copy of a partial chunk: in the inner loop, its call
    /// made the compiler keep the accumulators in memory.
    fn whole_weights<const B: usize>(self, row: &[u8], j: usize) -> __m256i;
    /// `acc` plus the products of a field chunk and a weight chunk, in 32-bit lanes.
    fn mac(self, acc: __m256i, field: __m256i, weights: __m256i) -> __m256i;
    /// What a field value holds beyond `a − z`.
    fn offset(self, fmt: ActFormat) -> i32;
}

/// The lane sums of eight accumulators, in their order, as one register.
#[inline(always)]
fn hsum8(v: &[__m256i; PIX * CH]) -> __m256i {
    // SAFETY: [`conv_blocks`]' callers run on CPUs with AVX2 (their `FieldDot` proves it).
    unsafe {
        let h01 = _mm256_hadd_epi32(v[0], v[1]);
        let h23 = _mm256_hadd_epi32(v[2], v[3]);
        let h45 = _mm256_hadd_epi32(v[4], v[5]);
        let h67 = _mm256_hadd_epi32(v[6], v[7]);
        let h0123 = _mm256_hadd_epi32(h01, h23);
        let h4567 = _mm256_hadd_epi32(h45, h67);
        let lo = _mm256_permute2x128_si256(h0123, h4567, 0x20);
        let hi = _mm256_permute2x128_si256(h0123, h4567, 0x31);
        _mm256_add_epi32(lo, hi)
    }
}

/// The sum of the eight lanes of one accumulator.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn hsum1(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_hadd_epi32(s, s);
    let s = _mm_hadd_epi32(s, s);
    _mm_cvtsi128_si32(s)
}

/// Each channel's [`Rq32`] with `offset·Σw` taken from its bias, made once per layer into the
/// kernel's scratch (`28·out_c` bytes, what a planned convolution scratch holds for its
/// requantization table), field by field (`[field][channel]`), so that a pair of channels'
/// field is one 64-bit broadcast.
struct RqTable<'s> {
    /// bias, shl, m, round, sh, scale, slow: `oc` values each.
    fields: &'s [i32],
    oc: usize,
}

impl RqTable<'_> {
    #[inline(always)]
    fn channel(&self, c: usize) -> Rq32 {
        let f = |i: usize| self.fields[i * self.oc + c];
        Rq32 {
            bias: f(0),
            shl: f(1) as u32,
            m: f(2),
            round: f(3),
            sh: f(4) as u32,
            scale: f(5) as u32,
            slow: f(6) as u32,
        }
    }

    /// [`LaneQ`] of channels `c0` and `c1 ∈ {c0, c0 + 1}` in alternate lanes.
    #[inline(always)]
    fn pair(&self, c0: usize, c1: usize) -> LaneQ {
        let v = |i: usize| {
            let (a, b) = (self.fields[i * self.oc + c0], self.fields[i * self.oc + c1]);
            // SAFETY: as in [`hsum8`].
            unsafe { _mm256_set1_epi64x((a as u32 as i64) | ((b as i64) << 32)) }
        };
        LaneQ { bias: v(0), shl: v(1), m: v(2), round: v(3), sh: v(4) }
    }
}

/// The convolution with `B`-bit weights on the instruction set of `d`; `false` (nothing
/// written) for `K` of 0 or above `K_MAX`, weights shorter than the layer's, and when `scratch`
/// cannot hold its block of receptive fields (`min(PIX, pixels)·K·BYTES` bytes) and, for more
/// than one pixel, the requantization table ([`RqTable`]), which a planned scratch always does.
/// Inlined into a function compiled for `d`'s instructions.
#[inline(always)]
pub(super) fn conv_blocks<D: FieldDot, const B: usize>(
    d: D,
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> bool {
    let Layer { in_fmt, weights, ref rq, .. } = *layer;
    let bits = Bits::from_width(B as u32);
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let row_bytes = bits.packed_len(k);
    let oc = g.out_c;
    if k == 0 || k > K_MAX || weights.len() < oc * row_bytes {
        return false;
    }
    // Whole chunks read from the block; a partial last chunk from `tails`.
    let (full, part) = (k / D::CHUNK, k % D::CHUNK);
    let chunks = k.div_ceil(D::CHUNK);
    let stride = k * D::BYTES;
    let npix = g.out_h * g.out_w;
    let row = |c: usize| -> &[u8] {
        if c < oc {
            &weights[c * row_bytes..]
        } else {
            &[]
        }
    };
    let mut s = Scratch::new(scratch);
    let Some(x) = s.take::<u8>(PIX.min(npix) * stride) else {
        return false;
    };
    let fields = match npix > 1 {
        true => match s.take::<i32>(7 * oc) {
            Some(f) => Some(f),
            None => return false,
        },
        false => None,
    };
    // SAFETY (every `unsafe` below but the loads): `d` proves the CPU has AVX2.
    let load = |bytes: &[u8; 32]| unsafe { _mm256_loadu_si256(bytes.as_ptr() as *const __m256i) };

    // Per channel: `offset·Σw` over the row's K weights (the ones stop at K) out of the bias.
    let offset = d.offset(in_fmt);
    let ones = |n: usize| {
        let mut v = [0u8; 32];
        for i in 0..n {
            v[i * D::BYTES] = 1;
        }
        load(&v)
    };
    let (all_ones, last_ones) = (ones(D::CHUNK), ones(part));
    let bound = sum_bound(k, bits, in_fmt.bits);
    let requant = |c: usize| {
        let f = Rq32::new(&ChannelQ::new(rq, c), bound, 0);
        if offset == 0 {
            return f;
        }
        let r = row(c);
        // SAFETY: as above.
        let mut acc = unsafe { _mm256_setzero_si256() };
        for j in 0..chunks {
            acc = d.mac(acc, if j < full { all_ones } else { last_ones }, d.weights::<B>(r, j));
        }
        // SAFETY: as above.
        f.with_bias_offset(offset.wrapping_mul(-unsafe { hsum1(acc) }))
    };
    let table = fields.map(|fields| {
        for c in 0..oc {
            let f = requant(c);
            let values = [f.bias, f.shl as i32, f.m, f.round, f.sh as i32, f.scale as i32, f.slow as i32];
            for (i, v) in values.into_iter().enumerate() {
                fields[i * oc + c] = v;
            }
        }
        RqTable { fields, oc }
    });
    // SAFETY: as above.
    let (lo, hi) = unsafe { (_mm256_set1_epi32(rq.min), _mm256_set1_epi32(rq.max)) };
    let out_bits = rq.out.bits;

    let mut q0 = 0;
    while q0 < npix {
        let n = (npix - q0).min(PIX);
        // SAFETY: as above.
        let mut tails = [unsafe { _mm256_setzero_si256() }; PIX];
        for (p, tail) in tails.iter_mut().enumerate().take(n) {
            let q = q0 + p;
            let xp = &mut x[p * stride..(p + 1) * stride];
            d.field(g, input, in_fmt, q / g.out_w, q % g.out_w, xp);
            if part > 0 {
                let mut t = [0u8; 32];
                t[..part * D::BYTES].copy_from_slice(&xp[32 * full..]);
                *tail = load(&t);
            }
        }
        // The pixels past a partial block read the first one's field (their sums unused).
        let xs: [&[u8]; PIX] =
            core::array::from_fn(|p| if p < n { &x[p * stride..(p + 1) * stride] } else { &x[..stride] });
        for i in 0..oc.div_ceil(CH) {
            let c0 = CH * i;
            let nc = (oc - c0).min(CH);
            let c1 = c0 + nc - 1;
            let (r0, r1) = (row(c0), row(c0 + 1));
            // SAFETY: as above.
            let mut acc = [unsafe { _mm256_setzero_si256() }; PIX * CH];
            for j in 0..full {
                let (w0, w1) = (d.whole_weights::<B>(r0, j), d.whole_weights::<B>(r1, j));
                for (p, xp) in xs.iter().enumerate() {
                    // SAFETY: `32j + 32 ≤ 32·full ≤ K·BYTES`, the length of `xp`; AVX2 as above.
                    let xv = unsafe { _mm256_loadu_si256(xp.as_ptr().add(32 * j) as *const __m256i) };
                    acc[CH * p] = d.mac(acc[CH * p], xv, w0);
                    acc[CH * p + 1] = d.mac(acc[CH * p + 1], xv, w1);
                }
            }
            if part > 0 {
                // The weights past K (the next row's, or zeros) meet zeros.
                let (w0, w1) = (d.weights::<B>(r0, full), d.weights::<B>(r1, full));
                for (p, xv) in tails.iter().enumerate() {
                    acc[CH * p] = d.mac(acc[CH * p], *xv, w0);
                    acc[CH * p + 1] = d.mac(acc[CH * p + 1], *xv, w1);
                }
            }
            let sums = hsum8(&acc);
            let (f0, f1) = match &table {
                Some(t) => (t.channel(c0), t.channel(c1)),
                None => (requant(c0), if c1 == c0 { requant(c0) } else { requant(c1) }),
            };
            let slow = f0.is_slow() || f1.is_slow();
            if out_bits == Bits::B8 && !slow {
                let q = match &table {
                    Some(t) => t.pair(c0, c1),
                    // SAFETY: as above.
                    None => unsafe { LaneQ::new([f0, f1, f0, f1, f0, f1, f0, f1]) },
                };
                // SAFETY: as above.
                let bytes = unsafe {
                    let v = _mm256_min_epi32(_mm256_max_epi32(q.apply(sums), lo), hi);
                    // Bytes (p0 c0, p0 c1, p1 c0, p1 c1) in lane 0 and (p2 …, p3 …) in lane 4.
                    let b = _mm256_packs_epi16(_mm256_packs_epi32(v, v), _mm256_setzero_si256());
                    [_mm256_extract_epi32(b, 0), _mm256_extract_epi32(b, 4)].map(|w| w.to_le_bytes())
                };
                for p in 0..n {
                    let pair = &bytes[p / 2][2 * (p % 2)..2 * (p % 2) + 2];
                    let o = (q0 + p) * oc + c0;
                    output[o..o + nc].copy_from_slice(&pair[..nc]);
                }
            } else {
                let mut s = [0i32; PIX * CH];
                // SAFETY: `s` holds 32 bytes; AVX2 as above.
                unsafe { _mm256_storeu_si256(s.as_mut_ptr() as *mut __m256i, sums) };
                for p in 0..n {
                    for (c, f) in [f0, f1].iter().enumerate().take(nc) {
                        let v = f.apply(s[CH * p + c], rq.min, rq.max);
                        put(output, out_bits, (q0 + p) * oc + c0 + c, v);
                    }
                }
            }
        }
        q0 += n;
    }
    reference::clear_tail(output, rq.out, npix * oc);
    true
}
