//! Convolution and fully connected with AVX-VNNI (`VPDPBUSD` on 256-bit registers), chosen at
//! run time (`std` feature) or from the compile-time target features: the driver of
//! [`super::blocks`] over receptive fields of bytes `a + 128` (`a ^ 0x80`: `VPDPBUSD` multiplies
//! unsigned bytes by signed bytes, four products per 32-bit lane; padding taps give `z + 128`,
//! lanes past `K` are 0) and weights as signed bytes (4- and 2-bit rows unpacked 32 weights at a
//! time and used for the block's four pixels); `Σ w·(a − z) = Σ w·u − (128 + z)·Σw`, the second
//! term in each channel's bias.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::super::portable;
use super::super::reference::{ActFormat, Layer, Window};
use super::super::util::{fc_window, gather_into};
use super::super::{KernelTable, Path};
use super::blocks::{self, FieldDot};
use crate::quant::Bits;

/// Proof that the CPU has AVX2 and AVX-VNNI: obtained from [`AvxVnni::new`], it makes these
/// kernels safe to call.
#[derive(Debug, Clone, Copy)]
pub struct AvxVnni(());

impl AvxVnni {
    /// `Some` when the CPU has AVX2 and AVX-VNNI (run-time detection with the `std` feature,
    /// else the compile-time target features).
    pub fn new() -> Option<AvxVnni> {
        #[cfg(feature = "std")]
        let ok = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avxvnni");
        #[cfg(not(feature = "std"))]
        let ok = cfg!(all(target_feature = "avx2", target_feature = "avxvnni"));
        ok.then_some(AvxVnni(()))
    }

    /// These kernels as a [`KernelTable`], with AVX2's depthwise kernel (reported as AVX-VNNI).
    pub fn table(self) -> KernelTable {
        KernelTable {
            path: Path::AvxVnni,
            conv2d: |g, layer, input, output, scratch| AvxVnni(()).conv2d(g, layer, input, output, scratch),
            depthwise_conv2d: |g, layer, input, output, scratch| {
                super::Avx2(()).depthwise_conv2d(g, layer, input, output, scratch);
                Path::AvxVnni
            },
            fully_connected: |n, m, layer, input, output, scratch| {
                AvxVnni(()).fully_connected(n, m, layer, input, output, scratch)
            },
        }
    }

    /// Conv2D, same bytes as [`reference::conv2d`](super::super::reference::conv2d); returns the path that ran: AVX-VNNI, or the
    /// portable kernel for `K` of 0 or above `K_MAX` (65,536), weights shorter than the layer's
    /// and a scratch smaller than [`super::super::conv2d_scratch_bytes`] (which the loader rules
    /// out for a model).
    pub fn conv2d(self, g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> Path {
        // SAFETY: `self` proves the CPU has AVX2 and AVX-VNNI.
        if !unsafe { conv2d_vnni(g, layer, input, output, scratch) } {
            return portable::conv2d(g, layer, input, output, scratch);
        }
        Path::AvxVnni
    }

    /// Fully connected, same bytes as [`reference::fully_connected`](super::super::reference::fully_connected): a one-pixel convolution,
    /// or for rows past `K_MAX` the portable fully connected kernel (as [`super::Avx2::fully_connected`]).
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
        // SAFETY: `self` proves the CPU has AVX2 and AVX-VNNI.
        if unsafe { conv2d_vnni(&g, layer, input, output, scratch) } {
            return Path::AvxVnni;
        }
        portable::fully_connected(in_features, out_features, layer, input, output, scratch)
    }
}

/// Weights `32j..32j + 32` of a packed `B`-bit row as signed bytes. `row` holds the row and
/// whatever follows it in the layer's weights (read only within `row`; past its end, zeros); the
/// weights past `K` meet activations that are 0.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn chunk<const B: usize>(row: &[u8], j: usize) -> __m256i {
    let bytes = 4 * B;
    let mut tmp = [0u8; 32];
    let src = match row.get(j * bytes..j * bytes + bytes) {
        Some(s) => s,
        None => {
            let rest = row.get(j * bytes..).unwrap_or(&[]);
            tmp[..rest.len()].copy_from_slice(rest);
            &tmp[..bytes]
        }
    };
    decode::<B>(src)
}

/// [`chunk`] of a chunk that lies inside `row` (every chunk of a row but a partial last one);
/// zeros otherwise. No copy on the way: in the convolution's inner loop, the copy's call made
/// the compiler keep the accumulators in memory (+25% time at `K` = 576).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn whole_chunk<const B: usize>(row: &[u8], j: usize) -> __m256i {
    match row.get(j * 4 * B..(j + 1) * 4 * B) {
        Some(src) => decode::<B>(src),
        None => _mm256_setzero_si256(),
    }
}

