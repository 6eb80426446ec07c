//! Scratch memory of the convolution and fully connected kernels (CMSIS-NN's `get_buffer_size`
//! convention): every microcontroller kernel takes its buffers from a slice of the arena that the
//! compiler planned for the op (`ConvParams::scratch`, `FcParams::scratch`), never from the stack.
//!
//! The size of an op's scratch is not stored in the model: it is a pure function of the op's
//! geometry and bit widths ([`conv2d_bytes`], [`depthwise_conv2d_bytes`],
//! [`fully_connected_bytes`]), the same on every target, and the maximum over the
//! microcontroller paths (Cortex-M DSP and portable), so that one compiled model runs on every
//! microcontroller. The host paths (x86-64, AArch64) get the same slice and keep their
//! convolution blocks in it: it is large enough for them at every `K` (for x86-64: `2·K` bytes a
//! pixel for AVX2, `K` and the `28·out_c` table for AVX-VNNI, at most `9·⌈K⌉₄ + 3` for AVX-512
//! VNNI), so the size stays that of the microcontroller paths.
//!
//! | kernel | DSP (Cortex-M4/M7) | portable (M0/M3/RISC-V) |
//! |---|---|---|
//! | conv2d | `4 + 256·W/b + ⌈K⌉₄ + 28·out_c`, with a band `4 + 256·W/b + 28·out_c + ⌈B⌉₄ + 4·⌈K⌉ₑ + 4·W` (`e = 32/b`) | `4 + 256·W/b + 28·out_c` |
//! | depthwise | `4 + 8·T·g + 28·4g + 4g + 8·T (+ kh·in_w·4g for a 4-bit input)` when `out_c = in_c ≥ 4`, else 0; at least `4 + 344 + 4·((R − 1)·s + 3)·(s·L + 2) + 4·R·L` for a 3×3 layer at strides (s, s), s ≤ 2, that the plane kernel takes | `4 + ⌈2·T·n⌉₄ + 32·n` |
//! | fully connected | `4 + 64·W/b` | `4 + 64·W/b` |
//!
//! The depthwise kernels run in passes of `g` groups of four channels (DSP) or `n` channels
//! (portable): the most (up to 32 groups; up to 64 channels and 2048/T weights) whose scratch
//! stays within `DW_PASS_BYTES`, at least one, spread evenly over the passes.
//!
//! The plane kernel (`dw3_shape`) copies bands of `R` output rows' input, four channels at a
//! time, into planes of rows of `s·L + 2` bytes, `L` the longer output axis, and its outputs,
//! when clamped or 4-bit, through four planes of `R` rows of `L`: `R` as many rows as fit in
//! `DW_PASS_BYTES` (at least one), 344 bytes its tables.
//!
//! The terms in parentheses are those of a layer over an 8-bit input whose channels do not fill
//! weight words (a first layer of 1–3 channels; 8 channels under 2-bit weights): `B` its band
//! of input rows, `kh·((out_w − 1)·stride_w + kw)·in_c` bytes when
//! `kw·in_c ≥ 4` and that is at most `BAND_BYTES` (`dsp_conv2d_band`), the receptive fields
//! of three more pixels and a copy of the last weight row.
//!
//! `K = kh·kw·in_c` (conv) or `in_features` (FC), `b` the weight bits, `W = ⌈⌈K·b/8⌉/4⌉` the
//! 32-bit words of a packed weight row, `T = kh·kw` the depthwise taps, `⌈x⌉₄` rounded up to a
//! multiple of 4; 28 bytes are one channel's precomputed requantization ([`RQ_BYTES`]), the
//! leading 4 bytes the alignment slack of a scratch slice that does not start on a word.
//!
//! `Scratch` hands out typed, aligned sub-slices of the byte slice. Their contents are whatever
//! the arena held (every type it hands out is plain integers, for which any bytes are a value):
//! a kernel writes what it reads.
#![allow(unsafe_code)]

use super::reference::Window;
use crate::quant::Bits;

