//! Property tests holding the runtime (loader + interpreter + reference kernels) to the naive
//! model of the integer contract in `naive/`: random one-op models are encoded with
//! `format::encode`, loaded, run over a garbage-filled arena, and their output bytes compared
//! exactly. The runs also count how often outputs are clamped at each end, and assert that the
//! generators keep hitting saturation. Conv, depthwise, FC, average pool and add are also checked
//! against real arithmetic in f64: with multipliers derived from real scales the way the compiler
//! derives them, the dequantized output is within one output step of the clamped real result.

mod common;
mod naive;

use std::cell::RefCell;

use common::*;
use hawq_runtime::quant::{pack, Bits};
use naive::Geom;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// How often a property's cases hit each end of the output clamp.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    cases: u32,
    /// Cases with some output at the clamp's minimum.
    low: u32,
    /// Cases with some output at the clamp's maximum.
    high: u32,
    /// Cases with outputs at both ends.
    both: u32,
    /// Cases with some output strictly inside the clamp.
    interior: u32,
}

impl Stats {
    fn record(&mut self, want: &Expected) {
        self.cases += 1;
        if let Expected::Quant { values, min, max, .. } = want {
            let low = values.iter().any(|v| v == min);
            let high = values.iter().any(|v| v == max);
            self.low += low as u32;
            self.high += high as u32;
            self.both += (low && high) as u32;
            self.interior += values.iter().any(|v| v > min && v < max) as u32;
        }
    }

    /// Asserts that at least the given percentages of cases saturated low, high, at both ends,
    /// and had unsaturated outputs.
    fn require(&self, name: &str, low: u32, high: u32, both: u32, interior: u32) {
        let pct = |n: u32| n * 100 / self.cases.max(1);
        eprintln!(
            "{name}: {} cases, saturated low {}%, high {}%, both {}%, interior {}%",
            self.cases,
            pct(self.low),
            pct(self.high),
            pct(self.both),
            pct(self.interior)
        );
        assert!(
            pct(self.low) >= low && pct(self.high) >= high && pct(self.both) >= both && pct(self.interior) >= interior,
            "{name}: the generator no longer exercises saturation enough: {self:?}"
        );
    }
}

fn first_difference(want: &Expected, got: &[u8]) -> String {
    let want_bytes = want.bytes();
    if got.len() != want_bytes.len() {
        return format!("output has {} bytes, expected {}", got.len(), want_bytes.len());
    }
    match want {
        Expected::Quant { bits, values, .. } => {
            let got_values = naive::unpack(got, *bits, values.len());
            let wrong = values.iter().zip(&got_values).filter(|(a, b)| a != b).count();
            match values.iter().zip(&got_values).position(|(a, b)| a != b) {
                Some(i) => format!(
                    "element {i}: expected {}, got {} ({wrong} of {} elements differ)",
                    values[i],
                    got_values[i],
                    values.len()
                ),
                None => format!("unused tail bits differ: expected {want_bytes:02x?}, got {got:02x?}"),
            }
        }
        Expected::F32(values) => {
            let got_values: Vec<f32> =
                got.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let i = values.iter().zip(&got_values).position(|(a, b)| a.to_bits() != b.to_bits()).unwrap_or(0);
            format!(
                "element {i}: expected {:e} ({:#010x}), got {:e} ({:#010x})",
                values[i],
                values[i].to_bits(),
                got_values[i],
                got_values[i].to_bits()
            )
        }
    }
}

/// Encodes, loads and runs the case, and compares the output bytes with the naive model's.
fn run_exact<C: Case>(case: &C) -> Result<(Expected, Vec<u8>), TestCaseError> {
    let blob = case.spec().encode();
    let got = run_model(&blob, &case.input_bytes(), &case.extra(), case.fill())
        .map_err(|e| TestCaseError::fail(format!("the runtime refused a valid model: {e:?}")))?;
    let want = case.expected();
    if got != want.bytes() {
        return Err(TestCaseError::fail(first_difference(&want, &got)));
    }
    Ok((want, got))
}

