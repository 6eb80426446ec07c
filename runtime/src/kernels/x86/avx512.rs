//! Convolution and fully connected with AVX-512 VNNI (`VPDPBUSD` on 512-bit registers), chosen
//! at run time (`std` feature) or from the compile-time target features.
//!
//! The GEMM runs with output channels across the lanes: a register holds 16 channels' sums, so
//! the results come out in NHWC order and need no reduction across lanes. Once per layer the
//! weights are laid out for it (`[channel group][k/4][16 channels][4 k]`, signed bytes: each row
//! unpacked to bytes, then its 4-byte groups placed at the channel's lane), with each channel's
//! `Σw`. A block of `P` pixels × `G` groups of 16 channels keeps `P·G` accumulators; for every 4
//! values of `k` it loads `G` weight registers, broadcasts each pixel's 4 activations and issues
//! `P·G` `VPDPBUSD`. Activations enter as `u = a + 128` (`a ^ 0x80`, padding taps `z + 128`)
//! and `(128 + z)·Σw` joins the bias, as in [`super::vnni`]; the sums are exact for the same
//! reasons. Requantization is [`Rq32`] in 512-bit vector form, then `VPMOVSDB`.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::super::reference::{self, ActFormat, Requant, Window};
use super::super::util::{fc_window, gather, put, sum_bound, ChannelQ, Rq32};
use super::AvxVnni;
use crate::quant::Bits;

/// Largest receptive field `K` (rounded up to 32).
const KPAD_MAX: usize = 2048;
/// Most output channels.
const OC_MAX: usize = 256;
/// Bytes of the laid-out weights of a layer (`⌈oc/16⌉·16 · ⌈K/4⌉·4`); larger: AVX-VNNI.
const WP_MAX: usize = 65536;

/// Proof that the CPU has AVX-512 F/BW/VL/VNNI and AVX2 (not AVX-VNNI, which some AVX-512 CPUs
/// lack: the fallback for oversized layers checks it).
#[derive(Debug, Clone, Copy)]
pub struct Avx512Vnni(());

impl Avx512Vnni {
    /// `Some` when the CPU has AVX-512 F, BW, VL and VNNI and AVX2 (run-time detection with the
    /// `std` feature, else the compile-time target features).
    pub fn new() -> Option<Avx512Vnni> {
        #[cfg(feature = "std")]
        let ok = std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx2");
        #[cfg(not(feature = "std"))]
        let ok = cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vl",
            target_feature = "avx512vnni",
            target_feature = "avx2"
        ));
        ok.then_some(Avx512Vnni(()))
    }

    /// Conv2D, same bytes as [`reference::conv2d`].
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        self,
        g: &Window,
        input: &[u8],
        in_fmt: ActFormat,
        weights: &[u8],
        weight_bits: Bits,
        rq: &Requant<'_>,
        output: &mut [u8],
    ) {
        let k = g.kernel_h * g.kernel_w * g.in_c;
        let fits = k > 0
            && k.next_multiple_of(32) <= KPAD_MAX
            && g.out_c <= OC_MAX
            && g.out_c.next_multiple_of(16) * k.next_multiple_of(4) <= WP_MAX
            && weights.len() >= g.out_c * weight_bits.packed_len(k);
        if !fits {
            return match AvxVnni::new() {
                Some(v) => v.conv2d(g, input, in_fmt, weights, weight_bits, rq, output),
                None => super::Avx2(()).conv2d(g, input, in_fmt, weights, weight_bits, rq, output),
            };
        }
        // SAFETY: `self` proves the CPU has AVX-512 F/BW/VL/VNNI and AVX2.
        unsafe {
            match weight_bits {
                Bits::B8 => conv2d_512::<8>(g, input, in_fmt, weights, rq, output),
                Bits::B4 => conv2d_512::<4>(g, input, in_fmt, weights, rq, output),
                Bits::B2 => conv2d_512::<2>(g, input, in_fmt, weights, rq, output),
            }
        }
    }

    /// Fully connected, same bytes as [`reference::fully_connected`]: a one-pixel convolution.
    #[allow(clippy::too_many_arguments)]
    pub fn fully_connected(
        self,
        in_features: usize,
        out_features: usize,
        input: &[u8],
        in_fmt: ActFormat,
        weights: &[u8],
        weight_bits: Bits,
        rq: &Requant<'_>,
        output: &mut [u8],
    ) {
        let g = fc_window(in_features, out_features);
        self.conv2d(&g, input, in_fmt, weights, weight_bits, rq, output)
    }
}

/// [`Rq32::unclamped`] of 16 channels (fast ones) as vectors over their lanes, with the clamp.
#[derive(Clone, Copy)]
struct LaneQ16 {
    bias: __m512i,
    shl: __m512i,
    m: __m512i,
    round: __m512i,
    sh: __m512i,
}

