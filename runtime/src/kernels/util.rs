//! Pieces the fast paths share: the requantization of contract §4 with per-channel constants
//! hoisted out of the pixel loop, output stores, the receptive field of one output pixel, and the
//! geometry of packed weight rows read a 32-bit word at a time.

use super::reference::{ActFormat, AddRequant, Requant, Window};
use crate::quant::{load, store, Biases, Bits, BIAS_EXPONENT_MAX, BIAS_I32};

/// Bias and requantization of one output channel (contract §3–§4), read once per channel.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct ChannelQ {
    bias: i32,
    /// The multiplier's mantissa `m`: `M = m·2^15`.
    m: i32,
    /// The shift `s` (contract §4: `M·2^(s−31)`); validated models keep it in
    /// `SHIFT_MIN..=SHIFT_MAX`, [`ChannelQ::r`] clamps it for any other.
    s: i32,
    z: i32,
    lo: i32,
    hi: i32,
}

impl ChannelQ {
    #[inline(always)]
    pub fn new(rq: &Requant<'_>, c: usize) -> ChannelQ {
        ChannelQ {
            bias: rq.bias.get(c),
            m: rq.multiplier.mantissa(c),
            s: rq.multiplier.shift(c),
            z: rq.out.zero_point,
            lo: rq.min,
            hi: rq.max,
        }
    }

    /// `r = 31 − s`, in `1..=62`: the 64-bit form's shift.
    #[inline(always)]
    pub fn r(&self) -> u32 {
        (31 - self.s).clamp(1, 62) as u32
    }

    /// `clamp(z + round_half_up((bias + sum) · M · 2^(s−31)))`: exactly `Requant::apply` of the
    /// reference, with `M = m·2^15` (`|acc · M| < 2^62`, so adding `2^(r−1)` cannot overflow).
    #[inline(always)]
    pub fn apply(&self, sum: i32) -> i32 {
        let acc = self.bias.wrapping_add(sum);
        #[cfg(target_pointer_width = "32")]
        if let Some(q) = self.apply_high_word(acc) {
            return q;
        }
        self.apply_i64(acc)
    }

    /// [`ChannelQ::apply`] of the accumulator `acc` in 32-bit arithmetic, for real multipliers
    /// below 1/2 (`r ≥ 31`), where compiled layers' mostly are; `None` for the others.
    ///
    /// With `u = 47 − r`, `⌊(acc·M + 2^(r−1)) / 2^r⌋ = ⌊(acc·m·2^u + 2^31) / 2^32⌋` (numerator
    /// and denominator scaled by `2^(u−15)`), and `m·2^u < 2^31` for `u ≤ 16`: the high word of
    /// one SMULL plus rounding (LLVM emits SMMLAR) instead of a 64-bit variable shift and a
    /// 64-bit clamp. A fully connected layer requantizes each output once, so this is most of
    /// a narrow layer's cost per output on the Cortex-M. (Handling `u > 16` as well, by moving
    /// the excess shift onto `acc` where it fits, cost the common case 6–13 instructions per
    /// output in register pressure, more than it saved.)
    #[cfg(any(test, target_pointer_width = "32"))]
    #[inline(always)]
    fn apply_high_word(&self, acc: i32) -> Option<i32> {
        // `u = 47 − r = 16 + s`, read from `s` directly: the common case needs no clamp.
        let u = (self.s + 16) as u32;
        if u > 16 {
            return None;
        }
        let q = ((acc as i64 * (self.m << u) as i64 + (1i64 << 31)) >> 32) as i32 + self.z;
        Some(q.max(self.lo).min(self.hi))
    }

    /// [`ChannelQ::apply`] of a sum held scaled by `2^scale` (exactly: a multiple of it), as
    /// the Cortex-M4's 4- and 2-bit kernels hold theirs. Where `u = 47 − r` is too large for
    /// [`ChannelQ::apply_high_word`] (real multipliers of 1/2 or more: low-bit weights' scales
    /// are large), the scale takes the excess: `acc·2^scale = bias·2^scale + sum` times
    /// `m·2^(u−scale)`, when that accumulator fits an `i32` (checked).
    #[cfg_attr(not(hawq_dsp), allow(dead_code))]
    #[inline(always)]
    pub fn apply_scaled(&self, sum: i32, scale: u32) -> i32 {
        if scale == 0 {
            // A constant in the kernels: the 8-bit paths keep `apply`'s smaller code.
            return self.apply(sum);
        }
        #[cfg(target_pointer_width = "32")]
        if let Some(q) = self.apply_scaled_high_word(sum, scale) {
            return q;
        }
        self.apply_i64(self.bias.wrapping_add(sum >> scale))
    }

    /// [`ChannelQ::apply_scaled`] in 32-bit arithmetic; `None` where that does not exist.
    #[cfg(any(test, target_pointer_width = "32"))]
    #[cfg_attr(not(hawq_dsp), allow(dead_code))]
    #[inline(always)]
    fn apply_scaled_high_word(&self, sum: i32, scale: u32) -> Option<i32> {
        let u = (self.s + 16) as u32;
        let (acc, f) = if u <= 16 {
            (Some(self.bias.wrapping_add(sum >> scale)), self.m << u)
        } else if u <= 16 + scale && (self.bias << scale) >> scale == self.bias {
            ((self.bias << scale).checked_add(sum), self.m << (u - scale))
        } else {
            (None, 0)
        };
        let q = ((acc? as i64 * f as i64 + (1i64 << 31)) >> 32) as i32 + self.z;
        Some(q.max(self.lo).min(self.hi))
    }

    /// [`ChannelQ::apply`] in 64 bits, as the contract writes it.
    #[inline(always)]
    fn apply_i64(&self, acc: i32) -> i32 {
        requantize_i64_rare(acc, self.m, self.r(), self.z, self.lo, self.hi)
    }
}

/// [`requantize_i64`] out of line on 32-bit cores, for [`ChannelQ`]: there the rare path (its
/// 32-bit forms take compiled layers' usual multipliers), so one copy of it; inlined at each
/// kernel's requantization it was 0.5–1 KB of Cortex-M code. (`Rq32`'s slow branch keeps it
/// inline: 4-bit depthwise layers take it often, and the call cost DS-CNN 0.7%.)
#[cfg_attr(target_pointer_width = "32", inline(never))]
#[cfg_attr(not(target_pointer_width = "32"), inline(always))]
fn requantize_i64_rare(acc: i32, m: i32, r: u32, z: i32, lo: i32, hi: i32) -> i32 {
    requantize_i64(acc, m, r, z, lo, hi)
}

/// Contract §4 in 64 bits: `clamp(z + ⌊(acc·m·2^15 + 2^(r−1)) / 2^r⌋, lo, hi)`, `r` in `1..=62`.
#[inline(always)]
fn requantize_i64(acc: i32, m: i32, r: u32, z: i32, lo: i32, hi: i32) -> i32 {
    let x = acc as i64 * ((m as i64) << 15) + (1i64 << (r - 1));
    ((x >> r) + z as i64).max(lo as i64).min(hi as i64) as i32
}