/// Runs `cases` random cases through [`run_exact`] and then `extra` (given the output bytes);
/// panics with the shrunk failing case.
fn property<S>(
    name: &str,
    cases: u32,
    strategy: S,
    extra: impl Fn(&S::Value, &[u8]) -> Result<(), TestCaseError>,
) -> Stats
where
    S: Strategy,
    S::Value: Case,
{
    let stats = RefCell::new(Stats::default());
    let mut config = Config::with_cases(cases);
    config.failure_persistence = None;
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |case| {
        let (want, got) = run_exact(&case)?;
        extra(&case, &got)?;
        stats.borrow_mut().record(&want);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    stats.into_inner()
}

fn exact_only<C>(_: &C, _: &[u8]) -> Result<(), TestCaseError> {
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Float check

/// Asserts `|s_out·(q − z) − clamp(y)| ≤ s_out` for every output, where `y` is the real result
/// and the clamp is the output clamp in real terms.
fn within_one_step(real: &[f64], got: &[u8], out: &OutQ, s_out: f64) -> Result<(), TestCaseError> {
    let q = naive::unpack(got, out.bits, real.len());
    let z = out.zero_point as f64;
    let (lo, hi) = (s_out * (out.min as f64 - z), s_out * (out.max as f64 - z));
    for (i, (&y, &q)) in real.iter().zip(&q).enumerate() {
        let y = y.clamp(lo, hi);
        let deq = s_out * (q as f64 - z);
        if (deq - y).abs() > s_out {
            return Err(TestCaseError::fail(format!(
                "element {i}: real result {y} (clamped), runtime {deq} (q = {q}), step {s_out}"
            )));
        }
    }
    Ok(())
}

/// The real-valued convolution: Σ (s_w·w)·(s_in·(a − z)) + s_in·s_w·bias, in f64.
fn real_conv(case: &ConvCase) -> Vec<f64> {
    let r = case.real.as_ref().expect("real scales");
    let (x, g) = (&case.input, &case.geom);
    let mult = case.out_c / x.c;
    let mut out = Vec::new();
    for oy in 0..g.out_h {
        for ox in 0..g.out_w {
            for o in 0..case.out_c {
                let mut y = r.s_in * r.s_w[o] * case.channels.bias[o] as f64;
                for ky in 0..g.kernel_h {
                    let iy = (oy * g.stride_h + ky) as isize - g.pad_top as isize;
                    if iy < 0 || iy >= x.h as isize {
                        continue;
                    }
                    for kx in 0..g.kernel_w {
                        let ix = (ox * g.stride_w + kx) as isize - g.pad_left as isize;
                        if ix < 0 || ix >= x.w as isize {
                            continue;
                        }
                        let real_a = |c: usize| r.s_in * (x.at(iy as usize, ix as usize, c) - x.zero_point) as f64;
                        if case.depthwise {
                            let w = case.weights[(o * g.kernel_h + ky) * g.kernel_w + kx];
                            y += r.s_w[o] * w as f64 * real_a(o / mult);
                        } else {
                            for c in 0..x.c {
                                let w = case.weights[((o * g.kernel_h + ky) * g.kernel_w + kx) * x.c + c];
                                y += r.s_w[o] * w as f64 * real_a(c);
                            }
                        }
                    }
                }
                out.push(y);
            }
        }
    }
    out
}

fn conv_float_check(case: &ConvCase, got: &[u8]) -> Result<(), TestCaseError> {
    within_one_step(&real_conv(case), got, &case.out, case.real.as_ref().expect("real").s_out)
}

fn fc_float_check(case: &FcCase, got: &[u8]) -> Result<(), TestCaseError> {
    let r = case.real.as_ref().expect("real scales");
    let x = &case.input;
    let n = x.values.len();
    let real: Vec<f64> = (0..case.out_features)
        .map(|o| {
            let mut y = r.s_in * r.s_w[o] * case.channels.bias[o] as f64;
            for (k, &a) in x.values.iter().enumerate() {
                y += r.s_w[o] * case.weights[o * n + k] as f64 * (r.s_in * (a - x.zero_point) as f64);
            }
            y
        })
        .collect();
    within_one_step(&real, got, &case.out, r.s_out)
}

fn avg_pool_float_check(case: &PoolCase, got: &[u8]) -> Result<(), TestCaseError> {
    let (s_in, s_out) = case.real.expect("real scales");
    let (x, g) = (&case.input, &case.geom);
    let mut real = Vec::new();
    for oy in 0..g.out_h {
        for ox in 0..g.out_w {
            for c in 0..x.c {
                let (mut sum, mut count) = (0.0f64, 0usize);
                for iy in (oy * g.stride_h).saturating_sub(g.pad_top)
                    ..(oy * g.stride_h + g.kernel_h).saturating_sub(g.pad_top).min(x.h)
                {
                    for ix in (ox * g.stride_w).saturating_sub(g.pad_left)
                        ..(ox * g.stride_w + g.kernel_w).saturating_sub(g.pad_left).min(x.w)
                    {
                        sum += s_in * (x.at(iy, ix, c) - x.zero_point) as f64;
                        count += 1;
                    }
                }
                real.push(sum / count as f64);
            }
        }
    }
    within_one_step(&real, got, &case.out, s_out)
}

fn add_float_check(case: &AddCase, got: &[u8]) -> Result<(), TestCaseError> {
    let (sa, sb, so) = case.real.expect("real scales");
    let real: Vec<f64> = case
        .a
        .iter()
        .zip(&case.b)
        .map(|(&a, &b)| sa * (a - case.a_q.zero_point) as f64 + sb * (b - case.b_q.zero_point) as f64)
        .collect();
    within_one_step(&real, got, &case.out, so)
}

fn mul_float_check(case: &MulCase, got: &[u8]) -> Result<(), TestCaseError> {
    let (sa, sb, so) = case.real.expect("real scales");
    let c = case.shape[3];
    let real: Vec<f64> = case
        .a
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let b = if case.broadcast { case.b[i % c] } else { case.b[i] };
            sa * (a - case.a_q.zero_point) as f64 * sb * (b - case.b_q.zero_point) as f64
        })
        .collect();
    within_one_step(&real, got, &case.out, so)
}

