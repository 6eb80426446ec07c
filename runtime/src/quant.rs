//! The arithmetic of the integer contract (docs/INTEGER_CONTRACT.md), written once: rounding,
//! requantization, and reading and writing packed weights and activations.

/// Smallest and largest shift `s` of a multiplier `M · 2^(s−31)`.
pub const SHIFT_MIN: i8 = -31;
pub const SHIFT_MAX: i8 = 30;

/// `round_half_up(x · 2^-r)` for `1 ≤ r ≤ 62`: contract §4. The shift is clamped into that range
/// so that no input can make this panic; validated models never need the clamp.
#[inline(always)]
pub fn round_shift(x: i64, r: u32) -> i64 {
    let r = r.clamp(1, 62);
    x.wrapping_add(1i64 << (r - 1)) >> r
}

/// `round_half_up(acc · M · 2^(s−31))` without zero point or clamp (contract §4).
#[inline(always)]
pub fn requant_raw(acc: i32, multiplier: i32, shift: i8) -> i64 {
    round_shift(acc as i64 * multiplier as i64, (31 - shift as i32) as u32)
}

/// The whole requantization step of contract §4: rescale, add the output zero point, clamp.
// `max(lo).min(hi)` here and in the other kernels, never `Ord::clamp`: clamp panics when
// `lo > hi`, and its panic message formats both bounds, which links core::fmt's integer printing
// (1.6 KB with the 64-bit division it needs) into every firmware.
#[inline(always)]
pub fn requant(acc: i32, multiplier: i32, shift: i8, zero_point: i32, lo: i32, hi: i32) -> i32 {
    let q = requant_raw(acc, multiplier, shift);
    (q + zero_point as i64).max(lo as i64).min(hi as i64) as i32
}

/// `round_half_away(x)` for finite `x` of magnitude below 2^31, exact (no `x + 0.5` double
/// rounding); used only to quantize f32 inputs.
#[inline]
pub fn round_half_away(x: f32) -> i32 {
    if x.is_nan() {
        return 0;
    }
    // `as` saturates, so huge values cannot wrap.
    let t = x as i32;
    let frac = x - t as f32;
    if frac >= 0.5 {
        t.saturating_add(1)
    } else if frac <= -0.5 {
        t.saturating_sub(1)
    } else {
        t
    }
}

/// Bit width of packed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bits {
    B2,
    B4,
    B8,
}

impl Bits {
    pub fn from_u8(bits: u8) -> Option<Bits> {
        match bits {
            2 => Some(Bits::B2),
            4 => Some(Bits::B4),
            8 => Some(Bits::B8),
            _ => None,
        }
    }

    /// The width of a kernel's constant parameter `B` (8, 4 or 2; the kernels are instantiated
    /// at those three only): `Bits::from_width(B)` where a match on `B` was written per kernel.
    pub const fn from_width(bits: u32) -> Bits {
        match bits {
            8 => Bits::B8,
            4 => Bits::B4,
            _ => Bits::B2,
        }
    }

    pub fn get(self) -> u32 {
        match self {
            Bits::B2 => 2,
            Bits::B4 => 4,
            Bits::B8 => 8,
        }
    }

    /// Bytes taken by `n` values packed at this width.
    pub fn packed_len(self, n: usize) -> usize {
        match self {
            Bits::B2 => n.div_ceil(4),
            Bits::B4 => n.div_ceil(2),
            Bits::B8 => n,
        }
    }

    /// `(min, max)` of the full two's complement range (activations).
    pub fn range(self) -> (i32, i32) {
        let half = 1i32 << (self.get() - 1);
        (-half, half - 1)
    }
}

/// Value `k` of a packed row (weights or activations), sign-extended. Contract §2.
#[inline(always)]
pub fn load(buf: &[u8], bits: Bits, k: usize) -> i32 {
    match bits {
        Bits::B8 => buf[k] as i8 as i32,
        Bits::B4 => {
            let byte = buf[k >> 1];
            let nib = if k & 1 == 0 { byte << 4 } else { byte & 0xF0 };
            (nib as i8 >> 4) as i32
        }
        Bits::B2 => {
            let byte = buf[k >> 2];
            let crumb = byte << (6 - 2 * (k & 3) as u32);
            (crumb as i8 >> 6) as i32
        }
    }
}

