//! The 8-bit fast paths of the table lookup, product, max pool and element-moving ops
//! (`kernels::bytewise`) against the scalar reference kernels, byte for byte, on random shapes,
//! tables, zero points (the extremes included), multipliers and aliasing; and the 4-bit tensors
//! they hand back to the reference.

use hawq_runtime::kernels::{bytewise, reference, ActFormat, AddRequant, ConcatInput, PoolRequant, Window};
use hawq_runtime::quant::Bits;
use proptest::collection::vec;
use proptest::prelude::*;

fn fmt8(zero_point: i32) -> ActFormat {
    ActFormat { bits: Bits::B8, zero_point }
}

fn zero_point() -> impl Strategy<Value = i32> {
    prop_oneof![Just(-128), Just(127), Just(0), -128i32..=127]
}

fn hwc() -> impl Strategy<Value = (usize, usize, usize)> {
    (1usize..6, 1usize..6, 1usize..20)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn lut_equals_the_reference(
        data in vec(any::<u8>(), 1..300),
        table in vec(any::<u8>(), 256),
        zi in zero_point(),
        zo in zero_point(),
        channels in 1usize..9,
    ) {
        let n = data.len();
        let (mut fast, mut slow) = (vec![0x5Au8; n], vec![0xA5u8; n]);
        bytewise::lut((&data, fmt8(zi)), &table, (n, channels), (&mut fast, fmt8(zo)));
        reference::lut((&data, fmt8(zi)), &table, (n, channels), (&mut slow, fmt8(zo)));
        prop_assert_eq!(fast, slow);
    }

    #[test]
    fn max_pool_equals_the_reference(
        (in_h, in_w, c) in hwc(),
        (kernel_h, kernel_w) in (1usize..4, 1usize..4),
        (stride_h, stride_w) in (1usize..4, 1usize..4),
        (pad_top, pad_left) in (0usize..3, 0usize..3),
        data in vec(any::<u8>(), 6 * 6 * 20),
        (zi, zo) in (zero_point(), zero_point()),
        clamp in prop_oneof![Just((-128i32, 127i32)), (-128i32..=127, -128i32..=127)],
        identity in prop_oneof![3 => Just(true), 1 => Just(false)],
    ) {
        // Windows whose padding reaches past the input, so that some have no tap inside it.
        let out_h = (in_h + 2 * pad_top).saturating_sub(kernel_h) / stride_h + 1;
        let out_w = (in_w + 2 * pad_left).saturating_sub(kernel_w) / stride_w + 1;
        let g = Window {
            in_h, in_w, in_c: c, out_h, out_w, out_c: c,
            kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left,
        };
        let (lo, hi) = (clamp.0.min(clamp.1), clamp.0.max(clamp.1));
        let (multiplier, shift) = if identity { (1 << 30, 1) } else { (1 << 29, 3) };
        let rq = PoolRequant { multiplier, shift, out: fmt8(zo), min: lo, max: hi };
        let input = &data[..in_h * in_w * c];
        let n = out_h * out_w * c;
        let (mut fast, mut slow) = (vec![0x5Au8; n], vec![0xA5u8; n]);
        let ran = bytewise::max_pool(&g, input, fmt8(zi), &rq, &mut fast);
        reference::max_pool(&g, input, fmt8(zi), &rq, &mut slow);
        // The fast path takes exactly the identity rescaling, and leaves the output alone
        // otherwise.
        prop_assert_eq!(ran, identity);
        if ran {
            prop_assert_eq!(fast, slow);
        } else {
            prop_assert!(fast.iter().all(|&b| b == 0x5A));
        }
    }

    #[test]
    fn mul_equals_the_reference(
        a in vec(any::<u8>(), 1..200),
        gate in vec(any::<u8>(), 1..12),
        (za, zb, zo) in (zero_point(), zero_point(), zero_point()),
        multiplier in prop_oneof![Just(i32::MAX), Just(1 << 30), 0..i32::MAX],
        shift in -31i8..=30,
        per_channel in any::<bool>(),
        in_place in any::<bool>(),
        clamp in (-128i32..=127, -128i32..=127),
    ) {
        let b = if per_channel { gate.clone() } else { a.iter().rev().copied().collect() };
        let n = if per_channel { a.len() - a.len() % b.len() } else { a.len() };
        prop_assume!(n > 0);
        let (lo, hi) = (clamp.0.min(clamp.1), clamp.0.max(clamp.1));
        let rq = AddRequant { multiplier_a: multiplier, multiplier_b: 0, shift, out: fmt8(zo), min: lo, max: hi };
        // Arena: a, then b, then the output (or the output over a).
        let mut arena = a[..n].to_vec();
        arena.extend(&b);
        arena.extend(vec![0x33u8; n]);
        let (a_at, b_at) = (0, n);
        let out = if in_place { 0 } else { n + b.len() };
        let mut slow = arena.clone();
        bytewise::mul(&mut arena, n, (a_at, fmt8(za)), (b_at, fmt8(zb), b.len()), out, &rq);
        reference::mul(&mut slow, n, (a_at, fmt8(za)), (b_at, fmt8(zb), b.len()), out, &rq);
        prop_assert_eq!(arena, slow);
    }

    #[test]
    fn concat_part_equals_the_reference(
        (positions, c, extra) in (1usize..20, 1usize..12, 0usize..8),
        data in vec(any::<u8>(), 240),
        (zi, zo) in (zero_point(), zero_point()),
        identity in any::<bool>(),
        multiplier in 0..i32::MAX,
        shift in -31i8..=30,
        first in 0usize..8,
    ) {
        let out_c = c + extra + first;
        let input = data[..positions * c].to_vec();
        let (multiplier, shift, zi) = if identity { (1 << 30, 1, zo) } else { (multiplier, shift, zi) };
        let part = ConcatInput { offset: 0, fmt: fmt8(zi), channels: c, multiplier, shift };
        let mut arena = input.clone();
        arena.extend(vec![0x77u8; positions * out_c]);
        let mut slow = arena.clone();
        let out = (input.len(), fmt8(zo), out_c);
        bytewise::concat_part(&mut arena, positions, &part, out, first);
        reference::concat_part(&mut slow, positions, &part, out, first);
        prop_assert_eq!(arena, slow);
    }

    #[test]
    fn slice_resize_and_depth_to_space_equal_the_reference(
        (h, w, c) in hwc(),
        data in vec(any::<u8>(), 600),
        begin in (0usize..3, 0usize..3, 0usize..5),
        step in (1usize..3, 1usize..3, 1usize..3),
        factors in (1usize..4, 1usize..4),
        block in 1usize..4,
    ) {
        let input = &data[..h * w * c];
        let fmt = fmt8(0);
        // A slice that fits: the extent left after `begin` at `step`.
        let extent = |size: usize, b: usize, s: usize| if b < size { (size - b).div_ceil(s) } else { 0 };
        let (b, s) = ([begin.0, begin.1, begin.2], [step.0, step.1, step.2]);
        let out_shape = (extent(h, b[0], s[0]), extent(w, b[1], s[1]), extent(c, b[2], s[2]));
        if out_shape.0 * out_shape.1 * out_shape.2 > 0 {
            let n = out_shape.0 * out_shape.1 * out_shape.2;
            let (mut fast, mut slow) = (vec![1u8; n], vec![2u8; n]);
            bytewise::slice(input, (h, w, c), fmt, b, s, out_shape, &mut fast);
            reference::slice(input, (h, w, c), fmt, b, s, out_shape, &mut slow);
            prop_assert_eq!(fast, slow);
        }
        let n = h * w * c * factors.0 * factors.1;
        let (mut fast, mut slow) = (vec![1u8; n], vec![2u8; n]);
        bytewise::resize_nearest(input, (h, w, c), fmt, factors, &mut fast);
        reference::resize_nearest(input, (h, w, c), fmt, factors, &mut slow);
        prop_assert_eq!(fast, slow);
        let d2s_c = c * block * block;
        if h * w * d2s_c <= data.len() {
            let input = &data[..h * w * d2s_c];
            let (mut fast, mut slow) = (vec![1u8; input.len()], vec![2u8; input.len()]);
            bytewise::depth_to_space(input, (h, w, d2s_c), fmt, block, &mut fast);
            reference::depth_to_space(input, (h, w, d2s_c), fmt, block, &mut slow);
            prop_assert_eq!(fast, slow);
        }
    }
}

/// 4-bit tensors go to the reference unchanged (the fast paths are for bytes).
#[test]
fn four_bit_tensors_take_the_reference() {
    let fmt4 = ActFormat { bits: Bits::B4, zero_point: -8 };
    let input: Vec<u8> = (0..13u8).map(|i| i.wrapping_mul(37)).collect();
    let table: Vec<u8> = (0..16u8).map(|i| (i as i8 - 8) as u8).collect();
    let n = 25;
    let (mut fast, mut slow) = (vec![0u8; 13], vec![0u8; 13]);
    bytewise::lut((&input, fmt4), &table, (n, 1), (&mut fast, fmt4));
    reference::lut((&input, fmt4), &table, (n, 1), (&mut slow, fmt4));
    assert_eq!(fast, slow);
    assert_eq!(fast[12] & 0xF0, 0, "odd-length tensor: the last high nibble is cleared");
}
