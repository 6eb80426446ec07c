//! Depthwise 3×3 convolution at strides 1 and 2 over channel planes (Cortex-M4).
//!
//! The channel-interleaved kernel ([`super::dw_pixel9_plain`]) multiplies one channel per
//! halfword (SMLABB/SMLATT): 9 instructions per tap of four channels and about 10 per output to
//! requantize, about 3.5 per MAC. Here a band of input rows of four channels is first copied into
//! one plane per channel (the padding as the input's zero point, [`gather`]), so that neighbours
//! along a row are neighbouring bytes. Then one word of a plane row holds the kernel row's taps of
//! two adjacent outputs, and `SXTB16` turns it into the halfword pairs `(a0, a2)` and `(a1, a3)`:
//! one `SMLAD` takes two taps of one output, and each kernel row of the pair of outputs costs a
//! load, two `SXTB16`, two `SMLAD` and two `SMLAxy` (7 instructions for 6 MACs). The channel's
//! nine weights stay in five registers and its bias in a sixth for the whole band ([`band`]):
//! 34 instructions for two outputs, requantization and stores included. At stride 2 a kernel
//! row of the pair is two words, 9 instructions, 42 for the pair ([`band_s2`]).
//!
//! The planes run along the longer output axis ([`scratch::dw3_shape`]): an output row of odd
//! length computes one output twice (the row's pairs start at 0, 1, 3, 5, …), and a row costs
//! about 17 instructions besides its pairs, so dscnn-kws's 25×5 maps are walked as 5 rows of 25.
//!
//! Inputs of 8 or 4 bits (the latter copied in offset binary, [`transpose_quads4`]); outputs of 8
//! bits with no clamp but their range are stored in place, any other through output planes
//! ([`finish`]). A channel whose requantization has no 32-bit form (never one of a compiled model)
//! is computed from the same planes in Rust.

use core::arch::asm;

use super::super::linked::{self, has};
use super::super::reference::{ActFormat, Requant, Window};
use super::super::scratch::{self, Scratch, DW3_CHANNEL_WORDS};
use super::super::util::Rq32;
use super::dw_pass_tables;
use crate::quant::Bits;

/// One channel's constants, in the order [`band`] loads them: the weights as halfword pairs
/// `(w[r][0], w[r][2])` for kernel rows `r = 0, 1, 2`, then `(w[0][1], w[1][1])` and
/// `(w[2][1], 0)`; the bias with `−z·Σw`; `shl | m << 16` (`LSL` reads the low byte, `SMLAWT`
/// the high half); `round`; `sh`; the output bytes between two outputs of a plane row.
#[repr(C)]
#[derive(Clone, Copy)]
struct Channel {
    w: [u32; 5],
    bias: i32,
    shl_m: u32,
    round: i32,
    sh: u32,
    step: u32,
}

const _: () = assert!(core::mem::size_of::<Channel>() == 4 * DW3_CHANNEL_WORDS);

// SAFETY: `#[repr(C)]`, ten 32-bit integers (size asserted above: no padding).
unsafe impl scratch::Plain for Channel {}

/// A band's walk, as [`band`] loads it: output rows, pairs after each row's first, the first
/// pair's step back (1 when a row has an odd length, so that its last pair ends on its last
/// output), output bytes between rows.
#[repr(C)]
struct Run {
    rows: usize,
    more: usize,
    back: usize,
    out_row: usize,
}

/// The layer seen along the planes' axes: `rows` and `cols` of outputs (`cols` the pair axis),
/// and of the input, its padding, and the strides of both in elements (bytes at 8 bits; a
/// 4-bit input's are halved where it is read, `in_c` being even).
struct Axes {
    rows: usize,
    cols: usize,
    in_rows: usize,
    in_cols: usize,
    pad_row: usize,
    pad_col: usize,
    in_row: usize,
    in_col: usize,
    out_row: usize,
    out_col: usize,
}

impl Axes {
    fn new(g: &Window, transposed: bool) -> Axes {
        let c = g.in_c;
        if transposed {
            Axes {
                rows: g.out_w,
                cols: g.out_h,
                in_rows: g.in_w,
                in_cols: g.in_h,
                pad_row: g.pad_left,
                pad_col: g.pad_top,
                in_row: c,
                in_col: g.in_w * c,
                out_row: c,
                out_col: g.out_w * c,
            }
        } else {
            Axes {
                rows: g.out_h,
                cols: g.out_w,
                in_rows: g.in_h,
                in_cols: g.in_w,
                pad_row: g.pad_top,
                pad_col: g.pad_left,
                in_row: g.in_w * c,
                in_col: c,
                out_row: g.out_w * c,
                out_col: c,
            }
        }
    }
}

