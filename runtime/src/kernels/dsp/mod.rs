//! Cortex-M4/M7 kernels with the Armv7E-M DSP extension (compiled on `thumbv7em-*` only, the
//! `hawq_dsp` cfg of `build.rs`): SMLAD (two 16×16 multiply-accumulates), SXTB16 (two bytes
//! sign-extended to two halfwords), SSUB16, PKHBT/PKHTB, SMLABB/SMLATT, through `asm!` (the
//! `core::arch::arm` intrinsics are unstable).
//!
//! **Convolution** is an im2col GEMM over blocks of [`PIX`] output pixels. Each pixel's receptive
//! field is turned once into halfword pairs `(a − z, a' − z)` (padding taps are 0, contract §3)
//! in the order in which a packed weight word unpacks, so that the inner loop is, per 32-bit word
//! of a weight row: one load, the unpacking, and for each of the block's pixels one SMLAD per two
//! weights. Unpacking needs no shifts per lane:
//!
//! | weights | one word holds | unpacked with | lane pairs, in order (`k` within the word) |
//! |---|---|---|---|
//! | 8-bit | 4 | `SXTB16 w`, `SXTB16 w, ROR #8` | (0,2) (1,3) |
//! | 4-bit | 8 | `(w << 4) & 0xF0F0F0F0` and `w & 0xF0F0F0F0`, each `SXTB16`, `SXTB16 ROR #8` | (0,4) (2,6) (1,5) (3,7), by halves (below) |
//! | 2-bit | 16 | `(w << (6 − 2j)) & 0xC0C0C0C0`, `j = 0..3`, each `SXTB16`, `SXTB16 ROR #8` | (j,8+j) (4+j,12+j) |
//!
//! A 4-bit weight so unpacked is `16·w` and a 2-bit one `64·w` (the nibble sits in the high bits
//! of its byte): the block's sums are `16·Σ` or `64·Σ`, exact while `|Σ|·64 < 2^31` (rows of up
//! to 65,792 weights, `sums_fit`; longer ones, which only low widths allow, run on the portable
//! kernel), and are shifted back before the bias is added. A row's last word is read
//! zero-padded, and its unused high bits (whatever they hold) meet activations that are 0.
//!
//! Where a layer's sums and 16-bit biases fit 32 bits held scaled by `2^12` (4-bit) or `2^14`
//! (2-bit), its weights are read as they are into the top bits of their halfword lanes
//! (`AND` with `0xF000F000` or `0xC000C000` and a shifted operand: `2^12·w`, `2^14·w`, the sign
//! the lane's), one instruction per lane pair where the table's `AND` and `SXTB16` take 1.5
//! ([`conv_high`], `step_w4_high`, `step_w2_high`; the fully connected pairs' `HIGH` form
//! drops their offset binary's `EOR` and the input's lane sum, [`high_lanes`]).
//!
//! Every buffer (the im2col blocks, the requantization table of every output channel, one
//! receptive field; the depthwise tables) is a slice of the op's arena scratch
//! (`kernels::scratch`), sized from the layer: no layer shape leaves this path for lack of a
//! buffer, and the stack holds only a few hundred bytes of locals.
//!
//! In the common case (8-bit output, every channel's requantization fast, no clamp but the
//! output range) the whole loop over a block's output channels is one `asm!` block per weight
//! width ([`rows_plain`]): the sums start at the scaled bias, one `LDM` loads a channel's
//! constants, and requantization (`LSL`, `SMLAWB`, `ASR`, `SSAT`) and the four byte stores
//! follow the dot product with nothing spilled, about 40 instructions per row besides it. The 4-
//! and 2-bit loops keep the nibble or crumb mask in a register, where one `AND` with a shifted
//! operand moves and masks the low nibbles (`and r4, mask, w, lsl #4`), and stop at the end of
//! the im2col buffer instead of counting. The block is read four words per `LDM` (two pixels'
//! pairs), which is why a 4-bit block holds its pixels' pairs (0,4), (2,6) first and their
//! (1,5), (3,7) after ([`slot`]): per 32 multiply-accumulates, 8-bit rows take 26 instructions
//! plus the loop (2 per two words), 4-bit rows 27 plus the loop (3 per four words), so that a
//! 4-bit row costs no more than the 8-bit row of the same weights (the 4-bit im2col regroups
//! its activations with two more `PKHBT`/`PKHTB` per eight: small layers pay that per pixel).
//! Layers whose rows are whole loop iterations skip the remainder dispatch; 4-bit rows take
//! their `words mod 4` first words straight, with no test (the form is chosen per layer),
//! so that rows of 1–3 words (pointwise layers of 8–24 channels) have no loop at all, and a row
//! of `8n + 1` weights (3×3 or 5×5 over one channel) takes its last weight alone (`SMLABB`, 11
//! instructions instead of a word's 27). A 4-bit layer over an 8-bit input converts the
//! receptive fields of pixels inside the input in assembly ([`im2col_inside_w4`]).
//!
//! **Depthwise** (depth multiplier 1, 8- or 4-bit input): a 3×3 kernel at strides 1 or 2 on a
//! map of 5 or more along one axis (16 at stride 2 over an 8-bit input) runs over channel planes
//! ([`planes`]: a band of four channels' input copied into one plane each, then SMLAD on two taps
//! of one channel at a time, about 2 instructions per MAC at stride 1). Other layers: four channels at a time, one word of input per tap, SXTB16 into two halfword pairs,
//! SMLABB/SMLATT against weights unpacked once per channel group into halfword pairs, in passes
//! of 128 channels. Under a 3×3 kernel, in the plain case, a pixel's groups (taps,
//! requantization and stores) are one `asm!` block ([`dw_pixel9_plain`]). Other depth
//! multipliers, fewer than four channels and the channels past the last group of four use the
//! portable kernel.
//!
//! **Fully connected**: two output channels per pass share each input load, and the loop over
//! the pairs is one `asm!` block per weight width and form ([`fc_pairs`]): a narrow layer's cost is per
//! output (requantization, clamp, store), about 24 instructions an output besides the dot
//! product, where Rust around the dot product spilled to about 45.
//!
//! Every function here produces exactly the bytes of `kernels::reference`; `targets/kernel-check`
//! runs them against it on QEMU's Cortex-M4.
#![allow(unsafe_code)]

use core::arch::asm;

mod planes;

use super::forms::{self, conv_high, high_lanes, high_scale, lane_bits, per_term, scale_shift, sums_fit};
use super::linked::{self, has};
use super::reference::{self, ActFormat, AddRequant, Layer, Requant, Window};
use super::scratch::{self, Scratch};
use super::util::{self, gather, inside_field, put, row_words, sum_bound, tail_word, unpack4, AddPlan, ChannelQ, Rq32};
use super::{portable, KernelTable, Path};
use crate::quant::{load, Biases, Bits, BIAS_I32};

/// The DSP kernels, every width and format linked, as a [`KernelTable`].
pub const TABLE: KernelTable = KernelTable {
    path: Path::Dsp,
    conv2d: conv2d::<{ linked::ALL }>,
    depthwise_conv2d: depthwise_conv2d::<{ linked::ALL }>,
    fully_connected: fully_connected::<{ linked::ALL }>,
};

/// Output pixels per block of the convolution.
pub const PIX: usize = scratch::PIX;

// The depthwise kernel's tables of tap offsets are counted at 4 bytes an offset
// (`scratch::dsp_depthwise`).
const _: () = assert!(core::mem::size_of::<usize>() == 4);

// --- the instructions -------------------------------------------------------------------------

