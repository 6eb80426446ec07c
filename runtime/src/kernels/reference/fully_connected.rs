use super::{clear_tail, Layer};
use crate::quant::{load, store};

pub fn fully_connected_scratch_bytes(_in_features: usize, _out_features: usize) -> usize {
    0
}

/// Fully connected: `out[c] = requant(bias[c] + Σ_k w[c][k]·(a[k] − z))`, weights `[out][in]`.
pub fn fully_connected(in_features: usize, out_features: usize, layer: &Layer<'_>, input: &[u8], output: &mut [u8]) {
    let Layer { in_fmt, weights, weight_bits, ref rq, .. } = *layer;
    let row_bytes = weight_bits.packed_len(in_features);
    for c in 0..out_features {
        let row = &weights[c * row_bytes..(c + 1) * row_bytes];
        let mut acc = rq.bias.get(c);
        for k in 0..in_features {
            let a = load(input, in_fmt.bits, k) - in_fmt.zero_point;
            acc = acc.wrapping_add(load(row, weight_bits, k).wrapping_mul(a));
        }
        store(output, rq.out.bits, c, rq.apply(c, acc));
    }
    clear_tail(output, rq.out, out_features);
}