/// Runs the layer on this path, or returns `false` (having written nothing) when it does not
/// apply: a shape other than [`scratch::dw3_shape`]'s, a 4-bit input or output with an odd number
/// of channels, or a scratch slice too small for a band of one output row. Writes the channels of
/// whole groups of four; the caller runs the rest.
///
/// An 8-bit output with no clamp but its range is stored by [`band`] in place. Any other output
/// (a clamp, 4 bits) goes through four output planes of the band's 8-bit values, then
/// [`finish`] clamps and stores each pixel's four channels. A 4-bit input is copied as `n ⊕ 8`
/// (offset binary, 0–15), so that the planes hold bytes whatever the width: its zero point is
/// then `z + 8`, which the bias takes up like any zero point.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(super) fn depthwise3<const K: u32>(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    weights: &[u8],
    weight_bits: Bits,
    rq: &Requant<'_>,
    bound: i64,
    output: &mut [u8],
    scratch: &mut [u8],
) -> bool {
    let Some((transposed, wp)) = scratch::dw3_shape(g, in_fmt.bits) else { return false };
    // Constant `false` in a firmware without 4-bit activations: their code is not linked.
    let acts4 = has(K, linked::ACTS_4);
    let (four_in, four_out) = (acts4 && in_fmt.bits == Bits::B4, acts4 && rq.out.bits == Bits::B4);
    if (in_fmt.bits == Bits::B4 || rq.out.bits == Bits::B4) && !(acts4 && g.in_c.is_multiple_of(2)) {
        return false;
    }
    let direct = !four_out && (rq.min, rq.max) == (-128, 127);
    let ax = Axes::new(g, transposed);
    let (in_len, out_len) =
        (in_fmt.bits.packed_len(g.in_h * g.in_w * g.in_c), rq.out.bits.packed_len(g.out_h * g.out_w * g.out_c));
    let (Some(input), Some(output)) = (input.get(..in_len), output.get_mut(..out_len)) else {
        return false;
    };
    let mut s = Scratch::new(scratch);
    let (Some(wp9), Some(fast), Some(consts)) = (s.take::<[u32; 2]>(9), s.take::<Rq32>(4), s.take::<Channel>(4)) else {
        return false;
    };
    let rest = s.take_rest();
    // A band of `rows` output rows at stride `st` reads `(rows − 1)·st + 3` plane rows: it takes
    // `4·((rows − 1)·st + 3)·wp` bytes of input planes and, unless stored in place, `4·rows·cols`
    // of output planes.
    let st = g.stride_h;
    let rows_in = |rows: usize| (rows - 1) * st + 3;
    let per_row = 4 * st * wp + if direct { 0 } else { 4 * ax.cols };
    let band_rows = (rest.len().saturating_sub(4 * (3 - st) * wp) / per_row).min(ax.rows);
    if band_rows == 0 {
        return false;
    }
    let (planes, outp) = rest.split_at_mut(4 * rows_in(band_rows) * wp);
    let row_bytes = weight_bits.packed_len(9);
    let z = if four_in { in_fmt.zero_point + 8 } else { in_fmt.zero_point };
    let zb = z as u8;
    // The padding columns, once: the bands write only the columns inside the input.
    planes.fill(zb);
    for c0 in (0..g.in_c / 4).map(|i| 4 * i) {
        dw_pass_tables::<K>(weights, weight_bits, row_bytes, rq, bound, z, c0, 1, 9, wp9, fast);
        let step = if direct { ax.out_col } else { 1 };
        for (j, k) in consts.iter_mut().enumerate() {
            *k = channel(wp9, &fast[j], j, transposed, step);
        }
        let mut r0 = 0;
        while r0 < ax.rows {
            let rows = (ax.rows - r0).min(band_rows);
            let plane = rows_in(rows) * wp;
            let planes = &mut planes[..4 * plane];
            // With one band, the rows outside the input are the same for every group and
            // keep the zero points of the fill above.
            let fill = band_rows < ax.rows;
            gather(planes, &ax, input, four_in, c0, st * r0, rows_in(rows), zb, fill);
            let out_row = if direct { ax.out_row } else { ax.cols };
            let run = Run { rows, more: (ax.cols - 1) / 2, back: ax.cols % 2, out_row };
            let out_plane = rows * ax.cols;
            for (j, (p, k)) in planes.chunks_exact(plane).zip(consts.iter()).enumerate() {
                let (dst, at) = if direct {
                    (&mut *output, r0 * ax.out_row + c0 + j)
                } else {
                    (&mut outp[j * out_plane..(j + 1) * out_plane], 0)
                };
                if fast[j].is_slow() {
                    band_slow(p, wp, st, ax.cols, &run, &fast[j], k, dst, at, step);
                    continue;
                }
                // SAFETY: `p` holds `((rows − 1)·st + 3)·wp` bytes, `wp = st·cols + 2`: a pair of
                // outputs at column `x ≤ cols − 2` of output row `r < rows` reads 4 bytes from
                // column `st·x` (and at stride 2 from `2x + 2`: at most column `2·cols + 1`) of
                // plane rows `st·r..st·r + 2`, inside `p`. The stores are the band's outputs of
                // channel `c0 + j`: in place at most `(out_h·out_w − 1)·in_c + c0 + j` (either
                // axis order), inside `output` (`out_h·out_w·out_c` bytes, `out_c = in_c`); or
                // `r·cols + x`, inside the output plane (`rows·cols` bytes).
                unsafe {
                    if st == 2 {
                        band_s2(p.as_ptr(), wp, dst.as_mut_ptr().add(at), k, &run)
                    } else {
                        band(p.as_ptr(), wp, dst.as_mut_ptr().add(at), k, &run)
                    }
                };
            }
            if !direct {
                finish(&outp[..4 * out_plane], &ax, r0, rows, c0, rq, four_out, output);
            }
            r0 += rows;
        }
    }
    true
}