impl LaneQ16 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn new(f: &[Rq32; 16]) -> LaneQ16 {
        let v = |x: [i32; 16]| {
            // SAFETY: `x` holds 64 bytes.
            unsafe { _mm512_loadu_si512(x.as_ptr() as *const __m512i) }
        };
        LaneQ16 {
            bias: v(f.map(|f| f.bias)),
            shl: v(f.map(|f| f.shl as i32)),
            m: v(f.map(|f| f.m)),
            round: v(f.map(|f| f.round)),
            sh: v(f.map(|f| f.sh as i32)),
        }
    }

    /// As `LaneQ::apply` of the AVX2 kernels, 16 lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn apply(&self, s: __m512i) -> __m512i {
        let v = _mm512_sllv_epi32(_mm512_add_epi32(s, self.bias), self.shl);
        let hi = _mm512_mullo_epi32(_mm512_srai_epi32(v, 16), self.m);
        let lo = _mm512_srli_epi32(_mm512_mullo_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0xFFFF)), self.m), 16);
        _mm512_srav_epi32(_mm512_add_epi32(_mm512_add_epi32(hi, lo), self.round), self.sh)
    }
}

/// Row `c` of `B`-bit weights (`K` of them) as signed bytes into `dst` (zero past `K`), and `Σw`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
fn unpack_row<const B: usize>(
    weights: &[u8],
    row_bytes: usize,
    c: usize,
    k: usize,
    ones: &[u8],
    dst: &mut [u8],
) -> i32 {
    let row = &weights[c * row_bytes..];
    let mut acc = _mm256_setzero_si256();
    for j in 0..k.div_ceil(32) {
        let w = super::vnni::chunk::<B>(row, j);
        // SAFETY: `ones` and `dst` hold at least `32·⌈K/32⌉ ≤ KPAD_MAX` bytes.
        unsafe {
            let one = _mm256_loadu_si256(ones.as_ptr().add(32 * j) as *const __m256i);
            // Bytes past K (the next row's, or zeros) are masked out by `ones`.
            let w = _mm256_sign_epi8(w, one);
            acc = _mm256_dpbusd_epi32(acc, one, w);
            _mm256_storeu_si256(dst.as_mut_ptr().add(32 * j) as *mut __m256i, w);
        }
    }
    let s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    let s = _mm_hadd_epi32(s, s);
    _mm_cvtsi128_si32(_mm_hadd_epi32(s, s))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn conv2d_512<const B: usize>(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    weights: &[u8],
    rq: &Requant<'_>,
    output: &mut [u8],
) {
    let bits = match B {
        8 => Bits::B8,
        4 => Bits::B4,
        _ => Bits::B2,
    };
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let kq = k.div_ceil(4);
    let row_bytes = bits.packed_len(k);
    let oc = g.out_c;
    let groups = oc.div_ceil(16);

    // The weights laid out per group, k/4 and lane; Σw folded into each channel's bias.
    let mut ones = [0u8; KPAD_MAX];
    ones[..k].fill(1);
    let mut wp = [0u8; WP_MAX];
    let mut row = [0u8; KPAD_MAX];
    let bound = sum_bound(k, bits, in_fmt.bits);
    let offset = 128 + in_fmt.zero_point;
    let mut fast = [Rq32::new(&ChannelQ::new(rq, 0), bound, 0); OC_MAX];
    for (c, f) in fast.iter_mut().enumerate().take(oc) {
        let sum_w = unpack_row::<B>(weights, row_bytes, c, k, &ones, &mut row);
        *f = Rq32::new(&ChannelQ::new(rq, c), bound, 0).with_bias_offset(offset.wrapping_mul(-sum_w));
        let (group, lane) = (c / 16, c % 16);
        let base = group * kq * 64 + lane * 4;
        for (q, w4) in row[..4 * kq].chunks_exact(4).enumerate() {
            wp[base + 64 * q..base + 64 * q + 4].copy_from_slice(w4);
        }
    }
    let mut lq = [LaneQ16::new(&[fast[0]; 16]); OC_MAX / 16];
    for (gi, q) in lq.iter_mut().enumerate().take(groups) {
        *q = LaneQ16::new(&core::array::from_fn(|j| fast[(16 * gi + j).min(oc - 1)]));
    }
    let slow = fast[..oc].iter().any(|f| f.slow.is_some());
    let direct = rq.out.bits == Bits::B8 && !slow;

    let npix = g.out_h * g.out_w;
    let ctx = Ctx { g, input, in_fmt, k, kq, oc, rq, wp: &wp, lq: &lq, fast: &fast, direct };
    // Pixels per block: more when there are few groups, so that a block has enough sums.
    match groups {
        1 => blocks::<8, 1>(&ctx, npix, output),
        2 => blocks::<6, 2>(&ctx, npix, output),
        3 => blocks::<4, 3>(&ctx, npix, output),
        _ => blocks::<4, 4>(&ctx, npix, output),
    }
    reference::clear_tail(output, rq.out, npix * oc);
}

/// What every block of a layer reads.
struct Ctx<'a> {
    g: &'a Window,
    input: &'a [u8],
    in_fmt: ActFormat,
    k: usize,
    kq: usize,
    oc: usize,
    rq: &'a Requant<'a>,
    wp: &'a [u8; WP_MAX],
    lq: &'a [LaneQ16; OC_MAX / 16],
    fast: &'a [Rq32; OC_MAX],
    /// 8-bit output and every channel fast: vector requantization and stores.
    direct: bool,
}

