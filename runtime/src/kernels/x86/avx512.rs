//! Convolution and fully connected with AVX-512 VNNI (`VPDPBUSD` on 512-bit registers), chosen
//! at run time (`std` feature) or from the compile-time target features.
//!
//! The GEMM runs with output channels across the lanes: a register holds 16 channels' sums, so
//! the results come out in NHWC order and need no reduction across lanes. Once per layer the
//! weights are laid out for it (`[channel group][k/4][16 channels][4 k]`, signed bytes: each row
//! unpacked to bytes, then its 4-byte groups placed at the channel's lane), with each channel's
//! `Σw` and requantization: by the interpreter's workspace once per model
//! ([`Avx512Vnni::prepare_conv2d`]), else per call. A block of `P` pixels × `G` groups of 16 channels keeps `P·G` accumulators; for every 4
//! values of `k` it loads `G` weight registers, broadcasts each pixel's 4 activations and issues
//! `P·G` `VPDPBUSD`. Activations enter as `u = a + 128` (`a ^ 0x80`, padding taps `z + 128`)
//! and `(128 + z)·Σw` joins the bias, as in [`super::vnni`]; the sums are exact for the same
//! reasons. An 8-bit input is read in place from a copy of the image with its padding made once
//! per layer, so that each kernel row of a window is `kw·in_c` contiguous bytes (one pointer per
//! window and a table of each quad's offset from it, one loop over the layer's quads; the
//! weights padded with zeros to whole 4-byte quads per row); a 4-bit input goes through an
//! im2col copy per pixel. Requantization is [`Rq32`] in 512-bit vector form, then `VPMOVSDB`.
//! The table of quad offsets and the im2col block live in the op's planned scratch
//! (`Layout::scratch_bytes`, at most `9·⌈K⌉₄ + 3` bytes, within it for every `K`). Still on the
//! stack: the padded image (at most 64 KiB; a larger image takes the im2col copy) and, without
//! prepared weights, the weights laid out for the call (at most 64 KiB, the kernel's limit with
//! them too); a layer of more laid-out weights or more than 256 output channels is handed to
//! AVX-VNNI (or AVX2).
//! Depthwise convolution: 32–1,024 channels and at most four kernel rows in `super::stacked`
//! (`VPDPBUSD` over the kernel rows); the others 32 channels per block, as the AVX2 kernel.
#![allow(unsafe_code)]

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::super::reference::{self, ActFormat, AddRequant, Layer, Requant, Window};
use super::super::scratch::Scratch;
use super::super::util::{fc_window, gather_into, put, sum_bound, AddPlan, ChannelQ, Rq32};
use super::super::{KernelTable, Path};
use super::stacked::Stacked;
use super::{Avx2, AvxVnni, Depthwise, DW_C_MAX, DW_TAPS_MAX, K_MAX};
use crate::quant::{Biases, Bits, Multipliers};

/// Most output channels.
const OC_MAX: usize = 256;
/// Bytes of the laid-out weights of a layer (`⌈oc/16⌉·16 · ⌈K/4⌉·4`); larger: AVX-VNNI.
const WP_MAX: usize = 65536;
/// Bytes of the padded, offset input read in place, on the stack: a band of output rows at a
/// time whose input rows fit ([`conv2d_512`]); a layer whose windows' `kh` padded rows do not
/// fit takes an im2col copy per pixel.
const XBUF_MAX: usize = 16384;
/// Most taps `kh·kw` read in place.
const TAPS_MAX: usize = 64;

/// Proof that the CPU has AVX-512 F/BW/VL/VNNI and AVX2 (not AVX-VNNI, which some AVX-512 CPUs
/// lack: the fallback for oversized layers checks it).
#[derive(Debug, Clone, Copy)]
pub struct Avx512Vnni(());