/// The 32 weights packed at `B` bits in `src` (`4·B` bytes; zeros for fewer) as signed bytes.
#[inline]
#[target_feature(enable = "avx2")]
fn decode<const B: usize>(src: &[u8]) -> __m256i {
    if src.len() < 4 * B {
        return _mm256_setzero_si256();
    }
    match B {
        8 => {
            // SAFETY: `src` holds 32 bytes.
            unsafe { _mm256_loadu_si256(src.as_ptr() as *const __m256i) }
        }
        4 => {
            // SAFETY: `src` holds 16 bytes.
            let v = unsafe { _mm_loadu_si128(src.as_ptr() as *const __m128i) };
            // Weight 2i is the low nibble of byte i: the nibbles interleaved back into order,
            // then sign-extended as `(x ^ 8) − 8`.
            let m = _mm_set1_epi8(0x0F);
            let (lo, hi) = (_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16(v, 4), m));
            let w = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
            let e = _mm256_set1_epi8(8);
            _mm256_sub_epi8(_mm256_xor_si256(w, e), e)
        }
        _ => {
            // SAFETY: `src` holds 8 bytes.
            let v = unsafe { _mm_loadl_epi64(src.as_ptr() as *const __m128i) };
            // Weight 4i + j is bits 2j..2j+2 of byte i: the four crumbs of each byte interleaved
            // back into order, then sign-extended as `(x ^ 2) − 2`.
            let m = _mm_set1_epi8(3);
            let s0 = _mm_and_si128(v, m);
            let s1 = _mm_and_si128(_mm_srli_epi16(v, 2), m);
            let s2 = _mm_and_si128(_mm_srli_epi16(v, 4), m);
            let s3 = _mm_and_si128(_mm_srli_epi16(v, 6), m);
            let (a, b) = (_mm_unpacklo_epi8(s0, s1), _mm_unpacklo_epi8(s2, s3));
            let w = _mm256_set_m128i(_mm_unpackhi_epi16(a, b), _mm_unpacklo_epi16(a, b));
            let e = _mm256_set1_epi8(2);
            _mm256_sub_epi8(_mm256_xor_si256(w, e), e)
        }
    }
}

/// AVX-VNNI's receptive fields for [`blocks::conv_blocks`]: bytes `a + 128`, multiplied in by
/// `VPDPBUSD` against signed weight bytes.
#[derive(Debug, Clone, Copy)]
struct U8Field(AvxVnni);

impl FieldDot for U8Field {
    const BYTES: usize = 1;

    #[inline(always)]
    fn field(self, g: &Window, input: &[u8], fmt: ActFormat, oy: usize, ox: usize, dst: &mut [u8]) {
        gather_into(g, input, fmt, oy, ox, dst);
        for a in dst.iter_mut() {
            *a ^= 0x80;
        }
    }

    #[inline(always)]
    fn weights<const B: usize>(self, row: &[u8], j: usize) -> __m256i {
        // SAFETY: `self.0` proves the CPU has AVX2.
        unsafe { chunk::<B>(row, j) }
    }

    #[inline(always)]
    fn whole_weights<const B: usize>(self, row: &[u8], j: usize) -> __m256i {
        // SAFETY: `self.0` proves the CPU has AVX2.
        unsafe { whole_chunk::<B>(row, j) }
    }

    #[inline(always)]
    fn mac(self, acc: __m256i, field: __m256i, weights: __m256i) -> __m256i {
        // SAFETY: `self.0` proves the CPU has AVX-VNNI.
        unsafe { _mm256_dpbusd_avx_epi32(acc, field, weights) }
    }

    fn offset(self, fmt: ActFormat) -> i32 {
        128 + fmt.zero_point
    }
}

/// The AVX-VNNI convolution ([`blocks::conv_blocks`] compiled for AVX-VNNI); `false` as there.
#[target_feature(enable = "avx2,avxvnni")]
fn conv2d_vnni(g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> bool {
    let d = U8Field(AvxVnni(()));
    match layer.weight_bits {
        Bits::B8 => blocks::conv_blocks::<_, 8>(d, g, layer, input, output, scratch),
        Bits::B4 => blocks::conv_blocks::<_, 4>(d, g, layer, input, output, scratch),
        Bits::B2 => blocks::conv_blocks::<_, 2>(d, g, layer, input, output, scratch),
    }
}
