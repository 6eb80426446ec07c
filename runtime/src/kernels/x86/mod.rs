//! x86-64 kernels with AVX2, chosen at run time (`std` feature) or from the compile-time target
//! features.
//!
//! **Convolution** is the driver of `blocks` (shared with AVX-VNNI: blocks of four output pixels
//! and two output channels, each channel's requantization made once per layer into a table and
//! applied eight sums at a time) over AVX2's `FieldDot`: each pixel's receptive field gathered
//! once as `i16` values `a − z` (padding taps 0, contract §3); each weight row read 16 weights at
//! a time and widened to `i16` lanes (8-bit: `VPMOVSXBW`; 4- and 2-bit: the packed bytes spread
//! with `VPSHUFB`, each value moved to the top of its lane with `VPMULLW` by a power of two and
//! sign-extended back with `VPSRAW`), then multiplied into the block's pixels with `VPMADDWD` (16
//! exact `i16 × i16` products summed in pairs into `i32` lanes: `|w·(a − z)| ≤ 128·255`, and the
//! lane sums are bounded by the accumulator bound of contract §3). The block lives in the op's
//! planned scratch (`kernels::scratch`), `2·K` bytes a pixel (the field gathered as bytes into
//! the upper half of its row and widened in place), beside the requantization table
//! (`28·out_c` bytes); so any `K` up to `K_MAX` (65,536) runs here, with a stack of a few hundred
//! bytes (the portable kernel only for a scratch too small, which a planned scratch never is:
//! `conv2d_bytes` is at least `4 + 9·⌈K⌉₄ + 28·out_c` for a convolution and `4 + 2·⌈K⌉₄` for a
//! fully connected layer, whose one pixel takes `2·K` and no table).
//! Fully connected is a one-pixel convolution. **Depthwise** convolution and the residual **add**
//! have AVX2 kernels of their own (see `depthwise_avx2` and `add_avx2`), which the VNNI paths
//! use too; the rest are the portable kernels compiled with AVX2 enabled.
//!
//! Where the CPU has them, `vnni` (AVX-VNNI) and `avx512` (AVX-512 VNNI) take the
//! convolutions and fully connected layers with `VPDPBUSD`: unsigned activation bytes `a + 128`
//! times signed weight bytes, `(128 + z)·Σw` folded into the bias, their blocks in the planned
//! scratch too. `kernels::active` prefers AVX-512 VNNI, then AVX-VNNI, then AVX2. Each
//! convolution returns the [`Path`] that ran: its own, the portable kernel's when it fell back,
//! or for AVX-512 VNNI the path it handed a layer outside its kernel to.
#![allow(unsafe_code)]

mod avx512;
mod blocks;
mod stacked;
mod vnni;

use core::arch::x86_64::*;

pub use avx512::Avx512Vnni;
pub use vnni::AvxVnni;

use super::portable;
use super::reference::{self, ActFormat, AddRequant, Layer, Requant, Window};
use super::util::{fc_window, gather_into, sum_bound, AddPlan, ChannelQ, Rq32};
use super::{KernelTable, Path};
use crate::quant::{load, Bits};
use blocks::FieldDot;

/// Largest receptive field `K` of the x86-64 convolutions (their `i32` sums, each product at
/// most `128·255` in magnitude, stay exact: `K·128·255 < 2^31`); larger: portable.
const K_MAX: usize = 1 << 16;

/// Proof that the CPU has AVX2: obtained from [`Avx2::new`], it makes the AVX2 kernels safe to call.
#[derive(Debug, Clone, Copy)]
pub struct Avx2(());

impl Avx2 {
    /// `Some` when the CPU has AVX2 (run-time detection with the `std` feature, else the
    /// compile-time target features).
    pub fn new() -> Option<Avx2> {
        #[cfg(feature = "std")]
        let ok = std::is_x86_feature_detected!("avx2");
        #[cfg(not(feature = "std"))]
        let ok = cfg!(target_feature = "avx2");
        ok.then_some(Avx2(()))
    }