fn concat_float_check(case: &ConcatCase, got: &[u8]) -> Result<(), TestCaseError> {
    let (s_in, s_out) = case.real.clone().expect("real scales");
    let x0 = &case.parts[0].0.x;
    let mut real = Vec::new();
    for y in 0..x0.h {
        for x in 0..x0.w {
            for ((p, _), s) in case.parts.iter().zip(&s_in) {
                for c in 0..p.x.c {
                    real.push(s * (p.x.at(y, x, c) - p.x.zero_point) as f64);
                }
            }
        }
    }
    let (min, max) = act_range(case.out.bits);
    let out = OutQ { bits: case.out.bits, zero_point: case.out.zero_point, min, max };
    within_one_step(&real, got, &out, s_out)
}

// ---------------------------------------------------------------------------------------------
// The naive model on its own, against the contract's worked examples

#[test]
fn naive_requant_rounds_half_up() {
    // M·2^(s−31) = 1/2 with M = 2^30, s = 0.
    assert_eq!(naive::requant_raw(1, 1 << 30, 0), 1);
    assert_eq!(naive::requant_raw(-1, 1 << 30, 0), 0);
    assert_eq!(naive::requant_raw(3, 1 << 30, 0), 2);
    assert_eq!(naive::requant_raw(-3, 1 << 30, 0), -1);
    // Identity.
    for v in -300..300 {
        assert_eq!(naive::requant_raw(v, 1 << 30, 1), v as i128);
    }
    // The extremes of the shift: r = 62 and r = 1.
    assert_eq!(naive::requant_raw(i32::MAX as i64, i32::MAX, -31), 1);
    assert_eq!(naive::requant_raw(i32::MIN as i64, i32::MAX, -31), -1);
    assert_eq!(naive::requant_raw(-5, 1, 30), -2);
}