/// `(⌊(x << shl)·m / 2^16⌋ + c) >> sh` for a 16-bit `m` and shifts below 32: `LSL`, `SMLAWB`,
/// `ASR` on the Cortex-M4 (register shifts, which need no masking).
#[inline(always)]
#[cfg_attr(hawq_dsp, allow(unsafe_code))]
fn shift_mul_hi16_add_shift(x: i32, shl: u32, m: i32, c: i32, sh: u32) -> i32 {
    #[cfg(hawq_dsp)]
    {
        let r: i32;
        // SAFETY: LSL, SMLAWB and ASR read and write registers only (SMLAWB also the sticky Q
        // flag, which nothing reads; the sum cannot overflow, see `Rq32`); every thumbv7em core
        // has them. `Rq32::new` keeps both shifts below 32.
        unsafe {
            core::arch::asm!(
                "lsl {r}, {x}, {shl}",
                "smlawb {r}, {r}, {m}, {c}",
                "asr {r}, {r}, {sh}",
                r = out(reg) r, x = in(reg) x, shl = in(reg) shl, m = in(reg) m, c = in(reg) c, sh = in(reg) sh,
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        r
    }
    #[cfg(all(not(hawq_dsp), target_pointer_width = "32"))]
    {
        (mul_hi16(x << shl, m) + c) >> sh
    }
    #[cfg(all(not(hawq_dsp), not(target_pointer_width = "32")))]
    {
        ((((x << shl) as i64 * m as i64) >> 16) as i32 + c) >> sh
    }
}

/// `⌊y·m / 2^16⌋` for `0 ≤ m < 2^15` (SMLAWB's product) without a 64-bit multiply, which is a
/// library call on the Cortex-M0: with `y = yh·2^16 + yl` (`yl` unsigned),
/// `⌊y·m / 2^16⌋ = yh·m + ⌊yl·m / 2^16⌋` exactly, each product within `i32`.
#[cfg(any(test, all(not(hawq_dsp), target_pointer_width = "32")))]
#[inline(always)]
fn mul_hi16(y: i32, m: i32) -> i32 {
    let hi = (y >> 16) * m;
    let lo = (((y & 0xFFFF) * m) as u32 >> 16) as i32;
    hi + lo
}

/// The largest `|Σ w·(a − z)|` of a layer whose sums have `k` terms (contract §3):
/// `K·2^(b−1)·(2^a − 1)`, for [`Rq32::new`].
pub(crate) fn sum_bound(k: usize, weight_bits: Bits, in_bits: Bits) -> i64 {
    (k as i64).saturating_mul((1i64 << (weight_bits.get() - 1)) * ((1i64 << in_bits.get()) - 1))
}

/// `M' = m·2^e` of [`Rq32::high_word`]'s form, `e = u − scale` in `−3..=16`: below 0 only where
/// the shift right is exact (a stored mantissa is `(w & 0xFFF)·2^3`, so down to 3), which lets
/// a layer whose sums are held scaled by `2^12` (the Cortex-M4's weights read in the top bits of
/// their lanes) keep the one-`SMMLAR` form for multipliers three octaves smaller.
#[inline(always)]
fn high_word_m(m: i32, e: i32) -> Option<i32> {
    if e >= 0 {
        Some(m << e)
    } else {
        (m & ((1 << -e) - 1) == 0).then_some(m >> -e)
    }
}

/// [`Rq32::shl`] of an entry in [`Rq32::high_word`]'s form: above every other entry's (the fast
/// form's is below 31, a slow channel's `r` at most 62).
#[cfg_attr(not(hawq_dsp), allow(dead_code))]
pub(crate) const HIGH_WORD: u32 = 64;

/// One channel's requantization (contract §4) precomputed for 32-bit arithmetic, for sums that
/// a kernel may hold scaled by `2^scale` (exactly: every term a multiple of it).
///
/// With the mantissa `m` (`M = m·2^15`) and `t = r − 15`, requantization is
/// `q = ⌊(acc·m + 2^(t−1)) / 2^t⌋`, which is unchanged when `acc` and the rounding are scaled
/// by `2^k`. The layer's accumulator bound (`|acc| ≤ sum_bound + |bias|`) says how far `acc` can
/// be shifted left within 32 bits; the channel takes the `k ≥ scale` that makes
/// `t' = t + k ≥ 17`. Then `2^(t'−1)` is a multiple of `2^16`, so
/// `q = (⌊acc·2^k·m / 2^16⌋ + 2^(t'−17)) >> (t'−16)`, and the output zero point joins the
/// rounding term as `z·2^(t'−16)`: with `acc·2^k = (bias·2^scale + sum) << (k − scale)`, one
/// add, one shift, one `SMLAWB`, one shift and the clamp per output on the Cortex-M4. No
/// overflow: `|⌊acc·2^k·m / 2^16⌋| ≤ 2^30 − 2^15` for `m < 2^15`, and the rounding term is kept
/// within `2^30`. A channel for which no such `k` exists (a real multiplier of 1/4 or more on a
/// layer with a large bound, or a tiny multiplier with a large zero point; compiled models have
/// neither) keeps [`ChannelQ::apply`].
///
/// The first five fields are in the order the Cortex-M4 row loop loads them with one `LDM`.
///
/// A slow channel keeps [`ChannelQ`]'s constants in the same fields (`bias` unscaled, `shl` =
/// `r`, `m`, `round` = the output zero point; the clamp is the layer's, passed to
/// [`Rq32::apply`]), so that an entry is seven words of plain integers (28 bytes,
/// [`super::scratch::RQ_BYTES`]): the kernels keep a layer's table of them in its scratch. The
/// Cortex-M4 convolution's plain rows may hold a fast channel in [`Rq32::high_word`]'s form
/// instead (`shl` = [`HIGH_WORD`]), which only `unclamped_any` and `apply_any` read.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct Rq32 {
    /// `bias·2^scale` (slow: the bias).
    pub bias: i32,
    /// `k − scale` (slow: `r`).
    pub shl: u32,
    pub m: i32,
    /// `2^(t'−17) + z·2^(t'−16)` (slow: `z`).
    pub round: i32,
    pub sh: u32,
    pub scale: u32,
    /// 1 when the channel keeps [`ChannelQ::apply`].
    pub slow: u32,
}

/// What [`Rq32::new`] takes of a layer rather than of a channel: its accumulator bound in 32 bits
/// (`None` at 2^32 or more, at least the limit of every shift) and its output zero point with
/// `1 + 2z` and `⌈log2 |1 + 2z|⌉` (of `|1 + 2z|` capped at 2^31, past every rounding term the
/// fast form allows).
pub(crate) struct RqLayer {
    bound: Option<u32>,
    z: i32,
    odd: i32,
    log: u32,
}

impl RqLayer {
    #[inline(always)]
    fn new(sum_bound: i64, z: i32) -> RqLayer {
        let odd = 1 + 2 * z as i64;
        let magnitude = odd.unsigned_abs().min(1 << 31) as u32;
        RqLayer { bound: u32::try_from(sum_bound).ok(), z, odd: odd as i32, log: 32 - (magnitude - 1).leading_zeros() }
    }
}

impl Rq32 {
    /// The channel `cq` of a layer whose sums (before the bias, unscaled) are bounded by
    /// `sum_bound` (`≥ 0`), for sums scaled by `2^scale`.
    ///
    /// No 64-bit shift by a variable amount (each is several instructions on a 32-bit core: a
    /// depthwise layer builds one of these per channel and pass): the rounding term is
    /// `2^(t−17) + z·2^(t−16) = (1 + 2z)·2^e`, `e = t − 17`, whose magnitude is at most `2^30`
    /// exactly when `e ≤ 30` and `|1 + 2z| ≤ 2^(30 − e)` (`1 + 2z` is odd, never 0). The same
    /// constants as the direct form (`new_direct`, the test's oracle).
    #[inline(always)]
    pub fn new(cq: &ChannelQ, sum_bound: i64, scale: u32) -> Rq32 {
        Rq32::build(cq.bias, cq.m, cq.r(), &RqLayer::new(sum_bound, cq.z), scale, false)
    }

    /// [`Rq32::new`] of channels `first..first + out.len()` of a layer, into `out`, in one pass:
    /// what every channel shares ([`RqLayer`], the biases' exponent, the base shift) worked out
    /// once, and each channel's bias and multiplier word read in step with no bounds test of
    /// its own. With `high`, each entry in [`Rq32::high_word`]'s form where it has one, but only
    /// if every channel is fast (the plain row loops' condition; else the table is made again
    /// without). Returns whether every channel is fast. Built channel by channel, then turned
    /// into the high-word form in a second pass, a channel's constants took about 110
    /// instructions on the Cortex-M4, on every inference: half of a 24→144 pointwise layer of
    /// four pixels. Biases or multipliers fewer than the channels (the loader refuses such a
    /// layer): channel by channel, as [`ChannelQ::new`] reads them (0 past the end).
    pub fn table(rq: &Requant<'_>, first: usize, sum_bound: i64, scale: u32, high: bool, out: &mut [Rq32]) -> bool {
        let all_fast = Rq32::table_pass(rq, first, sum_bound, scale, high, out);
        if high && !all_fast {
            Rq32::table_pass(rq, first, sum_bound, scale, false, out);
        }
        all_fast
    }

    /// One pass of [`Rq32::table`], out of line so that its two calls share one copy (inlined,
    /// it took the Cortex-M4 firmware 1.7 KB).
    #[inline(never)]
    fn table_pass(rq: &Requant<'_>, first: usize, sum_bound: i64, scale: u32, high: bool, out: &mut [Rq32]) -> bool {
        let finish = |e: Rq32, all_fast: &mut bool| {
            *all_fast &= !e.is_slow();
            match high.then(|| e.high_word()).flatten() {
                Some(h) => h,
                None => e,
            }
        };
        let mut all_fast = true;
        let n = out.len();
        let wide = rq.bias.exponent == BIAS_I32;
        let per = Biases::bytes_per_channel(rq.bias.exponent);
        let end = first.saturating_add(n);
        let (Some(biases), Some(words)) = (
            rq.bias.bytes.get(first.saturating_mul(per)..end.saturating_mul(per)),
            rq.multiplier.bytes.get(2 * first..2 * end),
        ) else {
            for (c, f) in out.iter_mut().enumerate() {
                *f = finish(Rq32::new(&ChannelQ::new(rq, first + c), sum_bound, scale), &mut all_fast);
            }
            return all_fast;
        };
        let layer = RqLayer::new(sum_bound, rq.out.zero_point);
        let (exponent, base) = (rq.bias.exponent.min(BIAS_EXPONENT_MAX) as u32, rq.multiplier.shift_base as i32);
        // 16-bit biases only (compiled layers' usual form): both forms took the firmware ~1 KB
        // more, and one loop testing the form per channel ~6 instructions a channel.
        if !wide && Rq32::table_uniform((biases, words), exponent, base, &layer, scale, high, out) {
            return true;
        }
        let mut entry = |bias: i32, word: &[u8]| {
            let w = u16::from_le_bytes([word[0], word[1]]) as i32;
            let r = (31 - (base + (w >> 12))).clamp(1, 62) as u32;
            let e = Rq32::build(bias, (w & 0xFFF) << 3, r, &layer, scale, high);
            all_fast &= !e.is_slow();
            e
        };
        let words = words.chunks_exact(2);
        if wide {
            for ((f, b), w) in out.iter_mut().zip(biases.chunks_exact(4)).zip(words) {
                *f = entry(i32::from_le_bytes([b[0], b[1], b[2], b[3]]), w);
            }
        } else {
            for ((f, b), w) in out.iter_mut().zip(biases.chunks_exact(2)).zip(words) {
                *f = entry((i16::from_le_bytes([b[0], b[1]]) as i32) << exponent, w);
            }
        }
        all_fast
    }

    /// [`Rq32::table_pass`] of a layer whose every channel is fast, tested once for the layer
    /// rather than per channel: each of [`Rq32::build`]'s conditions for the fast form is
    /// monotone in `r` and `|bias|` (the shift `k` falls as `r` grows, the rounding term's
    /// exponent `r + k − 32` rises), so the smallest and the largest `r` and the largest `|bias|`
    /// stand for every channel. The entries are written as they are read
    /// ([`Rq32::table_one_form`]) and the extremes tested at the end: `false` for a layer with a
    /// slow channel (or, with `high`, one out of the high-word form), whose entries the
    /// per-channel path then writes again. With the tests made per channel, a channel's
    /// constants took about 68 Cortex-M4 instructions on every inference (13.5% of the zoo's
    /// mobilenet-v2 at 8 bits), with the form still chosen per channel about 50, so about 25.
    /// Layers of 16-bit biases, the form the compiler writes unless a layer's biases need more.
    #[inline(always)]
    fn table_uniform(
        (biases, words): (&[u8], &[u8]),
        exponent: u32,
        base: i32,
        layer: &RqLayer,
        scale: u32,
        high: bool,
        out: &mut [Rq32],
    ) -> bool {
        // `r = 31 − base − t` of a word's top nibble `t`, unclamped: the nibbles seen (a bit
        // each) give the layer's extremes, tested at the end.
        let r0 = 31 - base;
        let (seen, bias_max) = Rq32::table_one_form((biases, words), exponent, r0, layer, scale, high, out);
        if seen == 0 {
            return true;
        }
        // The smallest and the largest `r`, from the largest and the smallest nibble. A fast
        // channel has `2 ≤ r ≤ 62` (`k < 31` needs `r ≥ 2`, `e ≤ 30` needs `r ≤ 62`), inside the
        // clamp's range, so these two tests are the clamp's too.
        let r_min = r0 - (31 - seen.leading_zeros()) as i32;
        let r_max = r0 - seen.trailing_zeros() as i32;
        // With `high`, channels in both forms go to the per-channel path, as do biases near the
        // bound (`bias_max` is up to twice the largest): a loop here taking each channel's form
        // from its shift cost the firmware 0.8 KB, for layers that compiled models rarely have.
        if high && (r_min + (scale as i32) < 31 || r_max + scale as i32 > 50) {
            return false;
        }
        let (r_min, r_max) = (r_min as u32, r_max as u32);
        let k_most = Rq32::shift_k(r_min, scale);
        let fits =
            layer.bound.and_then(|b| b.checked_add(bias_max)).is_some_and(|b| k_most < 31 && b < 1u32 << (31 - k_most));
        fits && r_max + Rq32::shift_k(r_max, scale) - 32 + layer.log <= 30
    }

    /// The entries [`Rq32::build`] gives a layer's channels if all of them are fast and, with
    /// `high`, all in [`Rq32::high_word`]'s form (`31 ≤ r + scale ≤ 50`), each from its nibble
    /// and bias with no test per channel. Returns the nibbles seen and a bound on the biases'
    /// magnitudes (the OR of `|b| − 1` or `b`, plus one: below twice the largest), for
    /// [`Rq32::table_uniform`] to test; entries of a layer that fails are written again. About
    /// 25 Cortex-M4 instructions a channel, where choosing the form and the shift per channel
    /// took about 50.
    #[inline(always)]
    fn table_one_form(
        (biases, words): (&[u8], &[u8]),
        exponent: u32,
        r0: i32,
        layer: &RqLayer,
        scale: u32,
        high: bool,
        out: &mut [Rq32],
    ) -> (u32, u32) {
        let (mut seen, mut bias_or) = (0u32, 0u32);
        let channels = out.iter_mut().zip(biases.chunks_exact(2)).zip(words.chunks_exact(2));
        let mut read = |b: &[u8], w: &[u8]| {
            let w = u16::from_le_bytes([w[0], w[1]]) as u32;
            let t = w >> 12;
            seen |= 1 << t;
            let b = i16::from_le_bytes([b[0], b[1]]) as i32;
            bias_or |= (b ^ (b >> 15)) as u32;
            (t, (w & 0xFFF) as i32, (b << exponent) << scale)
        };
        if high {
            // `m·2^(47 − r − scale)` with `m = mantissa·2^3` and `r = r0 − t` (exact down to
            // `r + scale = 50`).
            let at = 50u32.wrapping_sub(r0 as u32).wrapping_sub(scale);
            for ((f, b), w) in channels {
                let (t, mantissa, bias) = read(b, w);
                let m = mantissa.wrapping_shl(at.wrapping_add(t));
                *f = Rq32 { bias, m, shl: HIGH_WORD, round: layer.z, sh: 0, scale, slow: 0 };
            }
        } else {
            // With `d = r + scale − 32` and `p = max(d, 0)`: `k − scale = p − d`, `sh = p + 1`,
            // `round = (1 + 2z)·2^p`.
            let at = r0.wrapping_add(scale as i32).wrapping_sub(32);
            for ((f, b), w) in channels {
                let (t, mantissa, bias) = read(b, w);
                let d = at.wrapping_sub(t as i32);
                let p = d.max(0);
                let (shl, sh) = (p.wrapping_sub(d) as u32, p as u32 + 1);
                *f = Rq32 { bias, m: mantissa << 3, shl, round: layer.odd.wrapping_shl(p as u32), sh, scale, slow: 0 };
            }
        }
        (seen, ((bias_or + 1) << exponent))
    }

    /// One channel's entry from its bias, mantissa `m` and `r = 31 − s` (`1..=62`): the fast
    /// form when the layer's bound and zero point allow it at this channel's shift, else the
    /// slow one.
    #[inline(always)]
    fn build(bias: i32, m: i32, r: u32, layer: &RqLayer, scale: u32, high: bool) -> Rq32 {
        let slow = Rq32 { bias, m, shl: r, round: layer.z, sh: 0, scale, slow: 1 };
        let k = Rq32::shift_k(r, scale);
        if k >= 31 {
            return slow;
        }
        // In 32 bits: a 64-bit compare and a 64-bit variable shift per channel took about 6
        // instructions more on the Cortex-M4.
        let limit = 1u32 << (31 - k);
        let fits = layer.bound.and_then(|b| b.checked_add(bias.unsigned_abs())).is_some_and(|b| b < limit);
        if !fits {
            return slow;
        }
        // `t' = t + k`, `sh = t' − 16`, `e = t' − 17 ≥ 0`; the rounding term `(1 + 2z)·2^e` within
        // 2^30: `e + ⌈log2 |1 + 2z|⌉ ≤ 30`.
        let sh = r + k - 31;
        let e = sh - 1;
        if e + layer.log > 30 {
            return slow;
        }
        // [`Rq32::high_word`] of this entry, made from `r` where it exists (`shl ≤ sh ≤ 19 + shl`
        // is `31 ≤ r + scale ≤ 50`, its shift `16 + shl − sh = 47 − r − scale`, its `round` the
        // zero point).
        if high && (31..=50).contains(&(r + scale)) {
            if let Some(m) = high_word_m(m, 47 - (r + scale) as i32) {
                return Rq32 { bias: bias << scale, m, shl: HIGH_WORD, round: layer.z, sh: 0, scale, slow: 0 };
            }
        }
        // `|1 + 2z| ≤ 2^(30 − e)` here, so `odd` is exact in 32 bits.
        Rq32 { bias: bias << scale, m, shl: k - scale, round: layer.odd << e, sh, scale, slow: 0 }
    }

    /// `k = max(17 − t, scale)` with `t = r − 15`: how far a channel of shift `r` holds its
    /// accumulator left.
    #[inline(always)]
    fn shift_k(r: u32, scale: u32) -> u32 {
        (32 - r as i32).max(scale as i32) as u32
    }

    /// [`Rq32::new`] as the contract states it, in 64 bits: the oracle of its test.
    #[cfg(test)]
    pub fn new_direct(cq: &ChannelQ, sum_bound: i64, scale: u32) -> Rq32 {
        let slow = Rq32 { bias: cq.bias, m: cq.m, shl: cq.r(), round: cq.z, sh: 0, scale, slow: 1 };
        let t = cq.r() as i32 - 15;
        let k = (17 - t).max(scale as i32) as u32;
        let bound = sum_bound.saturating_add((cq.bias as i64).abs());
        if k >= 31 || bound >= (1i64 << 31) >> k {
            return slow;
        }
        let t = (t + k as i32) as u32;
        let sh = t - 16;
        let round = (1i64 << (t - 17)) + ((cq.z as i64) << sh);
        if round.abs() > 1 << 30 {
            return slow;
        }
        Rq32 { bias: cq.bias << scale, m: cq.m, shl: k - scale, round: round as i32, sh, scale, slow: 0 }
    }

    /// This fast channel in the high-word form of [`ChannelQ::apply_high_word`], for the
    /// Cortex-M4 convolution's row loop, whose epilogue is then one `SMMLAR` and the `SSAT` per
    /// output where the form of [`Rq32::unclamped`] takes four instructions: `m` holds
    /// `M' = m·2^(u − scale)`, `round` the output zero point, `shl` [`HIGH_WORD`]. Then
    /// `⌊(acc·2^scale·M' + 2^31) / 2^32⌋ + z` is `⌊(acc·m·2^u + 2^31) / 2^32⌋ + z`, the
    /// contract's rounding for any `u ≥ 0` (`apply_high_word`'s identity), and `M'` is below
    /// 2^31 (`m < 2^15`), as `SMMLAR` needs, for `u − scale ≤ 16`: `None` unless
    /// `scale ≤ u ≤ 16 + scale` (real multipliers below `2^(scale − 1)`: the 4- and 2-bit
    /// layers' large ones too, their sums held scaled), or down to `u = scale − 3` where `m`'s
    /// low bits let it shift right exactly (`high_word_m`), or for a slow channel. `u = 16 + s`
    /// comes from the fast form's own fields: `t' = 16 − s + k`, `sh = t' − 16` and
    /// `shl = k − scale` give `u − scale = 16 + shl − sh`; its `round = (1 + 2z)·2^(sh − 1)`
    /// gives `z = round >> sh`.
    #[cfg_attr(not(hawq_dsp), allow(dead_code))]
    pub fn high_word(&self) -> Option<Rq32> {
        if self.is_slow() || self.shl > self.sh || self.sh > 19 + self.shl {
            return None;
        }
        let m = high_word_m(self.m, 16 + self.shl as i32 - self.sh as i32)?;
        Some(Rq32 { shl: HIGH_WORD, m, round: self.round >> self.sh, sh: 0, ..*self })
    }

    /// [`Rq32::unclamped`] of a fast entry in either form ([`Rq32::high_word`]'s or its own).
    #[cfg_attr(not(hawq_dsp), allow(dead_code))]
    #[inline(always)]
    pub fn unclamped_any(&self, sum: i32) -> i32 {
        if self.shl == HIGH_WORD {
            let acc = self.bias.wrapping_add(sum) as i64;
            return ((acc * self.m as i64 + (1 << 31)) >> 32) as i32 + self.round;
        }
        self.unclamped(sum)
    }

    /// [`Rq32::apply`] of an entry in either form.
    #[cfg_attr(not(hawq_dsp), allow(dead_code))]
    #[inline(always)]
    pub fn apply_any(&self, sum: i32, lo: i32, hi: i32) -> i32 {
        if self.shl == HIGH_WORD {
            return self.unclamped_any(sum).max(lo).min(hi);
        }
        self.apply(sum, lo, hi)
    }

    /// Whether the channel keeps [`ChannelQ::apply`] (no 32-bit form exists for it).
    #[inline(always)]
    pub fn is_slow(&self) -> bool {
        self.slow != 0
    }

    /// The same channel with `offset` added to its bias, for a path whose sums leave out a part
    /// of the accumulator (`−z·Σw`); the bound of [`Rq32::new`] was on the whole accumulator.
    #[cfg_attr(not(any(hawq_dsp, target_arch = "x86_64")), allow(dead_code))]
    #[inline(always)]
    pub fn with_bias_offset(self, offset: i32) -> Rq32 {
        if self.is_slow() {
            return Rq32 { bias: self.bias.wrapping_add(offset), ..self };
        }
        Rq32 { bias: self.bias.wrapping_add(offset << self.scale), ..self }
    }

    /// `clamp(z + q, lo, hi)` of a sum scaled by `2^scale`, as [`ChannelQ::apply`] computes it
    /// for the unscaled sum (`lo`, `hi` are the layer's clamp).
    #[inline(always)]
    pub fn apply(&self, sum: i32, lo: i32, hi: i32) -> i32 {
        if self.is_slow() {
            // The 64-bit form, not `ChannelQ::apply`'s: compiled models have no slow channels,
            // and the other's two branches, inlined into the Cortex-M4 depthwise kernel's pixel
            // loop, moved dscnn's depthwise layers by −2% (8-bit weights) and +2% (4-bit).
            let acc = self.bias.wrapping_add(sum >> self.scale);
            return requantize_i64(acc, self.m, self.shl, self.round, lo, hi);
        }
        self.unclamped(sum).max(lo).min(hi)
    }

    /// [`Rq32::apply`] before the clamp, for a channel that is not slow.
    #[inline(always)]
    pub fn unclamped(&self, sum: i32) -> i32 {
        shift_mul_hi16_add_shift(self.bias.wrapping_add(sum), self.shl, self.m, self.round, self.sh)
    }
}

/// What the vector residual adds share (contract §5): every tensor 8-bit, `17 ≤ r ≤ r_max`
/// (`r = 31 − shift`), the output disjoint from each input or equal to it (the validator's rule;
/// a kernel reads each step's elements before writing them), everything inside the arena, and
/// each multiplier split as `m = h·2^16 + l` with both halves signed 16-bit (`halves` =
/// `[hA, lA, hB, lB]`). `q = (dA·mA + dB·mB + 2^(r−1)) >> r` is then
/// `(dA·hA + dB·hB + 2^(r−17) + ((dA·lA + dB·lB) >> 16)) >> (r − 16)`: floor divisions nest,
/// `⌊(2^16·A + L)/2^r⌋ = ⌊(A + ⌊L/2^16⌋)/2^(r−16)⌋`, all within 32 bits.
#[cfg_attr(not(any(hawq_dsp, target_arch = "x86_64")), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddPlan {
    pub r: i32,
    pub halves: [i32; 4],
}

