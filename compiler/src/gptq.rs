//! Error-compensating weight rounding (GPTQ, Frantar et al. 2022) for 4- and 2-bit layers.
//!
//! Rounding each weight to its nearest grid point minimises ‖Q(w) − w‖², but what matters is the
//! layer's output on real inputs, ‖(Q(w) − w)ᵀ X‖² = (Q(w) − w)ᵀ H (Q(w) − w) with H = X Xᵀ the
//! second moment of the layer's input patches on the calibration set. GPTQ rounds one weight at
//! a time and moves the error it makes onto the weights not yet rounded, along H⁻¹, so later
//! choices compensate earlier ones. Scales stay per output channel and symmetric (the integer
//! contract does not change); only which grid point each weight takes does.

use ndarray::{Array2, Axis};
use rayon::prelude::*;

use crate::ir::{Graph, OpKind};

/// Input second moments of one weight layer.
#[derive(Debug, Clone)]
pub enum InputMoments {
    /// One `K × K` matrix shared by all output channels (conv, fully connected).
    Shared(Array2<f64>),
    /// One `taps × taps` matrix per input channel (depthwise conv).
    PerChannel(Vec<Array2<f64>>),
}

/// Patches of one sample's input as the layer's weights see them: `positions × K` rows for conv
/// (K in the weight order kh, kw, in_c), one row for fully connected; zero where padded.
fn patches(op: &OpKind, input: &[f32], hwc: (usize, usize, usize), out_hw: (usize, usize)) -> Option<Array2<f64>> {
    match op {
        OpKind::Fc(_) => Some(Array2::from_shape_fn((1, input.len()), |(_, k)| input[k] as f64)),
        OpKind::Conv(c) => {
            let (h, w, ch) = hwc;
            let [kh, kw] = c.window.kernel;
            let [sh, sw] = c.window.stride;
            let (pt, pl) = (c.window.pads[0], c.window.pads[1]);
            let (oh, ow) = out_hw;
            let k = kh * kw * ch;
            let mut out = Array2::zeros((oh * ow, k));
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut row = out.row_mut(oy * ow + ox);
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let (y, x) = ((oy * sh + ky) as isize - pt as isize, (ox * sw + kx) as isize - pl as isize);
                            if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                                continue;
                            }
                            let src = (y as usize * w + x as usize) * ch;
                            for i in 0..ch {
                                row[(ky * kw + kx) * ch + i] = input[src + i] as f64;
                            }
                        }
                    }
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// `E[x xᵀ]` of every weight layer's input patches over `inputs` (real NHWC samples).
pub fn input_moments(graph: &Graph, inputs: &[Vec<f32>]) -> Vec<Option<InputMoments>> {
    let per_sample: Vec<Vec<Option<InputMoments>>> = inputs
        .par_iter()
        .map(|x| {
            let values = crate::float_exec::run_all(graph, x);
            graph
                .nodes
                .iter()
                .map(|node| {
                    let input = &graph.values[node.inputs[0]];
                    let (oh, ow, _) = graph.values[node.output].hwc();
                    let p = patches(&node.op, &values[node.inputs[0]], input.hwc(), (oh, ow))?;
                    Some(match &node.op {
                        OpKind::Conv(c) if c.depthwise => {
                            let ch = input.hwc().2;
                            let taps = c.window.kernel[0] * c.window.kernel[1];
                            InputMoments::PerChannel(
                                (0..ch)
                                    .map(|i| {
                                        let cols: Vec<usize> = (0..taps).map(|t| t * ch + i).collect();
                                        let sub = p.select(Axis(1), &cols);
                                        sub.t().dot(&sub)
                                    })
                                    .collect(),
                            )
                        }
                        _ => InputMoments::Shared(p.t().dot(&p)),
                    })
                })
                .collect()
        })
        .collect();
    let n = inputs.len().max(1) as f64;
    let mut total: Vec<Option<InputMoments>> = vec![None; graph.nodes.len()];
    for sample in per_sample {
        for (acc, m) in total.iter_mut().zip(sample) {
            *acc = match (acc.take(), m) {
                (None, m) => m,
                (Some(InputMoments::Shared(a)), Some(InputMoments::Shared(b))) => Some(InputMoments::Shared(a + b)),
                (Some(InputMoments::PerChannel(a)), Some(InputMoments::PerChannel(b))) => {
                    Some(InputMoments::PerChannel(a.into_iter().zip(b).map(|(x, y)| x + y).collect()))
                }
                (a, _) => a,
            };
        }
    }
    for m in total.iter_mut().flatten() {
        match m {
            InputMoments::Shared(a) => a.mapv_inplace(|v| v / n),
            InputMoments::PerChannel(v) => v.iter_mut().for_each(|a| a.mapv_inplace(|x| x / n)),
        }
    }
    total
}

/// Upper Cholesky factor `U` of `(H + λI)⁻¹` (`H⁻¹ = Uᵀ U`), with the dampening GPTQ uses
/// (1% of the mean diagonal) so that dead inputs do not make H singular.
pub fn inverse_cholesky(h: &Array2<f64>) -> Option<Array2<f64>> {
    let k = h.nrows();
    let mean_diag = (0..k).map(|i| h[[i, i]]).sum::<f64>() / k.max(1) as f64;
    let damp = 0.01 * mean_diag.max(1e-12);
    let mut a = h.clone();
    for i in 0..k {
        a[[i, i]] += damp;
    }
    let l = cholesky_lower(&a)?;
    // H⁻¹ = L⁻ᵀ L⁻¹; invert L (lower triangular) by forward substitution.
    let mut linv = Array2::<f64>::zeros((k, k));
    for col in 0..k {
        for i in col..k {
            let mut s = if i == col { 1.0 } else { 0.0 };
            for j in col..i {
                s -= l[[i, j]] * linv[[j, col]];
            }
            linv[[i, col]] = s / l[[i, i]];
        }
    }
    let hinv = linv.t().dot(&linv);
    // Upper factor of H⁻¹: Uᵀ U = H⁻¹ with U = Lᵀ of its lower Cholesky factor.
    Some(cholesky_lower(&hinv)?.reversed_axes())
}