    /// These kernels as a [`KernelTable`] (AVX2 in every entry: depthwise has no fallback).
    pub fn table(self) -> KernelTable {
        KernelTable {
            path: Path::Avx2,
            conv2d: |g, layer, input, output, scratch| Avx2(()).conv2d(g, layer, input, output, scratch),
            depthwise_conv2d: |g, layer, input, output, scratch| {
                Avx2(()).depthwise_conv2d(g, layer, input, output, scratch);
                Path::Avx2
            },
            fully_connected: |n, m, layer, input, output, scratch| {
                Avx2(()).fully_connected(n, m, layer, input, output, scratch)
            },
        }
    }

    /// Conv2D, same bytes as [`reference::conv2d`]; returns the path that ran: AVX2, or the
    /// portable kernel for `K` of 0 or above `K_MAX` (65,536) and for a scratch smaller than
    /// [`super::conv2d_scratch_bytes`] (which the loader rules out for a model).
    pub fn conv2d(self, g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> Path {
        // SAFETY: `self` proves the CPU has AVX2.
        if !unsafe { conv2d_avx2(g, layer, input, output, scratch) } {
            return portable::conv2d(g, layer, input, output, scratch);
        }
        Path::Avx2
    }

    /// Depthwise Conv2D, same bytes as [`reference::depthwise_conv2d`] (the portable kernel,
    /// vectorized for AVX2 by the compiler).
    pub fn depthwise_conv2d(self, g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) {
        // SAFETY: `self` proves the CPU has AVX2.
        unsafe { depthwise_avx2(g, layer, input, output, scratch) }
    }

    /// Fully connected, same bytes as [`reference::fully_connected`]: a one-pixel convolution,
    /// or for rows past `K_MAX` the portable fully connected kernel (the path that ran).
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
        // SAFETY: `self` proves the CPU has AVX2.
        if unsafe { conv2d_avx2(&g, layer, input, output, scratch) } {
            return Path::Avx2;
        }
        // Not the portable convolution: its blocks of four pixels need four times the scratch a
        // fully connected layer plans, which sent rows past `K_MAX` to the scalar reference.
        portable::fully_connected(in_features, out_features, layer, input, output, scratch)
    }

    /// Residual add, same bytes as [`reference::add`] (the portable kernel compiled for AVX2).
    pub fn add(
        self,
        arena: &mut [u8],
        n: usize,
        a: (usize, ActFormat),
        b: (usize, ActFormat),
        out: usize,
        rq: &AddRequant,
    ) {
        // SAFETY: `self` proves the CPU has AVX2.
        unsafe { add_avx2(arena, n, a, b, out, rq) }
    }

    /// Average pool, same bytes as [`reference::avg_pool`]: the portable kernel compiled for
    /// AVX2, its per-channel sums then on 256-bit vectors (x86-64's baseline gives it SSE2:
    /// DS-CNN's global pool took 3% of its inference).
    pub fn avg_pool<const K: u32>(
        self,
        g: &Window,
        input: &[u8],
        in_fmt: ActFormat,
        rq: &reference::PoolRequant,
        output: &mut [u8],
    ) {
        // SAFETY: `self` proves the CPU has AVX2.
        unsafe { avg_pool_avx2::<K>(g, input, in_fmt, rq, output) }
    }
}

#[target_feature(enable = "avx2")]
fn avg_pool_avx2<const K: u32>(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    rq: &reference::PoolRequant,
    output: &mut [u8],
) {
    portable::avg_pool_linked::<K>(g, input, in_fmt, rq, output)
}

/// Channels of one block of the depthwise kernel.
const DW_CH: usize = 16;
/// Most channels of the AVX2 depthwise kernel (the row of zero points for padding taps).
const DW_C_MAX: usize = 1024;
/// Most taps.
const DW_TAPS_MAX: usize = 64;
/// Most (channel block, tap pair) weight vectors.
const DW_WV_MAX: usize = 1024;
/// (Channel block, tap pair) weight vectors of one pass of the AVX2 depthwise kernel over the
/// image (8 KiB of stack), and its most blocks (their requantization, 5 KiB): a layer of more
/// channels, or of more taps, takes several passes.
const DW_PASS_WV: usize = 128;
const DW_PASS_BLOCKS: usize = 16;