impl AddPlan {
    #[cfg_attr(not(any(hawq_dsp, target_arch = "x86_64")), allow(dead_code))]
    pub fn new(
        len: usize,
        n: usize,
        a: (usize, ActFormat),
        b: (usize, ActFormat),
        out: usize,
        rq: &AddRequant,
        r_max: i32,
    ) -> Option<AddPlan> {
        let all8 = a.1.bits == Bits::B8 && b.1.bits == Bits::B8 && rq.out.bits == Bits::B8;
        if !all8 {
            return None;
        }
        AddPlan::checked(len, n, a.0, b.0, (out, n), rq, r_max)
    }

    /// [`AddPlan::new`] for 8-bit inputs and a 4-bit output (`⌈n/2⌉` bytes at `out`, two
    /// elements a byte): the Cortex-M4 steps pack each four results into a halfword.
    #[cfg_attr(not(hawq_dsp), allow(dead_code))]
    pub fn new_to_nibbles(
        len: usize,
        n: usize,
        a: (usize, ActFormat),
        b: (usize, ActFormat),
        out: usize,
        rq: &AddRequant,
        r_max: i32,
    ) -> Option<AddPlan> {
        if !(a.1.bits == Bits::B8 && b.1.bits == Bits::B8 && rq.out.bits == Bits::B4) {
            return None;
        }
        AddPlan::checked(len, n, a.0, b.0, (out, n.div_ceil(2)), rq, r_max)
    }