#[test]
fn naive_packing_matches_the_contract_examples() {
    assert_eq!(naive::pack(&[1, 2, 3, 4], 4), [0x21, 0x43]);
    assert_eq!(naive::pack(&[1, -1, 0, 1], 2), [0x4D]);
    assert_eq!(naive::pack(&[-8, 7, -1], 4), [0x78, 0x0F]);
    assert_eq!(naive::unpack(&[0x78, 0x0F], 4, 3), [-8, 7, -1]);
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    /// The runtime's `quant::pack` and the naive packer agree at every width.
    #[test]
    fn runtime_pack_matches_naive_pack(bits in prop_oneof![Just(2u32), Just(4u32), Just(8u32)], seed in vec(any::<i8>(), 0..40)) {
        let (lo, hi) = (-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1);
        let values: Vec<i32> = seed.iter().map(|&v| (v as i32).clamp(lo, hi)).collect();
        let b = Bits::from_u8(bits as u8).unwrap();
        let mut out = vec![0xFFu8; b.packed_len(values.len())];
        pack(&values.iter().map(|&v| v as i8).collect::<Vec<_>>(), b, &mut out);
        prop_assert_eq!(&out, &naive::pack(&values, bits));
        prop_assert_eq!(naive::unpack(&out, bits, values.len()), values);
    }
}