impl Avx512Vnni {
    /// `Some` when the CPU has AVX-512 F, BW, VL and VNNI and AVX2 (run-time detection with the
    /// `std` feature, else the compile-time target features).
    pub fn new() -> Option<Avx512Vnni> {
        #[cfg(feature = "std")]
        let ok = std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx2");
        #[cfg(not(feature = "std"))]
        let ok = cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vl",
            target_feature = "avx512vnni",
            target_feature = "avx2"
        ));
        ok.then_some(Avx512Vnni(()))
    }

    /// These kernels as a [`KernelTable`] (the depthwise entry reports AVX-512 VNNI whichever
    /// of its kernels ran).
    pub fn table(self) -> KernelTable {
        KernelTable {
            path: Path::Avx512Vnni,
            conv2d: |g, layer, input, output, scratch| Avx512Vnni(()).conv2d(g, layer, input, output, scratch),
            depthwise_conv2d: |g, layer, input, output, scratch| {
                Avx512Vnni(()).depthwise_conv2d(g, layer, input, output, scratch);
                Path::Avx512Vnni
            },
            fully_connected: |n, m, layer, input, output, scratch| {
                Avx512Vnni(()).fully_connected(n, m, layer, input, output, scratch)
            },
        }
    }

    /// Bytes of the weights of a Conv2D laid out for this kernel ([`Avx512Vnni::prepare_conv2d`]):
    /// 0 when the layer is outside it (it then runs on AVX-VNNI or AVX2, which prepare nothing).
    pub fn conv2d_prepared_bytes(self, g: &Window, layer: &Layer<'_>) -> usize {
        Layout::new(g, layer.in_fmt.bits, layer.weights, layer.weight_bits).map_or(0, |l| l.bytes())
    }

    /// Lays out the weights of a Conv2D and their requantization for this kernel into `dst`,
    /// once, for [`Avx512Vnni::conv2d`] to read as [`Layer::prepared`]. `false` (nothing
    /// written) when `dst` does not have exactly [`Avx512Vnni::conv2d_prepared_bytes`] bytes, or
    /// that is 0.
    pub fn prepare_conv2d(self, g: &Window, layer: &Layer<'_>, dst: &mut [u8]) -> bool {
        let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
        let Some(l) = Layout::new(g, in_fmt.bits, weights, weight_bits).filter(|l| l.bytes() == dst.len()) else {
            return false;
        };
        let q = Some((in_fmt, rq));
        // SAFETY: `self` proves the CPU has AVX-512 F/BW/VL/VNNI and AVX2.
        unsafe {
            match weight_bits {
                Bits::B8 => prepare::<8>(&l, g, weights, q, dst),
                Bits::B4 => prepare::<4>(&l, g, weights, q, dst),
                Bits::B2 => prepare::<2>(&l, g, weights, q, dst),
            }
        }
        true
    }

    /// Conv2D, same bytes as [`reference::conv2d`], reading the layer's weights as
    /// [`Avx512Vnni::prepare_conv2d`] laid them out when [`Layer::prepared`] holds them (and
    /// laying them out into `scratch` otherwise). Returns the path that ran: AVX-512 VNNI, or
    /// for a layer outside its kernel (more than 256 output channels, more than 64 KiB of
    /// laid-out weights, `K` above `K_MAX`), prepared weights of another length than the
    /// layout's (other than empty) or a scratch smaller than
    /// [`super::super::conv2d_scratch_bytes`], AVX-VNNI or AVX2 (what [`AvxVnni::conv2d`] or
    /// [`Avx2::conv2d`] returns).
    pub fn conv2d(self, g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> Path {
        if self.conv2d_own(g, layer, input, output, scratch) {
            return Path::Avx512Vnni;
        }
        match AvxVnni::new() {
            Some(v) => v.conv2d(g, layer, input, output, scratch),
            None => Avx2(()).conv2d(g, layer, input, output, scratch),
        }
    }

    /// [`Avx512Vnni::conv2d`]'s own kernel: `false` (nothing written) for a layer outside it.
    fn conv2d_own(self, g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> bool {
        let Some(l) = Layout::new(g, layer.in_fmt.bits, layer.weights, layer.weight_bits) else {
            return false;
        };
        // SAFETY: `self` proves the CPU has AVX-512 F/BW/VL/VNNI and AVX2.
        unsafe {
            match layer.weight_bits {
                Bits::B8 => conv2d_512::<8>(&l, g, layer, input, output, scratch),
                Bits::B4 => conv2d_512::<4>(&l, g, layer, input, output, scratch),
                Bits::B2 => conv2d_512::<2>(&l, g, layer, input, output, scratch),
            }
        }
    }

    /// Bytes of a depthwise Conv2D's weight and requantization tables laid out for this kernel
    /// ([`Avx512Vnni::prepare_depthwise_conv2d`]): 0 when the layer is outside it.
    pub fn depthwise_conv2d_prepared_bytes(self, g: &Window, layer: &Layer<'_>) -> usize {
        let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
        if let Some(s) = Stacked::plan(g, in_fmt, weights, weight_bits, rq) {
            return if s.fast() { s.table_bytes() } else { 0 };
        }
        match Depthwise::plan(g, in_fmt, weights, weight_bits, rq, DW_BLOCK, true) {
            Some(dw) if g.in_c.is_multiple_of(DW_BLOCK) => dw_table_bytes(&dw),
            _ => 0,
        }
    }

    /// Lays out a depthwise Conv2D's tables into `dst`, once, for
    /// [`Avx512Vnni::depthwise_conv2d`] to read as [`Layer::prepared`]; `false` (nothing
    /// written) when `dst` does not have exactly [`Avx512Vnni::depthwise_conv2d_prepared_bytes`]
    /// bytes, or that is 0.
    pub fn prepare_depthwise_conv2d(self, g: &Window, layer: &Layer<'_>, dst: &mut [u8]) -> bool {
        let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
        if let Some(s) = Stacked::plan(g, in_fmt, weights, weight_bits, rq) {
            if !s.fast() || s.table_bytes() != dst.len() {
                return false;
            }
            // SAFETY: `self` proves the CPU has AVX-512 F.
            unsafe { s.tables(dst) };
            return true;
        }
        match Depthwise::plan(g, in_fmt, weights, weight_bits, rq, DW_BLOCK, true) {
            Some(dw) if g.in_c.is_multiple_of(DW_BLOCK) && dw_table_bytes(&dw) == dst.len() => {
                // SAFETY: `self` proves the CPU has AVX-512 F/BW and AVX2.
                unsafe { dw_tables(&dw, dst) };
                true
            }
            _ => false,
        }
    }

    /// Depthwise Conv2D, same bytes as [`reference::depthwise_conv2d`], with the tables of
    /// [`Avx512Vnni::prepare_depthwise_conv2d`] from [`Layer::prepared`] when it holds them;
    /// prepared tables of any other length (e.g. none) run the AVX2 kernel, which needs no tables
    /// of this size.
    pub fn depthwise_conv2d(self, g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) {
        // SAFETY: `self` proves the CPU has AVX-512 F/BW and AVX2.
        unsafe { depthwise_512(g, layer, input, output, scratch) }
    }

    /// Residual add, same bytes as [`reference::add`]: the AVX2 kernel's arithmetic
    /// (`super::add_avx2`) 64 elements per step, the rest on the AVX2 kernel.
    pub fn add(
        self,
        arena: &mut [u8],
        n: usize,
        a: (usize, ActFormat),
        b: (usize, ActFormat),
        out: usize,
        rq: &AddRequant,
    ) {
        // SAFETY: `self` proves the CPU has AVX-512 F/BW and AVX2.
        unsafe { add_512(arena, n, a, b, out, rq) }
    }

    /// Fully connected, same bytes as [`reference::fully_connected`]: a one-pixel convolution
    /// (with prepared weights as [`Avx512Vnni::conv2d`]).
    pub fn fully_connected(
        self,
        in_features: usize,
        out_features: usize,
        layer: &Layer<'_>,
        input: &[u8],
        output: &mut [u8],
        scratch: &mut [u8],
    ) -> Path {
        if self.conv2d_own(&fc_window(in_features, out_features), layer, input, output, scratch) {
            return Path::Avx512Vnni;
        }
        match AvxVnni::new() {
            Some(v) => v.fully_connected(in_features, out_features, layer, input, output, scratch),
            None => Avx2(()).fully_connected(in_features, out_features, layer, input, output, scratch),
        }
    }

    /// [`Avx512Vnni::conv2d_prepared_bytes`] of a fully connected layer (a one-pixel convolution).
    pub fn fully_connected_prepared_bytes(self, in_features: usize, out_features: usize, layer: &Layer<'_>) -> usize {
        self.conv2d_prepared_bytes(&fc_window(in_features, out_features), layer)
    }

    /// [`Avx512Vnni::prepare_conv2d`] of a fully connected layer.
    pub fn prepare_fully_connected(
        self,
        in_features: usize,
        out_features: usize,
        layer: &Layer<'_>,
        dst: &mut [u8],
    ) -> bool {
        self.prepare_conv2d(&fc_window(in_features, out_features), layer, dst)
    }
}

/// Channels of one block of the depthwise kernel.
const DW_BLOCK: usize = 32;

/// The residual add of `super::add_avx2` (its derivation there) on 512-bit registers: 64
/// elements per step, the tail on the AVX2 kernel.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
fn add_512(arena: &mut [u8], n: usize, a: (usize, ActFormat), b: (usize, ActFormat), out: usize, rq: &AddRequant) {
    let steps = n / 64;
    let plan = AddPlan::new(arena.len(), n, a, b, out, rq, 47);
    let (Some(AddPlan { r, halves: [ha, la, hb, lb] }), true) = (plan, steps > 0) else {
        return Avx2(()).add(arena, n, a, b, out, rq);
    };
    let pair = |x: i32, y: i32| _mm512_set1_epi32((x as u16 as i32) | (y << 16));
    let (mh, ml) = (pair(ha, hb), pair(la, lb));
    let (za, zb) = (_mm512_set1_epi16(a.1.zero_point as i16), _mm512_set1_epi16(b.1.zero_point as i16));
    let round = _mm512_set1_epi32(1 << (r - 17));
    let sh = _mm_cvtsi32_si128(r - 16);
    let (zo, lo, hi) = (_mm512_set1_epi32(rq.out.zero_point), _mm512_set1_epi32(rq.min), _mm512_set1_epi32(rq.max));
    // 32 elements: (a, b) as i16 minus the zero points, in pairs, to clamped i32 (per 128-bit
    // lane i: elements 8i..8i+3 and 8i+4..8i+7), packed back to 32 i16 in order.
    let thirty_two = |va: __m256i, vb: __m256i| {
        let da = _mm512_sub_epi16(_mm512_cvtepi8_epi16(va), za);
        let db = _mm512_sub_epi16(_mm512_cvtepi8_epi16(vb), zb);
        let q = |d: __m512i| {
            let h = _mm512_madd_epi16(d, mh);
            let l = _mm512_srai_epi32(_mm512_madd_epi16(d, ml), 16);
            let v = _mm512_sra_epi32(_mm512_add_epi32(_mm512_add_epi32(h, round), l), sh);
            _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(v, zo), lo), hi)
        };
        _mm512_packs_epi32(q(_mm512_unpacklo_epi16(da, db)), q(_mm512_unpackhi_epi16(da, db)))
    };
    // Lane-wise packs give the 64-bit quarters (0–7, 32–39 | 8–15, 40–47 | …): back in order.
    let order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
    let base = arena.as_mut_ptr();
    for i in 0..steps {
        let o = 64 * i;
        // SAFETY: `a.0 + n`, `b.0 + n` and `out + n` are within `arena` (checked by `AddPlan`)
        // and `o + 64 ≤ n`; the 64 input bytes are read before the 64 output bytes are written.
        unsafe {
            let va = _mm512_loadu_si512(base.add(a.0 + o) as *const __m512i);
            let vb = _mm512_loadu_si512(base.add(b.0 + o) as *const __m512i);
            let lo32 = thirty_two(_mm512_castsi512_si256(va), _mm512_castsi512_si256(vb));
            let hi32 = thirty_two(_mm512_extracti64x4_epi64(va, 1), _mm512_extracti64x4_epi64(vb, 1));
            let bytes = _mm512_permutexvar_epi64(order, _mm512_packs_epi16(lo32, hi32));
            _mm512_storeu_si512(base.add(out + o) as *mut __m512i, bytes);
        }
    }
    let done = 64 * steps;
    if done < n {
        Avx2(()).add(arena, n - done, (a.0 + done, a.1), (b.0 + done, b.1), out + done, rq);
    }
}