    /// The checks and halves of both: inputs of `n` bytes at `a` and `b`, the output's bytes
    /// `out.1` at `out.0`.
    fn checked(
        len: usize,
        n: usize,
        a: usize,
        b: usize,
        (out, out_bytes): (usize, usize),
        rq: &AddRequant,
        r_max: i32,
    ) -> Option<AddPlan> {
        let r = 31 - rq.shift as i32;
        let split = |m: i32| {
            let l = (m as i16) as i64;
            [(m as i64 - l) >> 16, l]
        };
        let ([ha, la], [hb, lb]) = (split(rq.multiplier_a), split(rq.multiplier_b));
        let halves = [ha, la, hb, lb].map(|v| i16::try_from(v).ok().map(i32::from));
        let ok = |off: usize| off + n <= out || off >= out + out_bytes || off == out;
        let fits = |off: usize, bytes: usize| off.checked_add(bytes).is_some_and(|e| e <= len);
        let inside = fits(a, n) && fits(b, n) && fits(out, out_bytes);
        if !((17..=r_max).contains(&r) && inside && ok(a) && ok(b)) {
            return None;
        }
        Some(AddPlan { r, halves: [halves[0]?, halves[1]?, halves[2]?, halves[3]?] })
    }
}

/// A fully connected layer as a 1×1 convolution of one pixel with `in_features` channels.
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
pub(crate) fn fc_window(in_features: usize, out_features: usize) -> Window {
    Window {
        in_h: 1,
        in_w: 1,
        in_c: in_features,
        out_h: 1,
        out_w: 1,
        out_c: out_features,
        kernel_h: 1,
        kernel_w: 1,
        stride_h: 1,
        stride_w: 1,
        pad_top: 0,
        pad_left: 0,
    }
}