/// The band's outputs from its four output planes (`rows·cols` 8-bit values each) to `output`:
/// each pixel's four channels clamped to the layer's `[min, max]` and stored as bytes or, 4-bit,
/// as two bytes of nibbles (an even element: `in_c` is even); four pixels at a time in assembly
/// ([`finish_quads`]), the rest in Rust.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn finish(outp: &[u8], ax: &Axes, r0: usize, rows: usize, c0: usize, rq: &Requant<'_>, four: bool, output: &mut [u8]) {
    let n = rows * ax.cols;
    let (p0, rest) = outp.split_at(n);
    let (p1, rest) = rest.split_at(n);
    let (p2, p3) = rest.split_at(n);
    let clamp = |b: u8| (b as i8 as i32).clamp(rq.min, rq.max) as u8;
    let bytes = |v: i32| u32::from_ne_bytes([v as u8; 4]);
    let (lo, hi) = (bytes(rq.min), bytes(rq.max));
    let quads = ax.cols / 4;
    for r in 0..rows {
        let row = r * ax.cols;
        let e0 = (r0 + r) * ax.out_row + c0;
        // The last element written: channel `c0 + 3` of the row's last pixel.
        let last = e0 + (ax.cols - 1) * ax.out_col + 3;
        if quads > 0 && p3.len() >= row + 4 * quads && rq.out.bits.packed_len(last + 1) <= output.len() {
            let (o, step) = if four { (e0 / 2, ax.out_col / 2) } else { (e0, ax.out_col) };
            // SAFETY: the planes are `n` bytes apart, the fourth holds `row + 4·quads` bytes
            // (checked), so each plane's `4·quads` bytes from `row` are read; the stores are the
            // row's first `4·quads` pixels' elements, up to `last`, inside `output` (checked).
            unsafe {
                let (p, o) = (p0.as_ptr().add(row), output.as_mut_ptr().add(o));
                if four {
                    finish_quads::<true>(p, n, o, step, lo, hi, quads)
                } else {
                    finish_quads::<false>(p, n, o, step, lo, hi, quads)
                }
            }
        }
        for x in 4 * quads..ax.cols {
            let (i, e) = (row + x, e0 + x * ax.out_col);
            let v = [clamp(p0[i]), clamp(p1[i]), clamp(p2[i]), clamp(p3[i])];
            if four {
                output[e / 2] = (v[0] & 0x0F) | (v[1] << 4);
                output[e / 2 + 1] = (v[2] & 0x0F) | (v[3] << 4);
            } else {
                output[e..e + 4].copy_from_slice(&v);
            }
        }
    }
}