/// Writes value `v` (already in range) at index `k` of a packed buffer, leaving its neighbours.
#[inline(always)]
pub fn store(buf: &mut [u8], bits: Bits, k: usize, v: i32) {
    match bits {
        Bits::B8 => buf[k] = v as u8,
        Bits::B4 => {
            let byte = &mut buf[k >> 1];
            let nib = v as u8 & 0x0F;
            *byte = if k & 1 == 0 { (*byte & 0xF0) | nib } else { (*byte & 0x0F) | (nib << 4) };
        }
        Bits::B2 => {
            let byte = &mut buf[k >> 2];
            let pos = 2 * (k & 3) as u32;
            *byte = (*byte & !(0b11 << pos)) | ((v as u8 & 0b11) << pos);
        }
    }
}

/// Packs signed values at `bits` into `out` (which must hold `bits.packed_len(values.len())`
/// bytes), zeroing unused high bits. Used by the compiler and the tests.
pub fn pack(values: &[i8], bits: Bits, out: &mut [u8]) {
    for b in out.iter_mut() {
        *b = 0;
    }
    for (k, &v) in values.iter().enumerate() {
        store(out, bits, k, v as i32);
    }
}

/// Largest exponent `e` of a layer's biases `b·2^e` (contract §1): `|b·2^e| < 2^31`.
pub const BIAS_EXPONENT_MAX: u8 = 16;

/// The `bias_exponent` that marks a layer's biases as `i32`, 4 bytes per channel (contract §1):
/// for layers whose channels' biases differ so much in accumulator units that one shared
/// exponent would round some channel's bias by a visible fraction of its output step.
pub const BIAS_I32: u8 = 0x80;