/// Writes output element `i` (8-bit: one byte; 4-bit: one nibble).
#[inline(always)]
pub(crate) fn put(out: &mut [u8], bits: Bits, i: usize, v: i32) {
    if bits == Bits::B8 {
        out[i] = v as u8;
    } else {
        store(out, bits, i, v);
    }
}

/// Number of 32-bit words a packed weight row of `bytes` bytes is read as (the last one padded
/// with zero bytes), and how many weights one word holds.
#[inline(always)]
pub(crate) fn row_words(bytes: usize, bits: Bits) -> (usize, usize) {
    (bytes.div_ceil(4), 32 / bits.get() as usize)
}

/// Reads word `i` of a packed row, zero-padding past its end (never out of bounds).
#[inline(always)]
pub(crate) fn tail_word(row: &[u8], i: usize) -> u32 {
    let mut b = [0u8; 4];
    for (j, d) in b.iter_mut().enumerate() {
        *d = row.get(4 * i + j).copied().unwrap_or(0);
    }
    u32::from_le_bytes(b)
}

/// `dst.copy_from_slice(src)`, with a plain loop for the short runs of small-channel layers
/// (a `memcpy` call costs more than it moves there).
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [u8], src: &[u8]) {
    if dst.len() < 16 {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s;
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// Unpacks the 4-bit values `start..start + dst.len()` of a packed tensor into one `i8` per byte
/// (contract §2: element `i` in the low nibble of byte `i/2` when `i` is even).
#[inline(always)]
pub(crate) fn unpack4(input: &[u8], start: usize, dst: &mut [u8]) {
    let odd = (start % 2 == 1 && !dst.is_empty()) as usize;
    let (head, rest) = dst.split_at_mut(odd);
    if let Some(v) = head.first_mut() {
        *v = load(input, Bits::B4, start) as u8;
    }
    let bytes = &input[(start + odd) / 2..];
    let done = rest.len() / 2;
    let mut pairs = rest.chunks_exact_mut(2);
    for (pair, &b) in pairs.by_ref().zip(bytes) {
        pair[0] = ((b << 4) as i8 >> 4) as u8;
        pair[1] = (b as i8 >> 4) as u8;
    }
    if let ([v], Some(&b)) = (pairs.into_remainder(), bytes.get(done)) {
        *v = ((b << 4) as i8 >> 4) as u8;
    }
}

/// The receptive field of output pixel `(oy, ox)` as raw activation bytes (`i8` values) in the
/// order of a weight row (`[ky][kx][ci]`), taps in the padding set to the input's zero point (so
/// that `a − z = 0` there, contract §3). Returns a slice of the input itself when the field is one
/// contiguous run of an 8-bit tensor (1×1 convolutions, full-width kernels), else fills
/// `col[..K]`. `col` must hold `K = kh·kw·in_c` bytes.
#[cfg_attr(not(hawq_dsp), allow(dead_code))]
pub(crate) fn gather<'a>(
    g: &Window,
    input: &'a [u8],
    fmt: ActFormat,
    oy: usize,
    ox: usize,
    col: &'a mut [u8],
) -> &'a [u8] {
    if let Some(run) = contiguous_field(g, fmt, oy, ox) {
        return &input[run];
    }
    let k = g.kernel_h * g.kernel_w * g.in_c;
    fill_field(g, input, fmt, oy, ox, &mut col[..k]);
    col
}

