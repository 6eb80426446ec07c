//! Calibration and quantization: activation ranges from a calibration set (MSE-optimal clipping),
//! symmetric per-channel weights at 8/4/2 bits, and the integer parameters of every layer as the
//! runtime's contract defines them (docs/INTEGER_CONTRACT.md).

use anyhow::{bail, Result};
use half::f16;
use rayon::prelude::*;

use crate::ir::{Clamp, Graph, InputTransform};

/// How the compiled model's input arrives (contract §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawKind {
    U8,
    I8,
    F32,
}

/// Bit widths per node (weights; ignored for nodes without weights) and per value (activations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitConfig {
    pub weight_bits: Vec<u8>,
    pub act_bits: Vec<u8>,
}

impl BitConfig {
    /// Every layer at `weight` bits, every activation at `act` bits.
    pub fn uniform(graph: &Graph, weight: u8, act: u8) -> BitConfig {
        BitConfig { weight_bits: vec![weight; graph.nodes.len()], act_bits: vec![act; graph.values.len()] }
    }

    /// Whether any weight or activation is below 8 bits (what a refinement can work on).
    pub fn below_8_bits(&self) -> bool {
        self.weight_bits.iter().chain(&self.act_bits).any(|&b| b < 8)
    }
}

/// Asymmetric per-tensor quantization of an activation: `real = scale · (q − zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActQuant {
    pub scale: f32,
    pub zero_point: i32,
    pub bits: u8,
}

impl ActQuant {
    pub fn range(&self) -> (i32, i32) {
        let half = 1 << (self.bits - 1);
        (-half, half - 1)
    }

    /// Scale and zero point covering `[lo, hi]` (which must contain 0), the scale rounded to the
    /// f16 the model file stores so that every multiplier is computed from the stored value.
    pub fn from_range(lo: f32, hi: f32, bits: u8) -> ActQuant {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let (qmin, qmax) = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1);
        let span = (hi - lo).max(1e-6);
        let scale = snap_f16(span / (qmax - qmin) as f32);
        let zero_point = (qmin as f32 - lo / scale).round().clamp(qmin as f32, qmax as f32) as i32;
        ActQuant { scale, zero_point, bits }
    }

    pub fn quantize(&self, x: f32) -> i32 {
        let (lo, hi) = self.range();
        // `as i32` saturates for values beyond 2^31 steps (outliers calibration clips away), and
        // the zero point is added with saturation there rather than wrapping.
        ((x / self.scale).round() as i32).saturating_add(self.zero_point).clamp(lo, hi)
    }

    pub fn dequantize(&self, q: i32) -> f32 {
        self.scale * (q - self.zero_point) as f32
    }

    /// The fake quantizer `Q(x) = s·(clamp(round(x/s) + z, qmin, qmax) − z)` differentiated as
    /// LSQ does (Esser et al. 2020, straight-through rounding): `(∂Q/∂x, ∂Q/∂s)` at `x`. Strictly
    /// inside the clip (`qmin < x/s + z < qmax`, LSQ's continuous criterion) `(1, round(x/s) − x/s)`;
    /// at or beyond it the value is the clip's, `s·(q_clip − z)`, so `(0, q_clip − z)`: the
    /// gradient stops at the clip and moves the clip instead.
    pub fn derivatives(&self, x: f32) -> (f32, f32) {
        let (qmin, qmax) = self.range();
        let u = x / self.scale;
        let index = u + self.zero_point as f32;
        if index <= qmin as f32 {
            (0.0, (qmin - self.zero_point) as f32)
        } else if index >= qmax as f32 {
            (0.0, (qmax - self.zero_point) as f32)
        } else {
            (1.0, u.round() - u)
        }
    }

    /// The clamp `[lo, hi]` (real units) as quantized bounds within this tensor's range. A bound
    /// beyond the range (±1e30, ±inf) is no clamp on that side: the bound is quantized as
    /// [`ActQuant::quantize`] does, but the zero point is added with saturation in i64, since
    /// `x / scale` saturates (or overflows f32 to an infinity) and adding the zero point to the
    /// integer limit would wrap.
    pub fn clamp_bounds(&self, clamp: Clamp) -> (i32, i32) {
        let (qmin, qmax) = self.range();
        let quantize = |x: f32, infinite: i32| -> i32 {
            if !x.is_finite() {
                return infinite;
            }
            ((x / self.scale).round() as i64).saturating_add(self.zero_point as i64).clamp(qmin as i64, qmax as i64)
                as i32
        };
        let lo = quantize(clamp.lo, qmin);
        let hi = quantize(clamp.hi, qmax);
        (lo, hi.max(lo))
    }
}

