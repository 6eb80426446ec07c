//! Learned rounding (AdaRound, Nagel et al. 2020) of 4- and 2-bit weights, after GPTQ.
//!
//! GPTQ (`gptq.rs`) rounds one weight at a time, greedily, and moves each error onto the weights
//! not yet rounded; it never revisits a choice. Learned rounding optimises every rounding
//! direction of a channel together: weight `k` becomes `s·(lo_k + h_k)` with `lo_k = ⌊w_k/s⌋`
//! (kept inside the grid) and `h_k ∈ [0, 1]` a continuous relaxation
//! `h(V) = clamp(σ(V)(ζ − γ) + γ, 0, 1)` (the rectified sigmoid: it reaches 0 and 1 exactly, so the optimum can sit there).
//! The objective is the layer's output error on the calibration data plus a regulariser that
//! pulls every `h` to 0 or 1, `λ · mean_k (1 − |2h_k − 1|^β)`, whose `β` is annealed from 20
//! (flat: the error alone decides) to 2 (a strong pull to the nearest end); at the end `h` is
//! rounded to 0 or 1.
//!
//! The output error is the same quadratic GPTQ minimises, `(ŵ − w)ᵀ Σ (ŵ − w)` with `Σ` the
//! centred covariance of the layer's input patches (the bias correction of `emit.rs` removes the
//! mean shift), so its gradient is `2Σ(ŵ − w)`: the calibration data are never run again, and the
//! rows of a layer, which share `Σ`, take one matrix product per step. The scale is then refitted
//! by least squares for the integers found (`s = qᵀΣw / qᵀΣq`, the exact optimum for fixed
//! integers), and each channel keeps whichever of GPTQ's rounding and the learned one has the
//! smaller output error: learned rounding is never worse on that objective.
//!
//! Deterministic: no randomness, a fixed number of steps, and every sum in a fixed order (the
//! rows of a group are optimised together in one sequence; groups run in parallel but do not
//! interact), so the result does not depend on the number of threads.

use ndarray::linalg::general_mat_mul;
use ndarray::Array2;

use crate::quantize::WeightGrid;

/// The rectified sigmoid's stretch: `σ(V)` is mapped to `[γ, ζ]` and clamped to `[0, 1]`.
const ZETA: f64 = 1.1;
const GAMMA: f64 = -0.1;

/// Optimisation settings; [`Settings::default`] is what the compiler uses.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Adam steps (400 left the relaxation short of 0/1 on the 576-input layers).
    pub steps: usize,
    /// Fraction of the steps, at the start, without the regulariser (the error alone moves `h`).
    pub warmup: f64,
    /// Regulariser weight, relative to the starting output error of each channel (the
    /// reconstruction term is normalised by it, so one λ fits layers of any scale). On
    /// ResNet-8, 0.1 and 1 left `h` far from 0/1 at the end (the hard rounding then lost to
    /// GPTQ); 10, 30 and 100 each cut GPTQ's output error by 8–12%, 100 the most.
    pub lambda: f64,
    /// `β` at the end of the warm-up and at the end.
    pub beta: (f64, f64),
    /// Adam's step size on `V`.
    pub learning_rate: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { steps: 1000, warmup: 0.2, lambda: 100.0, beta: (20.0, 2.0), learning_rate: 0.05 }
    }
}

/// The rectified sigmoid `h(V)` and its derivative (0 where it is clamped).
pub fn rectified_sigmoid(v: f64) -> (f64, f64) {
    let sig = 1.0 / (1.0 + (-v).exp());
    let raw = sig * (ZETA - GAMMA) + GAMMA;
    if raw <= 0.0 {
        (0.0, 0.0)
    } else if raw >= 1.0 {
        (1.0, 0.0)
    } else {
        (raw, sig * (1.0 - sig) * (ZETA - GAMMA))
    }
}

/// `V` with `h(V) = h`, for `h` strictly inside `(0, 1)`.
fn inverse_rectified_sigmoid(h: f64) -> f64 {
    let sig = ((h - GAMMA) / (ZETA - GAMMA)).clamp(1e-12, 1.0 - 1e-12);
    (sig / (1.0 - sig)).ln()
}

/// The rounding regulariser `1 − |2h − 1|^β` of one weight and its derivative in `h`: 0 at
/// `h ∈ {0, 1}`, 1 at `h = ½`.
pub fn regulariser(h: f64, beta: f64) -> (f64, f64) {
    let x = 2.0 * h - 1.0;
    let a = x.abs();
    let f = 1.0 - a.powf(beta);
    let df = if a == 0.0 { 0.0 } else { -beta * a.powf(beta - 1.0) * x.signum() * 2.0 };
    (f, df)
}