/// Four pixels' stores of [`finish`] (`FOUR`: 4-bit), from the planes' words at `p`, `p + n`, …:
/// each word clamped with `SSUB8`/`SEL` against `lo` and `hi` (the bounds in every byte), the
/// 4×4 bytes transposed (UXTB16, PKHBT/PKHTB) into each pixel's four channels, stored as a word,
/// or packed into nibbles and stored as a halfword, `step` bytes apart: 46 instructions for 16
/// elements at 8 bits.
///
/// # Safety
/// `p + j·n` is valid for reading `4·quads` bytes for `j < 4`; `o + k·step` for writing 4 bytes
/// (2 when `FOUR`) for `k < 4·quads`; `quads ≥ 1`.
#[allow(clippy::too_many_arguments)]
unsafe fn finish_quads<const FOUR: bool>(
    p: *const u8,
    n: usize,
    o: *mut u8,
    step: usize,
    lo: u32,
    hi: u32,
    quads: usize,
) {
    let end = p.wrapping_add(4 * quads);
    // SAFETY: the caller's bounds; the words may be unaligned (Armv7-M allows LDR, STR and STRH);
    // the assembly restores r6, r7.
    unsafe {
        macro_rules! quads {
            ($store:expr) => {
                asm!(
                    "push {{r6, r7}}",
                    "mov r6, r12",
                    "2:",
                    "ldr r8, [r0]",
                    "ldr r9, [r0, r1]",
                    "ldr r10, [r0, r1, lsl #1]",
                    "add r7, r0, r1, lsl #1",
                    "ldr r11, [r7, r1]",
                    "add r0, r0, #4",
                    "ssub8 r7, r8, r4",
                    "sel r8, r8, r4",
                    "ssub8 r7, r8, r5",
                    "sel r8, r5, r8",
                    "ssub8 r7, r9, r4",
                    "sel r9, r9, r4",
                    "ssub8 r7, r9, r5",
                    "sel r9, r5, r9",
                    "ssub8 r7, r10, r4",
                    "sel r10, r10, r4",
                    "ssub8 r7, r10, r5",
                    "sel r10, r5, r10",
                    "ssub8 r7, r11, r4",
                    "sel r11, r11, r4",
                    "ssub8 r7, r11, r5",
                    "sel r11, r5, r11",
                    // Channels (words) to pixels: (a0 a1 c0 c1), (b0 b1 e0 e1), then of 2, 3.
                    "uxtb16 r7, r8",
                    "uxtb16 r12, r9",
                    "orr r7, r7, r12, lsl #8",
                    "uxtb16 r8, r8, ror #8",
                    "and r9, r9, #0xFF00FF00",
                    "orr r8, r8, r9",
                    "uxtb16 r9, r10",
                    "uxtb16 r12, r11",
                    "orr r9, r9, r12, lsl #8",
                    "uxtb16 r10, r10, ror #8",
                    "and r11, r11, #0xFF00FF00",
                    "orr r10, r10, r11",
                    "pkhbt r11, r7, r9, lsl #16",
                    "pkhtb r7, r9, r7, asr #16",
                    "pkhbt r9, r8, r10, lsl #16",
                    "pkhtb r8, r10, r8, asr #16",
                    $store,
                    "cmp r0, r6",
                    "bne 2b",
                    "pop {{r6, r7}}",
                    inout("r0") p => _,
                    in("r1") n,
                    inout("r2") o => _,
                    in("r3") step,
                    in("r4") lo,
                    in("r5") hi,
                    out("r8") _,
                    out("r9") _,
                    out("r10") _,
                    out("r11") _,
                    inout("r12") end => _,
                    out("lr") _,
                )
            };
        }
        if FOUR {
            // Each pixel's word (v0 v1 v2 v3) as the bytes (v0 | v1 << 4) and (v2 | v3 << 4).
            macro_rules! nibbles {
                ($r:literal) => {
                    concat!(
                        "and ",
                        $r,
                        ", ",
                        $r,
                        ", #0x0F0F0F0F\n",
                        "orr ",
                        $r,
                        ", ",
                        $r,
                        ", ",
                        $r,
                        ", lsr #4\n",
                        "uxtb16 ",
                        $r,
                        ", ",
                        $r,
                        "\n",
                        "orr ",
                        $r,
                        ", ",
                        $r,
                        ", ",
                        $r,
                        ", lsr #8\n",
                        "strh ",
                        $r,
                        ", [r2]\n",
                        "add r2, r2, r3\n",
                    )
                };
            }
            quads!(concat!(nibbles!("r11"), nibbles!("r9"), nibbles!("r7"), nibbles!("r8")))
        } else {
            quads!(concat!(
                "str r11, [r2]\n",
                "str r9, [r2, r3]\n",
                "add r2, r2, r3, lsl #1\n",
                "str r7, [r2]\n",
                "str r8, [r2, r3]\n",
                "add r2, r2, r3, lsl #1\n",
            ))
        }
    }
}

/// Channel `j` of a group's tables ([`dw_pass_tables`]: `wp9[t]` holds channels 0 and 2 of tap
/// `t` in its first word, 1 and 3 in its second) as [`band`]'s constants.
fn channel(wp9: &[[u32; 2]], f: &Rq32, j: usize, transposed: bool, step: usize) -> Channel {
    let tap = |t: usize| (wp9[t][j & 1] >> (16 * (j >> 1))) & 0xFFFF;
    // Kernel row `r`, column `c` along the planes' axes.
    let w = |r: usize, c: usize| if transposed { tap(3 * c + r) } else { tap(3 * r + c) };
    Channel {
        w: [
            w(0, 0) | (w(0, 2) << 16),
            w(1, 0) | (w(1, 2) << 16),
            w(2, 0) | (w(2, 2) << 16),
            w(0, 1) | (w(1, 1) << 16),
            w(2, 1),
        ],
        bias: f.bias,
        shl_m: f.shl | ((f.m as u32) << 16),
        round: f.round,
        sh: f.sh,
        step: step as u32,
    }
}

