use super::{clear_tail, ActFormat, Requant};
use crate::quant::{load, store, Bits};

pub fn fully_connected_scratch_bytes(_in_features: usize, _out_features: usize) -> usize {
    0
}

/// Fully connected: `out[c] = requant(bias[c] + Σ_k w[c][k]·(a[k] − z))`, weights `[out][in]`.
#[allow(clippy::too_many_arguments)]
pub fn fully_connected(
    in_features: usize,
    out_features: usize,
    input: &[u8],
    in_fmt: ActFormat,
    weights: &[u8],
    weight_bits: Bits,
    rq: &Requant<'_>,
    output: &mut [u8],
) {
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
