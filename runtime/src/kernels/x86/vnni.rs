//! Convolution and fully connected with AVX-VNNI (`VPDPBUSD` on 256-bit registers), chosen at
//! run time (`std` feature) or from the compile-time target features.
//!
//! An im2col GEMM over blocks of [`PIX`] output pixels and [`CH`] output channels, read along
//! `K` 32 bytes at a time. `VPDPBUSD` multiplies unsigned bytes by signed bytes, four products
//! per 32-bit lane, so the activations enter as `u = a + 128` (`a ^ 0x80`: padding taps give
//! `z + 128`, lanes past `K` are 0) and the weights as signed bytes (4- and 2-bit rows unpacked
//! 32 weights at a time and used for the block's four pixels). Then
//! `Σ w·(a − z) = Σ w·u − (128 + z)·Σw`; the second term joins each channel's bias once per
//! layer (`Σw` from the same instruction against ones). Each product is at most `255·128` in
//! magnitude and `VPDPBUSD` (not `VPDPBUSDS`) adds them without saturation, so the sums are
//! exact for `K ≤ K_MAX` (65,536). A block's eight sums (4 pixels × 2 channels) are reduced across
//! lanes into one register and requantized together: [`Rq32`] in vector form (`VPSLLVD`, the
//! 32 × 16-bit high product from two `VPMULLD`, `VPSRAVD`, the clamp).
//!
//! The block (`K` bytes a pixel, a partial last chunk of 32 copied zero-padded into a register)
//! and each channel's requantization (`RqTable`, `28·out_c` bytes) live in the op's planned
//! scratch, which holds both for any `K` and channel count; a fully connected layer's scratch
//! has no room for the table, and its one pixel makes each channel's requantization as it goes.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::super::portable;
use super::super::reference::{self, ActFormat, Layer, Requant, Window};
use super::super::scratch::Scratch;
use super::super::util::{fc_window, gather_into, put, sum_bound, ChannelQ, Rq32};
use super::super::{KernelTable, Path};
use super::{LaneQ, K_MAX};
use crate::quant::Bits;

/// Output pixels per block.
const PIX: usize = 4;
/// Output channels per block.
const CH: usize = 2;

/// Proof that the CPU has AVX2 and AVX-VNNI: obtained from [`AvxVnni::new`], it makes these
/// kernels safe to call.
#[derive(Debug, Clone, Copy)]
pub struct AvxVnni(());

impl AvxVnni {
    /// `Some` when the CPU has AVX2 and AVX-VNNI (run-time detection with the `std` feature,
    /// else the compile-time target features).
    pub fn new() -> Option<AvxVnni> {
        #[cfg(feature = "std")]
        let ok = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avxvnni");
        #[cfg(not(feature = "std"))]
        let ok = cfg!(all(target_feature = "avx2", target_feature = "avxvnni"));
        ok.then_some(AvxVnni(()))
    }

    /// These kernels as a [`KernelTable`], with AVX2's depthwise kernel (reported as AVX-VNNI).
    pub fn table(self) -> KernelTable {
        KernelTable {
            path: Path::AvxVnni,
            conv2d: |g, layer, input, output, scratch| AvxVnni(()).conv2d(g, layer, input, output, scratch),
            depthwise_conv2d: |g, layer, input, output, scratch| {
                super::Avx2(()).depthwise_conv2d(g, layer, input, output, scratch);
                Path::AvxVnni
            },
            fully_connected: |n, m, layer, input, output, scratch| {
                AvxVnni(()).fully_connected(n, m, layer, input, output, scratch)
            },
        }
    }