/// Lane i of the low / high vectors of a depthwise block holds channel `DW_LANES[0][i]` /
/// `DW_LANES[1][i]` of the block.
const DW_LANES: [[usize; 16]; 2] = [
    [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27],
    [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31],
];
/// Bytes of one [`LaneQ16`] in the depthwise tables: five vectors.
pub(super) const LANEQ_BYTES: usize = 5 * 64;

/// Bytes of a depthwise layer's tables ([`dw_tables`]): per block and tap pair two weight vectors,
/// then per block two [`LaneQ16`].
fn dw_table_bytes(dw: &Depthwise<'_>) -> usize {
    let (blocks, pairs) = (dw.g.in_c / DW_BLOCK, dw.taps.div_ceil(2));
    blocks * (pairs * 128 + 2 * LANEQ_BYTES)
}

/// The depthwise layer's weights as `i16` pairs of two taps in lane order, and each channel's
/// requantization (`−z·Σw` in the bias) as [`LaneQ16`] vectors, into `dst`
/// ([`dw_table_bytes`]): what [`depthwise_512`] reads, made once per layer or per call.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
fn dw_tables(dw: &Depthwise<'_>, dst: &mut [u8]) {
    let (blocks, pairs) = (dw.g.in_c / DW_BLOCK, dw.taps.div_ceil(2));
    let (wv, qv) = dst.split_at_mut(blocks * pairs * 128);
    for (i, d) in wv.chunks_exact_mut(64).enumerate().take(blocks * pairs * 2) {
        let (b, tp, half) = (i / (2 * pairs), (i / 2) % pairs, i % 2);
        let w = DW_LANES[half].map(|j| dw.pair(DW_BLOCK * b + j, tp));
        // SAFETY: `w` and `d` hold 64 bytes.
        unsafe {
            _mm512_storeu_si512(d.as_mut_ptr() as *mut __m512i, _mm512_loadu_si512(w.as_ptr() as *const __m512i))
        };
    }
    for (i, d) in qv.chunks_exact_mut(LANEQ_BYTES).enumerate().take(blocks * 2) {
        let (b, half) = (i / 2, i % 2);
        LaneQ16::new(&DW_LANES[half].map(|j| dw.channel(DW_BLOCK * b + j))).store(d);
    }
}

/// Depthwise convolution as the AVX2 kernel does it (tap pairs through `VPMADDWD`, `−z·Σw` in
/// the bias), 32 channels per block: lanes hold channels (0–3, 8–11, 16–19, 24–27) and (4–7,
/// 12–15, 20–23, 28–31), `VPACKSSDW` puts them back in order and `VPMOVSWB` makes the bytes.
/// Channel counts that are not a multiple of 32 take the AVX2 kernel. The weight and
/// requantization tables are `prepared` ([`Avx512Vnni::prepare_depthwise_conv2d`]); without
/// them (up to 66 KB, which would be on the stack) the layer takes the AVX2 kernel.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
fn depthwise_512(g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) {
    let Layer { in_fmt, weights, weight_bits, ref rq, prepared } = *layer;
    // Layers of 32–1,024 channels and at most four kernel rows: the stacked kernel (the tap-pair
    // one below when a channel's requantization is outside its vector form).
    if let Some(s) = Stacked::plan(g, in_fmt, weights, weight_bits, rq) {
        if s.run(input, output, prepared) {
            return;
        }
    }
    let fits = g.in_c.is_multiple_of(DW_BLOCK) && output.len() >= g.out_h * g.out_w * g.in_c;
    // Prepared tables were checked against the requantization when they were made.
    let ready = Depthwise::plan(g, in_fmt, weights, weight_bits, rq, DW_BLOCK, false)
        .filter(|dw| fits && prepared.len() == dw_table_bytes(dw) && input.len() >= g.in_h * g.in_w * g.in_c)
        .map(|dw| Depthwise { input, ..dw });
    let Some(dw) = ready else {
        return Avx2(()).depthwise_conv2d(g, layer, input, output, scratch);
    };
    let tables = prepared;
    let (taps, c) = (dw.taps, g.in_c);
    let (blocks, pairs) = (c / DW_BLOCK, taps.div_ceil(2));
    let (wv, qv) = tables.split_at(blocks * pairs * 128);
    let zrow = [dw.z as u8; DW_C_MAX];
    let (lo, hi) = (_mm512_set1_epi32(rq.min), _mm512_set1_epi32(rq.max));
    let mut ptrs = [zrow.as_ptr(); DW_TAPS_MAX + 1];
    for oy in 0..g.out_h {
        for ox in 0..g.out_w {
            dw.pointers(oy, ox, &zrow, &mut ptrs);
            let o = (oy * g.out_w + ox) * c;
            for b in 0..blocks {
                let (mut acc_lo, mut acc_hi) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                let w = &wv[b * pairs * 128..(b + 1) * pairs * 128];
                for (tp, w) in w.chunks_exact(128).enumerate() {
                    // SAFETY: every pointer starts `c ≥ 32b + 32` readable bytes (a pixel of
                    // `input`, or `zrow` with `DW_C_MAX ≥ c` bytes); `w` holds 128 bytes.
                    let (a0, a1, w0, w1) = unsafe {
                        (
                            _mm256_loadu_si256(ptrs[2 * tp].add(DW_BLOCK * b) as *const __m256i),
                            _mm256_loadu_si256(ptrs[2 * tp + 1].add(DW_BLOCK * b) as *const __m256i),
                            _mm512_loadu_si512(w.as_ptr() as *const __m512i),
                            _mm512_loadu_si512(w.as_ptr().add(64) as *const __m512i),
                        )
                    };
                    let (d0, d1) = (_mm512_cvtepi8_epi16(a0), _mm512_cvtepi8_epi16(a1));
                    acc_lo = _mm512_add_epi32(acc_lo, _mm512_madd_epi16(_mm512_unpacklo_epi16(d0, d1), w0));
                    acc_hi = _mm512_add_epi32(acc_hi, _mm512_madd_epi16(_mm512_unpackhi_epi16(d0, d1), w1));
                }
                let q = &qv[b * 2 * LANEQ_BYTES..(b + 1) * 2 * LANEQ_BYTES];
                let (q_lo, q_hi) = (LaneQ16::load(&q[..LANEQ_BYTES]), LaneQ16::load(&q[LANEQ_BYTES..]));
                let clamp = |v: __m512i| _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                let (v_lo, v_hi) = (clamp(q_lo.apply(acc_lo)), clamp(q_hi.apply(acc_hi)));
                let bytes = _mm512_cvtsepi16_epi8(_mm512_packs_epi32(v_lo, v_hi));
                let dst = &mut output[o + DW_BLOCK * b..o + DW_BLOCK * (b + 1)];
                // SAFETY: `dst` holds 32 bytes.
                unsafe { _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, bytes) };
            }
        }
    }
}

