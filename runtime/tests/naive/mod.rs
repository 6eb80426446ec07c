//! The integer contract (docs/INTEGER_CONTRACT.md) written a second time, independently of
//! `runtime/src/kernels/reference/`: values held unpacked as `i32`, accumulation in `i64` into a
//! buffer of all outputs with the kernel taps as the outermost loop, requantization evaluated as
//! the rational `⌊(2·x + 2^r) / 2^(r+1)⌋` in `i128`. Nothing here calls into `hawq_runtime`
//! except for the `exp` the contract names (micromath's `F32Ext::exp`).
#![allow(dead_code)]

use micromath::F32Ext;

/// An unpacked NHWC activation tensor with batch 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub values: Vec<i32>,
    pub zero_point: i32,
}

impl Act {
    pub fn at(&self, y: usize, x: usize, c: usize) -> i32 {
        self.values[(y * self.w + x) * self.c + c]
    }
}

/// Output quantization of an op: zero point and clamp (contract §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutFmt {
    pub zero_point: i32,
    pub min: i32,
    pub max: i32,
}

/// Per output channel bias, multiplier and shift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    pub bias: Vec<i32>,
    pub multiplier: Vec<i32>,
    pub shift: Vec<i8>,
}

/// Window geometry: kernel, stride, top/left padding and the output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl Geom {
    /// The input coordinate tap `k` of output `o` reads, if it lies inside `0..size`.
    fn tap(o: usize, k: usize, stride: usize, pad: usize, size: usize) -> Option<usize> {
        let pos = (o * stride + k) as i64 - pad as i64;
        (0..size as i64).contains(&pos).then_some(pos as usize)
    }

    fn row(&self, oy: usize, ky: usize, h: usize) -> Option<usize> {
        Self::tap(oy, ky, self.stride_h, self.pad_top, h)
    }

    fn col(&self, ox: usize, kx: usize, w: usize) -> Option<usize> {
        Self::tap(ox, kx, self.stride_w, self.pad_left, w)
    }
}

/// `⌊(2·x + 2^r) / 2^(r+1)⌋`: `x · 2^-r` rounded half up, as a rational in i128.
pub fn round_scaled(x: i128, r: u32) -> i128 {
    assert!((1..=62).contains(&r), "shift out of the contract's range: r = {r}");
    let num = 2 * x + (1i128 << r);
    num.div_euclid(1i128 << (r + 1))
}

/// `round_half_up(acc · M · 2^(s−31))` (contract §4).
pub fn requant_raw(acc: i64, multiplier: i32, shift: i8) -> i128 {
    assert!(multiplier >= 0, "negative multiplier");
    round_scaled(acc as i128 * multiplier as i128, (31 - shift as i32) as u32)
}

fn clamp_out(q: i128, out: OutFmt) -> i32 {
    (out.zero_point as i128 + q).clamp(out.min as i128, out.max as i128) as i32
}

/// The accumulator must be an exact i32 (contract §3).
fn check_acc(acc: i64) -> i32 {
    assert!(acc >= i32::MIN as i64 && acc <= i32::MAX as i64, "accumulator {acc} outside i32");
    acc as i32
}

fn finish_channels(acc: &[i64], ch: &Channels, out: OutFmt) -> Vec<i32> {
    let n = ch.bias.len();
    acc.iter()
        .enumerate()
        .map(|(i, &a)| {
            let c = i % n;
            let total = check_acc(a + ch.bias[c] as i64);
            clamp_out(requant_raw(total as i64, ch.multiplier[c], ch.shift[c]), out)
        })
        .collect()
}

/// Conv2D; weights `[out_c][kh][kw][in_c]` as unpacked values.
pub fn conv2d(x: &Act, weights: &[i32], g: &Geom, ch: &Channels, out: OutFmt) -> Vec<i32> {
    let oc = ch.bias.len();
    let ic = x.c;
    assert_eq!(weights.len(), oc * g.kernel_h * g.kernel_w * ic);
    let mut acc = vec![0i64; g.out_h * g.out_w * oc];
    for ky in 0..g.kernel_h {
        for kx in 0..g.kernel_w {
            for oy in 0..g.out_h {
                let Some(y) = g.row(oy, ky, x.h) else { continue };
                for ox in 0..g.out_w {
                    let Some(xx) = g.col(ox, kx, x.w) else { continue };
                    for o in 0..oc {
                        let w_row = &weights[((o * g.kernel_h + ky) * g.kernel_w + kx) * ic..][..ic];
                        let mut dot = 0i64;
                        for (i, &w) in w_row.iter().enumerate() {
                            dot += w as i64 * (x.at(y, xx, i) - x.zero_point) as i64;
                        }
                        acc[(oy * g.out_w + ox) * oc + o] += dot;
                    }
                }
            }
        }
    }
    finish_channels(&acc, ch, out)
}