/// The layer in blocks of `P` pixels × `G` groups of 16 channels (the last group of a pass
/// may be partial, and a layer with more than `G` groups takes several passes per block).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn blocks<const P: usize, const G: usize>(ctx: &Ctx<'_>, npix: usize, output: &mut [u8]) {
    let (g, k, kq, oc) = (ctx.g, ctx.k, ctx.kq, ctx.oc);
    let groups = oc.div_ceil(16);
    let mut col = [0u8; KPAD_MAX];
    // Each pixel's activations `a ^ 0x80`, zero past K (where the weights are zero too).
    let mut x = [[0u8; KPAD_MAX]; P];
    let (lo, hi) = (_mm512_set1_epi32(ctx.rq.min), _mm512_set1_epi32(ctx.rq.max));
    let mut q0 = 0;
    while q0 < npix {
        let n = (npix - q0).min(P);
        for (p, xp) in x.iter_mut().enumerate().take(n) {
            let q = q0 + p;
            let src = gather(g, ctx.input, ctx.in_fmt, q / g.out_w, q % g.out_w, &mut col);
            for (d, &a) in xp.iter_mut().zip(src) {
                *d = a ^ 0x80;
            }
            xp[k..4 * kq].fill(0);
        }
        let mut g0 = 0;
        while g0 < groups {
            let mut acc = [[_mm512_setzero_si512(); G]; P];
            let wbase = g0 * kq * 64;
            for j in 0..kq {
                let mut w = [_mm512_setzero_si512(); G];
                for (gi, wv) in w.iter_mut().enumerate() {
                    // Groups past the layer's read the first group again (their sums unused).
                    let at = if g0 + gi < groups { wbase + (gi * kq + j) * 64 } else { wbase + j * 64 };
                    // SAFETY: `at + 64 ≤ groups·kq·64 ≤ WP_MAX`.
                    *wv = unsafe { _mm512_loadu_si512(ctx.wp.as_ptr().add(at) as *const __m512i) };
                }
                for (a, xp) in acc.iter_mut().zip(&x) {
                    let v = i32::from_le_bytes([xp[4 * j], xp[4 * j + 1], xp[4 * j + 2], xp[4 * j + 3]]);
                    let xb = _mm512_set1_epi32(v);
                    for (s, wv) in a.iter_mut().zip(&w) {
                        *s = _mm512_dpbusd_epi32(*s, xb, *wv);
                    }
                }
            }
            for (p, a) in acc.iter().enumerate().take(n) {
                for (gi, s) in a.iter().enumerate() {
                    let group = g0 + gi;
                    if group >= groups {
                        break;
                    }
                    let c0 = 16 * group;
                    let nc = (oc - c0).min(16);
                    let o = (q0 + p) * oc + c0;
                    if ctx.direct {
                        let v = _mm512_min_epi32(_mm512_max_epi32(ctx.lq[group].apply(*s), lo), hi);
                        let bytes = _mm512_cvtsepi32_epi8(v);
                        if nc == 16 {
                            let dst = &mut output[o..o + 16];
                            // SAFETY: `dst` holds 16 bytes.
                            unsafe { _mm_storeu_si128(dst.as_mut_ptr() as *mut __m128i, bytes) };
                        } else {
                            let mut tmp = [0u8; 16];
                            // SAFETY: `tmp` holds 16 bytes.
                            unsafe { _mm_storeu_si128(tmp.as_mut_ptr() as *mut __m128i, bytes) };
                            output[o..o + nc].copy_from_slice(&tmp[..nc]);
                        }
                    } else {
                        let mut sums = [0i32; 16];
                        // SAFETY: `sums` holds 64 bytes.
                        unsafe { _mm512_storeu_si512(sums.as_mut_ptr() as *mut __m512i, *s) };
                        for (c, &v) in sums.iter().enumerate().take(nc) {
                            let y = ctx.fast[c0 + c].apply(v, ctx.rq.min, ctx.rq.max);
                            put(output, ctx.rq.out.bits, o + c, y);
                        }
                    }
                }
            }
            g0 += G;
        }
        q0 += n;
    }
}
