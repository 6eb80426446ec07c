//! AArch64 kernels: Advanced SIMD (every AArch64 CPU) and the dot-product extension (SDOT),
//! chosen at run time (`std` feature) or from the compile-time target features.
//!
//! **Convolution** is an im2col GEMM over blocks of `PIX` output pixels whose receptive fields
//! are gathered once as raw `i8` activations, taps in the padding set to the zero point `z` and
//! the field zero-padded to a multiple of 16. Weight rows are read 16 weights at a time and
//! widened to `i8` lanes (4- and 2-bit values spread with `TBL`/`ZIP`, shifted and
//! sign-extended); a row's last, partial chunk is read whole where the weights continue past it
//! (what it takes beyond the row meets zero activations), else unpacked one value at a time, so
//! nothing past the weights is read. Four rows at a time share each chunk of activations
//! (`rows_dot`: 16 accumulators), `Σ w·a` accumulated exactly in `i32` lanes — with `SDOT`
//! (four `i8·i8` products per lane) on [`NeonDot`], with `SMULL`/`SADALP` (`i8·i8` products are
//! exact in `i16`) on [`Neon`]. Each channel's requantization is built once per layer into the
//! kernel's scratch (`LaneTable`) with `−z·Σw` in its bias: `Σ w·(a − z)` over the taps inside
//! the input, since padding taps hold `z` (contract §3); per pixel the four channels' sums are
//! added pairwise into one vector and requantized in lanes. All sums stay below `K·2^15 < 2^31`.
//! The block of receptive fields and the table live in the op's planned scratch (with no room
//! for the block, the portable kernel runs); a scratch without room for the table takes one row
//! at a time with `Σw` summed alongside. A fully connected layer over an 8-bit input reads it in
//! place (`fc_rows`: one pixel needs no block).
//!
//! **Depthwise convolution** (depth multiplier 1, 8-bit activations) keeps a block of 8
//! channels' weights and requantization in registers over the layer's pixels
//! (`depthwise_neon`); other depthwise layers and the other operations are the portable kernels.
#![allow(unsafe_code)]

use core::arch::aarch64::*;
use core::arch::asm;

use super::reference::{self, ActFormat, Layer, Requant, Window};
use super::scratch::Scratch;
use super::util::{gather_into, put, sum_bound, unpack4, ChannelQ, Rq32};
use super::{portable, KernelTable, Path};
use crate::quant::{load, Bits};

/// Output pixels per block (four: [`requant_lanes`] takes one block's sums as one vector).
const PIX: usize = 4;
const _: () = assert!(PIX == 4);
/// Largest receptive field `K` of these kernels (their `i32` sums, at most `K·2^14`, stay
/// exact); larger: portable.
const K_MAX: usize = 1 << 16;

/// AArch64 Advanced SIMD, present on every AArch64 CPU.
#[derive(Debug, Clone, Copy)]
pub struct Neon;

impl Neon {
    /// These kernels as a [`KernelTable`] (each entry reports NEON, whichever kernel ran).
    pub fn table(self) -> KernelTable {
        KernelTable {
            path: Path::Neon,
            conv2d: |g, layer, input, output, scratch| Neon.conv2d(g, layer, input, output, scratch),
            depthwise_conv2d: |g, layer, input, output, scratch| {
                Neon.depthwise_conv2d(g, layer, input, output, scratch)
            },
            fully_connected: |n, m, layer, input, output, scratch| {
                Neon.fully_connected(n, m, layer, input, output, scratch)
            },
        }
    }

    /// Conv2D with SMULL/SADALP, same bytes as [`reference::conv2d`]; the path that ran (the
    /// portable kernel for rows past `K_MAX`).
    pub fn conv2d(self, g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> Path {
        let k = g.kernel_h * g.kernel_w * g.in_c;
        // SAFETY: Advanced SIMD is part of every AArch64 target.
        if k == 0 || k > K_MAX || !unsafe { conv2d_neon(g, layer, input, output, scratch) } {
            return portable::conv2d(g, layer, input, output, scratch);
        }
        Path::Neon
    }
    /// Fully connected, same bytes as [`reference::fully_connected`]; the path that ran: this
    /// one, or for rows past `K_MAX` the portable fully connected kernel (the portable
    /// convolution's blocks of four pixels need four times the scratch the layer plans).
    pub fn fully_connected(
        self,
        in_features: usize,
        out_features: usize,
        layer: &Layer<'_>,
        input: &[u8],
        output: &mut [u8],
        scratch: &mut [u8],
    ) -> Path {
        let in_fmt = layer.in_fmt;
        if let Some(x) = fc_input(in_features, input, in_fmt, scratch) {
            // SAFETY: Advanced SIMD is part of every AArch64 target; `x` holds the features.
            unsafe { fc_neon(in_features, out_features, layer, x, output) };
            return Path::Neon;
        }
        portable::fully_connected(in_features, out_features, layer, input, output, scratch)
    }
}

/// Proof that the CPU has the dot-product extension (SDOT).
#[derive(Debug, Clone, Copy)]
pub struct NeonDot(());

impl NeonDot {
    /// `Some` when the CPU has `dotprod` (run-time detection with the `std` feature, else the
    /// compile-time target features).
    pub fn new() -> Option<NeonDot> {
        #[cfg(feature = "std")]
        let ok = std::arch::is_aarch64_feature_detected!("dotprod");
        #[cfg(not(feature = "std"))]
        let ok = cfg!(target_feature = "dotprod");
        ok.then_some(NeonDot(()))
    }