    /// Conv2D, same bytes as [`reference::conv2d`]; returns the path that ran: AVX-VNNI, or the
    /// portable kernel for `K` of 0 or above `K_MAX` (65,536), weights shorter than the layer's
    /// and a scratch smaller than [`super::super::conv2d_scratch_bytes`] (which the loader rules
    /// out for a model).
    pub fn conv2d(self, g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> Path {
        let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
        let k = g.kernel_h * g.kernel_w * g.in_c;
        let fits = k > 0 && k <= K_MAX && weights.len() >= g.out_c * weight_bits.packed_len(k);
        let (i, f, w, o, s) = (input, in_fmt, weights, &mut *output, &mut *scratch);
        // SAFETY: `self` proves the CPU has AVX2 and AVX-VNNI.
        let ran = fits
            && unsafe {
                match weight_bits {
                    Bits::B8 => conv2d_vnni::<8>(g, i, f, w, rq, o, s),
                    Bits::B4 => conv2d_vnni::<4>(g, i, f, w, rq, o, s),
                    Bits::B2 => conv2d_vnni::<2>(g, i, f, w, rq, o, s),
                }
            };
        if !ran {
            return portable::conv2d(g, layer, input, output, scratch);
        }
        Path::AvxVnni
    }

    /// Fully connected, same bytes as [`reference::fully_connected`]: a one-pixel convolution
    /// (the path that ran, as [`AvxVnni::conv2d`]).
    pub fn fully_connected(
        self,
        in_features: usize,
        out_features: usize,
        layer: &Layer<'_>,
        input: &[u8],
        output: &mut [u8],
        scratch: &mut [u8],
    ) -> Path {
        let g = fc_window(in_features, out_features);
        self.conv2d(&g, layer, input, output, scratch)
    }
}

/// Weights `32j..32j + 32` of a packed `B`-bit row as signed bytes. `row` holds the row and
/// whatever follows it in the layer's weights (read only within `row`; past its end, zeros); the
/// weights past `K` meet activations that are 0.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn chunk<const B: usize>(row: &[u8], j: usize) -> __m256i {
    let bytes = 4 * B;
    let mut tmp = [0u8; 32];
    let src = match row.get(j * bytes..j * bytes + bytes) {
        Some(s) => s,
        None => {
            let rest = row.get(j * bytes..).unwrap_or(&[]);
            tmp[..rest.len()].copy_from_slice(rest);
            &tmp[..bytes]
        }
    };
    match B {
        8 => {
            // SAFETY: `src` holds 32 bytes.
            unsafe { _mm256_loadu_si256(src.as_ptr() as *const __m256i) }
        }
        4 => {
            // SAFETY: `src` holds 16 bytes.
            let v = unsafe { _mm_loadu_si128(src.as_ptr() as *const __m128i) };
            // Weight 2i is the low nibble of byte i: the nibbles interleaved back into order,
            // then sign-extended as `(x ^ 8) − 8`.
            let m = _mm_set1_epi8(0x0F);
            let (lo, hi) = (_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16(v, 4), m));
            let w = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
            let e = _mm256_set1_epi8(8);
            _mm256_sub_epi8(_mm256_xor_si256(w, e), e)
        }
        _ => {
            // SAFETY: `src` holds 8 bytes.
            let v = unsafe { _mm_loadl_epi64(src.as_ptr() as *const __m128i) };
            // Weight 4i + j is bits 2j..2j+2 of byte i: the four crumbs of each byte interleaved
            // back into order, then sign-extended as `(x ^ 2) − 2`.
            let m = _mm_set1_epi8(3);
            let s0 = _mm_and_si128(v, m);
            let s1 = _mm_and_si128(_mm_srli_epi16(v, 2), m);
            let s2 = _mm_and_si128(_mm_srli_epi16(v, 4), m);
            let s3 = _mm_and_si128(_mm_srli_epi16(v, 6), m);
            let (a, b) = (_mm_unpacklo_epi8(s0, s1), _mm_unpacklo_epi8(s2, s3));
            let w = _mm256_set_m128i(_mm_unpackhi_epi16(a, b), _mm_unpacklo_epi16(a, b));
            let e = _mm256_set1_epi8(2);
            _mm256_sub_epi8(_mm256_xor_si256(w, e), e)
        }
    }
}

/// The lane sums of eight accumulators, in their order, as one register.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum8(v: &[__m256i; PIX * CH]) -> __m256i {
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

/// The sum of the eight lanes of one accumulator.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn hsum1(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_hadd_epi32(s, s);
    let s = _mm_hadd_epi32(s, s);
    _mm_cvtsi128_si32(s)
}

/// Each channel's [`Rq32`] with `(128 + z)·Σw` in its bias, made once per layer into the
/// kernel's scratch (`28·out_c` bytes, what a planned convolution scratch holds for its
/// requantization table), field by field (`[field][channel]`), so that a pair of channels'
/// field is one 64-bit broadcast.
struct RqTable<'s> {
    /// bias, shl, m, round, sh, scale, slow: `oc` values each.
    fields: &'s [i32],
    oc: usize,
}

impl RqTable<'_> {
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
    #[inline]
    #[target_feature(enable = "avx2")]
    fn pair(&self, c0: usize, c1: usize) -> LaneQ {
        let v = |i: usize| {
            let (a, b) = (self.fields[i * self.oc + c0], self.fields[i * self.oc + c1]);
            _mm256_set1_epi64x((a as u32 as i64) | ((b as i64) << 32))
        };
        LaneQ { bias: v(0), shl: v(1), m: v(2), round: v(3), sh: v(4) }
    }
}