/// `acc + x.lo·y.lo + x.hi·y.hi` (signed halfwords).
#[inline(always)]
fn smlad(x: u32, y: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: SMLAD reads and writes registers only (and the sticky Q flag); Armv7E-M DSP, which
    // every thumbv7em core has.
    unsafe {
        asm!("smlad {r}, {x}, {y}, {a}", r = lateout(reg) r, x = in(reg) x, y = in(reg) y, a = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}

/// Bytes 0 and 2 sign-extended into the low and high halfwords.
#[inline(always)]
fn sxtb16(x: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only DSP instruction (see `smlad`).
    unsafe {
        asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// Bytes 1 and 3 sign-extended into the low and high halfwords.
#[inline(always)]
fn sxtb16_ror8(x: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only DSP instruction (see `smlad`).
    unsafe {
        asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `x.lo·y.lo + x.hi·y.hi` (signed halfwords).
#[inline(always)]
fn smuad(x: u32, y: u32) -> i32 {
    let r: i32;
    // SAFETY: register-only DSP instruction (see `smlad`).
    unsafe {
        asm!("smuad {r}, {x}, {y}", r = lateout(reg) r, x = in(reg) x, y = in(reg) y, options(pure, nomem, nostack))
    };
    r
}

/// Halfword-wise `x − y` (sets the GE flags, which nothing here reads).
#[inline(always)]
fn ssub16(x: u32, y: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only DSP instruction (see `smlad`).
    unsafe {
        asm!("ssub16 {r}, {x}, {y}", r = lateout(reg) r, x = in(reg) x, y = in(reg) y, options(pure, nomem, nostack))
    };
    r
}

/// Halfword-wise `x + y` (sets the GE flags, which nothing here reads).
#[inline(always)]
fn sadd16(x: u32, y: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only DSP instruction (see `smlad`).
    unsafe {
        asm!("sadd16 {r}, {x}, {y}", r = lateout(reg) r, x = in(reg) x, y = in(reg) y, options(pure, nomem, nostack))
    };
    r
}

/// `(x.lo, y.lo)`: low halfword of `x`, low halfword of `y` on top.
#[inline(always)]
fn pack_lo(x: u32, y: u32) -> u32 {
    let r: u32;
    // SAFETY: PKHBT is a register-only Armv7E-M DSP instruction.
    unsafe {
        asm!("pkhbt {r}, {x}, {y}, lsl #16", r = lateout(reg) r, x = in(reg) x, y = in(reg) y, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `(x.hi, y.hi)`: high halfword of `x` at the bottom, high halfword of `y` on top.
#[inline(always)]
fn pack_hi(x: u32, y: u32) -> u32 {
    let r: u32;
    // SAFETY: PKHTB is a register-only Armv7E-M DSP instruction.
    unsafe {
        asm!("pkhtb {r}, {y}, {x}, asr #16", r = lateout(reg) r, x = in(reg) x, y = in(reg) y, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

#[inline(always)]
fn word(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

// --- im2col -----------------------------------------------------------------------------------

/// Lane pairs per weight word: 2 (8-bit), 4 (4-bit), 8 (2-bit).
#[inline(always)]
fn lanes(bits: Bits) -> usize {
    16 / bits.get() as usize
}

/// Turns one block of activation bytes (one weight word's worth: `2L` = 4, 8 or 16) into the
/// `L` lane pairs of that word, `a − z` per halfword.
#[inline(always)]
fn convert_block<const L: usize>(src: &[u8], zz: u32) -> [u32; L] {
    let mut dst = [0u32; L];
    let d: &mut [u32] = &mut dst[..];
    if L == 2 {
        let a = word(src);
        d[0] = ssub16(sxtb16(a), zz);
        d[1] = ssub16(sxtb16_ror8(a), zz);
    } else if L == 4 {
        // Halfwords first, then bytes: (a0 a1 b0 b1) and (a2 a3 b2 b3) each give two lanes.
        let (a, b) = (word(src), word(&src[4..]));
        let (lo, hi) = (pack_lo(a, b), pack_hi(a, b));
        d[0] = ssub16(sxtb16(lo), zz); // (0, 4)
        d[1] = ssub16(sxtb16(hi), zz); // (2, 6)
        d[2] = ssub16(sxtb16_ror8(lo), zz); // (1, 5)
        d[3] = ssub16(sxtb16_ror8(hi), zz); // (3, 7)
    } else {
        let w = [word(src), word(&src[4..]), word(&src[8..]), word(&src[12..])];
        let (p0, p1) = (pack_lo(w[0], w[2]), pack_hi(w[0], w[2])); // (0 1 8 9), (2 3 10 11)
        let (p2, p3) = (pack_lo(w[1], w[3]), pack_hi(w[1], w[3])); // (4 5 12 13), (6 7 14 15)
        d[0] = ssub16(sxtb16(p0), zz); // (0, 8)
        d[1] = ssub16(sxtb16(p2), zz); // (4, 12)
        d[2] = ssub16(sxtb16_ror8(p0), zz); // (1, 9)
        d[3] = ssub16(sxtb16_ror8(p2), zz); // (5, 13)
        d[4] = ssub16(sxtb16(p1), zz); // (2, 10)
        d[5] = ssub16(sxtb16(p3), zz); // (6, 14)
        d[6] = ssub16(sxtb16_ror8(p1), zz); // (3, 11)
        d[7] = ssub16(sxtb16_ror8(p3), zz); // (7, 15)
    }
    dst
}

/// The flat word, within one block of `P` pixels (`[[u32; L]; P]`, one weight word's `L·P`
/// words), of pixel `p`'s lane pair `j`: the block goes by the two lane pairs that one unpacked
/// part of a weight word meets (an 8-bit word's one part, a 4-bit word's two halves, a 2-bit
/// word's four quarters), each part's pairs of every pixel together, so that one `LDM` of four
/// registers loads two pixels' pairs of a part (`step_w8!`, `step_w4!`, `step_w2!`). With
/// `P = 1` (fully connected) this is the plain order.
#[inline(always)]
const fn slot<const L: usize, const P: usize>(p: usize, j: usize) -> usize {
    (j / 2) * 2 * P + 2 * p + j % 2
}

/// Writes pixel `p`'s lane pairs into a block (at [`slot`]).
#[inline(always)]
fn put_lanes<const L: usize, const P: usize>(xb: &mut [[u32; L]; P], p: usize, lanes: [u32; L]) {
    if L != 2 {
        let flat = xb.as_flattened_mut();
        for (j, v) in lanes.into_iter().enumerate() {
            if let Some(d) = flat.get_mut(slot::<L, P>(p, j)) {
                *d = v;
            }
        }
    } else if let Some(d) = xb.get_mut(p) {
        *d = lanes;
    }
}

/// Pixel `p`'s lane pair `j` of a block (at [`slot`]), read in place.
#[inline(always)]
fn lane<const L: usize, const P: usize>(xb: &[[u32; L]; P], p: usize, j: usize) -> u32 {
    xb.as_flattened().get(slot::<L, P>(p, j)).copied().unwrap_or(0)
}

/// Pixel `p`'s lane pairs of a block (at [`slot`]).
#[inline(always)]
fn get_lanes<const L: usize, const P: usize>(xb: &[[u32; L]; P], p: usize) -> [u32; L] {
    core::array::from_fn(|j| lane(xb, p, j))
}

/// Writes a receptive field of `K = src.len()` raw activation bytes (padding taps = z) as pixel
/// `p` of the blocks `x[widx][p]`, one block per weight word.
fn convert<const L: usize, const P: usize>(src: &[u8], z: i32, x: &mut [[[u32; L]; P]], p: usize) {
    let per = 2 * L;
    let zz = (z as u32 & 0xFFFF) | ((z as u32) << 16);
    let full = src.len() / per;
    for (block, xb) in src.chunks_exact(per).zip(x.iter_mut()) {
        put_lanes(xb, p, convert_block(block, zz));
    }
    let rest = &src[full * per..];
    if let (false, Some(xb)) = (rest.is_empty(), x.get_mut(full)) {
        let block: [u8; 16] = if L == 2 {
            // 1–3 bytes and the zero point (16 picked one by one cost a pixel ~50 instructions).
            let mut b = [z as u8; 16];
            b[0] = rest[0];
            if let Some(&v) = rest.get(1) {
                b[1] = v;
            }
            if let Some(&v) = rest.get(2) {
                b[2] = v;
            }
            b
        } else if L == 4 {
            // At most 7 bytes: each by itself (`from_fn` over the 16 cost a 4-bit pixel ~60
            // instructions; a loop over `rest` becomes a `memcpy` call; a word and then bytes, as
            // below, cost 4-bit models ~300 instructions more).
            let mut b = [z as u8; 16];
            for (i, d) in b.iter_mut().enumerate().take(2 * L - 1) {
                if let Some(&v) = rest.get(i) {
                    *d = v;
                }
            }
            b
        } else {
            // At most 15 bytes: its whole words (at most 3) each by itself, then its last 1–3
            // bytes (byte by byte, a 2-bit pixel's half block of 8 took ~90 instructions; a loop
            // over `rest` becomes a `memcpy` call).
            let mut b = [z as u8; 16];
            let whole = rest.len() / 4;
            for i in 0..(2 * L - 1) / 4 {
                if let (Some(d), Some(s)) = (b.get_mut(4 * i..4 * i + 4), rest.get(4 * i..4 * i + 4)) {
                    d.copy_from_slice(s);
                }
            }
            for i in 0..3 {
                if let (Some(d), Some(&v)) = (b.get_mut(4 * whole + i), rest.get(4 * whole + i)) {
                    *d = v;
                }
            }
            b
        };
        put_lanes(xb, p, convert_block(&block, zz));
    }
}

/// [`convert`] of a fully connected layer's input (one field) that also returns the sum of every
/// lane it writes, the `x_sum` of the offset-binary widths ([`lane_sum`]), made as each block's
/// lanes are: `SADD16` of the block's words (at most `8·255` per lane, no wrap) and one
/// `SMLAD`. A second pass over the blocks took ~11 instructions a block, which made a 4-bit
/// layer of 32 inputs 62 instructions dearer than its 8-bit form. Its own loop, not [`convert`]'s
/// with a callback per block: that form cost autoencoder-ad `hawq` 1.8 K instructions and every
/// fixture's convolutions 11 (measured on the Cortex-M4, 2026-12-06).
fn convert_summed<const L: usize>(src: &[u8], z: i32, x: &mut [[[u32; L]; 1]]) -> i32 {
    let zz = (z as u32 & 0xFFFF) | ((z as u32) << 16);
    let mut sum = 0i32;
    let per = 2 * L;
    let full = src.len() / per;
    for (block, xb) in src.chunks_exact(per).zip(x.iter_mut()) {
        xb[0] = convert_block(block, zz);
        sum = block_lane_sum(&xb[0], sum);
    }
    let rest = &src[full * per..];
    if let (false, Some(xb)) = (rest.is_empty(), x.get_mut(full)) {
        let block: [u8; 16] = core::array::from_fn(|i| rest.get(i).copied().unwrap_or(z as u8));
        xb[0] = convert_block(&block, zz);
        sum = block_lane_sum(&xb[0], sum);
    }
    sum
}

/// [`convert`] of a fully connected layer's 8-bit input for 8-bit weights (`L = 2`), two blocks
/// (eight inputs) per step of [`convert_pairs_asm`], then the rest through [`convert`].
fn convert_pairs<const L: usize>(src: &[u8], z: i32, x: &mut [[[u32; L]; 1]]) {
    let steps = (src.len() / 8).min(x.len() / 2);
    if L == 2 && steps > 0 {
        // SAFETY: `8·steps ≤ src.len()` bytes read; `2·steps ≤ x.len()` blocks of 2 words
        // (`L = 2`) written, word-aligned.
        unsafe { convert_pairs_asm(src.as_ptr(), pair(z, z), x.as_mut_ptr() as *mut u32, steps) };
    }
    if src.len() > 8 * steps {
        if let (Some(rest), Some(xr)) = (src.get(8 * steps..), x.get_mut(2 * steps..)) {
            convert(rest, z, xr, 0);
        }
    }
}

/// `steps ≥ 1` times: eight input bytes at `src` (any alignment) into the four lane-pair words
/// of two 8-bit weight words' blocks at `x`, `a − z` (`zz`: `z` twice), one `STM`: 13
/// instructions, where the Rust loop's four stores and address arithmetic made it 17 (resnet8's
/// head: 64 inputs).
///
/// # Safety
/// `src` readable for `8·steps` bytes, `x` writable for `4·steps` words, word-aligned.
#[inline(always)]
unsafe fn convert_pairs_asm(src: *const u8, zz: u32, x: *mut u32, steps: usize) {
    // SAFETY: the caller's bounds; LDR may be unaligned (Armv7-M), STM is word-aligned. The
    // block's words in the order of their registers (STM stores by register number).
    unsafe {
        asm!(
            "2:",
            "ldr r3, [{s}], #4",
            "ldr r5, [{s}], #4",
            "sxtb16 r2, r3",
            "sxtb16 r3, r3, ror #8",
            "sxtb16 r4, r5",
            "sxtb16 r5, r5, ror #8",
            "ssub16 r2, r2, {zz}",
            "ssub16 r3, r3, {zz}",
            "ssub16 r4, r4, {zz}",
            "ssub16 r5, r5, {zz}",
            "stm {x}!, {{r2, r3, r4, r5}}",
            "subs {n}, {n}, #1",
            "bne 2b",
            s = inout(reg) src => _,
            x = inout(reg) x => _,
            n = inout(reg) steps => _,
            zz = in(reg) zz,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            options(nostack),
        );
    }
}

/// [`convert_summed`] of a 4-bit input of `n` values (`src`: two a byte, the first in the low
/// nibble): a word's eight nibbles, made offset binary (`EOR 0x88888888`: `u = v + 8`), are
/// masked straight into the halfword lanes `(0, 4)`, `(2, 6)`, `(1, 5)`, `(3, 7)` (one `AND` with
/// a shifted operand each) and `8 + z` subtracted, which is the lane order of a 4-bit weight
/// word; the 8- and 2-bit orders are two such words' lanes repacked (`PKHBT`/`PKHTB`). About two
/// instructions a value, where unpacking each block to bytes first took ~22 (dscnn-kws `mixed`'s
/// fully connected layer spent 1,450 instructions there for 64 inputs). The values past the
/// last whole block go through [`convert_block`] with the padding's `z`. The sum of every lane
/// written is returned for the offset-binary weights, 0 for 8-bit weights (`L = 2`).
fn convert4_summed<const L: usize>(src: &[u8], n: usize, z: i32, x: &mut [[[u32; L]; 1]]) -> i32 {
    const M: u32 = 0x000F_000F;
    let zz8 = pair(z + 8, z + 8);
    // Lanes (0, 4), (2, 6), (1, 5), (3, 7) of a word's eight values, `v − z`.
    let lanes = |w: u32| {
        let e = w ^ 0x8888_8888;
        [e & M, (e >> 8) & M, (e >> 4) & M, (e >> 12) & M].map(|l| ssub16(l, zz8))
    };
    let per = 2 * L;
    let full = (n / per).min(x.len());
    let mut sum = 0i32;
    match L {
        2 => {
            // A word is two blocks: `(0, 2), (1, 3)` and `(4, 6), (5, 7)`.
            let (words, _) = src.as_chunks::<4>();
            for (w, xb) in words.iter().zip(x[..full].chunks_exact_mut(2)) {
                let [a, b, c, d] = lanes(u32::from_le_bytes(*w));
                let [lo, hi] = xb else { continue };
                lo[0][..].copy_from_slice(&[pack_lo(a, b), pack_lo(c, d)]);
                hi[0][..].copy_from_slice(&[pack_hi(a, b), pack_hi(c, d)]);
            }
            // An odd last block: its two bytes, the upper half of the word unused.
            if full % 2 == 1 {
                if let (Some(&[b0, b1]), Some(xb)) = (src.get(2 * full - 2..2 * full), x.get_mut(full - 1)) {
                    let [a, b, c, d] = lanes(u32::from_le_bytes([b0, b1, 0, 0]));
                    xb[0][..].copy_from_slice(&[pack_lo(a, b), pack_lo(c, d)]);
                }
            }
        }
        4 => {
            let (words, _) = src.as_chunks::<4>();
            for (w, xb) in words.iter().zip(x[..full].iter_mut()) {
                let d = lanes(u32::from_le_bytes(*w));
                xb[0][..].copy_from_slice(&d);
                sum = block_lane_sum(&xb[0], sum);
            }
        }
        _ => {
            // Two words: `(0, 8), (4, 12), (1, 9), (5, 13), (2, 10), (6, 14), (3, 11), (7, 15)`.
            let (pairs, _) = src.as_chunks::<8>();
            for (w, xb) in pairs.iter().zip(x[..full].iter_mut()) {
                let [a0, b0, c0, d0] = lanes(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
                let [a1, b1, c1, d1] = lanes(u32::from_le_bytes([w[4], w[5], w[6], w[7]]));
                let d = [
                    pack_lo(a0, a1),
                    pack_hi(a0, a1),
                    pack_lo(c0, c1),
                    pack_hi(c0, c1),
                    pack_lo(b0, b1),
                    pack_hi(b0, b1),
                    pack_lo(d0, d1),
                    pack_hi(d0, d1),
                ];
                xb[0][..].copy_from_slice(&d);
                sum = block_lane_sum(&xb[0], sum);
            }
        }
    }
    if let (true, Some(xb)) = (full * per < n, x.get_mut(full)) {
        let mut block = [z as u8; 16];
        unpack4(src, full * per, &mut block[..(n - full * per).min(per)]);
        xb[0] = convert_block(&block, pair(z, z));
        if L != 2 {
            sum = block_lane_sum(&xb[0], sum);
        }
    }
    sum
}

/// `sum` plus the lanes of one converted block of `a − z` values (`|a − z| ≤ 255`, so the
/// `SADD16` of up to 8 words does not wrap).
#[inline(always)]
fn block_lane_sum<const L: usize>(d: &[u32; L], sum: i32) -> i32 {
    smlad(d[1..].iter().fold(d[0], |acc, &v| sadd16(acc, v)), 0x0001_0001, sum)
}

// --- dot products -----------------------------------------------------------------------------

/// Multiplies one weight word into the `P` accumulators.
#[inline(always)]
fn mac<const L: usize, const P: usize>(w: u32, xb: &[[u32; L]; P], acc: &mut [i32; P]) {
    if L == 2 {
        let (w0, w1) = (sxtb16(w), sxtb16_ror8(w));
        for (a, xp) in acc.iter_mut().zip(xb) {
            let xp: &[u32] = xp;
            *a = smlad(w1, xp[1], smlad(w0, xp[0], *a));
        }
    } else if L == 4 {
        let (e, o) = ((w << 4) & 0xF0F0_F0F0, w & 0xF0F0_F0F0);
        let (w0, w1, w2, w3) = (sxtb16(e), sxtb16_ror8(e), sxtb16(o), sxtb16_ror8(o));
        // The pairs read in place ([`slot`]): copies of each pixel's lanes took the rows that
        // run here (`rows_any`) 120 bytes more stack.
        for (p, a) in acc.iter_mut().enumerate() {
            let x = |j: usize| lane(xb, p, j);
            *a = smlad(w3, x(3), smlad(w2, x(2), smlad(w1, x(1), smlad(w0, x(0), *a))));
        }
    } else {
        for j in 0..4 {
            let c = (w << (6 - 2 * j)) & 0xC0C0_C0C0;
            let (w0, w1) = (sxtb16(c), sxtb16_ror8(c));
            for (p, a) in acc.iter_mut().enumerate() {
                *a = smlad(w1, lane(xb, p, 2 * j + 1), smlad(w0, lane(xb, p, 2 * j), *a));
            }
        }
    }
}

/// The block's `P` sums `Σ_k w[k]·(a_p[k] − z)` of one packed row, scaled by 1 (8-bit), 16
/// (4-bit) or 64 (2-bit). `x` holds one block per word of the row. The row's whole words go
/// through the assembly loops below when `P` is [`PIX`]; its last, partial word through [`mac`].
#[inline(always)]
fn dot<const L: usize, const P: usize>(row: &[u8], x: &[[[u32; L]; P]]) -> [i32; P] {
    let mut acc = [0i32; P];
    let full = (row.len() / 4).min(x.len());
    if P == PIX && full > 0 {
        let (w, xp) = (row.as_ptr(), x.as_ptr() as *const u32);
        // SAFETY: each loop reads `full` 4-byte words of `row` (`4·full ≤ row.len()`) and `full`
        // blocks of `L·PIX` words of `x` (`full ≤ x.len()`), and writes registers only.
        let a = unsafe {
            match L {
                2 => dot4_w8(w, xp, full),
                4 => dot4_w4(w, xp, full),
                _ => dot4_w2(w, xp, full),
            }
        };
        for (d, v) in acc.iter_mut().zip(a) {
            *d = v;
        }
    } else {
        for (wb, xb) in row.chunks_exact(4).zip(x) {
            mac(word(wb), xb, &mut acc);
        }
    }
    if let (true, Some(xb)) = (!row.len().is_multiple_of(4), x.get(full)) {
        mac(tail_word(row, full), xb, &mut acc);
    }
    acc
}

/// The rows of [`conv_impl`]'s blocks that its fast forms leave out: a last block of fewer than
/// four pixels, 4-bit outputs of an odd channel count. A call of its own, so that the
/// convolution's register allocation does not change with it. The sums, at the width's scale,
/// are shifted left by `lift` to the table's (exact: the table's scale holds them).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn rows_any<const L: usize>(
    weights: &[u8],
    row_bytes: usize,
    x: &[[[u32; L]; PIX]],
    fast: &[Rq32],
    (lo, hi, out_bits): (i32, i32, Bits),
    output: &mut [u8],
    q0: usize,
    n: usize,
    lift: u32,
) {
    let oc = fast.len();
    for (c, (row, f)) in weights.chunks_exact(row_bytes).zip(fast).enumerate() {
        // The one or two pixels past the blocks of four (dscnn's 125 pixels, a 3×3 map's 9)
        // alone: a block's dot product for one pixel costs twice as much.
        let acc =
            if n <= 2 { core::array::from_fn(|p| if p < n { dot_one(row, x, p) } else { 0 }) } else { dot(row, x) };
        for (p, &a) in acc.iter().enumerate().take(n) {
            put(output, out_bits, (q0 + p) * oc + c, f.apply_any(a << lift, lo, hi));
        }
    }
}

/// [`dot`] of pixel `p` of the blocks alone.
#[inline(never)]
fn dot_one<const L: usize>(row: &[u8], x: &[[[u32; L]; PIX]], p: usize) -> i32 {
    let mut acc = [0i32; 1];
    for (wb, xb) in row.chunks_exact(4).zip(x) {
        mac(word(wb), &[get_lanes(xb, p)], &mut acc);
    }
    let full = row.len() / 4;
    if let (true, Some(xb)) = (!row.len().is_multiple_of(4), x.get(full)) {
        mac(tail_word(row, full), &[get_lanes(xb, p)], &mut acc);
    }
    acc[0]
}

/// [`dot`] of `n ≥ 1` whole 8-bit weight words (at `w`, any alignment) with `n` blocks of
/// `[[u32; 2]; 4]` at `x` (word-aligned): two words per loop iteration, 33 instructions per 32
/// multiply-accumulates, and one more single-word step when `n` is odd.
///
/// # Safety
/// `w` must be valid for `4n` bytes and `x` for `8n` words.
#[inline(always)]
unsafe fn dot4_w8(w: *const u8, x: *const u32, n: usize) -> [i32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    // One weight word into the four accumulators: 16 multiply-accumulates.
    macro_rules! step {
        () => {
            concat!(
                "ldr {w}, [{wp}], #4\n",
                "sxtb16 {w0}, {w}\n",
                "sxtb16 {w}, {w}, ror #8\n",
                "ldrd {xa}, {xb}, [{xp}], #8\n",
                "smlad {a0}, {w0}, {xa}, {a0}\n",
                "smlad {a0}, {w}, {xb}, {a0}\n",
                "ldrd {xa}, {xb}, [{xp}], #8\n",
                "smlad {a1}, {w0}, {xa}, {a1}\n",
                "smlad {a1}, {w}, {xb}, {a1}\n",
                "ldrd {xa}, {xb}, [{xp}], #8\n",
                "smlad {a2}, {w0}, {xa}, {a2}\n",
                "smlad {a2}, {w}, {xb}, {a2}\n",
                "ldrd {xa}, {xb}, [{xp}], #8\n",
                "smlad {a3}, {w0}, {xa}, {a3}\n",
                "smlad {a3}, {w}, {xb}, {a3}\n",
            )
        };
    }
    // SAFETY: the caller's bounds (`2·(n/2) + n%2 = n` words and blocks); LDR of a weight word
    // may be unaligned (Armv7-M), LDRD of the im2col buffer is word-aligned.
    unsafe {
        asm!(
            "lsrs {i}, {n}, #1",
            "beq 3f",
            "2:",
            step!(),
            step!(),
            "subs {i}, {i}, #1",
            "bne 2b",
            "3:",
            "tst {n}, #1",
            "beq 4f",
            step!(),
            "4:",
            wp = inout(reg) w => _,
            xp = inout(reg) x => _,
            n = in(reg) n,
            i = out(reg) _,
            w = out(reg) _,
            w0 = out(reg) _,
            xa = out(reg) _,
            xb = out(reg) _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            options(nostack, readonly),
        );
    }
    [a0, a1, a2, a3]
}

/// The sums of two weight rows (`a`, `b`: one fully connected layer's consecutive output
/// channels) against one input block list `x`, scaled as [`dot`]'s, sharing each input load
/// between the rows: the whole words through [`dot2_w8`], [`dot2_w4`] or [`dot2_w2`], the last
/// partial word through [`mac`]. `x_sum` is the sum of every lane of the blocks of the whole
/// words (`x[..a.len() / 4]`), which the 4- and 2-bit kernels need.
#[inline(always)]
fn dot_rows2<const L: usize>(a: &[u8], b: &[u8], x: &[[[u32; L]; 1]], x_sum: i32) -> [i32; 2] {
    let mut acc = [[0i32; 1]; 2];
    let full = (a.len() / 4).min(b.len() / 4).min(x.len());
    if full > 0 && b.as_ptr() as usize >= a.as_ptr() as usize {
        let stride = b.as_ptr() as usize - a.as_ptr() as usize;
        let (w, xp) = (a.as_ptr(), x.as_ptr() as *const u32);
        // SAFETY: `full` whole words of each row (`4·full ≤ a.len(), b.len()`, `b` at `a +
        // stride`) and `full` blocks of `L` words of `x` (`full ≤ x.len()`).
        let [s0, s1] = unsafe {
            match L {
                2 => dot2_w8(w, stride, xp, full),
                4 => dot2_w4(w, stride, xp, full),
                _ => dot2_w2(w, stride, xp, full),
            }
        };
        // The 4- and 2-bit kernels read each weight in offset binary, `w + 8` or `w + 2`
        // (nonnegative, no sign extension): `Σ w·x = Σ (w + o)·x − o·Σ x`, then scaled as
        // [`mac`]'s sums are (16, 64). Exact in wrapping arithmetic: the result fits (`sums_fit`).
        let fix = |s: i32| match L {
            2 => s,
            4 => s.wrapping_sub(x_sum.wrapping_mul(8)).wrapping_mul(16),
            _ => s.wrapping_sub(x_sum.wrapping_mul(2)).wrapping_mul(64),
        };
        acc = [[fix(s0)], [fix(s1)]];
    } else {
        for ((wa, wb), xb) in a.chunks_exact(4).zip(b.chunks_exact(4)).zip(x) {
            mac(word(wa), xb, &mut acc[0]);
            mac(word(wb), xb, &mut acc[1]);
        }
    }
    if let (true, Some(xb)) = (!a.len().is_multiple_of(4), x.get(full)) {
        mac(tail_word(a, full), xb, &mut acc[0]);
        mac(tail_word(b, full), xb, &mut acc[1]);
    }
    [acc[0][0], acc[1][0]]
}

/// The sum of every halfword lane of `blocks` (the `x_sum` of [`dot_rows2`]).
#[inline(always)]
fn lane_sum<const L: usize>(blocks: &[[[u32; L]; 1]]) -> i32 {
    let mut sum = 0i32;
    for block in blocks {
        for &v in &block[0] {
            sum = smlad(v, 0x0001_0001, sum);
        }
    }
    sum
}

/// Two 8-bit weight rows (`n ≥ 1` whole words at `w` and at `w + stride`, any alignment) against
/// `n` blocks of `[u32; 2]` at `x` (word-aligned): each input block loaded once for both rows,
/// 11 instructions per 8 multiply-accumulates, two words per loop iteration.
///
/// # Safety
/// `w` and `w + stride` must be valid for `4n` bytes and `x` for `2n` words.
#[inline(always)]
unsafe fn dot2_w8(w: *const u8, stride: usize, x: *const u32, n: usize) -> [i32; 2] {
    let (mut a0, mut a1) = (0i32, 0i32);
    macro_rules! step {
        () => {
            concat!(
                "ldr {wb}, [{wp}, {st}]\n",
                "ldr {w}, [{wp}], #4\n",
                "ldrd {xa}, {xb}, [{xp}], #8\n",
                "sxtb16 {w0}, {w}\n",
                "sxtb16 {w}, {w}, ror #8\n",
                "smlad {a0}, {w0}, {xa}, {a0}\n",
                "smlad {a0}, {w}, {xb}, {a0}\n",
                "sxtb16 {w0}, {wb}\n",
                "sxtb16 {wb}, {wb}, ror #8\n",
                "smlad {a1}, {w0}, {xa}, {a1}\n",
                "smlad {a1}, {wb}, {xb}, {a1}\n",
            )
        };
    }
    // SAFETY: the caller's bounds (`2·(n/2) + n%2 = n` words of each row and blocks of `x`);
    // LDR of a weight word may be unaligned (Armv7-M), LDRD of the converted input is
    // word-aligned.
    unsafe {
        asm!(
            "lsrs {i}, {n}, #1",
            "beq 3f",
            "2:",
            step!(),
            step!(),
            "subs {i}, {i}, #1",
            "bne 2b",
            "3:",
            "tst {n}, #1",
            "beq 4f",
            step!(),
            "4:",
            wp = inout(reg) w => _,
            st = in(reg) stride,
            xp = inout(reg) x => _,
            n = in(reg) n,
            i = out(reg) _,
            w = out(reg) _,
            wb = out(reg) _,
            w0 = out(reg) _,
            xa = out(reg) _,
            xb = out(reg) _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            options(nostack, readonly),
        );
    }
    [a0, a1]
}

/// [`dot2_w8`] for 4-bit rows against blocks of `[u32; 4]`, each weight read in offset binary
/// (`EOR 0x88888888` makes nibble `w` the unsigned `w + 8`): the masks `0x000F000F` at shifts
/// 0, 4, 8 and 12 give the halfword pairs (0, 4), (1, 5), (2, 6), (3, 7) ready for SMLAD, no
/// sign extension; [`dot_rows2`] subtracts `8·Σx`. Unscaled sums. 22 instructions per 16
/// multiply-accumulates (the 8-bit kernel's rate, for half the weight bytes).
///
/// # Safety
/// `w` and `w + stride` must be valid for `4n` bytes and `x` for `4n` words.
#[inline(always)]
unsafe fn dot2_w4(w: *const u8, stride: usize, x: *const u32, n: usize) -> [i32; 2] {
    let (mut a0, mut a1) = (0i32, 0i32);
    // One row's word (in `w`) against the block: the converted input's lanes are (0, 4),
    // (2, 6), (1, 5), (3, 7) in xa..xd (`convert_block`).
    macro_rules! row {
        ($a:literal) => {
            concat!(
                "eor {w}, {w}, #0x88888888\n",
                "and {t}, {m}, {w}\n",
                "smlad {",
                $a,
                "}, {t}, {xa}, {",
                $a,
                "}\n",
                "and {t}, {m}, {w}, lsr #4\n",
                "smlad {",
                $a,
                "}, {t}, {xc}, {",
                $a,
                "}\n",
                "and {t}, {m}, {w}, lsr #8\n",
                "smlad {",
                $a,
                "}, {t}, {xb}, {",
                $a,
                "}\n",
                "and {t}, {m}, {w}, lsr #12\n",
                "smlad {",
                $a,
                "}, {t}, {xd}, {",
                $a,
                "}\n",
            )
        };
    }
    // SAFETY: the caller's bounds (`n` words of each row, `n` blocks of four words of `x`); LDR
    // of a weight word may be unaligned (Armv7-M), LDRD of the converted input is word-aligned.
    unsafe {
        asm!(
            "2:",
            "ldrd {xa}, {xb}, [{xp}], #8",
            "ldrd {xc}, {xd}, [{xp}], #8",
            "ldr {w}, [{wp}, {st}]",
            row!("a1"),
            "ldr {w}, [{wp}], #4",
            row!("a0"),
            "subs {i}, {i}, #1",
            "bne 2b",
            wp = inout(reg) w => _,
            st = in(reg) stride,
            xp = inout(reg) x => _,
            i = inout(reg) n => _,
            m = in(reg) 0x000F_000Fu32,
            w = out(reg) _,
            t = out(reg) _,
            xa = out(reg) _,
            xb = out(reg) _,
            xc = out(reg) _,
            xd = out(reg) _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            options(nostack, readonly),
        );
    }
    [a0, a1]
}

/// [`dot2_w4`] for 2-bit rows against blocks of `[u32; 8]`: `EOR 0xAAAAAAAA` makes crumb `w`
/// the unsigned `w + 2`; the mask `0x00030003` at shifts `2k` gives the pair (k, k + 8), whose
/// input is block word `2k` for `k < 4` and `2(k − 4) + 1` after (`convert_block`). Unsigned
/// sums; [`dot_rows2`] subtracts `2·Σx`. 40 instructions per 32 multiply-accumulates.
///
/// # Safety
/// `w` and `w + stride` must be valid for `4n` bytes and `x` for `8n` words.
#[inline(always)]
unsafe fn dot2_w2(w: *const u8, stride: usize, x: *const u32, n: usize) -> [i32; 2] {
    let (mut a0, mut a1) = (0i32, 0i32);
    // Block words 2j and 2j + 1 (loaded once) against crumb pairs j and j + 4 of both rows.
    macro_rules! pair {
        ($lo:literal, $hi:literal) => {
            concat!(
                "ldrd {xa}, {xb}, [{xp}], #8\n",
                "and {t}, {m}, {wa}, lsr #",
                $lo,
                "\n",
                "smlad {a0}, {t}, {xa}, {a0}\n",
                "and {t}, {m}, {wa}, lsr #",
                $hi,
                "\n",
                "smlad {a0}, {t}, {xb}, {a0}\n",
                "and {t}, {m}, {wb}, lsr #",
                $lo,
                "\n",
                "smlad {a1}, {t}, {xa}, {a1}\n",
                "and {t}, {m}, {wb}, lsr #",
                $hi,
                "\n",
                "smlad {a1}, {t}, {xb}, {a1}\n",
            )
        };
    }
    // SAFETY: the caller's bounds (`n` words of each row, `n` blocks of eight words of `x`); LDR
    // of a weight word may be unaligned (Armv7-M), LDRD of the converted input is word-aligned.
    unsafe {
        asm!(
            "2:",
            "ldr {wb}, [{wp}, {st}]",
            "ldr {wa}, [{wp}], #4",
            "eor {wa}, {wa}, #0xAAAAAAAA",
            "eor {wb}, {wb}, #0xAAAAAAAA",
            "ldrd {xa}, {xb}, [{xp}], #8",
            "and {t}, {m}, {wa}",
            "smlad {a0}, {t}, {xa}, {a0}",
            "and {t}, {m}, {wa}, lsr #8",
            "smlad {a0}, {t}, {xb}, {a0}",
            "and {t}, {m}, {wb}",
            "smlad {a1}, {t}, {xa}, {a1}",
            "and {t}, {m}, {wb}, lsr #8",
            "smlad {a1}, {t}, {xb}, {a1}",
            pair!("2", "10"),
            pair!("4", "12"),
            pair!("6", "14"),
            "subs {i}, {i}, #1",
            "bne 2b",
            wp = inout(reg) w => _,
            st = in(reg) stride,
            xp = inout(reg) x => _,
            i = inout(reg) n => _,
            m = in(reg) 0x0003_0003u32,
            wa = out(reg) _,
            wb = out(reg) _,
            t = out(reg) _,
            xa = out(reg) _,
            xb = out(reg) _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            options(nostack, readonly),
        );
    }
    [a0, a1]
}

/// [`dot`] of `n ≥ 1` whole 4-bit weight words with blocks of `[[u32; 4]; 4]` (laid out by
/// halves, [`slot`]; sums scaled by 16): four words per loop iteration, 131 instructions per
/// 128 multiply-accumulates (the `n mod 4` words first).
///
/// # Safety
/// `w` must be valid for `4n` bytes and `x` for `16n` words.
#[inline(always)]
unsafe fn dot4_w4(w: *const u8, x: *const u32, n: usize) -> [i32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    // One weight word against a block of `x` (its pairs at the given byte offsets from `xp`):
    // 32 multiply-accumulates.
    macro_rules! step {
        ($o0:literal, $o1:literal, $o2:literal, $o3:literal, $o4:literal, $o5:literal, $o6:literal, $o7:literal) => {
            concat!(
                "ldr {w}, [{wp}], #4\n",
                // Low nibbles, in the high half of each byte: lanes (0,4) and (2,6).
                "lsl {w0}, {w}, #4\n",
                "and {w0}, {w0}, #0xF0F0F0F0\n",
                "sxtb16 {w1}, {w0}, ror #8\n",
                "sxtb16 {w0}, {w0}\n",
                "ldrd {xa}, {xb}, [{xp}, #",
                $o0,
                "]\n",
                "smlad {a0}, {w0}, {xa}, {a0}\n",
                "smlad {a0}, {w1}, {xb}, {a0}\n",
                "ldrd {xa}, {xb}, [{xp}, #",
                $o2,
                "]\n",
                "smlad {a1}, {w0}, {xa}, {a1}\n",
                "smlad {a1}, {w1}, {xb}, {a1}\n",
                "ldrd {xa}, {xb}, [{xp}, #",
                $o4,
                "]\n",
                "smlad {a2}, {w0}, {xa}, {a2}\n",
                "smlad {a2}, {w1}, {xb}, {a2}\n",
                "ldrd {xa}, {xb}, [{xp}, #",
                $o6,
                "]\n",
                "smlad {a3}, {w0}, {xa}, {a3}\n",
                "smlad {a3}, {w1}, {xb}, {a3}\n",
                // High nibbles: lanes (1,5) and (3,7).
                "and {w}, {w}, #0xF0F0F0F0\n",
                "sxtb16 {w1}, {w}, ror #8\n",
                "sxtb16 {w0}, {w}\n",
                "ldrd {xa}, {xb}, [{xp}, #",
                $o1,
                "]\n",
                "smlad {a0}, {w0}, {xa}, {a0}\n",
                "smlad {a0}, {w1}, {xb}, {a0}\n",
                "ldrd {xa}, {xb}, [{xp}, #",
                $o3,
                "]\n",
                "smlad {a1}, {w0}, {xa}, {a1}\n",
                "smlad {a1}, {w1}, {xb}, {a1}\n",
                "ldrd {xa}, {xb}, [{xp}, #",
                $o5,
                "]\n",
                "smlad {a2}, {w0}, {xa}, {a2}\n",
                "smlad {a2}, {w1}, {xb}, {a2}\n",
                "ldrd {xa}, {xb}, [{xp}, #",
                $o7,
                "]\n",
                "smlad {a3}, {w0}, {xa}, {a3}\n",
                "smlad {a3}, {w1}, {xb}, {a3}\n",
            )
        };
    }
    // SAFETY: as in `dot4_w8`.
    unsafe {
        asm!(
            // One word if `n` is odd, two if `n & 2`, then four words per iteration.
            "tst {n}, #1",
            "beq 2f",
            step!("0", "32", "8", "40", "16", "48", "24", "56"),
            "add {xp}, {xp}, #64",
            "2:",
            "tst {n}, #2",
            "beq 3f",
            step!("0", "32", "8", "40", "16", "48", "24", "56"),
            step!("64", "96", "72", "104", "80", "112", "88", "120"),
            "add {xp}, {xp}, #128",
            "3:",
            "lsrs {n}, {n}, #2",
            "beq 5f",
            "4:",
            step!("0", "32", "8", "40", "16", "48", "24", "56"),
            step!("64", "96", "72", "104", "80", "112", "88", "120"),
            step!("128", "160", "136", "168", "144", "176", "152", "184"),
            step!("192", "224", "200", "232", "208", "240", "216", "248"),
            "add {xp}, {xp}, #256",
            "subs {n}, {n}, #1",
            "bne 4b",
            "5:",
            wp = inout(reg) w => _,
            xp = inout(reg) x => _,
            n = inout(reg) n => _,
            w = out(reg) _,
            w0 = out(reg) _,
            w1 = out(reg) _,
            xa = out(reg) _,
            xb = out(reg) _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            options(nostack, readonly),
        );
    }
    [a0, a1, a2, a3]
}

/// [`dot`] of `n ≥ 1` whole 2-bit weight words with blocks of `[[u32; 8]; 4]` (sums scaled by
/// 64): 67 instructions per 64 multiply-accumulates.
///
/// # Safety
/// `w` must be valid for `4n` bytes and `x` for `32n` words.
#[inline(always)]
unsafe fn dot4_w2(w: *const u8, x: *const u32, n: usize) -> [i32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    // One quarter of a word: crumb `j` of each byte (`shift = 6 − 2j`), lanes (j, 8+j) and
    // (4+j, 12+j) at byte offset `32j + 8p` of the block for pixel `p` ([`slot`]).
    macro_rules! quarter {
        ($shift:literal, $o0:literal, $o1:literal, $o2:literal, $o3:literal) => {
            concat!(
                "lsl {w0}, {w}, #", $shift, "\n",
                "and {w0}, {w0}, #0xC0C0C0C0\n",
                quarter!(@body $o0, $o1, $o2, $o3)
            )
        };
        (@last $o0:literal, $o1:literal, $o2:literal, $o3:literal) => {
            concat!("and {w0}, {w}, #0xC0C0C0C0\n", quarter!(@body $o0, $o1, $o2, $o3))
        };
        (@body $o0:literal, $o1:literal, $o2:literal, $o3:literal) => {
            concat!(
                "sxtb16 {w1}, {w0}, ror #8\n",
                "sxtb16 {w0}, {w0}\n",
                "ldrd {xa}, {xb}, [{xp}, #", $o0, "]\n",
                "smlad {a0}, {w0}, {xa}, {a0}\n",
                "smlad {a0}, {w1}, {xb}, {a0}\n",
                "ldrd {xa}, {xb}, [{xp}, #", $o1, "]\n",
                "smlad {a1}, {w0}, {xa}, {a1}\n",
                "smlad {a1}, {w1}, {xb}, {a1}\n",
                "ldrd {xa}, {xb}, [{xp}, #", $o2, "]\n",
                "smlad {a2}, {w0}, {xa}, {a2}\n",
                "smlad {a2}, {w1}, {xb}, {a2}\n",
                "ldrd {xa}, {xb}, [{xp}, #", $o3, "]\n",
                "smlad {a3}, {w0}, {xa}, {a3}\n",
                "smlad {a3}, {w1}, {xb}, {a3}\n",
            )
        };
    }
    // SAFETY: as in `dot4_w8`.
    unsafe {
        asm!(
            "2:",
            "ldr {w}, [{wp}], #4",
            quarter!("6", "0", "8", "16", "24"),
            quarter!("4", "32", "40", "48", "56"),
            quarter!("2", "64", "72", "80", "88"),
            quarter!(@last "96", "104", "112", "120"),
            "add {xp}, {xp}, #128",
            "subs {n}, {n}, #1",
            "bne 2b",
            wp = inout(reg) w => _,
            xp = inout(reg) x => _,
            n = inout(reg) n => _,
            w = out(reg) _,
            w0 = out(reg) _,
            w1 = out(reg) _,
            xa = out(reg) _,
            xb = out(reg) _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            options(nostack, readonly),
        );
    }
    [a0, a1, a2, a3]
}

// --- kernels ----------------------------------------------------------------------------------

/// Whether a convolution over `fmt` activations converts a 4-bit input straight from its rows
/// (whole words of 8 nibbles per tap), for `L` lane pairs per weight word.
/// (Never when the kernel set `K` leaves 4-bit activations out.)
fn aligned4<const K: u32>(g: &Window, fmt: ActFormat, lanes: usize) -> bool {
    has(K, linked::ACTS_4) && forms::aligned4(g, fmt.bits, lanes)
}

/// Conv2D, the bytes of [`reference::conv2d`], with its buffers (im2col, the requantization
/// table, one receptive field) in `scratch`, at least [`super::conv2d_scratch_bytes`]. Returns
/// the path that ran: the DSP path for every layer shape except rows of more than 65,792
/// weights at low widths (the portable kernel, see [`sums_fit`]) or too little scratch (the
/// reference).
pub fn conv2d<const K: u32>(
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
    let in_fmt = linked_input::<K>(in_fmt);
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let row_bytes = weight_bits.packed_len(k);
    let (words, _) = row_words(row_bytes, weight_bits);
    let l = lanes(weight_bits);
    let scale = scale_shift(l) + if aligned4::<K>(g, in_fmt, l) { 4 } else { 0 };
    if row_bytes == 0 || !sums_fit(k, weight_bits, in_fmt.bits, scale) {
        // Past 65,792 weights per row (`sums_fit`): the portable kernel, linked with LONG_ROWS
        // (the interpreter refuses a model with such a layer in a build without it).
        if has(K, linked::LONG_ROWS) {
            return portable::conv2d(g, layer, input, output, scratch);
        }
        return Path::Scalar;
    }
    let path = match weight_bits {
        Bits::B8 if has(K, linked::WEIGHTS_8) => {
            conv_impl::<2, K>(g, input, in_fmt, weights, row_bytes, words, rq, output, scratch)
        }
        Bits::B4 if has(K, linked::WEIGHTS_4) => {
            conv_impl::<4, K>(g, input, in_fmt, weights, row_bytes, words, rq, output, scratch)
        }
        Bits::B2 if has(K, linked::WEIGHTS_2) => {
            conv_impl::<8, K>(g, input, in_fmt, weights, row_bytes, words, rq, output, scratch)
        }
        _ => Path::Scalar,
    };
    if path == Path::Scalar {
        // Too little scratch, which the loader rules out for a model: the reference in the
        // default build; nothing at all in a narrowed one (the kernel set's promise is code size).
        if K == linked::ALL {
            reference::conv2d(g, layer, input, output);
        }
        return path;
    }
    reference::clear_tail(output, rq.out, g.out_h * g.out_w * g.out_c);
    path
}

/// [`conv2d`] for `L` lane pairs per weight word; [`Path::Scalar`] (nothing written) when
/// `scratch` is too small.
// The layer's fields one by one, not a `Layer`: read through a pointer, they were spilled
// around the row loop (more instructions per layer on the Cortex-M4).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn conv_impl<const L: usize, const K: u32>(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    weights: &[u8],
    row_bytes: usize,
    words: usize,
    rq: &Requant<'_>,
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let mut s = Scratch::new(scratch);
    // A band of input rows for channels that do not fill weight words
    // (`scratch::dsp_conv2d_band`), with room for a block's four receptive fields (whole weight words each: 4, 8 or 16 values) and a copy of the last
    // weight row.
    let band_bytes = scratch::dsp_conv2d_band(g, lane_bits(L), in_fmt.bits);
    let kp = k.next_multiple_of(2 * L);
    let bufs = (
        s.take::<[[u32; L]; PIX]>(words),
        s.take::<Rq32>(g.out_c),
        s.take::<u8>(if band_bytes > 0 { PIX * kp } else { k }),
        s.take::<u8>(band_bytes),
        s.take::<u8>(if band_bytes > 0 { 4 * words } else { 0 }),
    );
    let (Some(x), Some(fast), Some(col), Some(band), Some(last)) = bufs else {
        return Path::Scalar;
    };
    let x = &mut x[..];
    let npix = g.out_h * g.out_w;
    let (out_bits, scale) = (rq.out.bits, scale_shift(L));
    // An input whose channel count fills whole blocks is converted straight from its rows; a
    // 4-bit one (whole words of 8 nibbles) then gives `16·(a − z)` per lane, hence 4 more bits of
    // scale (still exact: `|16·(a − z)| ≤ 240`, see [`sums_fit`]).
    let aligned = in_fmt.bits == Bits::B8 && g.in_c.is_multiple_of(2 * L);
    let aligned4 = aligned4::<K>(g, in_fmt, L);
    let scale = scale + if aligned4 { 4 } else { 0 };
    // The fast epilogues: every channel's constants precomputed once per layer.
    let weight_bits = lane_bits(L);
    let bound = sum_bound(k, weight_bits, in_fmt.bits);
    let (col, mut band) = match band_bytes {
        0 => (col, None),
        _ => (&mut [][..], Some(Band::new::<L>(g, band, col, kp, words, in_fmt.zero_point as u8))),
    };
    let (lo, hi) = (rq.min, rq.max);
    let oc = g.out_c;
    // No clamp but the output range's ([`forms::unclamped_out`]): a 4-bit output goes through
    // `col` as bytes, then packed two to a byte ([`pack_nibbles`]). Either, with every channel
    // fast, takes the plain row loops, which read the one-instruction requantization
    // ([`Rq32::high_word`]) where a channel has it (only the plain paths' readers, `rows_plain`,
    // `plain_rows`, `rows_any` and the 4-bit output's, know the form).
    let unclamped_out = forms::unclamped_out(out_bits, (lo, hi), oc, col.len());
    let unclamped = unclamped_out && out_bits == Bits::B8;
    let unclamped4 = unclamped_out && out_bits == Bits::B4 && has(K, linked::ACTS_4);
    // 4- and 2-bit rows of the plain loops' forms ([`conv_high`]) whose sums fit at
    // [`high_scale`] read each weight in the top bits of its halfword lane, signed as it is
    // (two `AND`s per word half where an `AND` and two `SXTB16` took three): the table at that
    // scale, or, where a channel is not fast there, at the usual one.
    let unclamped_out = unclamped || unclamped4;
    // The offset-binary rows, where the kernel set links them (else the Rust rows below: the
    // same bytes); the table in the plain rows' one-`SMMLAR` form only for rows that read it.
    let offset_rows = L == 2 || has(K, linked::OFFSET_ROWS);
    let mut high =
        has(K, linked::HIGH_ROWS) && conv_high::<L>(k, words, bound, unclamped_out && band.is_none() && !aligned4, rq);
    let scale_held = if high { high_scale(L) } else { scale };
    let mut all_fast = Rq32::table(rq, 0, bound, scale_held, unclamped_out && (high || offset_rows), fast);
    if high && !all_fast {
        high = false;
        all_fast = Rq32::table(rq, 0, bound, scale, unclamped_out && offset_rows, fast);
    }
    // The sums of the Rust rows, at `scale`, shifted to the table's.
    let lift = if high { high_scale(L) - scale } else { 0 };
    let rows = high || offset_rows;
    let (plain, plain4) = (unclamped && all_fast && rows, unclamped4 && all_fast && rows);
    record_rows(match (L, plain || plain4, high) {
        (2, _, _) | (_, false, _) => 0,
        (_, true, true) => linked::HIGH_ROWS,
        (_, true, false) => linked::OFFSET_ROWS,
    });
    let last: &[u8] = if band.is_some() {
        if Band::folds::<L>(g) {
            // The band path takes the activations as they are and folds the zero point into
            // the bias: `Σ w·(a − z) = Σ w·a − z·Σw`, taps in the padding holding `z` itself.
            let z = in_fmt.zero_point;
            for (f, row) in fast.iter_mut().zip(weights.chunks_exact(row_bytes)) {
                let sum = if L == 2 { row_sum8(row) } else { row_sum_packed::<L>(row, k) };
                *f = f.with_bias_offset(-z * sum);
            }
        }
        // The last weight row, readable to its last whole word (see [`plain_rows`]).
        let end = g.out_c * row_bytes;
        match (last.get_mut(..row_bytes), weights.get(end.wrapping_sub(row_bytes)..end)) {
            (Some(d), Some(r)) => {
                d.copy_from_slice(r);
                last
            }
            _ => &[],
        }
    } else {
        &[]
    };
    let fast = &fast[..];
    let plan = PlainRows::new::<L, K>(weights, row_bytes, words, k, oc, last, high);
    // A pointwise layer (1×1, unpadded) over an 8-bit input and 8- or 4-bit weights, or over a
    // 4-bit input: a pixel's receptive field is its channels, converted where they lie
    // ([`pointwise_fields`]).
    let in_place = (aligned || aligned4)
        && (g.kernel_h, g.kernel_w, g.pad_top, g.pad_left) == (1, 1, 0, 0)
        && !x.is_empty()
        && k == 2 * L * x.len();
    // The general im2col ([`general_field`]), linked with `conv_general`, for the layers
    // [`scratch::dsp_conv_general`] names.
    let general = has(K, linked::CONV_GENERAL) && scratch::dsp_conv_general(g, lane_bits(L), in_fmt.bits);
    let mut q0 = 0;
    while q0 < npix {
        let n = (npix - q0).min(PIX);
        // A banded layer's pixels come from its band.
        let banded = band.as_mut();
        for p in 0..PIX {
            let q = q0 + p;
            if aligned || aligned4 {
                if p == 0 && in_place && n == PIX && pointwise_fields(g, input, in_fmt, q0, x) {
                    break;
                }
                if p < n {
                    im2col_aligned(g, input, in_fmt, q / g.out_w, q % g.out_w, x, p);
                } else {
                    for xb in x.iter_mut() {
                        put_lanes(xb, p, [0; L]);
                    }
                }
            } else if let Some(b) = banded {
                b.block(g, input, in_fmt.zero_point as u8, q0, n, x);
                break;
            } else if p >= n {
                for xb in x.iter_mut() {
                    put_lanes(xb, p, [0; L]);
                }
            } else if general {
                general_field::<L, K>(g, input, in_fmt, q, col, x, p);
            } else {
                // A layer outside the kernel set (the loader refuses such a model) or one the
                // decider misses: zeros, which kernel-check and the QEMU tests would see.
                for xb in x.iter_mut() {
                    put_lanes(xb, p, [0; L]);
                }
            }
        }
        if n == PIX && out_bits == Bits::B8 {
            let block = &mut output[q0 * oc..(q0 + PIX) * oc];
            if plain {
                plain_rows::<L>(plan, weights, row_bytes, words, x, fast, block, last);
            } else {
                let (o0, rest) = block.split_at_mut(oc);
                let (o1, rest) = rest.split_at_mut(oc);
                let (o2, o3) = rest.split_at_mut(oc);
                let outs = o0.iter_mut().zip(o1.iter_mut()).zip(o2.iter_mut()).zip(o3.iter_mut());
                for ((row, f), (((d0, d1), d2), d3)) in weights.chunks_exact(row_bytes).zip(fast).zip(outs) {
                    let a = dot4(row, x).map(|a| f.apply(a, lo, hi) as u8);
                    (*d0, *d1, *d2, *d3) = (a[0], a[1], a[2], a[3]);
                }
            }
        } else if plain4 && n == PIX {
            let bytes = &mut col[..PIX * oc];
            plain_rows::<L>(plan, weights, row_bytes, words, x, fast, bytes, last);
            if let Some(out) = output.get_mut(q0 * oc / 2..(q0 + PIX) * oc / 2) {
                pack_nibbles(bytes, out);
            }
        } else if has(K, linked::ACTS_4) && n == PIX && out_bits == Bits::B4 && oc.is_multiple_of(2) {
            // 4-bit output, an even channel count: two channels make a byte of each pixel.
            let rows = weights.chunks_exact(2 * row_bytes).zip(fast.chunks_exact(2));
            for (c2, (rows2, f2)) in rows.enumerate().take(oc / 2) {
                let (r0, r1) = rows2.split_at(row_bytes);
                // (`plain4` is false here: no entry is in the high-word form.)
                let v0 = dot4(r0, x).map(|a| f2[0].apply(a, lo, hi));
                let v1 = dot4(r1, x).map(|a| f2[1].apply(a, lo, hi));
                for p in 0..PIX {
                    output[((q0 + p) * oc) / 2 + c2] = (v0[p] as u8 & 0x0F) | ((v1[p] as u8) << 4);
                }
            }
        } else {
            rows_any(weights, row_bytes, x, fast, (lo, hi, out_bits), output, q0, n, lift);
        }
        q0 += n;
    }
    Path::Dsp
}

/// Bytes of 8-bit results into a 4-bit output, two to a byte (the first in the low nibble),
/// each saturated to `[−8, 7]`.
fn pack_nibbles(bytes: &[u8], out: &mut [u8]) {
    let nibble = |b: u8| (b as i8).clamp(-8, 7) as u8 & 0x0F;
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = nibble(pair[0]) | nibble(pair[1]) << 4;
    }
}

/// The receptive fields of the block of four pixels from `q0` of a pointwise layer
/// ([`conv_impl`]'s `in_place`: 1×1, unpadded, the `k` input channels whole blocks of `2L`
/// activations) into `x`, as [`im2col_aligned`] makes them, converted where they lie by
/// [`pointwise_w8`] or [`pointwise_w4`] (an 8-bit input) or [`convert4`] (a 4-bit input, any
/// weight width). (The general im2col's window arithmetic cost a layer of
/// 8 input channels more than its dot products.) False, nothing written, when a field is not
/// inside `input` (which the loader rules out).
#[inline(never)]
fn pointwise_fields<const L: usize>(
    g: &Window,
    input: &[u8],
    fmt: ActFormat,
    q0: usize,
    x: &mut [[[u32; L]; PIX]],
) -> bool {
    let (k, z) = (g.in_c, fmt.zero_point);
    let at = |p: usize| {
        let q = q0 + p;
        ((q / g.out_w) * g.stride_h * g.in_w + (q % g.out_w) * g.stride_w) * k
    };
    if fmt.bits == Bits::B4 {
        // Each pixel's channels are `k/2` whole bytes (`k` a multiple of 8, `aligned4`), whose
        // lanes [`convert4`] makes as the im2col does (16·(a − z)), without its walk over the
        // kernel's rows and padding: 240 instructions a pixel of 16 channels there, 40 here.
        for p in 0..PIX {
            let at = at(p);
            let Some(field) = input.get(at / 2..(at + k) / 2) else { return false };
            convert4(field, pair(16 * z, 16 * z), x.iter_mut(), p);
        }
        return true;
    }
    let mut fields = [input.as_ptr(); PIX];
    for (p, f) in fields.iter_mut().enumerate() {
        let at = at(p);
        match input.get(at..at + k) {
            Some(field) => *f = field.as_ptr(),
            None => return false,
        }
    }
    let (zz, xp) = (pair(z, z), x.as_mut_ptr() as *mut u32);
    // SAFETY: each field is `k` bytes of `input`; the caller's `k = 2L·x.len()`, `x.len() ≥ 1`
    // (for 2-bit weights, pixel `p`'s pairs start at word `slot(p, 0) = 2p` of each block).
    unsafe {
        if L == 2 {
            pointwise_w8(fields, zz, xp, x.len())
        } else if L == 4 {
            pointwise_w4(fields, zz, xp, x.len())
        } else {
            for (p, &f) in fields.iter().enumerate() {
                pointwise_w2(f, zz, xp.add(slot::<L, PIX>(p, 0)), x.len());
            }
        }
    };
    true
}

/// One pixel of [`pointwise_fields`] for 2-bit weights: per weight word, 16 activations as
/// [`convert_block`] makes them (four `PKHBT`/`PKHTB`, eight `SXTB16`, each minus `zz`), the
/// pixel's pairs of each quarter 32 bytes apart ([`slot`]), the next block 128 bytes on: 31
/// instructions per word, where the general im2col's Rust took about twice that (a 2-bit
/// pointwise layer over 32 channels cost 10% more than its 8-bit form).
///
/// # Safety
/// `words ≥ 1`; `field` readable for `16·words` bytes; `x + 32i + {0, 1, 8, 9, 16, 17, 24,
/// 25}` writable for `i < words` (word-aligned).
#[inline(always)]
unsafe fn pointwise_w2(field: *const u8, zz: u32, x: *mut u32, words: usize) {
    // SAFETY: the caller's bounds; LDR of the input may be unaligned (Armv7-M), STRD of `x` is
    // word-aligned.
    unsafe {
        asm!(
            "2:",
            "ldr {a}, [{s}], #4",
            "ldr {b}, [{s}], #4",
            "ldr {c}, [{s}], #4",
            "ldr {e}, [{s}], #4",
            // (0 1 8 9), (2 3 10 11), (4 5 12 13), (6 7 14 15).
            "pkhbt {t0}, {a}, {c}, lsl #16",
            "pkhtb {c}, {c}, {a}, asr #16",
            "pkhbt {t1}, {b}, {e}, lsl #16",
            "pkhtb {e}, {e}, {b}, asr #16",
            // (0, 8), (4, 12); (1, 9), (5, 13); (2, 10), (6, 14); (3, 11), (7, 15).
            "sxtb16 {a}, {t0}",
            "sxtb16 {b}, {t1}",
            "ssub16 {a}, {a}, {zz}",
            "ssub16 {b}, {b}, {zz}",
            "strd {a}, {b}, [{d}]",
            "sxtb16 {t0}, {t0}, ror #8",
            "sxtb16 {t1}, {t1}, ror #8",
            "ssub16 {t0}, {t0}, {zz}",
            "ssub16 {t1}, {t1}, {zz}",
            "strd {t0}, {t1}, [{d}, #32]",
            "sxtb16 {a}, {c}",
            "sxtb16 {b}, {e}",
            "ssub16 {a}, {a}, {zz}",
            "ssub16 {b}, {b}, {zz}",
            "strd {a}, {b}, [{d}, #64]",
            "sxtb16 {c}, {c}, ror #8",
            "sxtb16 {e}, {e}, ror #8",
            "ssub16 {c}, {c}, {zz}",
            "ssub16 {e}, {e}, {zz}",
            "strd {c}, {e}, [{d}, #96]",
            "adds {d}, {d}, #128",
            "subs {n}, {n}, #1",
            "bne 2b",
            s = inout(reg) field => _,
            d = inout(reg) x => _,
            n = inout(reg) words => _,
            zz = in(reg) zz,
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

/// The receptive fields of a block of four pixels of a pointwise layer, for 8-bit weights: pixel
/// `p`'s field is the `4·words` bytes at `fields[p]`, converted as [`convert_block`] does
/// (SXTB16 and SXTB16 ROR 8, each minus `zz`) into `x`, one block `[[u32; 2]; PIX]` per word:
/// 6 instructions per word of a pixel.
///
/// # Safety
/// `words ≥ 1`; `fields[p]` readable for `4·words` bytes; `x` writable for `8·words` words,
/// word-aligned.
#[inline(always)]
unsafe fn pointwise_w8(fields: [*const u8; PIX], zz: u32, x: *mut u32, words: usize) {
    macro_rules! pixel {
        ($s:literal, $d:literal) => {
            concat!(
                "ldr {t}, [",
                $s,
                "], #4\n",
                "sxtb16 {a}, {t}\n",
                "sxtb16 {t}, {t}, ror #8\n",
                "ssub16 {a}, {a}, {zz}\n",
                "ssub16 {t}, {t}, {zz}\n",
                "strd {a}, {t}, [{x}, #",
                $d,
                "]\n",
            )
        };
    }
    // SAFETY: the caller's bounds; LDR of the input may be unaligned (Armv7-M), STRD of `x` is
    // word-aligned.
    unsafe {
        asm!(
            "2:",
            pixel!("{s0}", "0"),
            pixel!("{s1}", "8"),
            pixel!("{s2}", "16"),
            pixel!("{s3}", "24"),
            "adds {x}, {x}, #32",
            "subs {n}, {n}, #1",
            "bne 2b",
            s0 = inout(reg) fields[0] => _,
            s1 = inout(reg) fields[1] => _,
            s2 = inout(reg) fields[2] => _,
            s3 = inout(reg) fields[3] => _,
            x = inout(reg) x => _,
            n = inout(reg) words => _,
            zz = in(reg) zz,
            t = out(reg) _,
            a = out(reg) _,
            options(nostack),
        );
    }
}

/// The assembly of one block of eight 8-bit activations at `$src` (advanced past them) as the
/// four lane pairs of a 4-bit weight word, `a − z` ((0, 4), (2, 6), (1, 5), (3, 7), as
/// [`convert_block`] makes them), the first two stored at `$dst + $ab`, the last two at
/// `$dst + $cd` (a pixel's two halves in a block, [`slot`]): the inner step of
/// [`im2col_inside_w4`] and [`pointwise_w4`]. Its operands are `{zz}` (the zero point twice) and
/// the scratch registers `{a}`, `{b}`, `{lo}` and `{hi}`.
#[rustfmt::skip]
macro_rules! w4_block_asm {
    ($src:literal, $dst:literal, $ab:literal, $cd:literal) => {
        concat!(
            "ldr {a}, [", $src, "], #4\n",
            "ldr {b}, [", $src, "], #4\n",
            "pkhbt {lo}, {a}, {b}, lsl #16\n",
            "pkhtb {hi}, {b}, {a}, asr #16\n",
            "sxtb16 {a}, {lo}\n",
            "sxtb16 {b}, {hi}\n",
            "sxtb16 {lo}, {lo}, ror #8\n",
            "sxtb16 {hi}, {hi}, ror #8\n",
            "ssub16 {a}, {a}, {zz}\n",
            "ssub16 {b}, {b}, {zz}\n",
            "ssub16 {lo}, {lo}, {zz}\n",
            "ssub16 {hi}, {hi}, {zz}\n",
            "strd {a}, {b}, [", $dst, ", #", $ab, "]\n",
            "strd {lo}, {hi}, [", $dst, ", #", $cd, "]\n",
        )
    };
}

/// [`pointwise_w8`] for 4-bit weights: a block of 8 activations per weight word and pixel,
/// converted as [`im2col_inside_w4`] does (lanes (0,4), (2,6), (1,5), (3,7), each minus `zz`),
/// into `x`, one block `[[u32; 4]; PIX]` per word: 14 instructions per word of a pixel.
///
/// # Safety
/// `words ≥ 1`; `fields[p]` readable for `8·words` bytes; `x` writable for `16·words` words,
/// word-aligned.
#[inline(always)]
unsafe fn pointwise_w4(fields: [*const u8; PIX], zz: u32, x: *mut u32, words: usize) {
    // SAFETY: the caller's bounds; LDR of the input may be unaligned (Armv7-M), STRD of `x` is
    // word-aligned.
    unsafe {
        asm!(
            "2:",
            w4_block_asm!("{s0}", "{x}", "0", "32"),
            w4_block_asm!("{s1}", "{x}", "8", "40"),
            w4_block_asm!("{s2}", "{x}", "16", "48"),
            w4_block_asm!("{s3}", "{x}", "24", "56"),
            "adds {x}, {x}, #64",
            "subs {n}, {n}, #1",
            "bne 2b",
            s0 = inout(reg) fields[0] => _,
            s1 = inout(reg) fields[1] => _,
            s2 = inout(reg) fields[2] => _,
            s3 = inout(reg) fields[3] => _,
            x = inout(reg) x => _,
            n = inout(reg) words => _,
            zz = in(reg) zz,
            a = out(reg) _,
            b = out(reg) _,
            lo = out(reg) _,
            hi = out(reg) _,
            options(nostack),
        );
    }
}

/// The im2col of a layer whose channels do not fill weight words (an 8-bit input: a first
/// layer of 1–3 channels, 8 channels under 2-bit weights, 12 under 4-bit ones;
/// [`scratch::dsp_conv2d_band`]). The band holds the `kh` input rows of one output row, padded
/// with the zero point, from the first window's left edge to the last one's right edge, so
/// that every pixel's receptive field is `kh` runs of `kw·in_c ≥ 4` bytes at fixed offsets:
/// [`gather_runs`] copies them into the pixel's field a word at a time, and [`convert4_w8`]
/// turns the block's four fields into lane pairs, SXTB16 only (the convolution folds the zero
/// point into the bias; 2-bit weights' lanes are `a − z`, [`pointwise_w2`]). [`gather`] and
/// [`convert`] spent most of such a layer's time on its short rows (a copy, two fills and the
/// bounds of each per kernel row, and a zero-point tail per pixel): resnet8's first layer took
/// 2.9 instructions per multiply-accumulate, mnist8's 5.4; a 2-bit 3×3 layer over 8 channels
/// of a 4×4 map (the zoo's tiny-unet) 1.89 against 1.45 at 8 bits, now 1.57.
struct Band<'a> {
    buf: &'a mut [u8],
    /// The output row whose input rows `buf` holds (`usize::MAX`: none yet).
    row: usize,
    /// The block's four receptive fields, `kp` bytes each.
    cols: &'a mut [u8],
    kp: usize,
    /// A block of [`PIX`] pixels inside one output row is one [`gather_runs`] and one
    /// [`convert4_w8`] with no bounds to test: every such block's runs lie inside `buf` and its
    /// fields inside `cols` (checked once, in [`Band::new`]), 8-bit weights, the zero point
    /// folded.
    whole_blocks: bool,
    /// Weight words per row: lane-pair blocks per pixel.
    words: usize,
    shape: Shape,
    /// One channel at unit stride with runs of 4–8 bytes: a block's fields by
    /// [`gather_runs_c1`].
    one_byte_step: bool,
}

/// A [`Band`]'s geometry in bytes: from one pixel's runs to the next pixel's (`step`), from one
/// kernel row's run to the next (`stride`, a band row), a run's length and the runs per pixel.
#[derive(Clone, Copy)]
struct Shape {
    step: usize,
    stride: usize,
    run: usize,
    kh: usize,
}

impl<'a> Band<'a> {
    /// `buf` the band ([`scratch::dsp_conv2d_band`] bytes), set to the zero point `zb` here
    /// (the padding left and right of the input stays so); `cols` four fields of `kp` bytes
    /// (`k` up to whole blocks), whose bytes past the receptive field's `k` are set to 0, or to
    /// `zb` where the lanes are `a − z` (they meet a weight row's last word, which may hold
    /// the next row's first weights).
    fn new<const L: usize>(
        g: &Window,
        buf: &'a mut [u8],
        cols: &'a mut [u8],
        kp: usize,
        words: usize,
        zb: u8,
    ) -> Band<'a> {
        let k = g.kernel_h * g.kernel_w * g.in_c;
        buf.fill(zb);
        let fold = Self::folds::<L>(g);
        let past_k = if fold { 0 } else { zb };
        for col in cols.chunks_exact_mut(kp.max(1)) {
            col.get_mut(k..).unwrap_or_default().fill(past_k);
        }
        let (run, kh) = (g.kernel_w * g.in_c, g.kernel_h);
        let stride = buf.len() / kh.max(1);
        let span = kh.saturating_sub(1) * stride + run;
        // The last block of a row ends at the row's last pixel: its runs end at
        // `(out_w − 1)·step + span`.
        let end = (g.out_w.max(1) - 1) * g.stride_w * g.in_c + span;
        let whole_blocks = L == 2
            && fold
            && g.out_w >= PIX
            && run >= 4
            && kh >= 1
            && end <= buf.len()
            && PIX * kp <= cols.len()
            && kh * run <= kp
            && words >= 1
            && 4 * words <= kp;
        let shape = Shape { step: g.stride_w * g.in_c, stride, run, kh };
        let one_byte_step = shape.step == 1 && run <= 8;
        Band { buf, row: usize::MAX, cols, kp, words, whole_blocks, shape, one_byte_step }
    }

    /// Whether the lanes are the raw activations, the zero point folded into the bias by the
    /// convolution (`Σ w·(a − z) = Σ w·a − z·Σw`), when a row's `Σ w` (about 5 instructions a
    /// weight word of 8-bit weights, 11 of 4-bit ones, once per layer and channel) costs less
    /// than subtracting `z` from every lane (5 or 12 more a weight word, per block of pixels):
    /// 8- and 4-bit weights with fewer channels than blocks of pixels (first layers). Else the
    /// lanes are `a − z` (LeNet's second layer, 16 channels over 4 blocks, +7% for its sums;
    /// 2-bit rows' sums cost 24 a word).
    // Asked where needed rather than kept in the band: a field more cost resnet8's aligned
    // layers 6 instructions a block of pixels in the convolution's loop.
    fn folds<const L: usize>(g: &Window) -> bool {
        L != 8 && g.out_c < (g.out_h * g.out_w).div_ceil(PIX)
    }

    /// The lane pairs `x` (8-bit weights: two words per pixel and weight word) of pixels
    /// `q0..q0 + n`; those of pixels past `n` are whatever the fields held (a partial block
    /// writes only its `n` outputs). A whole block inside one output row is taken here, inline
    /// in the convolution's loop, the rest by [`Band::im2col`].
    #[inline(always)]
    fn block<const L: usize>(
        &mut self,
        g: &Window,
        input: &[u8],
        zb: u8,
        q0: usize,
        n: usize,
        x: &mut [[[u32; L]; PIX]],
    ) {
        let Shape { step, stride, run, kh } = self.shape;
        let (oy, ox) = (q0 / g.out_w.max(1), q0 % g.out_w.max(1));
        if !(self.whole_blocks && n == PIX && ox + PIX <= g.out_w && x.len() >= self.words) {
            return self.im2col(g, input, zb, q0, n, x);
        }
        if oy != self.row {
            fill_band(self.buf, g, input, zb, oy);
            self.row = oy;
        }
        let (src, dst) = (self.buf.as_ptr().wrapping_add(ox * step), self.cols.as_mut_ptr());
        // SAFETY: pixel `i < PIX` reads the runs `(ox + i)·step + ky·stride + [0, run)`, `ky <
        // kh`, the last ending at `(ox + PIX − 1)·step + span ≤ (out_w − 1)·step + span ≤
        // buf.len()` (`whole_blocks`), and writes `i·kp + [0, kh·run)` inside `cols`
        // (`PIX·kp ≤ cols.len()`, `kh·run ≤ kp`); `run ≥ 4`, `kh ≥ 1`. Then `self.words` words of
        // each field (`4·words ≤ kp`, `words ≥ 1`) into the first `words` blocks of `x`, two
        // words per pixel (`L = 2`).
        unsafe {
            if self.one_byte_step {
                gather_runs_c1(src, stride, dst, self.kp, run, kh);
            } else {
                gather_runs(src, step, stride, dst, self.kp, run, kh, PIX);
            }
            convert4_w8(self.cols.as_ptr(), self.kp, x.as_mut_ptr() as *mut u32, self.words);
        }
    }

    /// [`Band::block`] for the blocks it does not take itself.
    #[inline(never)]
    fn im2col<const L: usize>(
        &mut self,
        g: &Window,
        input: &[u8],
        zb: u8,
        q0: usize,
        n: usize,
        x: &mut [[[u32; L]; PIX]],
    ) {
        let (c, kh, kp) = (g.in_c, g.kernel_h, self.kp);
        let run = g.kernel_w * c;
        let stride = self.buf.len() / kh.max(1);
        let span = kh.saturating_sub(1) * stride + run;
        let (mut oy, mut ox) = (q0 / g.out_w.max(1), q0 % g.out_w.max(1));
        if g.out_w == 0 {
            return;
        }
        let step = g.stride_w * c;
        // The pixels of the block in the band's output row, then those of the next (a block
        // spans rows when the output is narrow).
        let mut p = 0;
        while p < n.min(PIX) {
            if oy != self.row {
                fill_band(self.buf, g, input, zb, oy);
                self.row = oy;
            }
            let m = (n.min(PIX) - p).min(g.out_w - ox);
            let origin = ox * step;
            let src = self.buf.get(origin..origin + (m - 1) * step + span);
            let dst = self.cols.get_mut(p * kp..(p + m - 1) * kp + kh * run);
            if let (Some(src), Some(dst), true) = (src, dst, run >= 4 && kh >= 1 && m >= 1) {
                // SAFETY: pixel `i < m` reads the runs `i·step + ky·stride + [0, run)`, `ky < kh`,
                // inside `src` (`(m − 1)·step + span` bytes), and writes `i·kp + [0, kh·run)`
                // inside `dst`; `run ≥ 4`, `kh ≥ 1`, `m ≥ 1`.
                unsafe { gather_runs(src.as_ptr(), step, stride, dst.as_mut_ptr(), kp, run, kh, m) };
            }
            p += m;
            ox += m;
            if ox == g.out_w {
                (oy, ox) = (oy + 1, 0);
            }
        }
        let words = x.len();
        // `Band::new` sized `kp = 2L·words` bytes per field and `cols` for four of them.
        if words == 0 || 2 * L * words > kp || self.cols.len() < PIX * kp {
            return;
        }
        let (cols, xp) = (self.cols.as_ptr(), x.as_mut_ptr() as *mut u32);
        let fields: [*const u8; PIX] = core::array::from_fn(|p| cols.wrapping_add(p * kp));
        let z = zb as i8 as i32;
        // SAFETY: field `p < PIX` is the `kp ≥ 2L·words` bytes at `cols + p·kp` (inside
        // `cols`); `x` holds `words` blocks of `L·PIX` words, pixel `p`'s pairs of a 2-bit
        // block from word `slot(p, 0)`.
        unsafe {
            match (L, Self::folds::<L>(g)) {
                (2, true) => convert4_w8(cols, kp, xp, words),
                (2, false) => pointwise_w8(fields, pair(z, z), xp, words),
                (4, true) => convert4_w4(cols, kp, xp, words),
                (4, false) => pointwise_w4(fields, pair(z, z), xp, words),
                _ => {
                    for (p, &f) in fields.iter().enumerate() {
                        pointwise_w2(f, pair(z, z), xp.add(slot::<L, PIX>(p, 0)), words);
                    }
                }
            }
        }
    }
}

/// `Σ w` of a row of 8-bit weights, a word at a time (SXTB16, SMLAD against `(1, 1)`).
fn row_sum8(row: &[u8]) -> i32 {
    let mut words = row.chunks_exact(4);
    let mut s = 0;
    for w in words.by_ref() {
        let w = word(w);
        s = smlad(sxtb16(w), 0x0001_0001, smlad(sxtb16_ror8(w), 0x0001_0001, s));
    }
    for &b in words.remainder() {
        s += b as i8 as i32;
    }
    s
}

/// The depthwise kernel's weights of four channels (`rows`, `B`-bit) per tap as its SXTB16
/// lanes, `(w0, w2)` and `(w1, w3)`, into `wt` (one entry per tap); returns each channel's `Σ w`.
#[inline(always)]
fn dw_weights<const B: u8>(rows: [&[u8]; 4], wt: &mut [[u32; 2]]) -> [i32; 4] {
    let bits = Bits::from_width(B as u32);
    let mut sums = [0i32; 4];
    for (t, slot) in wt.iter_mut().enumerate() {
        let w = rows.map(|r| load(r, bits, t));
        for (s, v) in sums.iter_mut().zip(w) {
            *s += v;
        }
        *slot = [pair(w[0], w[2]), pair(w[1], w[3])];
    }
    sums
}

/// One `asm!` block over a depthwise group's four weight rows (`$rows`, pointers, in r0–r3),
/// writing the pairs of words of `$wt` (r4) from `$taps` (r5) taps; the lanes' sums start at 0
/// in r8 (`(w0, w2)`) and r9 (`(w1, w3)`) and are returned; r10–r12 and lr are free. The caller
/// states the bounds (`unsafe`).
macro_rules! dw_rows_asm {
    ($rows:expr, $wt:expr, $taps:expr; $($body:expr),+ $(,)?) => {{
        let (rows, mut s02, mut s13): ([*const u8; 4], u32, u32) = ($rows, 0, 0);
        asm!(
            $($body),+,
            inout("r0") rows[0] => _,
            inout("r1") rows[1] => _,
            inout("r2") rows[2] => _,
            inout("r3") rows[3] => _,
            inout("r4") $wt.as_mut_ptr() => _,
            inout("r5") $taps => _,
            inout("r8") s02,
            inout("r9") s13,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
            options(nostack),
        );
        (s02, s13)
    }};
}

/// The next byte of each of a depthwise group's four rows (r0–r3, `$post` their post-increment,
/// `", #1"`, or nothing): rows 0 and 2 into bytes 0 and 2 of r12, rows 1 and 3 into those of lr
/// (r10 scratch), for [`dw_weights4_asm`] and [`dw_weights2_asm`].
macro_rules! dw_row_bytes {
    ($post:literal) => {
        concat!(
            "ldrb r12, [r0]",
            $post,
            "\n",
            "ldrb r10, [r2]",
            $post,
            "\n",
            "orr r12, r12, r10, lsl #16\n",
            "ldrb lr, [r1]",
            $post,
            "\n",
            "ldrb r10, [r3]",
            $post,
            "\n",
            "orr lr, lr, r10, lsl #16\n",
        )
    };
}

/// [`dw_weights`] for 8-bit rows with no bounds check per weight and the sums in halfword lanes
/// (SADD16 of the pairs as they are made: exact, `|Σ w| ≤ 128·taps < 2^15` for the at most 255
/// taps taken here; longer rows go through [`dw_weights`]). The four sums one by one cost a
/// MobileNet's 6×6 depthwise layers 45 instructions a channel (stored and reloaded per tap).
#[inline(always)]
fn dw_weights8(rows: [&[u8]; 4], wt: &mut [[u32; 2]]) -> [i32; 4] {
    let taps = wt.len();
    let (Some(r0), Some(r1), Some(r2), Some(r3), true) =
        (rows[0].get(..taps), rows[1].get(..taps), rows[2].get(..taps), rows[3].get(..taps), (1..=255).contains(&taps))
    else {
        return dw_weights::<8>(rows, wt);
    };
    // SAFETY: each row holds `taps ≥ 1` bytes, read one per tap; `wt` holds `taps` pairs of
    // words, written one pair per tap. Per tap: the four rows' bytes sign-extended, paired as
    // `(b0, b2)` and `(b1, b3)` (`PKHBT`), stored with one `STRD` and summed in halfword lanes:
    // 11 instructions, and about 10 for the group, where the Rust took 12 and about 45 (its
    // four row pointers spilled and rebuilt per group).
    let (s02, s13) = unsafe {
        dw_rows_asm!(
            [r0.as_ptr(), r1.as_ptr(), r2.as_ptr(), r3.as_ptr()], wt, taps;
            "2:",
            "ldrsb r10, [r0], #1",
            "ldrsb r12, [r2], #1",
            "pkhbt r10, r10, r12, lsl #16",
            "ldrsb r11, [r1], #1",
            "ldrsb r12, [r3], #1",
            "pkhbt r11, r11, r12, lsl #16",
            "strd r10, r11, [r4], #8",
            "sadd16 r8, r8, r10",
            "sadd16 r9, r9, r11",
            "subs r5, r5, #1",
            "bne 2b",
        )
    };
    [s02 as i16 as i32, s13 as i16 as i32, s02 as i32 >> 16, s13 as i32 >> 16]
}

/// [`dw_weights`] for 4- and 2-bit rows, a byte (two or four taps) of each row at a time and no
/// bounds check per weight, in assembly ([`dw_weights4_asm`], [`dw_weights2_asm`]), each weight
/// as `16·w` or `64·w`: the layer's sums come out scaled by 16 or 64, which its requantization
/// takes ([`dw_scale`]). The sums returned are `Σ w`, unscaled, made in halfword lanes (exact,
/// `|Σ 16·w|, |Σ 64·w| ≤ 128·taps < 2^15` for the at most 255 taps taken here; longer rows go
/// through [`dw_weights`], unscaled, with the table). 4 bits: offset binary with the zero point
/// taken back (`SSUB16`) took 2 instructions a tap more (the zoo's mcunet, whose 7×7 depthwise
/// layers have 4-bit weights in HAWQ's bits). 2 bits: the Rust loop before the assembly (offset
/// binary, `SSUB16` per crumb pair, the rows' pointers spilled per group) took about 17
/// instructions a tap against 11 at 8 bits (mobilenet-v3-small's 2-bit 5×5 layer 6% dearer
/// than its 8-bit form).
#[inline(always)]
fn dw_weights_narrow<const B: u8>(rows: [&[u8]; 4], wt: &mut [[u32; 2]]) -> [i32; 4] {
    let taps = wt.len();
    let bytes = (taps * B as usize).div_ceil(8);
    let (Some(r0), Some(r1), Some(r2), Some(r3), true) = (
        rows[0].get(..bytes),
        rows[1].get(..bytes),
        rows[2].get(..bytes),
        rows[3].get(..bytes),
        B != 8 && (1..=DW_SCALED_TAPS).contains(&taps),
    ) else {
        return dw_weights::<B>(rows, wt);
    };
    let rows = [r0.as_ptr(), r1.as_ptr(), r2.as_ptr(), r3.as_ptr()];
    // SAFETY: each row holds `⌈taps·B/8⌉` bytes and `wt` `taps` pairs of words (word-aligned).
    let (s02, s13) = unsafe {
        if B == 4 {
            dw_weights4_asm(rows, wt, taps)
        } else {
            dw_weights2_asm(rows, wt, taps)
        }
    };
    let sh = if B == 4 { 4 } else { 6 };
    [s02 as i16 as i32 >> sh, s13 as i16 as i32 >> sh, s02 as i32 >> (16 + sh), s13 as i32 >> (16 + sh)]
}

/// [`dw_weights_narrow`]'s loop for 4-bit rows: per byte of each row (two taps), `(b0, b2)` and `(b1, b3)` in one word
/// each, their low nibbles as `16·w` (`LSL #4`, `SXTB16`) and their high ones (`AND 0x00F000F0`,
/// `SXTB16`) stored with one `STM` and summed in halfword lanes; an odd last tap takes its byte's
/// low nibbles. 21 instructions per two taps and about 15 for the group: the Rust took 25 and
/// about 60 (four row pointers spilled and rebuilt per group, the odd tap's bytes read through
/// them), so that a 4-bit group of a 3×3 layer cost 44 instructions more than an 8-bit one.
/// Returns the lanes' sums `(Σ 16·w0, Σ 16·w2)` and `(Σ 16·w1, Σ 16·w3)`.
///
/// # Safety
/// Each of `rows` must be readable for `⌈wt.len()/2⌉` bytes.
#[inline(always)]
unsafe fn dw_weights4_asm(rows: [*const u8; 4], wt: &mut [[u32; 2]], taps: usize) -> (u32, u32) {
    // SAFETY: the caller's bounds: `⌈taps/2⌉` bytes read from each row (one per pair of taps, one
    // for an odd last tap), `taps` pairs of words written to `wt`, word-aligned for `STM`.
    unsafe {
        dw_rows_asm!(
            rows, wt, taps;
            "subs r5, r5, #2",
            "blo 3f",
            "2:",
            dw_row_bytes!(", #1"),
            "lsl r10, r12, #4",
            "sxtb16 r10, r10",
            "lsl r11, lr, #4",
            "sxtb16 r11, r11",
            "and r12, r12, #0x00F000F0",
            "sxtb16 r12, r12",
            "and lr, lr, #0x00F000F0",
            "sxtb16 lr, lr",
            "stm r4!, {{r10, r11, r12, lr}}",
            "sadd16 r8, r8, r10",
            "sadd16 r9, r9, r11",
            "sadd16 r8, r8, r12",
            "sadd16 r9, r9, lr",
            "subs r5, r5, #2",
            "bhs 2b",
            "3:",
            // r5 is now `taps mod 2 − 2`.
            "adds r5, r5, #2",
            "beq 4f",
            dw_row_bytes!(""),
            "lsl r10, r12, #4",
            "sxtb16 r10, r10",
            "lsl r11, lr, #4",
            "sxtb16 r11, r11",
            "strd r10, r11, [r4]",
            "sadd16 r8, r8, r10",
            "sadd16 r9, r9, r11",
            "4:",
        )
    }
}

/// The longest 4- and 2-bit rows [`dw_weights_narrow`] takes, their weights as
/// `16·w` and `64·w` (halfword sums of at most `128·taps` in magnitude).
const DW_SCALED_TAPS: usize = 255;

/// log2 of the scale of a depthwise layer's sums over `taps` taps of `bits`-bit weights as
/// [`dw_pass_tables`] lays them out: 16 and 64 for the 4- and 2-bit rows [`dw_weights_narrow`]
/// takes.
#[inline(always)]
fn dw_scale(bits: Bits, taps: usize) -> u32 {
    match bits {
        Bits::B4 if taps <= DW_SCALED_TAPS => 4,
        Bits::B2 if taps <= DW_SCALED_TAPS => 6,
        _ => 0,
    }
}

/// The tables of 2-bit rows in assembly: per byte of the four rows (four taps), rows 0 and 2
/// and rows 1 and 3 in the bytes 0 and 2 of one register each (two `LDRB`s and an `ORR`); crumb
/// `f` shifted to the top of its byte (`LSL #(6 − 2f)`), masked (`AND 0x00C000C0`) and
/// sign-extended (`SXTB16`): `(64·w0, 64·w2)` and `(64·w1, 64·w3)`, stored with one `STRD` and
/// summed in halfword lanes. 42 instructions per four taps; a last partial byte takes its taps a
/// crumb at a time (`LSR #2` between them). Returns the lanes' sums `(Σ 64·w0, Σ 64·w2)` and
/// `(Σ 64·w1, Σ 64·w3)`.
///
/// # Safety
/// Each of `rows` must be readable for `⌈wt.len()/4⌉` bytes.
#[inline(always)]
unsafe fn dw_weights2_asm(rows: [*const u8; 4], wt: &mut [[u32; 2]], taps: usize) -> (u32, u32) {
    // One crumb of rows 0 and 2 (r12) and 1 and 3 (lr), shifted left by `$shl` to the top of
    // its byte (`top`: there already).
    macro_rules! crumb {
        ($shl:literal) => {
            concat!("lsl r10, r12, #", $shl, "\n", "lsl r11, lr, #", $shl, "\n", crumb!(@masked "r10", "r11"))
        };
        (top) => {
            crumb!(@masked "r12", "lr")
        };
        (@masked $a:literal, $b:literal) => {
            concat!(
                "and r10, ",
                $a,
                ", #0x00C000C0\n",
                "sxtb16 r10, r10\n",
                "and r11, ",
                $b,
                ", #0x00C000C0\n",
                "sxtb16 r11, r11\n",
                "strd r10, r11, [r4], #8\n",
                "sadd16 r8, r8, r10\n",
                "sadd16 r9, r9, r11\n",
            )
        };
    }
    // SAFETY: the caller's bounds: `⌈taps/4⌉` bytes read from each row (one per four taps, one
    // for a last partial byte), `taps` pairs of words written to `wt`, word-aligned for `STRD`.
    unsafe {
        dw_rows_asm!(
            rows, wt, taps;
            "subs r5, r5, #4",
            "blo 3f",
            "2:",
            dw_row_bytes!(", #1"),
            crumb!("6"),
            crumb!("4"),
            crumb!("2"),
            crumb!(top),
            "subs r5, r5, #4",
            "bhs 2b",
            "3:",
            // r5 is now `taps mod 4 − 4`.
            "adds r5, r5, #4",
            "beq 5f",
            dw_row_bytes!(""),
            "4:",
            crumb!("6"),
            "lsr r12, r12, #2",
            "lsr lr, lr, #2",
            "subs r5, r5, #1",
            "bne 4b",
            "5:",
        )
    }
}

/// `Σ w` of the first `k` weights of a 4- or 2-bit row: its whole words through [`mac`]
/// against lanes of ones (sums scaled by 16 or 64, each term a multiple), the rest one by one
/// (a last byte's unused nibble or crumbs are left out).
fn row_sum_packed<const L: usize>(row: &[u8], k: usize) -> i32 {
    let per = 2 * L;
    let full = (k / per).min(row.len() / 4);
    let ones = [[0x0001_0001u32; L]; 1];
    let mut acc = [0i32; 1];
    for wb in row.chunks_exact(4).take(full) {
        mac::<L, 1>(word(wb), &ones, &mut acc);
    }
    let mut s = acc[0] >> scale_shift(L);
    for i in full * per..k {
        s += load(row, lane_bits(L), i);
    }
    s
}

/// Fills `band` with the input rows output row `oy` reads (those outside the input with `zb`),
/// each at the windows' left edge plus the left padding; the padding around them holds `zb`
/// since [`Band::new`].
#[inline(never)]
fn fill_band(band: &mut [u8], g: &Window, input: &[u8], zb: u8, oy: usize) {
    let c = g.in_c;
    let stride = band.len() / g.kernel_h.max(1);
    let (lead, in_row) = ((g.pad_left * c).min(stride), g.in_w * c);
    let n = in_row.min(stride - lead);
    for (ky, dst) in band.chunks_exact_mut(stride.max(1)).enumerate() {
        let y = (oy * g.stride_h + ky).wrapping_sub(g.pad_top);
        let dst = &mut dst[lead..lead + n];
        match input.get(y.wrapping_mul(in_row)..).filter(|_| y < g.in_h).and_then(|r| r.get(..n)) {
            // SAFETY: `n ≥ 4` bytes of the input row and of the band row.
            Some(src) if n >= 4 => unsafe { gather_runs(src.as_ptr(), 0, 0, dst.as_mut_ptr(), 0, n, 1, 1) },
            Some(src) => dst.copy_from_slice(src),
            None => dst.fill(zb),
        }
    }
}

/// The receptive fields of `m` pixels: for pixel `i < m`, copies `kh` runs of `run ≥ 4` bytes
/// at `src + i·step + ky·stride` to `dst + i·kp + ky·run`, a word at a time, the last word of a
/// run ending at its end (overlapping the one before it); runs of at most 8 or 12 bytes take no
/// inner loop (8 or 10 instructions a run, 5 more a pixel).
///
/// # Safety
/// Those runs must be readable at `src` and writable at `dst`; `run ≥ 4`, `kh ≥ 1`, `m ≥ 1`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
unsafe fn gather_runs(
    src: *const u8,
    step: usize,
    stride: usize,
    dst: *mut u8,
    kp: usize,
    run: usize,
    kh: usize,
    m: usize,
) {
    // From a pixel's end (its last run's start plus `stride`, `run`) to the next one's start.
    let ds = step.wrapping_sub(kh.wrapping_mul(stride));
    let dd = kp.wrapping_sub(kh.wrapping_mul(run));
    // SAFETY: every access is a word at `[0, run − 4]` of a run (the caller's bounds); LDR and
    // STR may be unaligned on Armv7-M.
    unsafe {
        asm!(
            "cmp {run}, #8",
            "bhi 10f",
            // Up to 8 bytes: the words at 0 and run − 4.
            "2:",
            "mov {n}, {kh}",
            "3:",
            "ldr {t}, [{s}]",
            "str {t}, [{d}]",
            "ldr {t}, [{s}, {last}]",
            "str {t}, [{d}, {last}]",
            "add {s}, {s}, {stride}",
            "add {d}, {d}, {run}",
            "subs {n}, {n}, #1",
            "bne 3b",
            "add {s}, {s}, {ds}",
            "add {d}, {d}, {dd}",
            "subs {m}, {m}, #1",
            "bne 2b",
            "b 9f",
            "10:",
            "cmp {run}, #12",
            "bhi 6f",
            // Up to 12 bytes: the words at 0, 4 and run − 4.
            "4:",
            "mov {n}, {kh}",
            "5:",
            "ldr {t}, [{s}]",
            "str {t}, [{d}]",
            "ldr {t}, [{s}, #4]",
            "str {t}, [{d}, #4]",
            "ldr {t}, [{s}, {last}]",
            "str {t}, [{d}, {last}]",
            "add {s}, {s}, {stride}",
            "add {d}, {d}, {run}",
            "subs {n}, {n}, #1",
            "bne 5b",
            "add {s}, {s}, {ds}",
            "add {d}, {d}, {dd}",
            "subs {m}, {m}, #1",
            "bne 4b",
            "b 9f",
            // Longer: the words at 0, 4, … below run − 4, then run − 4.
            "6:",
            "mov {n}, {kh}",
            "7:",
            "movs {t}, #0",
            "8:",
            "ldr {ds2}, [{s}, {t}]",
            "str {ds2}, [{d}, {t}]",
            "adds {t}, {t}, #4",
            "cmp {t}, {last}",
            "blt 8b",
            "ldr {t}, [{s}, {last}]",
            "str {t}, [{d}, {last}]",
            "add {s}, {s}, {stride}",
            "add {d}, {d}, {run}",
            "subs {n}, {n}, #1",
            "bne 7b",
            "add {s}, {s}, {ds}",
            "add {d}, {d}, {dd}",
            "subs {m}, {m}, #1",
            "bne 6b",
            "9:",
            s = inout(reg) src => _,
            d = inout(reg) dst => _,
            m = inout(reg) m => _,
            kh = in(reg) kh,
            stride = in(reg) stride,
            run = in(reg) run,
            last = in(reg) run - 4,
            ds = in(reg) ds,
            dd = in(reg) dd,
            n = out(reg) _,
            t = out(reg) _,
            ds2 = out(reg) _,
            options(nostack),
        );
    }
}

/// [`gather_runs`] for a block of [`PIX`] pixels one byte apart (one input channel, unit
/// stride) and runs of 4–8 bytes: kernel row by kernel row, the four pixels' runs with the
/// pixel offsets as immediates, 22 instructions per kernel row where the pixel-major loop took
/// 32 (a 5×5 first layer over one channel spent more on its fields than on 8 output channels'
/// requantization).
///
/// # Safety
/// As [`gather_runs`] with `step = 1`, `m = PIX`, `4 ≤ run ≤ 8`.
#[inline(never)]
unsafe fn gather_runs_c1(src: *const u8, stride: usize, dst: *mut u8, kp: usize, run: usize, kh: usize) {
    const _: () = assert!(PIX == 4);
    // SAFETY: the words at `[0, 4)` and `[run − 4, run)` of each run, pixel `p`'s at
    // `src + p + ky·stride` and `dst + p·kp + ky·run` (the caller's bounds); LDR and STR may be
    // unaligned on Armv7-M.
    unsafe {
        asm!(
            "2:",
            "ldr {t}, [{s}]",
            "str {t}, [{d}]",
            "ldr {t}, [{s}, #1]",
            "str {t}, [{d}, {kp}]",
            "ldr {t}, [{s}, #2]",
            "str {t}, [{d}, {kp2}]",
            "ldr {t}, [{s}, #3]",
            "str {t}, [{d}, {kp3}]",
            "add {s}, {s}, {last}",
            "add {d}, {d}, {last}",
            "ldr {t}, [{s}]",
            "str {t}, [{d}]",
            "ldr {t}, [{s}, #1]",
            "str {t}, [{d}, {kp}]",
            "ldr {t}, [{s}, #2]",
            "str {t}, [{d}, {kp2}]",
            "ldr {t}, [{s}, #3]",
            "str {t}, [{d}, {kp3}]",
            "add {s}, {s}, {next_s}",
            "add {d}, {d}, #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            s = inout(reg) src => _,
            d = inout(reg) dst => _,
            n = inout(reg) kh => _,
            t = out(reg) _,
            kp = in(reg) kp,
            kp2 = in(reg) 2 * kp,
            kp3 = in(reg) 3 * kp,
            last = in(reg) run - 4,
            next_s = in(reg) stride.wrapping_sub(run - 4),
            options(nostack),
        );
    }
}

/// Pixel `q`'s receptive field as lane pairs, pixel `p` of the blocks `x`, for a layer whose
/// channels do not fill weight words and that has no band of rows: [`interior_field`]
/// or the general [`gather`], then [`convert`]. A call of its own, so that the branch for it
/// leaves the convolution's other paths' register allocation alone (inline, resnet8's 3×3
/// layers paid 15 instructions a block of pixels).
// Generic over the kernel set as the convolution is, so that the input's width is a constant in
// a firmware without 4-bit activations.
#[inline(never)]
fn general_field<const L: usize, const K: u32>(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    q: usize,
    col: &mut [u8],
    x: &mut [[[u32; L]; PIX]],
    p: usize,
) {
    let in_fmt = linked_input::<K>(in_fmt);
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let (oy, ox) = (q / g.out_w.max(1), q % g.out_w.max(1));
    let src = if in_fmt.bits == Bits::B8 && interior_field(g, input, oy, ox, col) {
        &col[..k]
    } else {
        gather(g, input, in_fmt, oy, ox, col)
    };
    convert(src, in_fmt.zero_point, x, p);
}

/// The receptive field of `(oy, ox)` of an 8-bit input into `col[..K]` when it lies wholly
/// inside the input (no tap in the padding): its `kh` runs of `kw·in_c` bytes copied a word at a
/// time by [`gather_runs`], or byte by byte when shorter than a word. False, nothing written,
/// for a field that touches the padding or a `col` shorter than `K`. The general
/// [`gather`]'s `memset`/`memcpy` calls per kernel row cost a 3×3 layer over one channel about
/// 450 instructions a pixel (11.5 per MAC with six output channels).
#[inline(never)]
fn interior_field(g: &Window, input: &[u8], oy: usize, ox: usize, col: &mut [u8]) -> bool {
    let (kh, run, stride) = (g.kernel_h, g.kernel_w * g.in_c, g.in_w * g.in_c);
    let (Some(start), Some(field), true) = (inside_field(g, oy, ox), col.get_mut(..kh * run), kh >= 1 && run >= 1)
    else {
        return false;
    };
    if start + (kh - 1) * stride + run > input.len() {
        return false;
    }
    if run >= 4 {
        // SAFETY: the `kh` runs of `run ≥ 4` bytes at `start + ky·stride` lie inside `input`
        // (checked), and `field` holds `kh·run` bytes; one pixel (`m = 1`).
        unsafe { gather_runs(input.as_ptr().add(start), 0, stride, field.as_mut_ptr(), 0, run, kh, 1) };
        return true;
    }
    for (ky, dst) in field.chunks_exact_mut(run).enumerate() {
        let src = &input[start + ky * stride..][..run];
        // One to three bytes, each by itself (a loop here became a `memcpy` call).
        dst[0] = src[0];
        if run > 1 {
            dst[1] = src[1];
        }
        if run > 2 {
            dst[2] = src[2];
        }
    }
    true
}

/// `n ≥ 1` words of four receptive fields of raw 8-bit activations (`col + p·kp`, `p < 4`) into
/// the `n` blocks `[[u32; 2]; 4]` at `x`: SXTB16 and SXTB16 ROR 8 of each word, nothing
/// subtracted (18 instructions per word of the four fields: fields 0 and 2 by pointers that
/// step with their loads, 1 and 3 at `kp` from them).
///
/// # Safety
/// `col + p·kp` must be readable for `4n` bytes (`p < 4`), `x` writable for `8n` words
/// (word-aligned).
#[inline(always)]
unsafe fn convert4_w8(col: *const u8, kp: usize, x: *mut u32, n: usize) {
    // SAFETY: the caller's bounds; LDR of the fields may be unaligned, STRD of `x` is
    // word-aligned.
    unsafe {
        asm!(
            "add {c2}, {c}, {kp}, lsl #1",
            "2:",
            "ldr {t}, [{c}, {kp}]",
            "sxtb16 {a}, {t}",
            "sxtb16 {t}, {t}, ror #8",
            "strd {a}, {t}, [{x}, #8]",
            "ldr {t}, [{c2}, {kp}]",
            "sxtb16 {a}, {t}",
            "sxtb16 {t}, {t}, ror #8",
            "strd {a}, {t}, [{x}, #24]",
            "ldr {t}, [{c2}], #4",
            "sxtb16 {a}, {t}",
            "sxtb16 {t}, {t}, ror #8",
            "strd {a}, {t}, [{x}, #16]",
            "ldr {t}, [{c}], #4",
            "sxtb16 {a}, {t}",
            "sxtb16 {t}, {t}, ror #8",
            "strd {a}, {t}, [{x}], #32",
            "subs {n}, {n}, #1",
            "bne 2b",
            c = inout(reg) col => _,
            kp = in(reg) kp,
            x = inout(reg) x => _,
            n = inout(reg) n => _,
            c2 = out(reg) _,
            t = out(reg) _,
            a = out(reg) _,
            options(nostack),
        );
    }
}

/// [`convert4_w8`] for 4-bit weights: `n ≥ 1` blocks of 8 bytes of four receptive fields
/// (`col + p·kp`, `p < 4`) into the `n` blocks `[[u32; 4]; 4]` at `x` (by halves, [`slot`]),
/// each pixel's 8 bytes
/// (`a`, `b`: bytes 0–3 and 4–7) as the lane pairs (0, 4), (2, 6), (1, 5), (3, 7) of
/// [`convert_block`]: PKHBT/PKHTB, then SXTB16 and SXTB16 ROR 8 (11 instructions per pixel).
///
/// # Safety
/// `col + p·kp` must be readable for `8n` bytes (`p < 4`), `x` writable for `16n` words
/// (word-aligned).
#[inline(always)]
unsafe fn convert4_w4(col: *const u8, kp: usize, x: *mut u32, n: usize) {
    // SAFETY: the caller's bounds; LDR of the fields may be unaligned, STRD of `x` is
    // word-aligned.
    unsafe {
        asm!(
            "2:",
            "ldr {a}, [{c}]",
            "ldr {b}, [{c}, #4]",
            "pkhbt {lo}, {a}, {b}, lsl #16",
            "pkhtb {hi}, {b}, {a}, asr #16",
            "sxtb16 {a}, {lo}",
            "sxtb16 {b}, {hi}",
            "sxtb16 {lo}, {lo}, ror #8",
            "sxtb16 {hi}, {hi}, ror #8",
            "strd {a}, {b}, [{x}]",
            "strd {lo}, {hi}, [{x}, #32]",
            "add {t}, {c}, {kp}",
            "ldr {a}, [{t}]",
            "ldr {b}, [{t}, #4]",
            "pkhbt {lo}, {a}, {b}, lsl #16",
            "pkhtb {hi}, {b}, {a}, asr #16",
            "sxtb16 {a}, {lo}",
            "sxtb16 {b}, {hi}",
            "sxtb16 {lo}, {lo}, ror #8",
            "sxtb16 {hi}, {hi}, ror #8",
            "strd {a}, {b}, [{x}, #8]",
            "strd {lo}, {hi}, [{x}, #40]",
            "add {t}, {t}, {kp}",
            "ldr {a}, [{t}]",
            "ldr {b}, [{t}, #4]",
            "pkhbt {lo}, {a}, {b}, lsl #16",
            "pkhtb {hi}, {b}, {a}, asr #16",
            "sxtb16 {a}, {lo}",
            "sxtb16 {b}, {hi}",
            "sxtb16 {lo}, {lo}, ror #8",
            "sxtb16 {hi}, {hi}, ror #8",
            "strd {a}, {b}, [{x}, #16]",
            "strd {lo}, {hi}, [{x}, #48]",
            "add {t}, {t}, {kp}",
            "ldr {a}, [{t}]",
            "ldr {b}, [{t}, #4]",
            "pkhbt {lo}, {a}, {b}, lsl #16",
            "pkhtb {hi}, {b}, {a}, asr #16",
            "sxtb16 {a}, {lo}",
            "sxtb16 {b}, {hi}",
            "sxtb16 {lo}, {lo}, ror #8",
            "sxtb16 {hi}, {hi}, ror #8",
            "strd {a}, {b}, [{x}, #24]",
            "strd {lo}, {hi}, [{x}, #56]",
            "adds {c}, #8",
            "adds {x}, #64",
            "subs {n}, {n}, #1",
            "bne 2b",
            c = inout(reg) col => _,
            kp = in(reg) kp,
            x = inout(reg) x => _,
            n = inout(reg) n => _,
            t = out(reg) _,
            a = out(reg) _,
            b = out(reg) _,
            lo = out(reg) _,
            hi = out(reg) _,
            options(nostack),
        );
    }
}

/// [`dot`] for a block of [`PIX`] pixels.
#[inline(always)]
fn dot4<const L: usize>(row: &[u8], x: &[[[u32; L]; PIX]]) -> [i32; PIX] {
    dot(row, x)
}

/// How [`plain_rows`] takes a layer's rows, the same for every block (worked out per block, it
/// cost a pointwise layer 3.5 instructions a block).
#[derive(Clone, Copy)]
struct PlainRows {
    /// The rows whose words lie inside `weights`.
    rows: usize,
    /// The last row through the assembly from its copy (the `last` of [`plain_rows`]).
    last_copy: bool,
    /// Rows whose last word holds one weight take it alone, one byte read: 4-bit rows of
    /// 8·n + 1 weights (3×3 and 5×5 kernels over one channel) of 2 or 4 words (`tail_w4`), 8-bit
    /// rows of 4·n + 1, n ≥ 1 (`tail_w8`).
    tail: bool,
    /// The assembly's form, [`rows_plain_outlined`] with `HIGH` or without (chosen once per
    /// layer: a test per block in the convolution's loop moved its register allocation, +11
    /// instructions a block on dscnn-kws' `mixed` pointwise layers), and the shift of the Rust
    /// rows' sums to its scale.
    run: RowsPlainAsm,
    lift: u32,
}

/// [`rows_plain_outlined`] at one form.
type RowsPlainAsm = unsafe fn(*const u8, usize, *const u32, usize, *const Rq32, *mut u8, usize, usize, bool);

impl PlainRows {
    fn new<const L: usize, const K: u32>(
        weights: &[u8],
        row_bytes: usize,
        words: usize,
        k: usize,
        oc: usize,
        last: &[u8],
        high: bool,
    ) -> Self {
        let tail = L == 4 && k % 8 == 1 && (words == 2 || words == 4) || L == 2 && k % 4 == 1 && words >= 2;
        // The assembly reads `4·words` bytes from each row's start (with a tail, `4·words − 3`);
        // a row's last word may hold the next row's first bytes (they meet zero activations),
        // but never bytes past `weights`.
        let reach = if tail { 4 * words - 3 } else { 4 * words };
        let mut rows = oc.min(weights.len() / row_bytes.max(1));
        if rows > 0 && (rows - 1) * row_bytes + reach > weights.len() {
            rows -= 1;
        }
        let last_copy = rows + 1 == oc && last.len() >= reach;
        let (run, lift): (RowsPlainAsm, u32) = if high {
            (rows_plain_outlined::<L, true>, high_scale(L) - scale_shift(L))
        } else if L == 2 || has(K, linked::OFFSET_ROWS) {
            (rows_plain_outlined::<L, false>, 0)
        } else {
            // Never run: the convolution takes no plain rows without their form.
            (rows_plain_none, 0)
        };
        PlainRows { rows, last_copy, tail, run, lift }
    }
}

/// The 8-bit outputs of one block of [`PIX`] pixels for every channel (`block`: pixel-major,
/// `PIX·oc` bytes), when every channel is fast and the clamp is the output range: the rows go
/// through [`rows_plain`]; a last row whose final word would be read past `weights` from `last`
/// if that holds a copy of it (`4·words` bytes), else in Rust. Rows of `k` weights, taken as
/// `plan` (from the same arguments) says.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn plain_rows<const L: usize>(
    plan: PlainRows,
    weights: &[u8],
    row_bytes: usize,
    words: usize,
    x: &[[[u32; L]; PIX]],
    fast: &[Rq32],
    block: &mut [u8],
    last: &[u8],
) {
    let oc = fast.len();
    let PlainRows { rows, mut last_copy, tail, run, lift } = plan;
    // Up to two runs of the assembly from one call site (each is ~300 bytes of code): the rows
    // inside `weights`, then the last row from its copy, which a first layer's odd row length
    // leaves short of a whole word (in Rust, that one row cost a MobileNet's first layer 4%).
    let (mut w, mut first, mut n) = (weights, 0, rows);
    let mut done = 0;
    while n > 0 && words > 0 && x.len() >= words && block.len() >= PIX * oc && first + n <= oc {
        // SAFETY: `n ≥ 1` rows of `row_bytes` at `w`, the last read to `4·words` bytes
        // (`PlainRows::new` checked: inside `weights`, or `last`'s length); `words` blocks of
        // `L·PIX` words at `x`; the `n` constants from `first` in `fast` (`first + n ≤ oc`);
        // outputs `p·oc + c` for `p < PIX`, `first ≤ c < first + n` inside `block` (length
        // checked).
        unsafe {
            run(
                w.as_ptr(),
                row_bytes,
                x.as_ptr() as *const u32,
                words,
                fast.as_ptr().add(first),
                block.as_mut_ptr().add(first),
                oc,
                n,
                tail,
            )
        };
        done = first + n;
        (w, first, n) = (last, rows, if last_copy { 1 } else { 0 });
        last_copy = false;
    }
    if done == oc {
        // (Without this test, the bounds of the loop below cost every block 28 instructions.)
        return;
    }
    // The rows the assembly did not take (a `skip` here linked a generic `nth` of 462 bytes).
    let rest = weights.get(done * row_bytes..).unwrap_or_default().chunks_exact(row_bytes);
    for (c, (row, f)) in (done..oc).zip(rest.zip(fast.get(done..).unwrap_or_default())) {
        let a = dot4(row, x);
        for (p, a) in a.into_iter().enumerate() {
            if let Some(d) = block.get_mut(p * oc + c) {
                *d = f.unclamped_any(a << lift).clamp(-128, 127) as u8;
            }
        }
    }
}

// The row loop of [`rows_plain`]. Registers: r0 weight pointer, r1 im2col pointer, r2 word
// counter, r3 the weight word, r4/r5 its unpacked lanes, r8–r11 the four pixels' sums; the
// im2col words, four per `LDM` (two pixels' pairs), in r5, r7, r12, lr (8-bit) or r6, r7, r12,
// lr (4-bit), r12/lr a pair (2-bit). The loop state lives in the 40 bytes the assembly pushes
// (`[sp]`): a slot unread, the step from where a row's steps leave r0 to the next row, im2col,
// words (8-bit: after the first), requantization constants, output, channels, output end, and
// the im2col end (where the 4- and 2-bit loops stop, their counter register holding the mask);
// the constants' and output pointers, r6 and r7 between rows, are kept there too (at 16 and
// 20), as the steps load the block into them.

/// One 8-bit weight word into the four sums: 16 multiply-accumulates, 13 instructions (an `LDM`
/// of four block words, two pixels' pairs, where two `LDRD`s took two more).
macro_rules! step_w8 {
    () => {
        step_w8!("r8", "r9", "r10", "r11")
    };
    // A row's first word: each sum starts from the channel's scaled bias in r11 (read by the
    // fourth pixel's first `SMLAD` last), so the row needs no copies of it.
    (first) => {
        step_w8!("r11", "r11", "r11", "r11")
    };
    ($b0:literal, $b1:literal, $b2:literal, $b3:literal) => {
        concat!(
            "ldr r3, [r0], #4\n",
            "sxtb16 r4, r3\n",
            "sxtb16 r3, r3, ror #8\n",
            "ldm r1!, {{r5, r7, r12, lr}}\n",
            "smlad r8, r4, r5, ",
            $b0,
            "\n",
            "smlad r8, r3, r7, r8\n",
            "smlad r9, r4, r12, ",
            $b1,
            "\n",
            "smlad r9, r3, lr, r9\n",
            "ldm r1!, {{r5, r7, r12, lr}}\n",
            "smlad r10, r4, r5, ",
            $b2,
            "\n",
            "smlad r10, r3, r7, r10\n",
            "smlad r11, r4, r12, ",
            $b3,
            "\n",
            "smlad r11, r3, lr, r11\n",
        )
    };
}

/// One 4-bit weight word (eight lanes, as [`dot4_w4`] unpacks them) against the next block
/// (r1, advanced past it; its halves as [`slot`] lays them out): each unpacked half of the word
/// in r4/r5 (the nibble mask in r2, whose shifted-operand `AND` moves and masks the low nibbles
/// at once), against two pixels' pairs per `LDM` (r6, r7, r12, lr): 32 multiply-accumulates in
/// 27 instructions.
macro_rules! step_w4 {
    () => {
        step_w4!(@word step_w4!(@pixels "r8", "r9"), step_w4!(@pixels "r10", "r11"))
    };
    // A row's first word: the sums start from the scaled bias in r11, as [`step_w8`]'s first.
    (first) => {
        step_w4!(@word step_w4!(@first "r8", "r9"), step_w4!(@first "r10", "r11"))
    };
    (@word $first_pairs:expr, $second_pairs:expr) => {
        concat!(
            "ldr r3, [r0], #4\n",
            // Low nibbles, in the high half of each byte: lanes (0,4) and (2,6).
            "and r4, r2, r3, lsl #4\n",
            "sxtb16 r5, r4, ror #8\n",
            "sxtb16 r4, r4\n",
            $first_pairs,
            $second_pairs,
            // High nibbles: lanes (1,5) and (3,7).
            "and r3, r3, r2\n",
            "sxtb16 r5, r3, ror #8\n",
            "sxtb16 r4, r3\n",
            step_w4!(@pixels "r8", "r9"),
            step_w4!(@pixels "r10", "r11"),
        )
    };
    (@pixels $a:literal, $b:literal) => {
        step_w4!(@pixels $a, $b; $a, $b)
    };
    (@first $a:literal, $b:literal) => {
        step_w4!(@pixels $a, $b; "r11", "r11")
    };
    (@pixels $a:literal, $b:literal; $a0:literal, $b0:literal) => {
        concat!(
            "ldm r1!, {{r6, r7, r12, lr}}\n",
            "smlad ", $a, ", r4, r6, ", $a0, "\n",
            "smlad ", $a, ", r5, r7, ", $a, "\n",
            "smlad ", $b, ", r4, r12, ", $b0, "\n",
            "smlad ", $b, ", r5, lr, ", $b, "\n",
        )
    };
}

/// [`step_w4`] with each nibble masked into the top bits of its halfword lane (the mask
/// `0xF000F000` in r2), where its sign is the lane's: `2^12·w`, two `AND`s with a shifted
/// operand per half where an `AND` and two `SXTB16` took three (25 instructions per 32
/// multiply-accumulates; the sums held scaled by 2^12, [`conv_high`]).
macro_rules! step_w4_high {
    () => {
        step_w4_high!(@word step_w4!(@pixels "r8", "r9"), step_w4!(@pixels "r10", "r11"))
    };
    (first) => {
        step_w4_high!(@word step_w4!(@first "r8", "r9"), step_w4!(@first "r10", "r11"))
    };
    (@word $first_pairs:expr, $second_pairs:expr) => {
        concat!(
            "ldr r3, [r0], #4\n",
            "and r4, r2, r3, lsl #12\n",
            "and r5, r2, r3, lsl #4\n",
            $first_pairs,
            $second_pairs,
            "and r4, r2, r3, lsl #8\n",
            "and r5, r2, r3\n",
            step_w4!(@pixels "r8", "r9"),
            step_w4!(@pixels "r10", "r11"),
        )
    };
}

/// [`step_w2`] with each crumb masked into the top bits of its halfword lane (the mask
/// `0xC000C000` in r2): quarter `j`'s lanes (j, 8+j) and (4+j, 12+j) by shifts of `14 − 2j` and
/// `6 − 2j`, 49 instructions per 64 multiply-accumulates where 53 took them (sums scaled by
/// 2^14).
macro_rules! step_w2_high {
    () => {
        concat!(
            "ldr r3, [r0], #4\n",
            step_w2_high!(@quarter "14", ", lsl #6"),
            step_w2_high!(@quarter "12", ", lsl #4"),
            step_w2_high!(@quarter "10", ", lsl #2"),
            step_w2_high!(@quarter "8", ""),
        )
    };
    (@quarter $a:literal, $b:literal) => {
        concat!(
            "and r4, r2, r3, lsl #",
            $a,
            "\n",
            "and r5, r2, r3",
            $b,
            "\n",
            step_w4!(@pixels "r8", "r9"),
            step_w4!(@pixels "r10", "r11"),
        )
    };
}

/// [`pairs_w2`] of [`step_w2_high`].
macro_rules! pairs_w2_high {
    () => {
        concat!("4:\n", step_w2_high!(), step_w2_high!(), "ldr r3, [sp, #32]\n", "cmp r1, r3\n", "bne 4b\n",)
    };
}

/// The last word of a 4-bit row that holds one weight (its low nibble): `16·w` from the byte at
/// r0, against the low halfword (lane 0) of each pixel's first lane pair at r1 + `$p0..$p3`
/// (11 instructions, a whole word's step 27).
macro_rules! tail_w4 {
    ($p0:literal, $p1:literal, $p2:literal, $p3:literal) => {
        concat!(
            "ldrb r3, [r0]\n",
            "lsl r3, r3, #28\n",
            "asr r4, r3, #24\n",
            "ldr r12, [r1, #",
            $p0,
            "]\n",
            "smlabb r8, r4, r12, r8\n",
            "ldr r12, [r1, #",
            $p1,
            "]\n",
            "smlabb r9, r4, r12, r9\n",
            "ldr r12, [r1, #",
            $p2,
            "]\n",
            "smlabb r10, r4, r12, r10\n",
            "ldr r12, [r1, #",
            $p3,
            "]\n",
            "smlabb r11, r4, r12, r11\n",
        )
    };
}

/// The last word of an 8-bit row of `4n + 1` weights (a 3×3, 5×5 or 7×7 kernel over one
/// channel), whose one weight is the byte at r0, into the four sums: the block's first lane pair
/// of each pixel (`SMLABB`: its low half), 9 instructions where a whole word takes 13, and one
/// byte read, so that a layer's last row needs no copy.
macro_rules! tail_w8 {
    () => {
        concat!(
            "ldrsb r4, [r0]\n",
            "ldr r12, [r1]\n",
            "smlabb r8, r4, r12, r8\n",
            "ldr r12, [r1, #8]\n",
            "smlabb r9, r4, r12, r9\n",
            "ldr r12, [r1, #16]\n",
            "smlabb r10, r4, r12, r10\n",
            "ldr r12, [r1, #24]\n",
            "smlabb r11, r4, r12, r11\n",
        )
    };
}

/// Crumb `j` of each byte of a 2-bit weight word (`$shift = 6 − 2j`; `last` for j = 3; `mask`
/// with the crumb mask `0xC0C0C0C0` in r2): lanes (j, 8+j) and (4+j, 12+j), against the block's
/// quarter `j` (r1, advanced past it: every pixel's two pairs, [`slot`]), two pixels per `LDM`.
macro_rules! quarter_w2 {
    (last) => {
        concat!("and r4, r3, #0xC0C0C0C0\n", quarter_w2!(@lanes))
    };
    (mask last) => {
        concat!("and r4, r3, r2\n", quarter_w2!(@lanes))
    };
    (mask $shift:literal) => {
        concat!("and r4, r2, r3, lsl #", $shift, "\n", quarter_w2!(@lanes))
    };
    (@lanes) => {
        concat!(
            "sxtb16 r5, r4, ror #8\n",
            "sxtb16 r4, r4\n",
            step_w4!(@pixels "r8", "r9"),
            step_w4!(@pixels "r10", "r11"),
        )
    };
    ($shift:literal) => {
        concat!("lsl r4, r3, #", $shift, "\n", "and r4, r4, #0xC0C0C0C0\n", quarter_w2!(@lanes))
    };
}

/// One 2-bit weight word against the next block (r1, advanced past it): 64 multiply-accumulates
/// in 53 instructions (13 a quarter, 4 `LDM`s of the block where 8 `LDRD`s took 4 more).
macro_rules! step_w2 {
    ($($m:ident)?) => {
        concat!(
            "ldr r3, [r0], #4\n",
            quarter_w2!($($m)? "6"),
            quarter_w2!($($m)? "4"),
            quarter_w2!($($m)? "2"),
            quarter_w2!($($m)? last),
        )
    };
}

/// The main 4-bit loop: four words per iteration, the mask in r2, until the im2col end.
macro_rules! quads_w4 {
    () => {
        quads_w4!(step_w4)
    };
    ($step:ident) => {
        concat!("4:\n", $step!(), $step!(), $step!(), $step!(), "ldr r3, [sp, #32]\n", "cmp r1, r3\n", "bne 4b\n",)
    };
}

/// [`quads_w4`] eight words per iteration, for rows of a multiple of eight words (64, 128, …
/// weights): the loop's end test, a load from the stack, is then paid half as often, which
/// makes a 4-bit row of 64 weights no dearer than an 8-bit one.
macro_rules! octs_w4 {
    () => {
        octs_w4!(step_w4)
    };
    ($step:ident) => {
        concat!(
            "4:\n",
            $step!(),
            $step!(),
            $step!(),
            $step!(),
            $step!(),
            $step!(),
            $step!(),
            $step!(),
            "ldr r3, [sp, #32]\n",
            "cmp r1, r3\n",
            "bne 4b\n",
        )
    };
}

/// The main 2-bit loop: two words per iteration, the mask in r2, until the im2col end.
macro_rules! pairs_w2 {
    () => {
        concat!("4:\n", step_w2!(mask), step_w2!(mask), "ldr r3, [sp, #32]\n", "cmp r1, r3\n", "bne 4b\n",)
    };
}

/// The start of a row: the weight pointer moved to the row (from where the last row's steps
/// left it, by the stored difference), the sums set to the channel's scaled bias (its
/// constants at r6, which moves past them: the row's end reads the rest with one `LDMDB` and no
/// add; `$store` keeps r6 where the steps reuse it), the im2col pointer and the word count.
macro_rules! row_start {
    // Rows whose first word is a step's first form: the bias into r11 only.
    (first $store:expr) => {
        concat!(
            "1:\n",
            "ldr r3, [sp, #4]\n",
            "add r0, r0, r3\n",
            "ldr r11, [r6], #{rq_size}\n",
            $store,
            "ldrd r1, r2, [sp, #8]\n",
        )
    };
    ($store:expr) => {
        concat!(
            "1:\n",
            "ldr r3, [sp, #4]\n",
            "add r0, r0, r3\n",
            "ldr r8, [r6], #{rq_size}\n",
            $store,
            "mov r9, r8\n",
            "mov r10, r8\n",
            "mov r11, r8\n",
            "ldrd r1, r2, [sp, #8]\n",
        )
    };
}

/// The end of a row: each sum requantized with the channel's constants (`shl, m, round, sh` and
/// two words unread, loaded at once from below r6, which the row's start moved past them to the
/// next channel's): one `SMMLAR` for an entry in
/// [`Rq32::high_word`]'s form (`shl` = [`util::HIGH_WORD`]), else `Rq32::unclamped`'s four
/// instructions, out of line; `SSAT` to 8 bits, one byte per pixel at `out + p·oc` (`out` in
/// r7), then the next row until the output end.
macro_rules! row_end {
    // The 8-bit steps load the block into r7 (r2 holds their word counter), the 4- and 2-bit
    // ones into r6 and r7.
    () => {
        row_end!("")
    };
    (reload r6) => {
        row_end!("ldr r6, [sp, #16]\n")
    };
    ($load:expr) => {
        concat!(
            $load,
            "ldmdb r6, {{r2, r3, r4, r5, r12, lr}}\n",
            "cmp r2, #{high_word}\n",
            "blo 7f\n",
            "smmlar r8, r8, r3, r4\n",
            "ssat r8, #8, r8\n",
            "smmlar r9, r9, r3, r4\n",
            "ssat r9, #8, r9\n",
            "smmlar r10, r10, r3, r4\n",
            "ssat r10, #8, r10\n",
            "smmlar r11, r11, r3, r4\n",
            "ssat r11, #8, r11\n",
            "6:\n",
            "ldrd r7, r2, [sp, #20]\n",
            "strb r8, [r7]\n",
            "strb r9, [r7, r2]\n",
            "add r3, r7, r2, lsl #1\n",
            "strb r10, [r3]\n",
            "strb r11, [r3, r2]\n",
            "ldr r3, [sp, #28]\n",
            "adds r7, r7, #1\n",
            "str r7, [sp, #20]\n",
            "cmp r7, r3\n",
            "bne 1b\n",
            "b 9f\n",
            "7:\n",
            "lsl r8, r8, r2\n",
            "smlawb r8, r8, r3, r4\n",
            "asr r8, r8, r5\n",
            "ssat r8, #8, r8\n",
            "lsl r9, r9, r2\n",
            "smlawb r9, r9, r3, r4\n",
            "asr r9, r9, r5\n",
            "ssat r9, #8, r9\n",
            "lsl r10, r10, r2\n",
            "smlawb r10, r10, r3, r4\n",
            "asr r10, r10, r5\n",
            "ssat r10, #8, r10\n",
            "lsl r11, r11, r2\n",
            "smlawb r11, r11, r3, r4\n",
            "asr r11, r11, r5\n",
            "ssat r11, #8, r11\n",
            "b 6b\n",
            "9:\n",
        )
    };
}

/// [`rows_plain`] for the 4-bit rows its inlined form leaves out (a tail, or `words mod 4` of 2
/// or 3, or fewer than 4 words), a call of its own: their six forms inlined into the
/// convolution changed its register allocation around the im2col, which cost the others about
/// 50 instructions per block of pixels.
///
/// # Safety
/// As [`rows_plain`] with `L = 4`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
unsafe fn rows_plain_w4_other(
    w: *const u8,
    row_bytes: usize,
    x: *const u32,
    words: usize,
    rq: *const Rq32,
    out: *mut u8,
    oc: usize,
    rows: usize,
    tail: bool,
) {
    // SAFETY: the caller's.
    unsafe { rows_plain::<4, true, false>(w, row_bytes, x, words, rq, out, oc, rows, tail) }
}

/// The [`PlainRows::run`] of a layer whose form the kernel set leaves out (which no block runs).
///
/// # Safety
/// None: `unsafe` only to have [`RowsPlainAsm`]'s type; it reads and writes nothing.
#[allow(clippy::too_many_arguments)]
unsafe fn rows_plain_none(
    _: *const u8,
    _: usize,
    _: *const u32,
    _: usize,
    _: *const Rq32,
    _: *mut u8,
    _: usize,
    _: usize,
    _: bool,
) {
}

/// [`rows_plain`] as a call of its own, for [`plain_rows`]' two runs (the rows, then a last row
/// from its copy) from one copy of the assembly: inlined, the optimizer peeled the second run
/// into a second copy (+2 KB of code in every firmware with a convolution).
///
/// # Safety
/// As [`rows_plain`].
#[allow(clippy::too_many_arguments)]
#[inline(never)]
unsafe fn rows_plain_outlined<const L: usize, const HIGH: bool>(
    w: *const u8,
    row_bytes: usize,
    x: *const u32,
    words: usize,
    rq: *const Rq32,
    out: *mut u8,
    oc: usize,
    rows: usize,
    tail: bool,
) {
    // SAFETY: the caller's.
    unsafe { rows_plain::<L, false, HIGH>(w, row_bytes, x, words, rq, out, oc, rows, tail) }
}

/// Weight words per iteration of [`rows_plain`]'s loop for `L` lane pairs per word.
const fn unroll(l: usize) -> usize {
    match l {
        2 => 2,
        4 => 4,
        _ => 2,
    }
}

/// `rows` channels of one pixel block, in the plain case of [`plain_rows`], entirely in assembly
/// so that nothing is spilled around the dot product and the epilogue is the same for every
/// weight width: per row, the dot product of [`dot4_w8`], [`dot4_w4`] or [`dot4_w2`] (sums
/// starting from the scaled bias), then requantization and four byte stores (≈ 30 instructions
/// besides the dot product).
///
/// # Safety
/// `rows ≥ 1` and `words ≥ 1`; row `r < rows` starts at `w + r·row_bytes` and `4·words` bytes are
/// readable there (`4·words − 3` with `tail`); `x` is valid for `words·L·PIX` words
/// (word-aligned); `rq` for `rows` constants, each channel fast (`slow` is `None`);
/// `out + p·oc + r` is writable for `p < PIX`, `r < rows`. `tail` only for rows whose last word
/// holds one weight, with `L = 4` and 2 or 4 words, or `L = 2` and 2 words or more.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn rows_plain<const L: usize, const OTHER: bool, const HIGH: bool>(
    w: *const u8,
    row_bytes: usize,
    x: *const u32,
    words: usize,
    rq: *const Rq32,
    out: *mut u8,
    oc: usize,
    rows: usize,
    tail: bool,
) {
    let out_end = out.wrapping_add(rows);
    let x_end = x.wrapping_add(words * L * PIX);
    // Every step reads its weight word with a post-increment, a tail its byte without: a row's
    // start moves r0 from where the last row's steps left it by `row_bytes − consumed`, added
    // to the first row's start before the first.
    let consumed = 4 * (words - tail as usize);
    let next_row = row_bytes.wrapping_sub(consumed);
    let before_first = (w as usize).wrapping_sub(next_row);
    // 8-bit rows count the words after the first ([`step_w8`]'s first form) and before a tail.
    let counted = if L == 2 { words - tail as usize - 1 } else { words };
    macro_rules! row_loop {
        (@end $start:expr, $end:expr; $($dot:expr),+) => {
            // SAFETY: the caller's bounds; the weight words may be unaligned (Armv7-M allows
            // LDR), the im2col buffer and the pushed state are word-aligned (LDRD, LDM); the
            // assembly pops what it pushes.
            unsafe {
                asm!(
                    // The channel constants' and the output's pointers stay in r6 and r7 (saved
                    // here: the compiler keeps them for itself), the rest of the state on the
                    // stack (r4 and r5's slots unused).
                    "push {{r6, r7}}",
                    "mov r6, r4",
                    "mov r7, r5",
                    "push {{r0, r1, r2, r3, r4, r5, r8, r9, r10, r11}}",
                    $start,
                    $($dot,)+
                    $end,
                    "add sp, sp, #40",
                    "pop {{r6, r7}}",
                    rq_size = const core::mem::size_of::<Rq32>(),
                    high_word = const util::HIGH_WORD,
                    inout("r0") before_first => _,
                    inout("r1") next_row => _,
                    inout("r2") x => _,
                    inout("r3") counted => _,
                    inout("r4") rq => _,
                    inout("r5") out => _,
                    inout("r8") oc => _,
                    inout("r9") out_end => _,
                    inout("r10") x_end => _,
                    inout("r11") 0usize => _,
                    out("r12") _,
                    out("lr") _,
                )
            }
        };
        // The 4- and 2-bit steps load the block into r6 as well (two pixels per `LDM`): the
        // row's end reloads the constants' pointer.
        (low_bits; $($dot:expr),+ $(,)?) => {
            row_loop!(@end row_start!("str r6, [sp, #16]\n"), row_end!(reload r6); $($dot),+)
        };
        // Rows whose first step is a first form ([`step_w4`], [`step_w4_high`]).
        (low_bits first; $($dot:expr),+ $(,)?) => {
            row_loop!(@end row_start!(first "str r6, [sp, #16]\n"), row_end!(reload r6); $($dot),+)
        };
        ($($dot:expr),+ $(,)?) => {
            row_loop!(@end row_start!(first ""), row_end!(); $($dot),+)
        };
    }
    // A layer whose rows are whole loop iterations (the same for every row) skips the dispatch
    // of the remainder words. 4-bit rows take their `words mod 4` first words straight, then
    // whole iterations: the word count is the same for every row, so neither needs a test, and
    // rows of 1–3 words (pointwise layers of 8–24 input channels, small first layers) have no
    // loop at all. (A dispatch of the remainder per row cost them 6–9 instructions, more than
    // their 8-bit rows of twice the words spend on their loop.)
    let whole = words.is_multiple_of(unroll(L));
    macro_rules! w4_1 {
        () => {
            step_w4!(first)
        };
    }
    macro_rules! w4_2 {
        () => {
            step_w4!()
        };
    }
    macro_rules! w4_3 {
        () => {
            step_w4!()
        };
    }
    if HIGH {
        // The forms [`conv_high`] takes: 4-bit rows of 1–3 words or a multiple of 4, 2-bit rows
        // of an even count, the mask in r2.
        match (L, words) {
            (4, 1) => row_loop!(low_bits first; "mov r2, #0xF000F000", step_w4_high!(first)),
            (4, 2) => row_loop!(low_bits first; "mov r2, #0xF000F000", step_w4_high!(first), step_w4_high!()),
            (4, 3) => {
                row_loop!(low_bits first; "mov r2, #0xF000F000", step_w4_high!(first), step_w4_high!(), step_w4_high!())
            }
            (4, _) if words.is_multiple_of(8) => row_loop!(low_bits; "mov r2, #0xF000F000", octs_w4!(step_w4_high),),
            (4, _) => row_loop!(low_bits; "mov r2, #0xF000F000", quads_w4!(step_w4_high),),
            _ => row_loop!(low_bits; "mov r2, #0xC000C000", pairs_w2_high!(),),
        }
        return;
    }
    match (L, whole) {
        (4, _) if OTHER && tail && words == 2 => {
            row_loop!(low_bits first; "mov r2, #0xF0F0F0F0", w4_1!(), tail_w4!("0", "8", "16", "24"))
        }
        (4, _) if OTHER && tail => {
            row_loop!(low_bits first; "mov r2, #0xF0F0F0F0", w4_1!(), w4_2!(), w4_3!(), tail_w4!("0", "8", "16", "24"))
        }
        (4, _) if OTHER && words == 1 => row_loop!(low_bits first; "mov r2, #0xF0F0F0F0", w4_1!()),
        (4, _) if OTHER && words == 2 => row_loop!(low_bits first; "mov r2, #0xF0F0F0F0", w4_1!(), w4_2!()),
        (4, _) if OTHER && words == 3 => row_loop!(low_bits first; "mov r2, #0xF0F0F0F0", w4_1!(), w4_2!(), w4_3!()),
        (4, _) if OTHER && words % 4 == 2 => {
            row_loop!(low_bits first; "mov r2, #0xF0F0F0F0", w4_1!(), w4_2!(), quads_w4!())
        }
        (4, _) if OTHER => row_loop!(low_bits first; "mov r2, #0xF0F0F0F0", w4_1!(), w4_2!(), w4_3!(), quads_w4!()),
        // SAFETY: the caller's bounds (`L = 4`).
        (4, _) if tail => unsafe { rows_plain_w4_other(w, row_bytes, x, words, rq, out, oc, rows, tail) },
        (2, _) if tail => row_loop!(
            // The whole words as below, then the tail.
            step_w8!(first),
            "lsrs r2, r2, #1",
            "bcc 2f",
            step_w8!(),
            "2:",
            "beq 4f",
            "3:",
            step_w8!(),
            step_w8!(),
            "subs r2, r2, #1",
            "bne 3b",
            "4:",
            tail_w8!(),
        ),
        (4, true) if words.is_multiple_of(8) => row_loop!(low_bits; "mov r2, #0xF0F0F0F0", octs_w4!(),),
        (4, true) => row_loop!(low_bits; "mov r2, #0xF0F0F0F0", quads_w4!(),),
        (4, false) if words % 4 == 1 && words > 4 => row_loop!(low_bits first;
            // One word, then four per iteration.
            "mov r2, #0xF0F0F0F0",
            w4_1!(),
            quads_w4!(),
        ),
        (8, true) => row_loop!(low_bits; "mov r2, #0xC0C0C0C0", pairs_w2!(),),
        (2, _) => row_loop!(
            // The first word, then one more if the rest is odd (the flags of `lsrs` survive
            // it), then two per iteration.
            step_w8!(first),
            "lsrs r2, r2, #1",
            "bcc 2f",
            step_w8!(),
            "2:",
            "beq 4f",
            "3:",
            step_w8!(),
            step_w8!(),
            "subs r2, r2, #1",
            "bne 3b",
            "4:",
        ),
        // SAFETY: the caller's bounds (`L = 4`).
        (4, _) => unsafe { rows_plain_w4_other(w, row_bytes, x, words, rq, out, oc, rows, tail) },
        _ => row_loop!(low_bits;
            // One word if the count is odd, then two per iteration with the mask in r2.
            "lsrs r2, r2, #1",
            "bcc 2f",
            step_w2!(),
            "2:",
            "beq 5f",
            "mov r2, #0xC0C0C0C0",
            pairs_w2!(),
            "5:",
        ),
    }
}

/// The im2col of pixel `(oy, ox)` straight from the rows of an input whose channel count is a
/// multiple of the block (`2L` activations; for a 4-bit input also of 8), so that every tap
/// starts a block. A 4-bit input gives lanes `16·(a − z)`.
// Inline for a 4-bit input and short rows; over an 8-bit input with rows of 16 words or more, a
// call of its own per pixel costs fewer instructions than the loop inlined in the convolution
// (measured under QEMU: resnet8's 3×3 layers at 4 bits −0.5% to −1%, at 8 bits −0.6% once the
// kernel set left one convolution in the firmware (inlined, it cost +3.4% there); dscnn's 1×1
// layers, 8 words, and 4-bit inputs +0.1% to +2%).
#[inline(always)]
fn im2col_aligned<const L: usize, const P: usize>(
    g: &Window,
    input: &[u8],
    fmt: ActFormat,
    oy: usize,
    ox: usize,
    x: &mut [[[u32; L]; P]],
    p: usize,
) {
    if fmt.bits != Bits::B8 || x.len() < 16 {
        im2col_aligned_body(g, input, fmt, oy, ox, x, p)
    } else {
        im2col_aligned_outlined(g, input, fmt.zero_point, oy, ox, x, p)
    }
}

/// [`im2col_aligned_body`] of an 8-bit input (the width a constant here: passed as a value,
/// whether the optimizer propagated it into this function changed with unrelated code, and the
/// 4-bit branches it kept cost 1 KB of code).
#[inline(never)]
fn im2col_aligned_outlined<const L: usize, const P: usize>(
    g: &Window,
    input: &[u8],
    zero_point: i32,
    oy: usize,
    ox: usize,
    x: &mut [[[u32; L]; P]],
    p: usize,
) {
    im2col_aligned_body(g, input, ActFormat { bits: Bits::B8, zero_point }, oy, ox, x, p)
}

#[inline(always)]
fn im2col_aligned_body<const L: usize, const P: usize>(
    g: &Window,
    input: &[u8],
    fmt: ActFormat,
    oy: usize,
    ox: usize,
    x: &mut [[[u32; L]; P]],
    p: usize,
) {
    if L == 4 && P == PIX && fmt.bits == Bits::B8 && im2col_inside_w4(g, input, fmt.zero_point, oy, ox, x, p) {
        return;
    }
    if L == 2 && P == PIX && fmt.bits == Bits::B8 && im2col_inside_w8(g, input, fmt.zero_point, oy, ox, x, p) {
        return;
    }
    let z = fmt.zero_point;
    let four = fmt.bits == Bits::B4;
    let zz = if four { pair(16 * z, 16 * z) } else { pair(z, z) };
    let (y0, y1, ky0) = g.rows(oy);
    let (x0, x1, kx0) = g.cols(ox);
    let per = 2 * L;
    let c = g.in_c;
    let row_blocks = g.kernel_w * c / per;
    let (left, mid) = (kx0 * c / per, (x1 - x0) * c / per);
    let mut blocks = x.iter_mut();
    for ky in 0..g.kernel_h {
        if ky < ky0 || ky >= ky0 + (y1 - y0) {
            for xb in blocks.by_ref().take(row_blocks) {
                put_lanes(xb, p, [0; L]);
            }
            continue;
        }
        let start = ((y0 + ky - ky0) * g.in_w + x0) * c;
        for xb in blocks.by_ref().take(left) {
            put_lanes(xb, p, [0; L]);
        }
        if four {
            let src = &input[start / 2..(start + mid * per) / 2];
            convert4(src, zz, blocks.by_ref().take(mid), p);
        } else {
            for (src, xb) in input[start..start + mid * per].chunks_exact(per).zip(blocks.by_ref().take(mid)) {
                put_lanes(xb, p, convert_block(src, zz));
            }
        }
        for xb in blocks.by_ref().take(row_blocks - left - mid) {
            put_lanes(xb, p, [0; L]);
        }
    }
}

/// The receptive field of pixel `(oy, ox)` of an 8-bit input for the assembly im2cols, when it
/// lies wholly inside the input: its bytes from the first tap (kernel row `ky` at `ky·step`),
/// the kernel rows `kh`, the whole blocks of `per` bytes in a kernel row, and `step`. `None` at
/// the border, for rows of no whole block, or when `x_blocks` (the blocks of the im2col buffer)
/// are fewer than `kh` rows of them.
#[inline(always)]
fn inside_rows<'i>(
    g: &Window,
    input: &'i [u8],
    oy: usize,
    ox: usize,
    per: usize,
    x_blocks: usize,
) -> Option<(&'i [u8], usize, usize, usize)> {
    let (y0, y1, _) = g.rows(oy);
    let (x0, x1, _) = g.cols(ox);
    let (kh, kw, c) = (g.kernel_h, g.kernel_w, g.in_c);
    let row = kw * c;
    let blocks = row / per;
    if y1 - y0 != kh || x1 - x0 != kw || blocks == 0 || x_blocks < kh * blocks {
        return None;
    }
    let start = (y0 * g.in_w + x0) * c;
    let step = g.in_w * c;
    let src = input.get(start..start + kh.saturating_sub(1) * step + row)?;
    Some((src, kh, blocks, step))
}

/// [`im2col_aligned_body`] of a pixel whose receptive field lies inside an 8-bit input, for
/// 4-bit weights (`L = 4`, blocks of 8 activations, `P = PIX`), in assembly: 17 instructions a
/// block. (The loop of [`convert_block`]s, compiled inside the convolution, took 27 to 30,
/// depending on the registers the code around it left.) False, nothing written, for a pixel at
/// the border.
#[inline(always)]
fn im2col_inside_w4<const L: usize, const P: usize>(
    g: &Window,
    input: &[u8],
    z: i32,
    oy: usize,
    ox: usize,
    x: &mut [[[u32; L]; P]],
    p: usize,
) -> bool {
    let Some((src, kh, blocks, step)) = inside_rows(g, input, oy, ox, 8, x.len()).filter(|_| p < P) else {
        return false;
    };
    // SAFETY: row `ky < kh` of the field is the `blocks` blocks of 8 bytes at
    // `src + ky·step` (inside `src`); block `i < kh·blocks` of `x` (`L = 4`, 16 words, 64 bytes
    // apart) holds pixel `p < P = 4` at words `16i + 2p` and `16i + 8 + 2p` ([`slot`]), two
    // each.
    unsafe {
        asm!(
            // The rows counted down from the test, so that no row runs when `kh = 0`.
            "b 3f",
            "1:",
            "mov {n}, {blocks}",
            "2:",
            w4_block_asm!("{s}", "{d}", "0", "32"),
            "add {d}, {d}, #64",
            "subs {n}, {n}, #1",
            "bne 2b",
            "add {s}, {s}, {skip}",
            "3:",
            "subs {rows}, {rows}, #1",
            "bhs 1b",
            s = inout(reg) src.as_ptr() => _,
            d = inout(reg) (x.as_mut_ptr() as *mut u32).wrapping_add(slot::<L, P>(p, 0)) => _,
            rows = inout(reg) kh => _,
            blocks = in(reg) blocks,
            skip = in(reg) step - 8 * blocks,
            zz = in(reg) pair(z, z),
            n = out(reg) _,
            a = out(reg) _,
            b = out(reg) _,
            lo = out(reg) _,
            hi = out(reg) _,
            options(nostack),
        );
    }
    true
}

/// [`im2col_aligned_body`] of a pixel whose receptive field lies inside an 8-bit input, for
/// 8-bit weights (`L = 2`, blocks of 4 activations, `P = PIX`), in assembly: 7 instructions a
/// word, two words per iteration. (The loop of [`convert_block`]s took 15, its bounds tested per
/// word: resnet8's 3×3 layers over 16 channels spent 23% of their time there.) False, nothing
/// written, for a pixel at the border.
#[inline(always)]
fn im2col_inside_w8<const L: usize, const P: usize>(
    g: &Window,
    input: &[u8],
    z: i32,
    oy: usize,
    ox: usize,
    x: &mut [[[u32; L]; P]],
    p: usize,
) -> bool {
    let Some((src, kh, words, step)) = inside_rows(g, input, oy, ox, 4, x.len()).filter(|_| p < P) else {
        return false;
    };
    // SAFETY: row `ky < kh` of the field is the `words` words at `src + ky·step` (inside `src`;
    // LDR may be unaligned); block `i < kh·words` of `x` holds pixel `p < P = 4` at word
    // `(i·P + p)·L`, 2 words (`L = 2`, STRD: word-aligned), 32 bytes apart.
    unsafe {
        asm!(
            // The rows counted down from the test, so that no row runs when `kh = 0`; in a row,
            // one word if the count is odd (the flags of `LSRS` survive it), then two per
            // iteration.
            "b 3f",
            "1:",
            "lsrs {n}, {words}, #1",
            "bcc 2f",
            "ldr {a}, [{s}], #4",
            "sxtb16 {b}, {a}",
            "sxtb16 {a}, {a}, ror #8",
            "ssub16 {b}, {b}, {zz}",
            "ssub16 {a}, {a}, {zz}",
            "strd {b}, {a}, [{d}], #32",
            "2:",
            "beq 4f",
            "5:",
            "ldr {a}, [{s}], #4",
            "sxtb16 {b}, {a}",
            "sxtb16 {a}, {a}, ror #8",
            "ssub16 {b}, {b}, {zz}",
            "ssub16 {a}, {a}, {zz}",
            "strd {b}, {a}, [{d}], #32",
            "ldr {a}, [{s}], #4",
            "sxtb16 {b}, {a}",
            "sxtb16 {a}, {a}, ror #8",
            "ssub16 {b}, {b}, {zz}",
            "ssub16 {a}, {a}, {zz}",
            "strd {b}, {a}, [{d}], #32",
            "subs {n}, {n}, #1",
            "bne 5b",
            "4:",
            "add {s}, {s}, {skip}",
            "3:",
            "subs {rows}, {rows}, #1",
            "bhs 1b",
            s = inout(reg) src.as_ptr() => _,
            d = inout(reg) (x.as_mut_ptr() as *mut u32).wrapping_add(p * L) => _,
            rows = inout(reg) kh => _,
            words = in(reg) words,
            skip = in(reg) step - 4 * words,
            zz = in(reg) pair(z, z),
            n = out(reg) _,
            a = out(reg) _,
            b = out(reg) _,
            options(nostack),
        );
    }
    true
}

/// Packed 4-bit activations (whole words of 8) into pixel `p` of consecutive blocks, lanes
/// `16·(a − z)` (`zz16` holds `16·z` twice).
#[inline(always)]
fn convert4<'x, const L: usize, const P: usize>(
    src: &[u8],
    zz16: u32,
    mut blocks: impl Iterator<Item = &'x mut [[u32; L]; P]>,
    p: usize,
) {
    // One word of nibbles a0..a7: the lanes (0,4) (2,6) (1,5) (3,7), each 16·(a − z).
    let lanes = |w: u32| {
        let (e, o) = ((w << 4) & 0xF0F0_F0F0, w & 0xF0F0_F0F0);
        [ssub16(sxtb16(e), zz16), ssub16(sxtb16_ror8(e), zz16), ssub16(sxtb16(o), zz16), ssub16(sxtb16_ror8(o), zz16)]
    };
    if L == 8 {
        for (ws, xb) in src.chunks_exact(8).zip(blocks) {
            let (a, b) = (lanes(word(ws)), lanes(word(&ws[4..])));
            let d = [
                pack_lo(a[0], b[0]), // (0, 8)
                pack_hi(a[0], b[0]), // (4, 12)
                pack_lo(a[2], b[2]), // (1, 9)
                pack_hi(a[2], b[2]), // (5, 13)
                pack_lo(a[1], b[1]), // (2, 10)
                pack_hi(a[1], b[1]), // (6, 14)
                pack_lo(a[3], b[3]), // (3, 11)
                pack_hi(a[3], b[3]), // (7, 15)
            ];
            put_lanes(xb, p, core::array::from_fn(|j| d[j % 8]));
        }
    } else if L == 4 {
        for (ws, xb) in src.chunks_exact(4).zip(blocks) {
            let a = lanes(word(ws));
            put_lanes(xb, p, core::array::from_fn(|j| a[j % 4]));
        }
    } else {
        for ws in src.chunks_exact(4) {
            let a = lanes(word(ws));
            if let Some(xb) = blocks.next() {
                let d: &mut [u32] = &mut xb[p][..];
                d[0] = pack_lo(a[0], a[1]); // (0, 2)
                d[1] = pack_lo(a[2], a[3]); // (1, 3)
            }
            if let Some(xb) = blocks.next() {
                let d: &mut [u32] = &mut xb[p][..];
                d[0] = pack_hi(a[0], a[1]); // (4, 6)
                d[1] = pack_hi(a[2], a[3]); // (5, 7)
            }
        }
    }
}

/// Fully connected, the bytes of [`reference::fully_connected`], with its input as halfword
/// pairs in `scratch` (at least [`super::fully_connected_scratch_bytes`]). Returns the path that
/// ran: the DSP path for every shape except rows of more than 65,792 weights (the portable
/// kernel, see [`sums_fit`]) or too little scratch (the reference).
#[inline(always)]
pub fn fully_connected<const K: u32>(
    in_features: usize,
    out_features: usize,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let (n, m) = (in_features, out_features);
    let path = match layer.weight_bits {
        Bits::B8 if has(K, linked::WEIGHTS_8) => fc_at::<2, K>(n, m, layer, input, output, scratch),
        Bits::B4 if has(K, linked::WEIGHTS_4) => fc_at::<4, K>(n, m, layer, input, output, scratch),
        Bits::B2 if has(K, linked::WEIGHTS_2) => fc_at::<8, K>(n, m, layer, input, output, scratch),
        _ => Path::Scalar,
    };
    if path == Path::Scalar {
        // As in [`conv2d`].
        if K == linked::ALL {
            reference::fully_connected(n, m, layer, input, output);
        }
        return path;
    }
    reference::clear_tail(output, layer.rq.out, out_features);
    path
}

/// The input's format as the kernel set `K` can have it: 8 bits in a build without 4-bit
/// activations (the interpreter refuses models that have them). A constant there, which the
/// optimizer had found by itself while the format came as an argument, but not once it came in
/// a [`Layer`] (+5.6 K instructions and +0.5 KB of code in resnet8's int8 firmware).
#[inline(always)]
fn linked_input<const K: u32>(fmt: ActFormat) -> ActFormat {
    if has(K, linked::ACTS_4) {
        fmt
    } else {
        ActFormat { bits: Bits::B8, ..fmt }
    }
}

/// The output width a fully connected kernel stores: 8 bits in a build without 4-bit
/// activations ([`Interpreter::new`](crate::Interpreter::new) refuses models that have them),
/// so that the store is one `STRB` with no test of the width per output.
#[inline(always)]
fn out_bits<const K: u32>(rq: &Requant<'_>) -> Bits {
    if has(K, linked::ACTS_4) {
        rq.out.bits
    } else {
        Bits::B8
    }
}

/// [`fully_connected`] at the weight width of `L` lane pairs per word: the row's geometry and
/// the range test fold to constants per width (a tiny model's layers cost little more than
/// this choice).
#[inline(always)]
fn fc_at<const L: usize, const K: u32>(
    n: usize,
    m: usize,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let weight_bits = lane_bits(L);
    let row_bytes = weight_bits.packed_len(n);
    let (words, _) = row_words(row_bytes, weight_bits);
    if row_bytes == 0 || !sums_fit(n, weight_bits, linked_input::<K>(layer.in_fmt).bits, scale_shift(L)) {
        // As in [`conv2d`]: long rows run the portable kernel, linked with LONG_ROWS.
        if has(K, linked::LONG_ROWS) {
            return portable::fully_connected(n, m, layer, input, output, scratch);
        }
        return Path::Scalar;
    }
    let Layer { in_fmt, weights, ref rq, .. } = *layer;
    let in_fmt = linked_input::<K>(in_fmt);
    fc_impl::<L, K>(n, m, input, in_fmt, weights, row_bytes, words, rq, output, scratch)
}

/// The row form the last convolution or fully connected layer took through the assembly
/// ([`linked::HIGH_ROWS`], [`linked::OFFSET_ROWS`], 0 for 8-bit weights and layers that took
/// neither), with the `rows-taken` feature ([`super::rows_taken`]).
#[cfg(feature = "rows-taken")]
static ROWS_TAKEN: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

#[inline(always)]
fn record_rows(_form: u32) {
    #[cfg(feature = "rows-taken")]
    ROWS_TAKEN.store(_form, core::sync::atomic::Ordering::Relaxed);
}

/// [`ROWS_TAKEN`].
#[cfg(feature = "rows-taken")]
pub(crate) fn rows_taken() -> u32 {
    ROWS_TAKEN.load(core::sync::atomic::Ordering::Relaxed)
}

/// [`fully_connected`] for `L` lane pairs per weight word; [`Path::Scalar`] (nothing written)
/// when `scratch` is too small.
// The layer's fields one by one, as [`conv_impl`].
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn fc_impl<const L: usize, const K: u32>(
    in_features: usize,
    out_features: usize,
    input: &[u8],
    in_fmt: ActFormat,
    weights: &[u8],
    row_bytes: usize,
    words: usize,
    rq: &Requant<'_>,
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let Some(x) = Scratch::new(scratch).take::<[[u32; L]; 1]>(words) else {
        return Path::Scalar;
    };
    record_rows(0);
    let z = in_fmt.zero_point;
    let scale = scale_shift(L);
    // `sum_bound` of the rows, which [`fc_at`]'s `sums_fit` has bounded below 2^31.
    let bound = (in_features as u32).wrapping_mul(per_term(lane_bits(L), in_fmt.bits));
    // 4- and 2-bit rows whose scaled sums fit read each weight in the top bits of a halfword,
    // signed as they are; the others in offset binary.
    let is_high = has(K, linked::HIGH_ROWS) && high_lanes::<L>(rq, bound);
    // The assembly's offset-binary pairs, where the kernel set links them (else the pairs in
    // Rust below: the same bytes).
    let offset_rows = L == 2 || has(K, linked::OFFSET_ROWS);
    // The lanes' sum, for the 4- and 2-bit rows read in offset binary (below; 0 at 8 bits).
    let x_sum = if in_fmt.bits == Bits::B8 || !has(K, linked::ACTS_4) {
        if L == 2 {
            convert_pairs(&input[..in_features], z, x);
            0
        } else if is_high {
            convert(&input[..in_features], z, x, 0);
            0
        } else {
            convert_summed(&input[..in_features], z, x)
        }
    } else {
        convert4_summed(&input[..in_features.div_ceil(2)], in_features, z, x)
    };
    let x = &x[..];
    let pairs = out_features / 2;
    let mut done = 0;
    let out4 = out_bits::<K>(rq) == Bits::B4;
    // (Made after the conversion: held across it, the constants cost 8-bit layers 25
    // instructions.)
    let (scale_held, fits) = if is_high { (high_scale(L), true) } else { (scale, FcQ::sums_fit(rq, scale, bound)) };
    let q = FcQ::new::<K>(rq, scale_held, out_features, fits);
    // A pair's two outputs are two bytes, or two nibbles of one (4-bit activations).
    let pairs_asm: Option<FcPairsAsm> = match (out4, is_high) {
        (true, true) => Some(fc_pairs::<L, true, true>),
        (false, true) => Some(fc_pairs::<L, false, true>),
        (true, false) if offset_rows => Some(fc_pairs::<L, true, false>),
        (false, false) if offset_rows => Some(fc_pairs::<L, false, false>),
        _ => None,
    };
    if let (Some(q), Some(pairs_asm), true) = (q, pairs_asm, output.len() >= out_bits::<K>(rq).packed_len(out_features))
    {
        record_rows(match (L, is_high) {
            (2, _) => 0,
            (_, true) => linked::HIGH_ROWS,
            (_, false) => linked::OFFSET_ROWS,
        });
        let out_byte = |pair: usize| if out4 { pair } else { 2 * pair };
        // Rows read in offset binary, `w + o`, have their products come out scaled by
        // `2^scale` (the lanes masked in the top bits of a byte): each sum starts at
        // `−o·Σx·2^scale` (every lane of every block, the padding's being 0; a wrapping start
        // is exact, as every sum that fits is, in 32-bit two's complement).
        let start = if is_high {
            0
        } else {
            x_sum.wrapping_mul(match L {
                2 => 0,
                4 => -8 * 16,
                _ => -2 * 64,
            })
        };
        let xp = x.as_ptr() as *const u32;
        let bias_bytes = Biases::bytes_per_channel(rq.bias.exponent);
        let (bias, mult) = (rq.bias.bytes, rq.multiplier.bytes);
        // Pairs whose second row's last word (read whole, whatever follows the row: those bytes
        // meet lanes of 0) lies inside the weights.
        let span = 4 * words;
        let fit = if weights.len() >= span + row_bytes {
            ((weights.len() - span - row_bytes) / (2 * row_bytes) + 1).min(pairs)
        } else {
            0
        };
        while done < fit {
            let at = 2 * done;
            // SAFETY: pairs `done..fit` read rows `2·done..2·fit` (`4·words` bytes from each row's
            // start, inside `weights` by `fit`), `words` blocks of `x`, `2·bias_bytes` bias and 4
            // multiplier bytes per pair (`FcQ::new` checked them for every output channel) and
            // write 2 output bytes per pair, 1 with 4-bit outputs (checked above).
            let left = unsafe {
                pairs_asm(
                    weights.as_ptr().add(at * row_bytes),
                    row_bytes,
                    xp,
                    words,
                    bias.as_ptr().add(bias_bytes * at),
                    mult.as_ptr().add(2 * at),
                    output.as_mut_ptr().add(out_byte(done)),
                    fit - done,
                    &q,
                    start,
                )
            };
            done = fit - left;
            if left > 0 {
                // A pair whose requantization the assembly leaves out (a multiplier beyond its
                // range, a sum that overflows when scaled): the general form.
                fc_pair::<L, K>(done, weights, row_bytes, x, whole_sum(row_bytes, x), rq, output, scale);
                done += 1;
            }
        }
        // Rows shorter than a word (a first layer on a few features): the last pairs, whose
        // words would read past the weights, from a copy of their rows, zero-padded. (The copy
        // and the slice only for such rows: made for every layer, they cost each 20 instructions.)
        const COPY: usize = 24;
        let tail = if row_bytes < 4 && done == fit {
            weights.get(2 * done * row_bytes..2 * pairs * row_bytes).unwrap_or(&[])
        } else {
            &[]
        };
        if !tail.is_empty() && tail.len() + 4 <= COPY {
            let mut copy = [0u8; COPY];
            for (d, &b) in copy.iter_mut().zip(tail) {
                *d = b;
            }
            let at = 2 * done;
            // SAFETY: as above, the rows from `copy`: its last row's word ends at most 4 bytes
            // past the rows (`row_bytes < 4`, one word a row), inside `copy`.
            let left = unsafe {
                pairs_asm(
                    copy.as_ptr(),
                    row_bytes,
                    xp,
                    words,
                    bias.as_ptr().add(bias_bytes * at),
                    mult.as_ptr().add(2 * at),
                    output.as_mut_ptr().add(out_byte(done)),
                    pairs - done,
                    &q,
                    start,
                )
            };
            // From a pair the assembly leaves out, the rest in Rust below.
            done = pairs - left;
        }
    }
    if done < pairs {
        let x_sum = whole_sum(row_bytes, x);
        for i in done..pairs {
            fc_pair::<L, K>(i, weights, row_bytes, x, x_sum, rq, output, scale);
        }
    }
    if out_features % 2 == 1 {
        let c = out_features - 1;
        if let Some(row) = weights.get(c * row_bytes..(c + 1) * row_bytes) {
            let [acc] = dot(row, x);
            put(output, out_bits::<K>(rq), c, ChannelQ::new(rq, c).apply_scaled(acc, scale));
        }
    }
    Path::Dsp
}

/// The `x_sum` of [`dot_rows2`]: the lanes of the blocks of a row's whole words (none at 8 bits).
fn whole_sum<const L: usize>(row_bytes: usize, x: &[[[u32; L]; 1]]) -> i32 {
    if L == 2 {
        0
    } else {
        lane_sum(&x[..(row_bytes / 4).min(x.len())])
    }
}

/// Output channels `2i` and `2i + 1` of [`fc_impl`] in Rust: the general requantization, any
/// bias form and output width (`x_sum` from [`whole_sum`]).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn fc_pair<const L: usize, const K: u32>(
    i: usize,
    weights: &[u8],
    row_bytes: usize,
    x: &[[[u32; L]; 1]],
    x_sum: i32,
    rq: &Requant<'_>,
    output: &mut [u8],
    scale: u32,
) {
    let Some(rows) = weights.get(2 * i * row_bytes..(2 * i + 2) * row_bytes) else {
        return;
    };
    let (a, b) = rows.split_at(row_bytes);
    let acc = dot_rows2(a, b, x, x_sum);
    put(output, out_bits::<K>(rq), 2 * i, ChannelQ::new(rq, 2 * i).apply_scaled(acc[0], scale));
    put(output, out_bits::<K>(rq), 2 * i + 1, ChannelQ::new(rq, 2 * i + 1).apply_scaled(acc[1], scale));
}

/// A fully connected layer's requantization constants for [`fc_pairs`], in the order its `LDM`
/// loads them: for layers with 32-bit biases, or 16-bit biases `b·2^e` where
/// `e + scale ≤ 16` (≤ 15 for scaled sums, whose bound must be below 2^30 too).
#[repr(C)]
struct FcQ {
    /// `2^bias_shift` where it fits a signed halfword (`bias_shift ≤ 14`: the bias goes in with
    /// one `SMLABB`/`SMLATB` a sum), else 0 (the shifts, out of line).
    bias_pow: u32,
    /// `shift_base + 19 − scale`: a channel's `v = u + 3 − scale`, `u = 16 + s`, is this plus its
    /// multiplier word's top 4 bits.
    base: i32,
    z: i32,
    /// The clamp's bounds, each in every byte (`SSUB8`/`SEL` lanes).
    lo: u32,
    hi: u32,
    /// `e + scale`, the shift of a 16-bit bias for the sums held scaled; 32 for 32-bit biases.
    bias_shift: u32,
}

impl FcQ {
    /// `2^shift` for a 16-bit bias `b·2^e` and sums held scaled by `2^scale`; 32 for 32-bit
    /// biases.
    #[inline(always)]
    fn bias_shift(rq: &Requant<'_>, scale: u32) -> u32 {
        if rq.bias.exponent == BIAS_I32 {
            32
        } else {
            rq.bias.exponent as u32 + scale
        }
    }

    /// Whether [`fc_pairs`] holds the sums of rows with this `sum_bound` at `scale` (at most 15)
    /// with no test of overflow but a 32-bit bias's.
    #[inline(always)]
    fn sums_fit(rq: &Requant<'_>, scale: u32, sum_bound: u32) -> bool {
        let bias_shift = FcQ::bias_shift(rq, scale);
        // A 32-bit bias's sum is tested in the assembly; the sum itself, at the offset-binary
        // scales, is bounded by [`fc_at`]'s `sums_fit` ([`high_lanes`] leaves 32-bit biases
        // out). A 16-bit bias `b·2^e` (`|b| ≤ 2^15`) and a scaled sum together below 2^31,
        // `2^(15 + e) + bound < 2^(31 − scale)` (no wrap: `e ≤ 16 − scale`), so that their sum
        // needs no test; unscaled sums fit by `sums_fit`.
        bias_shift == 32
            || bias_shift <= 16 && (scale == 0 || sum_bound < (1 << (31 - scale)) - (1 << (15 + bias_shift - scale)))
    }

    /// The constants for sums held scaled by `2^scale`, where [`FcQ::sums_fit`] holds
    /// (`sums_fit`), if the biases and multipliers cover `channels`.
    #[inline(always)]
    fn new<const K: u32>(rq: &Requant<'_>, scale: u32, channels: usize, sums_fit: bool) -> Option<FcQ> {
        let bias_shift = FcQ::bias_shift(rq, scale);
        let fits = sums_fit
            && rq.bias.bytes.len() >= Biases::bytes_per_channel(rq.bias.exponent) * channels
            && rq.multiplier.bytes.len() >= 2 * channels;
        fits.then(|| FcQ {
            bias_pow: if bias_shift <= 14 { 1 << bias_shift } else { 0 },
            bias_shift,
            base: rq.multiplier.shift_base as i32 + 19 - scale as i32,
            z: rq.out.zero_point,
            lo: u32::from_ne_bytes([rq.min as u8; 4]),
            hi: u32::from_ne_bytes([rq.max as u8; 4]),
        })
    }
}

/// One step of [`fc_pairs`]' 8-bit dot product: a word of each row (r0: row `a`, r0 + r1: row
/// `b`) against a block (r2), into r8 and r9.
macro_rules! fc_step_w8 {
    () => {
        concat!(
            "ldr r4, [r0, r1]\n",
            "ldr r5, [r0], #4\n",
            "ldrd r10, r11, [r2], #8\n",
            "sxtb16 r12, r5\n",
            "sxtb16 r5, r5, ror #8\n",
            "smlad r8, r12, r10, r8\n",
            "smlad r8, r5, r11, r8\n",
            "sxtb16 r12, r4\n",
            "sxtb16 r4, r4, ror #8\n",
            "smlad r9, r12, r10, r9\n",
            "smlad r9, r4, r11, r9\n",
        )
    };
}

/// One step of [`fc_pairs`]' 4-bit dot product: a word of each row in offset binary against a
/// block's four words, lanes (0, 4), (2, 6), then (1, 5), (3, 7). Sets no flags.
macro_rules! fc_step_w4 {
    () => {
        concat!(
            "ldr r4, [r0, r1]\n",
            "ldr r5, [r0], #4\n",
            "eor r4, r4, #0x88888888\n",
            "eor r5, r5, #0x88888888\n",
            fc_lanes!(", lsl #4", ", lsr #4"),
            fc_lanes!("", ", lsr #8"),
        )
    };
}

/// [`fc_step_w4`] for rows read as they are, each nibble masked into the top bits of its
/// halfword lane (`0xF000F000`), where its sign is the lane's: `2^12·w`, no `EOR`. Sets no
/// flags.
macro_rules! fc_step_w4_high {
    () => {
        concat!(
            "ldr r4, [r0, r1]\n",
            "ldr r5, [r0], #4\n",
            fc_lanes!(", lsl #12", ", lsl #4"),
            fc_lanes!(", lsl #8", ""),
        )
    };
}

/// Lanes of the two rows' words (r5: row `a`, r4: row `b`), each word shifted by `$lo` and
/// `$hi` (shifter operands) under the mask in lr, against the next two block words. The mask
/// keeps each lane's weight in the top bits of its halfword's low byte for words in offset
/// binary (`0x00F000F0`, `0x00C000C0`: products scaled by 16 or 64, as the sums are held), or of
/// the halfword itself for words as they are (`0xF000F000`, `0xC000C000`: `2^12·w`, `2^14·w`).
macro_rules! fc_lanes {
    ($lo:literal, $hi:literal) => {
        concat!(
            "ldrd r10, r11, [r2], #8\n",
            "and r12, lr, r5",
            $lo,
            "\n",
            "smlad r8, r12, r10, r8\n",
            "and r12, lr, r5",
            $hi,
            "\n",
            "smlad r8, r12, r11, r8\n",
            "and r12, lr, r4",
            $lo,
            "\n",
            "smlad r9, r12, r10, r9\n",
            "and r12, lr, r4",
            $hi,
            "\n",
            "smlad r9, r12, r11, r9\n",
        )
    };
}

/// The requantization of one sum (`$a`, scaled, biased) with the multiplier word in the low
/// (`$w` = "0") or high ("16") half of r1: `v = base + (w >> 12)`; for `v ≤ 19` (`u ≤ 16`, and
/// down to `u = −3`, where `m·2^u` is still the integer `(w & 0xFFF)·2^v`) one `SMMLAR` with
/// `(w & 0xFFF) << v` adds the rounding and `z` (`ChannelQ::apply_high_word`), else the
/// out-of-line form at `$big`, which returns to `$back`; then the clamp.
macro_rules! fc_requant {
    ($a:literal, $w:literal, $top:literal, $big:literal, $back:literal) => {
        concat!(
            "ubfx r5, r1, #",
            $top,
            ", #4\n",
            "add r5, r5, r2\n",
            "cmp r5, #19\n",
            "bhi ",
            $big,
            "f\n",
            "ubfx r12, r1, #",
            $w,
            ", #12\n",
            "lsl r12, r12, r5\n",
            $back,
            ":\n",
            "smmlar ",
            $a,
            ", ",
            $a,
            ", r12, r3\n",
        )
    };
}

/// The pair's two requantized values (r8, r9) saturated to bytes and clamped together: r8 holds
/// them as a halfword, first in the low byte, each between the packed clamp bytes in r10 (lo)
/// and r11 (hi) (`SSUB8` sets a lane's GE flag where it is at least the bound, `SEL` keeps it
/// there: 6 instructions for the two where a compare and a conditional move per bound took 12).
macro_rules! fc_clamp_pair {
    () => {
        concat!(
            "ssat r8, #8, r8\n",
            "ssat r9, #8, r9\n",
            "bfi r8, r9, #8, #8\n",
            "ssub8 r12, r8, r10\n",
            "sel r8, r8, r10\n",
            "ssub8 r12, r11, r8\n",
            "sel r8, r8, r11\n",
        )
    };
}

/// [`fc_requant`]'s multipliers beyond `u = 16`: the excess `e = v − 19` moves onto the sum when
/// `sum·2^e` fits (`(w & 0xFFF) << 19` is below 2^31); otherwise, and for `u < −3`, the assembly
/// stops at this pair (label 8).
macro_rules! fc_requant_big {
    ($a:literal, $w:literal, $back:literal) => {
        concat!(
            "sub r5, r5, #19\n",
            "cmp r5, #31\n",
            "bhi 8f\n",
            "lsl r12, ",
            $a,
            ", r5\n",
            "asr r4, r12, r5\n",
            "cmp r4, ",
            $a,
            "\n",
            "bne 8f\n",
            "mov ",
            $a,
            ", r12\n",
            "ubfx r12, r1, #",
            $w,
            ", #12\n",
            "lsl r12, r12, #19\n",
            "b ",
            $back,
            "b\n",
        )
    };
}

/// The 32-bit biases (r5, r4) added to the sums (r8, r9), both scaled, stopping at the pair
/// (label 8) if either addition overflows.
macro_rules! scaled_bias_add {
    () => {
        concat!("adds r8, r5, r8\n", "bvs 8f\n", "adds r9, r4, r9\n", "bvs 8f\n",)
    };
}

/// The 32-bit biases (r5, r4) times `2^$s`, stopping at the pair (label 8) where one does not
/// fit.
macro_rules! wide_bias_scaled {
    ($s:literal) => {
        concat!(
            "lsl r0, r5, #",
            $s,
            "\n",
            "asr r12, r0, #",
            $s,
            "\n",
            "cmp r12, r5\n",
            "bne 8f\n",
            "mov r5, r0\n",
            "lsl r0, r4, #",
            $s,
            "\n",
            "asr r12, r0, #",
            $s,
            "\n",
            "cmp r12, r4\n",
            "bne 8f\n",
            "mov r4, r0\n",
        )
    };
}

/// [`fc_pairs`] at one output width.
type FcPairsAsm =
    unsafe fn(*const u8, usize, *const u32, usize, *const u8, *const u8, *mut u8, usize, &FcQ, i32) -> usize;

/// Pairs of output channels of a fully connected layer (8-bit outputs, or 4-bit with `OUT4`),
/// entirely in assembly (the per-output work of a narrow layer is most of its cost, and in Rust
/// it was spilled around the dot product: about 45 instructions an output besides it, here
/// 20): per pair, the two rows' dot product as [`dot2_w8`], [`dot2_w4`] or [`dot2_w2`] (the
/// sums starting at `start`, `−o·Σx·2^scale` for the offset-binary widths, whose products the
/// masks scale by `2^scale`; with `HIGH`, 4- and 2-bit weights as they are, masked into the top
/// of their halfword lanes, which leaves out the offset's `EOR` per row word and the input's
/// lane sum, for layers whose sums and biases fit 32 bits at [`high_scale`]), each bias added (a 16-bit one with `SMLABB`/`SMLATB` by
/// [`FcQ::bias_pow`]; a 32-bit bias whose scaled form or sum overflows stops the assembly), the
/// requantization of [`fc_requant`] and the stores. Returns the pairs left: 0, or the
/// count from the pair it stopped at, which the caller runs in Rust ([`fc_pair`]).
///
/// # Safety
/// `pairs ≥ 1` and `words ≥ 1`; `4·words` bytes are readable at `w + r·row_bytes` for
/// `r < 2·pairs`; `x` is valid for `words·L` words (word-aligned); `bias` for `2·pairs` biases
/// (of `q`'s form) and `mult` for `4·pairs` bytes; `out` writable for `2·pairs` bytes (`pairs`
/// with `OUT4`).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
unsafe fn fc_pairs<const L: usize, const OUT4: bool, const HIGH: bool>(
    w: *const u8,
    row_bytes: usize,
    x: *const u32,
    words: usize,
    bias: *const u8,
    mult: *const u8,
    out: *mut u8,
    pairs: usize,
    q: &FcQ,
    start: i32,
) -> usize {
    let left: usize;
    // `$bias`: the 16-bit biases added by `bias_pow` (`FcQ::new` made sure that the sum cannot
    // overflow; for 4- and 2-bit weights the bias shift includes the scale of the sums);
    // `$shifted` the same by shifts of 15 or 16; `$wide` for 32-bit biases, each scaled,
    // stopping at the pair where one does not fit.
    macro_rules! pair_loop {
        ($store:expr; $bias:expr, $shifted:expr, $wide:expr; $setup:expr; $($dot:expr),+ $(,)?) => {
            // SAFETY: the caller's bounds; weight words, biases and multiplier words may be
            // unaligned (Armv7-M allows LDR), the converted input and the pushed state are
            // word-aligned (LDRD); the assembly pops what it pushes.
            unsafe {
                asm!(
                    // The output pointer and the pairs left stay in r6 and r7 (saved here: the
                    // compiler keeps them for itself), the rest of the state on the stack.
                    "push {{r6, r7}}",
                    "mov r6, r8",
                    "mov r7, r9",
                    "push {{r0, r1, r2, r3, r4, r5, r10, r11}}",
                    $setup,
                    "1:",
                    // The pair's rows, the next pair's, the input blocks and the sums' start.
                    "ldrd r0, r1, [sp]",
                    "add r3, r0, r1, lsl #1",
                    "str r3, [sp]",
                    "ldrd r2, r3, [sp, #8]",
                    "ldr r8, [sp, #28]",
                    "mov r9, r8",
                    $($dot,)+
                    // bias_shift, base, z, lo, hi; the two biases and multiplier words.
                    "ldr r0, [sp, #24]",
                    "ldm r0, {{r1, r2, r3, r10, r11}}",
                    "ldrd r0, r12, [sp, #16]",
                    "cmp r1, #0",
                    "beq 23f",
                    "ldr r4, [r0], #4",
                    $bias,
                    // The two multiplier words (r1 from here on).
                    "ldr r1, [r12], #4",
                    "strd r0, r12, [sp, #16]",
                    "24:",
                    fc_requant!("r8", "0", "12", "5", "6"),
                    fc_requant!("r9", "16", "28", "7", "22"),
                    fc_clamp_pair!(),
                    $store,
                    "subs r7, r7, #1",
                    "bne 1b",
                    "b 9f",
                    "5:",
                    fc_requant_big!("r8", "0", "6"),
                    "7:",
                    fc_requant_big!("r9", "16", "22"),
                    // 16-bit biases shifted by 15 or 16 (`bias_shift`), or 32-bit biases.
                    "23:",
                    "ldr r1, [sp, #24]",
                    "ldr r1, [r1, #20]",
                    "cmp r1, #32",
                    "beq 25f",
                    "ldr r4, [r0], #4",
                    "sxth r5, r4",
                    "asr r4, r4, #16",
                    "lsl r5, r5, r1",
                    "lsl r4, r4, r1",
                    "ldr r1, [r12], #4",
                    "strd r0, r12, [sp, #16]",
                    $shifted,
                    "b 24b",
                    "25:",
                    "ldr r5, [r0], #4",
                    "ldr r4, [r0], #4",
                    "ldr r1, [r12], #4",
                    "strd r0, r12, [sp, #16]",
                    $wide,
                    "b 24b",
                    "8:",
                    "9:",
                    "mov r0, r7",
                    "add sp, sp, #32",
                    "pop {{r6, r7}}",
                    inout("r0") w => left,
                    inout("r1") row_bytes => _,
                    inout("r2") x => _,
                    inout("r3") words => _,
                    inout("r4") bias => _,
                    inout("r5") mult => _,
                    inout("r8") out => _,
                    inout("r9") pairs => _,
                    inout("r10") q as *const FcQ => _,
                    inout("r11") start => _,
                    out("r12") _,
                    out("lr") _,
                )
            }
        };
    }
    // The pair's two 16-bit biases (r4) added: by `SMLABB`/`SMLATB` with `bias_pow` (r1), or
    // shifted (r5, r4), the same at every width.
    macro_rules! fc_bias16 {
        () => {
            concat!("smlabb r8, r4, r1, r8\n", "smlatb r9, r4, r1, r9\n")
        };
        (shifted) => {
            concat!("add r8, r8, r5\n", "add r9, r9, r4\n")
        };
    }
    // The pair's two outputs: two bytes, or (4-bit output) two nibbles of one byte.
    macro_rules! by_width {
        ($store:expr) => {
    match (L, HIGH) {
                (2, _) => pair_loop!(
                    $store;
                    fc_bias16!(),
                    fc_bias16!(shifted),
                    concat!("add r8, r8, r5\n", "add r9, r9, r4\n");
                    "";
                    // One word if the count is odd, two more if its second bit is set (the flags
                    // of each `lsrs` survive the steps), then four per iteration: 13 instructions
                    // of loop for a pair of 16-word rows where two per iteration took 19.
                    "lsrs r3, r3, #1",
                    "bcc 2f",
                    fc_step_w8!(),
                    "2:",
                    "lsrs r3, r3, #1",
                    "bcc 5f",
                    fc_step_w8!(),
                    fc_step_w8!(),
                    "5:",
                    "beq 4f",
                    "3:",
                    fc_step_w8!(),
                    fc_step_w8!(),
                    fc_step_w8!(),
                    fc_step_w8!(),
                    "subs r3, r3, #1",
                    "bne 3b",
                    "4:",
                ),
                (4, true) => pair_loop!(
                    $store;
                    fc_bias16!(),
                    fc_bias16!(shifted),
                    concat!(wide_bias_scaled!("12"), scaled_bias_add!());
                    // The mask of the weights' lanes (times 2^12), kept in lr for the whole call.
                    "mov lr, #0xF000F000";
                    "lsrs r3, r3, #1",
                    "bcc 2f",
                    fc_step_w4_high!(),
                    "2:",
                    "beq 4f",
                    "3:",
                    fc_step_w4_high!(),
                    fc_step_w4_high!(),
                    "subs r3, r3, #1",
                    "bne 3b",
                    "4:",
                ),
                (4, false) => pair_loop!(
                    $store;
                    fc_bias16!(),
                    fc_bias16!(shifted),
                    concat!(wide_bias_scaled!("4"), scaled_bias_add!());
                    // The mask of the weights' lanes (times 16), kept in lr for the whole call.
                    "mov lr, #0x00F000F0";
                    // As the 8-bit loop: one word if the count is odd, then two per iteration.
                    "lsrs r3, r3, #1",
                    "bcc 2f",
                    fc_step_w4!(),
                    "2:",
                    "beq 4f",
                    "3:",
                    fc_step_w4!(),
                    fc_step_w4!(),
                    "subs r3, r3, #1",
                    "bne 3b",
                    "4:",
                ),
                (_, true) => pair_loop!(
                    $store;
                    fc_bias16!(),
                    fc_bias16!(shifted),
                    concat!(wide_bias_scaled!("14"), scaled_bias_add!());
                    // The mask of the weights' lanes (times 2^14), kept in lr for the whole call.
                    "mov lr, #0xC000C000";
                    "3:",
                    "ldr r4, [r0, r1]",
                    "ldr r5, [r0], #4",
                    fc_lanes!(", lsl #14", ", lsl #6"),
                    fc_lanes!(", lsl #12", ", lsl #4"),
                    fc_lanes!(", lsl #10", ", lsl #2"),
                    fc_lanes!(", lsl #8", ""),
                    "subs r3, r3, #1",
                    "bne 3b",
                ),
                (_, false) => pair_loop!(
                    $store;
                    fc_bias16!(),
                    fc_bias16!(shifted),
                    concat!(wide_bias_scaled!("6"), scaled_bias_add!());
                    // The mask of the weights' lanes (times 64), kept in lr for the whole call.
                    "mov lr, #0x00C000C0";
                    "3:",
                    "ldr r4, [r0, r1]",
                    "ldr r5, [r0], #4",
                    "eor r4, r4, #0xAAAAAAAA",
                    "eor r5, r5, #0xAAAAAAAA",
                    fc_lanes!(", lsl #6", ", lsr #2"),
                    fc_lanes!(", lsl #4", ", lsr #4"),
                    fc_lanes!(", lsl #2", ", lsr #6"),
                    fc_lanes!("", ", lsr #8"),
                    "subs r3, r3, #1",
                    "bne 3b",
                ),
            }
        };
    }
    if OUT4 {
        by_width!(concat!(
            "and r9, r8, #15\n",
            "ubfx r12, r8, #8, #4\n",
            "orr r9, r9, r12, lsl #4\n",
            "strb r9, [r6], #1\n"
        ))
    } else {
        by_width!("strh r8, [r6], #2\n")
    }
    left
}

/// Residual add, same signature and bytes as [`reference::add`]: four elements per step when
/// every tensor is 8-bit, or the inputs are and the output is 4-bit with no clamp but its range,
/// and `17 ≤ r ≤ 39` (`r = 31 − shift`, what compiled models have); the portable kernel
/// otherwise and for the last `n mod 4`.
///
/// As the AVX2 kernel does it: each multiplier split into signed halves `m = h·2^16 + l`, the
/// pairs `(dA, dB)` (`d = v − z`, SXTB16, SSUB16, PKHBT/PKHTB; [`add_steps_plain`] folds the
/// zero points into the constants instead) go through SMLAD against
/// `(hA, hB)`, accumulating `R = 2^(r−17) + zo·2^(r−16)` (rounding and output zero point), and
/// SMUAD against `(lA, lB)`; then `q = (H + (L >> 16)) >> (r − 16)` is contract §5's
/// `(dA·mA + dB·mB + 2^(r−1)) >> r` plus `zo` exactly (floor divisions nest, and `zo·2^(r−16)`
/// passes through the shift whole), and the clamp.
pub fn add<const K: u32>(
    arena: &mut [u8],
    n: usize,
    a: (usize, ActFormat),
    b: (usize, ActFormat),
    out: usize,
    rq: &AddRequant,
) {
    // 8-bit inputs into a 4-bit output with no clamp but its range (a residual sum HAWQ keeps at
    // 4 bits): the same steps, each four results packed into a halfword.
    let nibbles = has(K, linked::ACTS_4) && rq.out.bits == Bits::B4 && (rq.min, rq.max) == (-8, 7);
    let plan = if nibbles {
        AddPlan::new_to_nibbles(arena.len(), n, a, b, out, rq, 39)
    } else {
        AddPlan::new(arena.len(), n, a, b, out, rq, 39)
    };
    let Some(plan) = plan else {
        return add_elsewhere::<K>(arena, n, a, b, out, rq);
    };
    let (r, [ha, la, hb, lb]) = (plan.r, plan.halves);
    let round = (1i64 << (r - 17)) + ((rq.out.zero_point as i64) << (r - 16));
    if round.abs() >= 1 << 30 {
        return add_elsewhere::<K>(arena, n, a, b, out, rq);
    }
    let (mh, ml) = (pair(ha, hb), pair(la, lb));
    let (za, zb) = (pair(a.1.zero_point, a.1.zero_point), pair(b.1.zero_point, b.1.zero_point));
    let (round, sh) = (round as i32, (r - 16) as u32);
    let steps = n / 4;
    let k = AddK { a: a.0, b: b.0, out, za, zb, mh, ml, round, sh, lo: rq.min, hi: rq.max };
    if nibbles {
        if !add_steps_plain::<true>(arena, steps, &k) {
            return add_elsewhere::<K>(arena, n, a, b, out, rq);
        }
    } else if (rq.min, rq.max) == (-128, 127) {
        // The output range as the clamp: one SSAT per element.
        if !add_steps_plain::<false>(arena, steps, &k) {
            add_steps::<true>(arena, steps, &k);
        }
    } else {
        add_steps::<false>(arena, steps, &k);
    }
    let done = 4 * steps;
    if done < n {
        let out_done = if nibbles { out + done / 2 } else { out + done };
        add_elsewhere::<K>(arena, n - done, (a.0 + done, a.1), (b.0 + done, b.1), out_done, rq);
    }
}

/// What [`add`]'s steps do not take: the portable kernel, or, in a build whose kernel set leaves
/// 4-bit activations out (every tensor 8-bit), the reference, whose code is a fraction of the
/// portable one's four loops (it runs the last `n mod 4` elements and adds with shifts outside
/// the steps' range, which compiled models do not have).
fn add_elsewhere<const K: u32>(
    arena: &mut [u8],
    n: usize,
    a: (usize, ActFormat),
    b: (usize, ActFormat),
    out: usize,
    rq: &AddRequant,
) {
    if has(K, linked::ACTS_4) {
        portable::add(arena, n, a, b, out, rq)
    } else {
        reference::add(arena, n, a, b, out, rq)
    }
}

/// One element of [`add_steps_plain`] from its pair `(a, b)` in `$x` (r3: `(hA, hB)`, r4:
/// `(lA, lB)`, r5 and r6 their sums' start, r7 the shift): `(H + (L >> 16)) >> sh`, saturated to
/// `$bits` bits, into `$q` (`$x` and r9 consumed).
macro_rules! add_element {
    ($x:literal, $q:literal, $bits:literal) => {
        concat!(
            "smlad r9, ",
            $x,
            ", r3, r5\n",
            "smlad ",
            $x,
            ", ",
            $x,
            ", r4, r6\n",
            "add r9, r9, ",
            $x,
            ", asr #16\n",
            "asr r9, r9, r7\n",
            "ssat ",
            $q,
            ", #",
            $bits,
            ", r9\n",
        )
    };
}

/// The constants of [`add`]'s steps.
struct AddK {
    a: usize,
    b: usize,
    out: usize,
    za: u32,
    zb: u32,
    mh: u32,
    ml: u32,
    round: i32,
    sh: u32,
    lo: i32,
    hi: i32,
}

/// `steps` groups of four elements of [`add`] (`PLAIN`: the clamp is the 8-bit range).
#[inline(always)]
fn add_steps<const PLAIN: bool>(arena: &mut [u8], steps: usize, k: &AddK) {
    for i in 0..steps {
        let o = 4 * i;
        let (wa, wb) = (word(&arena[k.a + o..k.a + o + 4]), word(&arena[k.b + o..k.b + o + 4]));
        let (a02, a13) = (ssub16(sxtb16(wa), k.za), ssub16(sxtb16_ror8(wa), k.za));
        let (b02, b13) = (ssub16(sxtb16(wb), k.zb), ssub16(sxtb16_ror8(wb), k.zb));
        // (dA, dB) of elements 0, 1, 2, 3.
        let x = [pack_lo(a02, b02), pack_lo(a13, b13), pack_hi(a02, b02), pack_hi(a13, b13)];
        let v = x.map(|x| {
            let q = (smlad(x, k.mh, k.round) + (smuad(x, k.ml) >> 16)) >> k.sh;
            (if PLAIN { q.clamp(-128, 127) } else { q.max(k.lo).min(k.hi) }) as u8
        });
        arena[k.out + o..k.out + o + 4].copy_from_slice(&v);
    }
}

/// [`add_steps`] with the output range as the clamp, in assembly: 36 instructions per four
/// elements where the Rust loop took 76 (its bounds tested per element and per tensor, its
/// constants reloaded from the stack); with `NIBBLES`, into a 4-bit output (`SSAT` to 4 bits,
/// four nibbles a halfword). The zero points join the constants instead of being subtracted
/// from every lane: `SMLAD` of the raw pairs `(a, b)` against `(hA, hB)` accumulating
/// `round − zA·hA − zB·hB`, and against `(lA, lB)` accumulating `−(zA·lA + zB·lB)`, are the
/// same two sums exactly (every term is an integer well inside 32 bits). False, nothing written,
/// when those constants or the tensors do not fit.
fn add_steps_plain<const NIBBLES: bool>(arena: &mut [u8], steps: usize, k: &AddK) -> bool {
    let [za, zb] = [k.za, k.zb].map(|z| z as i16 as i64);
    let half = |m: u32, hi: bool| if hi { (m >> 16) as i16 as i64 } else { m as i16 as i64 };
    let round_h = k.round as i64 - za * half(k.mh, false) - zb * half(k.mh, true);
    let low = -(za * half(k.ml, false) + zb * half(k.ml, true));
    let (Ok(round_h), Ok(low)) = (i32::try_from(round_h), i32::try_from(low)) else {
        return false;
    };
    let len = 4 * steps;
    let out_len = if NIBBLES { 2 * steps } else { len };
    let fits = |o: usize, bytes: usize| o.checked_add(bytes).is_some_and(|e| e <= arena.len());
    if !(fits(k.a, len) && fits(k.b, len) && fits(k.out, out_len)) {
        return false;
    }
    if steps == 0 {
        return true;
    }
    let base = arena.as_mut_ptr();
    let a = base.wrapping_add(k.a);
    // The steps' assembly, its output stored by `$store` through r2, each result saturated to
    // `$bits` and the last three packed in at `$at1..$at3`.
    macro_rules! steps_asm {
        ($r2:expr, $bits:literal, $at1:literal, $at2:literal, $at3:literal, $store:literal) => {
            // SAFETY: `steps ≥ 1` words of each input from `a` and `b`, and `out_len` bytes from
            // `out`, inside the arena (checked); `b` is reached as `p + (b − a)` from the walking
            // pointer `p` (a wrapping offset), the output through r2 (see the callers). Each step
            // reads its two words before it writes its output, which is disjoint from them or
            // trails them (the same start: `AddPlan`). LDR/STR/STRH may be unaligned (Armv7-M);
            // r6 and r7 are saved and restored; the assembly pops what it pushes.
            unsafe {
                asm!(
                    "push {{r6, r7}}",
                    "mov r6, r8",
                    "mov r7, r9",
                    // [sp]: the end of `a`.
                    "push {{r10, r11}}",
                    "1:",
                    "ldr r9, [r0, r1]",
                    "ldr r8, [r0], #4",
                    "sxtb16 r10, r8",
                    "sxtb16 r8, r8, ror #8",
                    "sxtb16 r11, r9",
                    "sxtb16 r9, r9, ror #8",
                    // (a, b) of elements 0, 2, 1, 3.
                    "pkhbt r12, r10, r11, lsl #16",
                    "pkhtb r10, r11, r10, asr #16",
                    "pkhbt r11, r8, r9, lsl #16",
                    "pkhtb r8, r9, r8, asr #16",
                    add_element!("r12", "lr", $bits),
                    add_element!("r11", "r9", $bits),
                    concat!("bfi lr, r9, #", $at1, ", #", $bits),
                    add_element!("r10", "r9", $bits),
                    concat!("bfi lr, r9, #", $at2, ", #", $bits),
                    add_element!("r8", "r9", $bits),
                    concat!("bfi lr, r9, #", $at3, ", #", $bits),
                    $store,
                    "ldr r9, [sp]",
                    "cmp r0, r9",
                    "bne 1b",
                    "add sp, sp, #8",
                    "pop {{r6, r7}}",
                    inout("r0") a => _,
                    inout("r1") k.b.wrapping_sub(k.a) => _,
                    inout("r2") $r2 => _,
                    inout("r3") k.mh => _,
                    inout("r4") k.ml => _,
                    inout("r5") round_h => _,
                    inout("r8") low => _,
                    inout("r9") k.sh => _,
                    inout("r10") a.wrapping_add(len) => _,
                    out("r11") _,
                    out("r12") _,
                    out("lr") _,
                    options(nostack),
                );
            }
        };
    }
    if NIBBLES {
        // The output's own pointer, two bytes a step.
        steps_asm!(base.wrapping_add(k.out), "4", "4", "8", "12", "strh lr, [r2], #2");
    } else {
        // The output at `p + (out − a) − 4` (after `p` has stepped).
        steps_asm!(k.out.wrapping_sub(k.a).wrapping_sub(4), "8", "8", "16", "24", "str lr, [r0, r2]");
    }
    true
}

/// `(lo, hi)` as a halfword pair.
#[inline(always)]
fn pair(lo: i32, hi: i32) -> u32 {
    (lo as u32 & 0xFFFF) | ((hi as u32) << 16)
}

/// Average pool, the bytes of [`reference::avg_pool`]: over an 8-bit input, each group of four
/// channels' window summed in halfword lanes with `SXTAB16` (a word and two instructions per
/// pixel, [`sum_pixels`], where the portable kernel takes a byte load and an add per channel:
/// dscnn-kws's global pool took 5 instructions per element), in runs of at most 255 pixels
/// (exact: `255·128 < 2^15`), a window of whole rows as one run; the channels past the last
/// group of four a byte at a time. A 4-bit input with an even number of channels the same way,
/// a halfword of four elements per pixel in offset binary ([`sum_pixels4`]); others on the
/// reference kernel, as on the portable path.
#[inline(never)]
pub fn avg_pool<const K: u32>(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    rq: &reference::PoolRequant,
    output: &mut [u8],
) {
    let c = g.in_c;
    // Constant `false` in a firmware without 4-bit activations.
    let four = has(K, linked::ACTS_4) && in_fmt.bits == Bits::B4;
    if (in_fmt.bits != Bits::B8 && !(four && c.is_multiple_of(2))) || g.out_c != c {
        if has(K, linked::ACTS_4) {
            reference::avg_pool(g, input, in_fmt, rq, output);
        }
        return;
    }
    let Some(input) = input.get(..in_fmt.bits.packed_len(g.in_h * g.in_w * c)) else { return };
    let out_bits = if has(K, linked::ACTS_4) { rq.out.bits } else { Bits::B8 };
    let mut o = 0;
    for oy in 0..g.out_h {
        let (y0, y1, _) = g.rows(oy);
        for ox in 0..g.out_w {
            let (x0, x1, _) = g.cols(ox);
            let count = (y1 - y0) * (x1 - x0);
            let m_c = rq.multiplier_for(count);
            let zero_sum = (count as i32).wrapping_mul(in_fmt.zero_point);
            let whole_rows = x0 == 0 && x1 == g.in_w;
            for c0 in (0..c).step_by(4) {
                let n = (c - c0).min(4);
                let mut sums = [0i32; 4];
                if n < 4 {
                    // The channels past the last group of four.
                    for y in y0..y1 {
                        for px in (y * g.in_w + x0)..(y * g.in_w + x1) {
                            for (j, s) in sums.iter_mut().take(n).enumerate() {
                                *s = s.wrapping_add(load(input, in_fmt.bits, px * c + c0 + j));
                            }
                        }
                    }
                } else if count > 0 {
                    // A window of whole rows is one run; the runs start at element `e`.
                    let runs = if whole_rows { y0..y0 + 1 } else { y0..y1 };
                    let len = if whole_rows { count } else { x1 - x0 };
                    for y in runs {
                        let e = (y * g.in_w + x0) * c + c0;
                        if four {
                            sum_run4(&input[e / 2..], len, c / 2, &mut sums);
                        } else {
                            sum_run(&input[e..], len, c, &mut sums);
                        }
                    }
                }
                for (j, s) in sums.into_iter().take(n).enumerate() {
                    put(output, out_bits, o + c0 + j, rq.finish(s.wrapping_sub(zero_sum), m_c));
                }
            }
            o += c;
        }
    }
    reference::clear_tail(output, rq.out, o);
}

/// Adds the four channels at the start of `n ≥ 1` pixels `step` bytes apart (`src[k·step..]`)
/// into `sums`, 255 pixels at a time; nothing when `src` is shorter than that.
fn sum_run(src: &[u8], n: usize, step: usize, sums: &mut [i32; 4]) {
    if src.len() < (n - 1) * step + 4 {
        return;
    }
    let mut done = 0;
    while done < n {
        let m = (n - done).min(255);
        // SAFETY: pixels `done..done + m` of the `n` whose words `src` holds (checked).
        let (s02, s13) = unsafe { sum_pixels(src.as_ptr().add(done * step), step, m) };
        let lanes = [s02 as i16, s13 as i16, (s02 >> 16) as i16, (s13 >> 16) as i16];
        for (s, l) in sums.iter_mut().zip(lanes) {
            *s = s.wrapping_add(l as i32);
        }
        done += m;
    }
}

/// [`sum_run`] over a 4-bit input: the four elements of the halfword at `src[k·step..]` (`n ≥ 1`
/// pixels, `step` bytes apart); nothing when `src` is shorter than that.
fn sum_run4(src: &[u8], n: usize, step: usize, sums: &mut [i32; 4]) {
    if src.len() < (n - 1) * step + 2 {
        return;
    }
    let mut done = 0;
    while done < n {
        let m = (n - done).min(255);
        // SAFETY: pixels `done..done + m` of the `n` whose halfwords `src` holds (checked).
        let (s02, s13) = unsafe { sum_pixels4(src.as_ptr().add(done * step), step, m) };
        // Offset binary: each lane holds `Σ (n ⊕ 8) = Σ n + 8m`, the odd elements' times 16.
        let lanes = [s02 & 0xFFFF, (s13 & 0xFFFF) >> 4, s02 >> 16, s13 >> 20];
        for (s, l) in sums.iter_mut().zip(lanes) {
            *s = s.wrapping_add(l as i32 - 8 * m as i32);
        }
        done += m;
    }
}

/// The sums of the four 4-bit elements of the halfwords at `p`, `p + step`, …, `n` of them, each
/// `⊕ 8` (0–15): elements 0 and 2 in the halfword lanes of the first word, 16 times elements 1
/// and 3 in those of the second (masks and one shifted `ORR` each, 11 instructions a pixel).
///
/// # Safety
/// `p + k·step` is valid for reading 2 bytes for `k < n`; `1 ≤ n ≤ 255` (so that no lane wraps:
/// `16·15·255 < 2^16`).
unsafe fn sum_pixels4(p: *const u8, step: usize, n: usize) -> (u32, u32) {
    let (mut s02, mut s13) = (0u32, 0u32);
    // SAFETY: the caller's bounds; the halfwords may be unaligned (Armv7-M allows LDRH).
    unsafe {
        asm!(
            "2:",
            "ldrh {w}, [{p}]",
            "add {p}, {p}, {step}",
            "eor {w}, {w}, #0x88888888",
            "and {a}, {w}, #0xF",
            "and {b}, {w}, #0xF00",
            "orr {a}, {a}, {b}, lsl #8",
            "add {s02}, {s02}, {a}",
            "and {a}, {w}, #0xF0",
            "and {b}, {w}, #0xF000",
            "orr {a}, {a}, {b}, lsl #8",
            "add {s13}, {s13}, {a}",
            "subs {n}, {n}, #1",
            "bne 2b",
            p = inout(reg) p => _,
            step = in(reg) step,
            n = inout(reg) n => _,
            w = out(reg) _,
            a = out(reg) _,
            b = out(reg) _,
            s02 = inout(reg) s02,
            s13 = inout(reg) s13,
            options(nostack, readonly),
        );
    }
    (s02, s13)
}

/// The halfword sums `(a0, a2)` and `(a1, a3)` of the words at `p`, `p + step`, …, `n` of them:
/// two `SXTAB16` per word, two words per iteration.
///
/// # Safety
/// `p + k·step` is valid for reading 4 bytes for `k < n`; `1 ≤ n ≤ 255` (so that no lane wraps).
unsafe fn sum_pixels(p: *const u8, step: usize, n: usize) -> (u32, u32) {
    let (mut s02, mut s13) = (0u32, 0u32);
    // SAFETY: the caller's bounds; the words may be unaligned (Armv7-M allows LDR).
    unsafe {
        asm!(
            "tst {n}, #1",
            "beq 2f",
            "ldr {w}, [{p}]",
            "add {p}, {p}, {step}",
            "sxtab16 {s02}, {s02}, {w}",
            "sxtab16 {s13}, {s13}, {w}, ror #8",
            "subs {n}, {n}, #1",
            "beq 3f",
            "2:",
            "ldr {w}, [{p}]",
            "ldr {v}, [{p}, {step}]",
            "add {p}, {p}, {step}, lsl #1",
            "sxtab16 {s02}, {s02}, {w}",
            "sxtab16 {s13}, {s13}, {w}, ror #8",
            "sxtab16 {s02}, {s02}, {v}",
            "sxtab16 {s13}, {s13}, {v}, ror #8",
            "subs {n}, {n}, #2",
            "bne 2b",
            "3:",
            p = inout(reg) p => _,
            step = in(reg) step,
            n = inout(reg) n => _,
            w = out(reg) _,
            v = out(reg) _,
            s02 = inout(reg) s02,
            s13 = inout(reg) s13,
            options(nostack, readonly),
        );
    }
    (s02, s13)
}

/// Depthwise Conv2D, the bytes of [`reference::depthwise_conv2d`], with its buffers in `scratch`
/// (at least [`super::depthwise_conv2d_scratch_bytes`]); returns the path that ran.
///
/// A 3×3 layer at strides 1 or 2 that [`planes::depthwise3`] takes runs there. Otherwise: depth
/// multiplier 1, at least four channels (8- or 4-bit input, the latter unpacked a few rows
/// at a time), in passes of [`scratch::dsp_depthwise_groups`] groups of four channels (as many as
/// [`scratch::DW_PASS_BYTES`] of scratch hold, at most [`scratch::DW_DSP_GROUPS`]): each tap of
/// an output pixel is read at the pixel's origin plus an offset from a table (the pass's first
/// channel of the input pixel, or a row of zero points for taps in the padding, so that every
/// tap is read the same way and contributes `w·(z − z) = 0` once `z·Σw` is folded into the
/// bias), one table for every pixel inside the input and one built per border pixel; then for
/// each group of four channels an assembly loop takes one input word per tap, SXTB16s it and
/// multiplies the halfwords with SMLABB/SMLATT into four accumulators (11 instructions per tap
/// and group, 9 for a 3×3 kernel, unrolled; with 8-bit output and no clamp but its range, a
/// 3×3 kernel's groups of a pixel and their requantization in one block,
/// [`dw_pixel9_plain`]). Weights are unpacked once per pass. Channels past the last whole group and other depth
/// multipliers run on the portable kernel (in the same scratch).
#[inline(always)]
pub fn depthwise_conv2d<const K: u32>(
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
    depthwise_impl::<K>(g, input, linked_input::<K>(in_fmt), weights, weight_bits, rq, output, scratch)
}

/// [`depthwise_conv2d`] with the layer's fields one by one (as [`conv_impl`]; through a pointer,
/// 0.7 KB more code in dscnn's firmware).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn depthwise_impl<const K: u32>(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    weights: &[u8],
    weight_bits: Bits,
    rq: &Requant<'_>,
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let chunk = scratch::dsp_depthwise_groups(g, in_fmt.bits);
    if chunk == 0 && has(K, linked::DEPTHWISE_GENERAL) {
        let layer = Layer::new(in_fmt, weights, weight_bits, *rq);
        return portable::depthwise_conv2d(g, &layer, input, output, scratch);
    }
    let taps = g.kernel_h * g.kernel_w;
    let c = g.in_c;
    let groups = c / 4;
    // A 4-bit input is unpacked a few rows at a time (the rows one output row reads, the pass's
    // channels of each pixel).
    let four = has(K, linked::ACTS_4) && in_fmt.bits == Bits::B4;
    let bound = sum_bound(taps, weight_bits, in_fmt.bits);
    let z = in_fmt.zero_point;
    if planes::depthwise3::<K>(g, input, in_fmt, weights, weight_bits, rq, bound, output, &mut *scratch) {
        return depthwise_tail::<K>(g, input, in_fmt, weights, weight_bits, rq, output, scratch);
    }
    if !has(K, linked::DEPTHWISE_GENERAL) {
        // Not reached: the interpreter refuses a model with such a layer under this set.
        return Path::Scalar;
    }
    let cc = 4 * chunk;
    let mut s = Scratch::new(&mut *scratch);
    let bufs = (
        s.take::<[u32; 2]>(chunk * taps),
        s.take::<Rq32>(cc),
        s.take::<usize>(2 * taps),
        s.take::<u8>(cc),
        s.take::<u8>(if four { g.kernel_h * g.in_w * cc } else { 0 }),
    );
    let (Some(wp), Some(fast), Some(offs), Some(zrow), Some(rows)) = bufs else {
        // As in [`conv2d`].
        if K == linked::ALL {
            reference::depthwise_conv2d(g, &Layer::new(in_fmt, weights, weight_bits, *rq), input, output);
        }
        return Path::Scalar;
    };
    let row_bytes = weight_bits.packed_len(taps);
    zrow.fill(z as u8);
    let (out_bits, oc) = (rq.out.bits, g.out_c);
    let (lo, hi) = (rq.min, rq.max);
    let mut g0 = 0;
    while g0 < groups {
        let ng = (groups - g0).min(chunk);
        let (c0, nc) = (4 * g0, 4 * ng);
        // Weights of channels c0 + 4i..c0 + 4i + 4 per tap: (w0, w2) and (w1, w3), the SXTB16
        // lanes; and the requantization with `bias − z·Σw`.
        dw_pass_tables::<K>(weights, weight_bits, row_bytes, rq, bound, z, c0, ng, taps, wp, fast);
        let (wp, fast) = (&wp[..ng * taps], &fast[..nc]);
        let plain_8bit = out_bits == Bits::B8 && (lo, hi) == (-128, 127) && fast.iter().all(|f| !f.is_slow());
        let row_len = g.in_w * nc;
        // A tap is read at `origin + offset`, `origin` the address of the pixel's top-left tap
        // (outside the input at the border: only a number, never read). The offsets of the
        // taps inside the input are the same for every pixel, so only a pixel at the border
        // needs its own table (the offset to the row of zero points for its taps in the
        // padding); a pass costs a table per border pixel, not per pixel.
        let (base, row_step, px_step) = if four {
            (rows.as_ptr() as usize, row_len, nc)
        } else {
            (input[..g.in_h * g.in_w * c].as_ptr() as usize + c0, g.in_w * c, c)
        };
        let zaddr = zrow.as_ptr() as usize;
        let (inner, border) = offs.split_at_mut(taps);
        for (ky, row) in inner.chunks_exact_mut(g.kernel_w).enumerate() {
            for (kx, o) in row.iter_mut().enumerate() {
                *o = ky * row_step + kx * px_step;
            }
        }
        let inner = &*inner;
        for oy in 0..g.out_h {
            if four {
                for ky in 0..g.kernel_h {
                    let y = (oy * g.stride_h + ky).wrapping_sub(g.pad_top);
                    if y < g.in_h {
                        let dst = &mut rows[ky * row_len..(ky + 1) * row_len];
                        if nc == c {
                            unpack4(input, y * row_len, dst);
                        } else {
                            for (xx, d) in dst.chunks_exact_mut(nc).enumerate() {
                                unpack4(input, (y * g.in_w + xx) * c + c0, d);
                            }
                        }
                    }
                }
            }
            let (y0, y1, ky0) = g.rows(oy);
            // The unpacked rows are indexed by kernel row, the input by input row.
            let top = if four { 0 } else { (oy * g.stride_h).wrapping_sub(g.pad_top) };
            let row_origin = base.wrapping_add(top.wrapping_mul(row_step));
            for ox in 0..g.out_w {
                let (x0, x1, kx0) = g.cols(ox);
                let left = (ox * g.stride_w).wrapping_sub(g.pad_left);
                let origin = row_origin.wrapping_add(left.wrapping_mul(px_step));
                let table: &[usize] = if y1 - y0 == g.kernel_h && x1 - x0 == g.kernel_w {
                    inner
                } else {
                    // The inside taps' offsets, the others to the row of zero points.
                    let zoff = zaddr.wrapping_sub(origin);
                    let (ky1, kx1) = (ky0 + (y1 - y0), kx0 + (x1 - x0));
                    let rows_of = border.chunks_exact_mut(g.kernel_w).zip(inner.chunks_exact(g.kernel_w));
                    for (ky, (b, i)) in rows_of.enumerate() {
                        let y_in = (ky0..ky1).contains(&ky);
                        for (kx, (b, &i)) in b.iter_mut().zip(i).enumerate() {
                            *b = if y_in && (kx0..kx1).contains(&kx) { i } else { zoff };
                        }
                    }
                    border
                };
                let o = (oy * g.out_w + ox) * oc + c0;
                if plain_8bit && taps == 9 {
                    let d = &mut output[o..o + nc];
                    // SAFETY: `origin + 4g + table[t]` (wrapping) starts 4 readable bytes for
                    // every tap and group `g < ng` (the pass's channels of a pixel of `input` or
                    // of `rows`, or `zrow`: `nc = 4·ng` bytes); `wp` holds `9·ng` pairs of words,
                    // `fast` `nc` fast constants, `d` `nc` bytes; `ng ≥ 1`.
                    unsafe {
                        dw_pixel9_plain(
                            table.as_ptr(),
                            origin,
                            wp.as_ptr() as *const u32,
                            fast.as_ptr(),
                            d.as_mut_ptr(),
                            ng,
                        )
                    };
                    continue;
                }
                if plain_8bit {
                    // Every channel fast, 8-bit output, clamp = output range: one `SSAT` each; the
                    // groups walked by iterators (no index arithmetic or bounds checks per group).
                    let groups_of = wp.chunks_exact(taps).zip(fast.chunks_exact(4));
                    for (cb, ((w, f), d)) in groups_of.zip(output[o..o + nc].chunks_exact_mut(4)).enumerate() {
                        // SAFETY: `origin + table[t]` (wrapping) is, for every tap, an address that
                        // starts `nc` readable bytes (the pass's channels of a pixel of `input` or
                        // of `rows`, or `zrow`), and `4·cb + 4 ≤ nc`; `w` holds `taps` pairs of
                        // words.
                        let at = origin.wrapping_add(4 * cb);
                        let acc = unsafe { dw_taps(table.as_ptr(), at, w.as_ptr() as *const u32, taps) };
                        for ((d, f), a) in d.iter_mut().zip(f).zip(acc) {
                            *d = f.unclamped(a).clamp(-128, 127) as u8;
                        }
                    }
                    continue;
                }
                for (gi, (w, f)) in wp.chunks_exact(taps).zip(fast.chunks_exact(4)).enumerate() {
                    // SAFETY: `origin + table[t]` (wrapping) starts `nc` readable bytes for every
                    // tap, and `4·gi + 4 ≤ nc`; `w` holds `taps` pairs of words.
                    let at = origin.wrapping_add(4 * gi);
                    let acc = unsafe { dw_taps(table.as_ptr(), at, w.as_ptr() as *const u32, taps) };
                    let v: [i32; 4] = core::array::from_fn(|j| f[j].apply(acc[j], lo, hi));
                    if out_bits == Bits::B8 || !has(K, linked::ACTS_4) {
                        for (d, v) in output[o + 4 * gi..o + 4 * gi + 4].iter_mut().zip(v) {
                            *d = v as u8;
                        }
                    } else if (o + 4 * gi).is_multiple_of(2) {
                        // 4-bit output: the group's four values fill two whole bytes.
                        let b = (o + 4 * gi) / 2;
                        output[b] = (v[0] as u8 & 0x0F) | ((v[1] as u8) << 4);
                        output[b + 1] = (v[2] as u8 & 0x0F) | ((v[3] as u8) << 4);
                    } else {
                        for (j, v) in v.into_iter().enumerate() {
                            put(output, out_bits, o + 4 * gi + j, v);
                        }
                    }
                }
            }
        }
        g0 += ng;
    }
    depthwise_tail::<K>(g, input, in_fmt, weights, weight_bits, rq, output, scratch)
}

/// The channels of a depthwise layer past its last whole group of four, on the portable kernel;
/// returns the layer's path.
#[allow(clippy::too_many_arguments)]
fn depthwise_tail<const K: u32>(
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    weights: &[u8],
    weight_bits: Bits,
    rq: &Requant<'_>,
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let mut path = Path::Dsp;
    let done = 4 * (g.in_c / 4);
    if done < g.in_c && has(K, linked::DEPTHWISE_GENERAL) {
        let tail = portable::depthwise_channels(g, input, in_fmt, weights, weight_bits, rq, output, done, scratch);
        if tail == Path::Scalar {
            path = tail;
        }
    }
    reference::clear_tail(output, rq.out, g.out_h * g.out_w * g.out_c);
    path
}

/// The tables of one pass of [`depthwise_conv2d`] (`ng` groups of four channels from `c0`):
/// the weights per tap as [`dw_weights`] lays them out, into `wp`, and each channel's
/// requantization with `bias − z·Σw`, into `fast`. Not inlined, so that the pixel loop is the
/// same code whatever the weight widths a firmware links (its registers were allocated
/// differently around each width's unpacking: 4 instructions more per group of four channels
/// and output pixel with 4-bit weights).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn dw_pass_tables<const K: u32>(
    weights: &[u8],
    weight_bits: Bits,
    row_bytes: usize,
    rq: &Requant<'_>,
    bound: i64,
    z: i32,
    c0: usize,
    ng: usize,
    taps: usize,
    wp: &mut [[u32; 2]],
    fast: &mut [Rq32],
) {
    // The sums of 4- and 2-bit rows come out scaled by 16 and 64 (`dw_weights_narrow`):
    // their requantization takes the scale, as the convolution's does.
    let narrow = has(K, linked::WEIGHTS_4) || has(K, linked::WEIGHTS_2);
    let scale = if narrow { dw_scale(weight_bits, taps) } else { 0 };
    let all_fast = Rq32::table(rq, c0, bound, scale, false, &mut fast[..4 * ng]);
    // `−z·Σw` into each bias, scaled as a fast entry's bias is: with every entry fast, by the
    // layer's scale without reading each entry's form.
    let offset_shift = all_fast.then_some(scale);
    // One loop per linked width, each its own copy: a width test per weight cost 4-bit models
    // ~2% here, and one loop holding every linked width's unpacking made an 8-bit layer's
    // groups ~25 instructions dearer in a firmware that also links 4-bit weights.
    match weight_bits {
        Bits::B4 if has(K, linked::WEIGHTS_4) => {
            dw_groups::<4>(weights, row_bytes, (z, offset_shift), c0, ng, taps, wp, fast)
        }
        Bits::B2 if has(K, linked::WEIGHTS_2) => {
            dw_groups::<2>(weights, row_bytes, (z, offset_shift), c0, ng, taps, wp, fast)
        }
        _ => dw_groups::<8>(weights, row_bytes, (z, offset_shift), c0, ng, taps, wp, fast),
    }
}

/// [`dw_pass_tables`]' weights of `B`-bit rows, a group of four channels at a time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dw_groups<const B: u8>(
    weights: &[u8],
    row_bytes: usize,
    (z, offset_shift): (i32, Option<u32>),
    c0: usize,
    ng: usize,
    taps: usize,
    wp: &mut [[u32; 2]],
    fast: &mut [Rq32],
) {
    // The groups' rows, tables and entries in step, no bounds test per group.
    let (Some(rows), true) = (weights.get(c0 * row_bytes..), row_bytes > 0 && taps > 0) else {
        return;
    };
    let groups = rows.chunks_exact(4 * row_bytes).zip(wp.chunks_exact_mut(taps)).zip(fast.chunks_exact_mut(4));
    for ((group, wt), entries) in groups.take(ng) {
        let (r0, rest) = group.split_at(row_bytes);
        let (r1, rest) = rest.split_at(row_bytes);
        let (r2, r3) = rest.split_at(row_bytes);
        let rows4 = [r0, r1, r2, r3];
        let sums = match B {
            4 | 2 => dw_weights_narrow::<B>(rows4, wt),
            _ => dw_weights8(rows4, wt),
        };
        for (f, s) in entries.iter_mut().zip(sums) {
            match offset_shift {
                Some(shift) => f.bias = f.bias.wrapping_add((-z * s) << shift),
                None => *f = f.with_bias_offset(-z * s),
            }
        }
    }
}

/// The four sums `Σ_t w_j[t]·a_t[j]` of one group of channels over `n ≥ 1` taps, `a_t` read
/// from the address `at + offs[t]` (wrapping; four bytes) and the weights as `n` pairs
/// `[(w0, w2), (w1, w3)]`.
///
/// # Safety
/// `offs` must hold `n` offsets, each `at + offs[t]` (mod 2³²) an address valid for reading 4
/// bytes; `w` must be valid for `2n` words.
#[inline(always)]
unsafe fn dw_taps(offs: *const usize, at: usize, w: *const u32, n: usize) -> [i32; 4] {
    if n == 9 {
        // SAFETY: the caller's bounds, with `n = 9`.
        return unsafe { dw_taps9(offs, at, w) };
    }
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    // SAFETY: the caller's bounds; the activation word may be unaligned (Armv7-M allows it).
    unsafe {
        asm!(
            "2:",
            "ldr {t}, [{pp}], #4",
            "ldr {t}, [{at}, {t}]",
            "ldrd {wa}, {wb}, [{wp}], #8",
            "sxtb16 {s}, {t}",
            "sxtb16 {t}, {t}, ror #8",
            "smlabb {a0}, {s}, {wa}, {a0}",
            "smlatt {a2}, {s}, {wa}, {a2}",
            "smlabb {a1}, {t}, {wb}, {a1}",
            "smlatt {a3}, {t}, {wb}, {a3}",
            "subs {n}, {n}, #1",
            "bne 2b",
            pp = inout(reg) offs => _,
            at = in(reg) at,
            wp = inout(reg) w => _,
            n = inout(reg) n => _,
            t = out(reg) _,
            s = out(reg) _,
            wa = out(reg) _,
            wb = out(reg) _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            options(nostack, readonly),
        );
    }
    [a0, a1, a2, a3]
}

/// One tap of [`dw_pixel9_plain`] (registers: r0 the offsets, r1 the group's address, r2 the
/// weights, r8–r11 the four sums); `first` multiplies, `next` accumulates.
macro_rules! dw_tap_regs {
    (first) => {
        concat!(
            "ldr r3, [r0], #4\n",
            "ldr r3, [r1, r3]\n",
            "ldrd r5, r12, [r2], #8\n",
            "sxtb16 r4, r3\n",
            "sxtb16 r3, r3, ror #8\n",
            "smulbb r8, r4, r5\n",
            "smultt r10, r4, r5\n",
            "smulbb r9, r3, r12\n",
            "smultt r11, r3, r12\n",
        )
    };
    (next) => {
        concat!(
            "ldr r3, [r0], #4\n",
            "ldr r3, [r1, r3]\n",
            "ldrd r5, r12, [r2], #8\n",
            "sxtb16 r4, r3\n",
            "sxtb16 r3, r3, ror #8\n",
            "smlabb r8, r4, r5, r8\n",
            "smlatt r10, r4, r5, r10\n",
            "smlabb r9, r3, r12, r9\n",
            "smlatt r11, r3, r12, r11\n",
        )
    };
}

// The constants' offsets [`dw_requant`] reads.
const _: () = assert!(
    core::mem::size_of::<Rq32>() == 28
        && core::mem::offset_of!(Rq32, bias) == 0
        && core::mem::offset_of!(Rq32, shl) == 4
        && core::mem::offset_of!(Rq32, m) == 8
        && core::mem::offset_of!(Rq32, round) == 12
        && core::mem::offset_of!(Rq32, sh) == 16
);

/// `Rq32::unclamped` and `SSAT` to 8 bits of sum `$a`, the channel's constants at r0 + `$bias`
/// (bias, shl), `$m` (m, round) and `$sh`.
macro_rules! dw_requant {
    ($a:literal, $bias:literal, $m:literal, $sh:literal) => {
        concat!(
            "ldrd r3, r4, [r0, #",
            $bias,
            "]\n",
            "ldrd r5, r12, [r0, #",
            $m,
            "]\n",
            "add ",
            $a,
            ", ",
            $a,
            ", r3\n",
            "lsl ",
            $a,
            ", ",
            $a,
            ", r4\n",
            "ldr r3, [r0, #",
            $sh,
            "]\n",
            "smlawb ",
            $a,
            ", ",
            $a,
            ", r5, r12\n",
            "asr ",
            $a,
            ", ",
            $a,
            ", r3\n",
            "ssat ",
            $a,
            ", #8, ",
            $a,
            "\n",
        )
    };
}

/// The 8-bit outputs of one pixel's `groups ≥ 1` groups of four channels under a 3×3 kernel, in
/// the plain case (every channel fast, the clamp the output range), entirely in assembly: per
/// group the nine taps of [`dw_taps9`], then each channel's requantization and a byte store,
/// 125 instructions. (The same loop in Rust kept three of its sums and its pointers on the stack:
/// about 150 instructions per group, and a few more or fewer depending on the weight widths a
/// firmware links, which moved its register allocation.)
///
/// # Safety
/// `offs` holds 9 offsets, each `at + 4g + offs[t]` (mod 2³²) an address valid for reading 4
/// bytes for `g < groups`; `w` is valid for `18·groups` words and `rq` for `4·groups` constants
/// (both word-aligned), each channel fast; `out` is writable for `4·groups` bytes.
#[inline(always)]
unsafe fn dw_pixel9_plain(offs: *const usize, at: usize, w: *const u32, rq: *const Rq32, out: *mut u8, groups: usize) {
    let end = out.wrapping_add(4 * groups);
    // SAFETY: the caller's bounds; the activation words may be unaligned (Armv7-M allows LDR),
    // the weights, the constants and the pushed state are word-aligned (LDRD); the assembly pops
    // what it pushes.
    unsafe {
        asm!(
            // [sp]: the offsets, [sp, #4]: the constants, [sp, #8]: the output end.
            "push {{r0, r3, r4, r5}}",
            "1:",
            "ldr r0, [sp]",
            dw_tap_regs!(first),
            dw_tap_regs!(next),
            dw_tap_regs!(next),
            dw_tap_regs!(next),
            dw_tap_regs!(next),
            dw_tap_regs!(next),
            dw_tap_regs!(next),
            dw_tap_regs!(next),
            dw_tap_regs!(next),
            "ldr r0, [sp, #4]",
            dw_requant!("r8", "0", "8", "16"),
            dw_requant!("r9", "28", "36", "44"),
            dw_requant!("r10", "56", "64", "72"),
            dw_requant!("r11", "84", "92", "100"),
            "add r0, r0, #{group_rq}",
            "str r0, [sp, #4]",
            "strb r8, [lr], #4",
            "strb r9, [lr, #-3]",
            "strb r10, [lr, #-2]",
            "strb r11, [lr, #-1]",
            "add r1, r1, #4",
            "ldr r3, [sp, #8]",
            "cmp lr, r3",
            "bne 1b",
            "add sp, sp, #16",
            group_rq = const 4 * core::mem::size_of::<Rq32>(),
            inout("r0") offs => _,
            inout("r1") at => _,
            inout("r2") w => _,
            inout("r3") rq => _,
            inout("r4") end => _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            inout("lr") out => _,
        )
    }
}

/// One tap of [`dw_taps9`]: the activation word at `at + offset`, its bytes 0 and 2 against the
/// weights (w0, w2) and bytes 1 and 3 against (w1, w3); `$first` multiplies (no accumulator to
/// clear), the others accumulate.
macro_rules! dw_tap {
    (first) => {
        concat!(
            "ldr {t}, [{pp}], #4\n",
            "ldr {t}, [{at}, {t}]\n",
            "ldrd {wa}, {wb}, [{wp}], #8\n",
            "sxtb16 {s}, {t}\n",
            "sxtb16 {t}, {t}, ror #8\n",
            "smulbb {a0}, {s}, {wa}\n",
            "smultt {a2}, {s}, {wa}\n",
            "smulbb {a1}, {t}, {wb}\n",
            "smultt {a3}, {t}, {wb}\n",
        )
    };
    (next) => {
        concat!(
            "ldr {t}, [{pp}], #4\n",
            "ldr {t}, [{at}, {t}]\n",
            "ldrd {wa}, {wb}, [{wp}], #8\n",
            "sxtb16 {s}, {t}\n",
            "sxtb16 {t}, {t}, ror #8\n",
            "smlabb {a0}, {s}, {wa}, {a0}\n",
            "smlatt {a2}, {s}, {wa}, {a2}\n",
            "smlabb {a1}, {t}, {wb}, {a1}\n",
            "smlatt {a3}, {t}, {wb}, {a3}\n",
        )
    };
}

/// [`dw_taps`] of a 3×3 kernel, unrolled: no loop counter or branch per tap and no accumulators
/// to clear (9 instructions a tap instead of 11); 3×3 is what nearly every depthwise layer is.
///
/// # Safety
/// As [`dw_taps`] with `n = 9`.
#[inline(always)]
unsafe fn dw_taps9(offs: *const usize, at: usize, w: *const u32) -> [i32; 4] {
    let (a0, a1, a2, a3): (i32, i32, i32, i32);
    // SAFETY: the caller's bounds; the activation word may be unaligned (Armv7-M allows it).
    unsafe {
        asm!(
            dw_tap!(first),
            dw_tap!(next),
            dw_tap!(next),
            dw_tap!(next),
            dw_tap!(next),
            dw_tap!(next),
            dw_tap!(next),
            dw_tap!(next),
            dw_tap!(next),
            pp = inout(reg) offs => _,
            at = in(reg) at,
            wp = inout(reg) w => _,
            t = out(reg) _,
            s = out(reg) _,
            wa = out(reg) _,
            wb = out(reg) _,
            a0 = out(reg) a0,
            a1 = out(reg) a1,
            a2 = out(reg) a2,
            a3 = out(reg) a3,
            options(nostack, readonly),
        );
    }
    [a0, a1, a2, a3]
}