/// Depthwise Conv2D with depth multiplier `out_c / in_c`: output channel `o` reads input channel
/// `o / multiplier`; weights `[out_c][kh][kw]`.
pub fn depthwise_conv2d(x: &Act, weights: &[i32], g: &Geom, ch: &Channels, out: OutFmt) -> Vec<i32> {
    let oc = ch.bias.len();
    assert_eq!(oc % x.c, 0);
    let mult = oc / x.c;
    assert_eq!(weights.len(), oc * g.kernel_h * g.kernel_w);
    let mut acc = vec![0i64; g.out_h * g.out_w * oc];
    for ky in 0..g.kernel_h {
        for kx in 0..g.kernel_w {
            for oy in 0..g.out_h {
                let Some(y) = g.row(oy, ky, x.h) else { continue };
                for ox in 0..g.out_w {
                    let Some(xx) = g.col(ox, kx, x.w) else { continue };
                    for o in 0..oc {
                        let w = weights[(o * g.kernel_h + ky) * g.kernel_w + kx] as i64;
                        acc[(oy * g.out_w + ox) * oc + o] += w * (x.at(y, xx, o / mult) - x.zero_point) as i64;
                    }
                }
            }
        }
    }
    finish_channels(&acc, ch, out)
}

/// Fully connected over the flattened input; weights `[out][in]`.
pub fn fully_connected(x: &[i32], zero_point: i32, weights: &[i32], ch: &Channels, out: OutFmt) -> Vec<i32> {
    let oc = ch.bias.len();
    let n = x.len();
    assert_eq!(weights.len(), oc * n);
    let mut acc = vec![0i64; oc];
    for (k, &a) in x.iter().enumerate() {
        let a = (a - zero_point) as i64;
        for (o, slot) in acc.iter_mut().enumerate() {
            *slot += weights[o * n + k] as i64 * a;
        }
    }
    finish_channels(&acc, ch, out)
}

/// Average pool over the taps inside the input, `M_c = ⌊(M + ⌊c/2⌋) / c⌋` (contract §5).
pub fn avg_pool(x: &Act, g: &Geom, multiplier: i32, shift: i8, out: OutFmt) -> Vec<i32> {
    let n = g.out_h * g.out_w * x.c;
    let mut sum = vec![0i64; n];
    let mut count = vec![0i64; n];
    for ky in 0..g.kernel_h {
        for kx in 0..g.kernel_w {
            for oy in 0..g.out_h {
                let Some(y) = g.row(oy, ky, x.h) else { continue };
                for ox in 0..g.out_w {
                    let Some(xx) = g.col(ox, kx, x.w) else { continue };
                    for c in 0..x.c {
                        let i = (oy * g.out_w + ox) * x.c + c;
                        sum[i] += (x.at(y, xx, c) - x.zero_point) as i64;
                        count[i] += 1;
                    }
                }
            }
        }
    }
    sum.iter()
        .zip(&count)
        .map(|(&s, &c)| {
            assert!(c > 0, "a window lies wholly in the padding");
            let m_c = (multiplier as i64 + c / 2) / c;
            clamp_out(requant_raw(check_acc(s) as i64, m_c as i32, shift), out)
        })
        .collect()
}

/// Max pool over the taps inside the input, then rescaled (contract §5).
pub fn max_pool(x: &Act, g: &Geom, multiplier: i32, shift: i8, out: OutFmt) -> Vec<i32> {
    let n = g.out_h * g.out_w * x.c;
    let mut best: Vec<Option<i32>> = vec![None; n];
    for ky in 0..g.kernel_h {
        for kx in 0..g.kernel_w {
            for oy in 0..g.out_h {
                let Some(y) = g.row(oy, ky, x.h) else { continue };
                for ox in 0..g.out_w {
                    let Some(xx) = g.col(ox, kx, x.w) else { continue };
                    for c in 0..x.c {
                        let slot = &mut best[(oy * g.out_w + ox) * x.c + c];
                        let v = x.at(y, xx, c);
                        *slot = Some(slot.map_or(v, |b| b.max(v)));
                    }
                }
            }
        }
    }
    best.iter()
        .map(|m| {
            let m = m.expect("a window lies wholly in the padding");
            clamp_out(requant_raw((m - x.zero_point) as i64, multiplier, shift), out)
        })
        .collect()
}

