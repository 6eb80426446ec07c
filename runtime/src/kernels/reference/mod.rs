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

/// What a convolution, depthwise convolution or fully connected kernel reads of its layer
/// besides the shape and the buffers: the packed weights, their requantization, the format of
/// the input they meet, and the weights laid out beforehand for the path that runs, if any.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    pub in_fmt: ActFormat,
    /// `[out_c][kh][kw][in_c]` (convolution), `[out_c][kh][kw]` (depthwise) or `[out][in]`
    /// (fully connected), each output channel's row packed at `weight_bits` (contract §2).
    pub weights: &'a [u8],
    pub weight_bits: Bits,
    pub rq: Requant<'a>,
    pub(crate) prepared: Prepared<'a>,
}

/// A layer's prepared weights ([`Layer::prepared`]): bytes on x86-64, whose AVX-512 VNNI
/// kernels are the only ones to lay weights out; nothing elsewhere, so that a
/// microcontroller's interpreter neither stores nor passes them.
#[cfg(target_arch = "x86_64")]
pub(crate) type Prepared<'a> = &'a [u8];
#[cfg(not(target_arch = "x86_64"))]
pub(crate) type Prepared<'a> = core::marker::PhantomData<&'a [u8]>;

impl<'a> Layer<'a> {
    /// A layer with nothing prepared.
    pub fn new(in_fmt: ActFormat, weights: &'a [u8], weight_bits: Bits, rq: Requant<'a>) -> Layer<'a> {
        Layer { in_fmt, weights, weight_bits, rq, prepared: Default::default() }
    }

    /// The same layer with the weights that [`prepare_conv2d_on`](super::prepare_conv2d_on)
    /// (or its depthwise and fully connected siblings) laid out for the path that runs. Only
    /// the AVX-512 VNNI kernels read them, and only when they have their layout's length; off
    /// x86-64, where no path lays weights out, they are dropped.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    pub fn with_prepared(self, prepared: &'a [u8]) -> Layer<'a> {
        #[cfg(target_arch = "x86_64")]
        return Layer { prepared, ..self };
        #[cfg(not(target_arch = "x86_64"))]
        self
    }

    /// The prepared weights ([`Layer::with_prepared`]); empty for none.
    pub fn prepared(&self) -> &'a [u8] {
        #[cfg(target_arch = "x86_64")]
        return self.prepared;
        #[cfg(not(target_arch = "x86_64"))]
        &[]
    }
}

/// The reference kernels as a [`KernelTable`](super::KernelTable) (they need no scratch).
pub const TABLE: super::KernelTable = super::KernelTable {
    path: super::Path::Scalar,
    conv2d: |g, layer, input, output, _| {
        conv2d(g, layer, input, output);
        super::Path::Scalar
    },
    depthwise_conv2d: |g, layer, input, output, _| {
        depthwise_conv2d(g, layer, input, output);
        super::Path::Scalar
    },
    fully_connected: |n, m, layer, input, output, _| {
        fully_connected(n, m, layer, input, output);
        super::Path::Scalar
    },
};

/// Zeroes the unused high nibble of an odd-length 4-bit tensor (contract §2), so that outputs
/// compare byte for byte.
pub(crate) fn clear_tail(out: &mut [u8], fmt: ActFormat, elements: usize) {
    if fmt.bits == Bits::B4 && elements % 2 == 1 {
        if let Some(last) = out.last_mut() {
            *last &= 0x0F;
        }
    }
}