/// [`Rq32::unclamped`] of 16 channels (fast ones) as vectors over their lanes, with the clamp.
#[derive(Clone, Copy)]
pub(super) struct LaneQ16 {
    bias: __m512i,
    shl: __m512i,
    m: __m512i,
    round: __m512i,
    sh: __m512i,
}

impl LaneQ16 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn new(f: &[Rq32; 16]) -> LaneQ16 {
        let v = |x: [i32; 16]| {
            // SAFETY: `x` holds 64 bytes.
            unsafe { _mm512_loadu_si512(x.as_ptr() as *const __m512i) }
        };
        LaneQ16 {
            bias: v(f.map(|f| f.bias)),
            shl: v(f.map(|f| f.shl as i32)),
            m: v(f.map(|f| f.m)),
            round: v(f.map(|f| f.round)),
            sh: v(f.map(|f| f.sh as i32)),
        }
    }

    /// The five vectors of [`dw_tables`] (`LANEQ_BYTES` bytes: bias, shl, m, round, sh).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn load(bytes: &[u8]) -> LaneQ16 {
        let bytes = &bytes[..LANEQ_BYTES];
        // SAFETY: `bytes` holds five vectors of 64 bytes.
        let v = |i: usize| unsafe { _mm512_loadu_si512(bytes.as_ptr().add(64 * i) as *const __m512i) };
        LaneQ16 { bias: v(0), shl: v(1), m: v(2), round: v(3), sh: v(4) }
    }

    /// The five vectors into `bytes` (`LANEQ_BYTES`), as [`LaneQ16::load`] reads them.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn store(&self, bytes: &mut [u8]) {
        let bytes = &mut bytes[..LANEQ_BYTES];
        for (d, v) in bytes.chunks_exact_mut(64).zip([self.bias, self.shl, self.m, self.round, self.sh]) {
            // SAFETY: `d` holds 64 bytes.
            unsafe { _mm512_storeu_si512(d.as_mut_ptr() as *mut __m512i, v) };
        }
    }

    /// As `LaneQ::apply` of the AVX2 kernels, 16 lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn apply(&self, s: __m512i) -> __m512i {
        let v = _mm512_sllv_epi32(_mm512_add_epi32(s, self.bias), self.shl);
        let hi = _mm512_mullo_epi32(_mm512_srai_epi32(v, 16), self.m);
        let lo = _mm512_srli_epi32(_mm512_mullo_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0xFFFF)), self.m), 16);
        _mm512_srav_epi32(_mm512_add_epi32(_mm512_add_epi32(hi, lo), self.round), self.sh)
    }
}

/// How a layer's weights are laid out for [`conv2d_512`]: a function of the window and the input
/// width only (so that it can be prepared once, [`Avx512Vnni::prepare_conv2d`]).
#[derive(Clone, Copy)]
struct Layout {
    k: usize,
    groups: usize,
    /// `⌈kw·in_c/4⌉`: quads per kernel row in `xbuf` mode.
    row_quads: usize,
    padded_h: usize,
    padded_w: usize,
    /// An 8-bit input read in place from a padded copy of the image (else im2col per pixel).
    indirect: bool,
    /// The K of the laid-out weights, in quads: kernel rows of `row_quads` quads, or `⌈K/4⌉`.
    kq: usize,
}

impl Layout {
    /// `None` when the layer is outside this kernel (it takes AVX-VNNI or AVX2).
    fn new(g: &Window, in_bits: Bits, weights: &[u8], weight_bits: Bits) -> Option<Layout> {
        let (taps, ic) = (g.kernel_h * g.kernel_w, g.in_c);
        let k = taps * ic;
        let fits = k > 0
            && g.out_h > 0
            && g.out_w > 0
            && k <= K_MAX
            && g.out_c > 0
            && g.out_c <= OC_MAX
            && g.out_c.next_multiple_of(16) * k.next_multiple_of(4) <= WP_MAX
            && weights.len() >= g.out_c * weight_bits.packed_len(k);
        if !fits {
            return None;
        }
        let groups = g.out_c.div_ceil(16);
        // An 8-bit input is read in place from a copy of the image with its padding (offset by
        // 128, made once per layer): a kernel row of a window is then `kw·ic` contiguous bytes,
        // read in 4-byte quads (the weights padded with zeros to whole quads per kernel row). A
        // 4-bit input goes through an im2col copy per pixel.
        let (seg, kh) = (g.kernel_w * ic, g.kernel_h);
        let row_quads = seg.div_ceil(4);
        let padded_h = ((g.out_h - 1) * g.stride_h + kh).max(g.pad_top + g.in_h);
        let padded_w = ((g.out_w - 1) * g.stride_w + g.kernel_w).max(g.pad_left + g.in_w);
        // Read in place when padding the rows to whole quads wastes at most a third of the
        // products.
        // The last window's last kernel row ends inside the padded image (+4 bytes): every
        // block's pointers are then in bounds without a check per pixel.
        let line = padded_w * ic;
        let last_row = (g.out_h - 1) * g.stride_h * line + (g.out_w - 1) * g.stride_w * ic + (kh - 1) * line;
        let indirect = in_bits == Bits::B8
            && last_row + 4 * row_quads <= padded_h * line + 4
            && 3 * 4 * row_quads <= 4 * seg
            && kh * line + 4 <= XBUF_MAX
            && kh <= TAPS_MAX
            && groups * 16 * kh * 4 * row_quads <= WP_MAX;
        let kq = if indirect { kh * row_quads } else { k.div_ceil(4) };
        Some(Layout { k, groups, row_quads, padded_h, padded_w, indirect, kq })
    }

    /// Bytes of the prepared weights: each channel's `Σw` (`i32`, 16 per group), the laid-out
    /// weights (`groups·kq·64`), each group's [`LaneQ16`] and a flag (64 bytes, the first 1
    /// when those hold the layer's requantization: 8-bit output, every channel fast).
    fn bytes(&self) -> usize {
        self.groups * 64 * (1 + self.kq) + self.groups * LANEQ_BYTES + 64
    }