/// [`gather`] always into `dst[..K]` (a copy of the input's run where it is contiguous).
#[cfg_attr(not(any(target_arch = "aarch64", target_arch = "x86_64")), allow(dead_code))]
pub(crate) fn gather_into(g: &Window, input: &[u8], fmt: ActFormat, oy: usize, ox: usize, dst: &mut [u8]) {
    let k = g.kernel_h * g.kernel_w * g.in_c;
    match contiguous_field(g, fmt, oy, ox) {
        Some(run) => dst[..k].copy_from_slice(&input[run]),
        None => fill_field(g, input, fmt, oy, ox, &mut dst[..k]),
    }
}

/// Where the receptive field of `(oy, ox)` is one run of an 8-bit input (1×1 convolutions,
/// full-width kernels, no padding).
fn contiguous_field(g: &Window, fmt: ActFormat, oy: usize, ox: usize) -> Option<core::ops::Range<usize>> {
    let start = inside_field(g, oy, ox)?;
    (fmt.bits == Bits::B8 && (g.kernel_h == 1 || g.kernel_w == g.in_w))
        .then_some(start..start + g.kernel_h * g.kernel_w * g.in_c)
}

/// The element offset of the receptive field of `(oy, ox)` when no tap of it is in the padding.
#[inline(always)]
pub(crate) fn inside_field(g: &Window, oy: usize, ox: usize) -> Option<usize> {
    let (y0, y1, _) = g.rows(oy);
    let (x0, x1, _) = g.cols(ox);
    (y1 - y0 == g.kernel_h && x1 - x0 == g.kernel_w).then_some((y0 * g.in_w + x0) * g.in_c)
}