/// What the depthwise kernels share: the layer's shape checks, each channel's requantization
/// with `−z·Σw` in its bias (the sums are of raw activations, padding taps reading `z`), the
/// weight pairs of two taps, and per output pixel the address of each tap's input pixel.
struct Depthwise<'a> {
    g: &'a Window,
    input: &'a [u8],
    weights: &'a [u8],
    weight_bits: Bits,
    rq: &'a Requant<'a>,
    taps: usize,
    row_bytes: usize,
    bound: i64,
    z: i32,
    /// Where each tap starts relative to the window's top-left pixel.
    tap_off: [usize; DW_TAPS_MAX],
}

impl<'a> Depthwise<'a> {
    /// `Some` when the layer suits the vector kernels (depth multiplier 1, 8-bit input and
    /// output, at least `block` channels, every one of the first `block·⌊c/block⌋` fast).
    fn new(
        g: &'a Window,
        input: &'a [u8],
        in_fmt: ActFormat,
        weights: &'a [u8],
        weight_bits: Bits,
        rq: &'a Requant<'a>,
        block: usize,
    ) -> Option<Depthwise<'a>> {
        let dw = Depthwise::plan(g, in_fmt, weights, weight_bits, rq, block, true)?;
        (input.len() >= g.in_h * g.in_w * g.in_c).then_some(Depthwise { input, ..dw })
    }

    /// [`Depthwise::new`] without the input (empty), and without the requantization's checks
    /// unless `check_rq` (prepared weights: they were checked when they were made).
    fn plan(
        g: &'a Window,
        in_fmt: ActFormat,
        weights: &'a [u8],
        weight_bits: Bits,
        rq: &'a Requant<'a>,
        block: usize,
        check_rq: bool,
    ) -> Option<Depthwise<'a>> {
        let (taps, c) = (g.kernel_h * g.kernel_w, g.in_c);
        let (blocks, pairs) = (c / block, taps.div_ceil(2));
        let row_bytes = weight_bits.packed_len(taps);
        let bound = sum_bound(taps, weight_bits, in_fmt.bits);
        let fits = g.out_c == c
            && in_fmt.bits == Bits::B8
            && rq.out.bits == Bits::B8
            && (1..=DW_TAPS_MAX).contains(&taps)
            && c <= DW_C_MAX
            && blocks * pairs * block <= DW_WV_MAX * DW_CH
            && blocks > 0
            && weights.len() >= c * row_bytes
            && (!check_rq || (0..block * blocks).all(|ch| !Rq32::new(&ChannelQ::new(rq, ch), bound, 0).is_slow()));
        let tap_off =
            core::array::from_fn(|t| if t < taps { ((t / g.kernel_w) * g.in_w + t % g.kernel_w) * c } else { 0 });
        fits.then_some(Depthwise {
            g,
            input: &[],
            weights,
            weight_bits,
            rq,
            taps,
            row_bytes,
            bound,
            z: in_fmt.zero_point,
            tap_off,
        })
    }

    /// Channel `ch`'s requantization, `−z·Σw` in its bias.
    fn channel(&self, ch: usize) -> Rq32 {
        let row = &self.weights[ch * self.row_bytes..][..self.row_bytes];
        let sum_w: i32 = (0..self.taps).map(|t| load(row, self.weight_bits, t)).sum();
        Rq32::new(&ChannelQ::new(self.rq, ch), self.bound, 0).with_bias_offset(self.z.wrapping_mul(-sum_w))
    }

    /// Channel `ch`'s weights of taps `2tp` and `2tp + 1` (0 past the last) as an `i16` pair.
    fn pair(&self, ch: usize, tp: usize) -> i32 {
        let row = &self.weights[ch * self.row_bytes..][..self.row_bytes];
        let w0 = load(row, self.weight_bits, 2 * tp);
        let w1 = if 2 * tp + 1 < self.taps { load(row, self.weight_bits, 2 * tp + 1) } else { 0 };
        (w0 as u16 as i32) | (w1 << 16)
    }

    /// Per tap of output pixel `(oy, ox)`, the address of its input pixel's channel 0, or
    /// `zrow` (`z` repeated, at least `c` bytes) in the padding; `ptrs[taps]` is `zrow`, for an
    /// odd last tap's partner.
    #[inline(always)]
    fn pointers(&self, oy: usize, ox: usize, zrow: &[u8], ptrs: &mut [*const u8; DW_TAPS_MAX + 1]) {
        let (g, c, taps) = (self.g, self.g.in_c, self.taps);
        let y0 = (oy * g.stride_h).checked_sub(g.pad_top).filter(|y| y + g.kernel_h <= g.in_h);
        let x0 = (ox * g.stride_w).checked_sub(g.pad_left).filter(|x| x + g.kernel_w <= g.in_w);
        if let (Some(y0), Some(x0)) = (y0, x0) {
            // The window inside the input: every tap at a fixed offset from its corner.
            let corner = (y0 * g.in_w + x0) * c;
            let window = &self.input[corner..corner + self.tap_off[taps - 1] + c];
            for (d, &off) in ptrs.iter_mut().zip(&self.tap_off).take(taps) {
                // SAFETY: `off + c ≤ window.len()`.
                *d = unsafe { window.as_ptr().add(off) };
            }
        } else {
            for ky in 0..g.kernel_h {
                for kx in 0..g.kernel_w {
                    let y = (oy * g.stride_h + ky).wrapping_sub(g.pad_top);
                    let x = (ox * g.stride_w + kx).wrapping_sub(g.pad_left);
                    ptrs[ky * g.kernel_w + kx] = if y < g.in_h && x < g.in_w {
                        self.input[(y * g.in_w + x) * c..][..c].as_ptr()
                    } else {
                        zrow.as_ptr()
                    };
                }
            }
        }
        ptrs[taps] = zrow.as_ptr();
    }
}