    /// Scratch bytes of [`blocks`] for `p` pixels per block over `npix`: each quad's offset
    /// (`u32`), and without `indirect` the block's receptive fields (`4·kq` bytes each); at
    /// most `9·⌈K⌉₄ + 3` (an im2col block of 8 pixels), within what a convolution's planned
    /// scratch holds (`8·⌈K⌉₄` for its blocks, `⌈K⌉₄` for a receptive field, `4` of slack), and
    /// for one pixel (a fully connected layer) `2·⌈K⌉₄ + 3`, within its `2·⌈K⌉₄ + 4`.
    fn scratch_bytes(&self, p: usize, npix: usize) -> usize {
        let fields = if self.indirect { 0 } else { p.min(npix) * 4 * self.kq };
        3 + 4 * self.kq + fields
    }
}

/// The weights of a layer laid out per group, `k/4` and lane, into `dst` ([`Layout::bytes`]):
/// `[Σw of 16·groups channels, i32 LE][groups][kq][16 lanes][4 bytes]`, then with `q` (the
/// input format and the requantization) each group's [`LaneQ16`] and the flag. Every byte is
/// written.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn prepare<const B: usize>(
    l: &Layout,
    g: &Window,
    weights: &[u8],
    q: Option<(ActFormat, &Requant<'_>)>,
    dst: &mut [u8],
) {
    let bits = Bits::from_width(B as u32);
    let (k, kq, oc) = (l.k, l.kq, g.out_c);
    let seg = g.kernel_w * g.in_c;
    let row_bytes = bits.packed_len(k);
    let (sums, rest) = dst.split_at_mut(l.groups * 64);
    let (wp, tail) = rest.split_at_mut(l.groups * kq * 64);
    sums.fill(0);
    tail.fill(0);
    // Kernel rows padded to whole quads (an `indirect` layout whose rows are not): each weight
    // placed on its own, the padding zero. Else every quad of every group is written (the lanes
    // past `oc` zero).
    let spaced = l.indirect && 4 * l.row_quads != seg;
    if spaced {
        wp.fill(0);
    }
    // Row `c`'s weights `32j..32j + 32` as bytes, zero past K (the next row's there).
    let chunk = |c: usize, j: usize| {
        let left = k - 32 * j;
        let m: __mmask32 = if left >= 32 { !0 } else { (1u32 << left) - 1 };
        _mm256_maskz_mov_epi8(m, super::vnni::chunk::<B>(&weights[c * row_bytes..], j))
    };
    if spaced {
        let ones = _mm256_set1_epi8(1);
        for c in 0..oc {
            let (group, lane) = (c / 16, c % 16);
            let wg = &mut wp[group * kq * 64..(group + 1) * kq * 64];
            let mut acc = _mm256_setzero_si256();
            for j in 0..k.div_ceil(32) {
                let w = chunk(c, j);
                acc = _mm256_dpbusd_epi32(acc, ones, w);
                let mut t = [0u8; 32];
                // SAFETY: `t` holds 32 bytes.
                unsafe { _mm256_storeu_si256(t.as_mut_ptr() as *mut __m256i, w) };
                // Weight `i` of kernel row `i / seg` at byte `i % seg` of that row's quads.
                for (i, &b) in t.iter().enumerate().take(k - 32 * j) {
                    let (ky, r) = ((32 * j + i) / seg, (32 * j + i) % seg);
                    wg[(ky * l.row_quads + r / 4) * 64 + 4 * lane + r % 4] = b;
                }
            }
            sums[4 * c..4 * c + 4].copy_from_slice(&super::blocks::hsum1(acc).to_le_bytes());
        }
    } else {
        // Per group and 32 values of K: the 16 rows' chunks (8 quads each) transposed in
        // registers into 8 vectors of one quad per lane, `Σw` of the 16 channels alongside.
        let ones = _mm512_set1_epi8(1);
        // Qwords of the 128-bit lanes (u.0, v.0, u.2, v.2) and (u.1, v.1, u.3, v.3).
        let lanes02 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
        let lanes13 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
        for group in 0..l.groups {
            let wg = &mut wp[group * kq * 64..(group + 1) * kq * 64];
            let c0 = 16 * group;
            let mut acc = _mm512_setzero_si512();
            for j in 0..k.div_ceil(32) {
                let row = |c: usize| if c < oc { chunk(c, j) } else { _mm256_setzero_si256() };
                // r[i]: rows i and i + 8 of the group; then two 8×8 transposes of `i32` side
                // by side (`VPUNPCK*DQ`, `VPUNPCK*QDQ`, then the 128-bit lanes put together).
                let r: [__m512i; 8] = core::array::from_fn(|i| {
                    _mm512_inserti64x4(_mm512_castsi256_si512(row(c0 + i)), row(c0 + i + 8), 1)
                });
                let t: [__m512i; 8] = core::array::from_fn(|i| {
                    let (a, b) = (r[i & !1], r[i | 1]);
                    if i % 2 == 0 {
                        _mm512_unpacklo_epi32(a, b)
                    } else {
                        _mm512_unpackhi_epi32(a, b)
                    }
                });
                // u[i]: rows 4(i / 4)..+4 of quads (i % 4, i % 4 + 4) in 128-bit lanes.
                let u: [__m512i; 8] = core::array::from_fn(|i| {
                    let (h, q) = (i / 4 * 4, i % 4);
                    let (a, b) = (t[h + q / 2], t[h + q / 2 + 2]);
                    if q % 2 == 0 {
                        _mm512_unpacklo_epi64(a, b)
                    } else {
                        _mm512_unpackhi_epi64(a, b)
                    }
                });
                for q in 0..8 {
                    let (a, b) = (u[q % 4], u[q % 4 + 4]);
                    let v = _mm512_permutex2var_epi64(a, if q < 4 { lanes02 } else { lanes13 }, b);
                    acc = _mm512_dpbusd_epi32(acc, ones, v);
                    if let Some(d) = wg.get_mut((8 * j + q) * 64..(8 * j + q + 1) * 64) {
                        // SAFETY: `d` holds 64 bytes.
                        unsafe { _mm512_storeu_si512(d.as_mut_ptr() as *mut __m512i, v) };
                    }
                }
            }
            // SAFETY: `sums` holds 64 bytes per group.
            unsafe { _mm512_storeu_si512(sums[64 * group..].as_mut_ptr() as *mut __m512i, acc) };
        }
    }
    if let Some((in_fmt, rq)) = q {
        let mut fast = heapless::Vec::new();
        channel_requant(l, bits, in_fmt, rq, sums, oc, &mut fast);
        if rq.out.bits == Bits::B8 && !fast.iter().any(|f| f.is_slow()) {
            let (lq, flag) = tail.split_at_mut(l.groups * LANEQ_BYTES);
            for (gi, d) in lq.chunks_exact_mut(LANEQ_BYTES).enumerate() {
                LaneQ16::new(&core::array::from_fn(|j| fast[(16 * gi + j).min(oc - 1)])).store(d);
            }
            flag[0] = 1;
        }
    }
}

/// Each channel's [`Rq32`] with `(128 + z)·Σw` in its bias, from the prepared `Σw` (`sums`),
/// into `fast` (filled in place: the vector is kilobytes).
fn channel_requant(
    l: &Layout,
    bits: Bits,
    in_fmt: ActFormat,
    rq: &Requant<'_>,
    sums: &[u8],
    oc: usize,
    fast: &mut heapless::Vec<Rq32, OC_MAX>,
) {
    let bound = sum_bound(l.k, bits, in_fmt.bits);
    let offset = 128 + in_fmt.zero_point;
    for (c, s) in sums.chunks_exact(4).take(oc).enumerate() {
        let sum_w = i32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        let _ = fast.push(Rq32::new(&ChannelQ::new(rq, c), bound, 0).with_bias_offset(offset.wrapping_mul(-sum_w)));
    }
}

