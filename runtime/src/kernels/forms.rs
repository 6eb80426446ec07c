//! The Cortex-M4 kernels' choice between the two forms of their 4- and 2-bit weight rows, and
//! the bounds it rests on, here rather than in `dsp` so that the host can make it too: a
//! firmware's build script asks [`super::linked::required`] which forms a model's layers take
//! ([`conv_rows`], [`fc_rows`]), and links only those (`linked::HIGH_ROWS`,
//! `linked::OFFSET_ROWS`).
//!
//! - The *high-lane* form reads each weight in the top bits of a halfword lane, `2^12·w` or
//!   `2^14·w`, signed as it is: one `AND` a word half. Its sums are held scaled by
//!   [`high_scale`], so it needs rows short enough and biases small enough ([`high_lanes`]).
//! - The *offset-binary* form reads each weight as `w + 2^(b−1)`, unsigned in a masked lane,
//!   and takes `2^(b−1)·Σx` back out of each sum: any row [`sums_fit`] holds.
//!
//! A firmware without a form runs the layers that would take it through the kernel's Rust rows:
//! the same bytes, more instructions (so the set only ever costs speed, never a result).

use super::linked;
use super::reference::{Requant, Window};
use super::scratch::{self, PIX};
use super::util::{row_words, sum_bound, ChannelQ, Rq32};
use crate::quant::{Bits, BIAS_I32};

/// log2 of the scale of `dsp::dot`'s sums for `L` lane pairs per word.
#[inline(always)]
pub(crate) fn scale_shift(l: usize) -> u32 {
    match l {
        2 => 0,
        4 => 4,
        _ => 6,
    }
}

/// The scale of the sums of `dsp::fc_pairs` and `dsp::rows_plain` when they read each 4- or 2-bit
/// weight in the top bits of a halfword lane (`HIGH`): `2^12·w`, `2^14·w`.
pub(crate) fn high_scale(l: usize) -> u32 {
    if l == 4 {
        12
    } else {
        14
    }
}

/// Whether a layer's 4- or 2-bit weights (`L` lane pairs a word) can be read in the top bits
/// of their halfword lanes, its sums held scaled by [`high_scale`] (the convolution's and the
/// fully connected layer's `HIGH` forms): 16-bit biases `b·2^e` that with the rows' sums
/// (`sum_bound`) fit 32 bits at that scale, `2^(15 + e) + bound < 2^(31 − scale)` (32-bit
/// biases keep the other forms, whose assembly tests their sums; the kernel cases' lean cases
/// reach this bound, every product at its largest and the bias at its limit), and
/// multipliers whose one-`SMMLAR` form exists there for every channel (`r + scale ≤ 50` for the
/// table's, `v = base + t + 19 − scale ≥ 0` for `dsp::fc_requant`'s: `base ≥ scale − 19`).
#[inline(always)]
pub(crate) fn high_lanes<const L: usize>(rq: &Requant<'_>, sum_bound: u32) -> bool {
    let (scale, e) = (high_scale(L), rq.bias.exponent as u32);
    L != 2
        && rq.bias.exponent != BIAS_I32
        && e + scale < 16
        && sum_bound < (1 << (31 - scale)) - (1 << (15 + e))
        && rq.multiplier.shift_base as i32 >= scale as i32 - 19
}

/// Whether a convolution's 4- or 2-bit rows of `words` words take `dsp::rows_plain`'s `HIGH`
/// forms (`plain`: the block loops that read them, an output with no clamp but its range, no
/// band and lanes of `a − z`): the rows those forms take (1–3 or a multiple of 4 words at 4
/// bits, an even count at 2; no 4-bit row of `8n + 1` weights, which `dsp::PlainRows` reads
/// short of its last word), and [`high_lanes`] (tested before the table is made at that scale:
/// one found not fast there is made again, which cost resnet8's 4-bit 3×3 layer over 32
/// channels 11 K instructions before the test).
#[inline(always)]
pub(crate) fn conv_high<const L: usize>(k: usize, words: usize, sum_bound: i64, plain: bool, rq: &Requant<'_>) -> bool {
    let forms = match L {
        4 => (words <= 3 || words.is_multiple_of(4)) && k % 8 != 1,
        8 => words.is_multiple_of(2),
        _ => false,
    };
    plain && forms && words > 0 && high_lanes::<L>(rq, u32::try_from(sum_bound).unwrap_or(u32::MAX))
}

/// Whether `dsp::dot`'s sums stay exact in 32 bits for rows of `k` weights over `in_bits`
/// activations, held scaled by `2^scale`: `K·2^(b−1)·(2^a − 1)·2^scale < 2^31`. The scale is 16
/// for 4-bit and 64 for 2-bit weights, and 16 more for a 4-bit input converted from whole words
/// ([`aligned4`], lanes `16·(a − z)`): K up to 65,792 at any widths (the loader's accumulator
/// bound allows more only at low widths).
pub(crate) fn sums_fit(k: usize, weight_bits: Bits, in_bits: Bits, scale: u32) -> bool {
    // `sum_bound`'s product with the factor in 32 bits (at most 2^17·255), so that the test is
    // one 32×32→64 multiply, not a saturating 64-bit one: it runs on every invoke of a layer.
    (k as u64).saturating_mul((per_term(weight_bits, in_bits) << scale) as u64) < 1 << 31
}