    /// These kernels as a [`KernelTable`], with NEON's depthwise kernel (SDOT has no use in a
    /// depthwise layer); each entry reports NEON with SDOT.
    pub fn table(self) -> KernelTable {
        KernelTable {
            path: Path::NeonDot,
            conv2d: |g, layer, input, output, scratch| NeonDot(()).conv2d(g, layer, input, output, scratch),
            // The NEON depthwise kernel (SDOT has none of its own), or the portable one it hands
            // a layer on to.
            depthwise_conv2d: |g, layer, input, output, scratch| match Neon
                .depthwise_conv2d(g, layer, input, output, scratch)
            {
                Path::Neon => Path::NeonDot,
                ran => ran,
            },
            fully_connected: |n, m, layer, input, output, scratch| {
                NeonDot(()).fully_connected(n, m, layer, input, output, scratch)
            },
        }
    }

    /// Conv2D with SDOT, same bytes as [`reference::conv2d`]; the path that ran (as [`Neon::conv2d`]).
    pub fn conv2d(self, g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> Path {
        let k = g.kernel_h * g.kernel_w * g.in_c;
        // SAFETY: `self` proves the CPU has dotprod.
        if k == 0 || k > K_MAX || !unsafe { conv2d_dot(g, layer, input, output, scratch) } {
            return portable::conv2d(g, layer, input, output, scratch);
        }
        Path::NeonDot
    }
    /// Fully connected, same bytes as [`reference::fully_connected`]; the path that ran: this
    /// one, or for rows past `K_MAX` the portable fully connected kernel (the portable
    /// convolution's blocks of four pixels need four times the scratch the layer plans).
    pub fn fully_connected(
        self,
        in_features: usize,
        out_features: usize,
        layer: &Layer<'_>,
        input: &[u8],
        output: &mut [u8],
        scratch: &mut [u8],
    ) -> Path {
        let in_fmt = layer.in_fmt;
        if let Some(x) = fc_input(in_features, input, in_fmt, scratch) {
            // SAFETY: `self` proves the CPU has dotprod; `x` holds the features.
            unsafe { fc_dot(in_features, out_features, layer, x, output) };
            return Path::NeonDot;
        }
        portable::fully_connected(in_features, out_features, layer, input, output, scratch)
    }
}

/// Weights `16j..16j + 16` of a packed row of `k` weights as `i8` lanes, zero past `k`: the
/// row's last, partial chunk (full ones: [`chunk`]).
#[inline(always)]
fn weights16(row: &[u8], bits: Bits, k: usize, j: usize) -> int8x16_t {
    if 16 * j + 16 > k {
        let mut t = [0i8; 16];
        for (i, v) in t.iter_mut().enumerate().take(k - 16 * j) {
            *v = load(row, bits, 16 * j + i) as i8;
        }
        // SAFETY: `t` holds 16 bytes.
        return unsafe { vld1q_s8(t.as_ptr()) };
    }
    // SAFETY: the chunk lies inside the row (`16j + 16 ≤ k`).
    unsafe {
        match bits {
            Bits::B8 => chunk::<8>(row.as_ptr(), j),
            Bits::B4 => chunk::<4>(row.as_ptr(), j),
            Bits::B2 => chunk::<2>(row.as_ptr(), j),
        }
    }
}

/// Weights `16j..16j + 16` of a packed row of `B`-bit weights as `i8` lanes (4- and 2-bit
/// values spread with `ZIP`/`TBL`, offset binary back to two's complement).
///
/// # Safety
/// The chunk lies inside the row: `row` points at `16(j + 1)·B/8` readable bytes or more.
#[inline(always)]
unsafe fn chunk<const B: u32>(row: *const u8, j: usize) -> int8x16_t {
    // SAFETY (each arm): the caller's bound covers the 16, 8 or 4 bytes read; every operation
    // is Advanced SIMD.
    unsafe {
        match B {
            8 => vld1q_s8(row.add(16 * j) as *const i8),
            4 => {
                let v = vld1_u8(row.add(8 * j));
                let (lo, hi) = (vand_u8(v, vdup_n_u8(0x0F)), vshr_n_u8::<4>(v));
                let n = vcombine_u8(vzip1_u8(lo, hi), vzip2_u8(lo, hi));
                let e = veorq_u8(n, vdupq_n_u8(8));
                vsubq_s8(vreinterpretq_s8_u8(e), vdupq_n_s8(8))
            }
            _ => {
                let word = core::ptr::read_unaligned(row.add(4 * j) as *const u32);
                let v = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_le(word)));
                const SPREAD: [u8; 16] = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3];
                const SHIFT: [i8; 16] = [0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6];
                let spread = vqtbl1q_u8(v, vld1q_u8(SPREAD.as_ptr()));
                let crumbs = vandq_u8(vshlq_u8(spread, vld1q_s8(SHIFT.as_ptr())), vdupq_n_u8(3));
                let e = veorq_u8(crumbs, vdupq_n_u8(2));
                vsubq_s8(vreinterpretq_s8_u8(e), vdupq_n_s8(2))
            }
        }
    }
}

