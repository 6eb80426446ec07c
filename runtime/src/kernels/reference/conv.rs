use super::{clear_tail, Layer, Window};
use crate::quant::{load, store};

pub fn conv2d_scratch_bytes(_w: &Window) -> usize {
    0
}

pub fn depthwise_conv2d_scratch_bytes(_w: &Window) -> usize {
    0
}

/// Conv2D, NHWC, weights `[out_c][kh][kw][in_c]` packed per output channel (contract §2–§4).
pub fn conv2d(g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8]) {
    let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
    let row_bytes = weight_bits.packed_len(g.kernel_h * g.kernel_w * g.in_c);
    let z = in_fmt.zero_point;
    let mut o = 0;
    for oy in 0..g.out_h {
        let (y0, y1, ky0) = g.rows(oy);
        for ox in 0..g.out_w {
            let (x0, x1, kx0) = g.cols(ox);
            for c in 0..g.out_c {
                let row = &weights[c * row_bytes..(c + 1) * row_bytes];
                let mut acc = rq.bias.get(c);
                for (ky, y) in (ky0..).zip(y0..y1) {
                    for (kx, x) in (kx0..).zip(x0..x1) {
                        let a0 = (y * g.in_w + x) * g.in_c;
                        let w0 = (ky * g.kernel_w + kx) * g.in_c;
                        for i in 0..g.in_c {
                            let a = load(input, in_fmt.bits, a0 + i) - z;
                            let w = load(row, weight_bits, w0 + i);
                            acc = acc.wrapping_add(w.wrapping_mul(a));
                        }
                    }
                }
                store(output, rq.out.bits, o, rq.apply(c, acc));
                o += 1;
            }
        }
    }
    clear_tail(output, rq.out, o);
}

/// Depthwise Conv2D, NHWC, depth multiplier `out_c / in_c`: output channel `c` reads input
/// channel `c / multiplier`. Weights `[out_c][kh][kw]`.
pub fn depthwise_conv2d(g: &Window, layer: &Layer<'_>, input: &[u8], output: &mut [u8]) {
    let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
    let row_bytes = weight_bits.packed_len(g.kernel_h * g.kernel_w);
    let multiplier = (g.out_c / g.in_c.max(1)).max(1);
    let z = in_fmt.zero_point;
    let mut o = 0;
    for oy in 0..g.out_h {
        let (y0, y1, ky0) = g.rows(oy);
        for ox in 0..g.out_w {
            let (x0, x1, kx0) = g.cols(ox);
            for c in 0..g.out_c {
                let row = &weights[c * row_bytes..(c + 1) * row_bytes];
                let ic = c / multiplier;
                let mut acc = rq.bias.get(c);
                for (ky, y) in (ky0..).zip(y0..y1) {
                    for (kx, x) in (kx0..).zip(x0..x1) {
                        let a = load(input, in_fmt.bits, (y * g.in_w + x) * g.in_c + ic) - z;
                        let w = load(row, weight_bits, ky * g.kernel_w + kx);
                        acc = acc.wrapping_add(w.wrapping_mul(a));
                    }
                }
                store(output, rq.out.bits, o, rq.apply(c, acc));
                o += 1;
            }
        }
    }
    clear_tail(output, rq.out, o);
}