/// `β` at step `t` of `steps`: no regulariser during the warm-up (`None`), then linear from
/// `beta.0` to `beta.1`.
fn beta_at(t: usize, s: &Settings) -> Option<f64> {
    let start = (s.warmup * s.steps as f64) as usize;
    if t < start {
        return None;
    }
    let progress = (t - start) as f64 / (s.steps - start).max(1) as f64;
    Some(s.beta.0 + (s.beta.1 - s.beta.0) * progress)
}

/// The relaxed problem of the rows that share one input covariance `Σ` (`k × k`): row `c` is
/// `w_c ≈ s_c·(lo_c + h(V_c))`.
pub struct Relaxed<'a> {
    sigma: &'a Array2<f64>,
    /// `rows × k`.
    w: Array2<f64>,
    lo: Array2<f64>,
    scale: Vec<f64>,
    /// Each row's reconstruction normaliser (its starting output error).
    norm: Vec<f64>,
    lambda: f64,
}

impl<'a> Relaxed<'a> {
    /// Rows `w` at scales `scale` on `grid`; `norm` normalises each row's output error.
    pub fn new(
        sigma: &'a Array2<f64>,
        w: &[&[f32]],
        scale: &[f64],
        grid: WeightGrid,
        norm: Vec<f64>,
        lambda: f64,
    ) -> Self {
        let (rows, k) = (w.len(), sigma.nrows());
        let w = Array2::from_shape_fn((rows, k), |(r, j)| w[r][j] as f64);
        let lo = Array2::from_shape_fn((rows, k), |(r, j)| {
            (w[[r, j]] / scale[r]).floor().clamp(grid.lo as f64, (grid.hi - 1) as f64)
        });
        Relaxed { sigma, w, lo, scale: scale.to_vec(), norm, lambda }
    }

    /// `ŵ − w` for relaxed `h`.
    fn difference(&self, h: &Array2<f64>) -> Array2<f64> {
        let mut d = Array2::zeros(self.w.raw_dim());
        ndarray::Zip::indexed(&mut d).and(h).for_each(|(r, j), d, &h| {
            *d = self.scale[r] * (self.lo[[r, j]] + h) - self.w[[r, j]];
        });
        d
    }

    /// The objective (summed over rows) at `V` with regulariser exponent `beta` (`None`: error
    /// only), and its gradient in `V`.
    pub fn objective_and_gradient(&self, v: &Array2<f64>, beta: Option<f64>) -> (f64, Array2<f64>) {
        let hv = v.mapv(rectified_sigmoid);
        let h = hv.mapv(|(h, _)| h);
        let d = self.difference(&h);
        // Σ is symmetric: (Σ dᵀ)ᵀ = d Σ, one product for every row.
        let mut sd = Array2::zeros(d.raw_dim());
        general_mat_mul(1.0, &d, self.sigma, 0.0, &mut sd);
        let k = self.w.ncols().max(1) as f64;
        let mut total = 0.0;
        let mut grad = Array2::zeros(v.raw_dim());
        for r in 0..self.w.nrows() {
            let norm = self.norm[r];
            let mut error = 0.0;
            let mut reg = 0.0;
            for j in 0..self.w.ncols() {
                error += d[[r, j]] * sd[[r, j]];
                let (hj, dh) = hv[[r, j]];
                // ∂(dᵀΣd)/∂h_j = 2 s (Σd)_j.
                let mut g = 2.0 * self.scale[r] * sd[[r, j]] / norm;
                if let Some(beta) = beta {
                    let (f, df) = regulariser(hj, beta);
                    reg += f;
                    g += self.lambda * df / k;
                }
                grad[[r, j]] = g * dh;
            }
            total += error / norm + self.lambda * reg / k;
        }
        (total, grad)
    }

    /// Each row's integers for hard `h` (`h ≥ ½` rounds up).
    fn integers(&self, v: &Array2<f64>) -> Vec<Vec<i8>> {
        (0..self.w.nrows())
            .map(|r| {
                (0..self.w.ncols())
                    .map(|j| (self.lo[[r, j]] + f64::from(u8::from(rectified_sigmoid(v[[r, j]]).0 >= 0.5))) as i8)
                    .collect()
            })
            .collect()
    }
}