/// The nearest positive f16-representable value: below the smallest (a subnormal, 2^-24 ≈
/// 6.0e-8), that one. (Snapping to the smallest normal, 6.1e-5, made a tensor whose values
/// span ±5e-6, as in a network whose activations nearly vanish, all zero points.)
pub fn snap_f16(x: f32) -> f32 {
    let s = f16::from_f32(x).to_f32();
    if s > 0.0 && s.is_finite() {
        s
    } else {
        SMALLEST_SCALE.max(x.min(f16::MAX.to_f32()))
    }
}

/// The smallest scale the model file holds: the smallest positive half-precision float, 2^-24.
pub const SMALLEST_SCALE: f32 = 5.9604645e-8;

/// A sample of each value's observed real numbers over the calibration set.
pub struct Calibration {
    /// Sorted values per IR value (subsampled to at most `MAX_SAMPLES`).
    pub sorted: Vec<Vec<f32>>,
    /// Mean of each value per channel (over samples and positions), for bias correction.
    pub channel_means: Vec<Vec<f64>>,
}

const MAX_SAMPLES: usize = 400_000;

/// What calibration keeps of one sample: a stride sample of every value, and every value's sums
/// per channel.
pub(crate) struct Observation {
    strided: Vec<Vec<f32>>,
    channel_sums: Vec<Vec<f64>>,
}

impl Calibration {
    /// Runs the float model over `inputs` (real values in NHWC order) and keeps a deterministic
    /// stride sample of every value.
    pub fn collect(graph: &Graph, inputs: &[Vec<f32>], progress: &indicatif::ProgressBar) -> Calibration {
        let observed: Vec<Observation> = inputs
            .par_iter()
            .enumerate()
            .map(|(s, x)| {
                let all = crate::float_exec::run_all(graph, x);
                progress.inc(1);
                Calibration::observe(graph, inputs.len(), s, &all)
            })
            .collect();
        Calibration::from_observations(graph, inputs.len(), observed)
    }

    /// What calibration keeps of sample `s` (of `samples`), given its every value.
    pub(crate) fn observe(graph: &Graph, samples: usize, s: usize, all: &[Vec<f32>]) -> Observation {
        let values = graph.values.iter().zip(all);
        let strided = values
            .clone()
            .map(|(value, v)| {
                let st = (value.elements() * samples).div_ceil(MAX_SAMPLES).max(1);
                let offset = (s * 7919) % st;
                v.iter().skip(offset).step_by(st).copied().collect()
            })
            .collect();
        let channel_sums = values
            .map(|(value, v)| {
                let c = value.hwc().2;
                let mut sum = vec![0f64; c];
                for (i, &x) in v.iter().enumerate() {
                    sum[i % c] += x as f64;
                }
                sum
            })
            .collect();
        Observation { strided, channel_sums }
    }

