//! Portable scalar kernels: integer contract §3–§5 in Rust, and the oracle every SIMD path is
//! tested against. Each kernel takes exactly-sized slices (the model validator guarantees the
//! sizes) and states its scratch need, CMSIS-NN style (`*_scratch_bytes`, zero here).

mod conv;
mod elementwise;
mod fully_connected;
mod layout;
mod pool;

pub use conv::{conv2d, conv2d_scratch_bytes, depthwise_conv2d, depthwise_conv2d_scratch_bytes};
pub use elementwise::{add, dequantize, log_softmax, lut, mul, softmax, AddRequant};
pub use fully_connected::{fully_connected, fully_connected_scratch_bytes};
pub use layout::{concat_part, depth_to_space, resize_nearest, slice, ConcatInput, Hwc};
pub use pool::{avg_pool, max_pool, PoolRequant};

use crate::quant::{Bits, SHIFT_MAX, SHIFT_MIN};

/// A quantized activation tensor's packing and zero point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActFormat {
    pub bits: Bits,
    pub zero_point: i32,
}

/// Geometry of a convolution or pooling window over an NHWC tensor with batch 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl Window {
    /// Input rows (or columns) `[lo, hi)` covered by output row `o` without padding, and the
    /// kernel offset of `lo`.
    #[inline(always)]
    fn span(o: usize, stride: usize, pad: usize, kernel: usize, size: usize) -> (usize, usize, usize) {
        let start = (o * stride) as isize - pad as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + kernel as isize).max(0) as usize).min(size);
        (lo, hi.max(lo), (lo as isize - start) as usize)
    }

    #[inline(always)]
    pub fn rows(&self, oy: usize) -> (usize, usize, usize) {
        Self::span(oy, self.stride_h, self.pad_top, self.kernel_h, self.in_h)
    }

    #[inline(always)]
    pub fn cols(&self, ox: usize) -> (usize, usize, usize) {
        Self::span(ox, self.stride_w, self.pad_left, self.kernel_w, self.in_w)
    }
}

/// Per output channel bias and requantization (contract §3–§4), with the output clamp.
#[derive(Debug, Clone, Copy)]
pub struct Requant<'a> {
    pub bias: crate::quant::Biases<'a>,
    pub multiplier: crate::quant::Multipliers<'a>,
    pub out: ActFormat,
    pub min: i32,
    pub max: i32,
}

impl Requant<'_> {
    #[inline(always)]
    pub fn apply(&self, c: usize, acc: i32) -> i32 {
        let shift = self.multiplier.shift(c).clamp(SHIFT_MIN as i32, SHIFT_MAX as i32) as i8;
        crate::quant::requant(acc, self.multiplier.get(c), shift, self.out.zero_point, self.min, self.max)
    }
}

/// Zeroes the unused high nibble of an odd-length 4-bit tensor (contract §2), so that outputs
/// compare byte for byte.
pub(crate) fn clear_tail(out: &mut [u8], fmt: ActFormat, elements: usize) {
    if fmt.bits == Bits::B4 && elements % 2 == 1 {
        if let Some(last) = out.last_mut() {
            *last &= 0x0F;
        }
    }
}