/// `Σ w·a` of one weight row against the block's [`PIX`] receptive fields as `i32` lanes, and
/// with `SW` also `Σw` (else zero): the row's full chunks in a loop with no bounds arithmetic (it
/// was four fifths of the instructions of a 3×3 layer), its partial chunk once. `mac(acc, w, x)`
/// accumulates one chunk's products.
///
/// # Safety
/// The row holds `k` packed `B`-bit weights, each of `x` at least `k` rounded up to 16 bytes;
/// the CPU has what `mac` needs.
#[inline(always)]
unsafe fn row_dot<const B: u32, const SW: bool>(
    row: &[u8],
    k: usize,
    x: &[&[u8]; PIX],
    mac: impl Fn(int32x4_t, int8x16_t, int8x16_t) -> int32x4_t,
) -> ([int32x4_t; PIX], int32x4_t) {
    // SAFETY: Advanced SIMD; every load below is inside `row` or a field (the caller's bounds).
    unsafe {
        let ones = vdupq_n_s8(1);
        let mut acc = [vdupq_n_s32(0); PIX];
        let mut sw = vdupq_n_s32(0);
        let full = k / 16;
        let step = |acc: &mut [int32x4_t; PIX], sw: &mut int32x4_t, w: int8x16_t, j: usize| {
            if SW {
                *sw = mac(*sw, w, ones);
            }
            for (a, xp) in acc.iter_mut().zip(x) {
                *a = mac(*a, w, vld1q_s8(xp.as_ptr().add(16 * j) as *const i8));
            }
        };
        for j in 0..full {
            step(&mut acc, &mut sw, chunk::<B>(row.as_ptr(), j), j);
        }
        if full * 16 < k {
            step(&mut acc, &mut sw, weights16(row, Bits::from_width(B), k, full), full);
        }
        (acc, sw)
    }
}

/// Gathers the block's receptive fields as raw `i8` bytes (padding taps = z) into `x`, one
/// `kpad`-byte field per pixel, zero past `K`.
#[inline(always)]
fn im2col(g: &Window, input: &[u8], in_fmt: ActFormat, q0: usize, n: usize, (k, kpad): (usize, usize), x: &mut [u8]) {
    for (p, xp) in x.chunks_exact_mut(kpad).enumerate() {
        if p < n {
            let q = q0 + p;
            gather_into(g, input, in_fmt, q / g.out_w, q % g.out_w, xp);
            xp[k..].fill(0);
        } else {
            xp.fill(0);
        }
    }
}

/// Requantizes the block's sums `Σ w·a − z·Σw` of channel `c` into the output.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn finish(
    rq: &Requant<'_>,
    (c, bound): (usize, i64),
    oc: usize,
    q0: usize,
    n: usize,
    sums: [i32; PIX],
    zsw: i32,
    output: &mut [u8],
) {
    let f = Rq32::new(&ChannelQ::new(rq, c), bound, 0);
    for (p, &s) in sums.iter().enumerate().take(n) {
        put(output, rq.out.bits, (q0 + p) * oc + c, f.apply(s.wrapping_sub(zsw), rq.min, rq.max));
    }
}

/// The SMULL/SADALP convolution.
#[target_feature(enable = "neon")]
fn conv2d_neon(g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> bool {
    let mac = |a: int32x4_t, w: int8x16_t, x: int8x16_t| smull_mac(a, w, x);
    match layer.weight_bits {
        Bits::B8 => conv_blocks::<8>(g, layer, input, output, scratch, mac),
        Bits::B4 => conv_blocks::<4>(g, layer, input, output, scratch, mac),
        Bits::B2 => conv_blocks::<2>(g, layer, input, output, scratch, mac),
    }
}

/// The convolution over blocks of [`PIX`] pixels for `B`-bit weights, with `mac` as the inner
/// product (SDOT or SMULL/SADALP). With room in `scratch` for a [`LaneTable`] of the layer's
/// channels (a convolution's planned scratch has it; a fully connected layer's need not, and
/// gains nothing: each channel requantizes once), each channel's requantization is built once,
/// `−z·Σw` folded into its bias, and [`ROWS`] channels at a time are computed and requantized
/// together in lanes; else per block and channel, with `Σw` summed alongside the products.
#[inline(always)]
fn conv_blocks<const B: u32>(
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    mac: impl Fn(int32x4_t, int8x16_t, int8x16_t) -> int32x4_t + Copy,
) -> bool {
    let Layer { in_fmt, weights, ref rq, .. } = *layer;
    let bits = Bits::from_width(B);
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let kpad = k.next_multiple_of(16);
    let row_bytes = bits.packed_len(k);
    let bound = sum_bound(k, bits, in_fmt.bits);
    let z = in_fmt.zero_point;
    let npix = g.out_h * g.out_w;
    let oc = g.out_c;
    let rows = &weights[..(oc * row_bytes).min(weights.len())];
    // The block's fields, and the table where the scratch holds both (alignment: 16 bytes).
    let fields = PIX.saturating_mul(kpad);
    let with_table = npix > 1 && scratch.len() >= LaneTable::bytes(oc).saturating_add(fields).saturating_add(16);
    let mut s = Scratch::new(scratch);
    let table = match with_table {
        true => LaneTable::new(&mut s, rq, rows, (k, row_bytes, bits), bound, z),
        false => None,
    };
    let Some(x) = s.take::<u8>(fields) else { return false };
    let mut q0 = 0;
    while q0 < npix {
        let n = (npix - q0).min(PIX);
        im2col(g, input, in_fmt, q0, n, (k, kpad), x);
        let x: [&[u8]; PIX] = core::array::from_fn(|p| &x[p * kpad..(p + 1) * kpad]);
        match &table {
            Some(table) => {
                let channels = rows.len() / row_bytes;
                for i in 0..channels / ROWS {
                    // SAFETY: each row holds `k` packed weights; `x`'s fields `kpad` bytes, 0 past
                    // `k` ([`im2col`]); `mac` is the caller's instruction set.
                    let acc = unsafe { rows_dot::<B>(&weights[i * ROWS * row_bytes..], row_bytes, k, &x, mac) };
                    let c0 = ROWS * i;
                    if n == PIX && rq.out.bits == Bits::B8 && table.fast(i) {
                        // SAFETY: Advanced SIMD.
                        let q = unsafe { table.requant_quad(i, acc, rq.min, rq.max) };
                        for (p, v) in q.into_iter().enumerate() {
                            let at = (q0 + p) * oc + c0;
                            if let Some(d) = output.get_mut(at..at + ROWS) {
                                d.copy_from_slice(&v);
                            }
                        }
                        continue;
                    }
                    for (j, acc) in acc.into_iter().enumerate() {
                        store_block(acc, &table.channel(c0 + j), rq, (q0, n), (c0 + j, oc), output);
                    }
                }
                for c in channels / ROWS * ROWS..channels {
                    let row = &rows[c * row_bytes..(c + 1) * row_bytes];
                    // SAFETY: as above.
                    let (acc, _) = unsafe { row_dot::<B, false>(row, k, &x, mac) };
                    store_block(acc, &table.channel(c), rq, (q0, n), (c, oc), output);
                }
            }
            None => {
                for (c, row) in rows.chunks_exact(row_bytes).enumerate() {
                    // SAFETY: as above.
                    let (acc, sw) = unsafe { row_dot::<B, true>(row, k, &x, mac) };
                    // SAFETY: Advanced SIMD.
                    let (sums, sw) = unsafe { (acc.map(|a| vaddvq_s32(a)), vaddvq_s32(sw)) };
                    finish(rq, (c, bound), oc, q0, n, sums, z * sw, output);
                }
            }
        }
        q0 += n;
    }
    reference::clear_tail(output, rq.out, npix * oc);
    true
}

/// A layer's requantization per channel ([`Rq32`], `−z·Σw` in the bias), laid out for lanes:
/// per group of [`ROWS`] channels one vector of each field (the last group padded with zeros),
/// 24 bytes a channel in the kernel's scratch.
struct LaneTable<'s> {
    /// Per group: bias, shl, m, round, `−sh`, slow.
    fields: &'s [[i32; 4]],
}