/// Conv2D with the weights of [`prepare`], laid out once by the caller into
/// [`Layer::prepared`] when it has [`Layout::bytes`] bytes, else laid out here a chunk of
/// channels at a time ([`conv2d_512_in_chunks`]); `false` (nothing written) when `scratch` has
/// less than [`Layout::scratch_bytes`] or a chunk's layout does not fit.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn conv2d_512<const B: usize>(
    l: &Layout,
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> bool {
    if layer.prepared.len() != l.bytes() {
        return conv2d_512_in_chunks::<B>(l, g, layer, input, output, scratch);
    }
    if !conv2d_512_part::<B>(l, g, layer, input, (output, g.out_c, 0), scratch) {
        return false;
    }
    reference::clear_tail(output, layer.rq.out, g.out_h * g.out_w * g.out_c);
    true
}

/// Pixels per block of a layer of `groups` groups of 16 channels: more when there are few, so
/// that a block has enough sums.
fn block_pixels(groups: usize) -> usize {
    match groups {
        1 => 8,
        2 => 6,
        _ => 4,
    }
}

/// Bytes of the stack buffer [`conv2d_512_in_chunks`] lays weights out in.
const CHUNK_BYTES: usize = 16 * 1024;

/// A 64-byte aligned buffer (the laid-out weights are read 64 bytes at a time).
#[repr(C, align(64))]
struct Aligned([u8; CHUNK_BYTES]);

/// [`conv2d_512`] without prepared weights: the output channels in chunks of whole groups of
/// 16 whose layout fits [`CHUNK_BYTES`] on the stack, each laid out and run in turn (the
/// image read once per chunk); `false` (nothing written) when one group's does not fit (`K`
/// above about 1,400) or `scratch` is short.
#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn conv2d_512_in_chunks<const B: usize>(
    l: &Layout,
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> bool {
    let Layer { in_fmt, weights, ref rq, .. } = *layer;
    let bits = Bits::from_width(B as u32);
    let per_group = 64 * (1 + l.kq) + LANEQ_BYTES;
    let chunk = 16 * ((CHUNK_BYTES - 64) / per_group);
    // A chunk of fewer groups may take blocks of more pixels: the scratch for the most.
    if chunk == 0 || scratch.len() < l.scratch_bytes(8, g.out_h * g.out_w) {
        return false;
    }
    let (oc, row_bytes) = (g.out_c, bits.packed_len(l.k));
    let (bias_bytes, mut own) = (Biases::bytes_per_channel(rq.bias.exponent), Aligned([0; CHUNK_BYTES]));
    let mut c0 = 0;
    while c0 < oc {
        let c1 = (c0 + chunk).min(oc);
        let part = Window { out_c: c1 - c0, ..*g };
        let (Some(w), Some(bias), Some(mult)) = (
            weights.get(c0 * row_bytes..c1 * row_bytes),
            rq.bias.bytes.get(c0 * bias_bytes..),
            rq.multiplier.bytes.get(2 * c0..),
        ) else {
            return false;
        };
        let part_rq = Requant {
            bias: Biases { bytes: bias, exponent: rq.bias.exponent },
            multiplier: Multipliers { bytes: mult, shift_base: rq.multiplier.shift_base },
            ..*rq
        };
        // The same `kq` and reading as the whole layer's: `Layout::new` decides them from the
        // window and the input alone (fewer channels only ease its bounds).
        let Some(pl) = Layout::new(&part, in_fmt.bits, w, bits) else {
            return false;
        };
        let buf = &mut own.0[..pl.bytes()];
        prepare::<B>(&pl, &part, w, Some((in_fmt, &part_rq)), buf);
        let part_layer = Layer { weights: w, rq: part_rq, prepared: buf, ..*layer };
        if !conv2d_512_part::<B>(&pl, &part, &part_layer, input, (&mut *output, oc, c0), scratch) {
            return false;
        }
        c0 = c1;
    }
    reference::clear_tail(output, rq.out, g.out_h * g.out_w * oc);
    true
}

/// [`conv2d_512`] over the prepared weights of `g.out_c` output channels, stored as channels
/// `c_base..` of pixels of `stride` channels in `output`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn conv2d_512_part<const B: usize>(
    l: &Layout,
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    (output, out_stride, c_base): (&mut [u8], usize, usize),
    scratch: &mut [u8],
) -> bool {
    let Layer { in_fmt, ref rq, prepared, .. } = *layer;
    let bits = Bits::from_width(B as u32);
    let (k, kq, oc, groups, indirect) = (l.k, l.kq, g.out_c, l.groups, l.indirect);
    let padded_w = l.padded_w;
    let npix = g.out_h * g.out_w;
    if prepared.len() != l.bytes() || scratch.len() < l.scratch_bytes(block_pixels(groups), npix) {
        return false;
    }
    let (sums, rest) = prepared.split_at(groups * 64);
    let (wp, rest) = rest.split_at(groups * kq * 64);
    let (lq_bytes, flag) = rest.split_at(groups * LANEQ_BYTES);
    let mut lq: heapless::Vec<LaneQ16, { OC_MAX / 16 }> = heapless::Vec::new();
    // Prepared requantization (8-bit output, every channel fast): the vectors as made; else
    // each channel's from its `Σw`.
    let mut fast = heapless::Vec::new();
    let direct = if flag[0] == 1 && rq.out.bits == Bits::B8 {
        for d in lq_bytes.chunks_exact(LANEQ_BYTES) {
            let _ = lq.push(LaneQ16::load(d));
        }
        true
    } else {
        channel_requant(l, bits, in_fmt, rq, sums, oc, &mut fast);
        for gi in 0..groups {
            let _ = lq.push(LaneQ16::new(&core::array::from_fn(|j| fast[(16 * gi + j).min(oc - 1)])));
        }
        let slow = fast.iter().any(|f| f.is_slow());
        rq.out.bits == Bits::B8 && !slow
    };

    let ctx = Ctx {
        g,
        input,
        in_fmt,
        k,
        kq,
        row_quads: l.row_quads,
        padded_w,
        oc,
        rq,
        wp,
        lq: &lq,
        fast: &fast,
        direct,
        xbuf: None,
        first: 0,
        out_stride,
        c_base,
    };
    let run = |ctx: &Ctx<'_>, npix: usize, output: &mut [u8], scratch: &mut [u8]| match groups {
        1 => blocks::<8, 1>(ctx, npix, output, scratch),
        2 => blocks::<6, 2>(ctx, npix, output, scratch),
        3 => blocks::<4, 3>(ctx, npix, output, scratch),
        _ => blocks::<4, 4>(ctx, npix, output, scratch),
    };
    let ran = if indirect {
        // The padded image offset by 128 (`a ^ 0x80`; the padding `z ^ 0x80`), and 4 bytes more
        // for the last quad of the last row (they meet zero weights), a band of output rows at a
        // time: the most rows whose windows' input rows fit `XBUF_MAX` (one at least:
        // `Layout::new` checked that `kh` padded rows do).
        let zx = (in_fmt.zero_point as u8) ^ 0x80;
        let line = padded_w * g.in_c;
        let rows_fit = (XBUF_MAX - 4) / line;
        let band_rows = ((rows_fit - g.kernel_h) / g.stride_h + 1).min(g.out_h);
        let mut xbuf = MaybeUninit::uninit();
        let mut oy0 = 0;
        let mut ran = true;
        while oy0 < g.out_h && ran {
            let oy1 = (oy0 + band_rows).min(g.out_h);
            let (bg, rows) = band(g, oy0, oy1);
            let b_input = input.get(rows.start * g.in_w * g.in_c..).unwrap_or(&[]);
            let bl = Layout { padded_h: (oy1 - oy0 - 1) * g.stride_h + g.kernel_h, ..*l };
            let xbuf = padded_image(&mut xbuf, &bg, &bl, b_input, zx);
            let bctx = Ctx { g: &bg, input: b_input, xbuf: Some(xbuf), first: oy0 * g.out_w, ..ctx };
            ran = run(&bctx, (oy1 - oy0) * g.out_w, output, scratch);
            oy0 = oy1;
        }
        ran
    } else {
        run(&ctx, npix, output, scratch)
    };
    // Always true: the scratch was checked above for `pix`, the `P` chosen here.
    debug_assert!(ran);
    ran
}