    /// The calibration from every sample's observation, in sample order.
    pub(crate) fn from_observations(graph: &Graph, samples: usize, observed: Vec<Observation>) -> Calibration {
        let per_value: Vec<usize> = graph.values.iter().map(|v| v.elements()).collect();
        let channels: Vec<usize> = graph.values.iter().map(|v| v.hwc().2).collect();
        let mut sorted: Vec<Vec<f32>> = vec![Vec::new(); graph.values.len()];
        let mut channel_means: Vec<Vec<f64>> = channels.iter().map(|&c| vec![0.0; c]).collect();
        for Observation { strided, channel_sums } in observed {
            for (dst, src) in sorted.iter_mut().zip(strided) {
                dst.extend(src);
            }
            for (dst, src) in channel_means.iter_mut().zip(channel_sums) {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
        for (means, (&n, &c)) in channel_means.iter_mut().zip(per_value.iter().zip(&channels)) {
            let count = (samples * n / c.max(1)).max(1) as f64;
            means.iter_mut().for_each(|m| *m /= count);
        }
        for v in &mut sorted {
            v.retain(|x| x.is_finite());
            v.sort_by(f32::total_cmp);
        }
        Calibration { sorted, channel_means }
    }

    /// MSE-optimal range for `bits`: among candidate clipping points at several tail quantiles,
    /// the one that minimises the squared quantization error over the observed values.
    pub fn choose(&self, value: usize, bits: u8) -> ActQuant {
        let v = &self.sorted[value];
        if v.is_empty() {
            return ActQuant::from_range(0.0, 1.0, bits);
        }
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        let tails = [0.0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2];
        // Evaluate on a bounded subsample so that choosing stays cheap.
        let step = (v.len() / 20_000).max(1);
        let probe: Vec<f32> = v.iter().step_by(step).copied().collect();
        let mut best = (f64::INFINITY, ActQuant::from_range(q(0.0), q(1.0), bits));
        for &lo_tail in &tails {
            for &hi_tail in &tails {
                let aq = ActQuant::from_range(q(lo_tail), q(1.0 - hi_tail), bits);
                let err: f64 = probe
                    .iter()
                    .map(|&x| {
                        let e = (aq.dequantize(aq.quantize(x)) - x) as f64;
                        e * e
                    })
                    .sum();
                if err < best.0 {
                    best = (err, aq);
                }
            }
        }
        best.1
    }
}

/// The integers a weight of `bits` bits may hold (contract §1): 8- and 4-bit weights are
/// symmetric, `±127` and `±7`; 2-bit weights take all four values of their width, `−2..=1`. A
/// symmetric 2-bit grid is ternary, three levels of four: on ResNet-8 uniform 2-bit weights
/// scored 64.5% with it and 75.5% with four (DS-CNN 60.4% and 69.3%), where at 4 bits the
/// sixteenth level changed nothing beyond the eval sets' noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightGrid {
    pub lo: i32,
    pub hi: i32,
}

impl WeightGrid {
    pub fn of(bits: u8) -> WeightGrid {
        let half = 1i32 << (bits.clamp(2, 8) - 1);
        if bits > 2 {
            WeightGrid { lo: 1 - half, hi: half - 1 }
        } else {
            WeightGrid { lo: -half, hi: half - 1 }
        }
    }

    /// `x` rounded to the nearest integer of the grid.
    pub fn round(self, x: f64) -> i8 {
        x.round().clamp(self.lo as f64, self.hi as f64) as i8
    }

    /// `x` rounded to the grid, as a float.
    pub fn round_f32(self, x: f32) -> f32 {
        x.round().clamp(self.lo as f32, self.hi as f32)
    }

    /// Whether `u` (a weight over its scale) rounds inside the grid, not onto a clamped end.
    pub fn inside(self, u: f32) -> bool {
        u >= self.lo as f32 - 0.5 && u <= self.hi as f32 + 0.5
    }