/// Residual add, both inputs rescaled with one shared shift and one rounding (contract §5).
#[allow(clippy::too_many_arguments)]
pub fn add(a: &[i32], za: i32, ma: i32, b: &[i32], zb: i32, mb: i32, shift: i8, out: OutFmt) -> Vec<i32> {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let sum = (x - za) as i128 * ma as i128 + (y - zb) as i128 * mb as i128;
            clamp_out(round_scaled(sum, (31 - shift as i32) as u32), out)
        })
        .collect()
}

/// `y = f32(s) · f32(q − z)`.
pub fn dequantize(x: &[i32], zero_point: i32, scale: f32) -> Vec<f32> {
    x.iter().map(|&q| scale * ((q - zero_point) as f32)).collect()
}

/// Softmax over rows of `row` elements: `d = f32(s)·f32(a − max)`, `exp` from micromath, the sum
/// in index order, each step one binary32 operation.
pub fn softmax(x: &[i32], scale: f32, row: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len());
    for chunk in x.chunks(row) {
        let max = *chunk.iter().max().expect("empty row");
        let e: Vec<f32> = chunk.iter().map(|&a| F32Ext::exp(scale * ((a - max) as f32))).collect();
        let mut sum = 0.0f32;
        for &v in &e {
            sum += v;
        }
        y.extend(e.iter().map(|&v| v / sum));
    }
    y
}

/// Log-softmax over rows of `row` elements: `d − ln Σ exp(d)` with softmax's `d`, `exp` and `ln`
/// from micromath, the sum in index order, each step one binary32 operation.
pub fn log_softmax(x: &[i32], scale: f32, row: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len());
    for chunk in x.chunks(row) {
        let max = *chunk.iter().max().expect("empty row");
        let d: Vec<f32> = chunk.iter().map(|&a| scale * ((a - max) as f32)).collect();
        let mut sum = 0.0f32;
        for &v in &d {
            sum += F32Ext::exp(v);
        }
        let lse = F32Ext::ln(sum);
        y.extend(d.iter().map(|&v| v - lse));
    }
    y
}

/// Packs signed values of `bits` bits, element `i` in bits `[(i·bits) mod 8, …)` of byte
/// `⌊i·bits/8⌋`, unused high bits zero (contract §2), without the runtime's helpers.
pub fn pack(values: &[i32], bits: u32) -> Vec<u8> {
    let per_byte = 8 / bits as usize;
    let mut out = vec![0u8; values.len().div_ceil(per_byte)];
    let mask = ((1u32 << bits) - 1) as u8;
    for (i, &v) in values.iter().enumerate() {
        let lo = -(1i32 << (bits - 1));
        let hi = (1i32 << (bits - 1)) - 1;
        assert!((lo..=hi).contains(&v), "value {v} does not fit {bits} bits");
        out[i / per_byte] |= (v as u8 & mask) << ((i % per_byte) as u32 * bits);
    }
    out
}

/// Inverse of [`pack`] for `n` values.
pub fn unpack(bytes: &[u8], bits: u32, n: usize) -> Vec<i32> {
    let per_byte = 8 / bits as usize;
    (0..n)
        .map(|i| {
            let raw = (bytes[i / per_byte] >> ((i % per_byte) as u32 * bits)) as u32 & ((1 << bits) - 1);
            // Sign-extend from `bits` bits.
            if raw >= 1 << (bits - 1) {
                raw as i32 - (1 << bits)
            } else {
                raw as i32
            }
        })
        .collect()
}

/// `(lo, hi)` of an activation of `bits` bits (contract §1).
fn full_range(bits: u32) -> (i32, i32) {
    (-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1)
}

/// Table lookup: the code `q` of element `i` selects entry `q − lo` of a row of `2^b` entries,
/// `b` the input's bits and `lo = −2^(b−1)`; the row is channel `i mod c`'s when the table holds
/// `c` rows, the only one when it holds one. Entries are the output codes.
pub fn lut(x: &[i32], in_bits: u32, c: usize, table: &[i32]) -> Vec<i32> {
    let row = 1usize << in_bits;
    let (lo, hi) = full_range(in_bits);
    assert_eq!(table.len() % row, 0, "a table of whole rows");
    let rows = table.len() / row;
    assert!(rows == 1 || rows == c, "{rows} rows for {c} channels");
    let mut out = Vec::with_capacity(x.len());
    for (i, &q) in x.iter().enumerate() {
        assert!((lo..=hi).contains(&q), "code {q} outside {in_bits} bits");
        let r = if rows == 1 { 0 } else { i % c };
        out.push(table[r * row + (q - lo) as usize]);
    }
    out
}