/// Copies plane rows `0..rows_in` of four channels from `c0` into `planes` (four planes of
/// `rows_in·wp` bytes): plane row `i` is input row `y0 + i − pad_row` along the planes' axes,
/// column `x` input column `x − pad_col`. The columns outside the input must hold the zero point
/// `zb` already (they do not change from band to band); rows outside it are filled with it when
/// `fill`, else must hold it already.
///
/// Each row is four columns at a time as a 4×4 byte transpose ([`transpose_quads`]), the rest a
/// column at a time ([`transpose_columns`]); a 4-bit input's elements go in as `n ⊕ 8`
/// ([`transpose_quads4`]). The bounds are checked once for the band, so that a row costs its
/// copy and a few instructions (checked per row, a 6×6 map's rows cost ~90 instructions each
/// besides their copy, 18% of a MobileNet's 6×6×128 depthwise layer); when they do not hold
/// (never for a loaded model) nothing is written.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn gather(
    planes: &mut [u8],
    ax: &Axes,
    input: &[u8],
    four: bool,
    c0: usize,
    y0: usize,
    rows_in: usize,
    zb: u8,
    fill: bool,
) {
    let wp = planes.len() / 4 / rows_in.max(1);
    let plane = rows_in * wp;
    let (x0, x1) = (ax.pad_col.min(wp), (ax.pad_col + ax.in_cols).min(wp));
    let n = x1 - x0;
    // The plane rows inside the input, `lo..hi`.
    let lo = ax.pad_row.saturating_sub(y0).min(rows_in);
    let hi = (ax.pad_row + ax.in_rows).saturating_sub(y0).clamp(lo, rows_in);
    if fill {
        for i in (0..lo).chain(hi..rows_in) {
            for j in 0..4 {
                if let Some(d) = planes.get_mut(j * plane + i * wp + x0..j * plane + i * wp + x1) {
                    d.fill(zb);
                }
            }
        }
    }
    if n == 0 || lo == hi {
        return;
    }
    // Bytes from one input row to the next and one column to the next, the first row's offset
    // and the bytes a row's copy reads (a word per column, a halfword at 4 bits).
    let (row_step, col_step, word) = if four { (ax.in_row / 2, ax.in_col / 2, 2) } else { (ax.in_row, ax.in_col, 4) };
    let first = (y0 + lo - ax.pad_row) * row_step + if four { c0 / 2 } else { c0 };
    let reads = (n - 1) * col_step + word;
    let last_end = first + (hi - 1 - lo) * row_step + reads;
    if last_end > input.len() || 4 * plane > planes.len() || col_step < word {
        return;
    }
    let (quads, rest) = (n / 4, n % 4);
    for i in lo..hi {
        let (src, d) =
            (input.as_ptr().wrapping_add(first + (i - lo) * row_step), planes.as_mut_ptr().wrapping_add(i * wp + x0));
        // SAFETY: row `i < hi` reads `reads` bytes from `first + (i − lo)·row_step`, inside
        // `input` (`last_end`, checked); it writes `n` bytes at `j·plane + i·wp + x0` for `j < 4`,
        // inside `planes` (`x1 ≤ wp`, `i < rows_in`, `4·plane ≤ planes.len()`); `col_step ≥` the
        // bytes read per column.
        unsafe {
            if four {
                if quads > 0 {
                    transpose_quads4(src, col_step, d, plane, quads);
                }
                for x in 4 * quads..n {
                    let at = src.add(x * col_step);
                    let h = u16::from_le_bytes([*at, *at.add(1)]) ^ 0x8888;
                    let d = d.add(x);
                    *d = (h & 15) as u8;
                    *d.add(plane) = (h >> 4 & 15) as u8;
                    *d.add(2 * plane) = (h >> 8 & 15) as u8;
                    *d.add(3 * plane) = (h >> 12) as u8;
                }
            } else {
                if quads > 0 {
                    transpose_quads(src, col_step, d, plane, quads);
                }
                if rest > 0 {
                    transpose_columns(src.add(4 * quads * col_step), col_step, d.add(4 * quads), plane, rest);
                }
            }
        }
    }
}

/// `n` groups of four columns of a 4-bit row ([`gather`]): halfwords `a, b, c, e` joined as `a | c << 16`
/// and `b | e << 16`, `⊕ 0x8888_8888`, split into low and high nibbles (`(a0 a2 c0 c2)`,
/// `(a1 a3 c1 c3)`, …), then each plane's word `(a_j b_j c_j e_j)` by UXTB16 and a shifted ORR:
/// 36 instructions for 16 elements.
///
/// # Safety
/// `src` is valid for reading the 2 bytes at `src + k·step` for `k < 4n`; `d + j·plane` for
/// writing `4n` bytes for `j < 4`; `n ≥ 1`.
unsafe fn transpose_quads4(src: *const u8, step: usize, d: *mut u8, plane: usize, n: usize) {
    // SAFETY: the caller's bounds; the halfwords and words may be unaligned (Armv7-M allows LDRH
    // and STR).
    unsafe {
        asm!(
            "2:",
            "ldrh {a}, [{src}]",
            "ldrh {b}, [{src}, {step}]",
            "add {src}, {src}, {step}, lsl #1",
            "ldrh {c}, [{src}]",
            "ldrh {e}, [{src}, {step}]",
            "add {src}, {src}, {step}, lsl #1",
            "pkhbt {a}, {a}, {c}, lsl #16",
            "pkhbt {b}, {b}, {e}, lsl #16",
            "eor {a}, {a}, #0x88888888",
            "eor {b}, {b}, #0x88888888",
            "and {c}, {a}, #0x0F0F0F0F",
            "and {e}, {b}, #0x0F0F0F0F",
            "lsr {a}, {a}, #4",
            "and {a}, {a}, #0x0F0F0F0F",
            "lsr {b}, {b}, #4",
            "and {b}, {b}, #0x0F0F0F0F",
            "uxtb16 {t0}, {c}",
            "uxtb16 {t1}, {e}",
            "orr {t0}, {t0}, {t1}, lsl #8",
            "str {t0}, [{d}]",
            "uxtb16 {t0}, {c}, ror #8",
            "uxtb16 {t1}, {e}, ror #8",
            "orr {t0}, {t0}, {t1}, lsl #8",
            "str {t0}, [{d}, {plane}, lsl #1]",
            "uxtb16 {t0}, {a}",
            "uxtb16 {t1}, {b}",
            "orr {t0}, {t0}, {t1}, lsl #8",
            "str {t0}, [{d}, {plane}]",
            "uxtb16 {t0}, {a}, ror #8",
            "uxtb16 {t1}, {b}, ror #8",
            "orr {t0}, {t0}, {t1}, lsl #8",
            "add {t1}, {d}, {plane}, lsl #1",
            "str {t0}, [{t1}, {plane}]",
            "add {d}, {d}, #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            src = inout(reg) src => _,
            step = in(reg) step,
            d = inout(reg) d => _,
            plane = in(reg) plane,
            n = inout(reg) n => _,
            a = out(reg) _,
            b = out(reg) _,
            c = out(reg) _,
            e = out(reg) _,
            t0 = out(reg) _,
            t1 = out(reg) _,
            options(nostack),
        );
    }
}