/// The largest `|w·(a − z)|` of one term: `2^(b−1)·(2^a − 1)` (`sum_bound` per weight).
#[inline(always)]
pub(crate) fn per_term(weight_bits: Bits, in_bits: Bits) -> u32 {
    (1u32 << (weight_bits.get() - 1)) * ((1u32 << in_bits.get()) - 1)
}

/// The weight width of `l` lane pairs per word.
#[inline(always)]
pub(crate) fn lane_bits(l: usize) -> Bits {
    match l {
        2 => Bits::B8,
        4 => Bits::B4,
        _ => Bits::B2,
    }
}

/// Whether the Cortex-M4 convolution reads a 4-bit input straight from whole words of its rows
/// (`16·(a − z)` per lane, 4 more bits of scale), for `l` lane pairs per weight word.
#[inline(always)]
pub(crate) fn aligned4(g: &Window, in_bits: Bits, l: usize) -> bool {
    in_bits == Bits::B4 && g.in_c.is_multiple_of((2 * l).max(8))
}

/// The row form ([`linked::HIGH_ROWS`] or [`linked::OFFSET_ROWS`]) the Cortex-M4 convolution
/// takes for a layer of 4- or 2-bit weights over `in_bits` activations; 0 for 8-bit weights
/// (one form) and for layers that take neither (a clamped output, a row past [`sums_fit`]).
/// The kernel's own choice (`dsp::conv_impl`) from the same predicates: the block loops' rows
/// for an output with no clamp but its range, high-lane where [`conv_high`] holds and every
/// channel's requantization is fast at [`high_scale`]. A layer whose table is not fast at the
/// usual scale either takes neither form: it is named [`linked::OFFSET_ROWS`] all the same
/// (code that is then linked and not run; never a form that is run and not linked).
pub(crate) fn conv_rows(g: &Window, weight_bits: Bits, in_bits: Bits, rq: &Requant<'_>) -> u32 {
    match weight_bits {
        Bits::B4 => conv_rows_at::<4>(g, in_bits, rq),
        Bits::B2 => conv_rows_at::<8>(g, in_bits, rq),
        Bits::B8 => 0,
    }
}

fn conv_rows_at<const L: usize>(g: &Window, in_bits: Bits, rq: &Requant<'_>) -> u32 {
    let weight_bits = lane_bits(L);
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let row_bytes = weight_bits.packed_len(k);
    let (words, _) = row_words(row_bytes, weight_bits);
    let aligned4 = aligned4(g, in_bits, L);
    let scale = scale_shift(L) + if aligned4 { 4 } else { 0 };
    if row_bytes == 0 || !sums_fit(k, weight_bits, in_bits, scale) {
        return 0;
    }
    let band = scratch::dsp_conv2d_band(g, weight_bits, in_bits) > 0;
    // The length of `dsp::conv_impl`'s `col`: one receptive field, none with a band (whose
    // block fields are the band's own).
    let col = if band { 0 } else { k };
    let oc = g.out_c;
    if !unclamped_out(rq.out.bits, (rq.min, rq.max), oc, col) {
        return 0;
    }
    let bound = sum_bound(k, weight_bits, in_bits);
    let high = conv_high::<L>(k, words, bound, !band && !aligned4, rq)
        && (0..oc).all(|c| !Rq32::new(&ChannelQ::new(rq, c), bound, high_scale(L)).is_slow());
    if high {
        linked::HIGH_ROWS
    } else {
        linked::OFFSET_ROWS
    }
}

/// Whether a convolution's outputs have no clamp but their range (no fused activation, or a
/// ReLU whose zero point is the range's low end), the plain rows' condition: one `SSAT` per
/// output. A 4-bit output also needs an even channel count and room for a block's outputs as
/// bytes in `dsp::conv_impl`'s `col` (`col_bytes`: free once the block's fields are made),
/// which it packs two to a byte.
#[inline(always)]
pub(crate) fn unclamped_out(out_bits: Bits, (lo, hi): (i32, i32), oc: usize, col_bytes: usize) -> bool {
    match out_bits {
        Bits::B8 => (lo, hi) == (-128, 127),
        _ => (lo, hi) == (-8, 7) && oc.is_multiple_of(2) && col_bytes >= PIX * oc,
    }
}

/// [`conv_rows`] for a fully connected layer of `n` inputs (`dsp::fc_impl`'s choice): high-lane
/// where [`high_lanes`] holds, else offset-binary; 0 for 8-bit weights and rows past
/// [`sums_fit`].
pub(crate) fn fc_rows(n: usize, weight_bits: Bits, in_bits: Bits, rq: &Requant<'_>) -> u32 {
    let high = match weight_bits {
        Bits::B8 => return 0,
        Bits::B4 => high_lanes::<4>,
        Bits::B2 => high_lanes::<8>,
    };
    let l = 16 / weight_bits.get() as usize;
    if weight_bits.packed_len(n) == 0 || !sums_fit(n, weight_bits, in_bits, scale_shift(l)) {
        return 0;
    }
    if high(rq, (n as u32).wrapping_mul(per_term(weight_bits, in_bits))) {
        linked::HIGH_ROWS
    } else {
        linked::OFFSET_ROWS
    }
}