/// The receptive field of `(oy, ox)` into `col` (`K` bytes), row by row of the kernel.
fn fill_field(g: &Window, input: &[u8], fmt: ActFormat, oy: usize, ox: usize, col: &mut [u8]) {
    let (y0, y1, ky0) = g.rows(oy);
    let (x0, x1, kx0) = g.cols(ox);
    let c = g.in_c;
    let zb = fmt.zero_point as u8;
    let row_len = g.kernel_w * c;
    let (left, mid) = (kx0 * c, (x1 - x0) * c);
    for (ky, dst) in col.chunks_exact_mut(row_len.max(1)).enumerate() {
        if ky < ky0 || ky >= ky0 + (y1 - y0) {
            dst.fill(zb);
            continue;
        }
        let src = ((y0 + ky - ky0) * g.in_w + x0) * c;
        let (pad_l, rest) = dst.split_at_mut(left);
        let (run, pad_r) = rest.split_at_mut(mid);
        pad_l.fill(zb);
        if fmt.bits == Bits::B8 {
            copy_short(run, &input[src..src + mid]);
        } else {
            unpack4(input, src, run);
        }
        pad_r.fill(zb);
    }
}

#[cfg(test)]
mod mul_hi16_tests {
    extern crate std;
    use super::mul_hi16;
    use std::vec;

    /// The split product equals the 64-bit one for every `m` the multipliers have and values
    /// of `y` across the whole range (edges and a multiplicative sweep).
    #[test]
    fn equals_the_64_bit_product() {
        let mut ys = vec![0, 1, -1, 0xFFFF, 0x10000, -0x10000, -0xFFFF, i32::MAX, i32::MIN, i32::MIN + 1];
        let mut v = 0x9E37_79B9u32;
        for _ in 0..4000 {
            v = v.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ys.push(v as i32);
            ys.push((v as i32) >> (v % 31));
        }
        for m in (0..1 << 15).step_by(97).chain([0, 1, (1 << 15) - 1]) {
            for &y in &ys {
                assert_eq!(mul_hi16(y, m), ((y as i64 * m as i64) >> 16) as i32, "y {y} m {m}");
            }
        }
    }
}

#[cfg(test)]
mod rq32_tests {
    extern crate std;
    use super::{ActFormat, Biases, Bits, ChannelQ, Requant, Rq32, BIAS_I32};
    use crate::quant::Multipliers;
    use proptest::prelude::*;

    fn fields(q: &Rq32) -> [i64; 7] {
        [q.bias as i64, q.shl as i64, q.m as i64, q.round as i64, q.sh as i64, q.scale as i64, q.slow as i64]
    }