/// Bytes of one channel's precomputed requantization (`util::Rq32`, seven 32-bit words).
pub const RQ_BYTES: usize = 28;
/// Output pixels per block of the DSP and portable convolutions.
pub(crate) const PIX: usize = 4;
/// Bytes a scratch slice may lose to aligning its start to a 32-bit word.
const SLACK: u64 = 4;
/// Channel groups of four of one pass of the DSP depthwise kernel (128 channels).
pub(crate) const DW_DSP_GROUPS: usize = 32;
/// Most channels of one pass of the portable depthwise kernel.
pub(crate) const DW_PORTABLE_CH: usize = 64;
/// Unpacked weights (`i16`) of one pass of the portable depthwise kernel, when that allows more
/// than one channel.
pub(crate) const DW_PORTABLE_W: usize = 2048;
/// Scratch bytes one pass of a depthwise kernel may take (unless a single group of four
/// channels, or a single channel, needs more). Depthwise layers sit between the two largest
/// feature maps of a MobileNet-style network, so their scratch adds to the arena's peak (a
/// 64-channel 3×3 layer of dscnn-kws took 4 KB in one pass, a quarter of a 16 KiB Cortex-M0's
/// RAM). A pass repeats only the walk over the pixels (the DSP kernel's tap tables, about 170
/// instructions a pixel), small against the MACs but not nothing: on the Cortex-M4 each pass
/// adds about 6% to a dscnn-kws depthwise layer; 2 KB takes two passes there, 1.25 KB would
/// take three (1.8% more for the whole network), hence 2 KB and not less.
pub(crate) const DW_PASS_BYTES: u64 = 2048;
/// Most bytes of the DSP convolution's band of input rows ([`dsp_conv2d_band`]).
pub(crate) const BAND_BYTES: usize = 2048;

const _: () = assert!(core::mem::size_of::<super::util::Rq32>() == RQ_BYTES);

fn align4(n: u64) -> u64 {
    n.saturating_add(3) & !3
}

fn mul(a: usize, b: usize) -> u64 {
    (a as u64).saturating_mul(b as u64)
}