/// `n` columns of a row of [`gather`], one at a time: a word, four byte stores (11 instructions).
///
/// # Safety
/// `src` is valid for reading the 4 bytes at `src + k·step` for `k < n`; `d + j·plane` for
/// writing `n` bytes for `j < 4`; `n ≥ 1`.
unsafe fn transpose_columns(src: *const u8, step: usize, d: *mut u8, plane: usize, n: usize) {
    // SAFETY: the caller's bounds; the words may be unaligned (Armv7-M allows LDR).
    unsafe {
        asm!(
            "2:",
            "ldr {v}, [{src}]",
            "add {src}, {src}, {step}",
            "add {t}, {d}, {plane}",
            "strb {v}, [{d}], #1",
            "lsr {v}, {v}, #8",
            "strb {v}, [{t}]",
            "lsr {v}, {v}, #8",
            "strb {v}, [{t}, {plane}]",
            "add {t}, {t}, {plane}, lsl #1",
            "lsr {v}, {v}, #8",
            "strb {v}, [{t}]",
            "subs {n}, {n}, #1",
            "bne 2b",
            src = inout(reg) src => _,
            step = in(reg) step,
            d = inout(reg) d => _,
            plane = in(reg) plane,
            n = inout(reg) n => _,
            v = out(reg) _,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// `n` groups of four columns of a row of [`gather`]: the words `a, b, c, e` at `src`, `src + step`,
/// … become `(a0 b0 a2 b2)`, `(a1 b1 a3 b3)` (UXTB16 and a shifted ORR), the same of `c, e`, then
/// one word per plane with PKHBT/PKHTB: 30 instructions for 16 bytes.
///
/// # Safety
/// `src` is valid for reading the 4 bytes at `src + k·step` for `k < 4n`; `d + j·plane` for
/// writing `4n` bytes for `j < 4`; `n ≥ 1`.
unsafe fn transpose_quads(src: *const u8, step: usize, d: *mut u8, plane: usize, n: usize) {
    // SAFETY: the caller's bounds; the words may be unaligned (Armv7-M allows LDR and STR).
    unsafe {
        asm!(
            "2:",
            "ldr {a}, [{src}]",
            "ldr {b}, [{src}, {step}]",
            "add {src}, {src}, {step}, lsl #1",
            "ldr {c}, [{src}]",
            "ldr {e}, [{src}, {step}]",
            "add {src}, {src}, {step}, lsl #1",
            "uxtb16 {t0}, {a}",
            "uxtb16 {t1}, {b}",
            "orr {t0}, {t0}, {t1}, lsl #8",
            "uxtb16 {a}, {a}, ror #8",
            "and {b}, {b}, #0xFF00FF00",
            "orr {a}, {a}, {b}",
            "uxtb16 {t1}, {c}",
            "uxtb16 {b}, {e}",
            "orr {t1}, {t1}, {b}, lsl #8",
            "uxtb16 {c}, {c}, ror #8",
            "and {e}, {e}, #0xFF00FF00",
            "orr {c}, {c}, {e}",
            "pkhbt {b}, {t0}, {t1}, lsl #16",
            "pkhtb {t0}, {t1}, {t0}, asr #16",
            "pkhbt {e}, {a}, {c}, lsl #16",
            "pkhtb {a}, {c}, {a}, asr #16",
            "str {b}, [{d}]",
            "str {e}, [{d}, {plane}]",
            "add {t1}, {d}, {plane}, lsl #1",
            "str {t0}, [{t1}]",
            "str {a}, [{t1}, {plane}]",
            "add {d}, {d}, #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            src = inout(reg) src => _,
            step = in(reg) step,
            d = inout(reg) d => _,
            plane = in(reg) plane,
            n = inout(reg) n => _,
            a = out(reg) _,
            b = out(reg) _,
            c = out(reg) _,
            e = out(reg) _,
            t0 = out(reg) _,
            t1 = out(reg) _,
            options(nostack),
        );
    }
}

/// [`band`] in Rust for a channel whose requantization keeps the 64-bit form: output `(r, x)` of
/// the band at `out[at + r·run.out_row + x·step]`, saturated to 8 bits as [`band`]'s are.
#[allow(clippy::too_many_arguments)]
fn band_slow(
    p: &[u8],
    wp: usize,
    st: usize,
    cols: usize,
    run: &Run,
    f: &Rq32,
    k: &Channel,
    out: &mut [u8],
    at: usize,
    step: usize,
) {
    let h = |w: u32, hi: bool| if hi { (w >> 16) as i16 as i32 } else { w as i16 as i32 };
    // Kernel row `r`, column `c`, from the constants' pairs.
    let w = |r: usize, c: usize| match c {
        1 if r < 2 => h(k.w[3], r == 1),
        1 => h(k.w[4], false),
        _ => h(k.w[r], c == 2),
    };
    for r in 0..run.rows {
        for x in 0..cols {
            let mut sum = 0;
            for (kr, row) in p[st * r * wp..].chunks(wp).take(3).enumerate() {
                for (kc, &a) in row[st * x..st * x + 3].iter().enumerate() {
                    sum += w(kr, kc) * a as i8 as i32;
                }
            }
            out[at + r * run.out_row + x * step] = f.apply(sum, -128, 127) as u8;
        }
    }
}

/// Two outputs of one plane row of one channel (registers: r0 the plane at the pair's first
/// column, r1 the plane row's bytes, r2–r6 the weights, r7 the bias, r12 the output; the sums
/// in r8 and r9), requantized and stored; r0 and r12 step to the next pair. The kernel rows in
/// the order 1, 2, 0, so that row 0's load steps the pointer.
macro_rules! dw3_pair {
    () => {
        concat!(
            "ldr r10, [r0, r1]\n",
            "sxtb16 r11, r10\n",
            "sxtb16 r10, r10, ror #8\n",
            "smlad r8, r11, r3, r7\n",
            "smlad r9, r10, r3, r7\n",
            "smlabt r8, r10, r5, r8\n",
            "smlatt r9, r11, r5, r9\n",
            "ldr r10, [r0, r1, lsl #1]\n",
            "sxtb16 r11, r10\n",
            "sxtb16 r10, r10, ror #8\n",
            "smlad r8, r11, r4, r8\n",
            "smlad r9, r10, r4, r9\n",
            "smlabb r8, r10, r6, r8\n",
            "smlatb r9, r11, r6, r9\n",
            "ldr r10, [r0], #2\n",
            "sxtb16 r11, r10\n",
            "sxtb16 r10, r10, ror #8\n",
            "smlad r8, r11, r2, r8\n",
            "smlad r9, r10, r2, r9\n",
            "smlabb r8, r10, r5, r8\n",
            "smlatb r9, r11, r5, r9\n",
            dw3_requant_store!(),
        )
    };
}

/// The requantization of a pair's sums r8, r9 (`((s << shl)·m >> 16) + round) >> sh`, saturated
/// to 8 bits; the constants at [sp]), their stores `step` apart, r12 stepped past them.
macro_rules! dw3_requant_store {
    () => {
        concat!(
            "ldrd r10, r11, [sp]\n",
            "lsl r8, r8, r10\n",
            "lsl r9, r9, r10\n",
            "smlawt r8, r8, r10, r11\n",
            "smlawt r9, r9, r10, r11\n",
            "ldrd r10, r11, [sp, #8]\n",
            "asr r8, r8, r10\n",
            "asr r9, r9, r10\n",
            "ssat r8, #8, r8\n",
            "ssat r9, #8, r9\n",
            "strb r8, [r12]\n",
            "strb r9, [r12, r11]\n",
            "add r12, r12, r11, lsl #1\n",
        )
    };
}

/// The frame [`band`] and [`band_s2`] keep at [sp] (r0 the plane, r2 the channel's constants,
/// r3 the band's [`Run`], r12 the output): shl_m, round, sh, step, the row's plane and output,
/// rows left, more, back, out_row.
macro_rules! dw3_frame {
    () => {
        concat!(
            "ldrd r8, r9, [r2, #24]\n",
            "strd r8, r9, [sp]\n",
            "ldrd r8, r9, [r2, #32]\n",
            "strd r8, r9, [sp, #8]\n",
            "strd r0, r12, [sp, #16]\n",
            "ldm r3, {{r8, r9, r10, r11}}\n",
            "strd r8, r9, [sp, #24]\n",
            "strd r10, r11, [sp, #32]\n",
        )
    };
}

/// After a row's first pair (r10 its step back, 0 or 1 output): the output pointer stepped
/// back, lr the row's further pairs, and on to `4:` when there are none.
macro_rules! dw3_step_back_and_count {
    () => {
        concat!("ldr r11, [sp, #12]\n", "mls r12, r10, r11, r12\n", "ldr lr, [sp, #28]\n", "cmp lr, #0\n", "beq 4f\n",)
    };
}

/// One row fewer left; back to `2:` while any is.
macro_rules! dw3_next_row {
    () => {
        concat!("ldr r10, [sp, #24]\n", "subs r10, r10, #1\n", "str r10, [sp, #24]\n", "bne 2b\n",)
    };
}

/// The outputs of one channel over a band: `run.rows` plane rows of `cols` outputs each, in pairs
/// (the first pair of a row at column 0, the next at `2 − back`, then every 2), each as
/// [`dw3_pair!`].
///
/// # Safety
/// `p` is valid for reading `(run.rows + 2)·rs` bytes, `rs = cols + 2`, `cols ≥ 2`, `run.more =
/// (cols − 1)/2`, `run.back = cols mod 2`; `out` is valid for writing the byte at `r·out_row +
/// x·k.step` for every `r < run.rows`, `x < cols`; `run.rows ≥ 1`.
#[inline(never)]
unsafe fn band(p: *const u8, rs: usize, out: *mut u8, k: *const Channel, run: *const Run) {
    // SAFETY: the caller's bounds; the plane words may be unaligned (Armv7-M allows LDR), the
    // constants and the frame are word-aligned (LDRD, LDM); the assembly restores r6, r7 and sp.
    unsafe {
        asm!(
            "push {{r6, r7}}",
            // The frame of `dw3_frame!`.
            "sub sp, sp, #40",
            dw3_frame!(),
            "ldr r7, [r2, #20]",
            "ldm r2, {{r2, r3, r4, r5, r6}}",
            "2:",
            dw3_pair!(),
            "ldr r10, [sp, #32]",
            "sub r0, r0, r10",
            dw3_step_back_and_count!(),
            "3:",
            dw3_pair!(),
            "subs lr, lr, #1",
            "bne 3b",
            "4:",
            "ldrd r0, r12, [sp, #16]",
            "add r0, r0, r1",
            "ldr r10, [sp, #36]",
            "add r12, r12, r10",
            "strd r0, r12, [sp, #16]",
            dw3_next_row!(),
            "add sp, sp, #40",
            "pop {{r6, r7}}",
            inout("r0") p => _,
            in("r1") rs,
            inout("r2") k => _,
            inout("r3") run => _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            inout("r12") out => _,
            out("lr") _,
        )
    }
}

/// [`dw3_pair!`] at stride 2 (registers as there, but r7 the plane at the pair's first column
/// plus 2, the bias at [sp, #40]): the pair's taps of a kernel row are columns `2x..2x + 2` and
/// `2x + 2..2x + 4`, read as the words at `2x` and `2x + 2`, `(a0, a2)`, `(a1, a3)` and
/// `(a2, a4)` after `SXTB16`; 42 instructions for two outputs.
macro_rules! dw3_pair_s2 {
    () => {
        concat!(
            "ldr r8, [sp, #40]\n",
            "mov r9, r8\n",
            "ldr r10, [r0, r1]\n",
            "sxtb16 r11, r10\n",
            "smlad r8, r11, r3, r8\n",
            "sxtb16 r10, r10, ror #8\n",
            "smlabt r8, r10, r5, r8\n",
            "smlatt r9, r10, r5, r9\n",
            "ldr r11, [r7, r1]\n",
            "sxtb16 r11, r11\n",
            "smlad r9, r11, r3, r9\n",
            "ldr r10, [r0, r1, lsl #1]\n",
            "sxtb16 r11, r10\n",
            "smlad r8, r11, r4, r8\n",
            "sxtb16 r10, r10, ror #8\n",
            "smlabb r8, r10, r6, r8\n",
            "smlatb r9, r10, r6, r9\n",
            "ldr r11, [r7, r1, lsl #1]\n",
            "sxtb16 r11, r11\n",
            "smlad r9, r11, r4, r9\n",
            "ldr r10, [r0], #4\n",
            "sxtb16 r11, r10\n",
            "smlad r8, r11, r2, r8\n",
            "sxtb16 r10, r10, ror #8\n",
            "smlabb r8, r10, r5, r8\n",
            "smlatb r9, r10, r5, r9\n",
            "ldr r11, [r7], #4\n",
            "sxtb16 r11, r11\n",
            "smlad r9, r11, r2, r9\n",
            dw3_requant_store!(),
        )
    };
}

/// [`band`] at stride 2: plane rows `2r..2r + 2` for output row `r`, columns `2x..2x + 2` for
/// output `x`, each pair as [`dw3_pair_s2!`].
///
/// # Safety
/// As [`band`], with `p` valid for reading `(2·run.rows + 1)·rs` bytes, `rs = 2·cols + 2`.
#[inline(never)]
unsafe fn band_s2(p: *const u8, rs: usize, out: *mut u8, k: *const Channel, run: *const Run) {
    // SAFETY: the caller's bounds; the plane words may be unaligned (Armv7-M allows LDR), the
    // constants and the frame are word-aligned (LDRD, LDM); the assembly restores r6, r7 and sp.
    unsafe {
        asm!(
            "push {{r6, r7}}",
            // The frame of `dw3_frame!`, then the bias.
            "sub sp, sp, #48",
            dw3_frame!(),
            "ldr r8, [r2, #20]",
            "str r8, [sp, #40]",
            "ldm r2, {{r2, r3, r4, r5, r6}}",
            "2:",
            "add r7, r0, #2",
            dw3_pair_s2!(),
            "ldr r10, [sp, #32]",
            "sub r0, r0, r10, lsl #1",
            "sub r7, r7, r10, lsl #1",
            dw3_step_back_and_count!(),
            "3:",
            dw3_pair_s2!(),
            "subs lr, lr, #1",
            "bne 3b",
            "4:",
            "ldrd r0, r12, [sp, #16]",
            "add r0, r0, r1, lsl #1",
            "ldr r10, [sp, #36]",
            "add r12, r12, r10",
            "strd r0, r12, [sp, #16]",
            dw3_next_row!(),
            "add sp, sp, #48",
            "pop {{r6, r7}}",
            inout("r0") p => _,
            in("r1") rs,
            inout("r2") k => _,
            inout("r3") run => _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            inout("r12") out => _,
            out("lr") _,
        )
    }
}