#[inline(always)]
fn le_i32(bytes: &[u8], i: usize) -> i32 {
    match bytes.get(4 * i..4 * i + 4) {
        Some(&[a, b, c, d]) => i32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

#[inline(always)]
fn le_i16(bytes: &[u8], i: usize) -> i32 {
    match bytes.get(2 * i..2 * i + 2) {
        Some(&[a, b]) => i16::from_le_bytes([a, b]) as i32,
        _ => 0,
    }
}

/// A layer's per-channel biases as the blob holds them (contract §1): an `i16` `b` per channel,
/// little-endian, and one exponent `e` for the layer, channel `c`'s bias being `b[c]·2^e`; or,
/// when `exponent == BIAS_I32`, an `i32` per channel.
#[derive(Debug, Clone, Copy)]
pub struct Biases<'a> {
    pub bytes: &'a [u8],
    pub exponent: u8,
}

impl Biases<'_> {
    /// Bytes per channel: 2, or 4 for `BIAS_I32`.
    pub const fn bytes_per_channel(exponent: u8) -> usize {
        if exponent == BIAS_I32 {
            4
        } else {
            2
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / Self::bytes_per_channel(self.exponent)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Channel `i`'s bias, or 0 past the end (validated models never ask past the end; the
    /// exponent is capped so that no blob can make this overflow).
    #[inline(always)]
    pub fn get(&self, i: usize) -> i32 {
        if self.exponent == BIAS_I32 {
            le_i32(self.bytes, i)
        } else {
            le_i16(self.bytes, i) << self.exponent.min(BIAS_EXPONENT_MAX)
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// A layer's per-channel multipliers and shifts as the blob holds them (contract §1): a `u16`
/// word `w` per channel, little-endian, and one base shift `s₀` for the layer. Channel `c`'s
/// mantissa is `m = (w & 0xFFF)·2^3` and its shift `s = s₀ + (w >> 12)`; the multiplier of §4
/// is `M = m·2^15`.
#[derive(Debug, Clone, Copy)]
pub struct Multipliers<'a> {
    pub bytes: &'a [u8],
    pub shift_base: i8,
}

impl Multipliers<'_> {
    pub fn len(&self) -> usize {
        self.bytes.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.len() < 2
    }

    #[inline(always)]
    fn word(&self, i: usize) -> i32 {
        le_i16(self.bytes, i) & 0xFFFF
    }

    /// Channel `i`'s mantissa `m` (`0 ≤ m < 2^15`), or 0 past the end.
    #[inline(always)]
    pub fn mantissa(&self, i: usize) -> i32 {
        (self.word(i) & 0xFFF) << 3
    }

    /// Channel `i`'s `M = m·2^15`.
    #[inline(always)]
    pub fn get(&self, i: usize) -> i32 {
        self.mantissa(i) << 15
    }

    /// Channel `i`'s shift `s₀ + (w >> 12)` (validated models keep it in `SHIFT_MIN..=SHIFT_MAX`).
    #[inline(always)]
    pub fn shift(&self, i: usize) -> i32 {
        self.shift_base as i32 + (self.word(i) >> 12)
    }

    pub fn iter(&self) -> impl Iterator<Item = (i32, i32)> + '_ {
        (0..self.len()).map(|i| (self.get(i), self.shift(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rational definition, in i128: ⌊(2·acc·M + 2^r) / 2^(r+1)⌋ = round_half_up(acc·M/2^r).
    fn reference(acc: i32, m: i32, shift: i8) -> i128 {
        let r = 31 - shift as i32;
        let num = 2 * acc as i128 * m as i128 + (1i128 << r);
        num.div_euclid(1i128 << (r + 1))
    }

    #[test]
    fn requant_matches_rational_reference_for_every_shift() {
        let accs = [
            i32::MIN,
            i32::MIN + 1,
            -1 << 30,
            -65_537,
            -255,
            -3,
            -2,
            -1,
            0,
            1,
            2,
            3,
            127,
            255,
            65_535,
            1 << 30,
            i32::MAX - 1,
            i32::MAX,
        ];
        let mults = [0, 1, 2, 3, 1 << 29, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, 1_518_500_250, i32::MAX];
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for shift in SHIFT_MIN..=SHIFT_MAX {
            for &acc in &accs {
                for &m in &mults {
                    assert_eq!(
                        requant_raw(acc, m, shift) as i128,
                        reference(acc, m, shift),
                        "acc {acc} M {m} shift {shift}"
                    );
                }
            }
            for _ in 0..20_000 {
                let acc = next() as i32 >> (next() % 32);
                let m = (next() as u32 >> 1) as i32 >> (next() % 31);
                assert_eq!(
                    requant_raw(acc, m, shift) as i128,
                    reference(acc, m, shift),
                    "acc {acc} M {m} shift {shift}"
                );
            }
        }
    }

    #[test]
    fn requant_rounds_ties_up() {
        // M·2^(s−31) = 1/2 with M = 2^30, s = 0.
        assert_eq!(requant_raw(1, 1 << 30, 0), 1); // 0.5 → 1
        assert_eq!(requant_raw(-1, 1 << 30, 0), 0); // −0.5 → 0
        assert_eq!(requant_raw(3, 1 << 30, 0), 2); // 1.5 → 2
        assert_eq!(requant_raw(-3, 1 << 30, 0), -1); // −1.5 → −1
                                                     // Identity: M = 2^30, s = 1.
        for v in -300..300 {
            assert_eq!(requant_raw(v, 1 << 30, 1), v as i64);
        }
    }

    #[test]
    fn requant_clamps_after_zero_point() {
        assert_eq!(requant(1000, 1 << 30, 1, 5, -128, 127), 127);
        assert_eq!(requant(-1000, 1 << 30, 1, 5, -128, 127), -128);
        assert_eq!(requant(10, 1 << 30, 1, 5, 0, 127), 15);
        assert_eq!(requant(-10, 1 << 30, 1, 5, 0, 127), 0);
    }

    #[test]
    fn packing_follows_cmsis_nn_convention() {
        let mut out = [0u8; 2];
        pack(&[1, 2, 3, 4], Bits::B4, &mut out);
        assert_eq!(out, [0x21, 0x43]);
        let mut out = [0u8; 1];
        pack(&[1, -1, 0, 1], Bits::B2, &mut out);
        assert_eq!(out, [0x4D]);
        let mut out = [0u8; 2];
        pack(&[-8, 7, -1], Bits::B4, &mut out);
        assert_eq!(out, [0x78, 0x0F]);
    }

    #[test]
    fn load_inverts_store_at_every_width_and_value() {
        for bits in [Bits::B2, Bits::B4, Bits::B8] {
            let (lo, hi) = bits.range();
            let values: heapless::Vec<i8, 64> = (0..61).map(|i| (lo + (i * 7) % (hi - lo + 1)) as i8).collect();
            let mut buf = [0xAAu8; 64];
            pack(&values, bits, &mut buf[..bits.packed_len(values.len())]);
            for (k, &v) in values.iter().enumerate() {
                assert_eq!(load(&buf, bits, k), v as i32, "{bits:?} index {k}");
            }
        }
    }

    #[test]
    fn round_half_away_is_exact_near_ties() {
        assert_eq!(round_half_away(0.5), 1);
        assert_eq!(round_half_away(-0.5), -1);
        assert_eq!(round_half_away(0.499_999_97), 0);
        assert_eq!(round_half_away(-0.499_999_97), 0);
        assert_eq!(round_half_away(2.5), 3);
        assert_eq!(round_half_away(-2.5), -3);
        assert_eq!(round_half_away(f32::NAN), 0);
        assert_eq!(round_half_away(1e20), i32::MAX);
        assert_eq!(round_half_away(-1e20), i32::MIN);
    }
}