fn sum(parts: &[u64]) -> u64 {
    parts.iter().fold(0u64, |s, &p| s.saturating_add(p))
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// 32-bit words of a packed row of `k` weights of `bits` bits.
pub(crate) fn row_words(k: usize, bits: Bits) -> u64 {
    mul(k, bits.get() as usize).div_ceil(8).div_ceil(4)
}

/// The DSP convolution's scratch: the im2col blocks of [`PIX`] pixels (`16/b` lane pairs of
/// halfwords per weight word), the receptive field of one pixel as bytes, the requantization
/// table; for a layer with a band of input rows ([`dsp_conv2d_band`]) also the band, the
/// receptive fields of the block's other pixels and a copy of the last weight row (whole words).
pub(crate) fn dsp_conv2d(g: &Window, weight_bits: Bits, in_bits: Bits) -> u64 {
    let k = g.kernel_h.saturating_mul(g.kernel_w).saturating_mul(g.in_c);
    let lanes = 16 / weight_bits.get() as u64;
    let words = row_words(k, weight_bits);
    let x = words.saturating_mul(lanes * PIX as u64 * 4);
    // The pixel's receptive field, or with a band the block's four, each up to whole weight
    // words (4, 8 or 16 values), and a copy of the last weight row.
    let fields = match dsp_conv2d_band(g, weight_bits, in_bits) as u64 {
        0 => align4(k as u64),
        b => {
            let kp = (k as u64).div_ceil(2 * lanes).saturating_mul(2 * lanes);
            sum(&[align4(b), kp.saturating_mul(PIX as u64), words.saturating_mul(4)])
        }
    };
    sum(&[SLACK, x, mul(g.out_c, RQ_BYTES), fields])
}

/// Bytes of the DSP convolution's band of input rows: the `kh` rows one output row's windows
/// cover, zero-point padded, as wide as the windows reach (`((out_w − 1)·stride_w + kw)·in_c`
/// per row), so that every pixel's receptive field is `kh` runs of `kw·in_c` bytes at fixed
/// offsets, copied a word at a time. For an 8-bit input whose channels do not fill whole
/// blocks of a weight word's values (`32 / bits`: a first layer of 1–3 channels, 8 channels
/// under 2-bit weights, 12 under 4-bit ones) and whose kernel rows hold a word (`kw·in_c ≥ 4`),
/// when the band holds at most [`BAND_BYTES`]; else 0 (no band: the receptive field is
/// gathered from the input, [`dsp_conv_general`]).
pub(crate) fn dsp_conv2d_band(g: &Window, weight_bits: Bits, in_bits: Bits) -> usize {
    let run = g.kernel_w.saturating_mul(g.in_c);
    if in_bits != Bits::B8 || fills_words(g.in_c, weight_bits) || run < 4 || g.out_w == 0 || g.kernel_h == 0 {
        return 0;
    }
    let width = (g.out_w - 1).saturating_mul(g.stride_w).saturating_add(g.kernel_w);
    let bytes = width.saturating_mul(g.in_c).saturating_mul(g.kernel_h);
    if bytes > BAND_BYTES {
        0
    } else {
        bytes
    }
}

/// Whether `n` values fill whole weight words of `bits` (`32 / bits` values each; a mask, not
/// a division: the interpreter asks for every convolution on every invoke).
fn fills_words(n: usize, bits: Bits) -> bool {
    let mask = match bits {
        Bits::B8 => 3,
        Bits::B4 => 7,
        Bits::B2 => 15,
    };
    n & mask == 0
}

/// Whether the Cortex-M4 convolution takes `g` through its general im2col (`dsp::conv_impl`):
/// channels that do not fill whole blocks of a weight word's values (`32 / bits` of an 8-bit
/// input; of a 4-bit input, that or 8, whichever is more) and no band of rows
/// ([`dsp_conv2d_band`]). The kernel and [`super::linked::CONV_GENERAL`] both ask this.
pub(crate) fn dsp_conv_general(g: &Window, weight_bits: Bits, in_bits: Bits) -> bool {
    let aligned = match in_bits {
        Bits::B8 => fills_words(g.in_c, weight_bits),
        Bits::B4 => fills_words(g.in_c, weight_bits) && g.in_c.is_multiple_of(8),
        Bits::B2 => false,
    };
    !aligned && dsp_conv2d_band(g, weight_bits, in_bits) == 0
}

/// The portable convolution's scratch: the im2col `i16` values of [`PIX`] pixels up to whole
/// weight words, and the requantization table.
pub(crate) fn portable_conv2d(g: &Window, weight_bits: Bits) -> u64 {
    let k = g.kernel_h.saturating_mul(g.kernel_w).saturating_mul(g.in_c);
    let kpad = row_words(k, weight_bits).saturating_mul(32 / weight_bits.get() as u64);
    sum(&[SLACK, align4(kpad.saturating_mul(2 * PIX as u64)), mul(g.out_c, RQ_BYTES)])
}

/// Bytes of scratch a Conv2D needs (the most any microcontroller path takes).
pub fn conv2d_bytes(g: &Window, weight_bits: Bits, in_bits: Bits) -> usize {
    to_usize(dsp_conv2d(g, weight_bits, in_bits).max(portable_conv2d(g, weight_bits)))
}

/// The largest `n` in `2..=cap` whose pass takes at most `budget` bytes, else 1, for passes
/// that grow by a constant per item up to alignment: `pass(n) = A + B·n + r(n)`, `r(0) = 0`,
/// `0 ≤ r(n) ≤ 3`. Then `B ≥ pass(1) − pass(0) − 3`, so no `n` past `(budget − A) / (B − 3)`
/// fits: the search starts there and steps down (a step or two for the DSP depthwise kernel's
/// passes, at most a few for the portable one's). The kernels ask on every invoke: a walk up
/// from 2 took a depthwise layer of many channels about 1,900 instructions on the Cortex-M4, a
/// bisection about 650 (the zoo's mobilenet-v2, 2026-12-07).
fn most_fitting(cap: usize, budget: u64, pass: impl Fn(usize) -> u64) -> usize {
    let fixed = pass(0);
    let mut n = match (budget.checked_sub(fixed), pass(1).saturating_sub(fixed).checked_sub(3)) {
        (None, _) => 0,
        // In 32 bits where it fits (one UDIV; a 64-bit division is a ~100-instruction call).
        (Some(room), Some(slope)) if slope > 0 => match (u32::try_from(room), u32::try_from(slope)) {
            (Ok(room), Ok(slope)) => ((room / slope) as usize).min(cap),
            _ => usize::try_from(room / slope).unwrap_or(usize::MAX).min(cap),
        },
        // Passes that grow by 3 bytes an item or less (none of the kernels'): from the top.
        (Some(_), _) => cap,
    };
    while n >= 2 && pass(n) > budget {
        n -= 1;
    }
    n.max(1)
}

/// `total` items in passes of at most `most`, spread evenly: the size of each pass (the last may
/// be smaller). Even passes keep the scratch the least that the number of passes allows.
fn even_pass(total: usize, most: usize) -> usize {
    let most = most.clamp(1, total.max(1));
    total.div_ceil(total.div_ceil(most).max(1)).max(1)
}

/// The DSP depthwise kernel's scratch for passes of `groups` groups of four channels: weights as
/// halfword pairs (two words per tap and group), the requantization table, a row of zero points
/// for taps in the padding, two tables of one offset per tap (inside the input, at the border),
/// and for a 4-bit input the unpacked input rows.
fn dsp_depthwise_pass(g: &Window, in_bits: Bits, groups: usize) -> u64 {
    let taps = g.kernel_h.saturating_mul(g.kernel_w);
    let cc = 4 * groups;
    let rows = if in_bits == Bits::B4 { align4(mul(g.kernel_h, g.in_w).saturating_mul(cc as u64)) } else { 0 };
    sum(&[SLACK, mul(taps, 8 * groups), mul(cc, RQ_BYTES), align4(cc as u64), mul(taps, 8), rows])
}

/// Channel groups of four of one pass of the DSP depthwise kernel (the most that fit in
/// [`DW_PASS_BYTES`], at least one, spread evenly over the passes), or 0 when the layer runs on
/// the portable kernel (depth multiplier other than 1, fewer than four channels).
pub(crate) fn dsp_depthwise_groups(g: &Window, in_bits: Bits) -> usize {
    if g.out_c != g.in_c || g.kernel_h == 0 || g.kernel_w == 0 {
        return 0;
    }
    let total = g.in_c / 4;
    if total == 0 {
        return 0;
    }
    let cap = total.min(DW_DSP_GROUPS);
    let most = most_fitting(cap, DW_PASS_BYTES, |n| dsp_depthwise_pass(g, in_bits, n));
    even_pass(total, most)
}

/// The DSP depthwise kernel's scratch: one pass of [`dsp_depthwise_groups`], or for a layer
/// that the plane kernel takes ([`dw3_shape`]) as much as its band needs, if more.
pub(crate) fn dsp_depthwise(g: &Window, in_bits: Bits) -> u64 {
    let planes = match dw3_shape(g, in_bits) {
        Some((transposed, wp)) => dw3_bytes(g, transposed, wp),
        None => 0,
    };
    match dsp_depthwise_groups(g, in_bits) {
        0 => 0,
        groups => dsp_depthwise_pass(g, in_bits, groups).max(planes),
    }
}

/// 32-bit words of one channel's constants in the DSP plane kernel (`dsp::planes`).
pub(crate) const DW3_CHANNEL_WORDS: usize = 10;
/// The plane kernel's tables: one group's weights as halfword pairs (9 taps), its four
/// requantizations, its four channels' constants.
const DW3_TABLES: u64 = (9 * 8 + 4 * RQ_BYTES + 4 * 4 * DW3_CHANNEL_WORDS) as u64;

/// Whether the DSP plane kernel (`dsp::planes`: a 3×3 depthwise layer at unit strides, depth
/// multiplier 1, at least four channels) takes the layer, and if so along which axis its planes
/// run and their row length: `(transposed, cols + 2)`, `cols` the outputs along the pair axis,
/// the longer of the two. Its input and output must also be 8-bit, with no clamp but the output
/// range; it checks those.
///
/// Maps shorter than [`DW3_MIN_COLS`] along both axes stay on the interleaved kernel: each
/// group of four channels costs the plane kernel about 1,000 instructions besides the MACs (its
/// copy into planes, four calls, a row's setup), which a 3×3 map does not repay (MobileNet's
/// 3×3×256 layer: 146,259 instructions interleaved, 193,079 in planes; its 6×6×128 layer:
/// 199,777 and 176,300).
pub(crate) fn dw3_shape(g: &Window, in_bits: Bits) -> Option<(bool, usize)> {
    let shape = (g.kernel_h, g.kernel_w) == (3, 3) && g.stride_h == g.stride_w && (1..=2).contains(&g.stride_h);
    if !shape || g.in_c != g.out_c || g.in_c < 4 || (in_bits == Bits::B4 && !g.in_c.is_multiple_of(2)) {
        return None;
    }
    let transposed = g.out_h > g.out_w;
    let cols = g.out_w.max(g.out_h);
    let shortest = if g.stride_h == 2 && in_bits == Bits::B8 { DW3_MIN_COLS_S2 } else { DW3_MIN_COLS };
    (cols >= shortest).then_some((transposed, g.stride_w * cols + 2))
}

/// The shortest output axis the DSP plane kernel takes (its pairs of outputs need 2).
const DW3_MIN_COLS: usize = 5;
/// The same at stride 2 over an 8-bit input, where each input byte copied into the planes serves
/// 2.25 MACs instead of 9 and the interleaved kernel is the cheaper one on smaller maps
/// (MobileNet's stride-2 layers: 24 outputs a row 344,212 → 321,924 instructions in planes,
/// 12 a row 168,624 → 177,000, 6 a row 98,950 → 114,005). Over a 4-bit input the planes win at
/// every size (the interleaved kernel unpacks its rows: 520K → 209K at 12 a row).
const DW3_MIN_COLS_S2: usize = 16;

/// The plane kernel's scratch: its tables, four input planes of `rows + 2` rows of `wp` bytes
/// and four output planes of `rows` rows of `wp − 2`, `rows` the output rows of a band, as many
/// as [`DW_PASS_BYTES`] holds (at least one, at most all).
fn dw3_bytes(g: &Window, transposed: bool, wp: usize) -> u64 {
    let (rows, cols) = if transposed { (g.out_w, g.out_h) } else { (g.out_h, g.out_w) };
    let (st, wp, rows, cols) = (g.stride_h as u64, wp as u64, rows as u64, cols as u64);
    let row = 4 * st * wp + 4 * cols;
    let fixed = 4 * (3 - st) * wp;
    let fit = (DW_PASS_BYTES.saturating_sub(SLACK + DW3_TABLES + fixed) / row).max(1);
    sum(&[SLACK, DW3_TABLES, fixed, row.saturating_mul(rows.min(fit))])
}

/// The portable depthwise kernel's scratch for passes of `n` channels: the weights as `i16`
/// `[tap][channel]`, the sums, and each channel's requantization.
fn portable_depthwise_pass(g: &Window, n: usize) -> u64 {
    let taps = g.kernel_h.saturating_mul(g.kernel_w);
    sum(&[SLACK, align4(mul(taps, n).saturating_mul(2)), mul(n, 4), mul(n, RQ_BYTES)])
}

/// Channels of one pass of the portable depthwise kernel: at most [`DW_PORTABLE_CH`], at most
/// [`DW_PORTABLE_W`] unpacked weights and [`DW_PASS_BYTES`] of scratch (but at least one),
/// spread evenly over the passes.
pub(crate) fn portable_depthwise_chunk(g: &Window) -> usize {
    let taps = g.kernel_h.saturating_mul(g.kernel_w).max(1);
    let cap = g.out_c.min(DW_PORTABLE_CH).min((DW_PORTABLE_W / taps).max(1)).max(1);
    let most = most_fitting(cap, DW_PASS_BYTES, |n| portable_depthwise_pass(g, n));
    even_pass(g.out_c, most)
}

/// The portable depthwise kernel's scratch (one pass of [`portable_depthwise_chunk`]).
pub(crate) fn portable_depthwise(g: &Window) -> u64 {
    portable_depthwise_pass(g, portable_depthwise_chunk(g))
}

/// Bytes of scratch a depthwise Conv2D needs (the most any microcontroller path takes).
pub fn depthwise_conv2d_bytes(g: &Window, _weight_bits: Bits, in_bits: Bits) -> usize {
    to_usize(dsp_depthwise(g, in_bits).max(portable_depthwise(g)))
}

/// Bytes of scratch a fully connected layer needs: its input as halfword pairs (DSP) or `i16`
/// (portable) up to whole weight words, the same size.
#[inline]
pub fn fully_connected_bytes(in_features: usize, _out_features: usize, weight_bits: Bits, _in_bits: Bits) -> usize {
    // [`row_words`] (`⌈k·b/32⌉ = ⌈k/(32/b)⌉`) of `64/b` bytes each, with constant divisors: the
    // interpreter asks on every invoke, and a tiny model's layers cost little more than this.
    let (weights_per_word, bytes_per_word) = match weight_bits {
        Bits::B8 => (4, 8),
        Bits::B4 => (8, 16),
        Bits::B2 => (16, 32),
    };
    let x = in_features.div_ceil(weights_per_word).saturating_mul(bytes_per_word);
    x.saturating_add(SLACK as usize)
}

/// Types made only of integers, with no padding: any bytes are a value of them.
///
/// # Safety
/// An implementor must be `Copy`, have no padding bytes and no invalid bit patterns.
pub(crate) unsafe trait Plain: Copy {}

// SAFETY: primitive integers: no padding, every bit pattern valid.
unsafe impl Plain for u8 {}
// SAFETY: as above.
unsafe impl Plain for i16 {}
// SAFETY: as above.
unsafe impl Plain for i32 {}
// SAFETY: as above.
unsafe impl Plain for u32 {}
// SAFETY: as above.
unsafe impl Plain for usize {}
// SAFETY: an array of plain values has no padding between them.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}
// SAFETY: `#[repr(C)]`, seven 32-bit integers (size asserted above: no padding).
unsafe impl Plain for super::util::Rq32 {}
// SAFETY: `#[repr(C)]`, six 32-bit integers (size asserted above: no padding).
unsafe impl Plain for super::util::ChannelQ {}

/// A kernel's scratch slice, handed out front to back as typed sub-slices.
pub(crate) struct Scratch<'a> {
    rest: &'a mut [u8],
}

