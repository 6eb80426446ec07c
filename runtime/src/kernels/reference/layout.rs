//! Operations that move elements without arithmetic (slice, nearest resize, depth-to-space), and
//! the concatenation, which requantizes each input into its channels of the output (contract §5).

use super::{clear_tail, ActFormat};
use crate::quant::{load, requant_raw, store};

/// `(h, w, c)` of an NHWC tensor with batch 1.
pub type Hwc = (usize, usize, usize);

/// One input of [`concat`]: byte offset in the arena, format, channels, and the multiplier and
/// shift that take its scale to the output's.
#[derive(Debug, Clone, Copy)]
pub struct ConcatInput {
    pub offset: usize,
    pub fmt: ActFormat,
    pub channels: usize,
    pub multiplier: i32,
    pub shift: i8,
}

/// Writes input `part` of a channel concatenation into the output at channel `first_channel`:
/// `out[p, first + c] = clamp(z_out + requant_raw(in[p, c] − z_in, M, s))` for every position `p`
/// of `positions`. Inputs and output are disjoint.
pub fn concat_part(
    arena: &mut [u8],
    positions: usize,
    part: &ConcatInput,
    (out, out_fmt, out_channels): (usize, ActFormat, usize),
    first_channel: usize,
) {
    let (lo, hi) = out_fmt.bits.range();
    for p in 0..positions {
        for c in 0..part.channels {
            let q = load(&arena[part.offset..], part.fmt.bits, p * part.channels + c) - part.fmt.zero_point;
            let v =
                (out_fmt.zero_point as i64 + requant_raw(q, part.multiplier, part.shift)).max(lo as i64).min(hi as i64);
            store(&mut arena[out..], out_fmt.bits, p * out_channels + first_channel + c, v as i32);
        }
    }
}

/// `out[y, x, c] = in[begin + (y, x, c)·step]`, the output's shape `out_shape`.
pub fn slice(
    input: &[u8],
    in_shape: Hwc,
    fmt: ActFormat,
    begin: [usize; 3],
    step: [usize; 3],
    out_shape: Hwc,
    output: &mut [u8],
) {
    let (_, in_w, in_c) = in_shape;
    let (h, w, c) = out_shape;
    let mut i = 0;
    for y in 0..h {
        for x in 0..w {
            let row = ((begin[0] + y * step[0]) * in_w + begin[1] + x * step[1]) * in_c + begin[2];
            for ch in 0..c {
                store(output, fmt.bits, i, load(input, fmt.bits, row + ch * step[2]));
                i += 1;
            }
        }
    }
    clear_tail(output, fmt, i);
}

/// Nearest-neighbour upsampling: `out[y, x] = in[y / f_h, x / f_w]`.
pub fn resize_nearest(input: &[u8], in_shape: Hwc, fmt: ActFormat, (fh, fw): (usize, usize), output: &mut [u8]) {
    let (h, w, c) = in_shape;
    let mut i = 0;
    for y in 0..h * fh {
        for x in 0..w * fw {
            let src = ((y / fh) * w + x / fw) * c;
            for ch in 0..c {
                store(output, fmt.bits, i, load(input, fmt.bits, src + ch));
                i += 1;
            }
        }
    }
    clear_tail(output, fmt, i);
}

/// `out[y·b + i, x·b + j, c] = in[y, x, (i·b + j)·C + c]` (ONNX DepthToSpace, DCR order).
pub fn depth_to_space(input: &[u8], in_shape: Hwc, fmt: ActFormat, block: usize, output: &mut [u8]) {
    let (h, w, c) = in_shape;
    let oc = c / (block * block).max(1);
    let mut i = 0;
    for y in 0..h * block {
        for x in 0..w * block {
            let src = ((y / block) * w + x / block) * c + ((y % block) * block + x % block) * oc;
            for ch in 0..oc {
                store(output, fmt.bits, i, load(input, fmt.bits, src + ch));
                i += 1;
            }
        }
    }
    clear_tail(output, fmt, i);
}