/// Depthwise convolution, depth multiplier 1, 8-bit input and output: per output pixel and block
/// of 16 channels, taps in pairs: the two taps' activations as `i16`, interleaved, `VPMADDWD`
/// with the pair's weights (unpacked once per layer in the same lane order) into `i32` sums,
/// with `−z·Σw` in each channel's bias; padding taps read a row of zero points (so add `w·z`,
/// which that term takes back). Lanes hold channels (0–3, 8–11) and (4–7,
/// 12–15), which `VPACKSSDW` puts back in order. Other shapes and formats, slow channels and
/// the channels past the last whole block: the portable kernel.
#[target_feature(enable = "avx2")]
fn depthwise_avx2(g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) {
    let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
    let Some(dw) = Depthwise::new(g, input, in_fmt, weights, weight_bits, rq, DW_CH) else {
        portable::depthwise_inline(g, layer, input, output, scratch);
        return;
    };
    let (taps, c) = (dw.taps, g.in_c);
    let (blocks, pairs) = (c / DW_CH, taps.div_ceil(2));
    if output.len() < g.out_h * g.out_w * c {
        portable::depthwise_inline(g, layer, input, output, scratch);
        return;
    }
    // Lane i of the low / high vectors holds channel LANES[0][i] / LANES[1][i] of the block.
    const LANES: [[usize; 8]; 2] = [[0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]];
    let zrow = [dw.z as u8; DW_C_MAX];
    let (lo, hi) = (_mm256_set1_epi32(rq.min), _mm256_set1_epi32(rq.max));
    let mut ptrs = [zrow.as_ptr(); DW_TAPS_MAX + 1];
    // `pairs ≤ DW_TAPS_MAX / 2 = 32`: every pass has a block at least.
    let per_pass = (DW_PASS_WV / pairs).clamp(1, DW_PASS_BLOCKS);
    let mut b0 = 0;
    while b0 < blocks {
        let b1 = (b0 + per_pass).min(blocks);
        // Built in order, so that only what the pass uses is written (no zeroing of the
        // capacity).
        let mut wv: heapless::Vec<[__m256i; 2], DW_PASS_WV> = heapless::Vec::new();
        let mut qv: heapless::Vec<[LaneQ; 2], DW_PASS_BLOCKS> = heapless::Vec::new();
        for b in b0..b1 {
            let _ = qv.push(LANES.map(|lanes| LaneQ::new(lanes.map(|j| dw.channel(DW_CH * b + j)))));
            for tp in 0..pairs {
                let _ = wv.push(LANES.map(|lanes| {
                    let w = lanes.map(|j| dw.pair(DW_CH * b + j, tp));
                    // SAFETY: `w` holds 32 bytes.
                    unsafe { _mm256_loadu_si256(w.as_ptr() as *const __m256i) }
                }));
            }
        }
        depthwise_avx2_pass(&dw, (b0, b1), (&wv, &qv), &zrow, (lo, hi), &mut ptrs, output);
        b0 = b1;
    }
    if DW_CH * blocks < c {
        portable::depthwise_channels(g, input, in_fmt, weights, weight_bits, rq, output, DW_CH * blocks, scratch);
    }
}