const LANE_FIELDS: usize = 6;

impl<'s> LaneTable<'s> {
    /// Bytes of the table of `channels` channels.
    fn bytes(channels: usize) -> usize {
        LANE_FIELDS * 16 * channels.div_ceil(ROWS)
    }

    fn new(
        scratch: &mut Scratch<'s>,
        rq: &Requant<'_>,
        rows: &[u8],
        (k, row_bytes, bits): (usize, usize, Bits),
        bound: i64,
        z: i32,
    ) -> Option<LaneTable<'s>> {
        let channels = rows.len() / row_bytes.max(1);
        let fields = scratch.take::<[i32; 4]>(LANE_FIELDS * channels.div_ceil(ROWS))?;
        fields.fill([0; 4]);
        for (c, row) in rows.chunks_exact(row_bytes).enumerate() {
            let sw: i32 = (0..k).map(|i| load(row, bits, i)).sum();
            let f = Rq32::new(&ChannelQ::new(rq, c), bound, 0).with_bias_offset(z.wrapping_mul(sw).wrapping_neg());
            let (g, l) = (c / ROWS * LANE_FIELDS, c % ROWS);
            let values = [f.bias, f.shl as i32, f.m, f.round, -(f.sh as i32), f.slow as i32];
            for (i, v) in values.into_iter().enumerate() {
                fields[g + i][l] = v;
            }
        }
        Some(LaneTable { fields })
    }

    /// Channel `c`'s requantization.
    fn channel(&self, c: usize) -> Rq32 {
        let (g, l) = (c / ROWS * LANE_FIELDS, c % ROWS);
        let f = |i: usize| self.fields.get(g + i).map_or(0, |v| v[l]);
        Rq32 {
            bias: f(0),
            shl: f(1) as u32,
            m: f(2),
            round: f(3),
            sh: f(4).unsigned_abs(),
            scale: 0,
            slow: f(5) as u32,
        }
    }

    /// Whether group `i` has no slow channel.
    fn fast(&self, i: usize) -> bool {
        self.fields.get(i * LANE_FIELDS + 5).is_some_and(|s| *s == [0; 4])
    }

    /// Group `i`'s outputs of a full block, per pixel the group's four channels as bytes: each
    /// channel's sums (the total of one vector's lanes) added pairwise into one vector per
    /// pixel, then [`Rq32::apply`] in lanes as [`requant_lanes`]. The group must be [`fast`].
    ///
    /// [`fast`]: LaneTable::fast
    #[inline(always)]
    unsafe fn requant_quad(&self, i: usize, acc: [[int32x4_t; PIX]; ROWS], lo: i32, hi: i32) -> [[u8; ROWS]; PIX] {
        let f = &self.fields[i * LANE_FIELDS..(i + 1) * LANE_FIELDS];
        // SAFETY: Advanced SIMD; `f` holds six vectors' worth of `i32`.
        unsafe {
            let [bias, shl, m, round, right] = [0, 1, 2, 3, 4].map(|j| vld1q_s32(f[j].as_ptr()));
            let (lo, hi) = (vdupq_n_s32(lo), vdupq_n_s32(hi));
            core::array::from_fn(|p| {
                let sums = vpaddq_s32(vpaddq_s32(acc[0][p], acc[1][p]), vpaddq_s32(acc[2][p], acc[3][p]));
                let v = vshlq_s32(vaddq_s32(sums, bias), shl);
                let lo64 = vmull_s32(vget_low_s32(v), vget_low_s32(m));
                let prod = vshrn_high_n_s64::<16>(vshrn_n_s64::<16>(lo64), vmull_high_s32(v, m));
                let q = vminq_s32(vmaxq_s32(vshlq_s32(vaddq_s32(prod, round), right), lo), hi);
                let b = vqmovn_s16(vcombine_s16(vqmovn_s32(q), vqmovn_s32(q)));
                (vget_lane_u32::<0>(vreinterpret_u32_s8(b))).to_le_bytes()
            })
        }
    }
}

