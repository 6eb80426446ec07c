//! Pieces the fast paths share: the requantization of contract §4 with per-channel constants
//! hoisted out of the pixel loop, output stores, the receptive field of one output pixel, and the
//! geometry of packed weight rows read a 32-bit word at a time.

use super::reference::{ActFormat, Requant, Window};
use crate::quant::{load, store, Bits};

/// Bias and requantization of one output channel (contract §3–§4), read once per channel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelQ {
    bias: i32,
    m: i32,
    /// `r = 31 − s`, in `1..=62`.
    r: u32,
    z: i32,
    lo: i32,
    hi: i32,
}

impl ChannelQ {
    #[inline(always)]
    pub fn new(rq: &Requant<'_>, c: usize) -> ChannelQ {
        let shift = rq.shift.get(c).map_or(0, |&s| s as i8);
        ChannelQ {
            bias: rq.bias.get(c),
            m: rq.multiplier.get(c),
            r: (31 - shift as i32).clamp(1, 62) as u32,
            z: rq.out.zero_point,
            lo: rq.min,
            hi: rq.max,
        }
    }

    #[cfg_attr(not(hawq_dsp), allow(dead_code))]
    /// The same channel with `offset` added to its bias (a path that folds `−z·Σw` into it).
    #[inline(always)]
    pub fn with_bias_offset(self, offset: i32) -> ChannelQ {
        ChannelQ { bias: self.bias.wrapping_add(offset), ..self }
    }

    /// `clamp(z + round_half_up((bias + sum) · M · 2^(s−31)))`: exactly `Requant::apply` of the
    /// reference. `|acc · M| < 2^62`, so adding `2^(r−1)` cannot overflow; when `r ≥ 32` the
    /// quotient fits in 31 bits and the shift is split at the word boundary, which on a 32-bit
    /// core is one `SMULL`, one 64-bit add and one `ASR`.
    #[inline(always)]
    pub fn apply(&self, sum: i32) -> i32 {
        let acc = self.bias.wrapping_add(sum);
        let x = acc as i64 * self.m as i64 + (1i64 << (self.r - 1));
        if self.r >= 32 {
            let q = ((x >> 32) as i32) >> (self.r - 32);
            (q + self.z).max(self.lo).min(self.hi)
        } else {
            let q = (x >> self.r) + self.z as i64;
            q.max(self.lo as i64).min(self.hi as i64) as i32
        }
    }
}

/// The per-channel constants of [`ChannelQ::apply`] when `r ≥ 32` (every multiplier below 1, the
/// usual case), precomputed: `round = 2^(r−1)`, `sh = r − 32`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rq32 {
    pub bias: i32,
    pub m: i32,
    pub round: i64,
    pub sh: u32,
    /// `r < 32` (a multiplier above 1): [`Rq32::apply`] then falls back to [`ChannelQ::apply`].
    pub slow: Option<ChannelQ>,
}

impl Rq32 {
    /// `None` when the channel's `r < 32` (then use [`ChannelQ::apply`]).
    #[inline(always)]
    pub fn new(cq: &ChannelQ) -> Option<Rq32> {
        (cq.r >= 32).then(|| Rq32 { bias: cq.bias, m: cq.m, round: 1i64 << (cq.r - 1), sh: cq.r - 32, slow: None })
    }

    /// Every channel: the fast form when `r ≥ 32`, else a wrapper of the general one.
    #[cfg_attr(not(hawq_dsp), allow(dead_code))]
    #[inline(always)]
    pub fn any(cq: &ChannelQ) -> Rq32 {
        Rq32::new(cq).unwrap_or(Rq32 { bias: 0, m: 0, round: 0, sh: 0, slow: Some(*cq) })
    }

    /// `clamp(z + q, lo, hi)` as [`ChannelQ::apply`] computes it (`z`, `lo`, `hi` are the
    /// layer's; a slow channel holds its own).
    #[inline(always)]
    pub fn apply(&self, sum: i32, z: i32, lo: i32, hi: i32) -> i32 {
        if let Some(cq) = &self.slow {
            return cq.apply(sum);
        }
        let x = self.bias.wrapping_add(sum) as i64 * self.m as i64 + self.round;
        ((((x >> 32) as i32) >> self.sh) + z).max(lo).min(hi)
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
#[cfg_attr(not(any(hawq_dsp, target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
pub(crate) fn gather<'a>(
    g: &Window,
    input: &'a [u8],
    fmt: ActFormat,
    oy: usize,
    ox: usize,
    col: &'a mut [u8],
) -> &'a [u8] {
    let (y0, y1, ky0) = g.rows(oy);
    let (x0, x1, kx0) = g.cols(ox);
    let c = g.in_c;
    let k = g.kernel_h * g.kernel_w * c;
    let full = y1 - y0 == g.kernel_h && x1 - x0 == g.kernel_w;
    if fmt.bits == Bits::B8 && full && (g.kernel_h == 1 || g.kernel_w == g.in_w) {
        let start = (y0 * g.in_w + x0) * c;
        return &input[start..start + k];
    }
    let zb = fmt.zero_point as u8;
    let col = &mut col[..k];
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
    col
}
