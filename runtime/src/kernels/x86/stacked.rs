//! Depthwise convolution with `VPDPBUSD`, the kernel's rows stacked in the bytes of a dword.
//!
//! `VPDPBUSD` sums four byte products per 32-bit lane. A depthwise layer has one channel per
//! lane, so the four bytes must be four taps of the same channel: here the (up to four) kernel
//! rows of one kernel column. Per output row, each input column the row's windows read is
//! turned once into a "stacked column" (per channel the bytes of rows `oy·s + 0..4`, offset by
//! 128 as in the convolution: `a ^ 0x80`, padding and the unused fourth row `z ^ 0x80`); an
//! output pixel is then `kw` `VPDPBUSD`s per 16 channels, the weights of kernel column `kx`
//! being the signed bytes of its rows (0 for a missing fourth). With stride 1 a stacked column
//! serves `kw` pixels. Against the tap-pair kernel of `avx512.rs` (`VPMADDWD` on sign-extended
//! pairs), a 3×3 layer takes about 40% fewer instructions.
//!
//! Byte interleaving within 128-bit lanes (`VPUNPCK*`) leaves vector `j` (of four per 64
//! channels) holding in dword `4L + i` channel `16L + 4j + i`; the weights and requantization
//! are laid out in that order, and `VPACKSSDW` / `VPACKSSWB` of the four results restore the
//! channel order. The sums are of `a + 128`: each channel's bias takes `−(128 + z)·Σw` (exact
//! with wrapping arithmetic, as in the convolution), padding taps reading `z + 128` add nothing.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::super::reference::{ActFormat, Requant, Window};
use super::super::util::{sum_bound, ChannelQ, Rq32};
use super::avx512::{LaneQ16, LANEQ_BYTES};
use crate::quant::{load, Bits};

/// Channels per block: four vectors of 16.
const BLOCK: usize = 64;
/// Most kernel columns.
const KW_MAX: usize = 8;
/// Most kernel rows: the four bytes of a dword.
const KH_MAX: usize = 4;
/// Most stride.
const STRIDE_MAX: usize = 4;
/// Stacked columns of a strip of output pixels of a row (built together, 10 KiB of stack): the
/// most pixels whose windows they hold, `(COLS_MAX − kw) / stride + 1`, 9 at least.
const COLS_MAX: usize = 40;
/// Most channels.
const C_MAX: usize = 1024;
/// Most bytes of one block's tables ([`Stacked::block_bytes`]).
const BLOCK_TABLE_MAX: usize = KW_MAX * 4 * 64 + 4 * LANEQ_BYTES;
const _: () = assert!(COLS_MAX >= KW_MAX);

/// A depthwise layer this kernel runs: depth multiplier 1, 8-bit input and output, 32 to 1,024
/// channels (in blocks of 64, the last one under a mask), at most 4 kernel rows, 8 kernel
/// columns and stride 4.
pub(super) struct Stacked<'a> {
    g: &'a Window,
    weights: &'a [u8],
    weight_bits: Bits,
    rq: &'a Requant<'a>,
    z: i32,
}