    /// The scales that put a channel's largest magnitude `amax`, clipped by `ratio`, on the
    /// grid's positive end and on its negative end (one scale when the grid is symmetric).
    pub fn scales(self, amax: f32, ratio: f32) -> impl Iterator<Item = f32> {
        let (pos, neg) = (amax * ratio / self.hi as f32, amax * ratio / -self.lo as f32);
        std::iter::once(pos).chain((neg != pos).then_some(neg))
    }
}

/// Quantization of one output channel's weights at `bits` on [`WeightGrid::of`]`(bits)`, with
/// the clipping that minimises ‖Q(w) − w‖². Returns the scale and the integer weights.
pub fn quantize_channel(w: &[f32], bits: u8) -> (f32, Vec<i8>) {
    let grid = WeightGrid::of(bits);
    let amax = w.iter().fold(0f32, |m, &x| m.max(x.abs()));
    if amax == 0.0 {
        return (1.0, vec![0; w.len()]);
    }
    let ratios: &[f32] = if bits >= 8 { &[1.0] } else { &[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3] };
    let mut best = (f64::INFINITY, 1.0f32);
    for s in ratios.iter().flat_map(|&r| grid.scales(amax, r)) {
        let err: f64 = w
            .iter()
            .map(|&x| {
                let e = (grid.round_f32(x / s) * s - x) as f64;
                e * e
            })
            .sum();
        if err < best.0 {
            best = (err, s);
        }
    }
    let s = best.1;
    (s, w.iter().map(|&x| grid.round((x / s) as f64)).collect())
}

/// `real ≈ m · 2^(s − k)` with the mantissa `m` normalised to `[2^(bits−1), 2^bits)` and
/// `−31 ≤ s ≤ 30`; below the normalised range `s` stays at −31 and `m` shrinks.
fn normalized_multiplier(real: f64, bits: i32, k: i32) -> Result<(i64, i8)> {
    if !(real.is_finite() && real >= 0.0) {
        bail!("requantization multiplier {real} is not a finite non-negative number");
    }
    if real == 0.0 {
        return Ok((0, 0));
    }
    // real = f·2^e with f ∈ [0.5, 1), m = f·2^bits.
    let mut e = real.log2().floor() as i32 + 1;
    let mut m = (real / 2f64.powi(e) * 2f64.powi(bits)).round() as i64;
    if m >= 1 << bits {
        m /= 2;
        e += 1;
    }
    let s = e + k - bits;
    if s > 30 {
        bail!("requantization multiplier {real} is too large (scales differ by more than 2^{})", 30 - (k - bits));
    }
    if s < -31 {
        return Ok(((real * 2f64.powi(k + 31)).round() as i64, -31));
    }
    Ok((m, s as i8))
}

/// `real = M · 2^(shift − 31)` with `M` in `[2^30, 2^31)` (contract §4): pooling and add.
pub fn quantize_multiplier(real: f64) -> Result<(i32, i8)> {
    let (m, s) = normalized_multiplier(real, 31, 31)?;
    Ok((m as i32, s))
}

/// A conv/FC channel's real multiplier as the format stores it (contract §1, §4): the 12-bit
/// mantissa `m₁₂` (normalised to `[2^11, 2^12)`; `M = m₁₂·2^18`) and the shift `s`, with
/// `real ≈ m₁₂·2^18·2^(s−31) = m₁₂·2^(s−13)`; relative error at most `2^-12`, which moves an
/// 8-bit output by at most 0.06 of a step.
pub fn quantize_channel_multiplier(real: f64) -> Result<(u16, i8)> {
    let (m, s) = normalized_multiplier(real, 12, 13)?;
    Ok((m as u16, s))
}

/// Quantization of every value, and which values share their input's parameters.
pub fn activation_params(
    graph: &Graph,
    calib: &Calibration,
    bits: &BitConfig,
    raw: RawKind,
    transform: InputTransform,
) -> Result<Vec<ActQuant>> {
    let mut q: Vec<Option<ActQuant>> = vec![None; graph.values.len()];
    q[graph.input] = Some(match raw {
        RawKind::U8 | RawKind::I8 => {
            let base = if raw == RawKind::U8 { -128.0 } else { 0.0 };
            let z = base - transform.offset as f64 / transform.scale as f64;
            if (z - z.round()).abs() > 1e-3 || !(-128.0..=127.0).contains(&z.round()) {
                // The offset of the same scale whose real zero is the nearest raw integer: the
                // input then stays exact (a per-channel mean/std needs folding into the first layer).
                let k = z.round().clamp(-128.0, 127.0);
                let exact = ((base - k) * transform.scale as f64) as f32;
                bail!(
                    "input transform scale {} offset {} puts real zero at {z:.3} on the raw {} scale; it must be an \
                     integer in [-128, 127] (offset = −k·scale); the nearest exact offset is --input-offset={exact} \
                     (real zero at {k})",
                    transform.scale,
                    transform.offset,
                    if raw == RawKind::U8 { "uint8 − 128" } else { "int8" }
                );
            }
            // The runtime never reads the scale of a uint8/int8 input (it takes the raw integers),
            // so the exact scale is kept for the multipliers; the file's f16 copy is informative.
            ActQuant { scale: transform.scale, zero_point: z.round() as i32, bits: 8 }
        }
        RawKind::F32 => {
            if transform != InputTransform::default() {
                bail!("--input-scale/--input-offset apply to uint8/int8 inputs; float inputs are taken as real values");
            }
            calib.choose(graph.input, bits.act_bits[graph.input])
        }
    });
    for node in &graph.nodes {
        let out = node.output;
        let tied = node.op.ties_output_to_input();
        q[out] = Some(if tied {
            q[node.inputs[0]].expect("inputs are quantized before their consumers")
        } else if node.op.is_normalization() {
            ActQuant { scale: 1.0, zero_point: 0, bits: 8 }
        } else {
            calib.choose(out, bits.act_bits[out])
        });
    }
    Ok(q.into_iter().map(|a| a.unwrap_or(ActQuant { scale: 1.0, zero_point: 0, bits: 8 })).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_round_trips_within_2_pow_minus_30() {
        for &real in &[1e-9, 3.7e-5, 0.001, 0.25, 0.5, 0.75, 0.999_999_999, 1.0, 3.0, 1234.5] {
            let (m, s) = quantize_multiplier(real).unwrap();
            let back = m as f64 * 2f64.powi(s as i32 - 31);
            assert!(((back - real) / real).abs() < 1e-9 + 2f64.powi(-30), "{real} -> {m} {s} -> {back}");
            assert!(m >= 0);
            assert!((-31..=30).contains(&s));
        }
        assert_eq!(quantize_multiplier(0.0).unwrap(), (0, 0));
        assert!(quantize_multiplier(f64::NAN).is_err());
        assert!(quantize_multiplier(-1.0).is_err());
    }

    #[test]
    fn channel_multiplier_round_trips_within_2_pow_minus_12() {
        for &real in &[1e-9, 3.7e-5, 0.001, 0.25, 0.5, 0.75, 0.999_99, 1.0, 3.0, 1234.5, 2f64.powi(28) * 1.5] {
            let (m, s) = quantize_channel_multiplier(real).unwrap();
            let back = m as f64 * 2f64.powi(s as i32 - 13);
            assert!(((back - real) / real).abs() <= 2f64.powi(-12), "{real} -> {m} {s} -> {back}");
            assert!((1 << 11..1 << 12).contains(&(m as i32)), "{real}: mantissa {m} not normalised");
            assert!((-31..=30).contains(&s));
        }
        // Below the normalised range the mantissa shrinks at shift −31.
        let (m, s) = quantize_channel_multiplier(1e-11).unwrap();
        assert_eq!((m, s), ((1e-11 * 2f64.powi(44)).round() as u16, -31));
        assert_eq!(quantize_channel_multiplier(0.0).unwrap(), (0, 0));
        assert!(quantize_channel_multiplier(2f64.powi(30)).is_err());
        assert!(quantize_channel_multiplier(f64::NAN).is_err());
        assert!(quantize_channel_multiplier(-1.0).is_err());
    }

    /// The fake quantizer's LSQ derivatives against central differences, inside the clip, at it
    /// and beyond it, on both sides, for several zero points. `∂Q/∂s`: the difference of `Q`
    /// itself (the rounding does not change under the small step at these points) plus, inside,
    /// the straight-through term `−x/s` (rounding passed as the identity). `∂Q/∂x`: the
    /// difference of the clamp without the rounding (1 inside, 0 at and beyond the clip).
    #[test]
    fn activation_quantizer_derivatives_match_finite_differences() {
        let s = 0.25f32;
        for zero_point in [-8, -3, 0, 5] {
            let q = ActQuant { scale: s, zero_point, bits: 4 };
            let (qmin, qmax) = q.range();
            let fake = |x: f32, scale: f32| {
                let q = ActQuant { scale, ..q };
                f64::from(q.dequantize(q.quantize(x)))
            };
            let unrounded = |x: f32| {
                let index = (x / s + zero_point as f32).clamp(qmin as f32, qmax as f32);
                f64::from(s) * f64::from(index - zero_point as f32)
            };
            let low_clip = s * (qmin - zero_point) as f32;
            let high_clip = s * (qmax - zero_point) as f32;
            let middle = 0.5 * (low_clip + high_clip);
            let inside = [low_clip + 0.3 * s, low_clip + 2.2 * s, middle + 0.1 * s, high_clip - 0.35 * s];
            let at_or_beyond = [low_clip, low_clip - 0.7 * s, low_clip - 9.0 * s, high_clip, high_clip + 0.2 * s, 40.0];
            let e = 1e-4f32;
            for &x in inside.iter().chain(&at_or_beyond) {
                let is_inside = inside.contains(&x);
                let (dx, ds) = q.derivatives(x);
                let fd_s = (fake(x, s + e) - fake(x, s - e)) / (2.0 * f64::from(e));
                let straight_through = if is_inside { f64::from(x / s) } else { 0.0 };
                let expected_s = fd_s - straight_through;
                assert!((expected_s - f64::from(ds)).abs() < 2e-3, "z {zero_point} x {x}: ∂Q/∂s {ds} vs {expected_s}");
                let fd_x = (unrounded(x + e) - unrounded(x - e)) / (2.0 * f64::from(e));
                // At the clip the one-sided slopes are 0 and 1; LSQ takes the outer one.
                let expected_x = if x == low_clip || x == high_clip { 0.0 } else { fd_x };
                assert!((expected_x - f64::from(dx)).abs() < 1e-2, "z {zero_point} x {x}: ∂Q/∂x {dx} vs {expected_x}");
                assert_eq!(dx, if is_inside { 1.0 } else { 0.0 }, "z {zero_point} x {x}");
            }
            // At and beyond the clip, ∂Q/∂s is the clip's index from the zero point.
            assert_eq!(q.derivatives(high_clip + s).1, (qmax - zero_point) as f32);
            assert_eq!(q.derivatives(low_clip - s).1, (qmin - zero_point) as f32);
        }
    }

    #[test]
    fn activation_range_represents_zero_exactly() {
        for &(lo, hi, bits) in &[(0.0, 6.0, 8), (-1.0, 3.0, 8), (-2.5, 0.5, 4), (0.0, 1.0, 4), (0.1, 2.0, 8)] {
            let q = ActQuant::from_range(lo, hi, bits);
            assert_eq!(q.dequantize(q.quantize(0.0)), 0.0);
            let (qmin, qmax) = q.range();
            assert!((qmin..=qmax).contains(&q.zero_point));
        }
    }

    /// Clip bounds far outside the range (as f32 converts ±1e30) saturate to the range instead
    /// of wrapping around i32 when the zero point is added.
    #[test]
    fn clamp_bounds_beyond_the_range_saturate() {
        for zero_point in [-128, -5, 0, 7, 127] {
            let q = ActQuant { scale: 1e-3, zero_point, bits: 8 };
            assert_eq!(q.clamp_bounds(Clamp { lo: -1e30, hi: 1e30 }), (-128, 127), "zero point {zero_point}");
            assert_eq!(q.clamp_bounds(Clamp { lo: f32::NEG_INFINITY, hi: f32::INFINITY }), (-128, 127));
            assert_eq!(q.clamp_bounds(Clamp { lo: 1e30, hi: 1e30 }), (127, 127));
            assert_eq!(q.clamp_bounds(Clamp { lo: -1e30, hi: -1e30 }), (-128, -128));
        }
        // In range the bounds are what `quantize` gives.
        let q = ActQuant { scale: 0.05, zero_point: -20, bits: 8 };
        assert_eq!(q.clamp_bounds(Clamp::RELU6), (q.quantize(0.0), q.quantize(6.0)));
    }

    /// Found by the `compile` fuzz target: a value 2^31 steps beyond the chosen range (an
    /// outlier the tails clip away) overflowed i32 when the zero point was added while choosing
    /// the range.
    #[test]
    fn outliers_beyond_i32_steps_saturate() {
        let q = ActQuant { scale: 1e-3, zero_point: -100, bits: 8 };
        assert_eq!(q.quantize(-1e30), -128);
        assert_eq!(q.quantize(1e30), 127);
        let q = ActQuant { scale: 1e-3, zero_point: 100, bits: 8 };
        assert_eq!(q.quantize(1e30), 127);
        // 1% outliers at −1e6 over zeros: the chosen range is [0, 0] with the zero point at −128,
        // and the outliers' error is measured at −2^31 − 128 steps.
        let mut values = vec![-1e6f32; 10];
        values.extend(std::iter::repeat_n(0.0, 990));
        let calib = Calibration { sorted: vec![values], channel_means: vec![vec![0.0]] };
        let chosen = calib.choose(0, 8);
        assert!(chosen.scale > 0.0 && (-128..=127).contains(&chosen.zero_point), "{chosen:?}");
    }

    #[test]
    fn two_bit_weights_use_all_four_levels_with_an_mse_optimal_scale() {
        let w: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) / 50.0).collect();
        let (s, q) = quantize_channel(&w, 2);
        assert!(q.iter().all(|&v| (-2..=1).contains(&v)));
        assert!([-2, -1, 0, 1].iter().all(|l| q.contains(l)), "every level of the 2-bit grid is used: {q:?}");
        assert!(s < 1.0, "clipping should beat max-abs scaling for a uniform distribution, got {s}");
        let err = |bits| {
            let (s, q) = quantize_channel(&w, bits);
            w.iter().zip(q).map(|(&x, q)| ((q as f32 * s - x) as f64).powi(2)).sum::<f64>()
        };
        assert!(err(2) > err(4) && err(4) > err(8));
        // Four levels beat the three of the narrow (ternary) grid at its own best clipping.
        let ternary = (1..=100)
            .map(|r| r as f32 / 100.0)
            .map(|s| w.iter().map(|&x| (((x / s).round().clamp(-1.0, 1.0) * s - x) as f64).powi(2)).sum::<f64>())
            .fold(f64::INFINITY, f64::min);
        assert!(err(2) < ternary, "{} against ternary {ternary}", err(2));
    }

    #[test]
    fn weight_grids_are_the_contracts() {
        assert_eq!(WeightGrid::of(8), WeightGrid { lo: -127, hi: 127 });
        assert_eq!(WeightGrid::of(4), WeightGrid { lo: -7, hi: 7 });
        assert_eq!(WeightGrid::of(2), WeightGrid { lo: -2, hi: 1 });
        let g = WeightGrid::of(2);
        assert_eq!([-9.0, -2.4, -1.6, 0.4, 0.6, 1.4, 7.0].map(|x| g.round(x)), [-2, -2, -2, 0, 1, 1, 1]);
        assert!(g.inside(-2.5) && !g.inside(-2.6) && g.inside(1.5) && !g.inside(1.6));
        assert_eq!(g.scales(2.0, 0.5).collect::<Vec<_>>(), [1.0, 0.5]);
        assert_eq!(WeightGrid::of(8).scales(127.0, 1.0).collect::<Vec<_>>(), [1.0]);
    }
}