/// Learned rounding of the rows `w` that share the input covariance `sigma`, starting from
/// `start` (each row's scale and integers, GPTQ's): each row comes back as the better, by output
/// error `(ŵ − w)ᵀ Σ (ŵ − w)`, of `start` and the learned rounding with its least-squares scale.
pub fn refine_rows(
    sigma: &Array2<f64>,
    w: &[&[f32]],
    start: &[(f32, Vec<i8>)],
    bits: u8,
    settings: &Settings,
) -> Vec<(f32, Vec<i8>)> {
    let grid = WeightGrid::of(bits);
    let k = sigma.nrows();
    if w.is_empty() || k == 0 || grid.hi < 1 || w.iter().any(|r| r.len() != k) {
        return start.to_vec();
    }
    let start_error: Vec<f64> =
        w.iter().zip(start).map(|(w, (s, q))| crate::gptq::output_error(w, *s, q, sigma)).collect();
    // Rows already exact, or not finite, keep their rounding.
    let live: Vec<usize> = (0..w.len())
        .filter(|&r| {
            let (s, _) = &start[r];
            start_error[r] > 0.0 && start_error[r].is_finite() && *s > 0.0 && s.is_finite()
        })
        .collect();
    if live.is_empty() {
        return start.to_vec();
    }
    let rows: Vec<&[f32]> = live.iter().map(|&r| w[r]).collect();
    let scales: Vec<f64> = live.iter().map(|&r| start[r].0 as f64).collect();
    let norm: Vec<f64> = live.iter().map(|&r| start_error[r]).collect();
    let problem = Relaxed::new(sigma, &rows, &scales, grid, norm, settings.lambda);
    // Start at GPTQ's integers, softened: `h` a quarter of the way from the end GPTQ chose
    // towards the other, so the error's gradient can still move it (at 0 or 1 exactly the
    // rectified sigmoid is clamped and has no gradient). GPTQ's integers outside the two
    // candidates of a weight start at the nearer one.
    let mut v = Array2::from_shape_fn(problem.w.raw_dim(), |(r, j)| {
        let up = f64::from(start[live[r]].1[j]) - problem.lo[[r, j]] >= 1.0;
        inverse_rectified_sigmoid(if up { 0.75 } else { 0.25 })
    });
    let (mut m, mut sq) = (Array2::<f64>::zeros(v.raw_dim()), Array2::<f64>::zeros(v.raw_dim()));
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    for t in 0..settings.steps {
        let (_, g) = problem.objective_and_gradient(&v, beta_at(t, settings));
        let (c1, c2) = (1.0 - b1.powi(t as i32 + 1), 1.0 - b2.powi(t as i32 + 1));
        ndarray::Zip::from(&mut v).and(&mut m).and(&mut sq).and(&g).for_each(|v, m, sq, &g| {
            *m = b1 * *m + (1.0 - b1) * g;
            *sq = b2 * *sq + (1.0 - b2) * g * g;
            *v -= settings.learning_rate * (*m / c1) / ((*sq / c2).sqrt() + eps);
        });
    }
    let learned = problem.integers(&v);
    let mut out = start.to_vec();
    for (i, &r) in live.iter().enumerate() {
        let q = &learned[i];
        let mut best = (start_error[r], start[r].0, start[r].1.clone());
        for s in [start[r].0, crate::gptq::optimal_scale(w[r], q, sigma) as f32] {
            if !(s > 0.0 && s.is_finite()) {
                continue;
            }
            let e = crate::gptq::output_error(w[r], s, q, sigma);
            if e < best.0 {
                best = (e, s, q.clone());
            }
        }
        out[r] = (best.1, best.2);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    /// A covariance of correlated inputs of unequal activity.
    fn covariance(k: usize, seed: &mut u64) -> Array2<f64> {
        let base = Array2::from_shape_fn((400, k / 2 + 1), |_| lcg(seed));
        let x = Array2::from_shape_fn((400, k), |(n, j)| (1.0 + j as f64 * 0.3) * (base[[n, j / 2]] + 0.4 * lcg(seed)));
        let mean: Vec<f64> = (0..k).map(|j| x.column(j).sum() / 400.0).collect();
        Array2::from_shape_fn((k, k), |(a, b)| x.column(a).dot(&x.column(b)) / 400.0 - mean[a] * mean[b])
    }

    #[test]
    fn rectified_sigmoid_derivative_matches_finite_differences() {
        for v in [-2.0, -0.7, 0.0, 0.4, 1.9] {
            let e = 1e-6;
            let fd = (rectified_sigmoid(v + e).0 - rectified_sigmoid(v - e).0) / (2.0 * e);
            assert!((fd - rectified_sigmoid(v).1).abs() < 1e-7, "{v}: {fd}");
        }
        // Clamped beyond the stretch: exactly 0 and 1, no gradient.
        assert_eq!(rectified_sigmoid(-5.0), (0.0, 0.0));
        assert_eq!(rectified_sigmoid(5.0), (1.0, 0.0));
        assert!((rectified_sigmoid(inverse_rectified_sigmoid(0.3)).0 - 0.3).abs() < 1e-12);
    }

    #[test]
    fn regulariser_derivative_matches_finite_differences() {
        for beta in [2.0, 7.5, 20.0] {
            for h in [0.05, 0.3, 0.49, 0.62, 0.97] {
                let e = 1e-7;
                let fd = (regulariser(h + e, beta).0 - regulariser(h - e, beta).0) / (2.0 * e);
                let df = regulariser(h, beta).1;
                assert!((fd - df).abs() < 1e-5 * (1.0 + df.abs()), "β {beta}, h {h}: {fd} vs {df}");
            }
            assert_eq!(regulariser(0.0, beta).0, 0.0);
            assert_eq!(regulariser(1.0, beta).0, 0.0);
            assert_eq!(regulariser(0.5, beta).0, 1.0);
        }
    }

    /// The gradient of the whole relaxed objective (output error and regulariser, every row)
    /// against central differences.
    #[test]
    fn objective_gradient_matches_finite_differences() {
        let mut seed = 21;
        let k = 10;
        let sigma = covariance(k, &mut seed);
        let rows: Vec<Vec<f32>> = (0..3).map(|_| (0..k).map(|_| lcg(&mut seed) as f32).collect()).collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let problem = Relaxed::new(&sigma, &refs, &[0.2, 0.15, 0.3], WeightGrid::of(2), vec![0.7, 1.3, 0.4], 0.5);
        // V inside the unclamped range, where h is differentiable.
        let v = Array2::from_shape_fn((3, k), |_| 1.8 * lcg(&mut seed));
        for beta in [None, Some(2.0), Some(9.0)] {
            let (_, g) = problem.objective_and_gradient(&v, beta);
            for r in 0..3 {
                for j in 0..k {
                    let e = 1e-6;
                    let (mut plus, mut minus) = (v.clone(), v.clone());
                    plus[[r, j]] += e;
                    minus[[r, j]] -= e;
                    let fd = (problem.objective_and_gradient(&plus, beta).0
                        - problem.objective_and_gradient(&minus, beta).0)
                        / (2.0 * e);
                    assert!(
                        (fd - g[[r, j]]).abs() < 1e-6 * (1.0 + fd.abs()),
                        "{beta:?} [{r}, {j}]: {fd} vs {}",
                        g[[r, j]]
                    );
                }
            }
        }
    }

    /// On random layers, learned rounding is never worse than GPTQ on the output error, and
    /// better on a good share of channels (GPTQ is often already optimal on these small ones).
    #[test]
    fn never_worse_than_gptq_and_usually_better() {
        let mut seed = 5;
        let mut improved = 0;
        let mut total = 0;
        for (k, rows) in [(9, 4), (27, 8), (64, 6)] {
            let sigma = covariance(k, &mut seed);
            let g = crate::gptq::Gptq::new(&sigma).unwrap();
            let w: Vec<Vec<f32>> = (0..rows).map(|_| (0..k).map(|_| lcg(&mut seed) as f32).collect()).collect();
            let refs: Vec<&[f32]> = w.iter().map(Vec::as_slice).collect();
            for bits in [2u8, 4] {
                let start: Vec<(f32, Vec<i8>)> = refs.iter().map(|w| g.quantize(w, bits)).collect();
                let refined = refine_rows(&sigma, &refs, &start, bits, &Settings::default());
                let grid = WeightGrid::of(bits);
                for ((w, (s0, q0)), (s, q)) in refs.iter().zip(&start).zip(&refined) {
                    assert!(q.iter().all(|&v| (grid.lo..=grid.hi).contains(&(v as i32))));
                    let (e0, e) =
                        (crate::gptq::output_error(w, *s0, q0, &sigma), crate::gptq::output_error(w, *s, q, &sigma));
                    assert!(e <= e0, "{k} inputs, {bits} bits: {e} > GPTQ's {e0}");
                    improved += usize::from(e < e0 * 0.999);
                    total += 1;
                }
            }
        }
        assert!(improved * 4 >= total, "learned rounding should improve many channels: {improved}/{total}");
    }

    /// The same result on every run and whatever the number of threads.
    #[test]
    fn deterministic_across_runs_and_threads() {
        let mut seed = 8;
        let k = 48;
        let sigma = covariance(k, &mut seed);
        let g = crate::gptq::Gptq::new(&sigma).unwrap();
        let w: Vec<Vec<f32>> = (0..16).map(|_| (0..k).map(|_| lcg(&mut seed) as f32).collect()).collect();
        let refs: Vec<&[f32]> = w.iter().map(Vec::as_slice).collect();
        let start: Vec<(f32, Vec<i8>)> = refs.iter().map(|w| g.quantize(w, 2)).collect();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| refine_rows(&sigma, &refs, &start, 2, &Settings::default()))
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(1));
        let bits = |v: &Vec<(f32, Vec<i8>)>| v.iter().map(|(s, q)| (s.to_bits(), q.clone())).collect::<Vec<_>>();
        assert_eq!(bits(&one), bits(&run(3)));
    }
}
