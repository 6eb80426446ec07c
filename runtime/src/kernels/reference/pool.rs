use super::{clear_tail, ActFormat, Window};
use crate::quant::{load, requant_raw, store};

/// Output quantization of a pooling op: `M · 2^(s−31) = s_in / s_out`, zero point and clamp.
#[derive(Debug, Clone, Copy)]
pub struct PoolRequant {
    pub multiplier: i32,
    pub shift: i8,
    pub out: ActFormat,
    pub min: i32,
    pub max: i32,
}

impl PoolRequant {
    #[inline(always)]
    pub(crate) fn finish(&self, value: i32, multiplier: i32) -> i32 {
        let q = requant_raw(value, multiplier, self.shift) + self.out.zero_point as i64;
        q.max(self.min as i64).min(self.max as i64) as i32
    }
}

impl PoolRequant {
    /// `M_c = ⌊(M + ⌊c/2⌋) / c⌋` for a window of `count` taps (contract §5).
    #[inline(always)]
    pub(crate) fn multiplier_for(&self, count: usize) -> i32 {
        let count = count as i64;
        if count == 0 {
            0
        } else {
            ((self.multiplier.max(0) as i64 + count / 2) / count) as i32
        }
    }
}

/// Average pool over the taps inside the input (contract §5): the multiplier is divided by the
/// tap count, not the sum, so there is one rounding.
pub fn avg_pool(g: &Window, input: &[u8], in_fmt: ActFormat, rq: &PoolRequant, output: &mut [u8]) {
    let mut o = 0;
    for oy in 0..g.out_h {
        let (y0, y1, _) = g.rows(oy);
        for ox in 0..g.out_w {
            let (x0, x1, _) = g.cols(ox);
            let m_c = rq.multiplier_for((y1 - y0) * (x1 - x0));
            for c in 0..g.out_c {
                let mut sum = 0i32;
                for y in y0..y1 {
                    for x in x0..x1 {
                        let a = load(input, in_fmt.bits, (y * g.in_w + x) * g.in_c + c);
                        sum = sum.wrapping_add(a - in_fmt.zero_point);
                    }
                }
                store(output, rq.out.bits, o, rq.finish(sum, m_c));
                o += 1;
            }
        }
    }
    clear_tail(output, rq.out, o);
}

/// Max pool over the taps inside the input, then rescaled (the identity when `M = 2^30, s = 1`).
// Out of line: beside the 8-bit path of `kernels::bytewise`, inlined, it was 1.5 KB of
// Cortex-M4 code in every firmware with a max pool.
#[inline(never)]
pub fn max_pool(g: &Window, input: &[u8], in_fmt: ActFormat, rq: &PoolRequant, output: &mut [u8]) {
    let mut o = 0;
    for oy in 0..g.out_h {
        let (y0, y1, _) = g.rows(oy);
        for ox in 0..g.out_w {
            let (x0, x1, _) = g.cols(ox);
            for c in 0..g.out_c {
                let mut m = i32::MIN;
                for y in y0..y1 {
                    for x in x0..x1 {
                        m = m.max(load(input, in_fmt.bits, (y * g.in_w + x) * g.in_c + c));
                    }
                }
                let m = if m == i32::MIN { in_fmt.zero_point } else { m };
                store(output, rq.out.bits, o, rq.finish(m - in_fmt.zero_point, rq.multiplier));
                o += 1;
            }
        }
    }
    clear_tail(output, rq.out, o);
}