/// Channel `c`'s outputs of the block of `n` pixels from `q0`, requantized by `f` (in lanes for
/// a full block of 8-bit outputs).
#[inline(always)]
fn store_block(
    acc: [int32x4_t; PIX],
    f: &Rq32,
    rq: &Requant<'_>,
    (q0, n): (usize, usize),
    (c, oc): (usize, usize),
    output: &mut [u8],
) {
    if n == PIX && !f.is_slow() && rq.out.bits == Bits::B8 {
        // SAFETY: Advanced SIMD.
        let q = unsafe { requant_lanes(acc, f, rq.min, rq.max) };
        for (p, v) in q.into_iter().enumerate() {
            output[(q0 + p) * oc + c] = v as u8;
        }
        return;
    }
    for (p, a) in acc.iter().enumerate().take(n) {
        // SAFETY: Advanced SIMD.
        let s = unsafe { vaddvq_s32(*a) };
        put(output, rq.out.bits, (q0 + p) * oc + c, f.apply(s, rq.min, rq.max));
    }
}

/// Weight rows of one pass of [`rows_dot`]: each chunk of activations loaded once serves four
/// channels (16 accumulators, four weight and four activation vectors: 24 of the 32 registers).
const ROWS: usize = 4;
const _: () = assert!(ROWS == 4);

/// [`row_dot`] of [`ROWS`] rows at once, without `Σw`: `quad` holds the rows back to back,
/// `row_bytes` each, and whatever weights follow them. A partial last chunk is read whole when
/// `quad` reaches past it: the weights it takes beyond the row (the next row's, or the unused
/// bits of its last byte) meet activations the receptive fields hold as 0 past `K`, so they add
/// nothing, and a first layer of 27 weights a row does not unpack 11 of them one by one.
///
/// # Safety
/// As [`row_dot`] for every row; every field is 0 past `k`.
#[inline(always)]
unsafe fn rows_dot<const B: u32>(
    quad: &[u8],
    row_bytes: usize,
    k: usize,
    x: &[&[u8]; PIX],
    mac: impl Fn(int32x4_t, int8x16_t, int8x16_t) -> int32x4_t,
) -> [[int32x4_t; PIX]; ROWS] {
    let rows: [*const u8; ROWS] = core::array::from_fn(|j| quad[j * row_bytes..].as_ptr());
    // SAFETY: Advanced SIMD; every load below is inside `quad` or a field (the caller's bounds,
    // and the test before the partial chunk).
    unsafe {
        let mut acc = [[vdupq_n_s32(0); PIX]; ROWS];
        let full = k / 16;
        let step = |acc: &mut [[int32x4_t; PIX]; ROWS], w: [int8x16_t; ROWS], j: usize| {
            for (p, xp) in x.iter().enumerate() {
                let xv = vld1q_s8(xp.as_ptr().add(16 * j) as *const i8);
                for (a, w) in acc.iter_mut().zip(w) {
                    a[p] = mac(a[p], w, xv);
                }
            }
        };
        for j in 0..full {
            step(&mut acc, rows.map(|r| chunk::<B>(r, j)), j);
        }
        if full * 16 < k {
            let chunk_bytes = 16 * B as usize / 8;
            let w = if (ROWS - 1) * row_bytes + (full + 1) * chunk_bytes <= quad.len() {
                rows.map(|r| chunk::<B>(r, full))
            } else {
                core::array::from_fn(|j| {
                    weights16(&quad[j * row_bytes..(j + 1) * row_bytes], Bits::from_width(B), k, full)
                })
            };
            step(&mut acc, w, full);
        }
        acc
    }
}

/// [`Rq32::apply`] of the block's four sums (each the total of one vector's lanes, added
/// pairwise) in lanes, as [`depthwise_block8`] does it: `((s + bias) << shl)·m >> 16` (SMULL,
/// SHRN), `+ round`, `>> sh`, the clamp. The channel must not be slow.
#[inline(always)]
unsafe fn requant_lanes(acc: [int32x4_t; PIX], f: &Rq32, lo: i32, hi: i32) -> [i32; PIX] {
    // SAFETY: Advanced SIMD, registers only.
    unsafe {
        let sums = vpaddq_s32(vpaddq_s32(acc[0], acc[1]), vpaddq_s32(acc[2], acc[3]));
        let v = vshlq_s32(vaddq_s32(sums, vdupq_n_s32(f.bias)), vdupq_n_s32(f.shl as i32));
        let m = vdupq_n_s32(f.m);
        let lo64 = vmull_s32(vget_low_s32(v), vget_low_s32(m));
        let p = vshrn_high_n_s64::<16>(vshrn_n_s64::<16>(lo64), vmull_high_s32(v, m));
        let q = vshlq_s32(vaddq_s32(p, vdupq_n_s32(f.round)), vdupq_n_s32(-(f.sh as i32)));
        let q = vminq_s32(vmaxq_s32(q, vdupq_n_s32(lo)), vdupq_n_s32(hi));
        let mut out = [0i32; PIX];
        vst1q_s32(out.as_mut_ptr(), q);
        out
    }
}