impl<'a> Scratch<'a> {
    pub fn new(bytes: &'a mut [u8]) -> Scratch<'a> {
        Scratch { rest: bytes }
    }

    /// What is left of the slice.
    #[cfg_attr(not(hawq_dsp), allow(dead_code))]
    pub fn take_rest(&mut self) -> &'a mut [u8] {
        core::mem::take(&mut self.rest)
    }

    /// The next `n` values of `T`, aligned for `T` (skipping at most `align_of::<T>() − 1`
    /// bytes); `None`, taking nothing, when the slice has no room for them. The values are
    /// whatever bytes were there.
    pub fn take<T: Plain>(&mut self, n: usize) -> Option<&'a mut [T]> {
        let rest = core::mem::take(&mut self.rest);
        let skip = rest.as_ptr().align_offset(core::mem::align_of::<T>());
        let end = n.checked_mul(core::mem::size_of::<T>()).and_then(|b| b.checked_add(skip));
        let Some(end) = end.filter(|&e| e <= rest.len()) else {
            self.rest = rest;
            return None;
        };
        let (head, tail) = rest.split_at_mut(end);
        self.rest = tail;
        let head = &mut head[skip..];
        // SAFETY: `head` is aligned for `T` and holds exactly `n·size_of::<T>()` initialized
        // bytes, borrowed exclusively for `'a`; `T` is `Plain`, so those bytes are `n` valid
        // values, and writing any `T` into them leaves valid bytes.
        Some(unsafe { core::slice::from_raw_parts_mut(head.as_mut_ptr() as *mut T, n) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constant-divisor form is the row's whole words of `64/b` bytes each.
    #[test]
    fn fully_connected_bytes_are_whole_words_of_halfword_pairs() {
        for k in (0..300).chain([65_792, 65_793, 1 << 20]) {
            for bits in [Bits::B2, Bits::B4, Bits::B8] {
                let want = SLACK + row_words(k, bits) * (64 / bits.get() as u64);
                assert_eq!(fully_connected_bytes(k, 1, bits, Bits::B8) as u64, want, "k {k}, {bits:?}");
            }
        }
    }

    /// The search from the affine bound finds what the walk up from 2 found: for passes of every
    /// fixed part, growth per item from 4 to 40 bytes and rounding to words of 1, 2 or 4 items'
    /// halfwords (as the portable kernel's weights), every budget and cap; and for the depthwise
    /// kernels' passes over layers of 4 to 1,024 channels, 1×1 to 7×7 kernels, rows up to 160
    /// wide, 8- and 4-bit inputs.
    #[test]
    fn most_fitting_equals_the_walk() {
        let walk = |cap: usize, fits: &dyn Fn(usize) -> bool| (2..=cap).take_while(|&n| fits(n)).last().unwrap_or(1);
        for fixed in [0u64, 3, 16, 100] {
            for per in 4u64..=40 {
                for halves in (0u64..=3).filter(|&h| 2 * h <= per) {
                    // `per` bytes an item, `2·halves` of them in halfwords rounded up to a word.
                    let pass = |n: usize| fixed + (per - 2 * halves) * n as u64 + align4(2 * halves * n as u64);
                    for cap in [0, 1, 2, 3, 7, 16, 64] {
                        for budget in (0..1200).step_by(7) {
                            let want = walk(cap, &|n| pass(n) <= budget);
                            assert_eq!(most_fitting(cap, budget, pass), want, "{fixed} {per} {halves} {cap} {budget}");
                        }
                    }
                }
            }
        }
        for c in [4, 8, 12, 16, 24, 60, 96, 144, 256, 1024] {
            for k in 1..=7 {
                for w in [1, 2, 5, 16, 40, 160] {
                    let g = Window {
                        in_h: w,
                        in_w: w,
                        in_c: c,
                        out_h: w,
                        out_w: w,
                        out_c: c,
                        kernel_h: k,
                        kernel_w: k,
                        stride_h: 1,
                        stride_w: 1,
                        pad_top: k / 2,
                        pad_left: k / 2,
                    };
                    for bits in [Bits::B8, Bits::B4] {
                        let cap = (c / 4).min(DW_DSP_GROUPS);
                        let most = walk(cap, &|n| dsp_depthwise_pass(&g, bits, n) <= DW_PASS_BYTES);
                        assert_eq!(dsp_depthwise_groups(&g, bits), even_pass(c / 4, most), "{g:?} {bits:?}");
                    }
                    let taps = k * k;
                    let cap = c.min(DW_PORTABLE_CH).min((DW_PORTABLE_W / taps).max(1)).max(1);
                    let most = walk(cap, &|n| portable_depthwise_pass(&g, n) <= DW_PASS_BYTES);
                    assert_eq!(portable_depthwise_chunk(&g), even_pass(c, most), "{g:?}");
                }
            }
        }
    }

    #[test]
    fn take_aligns_and_refuses_what_does_not_fit() {
        let mut buf = [0u8; 40];
        // A start one byte past a word.
        let mut s = Scratch::new(&mut buf[1..]);
        let a = s.take::<u32>(2).expect("fits");
        assert_eq!(a.as_ptr() as usize % 4, 0);
        a[1] = 7;
        assert!(s.take::<u32>(100).is_none());
        let b = s.take::<u8>(3).expect("still there");
        assert_eq!(b.len(), 3);
        let c = s.take::<[u32; 2]>(2).expect("fits");
        assert_eq!(c.len(), 2);
    }
}