/// One pass of [`depthwise_avx2`] over the image: channel blocks `b0..b1`, whose weight
/// vectors (`pairs` per block) and requantization are `wv` and `qv`.
#[inline]
#[target_feature(enable = "avx2")]
fn depthwise_avx2_pass(
    dw: &Depthwise<'_>,
    (b0, b1): (usize, usize),
    (wv, qv): (&[[__m256i; 2]], &[[LaneQ; 2]]),
    zrow: &[u8],
    (lo, hi): (__m256i, __m256i),
    ptrs: &mut [*const u8; DW_TAPS_MAX + 1],
    output: &mut [u8],
) {
    let (g, c, pairs) = (dw.g, dw.g.in_c, dw.taps.div_ceil(2));
    for oy in 0..g.out_h {
        for ox in 0..g.out_w {
            dw.pointers(oy, ox, zrow, ptrs);
            let o = (oy * g.out_w + ox) * c;
            for (i, b) in (b0..b1).enumerate() {
                let (mut acc_lo, mut acc_hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for (tp, w) in wv[i * pairs..(i + 1) * pairs].iter().enumerate() {
                    // SAFETY: every pointer starts `c ≥ 16b + 16` readable bytes (a pixel of
                    // `input`, or `zrow` with `DW_C_MAX ≥ c` bytes).
                    let (a0, a1) = unsafe {
                        (
                            _mm_loadu_si128(ptrs[2 * tp].add(DW_CH * b) as *const __m128i),
                            _mm_loadu_si128(ptrs[2 * tp + 1].add(DW_CH * b) as *const __m128i),
                        )
                    };
                    let (d0, d1) = (_mm256_cvtepi8_epi16(a0), _mm256_cvtepi8_epi16(a1));
                    acc_lo = _mm256_add_epi32(acc_lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(d0, d1), w[0]));
                    acc_hi = _mm256_add_epi32(acc_hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(d0, d1), w[1]));
                }
                let clamp = |v: __m256i| _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
                let (v_lo, v_hi) = (clamp(qv[i][0].apply(acc_lo)), clamp(qv[i][1].apply(acc_hi)));
                let bytes = _mm256_packs_epi16(_mm256_packs_epi32(v_lo, v_hi), _mm256_setzero_si256());
                let bytes = _mm256_castsi256_si128(_mm256_permute4x64_epi64(bytes, 0b11_01_10_00));
                let dst = &mut output[o + DW_CH * b..o + DW_CH * b + DW_CH];
                // SAFETY: `dst` holds 16 bytes.
                unsafe { _mm_storeu_si128(dst.as_mut_ptr() as *mut __m128i, bytes) };
            }
        }
    }
}