/// The AVX-VNNI convolution; `false` (nothing written) when `scratch` cannot hold its block
/// of receptive fields (`min(PIX, pixels)·K` bytes) and, for more than one pixel, the
/// requantization table ([`RqTable`]): a planned scratch always does (`8·⌈K⌉₄ + 28·out_c`
/// bytes or more for a convolution, `2·⌈K⌉₄` for a fully connected layer, whose one pixel
/// makes each channel's requantization as it goes).
#[target_feature(enable = "avx2,avxvnni")]
fn conv2d_vnni<const B: usize>(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    weights: &[u8],
    rq: &Requant<'_>,
    output: &mut [u8],
    scratch: &mut [u8],
) -> bool {
    let bits = Bits::from_width(B as u32);
    let k = g.kernel_h * g.kernel_w * g.in_c;
    // Whole chunks of 32 values read from the block; a partial last chunk from `tails`.
    let (full, part) = (k / 32, k % 32);
    let chunks = k.div_ceil(32);
    let row_bytes = bits.packed_len(k);
    let oc = g.out_c;
    let npix = g.out_h * g.out_w;
    let row = |c: usize| -> &[u8] {
        if c < oc {
            &weights[c * row_bytes..]
        } else {
            &[]
        }
    };
    let mut s = Scratch::new(scratch);
    let Some(x) = s.take::<u8>(PIX.min(npix) * k) else {
        return false;
    };
    let fields = match npix > 1 {
        true => match s.take::<i32>(7 * oc) {
            Some(f) => Some(f),
            None => return false,
        },
        false => None,
    };

    // Per channel: Σw over the row's K weights (the ones stop at K), folded into the bias with
    // (128 + z).
    let mut last = [0u8; 32];
    last[..part].fill(1);
    // SAFETY: `last` holds 32 bytes.
    let last_ones = unsafe { _mm256_loadu_si256(last.as_ptr() as *const __m256i) };
    let bound = sum_bound(k, bits, in_fmt.bits);
    let offset = 128 + in_fmt.zero_point;
    let requant = |c: usize| {
        let r = row(c);
        let mut acc = _mm256_setzero_si256();
        for j in 0..chunks {
            let one = if j < full { _mm256_set1_epi8(1) } else { last_ones };
            acc = _mm256_dpbusd_avx_epi32(acc, one, chunk::<B>(r, j));
        }
        Rq32::new(&ChannelQ::new(rq, c), bound, 0).with_bias_offset(offset.wrapping_mul(-hsum1(acc)))
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
    let (lo, hi) = (_mm256_set1_epi32(rq.min), _mm256_set1_epi32(rq.max));
    let out_bits = rq.out.bits;

    let mut q0 = 0;
    while q0 < npix {
        let n = (npix - q0).min(PIX);
        let mut tails = [_mm256_setzero_si256(); PIX];
        for (p, tail) in tails.iter_mut().enumerate().take(n) {
            let q = q0 + p;
            let xp = &mut x[p * k..(p + 1) * k];
            gather_into(g, input, in_fmt, q / g.out_w, q % g.out_w, xp);
            for a in xp.iter_mut() {
                *a ^= 0x80;
            }
            if part > 0 {
                let mut t = [0u8; 32];
                t[..part].copy_from_slice(&xp[32 * full..]);
                // SAFETY: `t` holds 32 bytes.
                *tail = unsafe { _mm256_loadu_si256(t.as_ptr() as *const __m256i) };
            }
        }
        // The pixels past a partial block read the first one's field (their sums unused).
        let xs: [&[u8]; PIX] = core::array::from_fn(|p| if p < n { &x[p * k..(p + 1) * k] } else { &x[..k] });
        for i in 0..oc.div_ceil(CH) {
            let c0 = CH * i;
            let nc = (oc - c0).min(CH);
            let c1 = c0 + nc - 1;
            let (r0, r1) = (row(c0), row(c0 + 1));
            let mut acc = [_mm256_setzero_si256(); PIX * CH];
            for j in 0..full {
                let (w0, w1) = (chunk::<B>(r0, j), chunk::<B>(r1, j));
                for (p, xp) in xs.iter().enumerate() {
                    // SAFETY: `32j + 32 ≤ 32·full ≤ K`, the length of `xp`.
                    let xv = unsafe { _mm256_loadu_si256(xp.as_ptr().add(32 * j) as *const __m256i) };
                    acc[CH * p] = _mm256_dpbusd_avx_epi32(acc[CH * p], xv, w0);
                    acc[CH * p + 1] = _mm256_dpbusd_avx_epi32(acc[CH * p + 1], xv, w1);
                }
            }
            if part > 0 {
                // The weights past K (the next row's, or zeros) meet zeros.
                let (w0, w1) = (chunk::<B>(r0, full), chunk::<B>(r1, full));
                for (p, xv) in tails.iter().enumerate() {
                    acc[CH * p] = _mm256_dpbusd_avx_epi32(acc[CH * p], *xv, w0);
                    acc[CH * p + 1] = _mm256_dpbusd_avx_epi32(acc[CH * p + 1], *xv, w1);
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
                    None => LaneQ::new([f0, f1, f0, f1, f0, f1, f0, f1]),
                };
                let v = _mm256_min_epi32(_mm256_max_epi32(q.apply(sums), lo), hi);
                // Bytes (p0 c0, p0 c1, p1 c0, p1 c1) in lane 0 and (p2 …, p3 …) in lane 4.
                let b = _mm256_packs_epi16(_mm256_packs_epi32(v, v), _mm256_setzero_si256());
                let bytes = [_mm256_extract_epi32(b, 0), _mm256_extract_epi32(b, 4)].map(|w| w.to_le_bytes());
                for p in 0..n {
                    let pair = &bytes[p / 2][2 * (p % 2)..2 * (p % 2) + 2];
                    let o = (q0 + p) * oc + c0;
                    output[o..o + nc].copy_from_slice(&pair[..nc]);
                }
            } else {
                let mut s = [0i32; PIX * CH];
                // SAFETY: `s` holds 32 bytes.
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