    /// The same over a grid: every shift and scale, the zero points around every edge of the
    /// rounding term (`|1 + 2z| = 2^(30 − e)` only at `e = 30`, `z ∈ {0, −1}`), biases and bounds
    /// at the fast form's limits.
    #[test]
    fn new_equals_the_direct_form_on_a_grid() {
        let zs = (-129..=128).chain([1 << 14, -(1 << 14), (1 << 20) + 1, i32::MAX / 2, i32::MIN / 2]);
        let zs: std::vec::Vec<i32> = zs.collect();
        for s in -40..=40 {
            for scale in 0..=12 {
                for &z in &zs {
                    for bias in [0, -1, 1 << 20, i32::MIN] {
                        for bound in [0, 1 << 14, (1 << 30) - 1, 1 << 31] {
                            let cq = ChannelQ { bias, m: 1 << 14, s, z, lo: -128, hi: 127 };
                            assert_eq!(
                                fields(&Rq32::new(&cq, bound, scale)),
                                fields(&Rq32::new_direct(&cq, bound, scale)),
                                "s {s} scale {scale} z {z} bias {bias} bound {bound}"
                            );
                        }
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(50_000))]

        /// The 32-bit construction equals the direct 64-bit one for every shift the format
        /// holds, zero points well past any tensor's, every scale the kernels use and bounds and
        /// biases up to and past the edges of the fast form.
        #[test]
        fn new_equals_the_direct_form(
            s in -40i32..=40,
            z in prop_oneof![-128i32..=127, -70_000i32..70_000, Just(i32::MAX / 2), Just(i32::MIN / 2)],
            bias in prop_oneof![any::<i32>(), -70_000i32..70_000, Just(i32::MIN), Just(i32::MAX), Just(0)],
            bound in prop_oneof![0i64..1 << 33, 0i64..70_000, (1i64 << 32) - 100_000..(1i64 << 32) + 100_000, Just(i64::MAX), Just(0)],
            scale in 0u32..=12,
            m in 0i32..1 << 15,
        ) {
            let cq = ChannelQ { bias, m, s, z, lo: -128, hi: 127 };
            prop_assert_eq!(fields(&Rq32::new(&cq, bound, scale)), fields(&Rq32::new_direct(&cq, bound, scale)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]

        /// A layer's table equals [`Rq32::new`] channel by channel (and with `high`, when every
        /// channel is fast, its [`Rq32::high_word`] form where it has one): 16- and 32-bit biases at
        /// every exponent the format holds (and past it), every multiplier word, base shifts
        /// past the valid range, tables that start at any channel and tables shorter than the
        /// channels asked for (read as 0 past their end).
        #[test]
        fn table_equals_new_per_channel(
            bias_bytes in proptest::collection::vec(any::<u8>(), 0..80),
            words in proptest::collection::vec(any::<u8>(), 0..40),
            exponent in prop_oneof![0u8..=20, Just(BIAS_I32)],
            shift_base in -40i8..=40,
            z in prop_oneof![-128i32..=127, -70_000i32..70_000],
            bound in prop_oneof![0i64..1 << 33, 0i64..70_000, Just(0)],
            scale in 0u32..=8,
            first in 0usize..12,
            n in 0usize..20,
        ) {
            table_equals_new(&bias_bytes, exponent, &words, shift_base, z, bound, scale, first, n)?;
        }

        /// The same for layers like compiled ones, whose channels are all fast more often than
        /// not ([`Rq32::table_uniform`]'s one test for the layer): shifts within a few of each
        /// other, biases of a few thousand.
        #[test]
        fn table_of_compiled_like_layers_equals_new_per_channel(
            channels in proptest::collection::vec((0u16..0x1000, 0u16..4, -3000i32..3000), 1..40),
            top in 0u16..13,
            wide in any::<bool>(),
            exponent in 0u8..=6,
            shift_base in -24i8..=24,
            z in -128i32..=127,
            bound in prop_oneof![0i64..70_000, 0i64..1 << 24],
            scale in prop_oneof![Just(0u32), Just(4), Just(6)],
        ) {
            let words: std::vec::Vec<u8> =
                channels.iter().flat_map(|&(m, t, _)| (m | (top + t) << 12).to_le_bytes()).collect();
            let bias_bytes: std::vec::Vec<u8> = if wide {
                channels.iter().flat_map(|&(_, _, b)| (b << exponent).to_le_bytes()).collect()
            } else {
                channels.iter().flat_map(|&(_, _, b)| (b as i16).to_le_bytes()).collect()
            };
            let exponent = if wide { BIAS_I32 } else { exponent };
            let n = channels.len();
            table_equals_new(&bias_bytes, exponent, &words, shift_base, z, bound, scale, 0, n)?;
        }
    }

    /// [`Rq32::table`] of channels `first..first + n` of a layer against [`Rq32::new`] per
    /// channel, with and without `high`.
    #[allow(clippy::too_many_arguments)]
    fn table_equals_new(
        bias_bytes: &[u8],
        exponent: u8,
        words: &[u8],
        shift_base: i8,
        z: i32,
        bound: i64,
        scale: u32,
        first: usize,
        n: usize,
    ) -> Result<(), TestCaseError> {
        let rq = Requant {
            bias: Biases { bytes: bias_bytes, exponent },
            multiplier: Multipliers { bytes: words, shift_base },
            out: ActFormat { bits: Bits::B8, zero_point: z },
            min: -128,
            max: 127,
        };
        let blank = Rq32 { bias: 7, shl: 7, m: 7, round: 7, sh: 7, scale: 7, slow: 7 };
        let want: std::vec::Vec<Rq32> =
            (0..n).map(|c| Rq32::new(&ChannelQ::new(&rq, first + c), bound, scale)).collect();
        let all_fast = want.iter().all(|e| !e.is_slow());
        for high in [false, true] {
            let mut table = std::vec![blank; n];
            prop_assert_eq!(Rq32::table(&rq, first, bound, scale, high, &mut table), all_fast);
            for (c, (got, want)) in table.iter().zip(&want).enumerate() {
                let want = match (high && all_fast).then(|| want.high_word()).flatten() {
                    Some(h) => h,
                    None => *want,
                };
                prop_assert_eq!(fields(got), fields(&want), "channel {} high {}", first + c, high);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod high_word_tests {
    use super::{ChannelQ, Rq32, HIGH_WORD};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(50_000))]

        /// An entry in the high-word form requantizes every sum within the layer's bound as the
        /// contract does (`ChannelQ::apply`), the sum held scaled as the kernels hold it; the
        /// form exists for every fast channel with `scale ≤ u ≤ 16 + scale`, `u = 16 + s`, and
        /// down to `u = scale − 3` for mantissas whose low bits allow it.
        #[test]
        fn high_word_entries_equal_the_contract(
            s in -40i32..=40,
            m in prop_oneof![0i32..1 << 15, Just((1 << 15) - 1), Just(1 << 14), Just(0)],
            z in prop_oneof![-128i32..=127, -70_000i32..70_000],
            bias in prop_oneof![-70_000i32..70_000, -(1i32 << 24)..1 << 24, Just(0)],
            bound in prop_oneof![0i64..70_000, 0i64..1 << 28, Just(0)],
            scale in prop_oneof![Just(0u32), Just(4u32), Just(6u32), Just(12u32), Just(14u32)],
            frac in 0.0f64..=1.0,
            neg in any::<bool>(),
        ) {
            let cq = ChannelQ { bias, m, s, z, lo: -128, hi: 127 };
            let fast = Rq32::new(&cq, bound, scale);
            let u = 16 + s;
            // Below `u = scale`, down to 3 less, where the mantissa's low bits let `m` shift right.
            let low = scale as i32 - u;
            let exact = low <= 0 || low <= 3 && m & ((1 << low) - 1) == 0;
            let expect_form = !fast.is_slow() && exact && u <= 16 + scale as i32;
            let hw = fast.high_word();
            prop_assert_eq!(hw.is_some(), expect_form, "{:?}", fast);
            if let Some(h) = hw {
                prop_assert_eq!(h.shl, HIGH_WORD);
                let sum = (bound as f64 * frac) as i64 * if neg { -1 } else { 1 };
                let sum = sum as i32;
                let scaled = sum.wrapping_shl(scale);
                prop_assert_eq!(h.apply_any(scaled, -128, 127), cq.apply(sum), "{:?} sum {}", h, sum);
                prop_assert_eq!(fast.apply_any(scaled, -128, 127), cq.apply(sum));
            }
        }
    }
}

#[cfg(test)]
mod channel_q_tests {
    use super::ChannelQ;
    use proptest::prelude::*;

    /// A channel of `r = 31 − s` (tests draw `r` in `1..=62`).
    fn channel(bias: i32, m: i32, r: u32, z: i32, lo: i32, hi: i32) -> ChannelQ {
        ChannelQ { bias, m, s: 31 - r as i32, z, lo, hi }
    }

    fn acc_strategy() -> impl Strategy<Value = i32> {
        prop_oneof![any::<i32>(), -70_000i32..70_000, Just(i32::MIN), Just(i32::MAX), Just(0)]
    }

    fn clamp_strategy() -> impl Strategy<Value = (i32, i32)> {
        prop_oneof![Just((-128, 127)), Just((-8, 7)), Just((i32::MIN, i32::MAX)), (-200i32..0, 0i32..200)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The 32-bit form equals the contract's 64-bit one wherever it answers, for any
        /// accumulator, mantissa, shift, zero point and clamp; it answers for every `r` of the
        /// multipliers below 1/2.
        #[test]
        fn high_word_equals_the_64_bit_requantization(
            acc in acc_strategy(),
            m in prop_oneof![0i32..1 << 15, Just((1 << 15) - 8), Just(0)],
            r in 1u32..=62,
            z in -128i32..=127,
            clamp in clamp_strategy(),
        ) {
            let cq = channel(0, m, r, z, clamp.0, clamp.1);
            let got = cq.apply_high_word(acc);
            prop_assert_eq!(got.is_some(), (31..=47).contains(&r));
            if let Some(q) = got {
                prop_assert_eq!(q, cq.apply_i64(acc));
            }
        }

        /// The same for a sum held scaled by `2^scale` (the 4- and 2-bit kernels' 4 and 6),
        /// with the bias anywhere, where the scale must take part of the shift (`r < 31`).
        #[test]
        fn scaled_high_word_equals_the_64_bit_requantization(
            sum in acc_strategy(),
            bias in acc_strategy(),
            m in prop_oneof![0i32..1 << 15, Just((1 << 15) - 8)],
            r in 1u32..=62,
            scale in prop_oneof![Just(4u32), Just(6u32), 1u32..8],
            z in -128i32..=127,
            clamp in clamp_strategy(),
        ) {
            let sum = (sum >> scale) << scale;
            let cq = channel(bias, m, r, z, clamp.0, clamp.1);
            let want = cq.apply_i64(bias.wrapping_add(sum >> scale));
            if let Some(q) = cq.apply_scaled_high_word(sum, scale) {
                prop_assert_eq!(q, want);
            } else {
                prop_assert!(!(31..=47).contains(&r));
            }
            prop_assert_eq!(cq.apply_scaled(sum, scale), want);
        }
    }
}