/// The residual add: 32 elements per step when every tensor is 8-bit and `17 ≤ r ≤ 47`
/// (`r = 31 − shift`, what compiled models have), the portable kernel for the rest.
///
/// Contract §5 computes `q = (dA·mA + dB·mB + 2^(r−1)) >> r` in 64 bits (`d = v − z`,
/// `|d| ≤ 255`). Splitting each multiplier as `m = h·2^16 + l` with both halves signed 16-bit
/// (`l ∈ [−2^15, 2^15)`), `VPMADDWD` on the pairs `(dA, dB)` gives `H = dA·hA + dB·hB` and
/// `L = dA·lA + dB·lB` exactly, and `q = (H + 2^(r−17) + (L >> 16)) >> (r − 16)` (floor division
/// nests: `⌊(2^16·A + L)/2^r⌋ = ⌊(A + ⌊L/2^16⌋)/2^(r−16)⌋`), all within 32 bits.
#[target_feature(enable = "avx2")]
fn add_avx2(arena: &mut [u8], n: usize, a: (usize, ActFormat), b: (usize, ActFormat), out: usize, rq: &AddRequant) {
    let steps = n / 32;
    let plan = AddPlan::new(arena.len(), n, a, b, out, rq, 47);
    let (Some(AddPlan { r, halves: [ha, la, hb, lb] }), true) = (plan, steps > 0) else {
        return portable::add_inline(arena, n, a, b, out, rq);
    };
    let pair = |x: i32, y: i32| _mm256_set1_epi32((x as u16 as i32) | (y << 16));
    let (mh, ml) = (pair(ha, hb), pair(la, lb));
    let (za, zb) = (_mm256_set1_epi16(a.1.zero_point as i16), _mm256_set1_epi16(b.1.zero_point as i16));
    let round = _mm256_set1_epi32(1 << (r - 17));
    let sh = _mm_cvtsi32_si128(r - 16);
    let (zo, lo, hi) = (_mm256_set1_epi32(rq.out.zero_point), _mm256_set1_epi32(rq.min), _mm256_set1_epi32(rq.max));
    // Sixteen elements: (a, b) as i16, minus the zero points, in pairs, to 16 clamped i32 in two
    // registers (elements 0–3 and 8–11; 4–7 and 12–15), packed back to 16 i16 in order.
    let sixteen = |va: __m128i, vb: __m128i| {
        let da = _mm256_sub_epi16(_mm256_cvtepi8_epi16(va), za);
        let db = _mm256_sub_epi16(_mm256_cvtepi8_epi16(vb), zb);
        let q = |d: __m256i| {
            let h = _mm256_madd_epi16(d, mh);
            let l = _mm256_srai_epi32(_mm256_madd_epi16(d, ml), 16);
            let v = _mm256_sra_epi32(_mm256_add_epi32(_mm256_add_epi32(h, round), l), sh);
            _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(v, zo), lo), hi)
        };
        _mm256_packs_epi32(q(_mm256_unpacklo_epi16(da, db)), q(_mm256_unpackhi_epi16(da, db)))
    };
    let base = arena.as_mut_ptr();
    for i in 0..steps {
        let o = 32 * i;
        // SAFETY: `a.0 + n`, `b.0 + n` and `out + n` are within `arena` (checked above) and
        // `o + 32 ≤ n`; the 32 input bytes are read before the 32 output bytes are written.
        unsafe {
            let va = _mm256_loadu_si256(base.add(a.0 + o) as *const __m256i);
            let vb = _mm256_loadu_si256(base.add(b.0 + o) as *const __m256i);
            let lo16 = sixteen(_mm256_castsi256_si128(va), _mm256_castsi256_si128(vb));
            let hi16 = sixteen(_mm256_extracti128_si256(va, 1), _mm256_extracti128_si256(vb, 1));
            // Lane-wise packs: (0–7, 16–23 | 8–15, 24–31); the 64-bit quarters back in order.
            let bytes = _mm256_permute4x64_epi64(_mm256_packs_epi16(lo16, hi16), 0b11_01_10_00);
            _mm256_storeu_si256(base.add(out + o) as *mut __m256i, bytes);
        }
    }
    let done = 32 * steps;
    if done < n {
        portable::add_inline(arena, n - done, (a.0 + done, a.1), (b.0 + done, b.1), out + done, rq);
    }
}

/// [`Rq32::unclamped`] of eight channels (fast ones), as vectors over their lanes.
#[derive(Clone, Copy)]
struct LaneQ {
    bias: __m256i,
    shl: __m256i,
    m: __m256i,
    round: __m256i,
    sh: __m256i,
}

impl LaneQ {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new(f: [Rq32; 8]) -> LaneQ {
        let v = |x: [i32; 8]| {
            // SAFETY: `x` holds 32 bytes.
            unsafe { _mm256_loadu_si256(x.as_ptr() as *const __m256i) }
        };
        LaneQ {
            bias: v(f.map(|f| f.bias)),
            shl: v(f.map(|f| f.shl as i32)),
            m: v(f.map(|f| f.m)),
            round: v(f.map(|f| f.round)),
            sh: v(f.map(|f| f.sh as i32)),
        }
    }