/// The window of output rows `oy0..oy1` of `g`: the input rows they read (`rows`, clipped to
/// the image) with the padding above them that they still meet.
fn band(g: &Window, oy0: usize, oy1: usize) -> (Window, core::ops::Range<usize>) {
    let top = oy0 * g.stride_h;
    let bottom = (oy1 - 1) * g.stride_h + g.kernel_h;
    let start = top.saturating_sub(g.pad_top).min(g.in_h);
    let end = bottom.saturating_sub(g.pad_top).min(g.in_h).max(start);
    let band = Window { in_h: end - start, out_h: oy1 - oy0, pad_top: g.pad_top.saturating_sub(top), ..*g };
    (band, start..end)
}

/// The input image inside its padding, offset by 128 (`a ^ 0x80`, the padding `z ^ 0x80`), and
/// 4 bytes more of `z ^ 0x80` for the last quad of the last row: the first
/// `padded_h·padded_w·in_c + 4` bytes of `buf` (`Layout::new` checked that they fit), each
/// written once (zeroing the buffer, filling it and copying the image over it wrote the image's
/// bytes three times). Rows missing from a short `input` read as padding.
#[target_feature(enable = "avx512f,avx512bw")]
fn padded_image<'b>(
    buf: &'b mut MaybeUninit<[u8; XBUF_MAX]>,
    g: &Window,
    l: &Layout,
    input: &[u8],
    zx: u8,
) -> &'b [u8] {
    let line = l.padded_w * g.in_c;
    let row = g.in_w * g.in_c;
    let left = g.pad_left * g.in_c;
    let right = line - left - row;
    let len = l.padded_h * line + 4;
    debug_assert!(len <= XBUF_MAX && l.padded_w >= g.pad_left + g.in_w);
    let flip = _mm512_set1_epi8(0x80u8 as i8);
    let pad = _mm512_set1_epi8(zx as i8);
    let p = buf.as_mut_ptr() as *mut u8;
    for y in 0..l.padded_h {
        let src = y.checked_sub(g.pad_top).filter(|&r| r < g.in_h).and_then(|r| input.get(r * row..(r + 1) * row));
        // SAFETY: row `y` of the padded image is the `line` bytes from `y·line`, inside the
        // first `len ≤ XBUF_MAX` bytes of `buf`; `left + row + right = line`; the loads read
        // `src`'s bytes only (the tail under a mask).
        unsafe {
            let d = p.add(y * line);
            let Some(src) = src else {
                fill(d, pad, line);
                continue;
            };
            fill(d, pad, left);
            let (s, d) = (src.as_ptr(), d.add(left));
            let mut i = 0;
            while i + 64 <= row {
                let v = _mm512_loadu_si512(s.add(i) as *const __m512i);
                _mm512_storeu_si512(d.add(i) as *mut __m512i, _mm512_xor_si512(v, flip));
                i += 64;
            }
            if i < row {
                let m: __mmask64 = u64::MAX >> (64 - (row - i));
                let v = _mm512_maskz_loadu_epi8(m, s.add(i) as *const i8);
                _mm512_mask_storeu_epi8(d.add(i) as *mut i8, m, _mm512_xor_si512(v, flip));
            }
            fill(d.add(row), pad, right);
        }
    }
    // SAFETY: the 4 bytes after the last row are inside `len`; then every one of the first `len`
    // bytes has been written.
    unsafe {
        core::ptr::write_bytes(p.add(l.padded_h * line), zx, 4);
        core::slice::from_raw_parts(p, len)
    }
}

/// `len` bytes of `v`'s value from `d`, in 64-byte stores (the borders of a padded image are a
/// few bytes a row: a `memset` call each cost more than the row's copy).
///
/// # Safety
/// `d` is valid for writes of `len` bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn fill(d: *mut u8, v: __m512i, len: usize) {
    let mut i = 0;
    while i + 64 <= len {
        // SAFETY: `i + 64 ≤ len`.
        unsafe { _mm512_storeu_si512(d.add(i) as *mut __m512i, v) };
        i += 64;
    }
    if i < len {
        // SAFETY: the mask covers the `len − i < 64` bytes left.
        unsafe { _mm512_mask_storeu_epi8(d.add(i) as *mut i8, u64::MAX >> (64 - (len - i)), v) };
    }
}

/// What every block of a layer reads.
struct Ctx<'a> {
    g: &'a Window,
    input: &'a [u8],
    in_fmt: ActFormat,
    k: usize,
    kq: usize,
    /// Quads per kernel row in `xbuf` mode (`⌈kw·in_c/4⌉`).
    row_quads: usize,
    /// Pixels per row of the padded image in `xbuf`.
    padded_w: usize,
    oc: usize,
    rq: &'a Requant<'a>,
    wp: &'a [u8],
    lq: &'a [LaneQ16],
    fast: &'a [Rq32],
    /// 8-bit output and every channel fast: vector requantization and stores.
    direct: bool,
    /// The padded image offset by 128, read in place; `None`: an im2col copy per pixel.
    xbuf: Option<&'a [u8]>,
    /// The layer's index of the first output pixel of `g` (a band's first row, in `xbuf` mode).
    first: usize,
    /// Channels per output pixel (`oc`, or the layer's when these are a chunk of its channels).
    out_stride: usize,
    /// The layer's index of channel 0 of `oc`.
    c_base: usize,
}

/// The sums of a block in output order (pixel-major, 16 channels per sum) requantized and
/// clamped into `dst` (`P·G·16` bytes), four sums per 64-byte store: `VPACKSSDW` / `VPACKSSWB`
/// leave lane `L` holding channels `4L..4L+3` of each of the four (saturating to `i8`, which
/// the clamp to `[lo, hi] ⊂ [−128, 127]` then makes exact), `VPERMD` puts each sum's four
/// dwords together.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn store_runs<const P: usize, const G: usize>(
    acc: &[[__m512i; G]; P],
    lq: &[LaneQ16],
    lo: i32,
    hi: i32,
    dst: &mut [u8],
) {
    let (lo, hi) = (_mm512_set1_epi8(lo as i8), _mm512_set1_epi8(hi as i8));
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let sum = |u: usize| lq[u % G].apply(acc[u / G][u % G]);
    for (quad, d) in dst.chunks_exact_mut(64).enumerate().take(P * G / 4) {
        let u = 4 * quad;
        let words = (_mm512_packs_epi32(sum(u), sum(u + 1)), _mm512_packs_epi32(sum(u + 2), sum(u + 3)));
        let bytes = _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(words.0, words.1), lo), hi);
        // SAFETY: `d` holds 64 bytes.
        unsafe { _mm512_storeu_si512(d.as_mut_ptr() as *mut __m512i, _mm512_permutexvar_epi32(order, bytes)) };
    }
}