/// A hand-computed convolution, so that the naive model is not only checked against the runtime.
#[test]
fn conv_by_hand() {
    // 3×3 input 1..9, 2×2 kernel [[1, 0], [0, −1]], bias 10, identity requant, pad top/left 1.
    let input = naive::Act { h: 3, w: 3, c: 1, values: (1..=9).collect(), zero_point: 0 };
    let g =
        naive::Geom { kernel_h: 2, kernel_w: 2, stride_h: 1, stride_w: 1, pad_top: 1, pad_left: 1, out_h: 3, out_w: 3 };
    let case = ConvCase {
        depthwise: false,
        input: input.clone(),
        in_bits: 8,
        geom: g,
        out_c: 1,
        weight_bits: 8,
        weights: vec![1, 0, 0, -1],
        channels: naive::Channels { bias: vec![10], multiplier: vec![1 << 29], shift: vec![2] },
        out: OutQ { bits: 8, zero_point: 0, min: -128, max: 127 },
        real: None,
        place: Placement { perm: 0, gaps: [0; 4] },
        fill: 1,
    };
    // out[y][x] = 10 + in[y−1][x−1] − in[y][x] (taps outside the input contribute nothing).
    let want = vec![9, 8, 7, 6, 6, 6, 3, 6, 6];
    assert_eq!(case.expected(), Expected::Quant { bits: 8, values: want.clone(), min: -128, max: 127 });
    let blob = case.spec().encode();
    let got = run_model(&blob, &case.input_bytes(), &[], 7).unwrap();
    assert_eq!(got, want.iter().map(|&v| v as u8).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Exact properties, one per op

#[test]
fn conv2d_matches_naive() {
    property("conv2d", 12000, conv_case(false, false), exact_only).require("conv2d", 30, 30, 15, 30);
}

#[test]
fn depthwise_conv2d_matches_naive() {
    property("depthwise", 12000, conv_case(true, false), exact_only).require("depthwise", 30, 30, 15, 30);
}

#[test]
fn fully_connected_matches_naive() {
    property("fc", 12000, fc_case(false), exact_only).require("fc", 30, 30, 15, 30);
}

/// The compiler emits a convolution whose window covers its whole input, unpadded, as a fully
/// connected layer over the same rows (`hawq_compiler::emit::runs_as_fully_connected`): on such
/// a layer the two ops must give the same bytes (each is also held to its own naive model).
#[test]
fn a_convolution_covering_its_input_equals_the_fully_connected_layer() {
    let mut config = Config::with_cases(3000);
    config.failure_persistence = None;
    let strategy = (fc_case(false), 1..=3usize, 1..=3usize);
    let result = TestRunner::new(config).run(&strategy, |(fc, stride_h, stride_w)| {
        let x = &fc.input;
        let geom =
            Geom { kernel_h: x.h, kernel_w: x.w, stride_h, stride_w, pad_top: 0, pad_left: 0, out_h: 1, out_w: 1 };
        let conv = ConvCase {
            depthwise: false,
            input: fc.input.clone(),
            in_bits: fc.in_bits,
            geom,
            out_c: fc.out_features,
            weight_bits: fc.weight_bits,
            weights: fc.weights.clone(),
            channels: fc.channels.clone(),
            out: fc.out,
            real: None,
            place: fc.place,
            fill: fc.fill,
        };
        let (_, by_fc) = run_exact(&fc)?;
        let (_, by_conv) = run_exact(&conv)?;
        prop_assert_eq!(by_fc, by_conv);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn avg_pool_matches_naive() {
    property("avg_pool", 12000, pool_case(true, false, false), exact_only).require("avg_pool", 30, 30, 15, 30);
}

#[test]
fn global_avg_pool_matches_naive() {
    // One output per channel: both ends are hit less often than with a spatial output.
    property("global_avg_pool", 6400, pool_case(true, true, false), exact_only).require(
        "global_avg_pool",
        30,
        20,
        5,
        15,
    );
}

#[test]
fn max_pool_matches_naive() {
    property("max_pool", 12000, pool_case(false, false, false), exact_only).require("max_pool", 30, 30, 15, 30);
}

#[test]
fn add_matches_naive() {
    property("add", 12000, add_case(false), exact_only).require("add", 30, 30, 15, 30);
}

#[test]
fn reshape_copies_bytes() {
    property("reshape", 4000, reshape_case(), exact_only);
}

#[test]
fn dequantize_matches_naive_bits() {
    property("dequantize", 6400, float_out_case(FloatOp::Dequantize), exact_only);
}

#[test]
fn softmax_matches_naive_bits() {
    property("softmax", 6400, float_out_case(FloatOp::Softmax), exact_only);
}

#[test]
fn log_softmax_matches_naive_bits() {
    property("log_softmax", 6400, float_out_case(FloatOp::LogSoftmax), exact_only);
}

/// Log-softmax at the edges: rows all equal, one code far above the rest, codes at both ends of
/// the 8- and 4-bit ranges (the zero point does not enter: only `a − max` does), the largest
/// and smallest scales a file holds, rows of one element. Every output is finite and at most
/// about 0 (micromath's `ln` is off by up to 1e-3), `exp` of a row sums to 1 as closely as
/// micromath's `exp` and `ln` allow, larger codes never get smaller outputs, and the row's largest
/// output sits where softmax's does.
#[test]
fn log_softmax_is_finite_at_the_extremes() {
    use hawq_runtime::kernels::{self, ActFormat};
    let scales = [half::f16::MAX.to_f32(), 1.0e4, 1.0, 1.0 / 16.0, half::f16::MIN_POSITIVE_SUBNORMAL.to_f32(), 0.0];
    let mut rows: Vec<(Bits, Vec<i32>)> = vec![
        (Bits::B8, vec![5; 10]),
        (Bits::B8, vec![-128; 10]),
        (Bits::B8, vec![127; 10]),
        (Bits::B8, vec![-128, -128, 127, -128, -128]),
        (Bits::B8, vec![127, -128]),
        (Bits::B8, vec![-128, 127]),
        (Bits::B8, vec![127]),
        (Bits::B8, vec![-128]),
        (Bits::B8, (-128..128).collect()),
        (Bits::B4, vec![-8; 7]),
        (Bits::B4, vec![7, -8, -8, -8, -8]),
        (Bits::B4, (-8..8).collect()),
        (Bits::B4, vec![3]),
    ];
    // Many equal maxima and a long row: the sum reaches the row length.
    rows.push((Bits::B8, vec![127; 4096]));
    for (bits, row) in &rows {
        let packed = pack_values(row, if *bits == Bits::B4 { 4 } else { 8 });
        for zero_point in [-128, 0, 127] {
            let zero_point = if *bits == Bits::B4 { zero_point.clamp(-8, 7) } else { zero_point };
            let fmt = ActFormat { bits: *bits, zero_point };
            for &scale in &scales {
                let mut out = vec![0u8; 4 * row.len()];
                kernels::log_softmax(&packed, fmt, scale, row.len(), &mut out);
                let y: Vec<f32> = out.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
                let what = format!("{bits:?} row {:?}… z {zero_point} scale {scale}", &row[..row.len().min(6)]);
                assert!(y.iter().all(|v| v.is_finite() && *v <= 1e-3), "{what}: {y:?}");
                assert_eq!(y, naive::log_softmax(row, scale, row.len()), "{what}");
                let mut probs = vec![0u8; 4 * row.len()];
                kernels::softmax(&packed, fmt, scale, row.len(), &mut probs);
                let p: Vec<f32> = probs.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
                // Larger codes never get smaller outputs. Where a step of the input is below an
                // ulp of the row's log-sum (a subnormal scale) the outputs tie, so the argmax is
                // compared only at scales a compiler gives logits.
                for (i, j) in (0..row.len()).flat_map(|i| (0..row.len()).map(move |j| (i, j))).take(20_000) {
                    assert!(row[i] <= row[j] || y[i] >= y[j], "{what}: codes {i}, {j}");
                }
                let argmax = |v: &[f32]| v.iter().enumerate().fold(0, |b, (i, x)| if *x > v[b] { i } else { b });
                if scale >= 1.0 / 16.0 {
                    let first_max = row.iter().position(|a| a == row.iter().max().unwrap()).unwrap();
                    assert_eq!(argmax(&y), first_max, "{what}");
                    assert_eq!(argmax(&p), first_max, "{what}");
                }
                let total: f64 = y.iter().map(|&v| (v as f64).exp()).sum();
                assert!((total - 1.0).abs() < 5e-3, "{what}: exp sums to {total}");
            }
        }
    }
}

#[test]
fn lut_matches_naive() {
    // Every output is a table entry: the generator puts entries at both ends of the range.
    property("lut", 6000, lut_case(), exact_only).require("lut", 30, 30, 15, 30);
}

#[test]
fn mul_matches_naive() {
    property("mul", 12000, mul_case(false), exact_only).require("mul", 30, 30, 15, 30);
}

#[test]
fn concat_matches_naive() {
    property("concat", 6000, concat_case(false), exact_only).require("concat", 30, 30, 15, 30);
}

#[test]
fn slice_matches_naive() {
    property("slice", 6000, slice_case(), exact_only);
}

#[test]
fn resize_nearest_matches_naive() {
    property("resize", 6000, resize_case(), exact_only);
}

#[test]
fn depth_to_space_matches_naive() {
    property("depth_to_space", 6000, depth_to_space_case(), exact_only);
}

// ---------------------------------------------------------------------------------------------
// Float checks (the exact comparison runs too)

#[test]
fn conv2d_is_within_one_step_of_real() {
    property("conv2d real", 4800, conv_case(false, true), conv_float_check);
}

#[test]
fn depthwise_conv2d_is_within_one_step_of_real() {
    property("depthwise real", 4800, conv_case(true, true), conv_float_check);
}

#[test]
fn fully_connected_is_within_one_step_of_real() {
    property("fc real", 4800, fc_case(true), fc_float_check);
}

#[test]
fn avg_pool_is_within_one_step_of_real() {
    property("avg_pool real", 4800, pool_case(true, false, true), avg_pool_float_check);
    property("global_avg_pool real", 2400, pool_case(true, true, true), avg_pool_float_check);
}

#[test]
fn add_is_within_one_step_of_real() {
    property("add real", 4800, add_case(true), add_float_check);
}

#[test]
fn mul_is_within_one_step_of_real() {
    property("mul real", 4800, mul_case(true), mul_float_check);
}

#[test]
fn concat_is_within_one_step_of_real() {
    property("concat real", 2400, concat_case(true), concat_float_check);
}