    /// `((⌊((s + bias) << shl)·m / 2^16⌋ + round) >> sh` per lane, exactly as the scalar form:
    /// `v·m = (v >> 16)·m·2^16 + (v & 0xFFFF)·m`, both products within 32 bits (`m < 2^15`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn apply(&self, s: __m256i) -> __m256i {
        let v = _mm256_sllv_epi32(_mm256_add_epi32(s, self.bias), self.shl);
        let hi = _mm256_mullo_epi32(_mm256_srai_epi32(v, 16), self.m);
        let lo = _mm256_srli_epi32(_mm256_mullo_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)), self.m), 16);
        _mm256_srav_epi32(_mm256_add_epi32(_mm256_add_epi32(hi, lo), self.round), self.sh)
    }
}

/// 16 weights of a packed row (from weight `16j`) as `i16` lanes. `row` holds the row and
/// whatever follows it in the weights (read past the row's end only within `row`; the
/// activations there are 0).
#[inline]
#[target_feature(enable = "avx2")]
fn weights16(row: &[u8], bits: Bits, j: usize) -> __m256i {
    let bytes = bits.packed_len(16);
    let mut tmp = [0u8; 16];
    let src = match row.get(j * bytes..j * bytes + bytes) {
        Some(s) => s,
        None => {
            let rest = row.get(j * bytes..).unwrap_or(&[]);
            tmp[..rest.len()].copy_from_slice(rest);
            &tmp[..bytes]
        }
    };
    decode16(src, bits)
}

/// [`weights16`] of a chunk that lies inside `row` (every chunk of a row but a partial last
/// one); zeros otherwise, with no copy (as `vnni::whole_chunk`).
#[inline]
#[target_feature(enable = "avx2")]
fn whole_weights16(row: &[u8], bits: Bits, j: usize) -> __m256i {
    let bytes = bits.packed_len(16);
    match row.get(j * bytes..(j + 1) * bytes) {
        Some(src) => decode16(src, bits),
        None => _mm256_setzero_si256(),
    }
}

/// The 16 weights packed at `bits` in `src` (16, 8 or 4 bytes; zeros for fewer) as `i16` lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn decode16(src: &[u8], bits: Bits) -> __m256i {
    if src.len() < bits.packed_len(16) {
        return _mm256_setzero_si256();
    }
    match bits {
        Bits::B8 => {
            // SAFETY: `src` holds 16 bytes.
            let v = unsafe { _mm_loadu_si128(src.as_ptr() as *const __m128i) };
            _mm256_cvtepi8_epi16(v)
        }
        Bits::B4 => {
            // SAFETY: `src` holds 8 bytes.
            let v = unsafe { _mm_loadl_epi64(src.as_ptr() as *const __m128i) };
            // Each byte twice, then each nibble to the top of its 16-bit lane (·2^12 or ·2^8)
            // and back down with the sign: weight 2i in the low nibble of byte i.
            let spread = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7));
            let wide = _mm256_cvtepu8_epi16(spread);
            let up = _mm256_mullo_epi16(
                wide,
                _mm256_setr_epi16(
                    1 << 12,
                    1 << 8,
                    1 << 12,
                    1 << 8,
                    1 << 12,
                    1 << 8,
                    1 << 12,
                    1 << 8,
                    1 << 12,
                    1 << 8,
                    1 << 12,
                    1 << 8,
                    1 << 12,
                    1 << 8,
                    1 << 12,
                    1 << 8,
                ),
            );
            _mm256_srai_epi16(up, 12)
        }
        Bits::B2 => {
            // SAFETY: `src` holds 4 bytes.
            let v = _mm_cvtsi32_si128(i32::from_le_bytes([src[0], src[1], src[2], src[3]]));
            let spread = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
            let wide = _mm256_cvtepu8_epi16(spread);
            let up = _mm256_mullo_epi16(
                wide,
                _mm256_setr_epi16(
                    1 << 14,
                    1 << 12,
                    1 << 10,
                    1 << 8,
                    1 << 14,
                    1 << 12,
                    1 << 10,
                    1 << 8,
                    1 << 14,
                    1 << 12,
                    1 << 10,
                    1 << 8,
                    1 << 14,
                    1 << 12,
                    1 << 10,
                    1 << 8,
                ),
            );
            _mm256_srai_epi16(up, 14)
        }
    }
}