impl<'a> Stacked<'a> {
    /// `Some` when the layer's shape and formats suit the kernel (the requantization is
    /// checked by [`Stacked::fast`]).
    pub(super) fn plan(
        g: &'a Window,
        in_fmt: ActFormat,
        weights: &'a [u8],
        weight_bits: Bits,
        rq: &'a Requant<'a>,
    ) -> Option<Stacked<'a>> {
        let c = g.in_c;
        let fits = g.out_c == c
            // Below 32 channels most lanes would be idle: the tap-pair kernels do as well.
            && (32..=C_MAX).contains(&c)
            && in_fmt.bits == Bits::B8
            && rq.out.bits == Bits::B8
            && (1..=KH_MAX).contains(&g.kernel_h)
            && (1..=KW_MAX).contains(&g.kernel_w)
            && (1..=STRIDE_MAX).contains(&g.stride_h)
            && (1..=STRIDE_MAX).contains(&g.stride_w)
            && weights.len() >= c * weight_bits.packed_len(g.kernel_h * g.kernel_w);
        fits.then_some(Stacked { g, weights, weight_bits, rq, z: in_fmt.zero_point })
    }

    /// Every channel's requantization has the 32-bit form the vectors compute.
    pub(super) fn fast(&self) -> bool {
        (0..self.g.in_c).all(|ch| !self.channel(ch).is_slow())
    }

    /// Bytes of the layer's tables: per block, `kw` × 4 weight vectors, then 4 [`LaneQ16`].
    pub(super) fn table_bytes(&self) -> usize {
        self.g.in_c.div_ceil(BLOCK) * (self.g.kernel_w * 4 * 64 + 4 * LANEQ_BYTES)
    }

    fn taps(&self) -> usize {
        self.g.kernel_h * self.g.kernel_w
    }

    /// Channel `ch`'s weight at kernel row `ky`, column `kx` (0 past the last row and for the
    /// lanes past the last channel).
    fn weight(&self, ch: usize, ky: usize, kx: usize) -> i32 {
        if ky >= self.g.kernel_h || ch >= self.g.in_c {
            return 0;
        }
        let row_bytes = self.weight_bits.packed_len(self.taps());
        load(&self.weights[ch * row_bytes..][..row_bytes], self.weight_bits, ky * self.g.kernel_w + kx)
    }

    /// Channel `ch`'s requantization with `−(128 + z)·Σw` in its bias.
    fn channel(&self, ch: usize) -> Rq32 {
        let (kh, kw) = (self.g.kernel_h, self.g.kernel_w);
        let sum_w: i32 = (0..kh * kw).map(|t| self.weight(ch, t / kw, t % kw)).sum();
        let bound = sum_bound(self.taps(), self.weight_bits, Bits::B8);
        Rq32::new(&ChannelQ::new(self.rq, ch), bound, 0).with_bias_offset((128 + self.z).wrapping_mul(-sum_w))
    }

    /// The tables into `dst` ([`Stacked::table_bytes`]): for block `b` and kernel column `kx`,
    /// vector `j`'s dword `4L + i` holds the rows of channel `64b + 16L + 4j + i`; then the
    /// block's four [`LaneQ16`] in the same lane order.
    #[target_feature(enable = "avx512f")]
    pub(super) fn tables(&self, dst: &mut [u8]) {
        let per_block = self.block_bytes();
        for (b, block) in dst.chunks_exact_mut(per_block).enumerate().take(self.g.in_c.div_ceil(BLOCK)) {
            self.block_table(b, block);
        }
    }

    /// Bytes of one block's tables (at most `BLOCK_TABLE_MAX`).
    fn block_bytes(&self) -> usize {
        self.g.kernel_w * 4 * 64 + 4 * LANEQ_BYTES
    }

    /// Block `b`'s tables ([`Stacked::tables`]) into `block` ([`Stacked::block_bytes`]).
    #[target_feature(enable = "avx512f")]
    fn block_table(&self, b: usize, block: &mut [u8]) {
        let kw = self.g.kernel_w;
        let lane_channel = |j: usize, lane: usize| BLOCK * b + 16 * (lane / 4) + 4 * j + lane % 4;
        let (wv, qv) = block.split_at_mut(kw * 4 * 64);
        for (v, d) in wv.chunks_exact_mut(64).enumerate() {
            let (kx, j) = (v / 4, v % 4);
            for (lane, quad) in d.chunks_exact_mut(4).enumerate() {
                for (ky, byte) in quad.iter_mut().enumerate() {
                    *byte = self.weight(lane_channel(j, lane), ky, kx) as i8 as u8;
                }
            }
        }
        for (j, d) in qv.chunks_exact_mut(LANEQ_BYTES).enumerate() {
            // Lanes past the last channel requantize as channel 0 (their bytes are not stored).
            let ch = |lane| Some(lane_channel(j, lane)).filter(|&ch| ch < self.g.in_c).unwrap_or(0);
            LaneQ16::new(&core::array::from_fn(|lane| self.channel(ch(lane)))).store(d);
        }
    }

    /// The layer, with the `prepared` tables (made once by the caller and checked then) when
    /// they have [`Stacked::table_bytes`] bytes, else each block's made in turn (a block's take
    /// 3.3 KB at most, where the whole layer's could take 53); `false` (nothing written) when a
    /// channel's requantization is outside the vector form or a buffer is short.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn run(&self, input: &[u8], output: &mut [u8], prepared: &[u8]) -> bool {
        let g = self.g;
        let c = g.in_c;
        if input.len() < g.in_h * g.in_w * c || output.len() < g.out_h * g.out_w * c {
            return false;
        }
        let prepared = (prepared.len() == self.table_bytes()).then_some(prepared);
        if prepared.is_none() && !self.fast() {
            return false;
        }
        self.layer(input, output, prepared);
        true
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn layer(&self, input: &[u8], output: &mut [u8], tables: Option<&[u8]>) {
        let g = self.g;
        let (c, kw, sw) = (g.in_c, g.kernel_w, g.stride_w);
        let per_block = self.block_bytes();
        // A block's tables made here when none were prepared (the buffer zeroed at first use only).
        let mut own: Option<[u8; BLOCK_TABLE_MAX]> = None;
        let zx = _mm512_set1_epi8(((self.z as u8) ^ 0x80) as i8);
        let flip = _mm512_set1_epi8(0x80u8 as i8);
        let (lo, hi) = (_mm512_set1_epi32(self.rq.min), _mm512_set1_epi32(self.rq.max));
        let mut cols = MaybeUninit::<[__m512i; 4 * COLS_MAX]>::uninit();
        let cols = cols.as_mut_ptr() as *mut __m512i;
        // `kw ≤ KW_MAX`, `sw ≤ STRIDE_MAX` (`Stacked::plan`): `(n − 1)·sw + kw ≤ COLS_MAX`.
        let strip = (COLS_MAX - kw) / sw + 1;
        for b in 0..c.div_ceil(BLOCK) {
            // The channels of this block: 64, or the rest of the last (read and written under a
            // mask: the bytes past them belong to the next pixel).
            let mask: __mmask64 = u64::MAX >> (BLOCK - (c - BLOCK * b).min(BLOCK));
            let block: &[u8] = match tables {
                Some(t) => &t[b * per_block..(b + 1) * per_block],
                None => {
                    let own = own.get_or_insert([0; BLOCK_TABLE_MAX]);
                    self.block_table(b, &mut own[..per_block]);
                    &own[..per_block]
                }
            };
            let (wv, qv) = block.split_at(kw * 4 * 64);
            let q: [LaneQ16; 4] = core::array::from_fn(|j| LaneQ16::load(&qv[j * LANEQ_BYTES..]));
            for oy in 0..g.out_h {
                // The input rows of this output row's windows (`None`: padding, or no fourth row).
                let rows: [Option<usize>; KH_MAX] = core::array::from_fn(|ky| {
                    let y = (oy * g.stride_h + ky).checked_sub(g.pad_top)?;
                    (ky < g.kernel_h && y < g.in_h).then_some(y)
                });
                let mut ox0 = 0;
                while ox0 < g.out_w {
                    let n = (g.out_w - ox0).min(strip);
                    let ncols = (n - 1) * sw + kw;
                    let x0 = (ox0 * sw) as isize - g.pad_left as isize;
                    for col in 0..ncols {
                        let x = x0 + col as isize;
                        let inside = x >= 0 && (x as usize) < g.in_w;
                        let r: [__m512i; 4] = core::array::from_fn(|ky| match rows[ky] {
                            Some(y) if inside => {
                                let at = (y * g.in_w + x as usize) * c + BLOCK * b;
                                // SAFETY: `y < in_h`, `x < in_w`, and the mask covers the block's
                                // `min(64, c − 64b)` channels: bytes of `input` (`in_h·in_w·c` of
                                // them, checked in `run`); the lanes past them read as 0.
                                let v = unsafe { _mm512_maskz_loadu_epi8(mask, input.as_ptr().add(at) as *const i8) };
                                _mm512_xor_si512(v, flip)
                            }
                            _ => zx,
                        });
                        let (a, bb) = (_mm512_unpacklo_epi8(r[0], r[1]), _mm512_unpackhi_epi8(r[0], r[1]));
                        let (cc, d) = (_mm512_unpacklo_epi8(r[2], r[3]), _mm512_unpackhi_epi8(r[2], r[3]));
                        let v = [
                            _mm512_unpacklo_epi16(a, cc),
                            _mm512_unpackhi_epi16(a, cc),
                            _mm512_unpacklo_epi16(bb, d),
                            _mm512_unpackhi_epi16(bb, d),
                        ];
                        for (j, v) in v.into_iter().enumerate() {
                            // SAFETY: `col < ncols ≤ COLS_MAX`, so `4·col + j < 4·COLS_MAX`.
                            unsafe { cols.add(4 * col + j).write(v) };
                        }
                    }
                    for p in 0..n {
                        let mut acc = [_mm512_setzero_si512(); 4];
                        for kx in 0..kw {
                            let col = p * sw + kx;
                            for (j, s) in acc.iter_mut().enumerate() {
                                // SAFETY: `col < ncols` (written above); `wv` holds `kw·4`
                                // vectors of 64 bytes.
                                let (x, w) = unsafe {
                                    (
                                        cols.add(4 * col + j).read(),
                                        _mm512_loadu_si512(wv.as_ptr().add((4 * kx + j) * 64) as *const __m512i),
                                    )
                                };
                                *s = _mm512_dpbusd_epi32(*s, x, w);
                            }
                        }
                        let r: [__m512i; 4] =
                            core::array::from_fn(|j| _mm512_min_epi32(_mm512_max_epi32(q[j].apply(acc[j]), lo), hi));
                        let bytes = _mm512_packs_epi16(_mm512_packs_epi32(r[0], r[1]), _mm512_packs_epi32(r[2], r[3]));
                        let o = (oy * g.out_w + ox0 + p) * c + BLOCK * b;
                        let dst = &mut output[o..o + (c - BLOCK * b).min(BLOCK)];
                        // SAFETY: the mask covers `dst`'s bytes.
                        unsafe { _mm512_mask_storeu_epi8(dst.as_mut_ptr() as *mut i8, mask, bytes) };
                    }
                    ox0 += n;
                }
            }
        }
    }
}