/// Elementwise product, one rounding: `clamp(z_out + round_half_up((a − z_a)·(b − z_b)·M·2^(s−31)))`.
/// `b` has `a`'s length, or `c` values, one per channel (channel = index mod `c`).
#[allow(clippy::too_many_arguments)]
pub fn mul(a: &[i32], za: i32, b: &[i32], zb: i32, c: usize, multiplier: i32, shift: i8, out: OutFmt) -> Vec<i32> {
    let broadcast = b.len() != a.len();
    if broadcast {
        assert_eq!(b.len(), c, "b holds one value per channel");
    }
    a.iter()
        .enumerate()
        .map(|(i, &x)| {
            let y = if broadcast { b[i % c] } else { b[i] };
            let product = (x - za) as i64 * (y - zb) as i64;
            clamp_out(requant_raw(product, multiplier, shift), out)
        })
        .collect()
}

/// One input of [`concat`]: its values, its multiplier and shift into the output's scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub x: Act,
    pub multiplier: i32,
    pub shift: i8,
}

/// Concatenation along channels: output channel `first(k) + c` at position `(y, x)` is part
/// `k`'s channel `c` there, requantized, `clamp(z_out + requant_raw(q − z_in, M_k, s_k))` to the
/// full range of `out_bits`. Returns the output, `h × w × Σc` values.
pub fn concat(parts: &[Part], out_zero_point: i32, out_bits: u32) -> Vec<i32> {
    let (h, w) = (parts[0].x.h, parts[0].x.w);
    let total: usize = parts.iter().map(|p| p.x.c).sum();
    let (min, max) = full_range(out_bits);
    let out = OutFmt { zero_point: out_zero_point, min, max };
    let mut y_out = vec![None; h * w * total];
    let mut first = 0;
    for p in parts {
        assert_eq!((p.x.h, p.x.w), (h, w), "parts of one height and width");
        for y in 0..h {
            for x in 0..w {
                for c in 0..p.x.c {
                    let q = (p.x.at(y, x, c) - p.x.zero_point) as i64;
                    let slot = &mut y_out[(y * w + x) * total + first + c];
                    assert!(slot.is_none(), "two parts write one output element");
                    *slot = Some(clamp_out(requant_raw(q, p.multiplier, p.shift), out));
                }
            }
        }
        first += p.x.c;
    }
    y_out.into_iter().map(|v| v.expect("every output element written")).collect()
}

/// `out[y, x, c] = in[b_h + y·s_h, b_w + x·s_w, b_c + c·s_c]` over the output shape `(h, w, c)`.
pub fn slice(x: &Act, begin: [usize; 3], step: [usize; 3], (h, w, c): (usize, usize, usize)) -> Vec<i32> {
    let mut out = Vec::with_capacity(h * w * c);
    for oy in 0..h {
        for ox in 0..w {
            for oc in 0..c {
                let (iy, ix, ic) = (begin[0] + oy * step[0], begin[1] + ox * step[1], begin[2] + oc * step[2]);
                assert!(iy < x.h && ix < x.w && ic < x.c, "slice reads outside the input");
                out.push(x.at(iy, ix, ic));
            }
        }
    }
    out
}

/// Nearest-neighbour upsampling by integer factors: `out[y, x, c] = in[⌊y / f_h⌋, ⌊x / f_w⌋, c]`.
pub fn resize_nearest(x: &Act, fh: usize, fw: usize) -> Vec<i32> {
    let (h, w) = (x.h * fh, x.w * fw);
    let mut out = Vec::with_capacity(h * w * x.c);
    for oy in 0..h {
        for ox in 0..w {
            for c in 0..x.c {
                out.push(x.at(oy / fh, ox / fw, c));
            }
        }
    }
    out
}

/// ONNX DepthToSpace, DCR order, written as a scatter from the input: input channel
/// `(i·b + j)·C + c` at `(y, x)` goes to output `(y·b + i, x·b + j, c)`, `C = c_in / b²`.
pub fn depth_to_space(x: &Act, b: usize) -> Vec<i32> {
    assert_eq!(x.c % (b * b), 0, "channels divisible by the block squared");
    let oc = x.c / (b * b);
    let (oh, ow) = (x.h * b, x.w * b);
    let mut out = vec![None; oh * ow * oc];
    for y in 0..x.h {
        for xx in 0..x.w {
            for ch in 0..x.c {
                let (ij, c) = (ch / oc, ch % oc);
                let (i, j) = (ij / b, ij % b);
                let slot = &mut out[((y * b + i) * ow + xx * b + j) * oc + c];
                assert!(slot.is_none(), "two input elements land on one output element");
                *slot = Some(x.at(y, xx, ch));
            }
        }
    }
    out.into_iter().map(|v| v.expect("every output element written")).collect()
}