/// The receptive field of output pixel `(oy, ox)` as `i16` values `a − z`, little-endian, into
/// `row` (`2·K` bytes): gathered as bytes into its upper half, then widened in place from the
/// front (value `i`, at bytes `2i..2i + 2`, is written after byte `K + i` is read, and never
/// reaches a byte still to be read: `2i + 1 < K + j` for every `j > i`).
#[inline]
#[target_feature(enable = "avx2")]
fn field_i16(g: &Window, input: &[u8], fmt: ActFormat, oy: usize, ox: usize, row: &mut [u8]) {
    let k = row.len() / 2;
    gather_into(g, input, fmt, oy, ox, &mut row[k..]);
    let z = _mm256_set1_epi16(fmt.zero_point as i16);
    let vectors = k / 16;
    let p = row.as_mut_ptr();
    for i in 0..vectors {
        // SAFETY: bytes `K + 16i .. K + 16i + 16` and `32i .. 32i + 32` are inside `row`
        // (`16i + 16 ≤ K`); the 16 bytes are loaded before the 32 are stored, and the store ends
        // at `32i + 32 ≤ K + 16i + 16`, before any byte a later step reads.
        unsafe {
            let a = _mm_loadu_si128(p.add(k + 16 * i) as *const __m128i);
            let d = _mm256_sub_epi16(_mm256_cvtepi8_epi16(a), z);
            _mm256_storeu_si256(p.add(32 * i) as *mut __m256i, d);
        }
    }
    for i in 16 * vectors..k {
        let d = (row[k + i] as i8 as i32 - fmt.zero_point) as i16;
        row[2 * i..2 * i + 2].copy_from_slice(&d.to_le_bytes());
    }
}

/// AVX2's receptive fields for [`blocks::conv_blocks`]: `i16` values `a − z`, multiplied in by
/// `VPMADDWD` against the weights widened to `i16`.
#[derive(Debug, Clone, Copy)]
struct I16Field(Avx2);

impl FieldDot for I16Field {
    const BYTES: usize = 2;

    #[inline(always)]
    fn field(self, g: &Window, input: &[u8], fmt: ActFormat, oy: usize, ox: usize, dst: &mut [u8]) {
        // SAFETY: `self.0` proves the CPU has AVX2.
        unsafe { field_i16(g, input, fmt, oy, ox, dst) }
    }

    #[inline(always)]
    fn weights<const B: usize>(self, row: &[u8], j: usize) -> __m256i {
        // SAFETY: `self.0` proves the CPU has AVX2.
        unsafe { weights16(row, Bits::from_width(B as u32), j) }
    }

    #[inline(always)]
    fn whole_weights<const B: usize>(self, row: &[u8], j: usize) -> __m256i {
        // SAFETY: `self.0` proves the CPU has AVX2.
        unsafe { whole_weights16(row, Bits::from_width(B as u32), j) }
    }

    #[inline(always)]
    fn mac(self, acc: __m256i, field: __m256i, weights: __m256i) -> __m256i {
        // SAFETY: `self.0` proves the CPU has AVX2.
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(weights, field)) }
    }

    fn offset(self, _: ActFormat) -> i32 {
        0
    }
}

/// The AVX2 convolution ([`blocks::conv_blocks`] compiled for AVX2); `false` (nothing written)
/// as there.
#[target_feature(enable = "avx2")]
fn conv2d_avx2(g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> bool {
    let d = I16Field(Avx2(()));
    match layer.weight_bits {
        Bits::B8 => blocks::conv_blocks::<_, 8>(d, g, layer, input, output, scratch),
        Bits::B4 => blocks::conv_blocks::<_, 4>(d, g, layer, input, output, scratch),
        Bits::B2 => blocks::conv_blocks::<_, 2>(d, g, layer, input, output, scratch),
    }
}