/// `acc +` the sums of `i8·i8` products four to a lane, without SDOT: the products are exact
/// in `i16` (SMULL/SMULL2), then added pairwise into the `i32` lanes (SADALP).
#[inline]
#[target_feature(enable = "neon")]
fn smull_mac(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    vpadalq_s16(vpadalq_s16(acc, vmull_s8(vget_low_s8(w), vget_low_s8(x))), vmull_high_s8(w, x))
}

/// `acc + Σ` of four `i8·i8` products per lane.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut r = acc;
    // SAFETY: SDOT reads and writes vector registers only; the caller has dotprod.
    unsafe {
        asm!("sdot {r:v}.4s, {a:v}.16b, {b:v}.16b", r = inout(vreg) r, a = in(vreg) a, b = in(vreg) b, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

#[target_feature(enable = "neon,dotprod")]
fn conv2d_dot(g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> bool {
    // The closure inherits this function's target features (dotprod, which the callers proved).
    let mac = |a: int32x4_t, w: int8x16_t, x: int8x16_t| sdot(a, w, x);
    match layer.weight_bits {
        Bits::B8 => conv_blocks::<8>(g, layer, input, output, scratch, mac),
        Bits::B4 => conv_blocks::<4>(g, layer, input, output, scratch, mac),
        Bits::B2 => conv_blocks::<2>(g, layer, input, output, scratch, mac),
    }
}

/// The input of a fully connected layer for [`fc_rows`], one byte per feature: in place when
/// 8-bit, unpacked into `scratch` when 4-bit (a fully connected layer's planned scratch holds
/// two bytes a feature or more); `None` for no features, more than [`K_MAX`], or buffers too
/// short (the convolution, then the portable kernel, take those).
fn fc_input<'a>(n: usize, input: &'a [u8], fmt: ActFormat, scratch: &'a mut [u8]) -> Option<&'a [u8]> {
    if !(1..=K_MAX).contains(&n) {
        return None;
    }
    match fmt.bits {
        Bits::B8 => input.get(..n),
        Bits::B4 if input.len() >= n.div_ceil(2) => {
            let x = scratch.get_mut(..n)?;
            unpack4(input, 0, x);
            Some(x)
        }
        _ => None,
    }
}

/// [`fc_rows`] with SMULL/SADALP.
#[target_feature(enable = "neon")]
fn fc_neon(n: usize, m: usize, layer: &Layer<'_>, input: &[u8], output: &mut [u8]) {
    let mac = |a: int32x4_t, w: int8x16_t, x: int8x16_t| smull_mac(a, w, x);
    match layer.weight_bits {
        Bits::B8 => fc_rows::<8>(n, m, layer, input, output, mac),
        Bits::B4 => fc_rows::<4>(n, m, layer, input, output, mac),
        Bits::B2 => fc_rows::<2>(n, m, layer, input, output, mac),
    }
}

/// [`fc_rows`] with SDOT.
#[target_feature(enable = "neon,dotprod")]
fn fc_dot(n: usize, m: usize, layer: &Layer<'_>, input: &[u8], output: &mut [u8]) {
    // The closure inherits this function's target features (dotprod, which the callers proved).
    let mac = |a: int32x4_t, w: int8x16_t, x: int8x16_t| sdot(a, w, x);
    match layer.weight_bits {
        Bits::B8 => fc_rows::<8>(n, m, layer, input, output, mac),
        Bits::B4 => fc_rows::<4>(n, m, layer, input, output, mac),
        Bits::B2 => fc_rows::<2>(n, m, layer, input, output, mac),
    }
}

/// Fully connected over its features one byte each (`input`, see [`fc_input`]), 16 at a time,
/// the last partial chunk from a copy padded with zeros: one pixel needs no receptive-field block
/// (the convolution's four would be three quarters zeros). Per output `Σ w·a` and `Σw`
/// in lanes, then `Σ w·(a − z)` requantized (each channel requantizes once, so its [`Rq32`] is
/// built there).
#[inline(always)]
fn fc_rows<const B: u32>(
    n: usize,
    m: usize,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    mac: impl Fn(int32x4_t, int8x16_t, int8x16_t) -> int32x4_t,
) {
    let Layer { in_fmt, weights, ref rq, .. } = *layer;
    let bits = Bits::from_width(B);
    let row_bytes = bits.packed_len(n);
    let bound = sum_bound(n, bits, in_fmt.bits);
    let z = in_fmt.zero_point;
    let full = n / 16;
    let mut tail = [0u8; 16];
    tail[..n - 16 * full].copy_from_slice(&input[16 * full..n]);
    for (c, row) in weights.chunks_exact(row_bytes).enumerate().take(m) {
        // SAFETY: Advanced SIMD; chunk `j < full` lies inside the row and the input
        // (`16(j + 1) ≤ n`; `input` holds `n` bytes, see [`fc_input`], and the slice for
        // `tail` above checked it), the tail is 16 bytes.
        let (s, sw) = unsafe {
            let ones = vdupq_n_s8(1);
            let (mut acc, mut sw) = (vdupq_n_s32(0), vdupq_n_s32(0));
            for j in 0..full {
                let w = chunk::<B>(row.as_ptr(), j);
                acc = mac(acc, w, vld1q_s8(input.as_ptr().add(16 * j) as *const i8));
                sw = mac(sw, w, ones);
            }
            if full * 16 < n {
                let w = weights16(row, bits, n, full);
                acc = mac(acc, w, vld1q_s8(tail.as_ptr() as *const i8));
                sw = mac(sw, w, ones);
            }
            (vaddvq_s32(acc), vaddvq_s32(sw))
        };
        let f = Rq32::new(&ChannelQ::new(rq, c), bound, 0);
        put(output, rq.out.bits, c, f.apply(s.wrapping_sub(z.wrapping_mul(sw)), rq.min, rq.max));
    }
    reference::clear_tail(output, rq.out, m);
}

impl Neon {
    /// Depthwise Conv2D, same bytes as [`reference::depthwise_conv2d`]: the layers
    /// [`Neon::depthwise_takes`] on `depthwise_neon`, the rest on the portable kernel; the path
    /// that ran.
    pub fn depthwise_conv2d(
        self,
        g: &Window,
        layer: &Layer<'_>,
        input: &[u8],
        output: &mut [u8],
        scratch: &mut [u8],
    ) -> Path {
        let fits = input.len() >= g.in_h * g.in_w * g.in_c && output.len() >= g.out_h * g.out_w * g.out_c;
        if !fits || !self.depthwise_takes(g, layer) {
            return portable::depthwise_conv2d(g, layer, input, output, scratch);
        }
        // SAFETY: Advanced SIMD is part of every AArch64 target; the sizes were checked above.
        unsafe { depthwise_neon(g, layer, input, output, scratch) }
    }

    /// Whether [`Neon::depthwise_conv2d`] runs a layer on its own kernel (given the scratch the
    /// layer plans and its weights): depth multiplier 1, 8-bit input and output, at least one
    /// tap, and every channel's requantization in [`Rq32`]'s fast form (a compiled model's
    /// always is; a multiplier of 1/4 or more on a large sum bound is not). The rest run on the
    /// portable kernel, and the path says so.
    pub fn depthwise_takes(self, g: &Window, layer: &Layer<'_>) -> bool {
        let Layer { in_fmt, weight_bits, ref rq, .. } = *layer;
        let taps = g.kernel_h * g.kernel_w;
        let plain = g.out_c == g.in_c && in_fmt.bits == Bits::B8 && rq.out.bits == Bits::B8 && taps > 0;
        let bound = sum_bound(taps, weight_bits, in_fmt.bits);
        plain && (0..g.in_c).all(|ch| !Rq32::new(&ChannelQ::new(rq, ch), bound, 0).is_slow())
    }
}

/// Depthwise convolution, depth multiplier 1, 8-bit input and output, in the portable kernel's
/// scratch (its chunk of channels: `i16` weights per tap and channel, each channel's [`Rq32`]).
/// Per block of 8 channels the weights and the requantization stay in registers over every
/// pixel of the layer; per pixel and tap, 8 activations widen to `i16`, lose the zero point
/// (`|a − z| ≤ 255`) and multiply-accumulate into two `i32×4` (SMLAL, SMLAL2), then
/// [`Rq32::unclamped`] in lanes: `((s + bias) << shl)·m >> 16` (SMULL, SHRN), `+ round`,
/// `>> sh`, the clamp and two saturating narrows (the values are already in range). Taps in the
/// padding are skipped, as in the portable kernel. The last `c mod 8` channels of a chunk take
/// the portable kernel's scalar loop. Only for the layers [`Neon::depthwise_takes`]; a scratch or
/// weights short of the layer's run on the portable kernel.
///
/// # Safety
/// `input` holds `in_h·in_w·c` bytes and `output` `out_h·out_w·c` (checked by the caller).
unsafe fn depthwise_neon(g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> Path {
    let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
    let (taps, c) = (g.kernel_h * g.kernel_w, g.in_c);
    let bound = sum_bound(taps, weight_bits, in_fmt.bits);
    let row_bytes = weight_bits.packed_len(taps);
    let chunk = super::scratch::portable_depthwise_chunk(g);
    let mut s = super::scratch::Scratch::new(&mut *scratch);
    let bufs = (s.take::<i32>(chunk), s.take::<Rq32>(chunk), s.take::<i16>(taps * chunk));
    let (Some(_), Some(cq), Some(w), false) = (bufs.0, bufs.1, bufs.2, weights.len() < c * row_bytes) else {
        return portable::depthwise_conv2d(g, layer, input, output, scratch);
    };
    let z = in_fmt.zero_point;
    let (lo, hi) = (rq.min, rq.max);
    let mut c0 = 0;
    while c0 < c {
        let nc = (c - c0).min(chunk);
        for j in 0..nc {
            let row = &weights[(c0 + j) * row_bytes..(c0 + j + 1) * row_bytes];
            for t in 0..taps {
                w[t * nc + j] = load(row, weight_bits, t) as i16;
            }
            cq[j] = Rq32::new(&ChannelQ::new(rq, c0 + j), bound, 0);
        }
        let (w, cq) = (&w[..taps * nc], &cq[..nc]);
        let mut j0 = 0;
        while j0 + 8 <= nc {
            // SAFETY: `j0 + 8 ≤ nc`, so every lane's channel exists; the caller's sizes.
            unsafe { depthwise_block8(g, input, z, w, nc, &cq[j0..j0 + 8], (c0, j0), (lo, hi), output) };
            j0 += 8;
        }
        // The last channels of the chunk: the portable kernel's loop.
        for oy in 0..g.out_h {
            let (y0, y1, ky0) = g.rows(oy);
            for ox in 0..g.out_w {
                let (x0, x1, kx0) = g.cols(ox);
                for j in j0..nc {
                    let mut acc = 0i32;
                    for (ky, y) in (ky0..).zip(y0..y1) {
                        for (kx, xx) in (kx0..).zip(x0..x1) {
                            let a = input[(y * g.in_w + xx) * c + c0 + j] as i8 as i32;
                            acc += w[(ky * g.kernel_w + kx) * nc + j] as i32 * (a - z);
                        }
                    }
                    output[(oy * g.out_w + ox) * c + c0 + j] = cq[j].apply(acc, lo, hi) as u8;
                }
            }
        }
        c0 += nc;
    }
    Path::Neon
}

/// Taps of the windows whose offsets [`depthwise_block8`] tabulates (larger kernels take the
/// border pixels' loop everywhere).
const DW_TAPS_TABLE: usize = 64;

/// Channels `c0 + j0 .. c0 + j0 + 8` of every output pixel (see [`depthwise_neon`]); `w` holds
/// the chunk's weights, `[tap][nc]`, and `cq` the block's requantization.
///
/// # Safety
/// `j0 + 8 ≤ nc` and `c0 + nc ≤ c`; `input` holds `in_h·in_w·c` bytes, `output` `out_h·out_w·c`.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
unsafe fn depthwise_block8(
    g: &Window,
    input: &[u8],
    z: i32,
    w: &[i16],
    nc: usize,
    cq: &[Rq32],
    (c0, j0): (usize, usize),
    (lo, hi): (i32, i32),
    output: &mut [u8],
) {
    let c = g.in_c;
    let lanes = |f: fn(&Rq32) -> i32| -> [int32x4_t; 2] {
        let v: [i32; 8] = core::array::from_fn(|i| f(&cq[i]));
        // SAFETY: `v` holds 8 values.
        unsafe { [vld1q_s32(v.as_ptr()), vld1q_s32(v.as_ptr().add(4))] }
    };
    let bias = lanes(|q| q.bias);
    let shl = lanes(|q| q.shl as i32);
    let m = lanes(|q| q.m);
    let round = lanes(|q| q.round);
    let right = lanes(|q| -(q.sh as i32));
    // SAFETY (the block): Advanced SIMD only; every load reads 8 bytes of a pixel's channels
    // `c0 + j0 ..+ 8 ≤ c` or 8 weights `t·nc + j0 ..+ 8 ≤ taps·nc`, every store 8 bytes of an
    // output pixel's channels (the caller's sizes).
    unsafe {
        let (zv, lov, hiv) = (vdupq_n_s16(z as i16), vdupq_n_s32(lo), vdupq_n_s32(hi));
        let requant = |s: int32x4_t, h: usize| -> int32x4_t {
            let v = vshlq_s32(vaddq_s32(s, bias[h]), shl[h]);
            let lo64 = vmull_s32(vget_low_s32(v), vget_low_s32(m[h]));
            let hi64 = vmull_high_s32(v, m[h]);
            let p = vshrn_high_n_s64::<16>(vshrn_n_s64::<16>(lo64), hi64);
            let q = vshlq_s32(vaddq_s32(p, round[h]), right[h]);
            vminq_s32(vmaxq_s32(q, lov), hiv)
        };
        // A window inside the input reads tap t at a fixed offset from its corner.
        let taps = g.kernel_h * g.kernel_w;
        let mut offsets = [0usize; DW_TAPS_TABLE];
        for (t, o) in offsets.iter_mut().enumerate().take(taps) {
            *o = ((t / g.kernel_w) * g.in_w + t % g.kernel_w) * c;
        }
        let table = taps <= DW_TAPS_TABLE;
        for oy in 0..g.out_h {
            let (y0, y1, ky0) = g.rows(oy);
            for ox in 0..g.out_w {
                let (x0, x1, kx0) = g.cols(ox);
                let (mut acc0, mut acc1) = (vdupq_n_s32(0), vdupq_n_s32(0));
                if table && y1 - y0 == g.kernel_h && x1 - x0 == g.kernel_w {
                    let corner = input.as_ptr().add((y0 * g.in_w + x0) * c + c0 + j0);
                    let mut wp = w.as_ptr().add(j0);
                    for &off in &offsets[..taps] {
                        let d = vsubq_s16(vmovl_s8(vld1_s8(corner.add(off) as *const i8)), zv);
                        let wv = vld1q_s16(wp);
                        acc0 = vmlal_s16(acc0, vget_low_s16(d), vget_low_s16(wv));
                        acc1 = vmlal_high_s16(acc1, d, wv);
                        wp = wp.add(nc);
                    }
                } else {
                    // A window at the border: its taps inside the input, row by row, the
                    // addresses stepped (not multiplied out per tap: 45% of dscnn's pixels).
                    for (ky, y) in (ky0..).zip(y0..y1) {
                        let mut ap = input.as_ptr().add((y * g.in_w + x0) * c + c0 + j0);
                        let mut wp = w.as_ptr().add((ky * g.kernel_w + kx0) * nc + j0);
                        for _ in x0..x1 {
                            let d = vsubq_s16(vmovl_s8(vld1_s8(ap as *const i8)), zv);
                            let wv = vld1q_s16(wp);
                            acc0 = vmlal_s16(acc0, vget_low_s16(d), vget_low_s16(wv));
                            acc1 = vmlal_high_s16(acc1, d, wv);
                            ap = ap.add(c);
                            wp = wp.add(nc);
                        }
                    }
                }
                let q = vcombine_s16(vqmovn_s32(requant(acc0, 0)), vqmovn_s32(requant(acc1, 1)));
                let out = output.as_mut_ptr().add((oy * g.out_w + ox) * c + c0 + j0);
                vst1_s8(out as *mut i8, vqmovn_s16(q));
            }
        }
    }
}