fn cholesky_lower(a: &Array2<f64>) -> Option<Array2<f64>> {
    let k = a.nrows();
    let mut l = Array2::<f64>::zeros((k, k));
    for i in 0..k {
        for j in 0..=i {
            let mut s = a[[i, j]];
            for p in 0..j {
                s -= l[[i, p]] * l[[j, p]];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[[i, i]] = s.sqrt();
            } else {
                l[[i, j]] = s / l[[j, j]];
            }
        }
    }
    Some(l)
}

/// GPTQ rounding of one output channel `w` at scale `s` to `[-qmax, qmax]`, with `u` the upper
/// Cholesky factor of the dampened inverse input moment matrix.
pub fn round_row(w: &[f32], s: f32, qmax: i32, u: &Array2<f64>) -> Vec<i8> {
    let mut w: Vec<f64> = w.iter().map(|&x| x as f64).collect();
    let s = s as f64;
    let mut q = vec![0i8; w.len()];
    for j in 0..w.len() {
        let qj = (w[j] / s).round().clamp(-qmax as f64, qmax as f64);
        q[j] = qj as i8;
        let err = (w[j] - qj * s) / u[[j, j]];
        for k in j + 1..w.len() {
            w[k] -= err * u[[j, k]];
        }
    }
    q
}

/// The layer-output error `(w − s·q)ᵀ H (w − s·q)` of a rounding.
pub fn output_error(w: &[f32], s: f32, q: &[i8], h: &Array2<f64>) -> f64 {
    let d: Vec<f64> = w.iter().zip(q).map(|(&x, &qi)| x as f64 - s as f64 * qi as f64).collect();
    let mut e = 0.0;
    for i in 0..d.len() {
        let mut row = 0.0;
        for j in 0..d.len() {
            row += h[[i, j]] * d[j];
        }
        e += d[i] * row;
    }
    e
}

/// Quantizes one output channel at `bits` with GPTQ, choosing among clipping ratios the scale
/// whose rounding has the least output error on the calibration moments `h`.
pub fn quantize_row(w: &[f32], bits: u8, h: &Array2<f64>, u: &Array2<f64>) -> (f32, Vec<i8>) {
    let qmax = (1i32 << (bits - 1)) - 1;
    let amax = w.iter().fold(0f32, |m, &x| m.max(x.abs()));
    if amax == 0.0 {
        return (1.0, vec![0; w.len()]);
    }
    let mut best: Option<(f64, f32, Vec<i8>)> = None;
    for r in [1.0f32, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3] {
        let s = amax * r / qmax as f32;
        let q = round_row(w, s, qmax, u);
        let e = output_error(w, s, &q, h);
        if best.as_ref().is_none_or(|b| e < b.0) {
            best = Some((e, s, q));
        }
    }
    let (_, s, q) = best.expect("at least one ratio");
    (s, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    #[test]
    fn inverse_cholesky_factors_the_inverse() {
        let mut seed = 7;
        let x = Array2::from_shape_fn((40, 6), |_| lcg(&mut seed));
        let h = x.t().dot(&x);
        let u = inverse_cholesky(&h).unwrap();
        let mut damped = h.clone();
        let damp = 0.01 * (0..6).map(|i| h[[i, i]]).sum::<f64>() / 6.0;
        for i in 0..6 {
            damped[[i, i]] += damp;
        }
        let prod = damped.dot(&u.t().dot(&u));
        for i in 0..6 {
            for j in 0..6 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((prod[[i, j]] - want).abs() < 1e-9, "{prod}");
            }
            for j in 0..i {
                assert_eq!(u[[i, j]], 0.0, "U is upper triangular");
            }
        }
    }

    #[test]
    fn gptq_beats_nearest_rounding_on_correlated_inputs() {
        let mut seed = 11;
        // Strongly correlated inputs: x2 ≈ x1, where compensation pays off.
        let base = Array2::from_shape_fn((200, 8), |_| lcg(&mut seed));
        let x = Array2::from_shape_fn((200, 16), |(n, k)| base[[n, k % 8]] + 0.05 * lcg(&mut seed));
        let h = x.t().dot(&x) / 200.0;
        let u = inverse_cholesky(&h).unwrap();
        let mut wins = 0;
        for _ in 0..20 {
            let w: Vec<f32> = (0..16).map(|_| lcg(&mut seed) as f32).collect();
            for bits in [2u8, 4] {
                let (s_near, q_near) = crate::quantize::quantize_channel(&w, bits);
                let (s, q) = quantize_row(&w, bits, &h, &u);
                let qmax = (1 << (bits - 1)) - 1;
                assert!(q.iter().all(|&v| (-qmax..=qmax).contains(&(v as i32))));
                if output_error(&w, s, &q, &h) <= output_error(&w, s_near, &q_near, &h) {
                    wins += 1;
                }
            }
        }
        assert!(wins >= 36, "GPTQ should almost always match or beat nearest rounding: {wins}/40");
    }
}