/// The layer in blocks of `P` pixels × `G` groups of 16 channels (the last group of a pass
/// may be partial, and a layer with more than `G` groups takes several passes per block).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn blocks<const P: usize, const G: usize>(ctx: &Ctx<'_>, npix: usize, output: &mut [u8], scratch: &mut [u8]) -> bool {
    let (g, k, kq, oc) = (ctx.g, ctx.k, ctx.kq, ctx.oc);
    let groups = oc.div_ceil(16);
    let mut s = Scratch::new(scratch);
    // Per quad of the laid-out weights, its byte offset from a window's start: kernel rows of
    // `row_quads` quads `line` apart in `xbuf`, else consecutive.
    let Some(offs) = s.take::<u32>(kq) else {
        return false;
    };
    // Without `xbuf`: each pixel's activations `a ^ 0x80` (rows of `4·kq`), zero past K (the
    // weights are zero there too), read as one tap of `kq` quads.
    let stride = 4 * kq;
    let Some(x) = s.take::<u8>(if ctx.xbuf.is_some() { 0 } else { P.min(npix) * stride }) else {
        return false;
    };
    // Per pixel, where its window (its im2col row) starts; the pixels past a partial block read
    // the first one's.
    let mut base = [core::ptr::null::<u8>(); P];
    let (lo, hi) = (_mm512_set1_epi32(ctx.rq.min), _mm512_set1_epi32(ctx.rq.max));
    let line = ctx.padded_w * g.in_c;
    for (j, o) in offs.iter_mut().enumerate() {
        // Within `u32`: `xbuf` holds at most `XBUF_MAX` bytes, `x` a row of `4·kq`.
        *o = if ctx.xbuf.is_some() { j / ctx.row_quads * line + 4 * (j % ctx.row_quads) } else { 4 * j } as u32;
    }
    let offs: &[u32] = offs;
    let mut q0 = 0;
    // The output pixel `q0 + p`, advanced one at a time.
    let (mut oy, mut ox) = (0, 0);
    'blocks: while q0 < npix {
        let n = (npix - q0).min(P);
        for p in 0..n {
            match ctx.xbuf {
                Some(xbuf) => {
                    // The window's top-left corner in the padded image, then one row per `ky`
                    // (`Layout::new` checked that the last window's rows end inside `xbuf`).
                    let corner = oy * g.stride_h * line + ox * g.stride_w * g.in_c;
                    base[p] = xbuf.as_ptr().wrapping_add(corner);
                }
                None => {
                    let xp = &mut x[p * stride..(p + 1) * stride];
                    gather_into(g, ctx.input, ctx.in_fmt, oy, ox, xp);
                    for a in xp[..k].iter_mut() {
                        *a ^= 0x80;
                    }
                    xp[k..].fill(0);
                    base[p] = xp.as_ptr();
                }
            }
            ox += 1;
            if ox == g.out_w {
                (oy, ox) = (oy + 1, 0);
            }
        }
        for p in n..P {
            base[p] = base[0];
        }
        let mut g0 = 0;
        while g0 < groups {
            let mut acc = [[_mm512_setzero_si512(); G]; P];
            let wbase = g0 * kq * 64;
            for (j, &off) in offs.iter().enumerate() {
                let mut w = [_mm512_setzero_si512(); G];
                for (gi, wv) in w.iter_mut().enumerate() {
                    // Groups past the layer's read the first group again (their sums unused).
                    let at = if g0 + gi < groups { wbase + (gi * kq + j) * 64 } else { wbase + j * 64 };
                    // SAFETY: `at + 64 ≤ groups·kq·64 ≤ WP_MAX`.
                    *wv = unsafe { _mm512_loadu_si512(ctx.wp.as_ptr().add(at) as *const __m512i) };
                }
                for (a, &b) in acc.iter_mut().zip(&base) {
                    // SAFETY: `b + off` starts 4 readable bytes: in `xbuf` a quad of a window's
                    // kernel row (the last window's last row ends inside it, which
                    // `Layout::new` checked for `indirect`), else a quad of a row of `x`
                    // (`off < 4·kq`).
                    let v = unsafe { (b.add(off as usize) as *const i32).read_unaligned() };
                    let xb = _mm512_set1_epi32(v);
                    for (s, wv) in a.iter_mut().zip(&w) {
                        *s = _mm512_dpbusd_epi32(*s, xb, *wv);
                    }
                }
            }
            // A whole block of a layer of at most 64 channels (one pass): its `P·G` sums are
            // the requantized bytes of `P·G` consecutive runs of 16 in the output, four of
            // them packed into one 64-byte store (a store per 16 bytes cost a quarter of a
            // 16-channel layer's time).
            if ctx.direct && n == P && oc == 16 * G && ctx.out_stride == oc && (P * G).is_multiple_of(4) {
                let o = (ctx.first + q0) * oc;
                if let Some(dst) = output.get_mut(o..o + P * G * 16) {
                    store_runs::<P, G>(&acc, ctx.lq, ctx.rq.min, ctx.rq.max, dst);
                    q0 += n;
                    continue 'blocks;
                }
            }
            for (p, a) in acc.iter().enumerate().take(n) {
                for (gi, s) in a.iter().enumerate() {
                    let group = g0 + gi;
                    if group >= groups {
                        break;
                    }
                    let c0 = 16 * group;
                    let nc = (oc - c0).min(16);
                    let o = (ctx.first + q0 + p) * ctx.out_stride + ctx.c_base + c0;
                    if ctx.direct {
                        let v = _mm512_min_epi32(_mm512_max_epi32(ctx.lq[group].apply(*s), lo), hi);
                        let bytes = _mm512_cvtsepi32_epi8(v);
                        if nc == 16 {
                            let dst = &mut output[o..o + 16];
                            // SAFETY: `dst` holds 16 bytes.
                            unsafe { _mm_storeu_si128(dst.as_mut_ptr() as *mut __m128i, bytes) };
                        } else {
                            let mut tmp = [0u8; 16];
                            // SAFETY: `tmp` holds 16 bytes.
                            unsafe { _mm_storeu_si128(tmp.as_mut_ptr() as *mut __m128i, bytes) };
                            output[o..o + nc].copy_from_slice(&tmp[..nc]);
                        }
                    } else {
                        let mut sums = [0i32; 16];
                        // SAFETY: `sums` holds 64 bytes.
                        unsafe { _mm512_storeu_si512(sums.as_mut_ptr() as *mut __m512i, *s) };
                        for (c, &v) in sums.iter().enumerate().take(nc) {
                            let y = ctx.fast[c0 + c].apply(v, ctx.rq.min, ctx.rq.max);
                            put(output, ctx.rq.out.bits, o + c, y);
                        }
                    }
                }
            }
            g0 += G;
        }
        q0 += n;
    }
    true
}
