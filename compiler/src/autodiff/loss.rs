//! Per-sample losses on the head value `z` (logits or outputs), their gradient, their Hessian
//! `H` applied to vectors, and a factor `A` with `H = A Aᵀ`.

use anyhow::{bail, Result};

use super::Loss;

pub(super) enum Curvature {
    /// Cross-entropy: `H = diag(p) − p pᵀ` with `p = softmax(z)`.
    Softmax(Vec<f64>),
    /// Mean squared error over `m` outputs: `H = (2 / m) I`.
    Scaled(f64),
}

pub(super) struct SampleLoss {
    pub value: f64,
    /// `∂ℓ/∂z`.
    pub grad: Vec<f64>,
    pub curvature: Curvature,
}

/// Checks the labels against the loss (class indices for cross-entropy, finite targets for MSE).
pub(super) fn check_labels(loss: Loss, labels: &[f64], samples: usize, classes: usize) -> Result<()> {
    match loss {
        Loss::Reconstruction => {
            if !labels.is_empty() && labels.len() != samples {
                bail!("{} labels for {samples} samples", labels.len());
            }
        }
        Loss::CrossEntropy | Loss::Mse => {
            if labels.len() != samples {
                bail!("{} labels for {samples} samples", labels.len());
            }
            for (i, &y) in labels.iter().enumerate() {
                if !y.is_finite() {
                    bail!("label {i} is {y}");
                }
                if loss == Loss::CrossEntropy && (y < 0.0 || y.fract() != 0.0 || y as usize >= classes) {
                    bail!("label {i} is {y}, not a class index in 0..{classes}");
                }
            }
        }
    }
    Ok(())
}

pub(super) fn sample_loss(loss: Loss, z: &[f32], input: &[f32], label: f64) -> SampleLoss {
    let m = z.len();
    match loss {
        Loss::CrossEntropy => {
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let exps: Vec<f64> = z.iter().map(|&v| (f64::from(v) - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            let p: Vec<f64> = exps.iter().map(|e| e / sum).collect();
            let class = label as usize;
            let value = sum.ln() + max - f64::from(z[class]);
            let mut grad = p.clone();
            grad[class] -= 1.0;
            SampleLoss { value, grad, curvature: Curvature::Softmax(p) }
        }
        Loss::Mse | Loss::Reconstruction => {
            let target = |i: usize| if loss == Loss::Mse { label } else { f64::from(input[i]) };
            let residual: Vec<f64> = z.iter().enumerate().map(|(i, &v)| f64::from(v) - target(i)).collect();
            let scale = 2.0 / m as f64;
            SampleLoss {
                value: residual.iter().map(|r| r * r).sum::<f64>() / m as f64,
                grad: residual.iter().map(|r| scale * r).collect(),
                curvature: Curvature::Scaled(scale),
            }
        }
    }
}

impl SampleLoss {
    /// `scale · H v`.
    pub fn hess_vec(&self, v: &[f32], scale: f64) -> Vec<f32> {
        match &self.curvature {
            Curvature::Softmax(p) => {
                let pv: f64 = p.iter().zip(v).map(|(&a, &b)| a * f64::from(b)).sum();
                p.iter().zip(v).map(|(&a, &b)| (scale * a * (f64::from(b) - pv)) as f32).collect()
            }
            Curvature::Scaled(s) => v.iter().map(|&b| (scale * s * f64::from(b)) as f32).collect(),
        }
    }

    /// Columns of a factor `A` with `A Aᵀ = H`, as rows: `(rows · m floats, rows)`. For MSE,
    /// `√(2/m) I`. For cross-entropy, `A = diag(√p) − p √pᵀ` (column `c` is `√p_c (e_c − p)`)
    /// has the null vector `√p`, so it is reduced to `C − 1` columns: `A Q` with `Q` the columns
    /// of the Householder reflection mapping `e_j` to `√p` other than column `j`
    /// (`j = argmax p`), an orthonormal basis of `√p`'s complement, so `(A Q)(A Q)ᵀ = A Aᵀ`.
    pub fn factor(&self) -> (Vec<f32>, usize) {
        match &self.curvature {
            Curvature::Scaled(s) => {
                let m = self.grad.len();
                let mut rows = vec![0.0f32; m * m];
                for c in 0..m {
                    rows[c * m + c] = s.sqrt() as f32;
                }
                (rows, m)
            }
            Curvature::Softmax(p) => {
                let c_len = p.len();
                let sqrt_p: Vec<f64> = p.iter().map(|v| v.sqrt()).collect();
                // a(c)[l] = √p_c (δ_cl − p_l): entry l of column c.
                let a = |c: usize, l: usize| sqrt_p[c] * (if c == l { 1.0 } else { 0.0 } - p[l]);
                let j = (0..c_len).fold(0, |best, c| if p[c] > p[best] { c } else { best });
                let mut u = sqrt_p.clone();
                u[j] -= 1.0;
                let uu: f64 = u.iter().map(|x| x * x).sum();
                let mut rows = Vec::with_capacity((c_len - 1) * c_len);
                for col in (0..c_len).filter(|&c| c != j) {
                    // Column `col` of H = I − 2 u uᵀ / uu (or of I when √p = e_j).
                    let h: Vec<f64> = (0..c_len)
                        .map(|l| {
                            let identity = if l == col { 1.0 } else { 0.0 };
                            if uu > 1e-300 {
                                identity - 2.0 * u[l] * u[col] / uu
                            } else {
                                identity
                            }
                        })
                        .collect();
                    for l in 0..c_len {
                        let entry: f64 = (0..c_len).map(|c| a(c, l) * h[c]).sum();
                        rows.push(entry as f32);
                    }
                }
                (rows, c_len - 1)
            }
        }
    }

    /// `A r` for a probe `r` in the factor's column space (`m` entries for both losses).
    pub fn factor_probe(&self, r: &[f32]) -> Vec<f32> {
        match &self.curvature {
            Curvature::Scaled(s) => r.iter().map(|&x| (s.sqrt() * f64::from(x)) as f32).collect(),
            Curvature::Softmax(p) => {
                let dot: f64 = p.iter().zip(r).map(|(&a, &b)| a.sqrt() * f64::from(b)).sum();
                p.iter().zip(r).map(|(&a, &b)| (a.sqrt() * f64::from(b) - a * dot) as f32).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hessian(sl: &SampleLoss, m: usize) -> Vec<f64> {
        let mut h = vec![0.0; m * m];
        for j in 0..m {
            let mut e = vec![0.0f32; m];
            e[j] = 1.0;
            for (i, v) in sl.hess_vec(&e, 1.0).iter().enumerate() {
                h[i * m + j] = f64::from(*v);
            }
        }
        h
    }

    /// The reduced factor reproduces the Hessian, for spread-out, peaked and saturated softmaxes,
    /// and for MSE.
    #[test]
    fn factor_reproduces_the_hessian() {
        let cases: Vec<(Loss, Vec<f32>)> = vec![
            (Loss::CrossEntropy, vec![0.3, -1.2, 2.0, 0.7, 0.0]),
            (Loss::CrossEntropy, vec![12.0, -3.0, 1.0]),
            (Loss::CrossEntropy, vec![200.0, 0.0, -100.0, 1.0]),
            (Loss::Mse, vec![0.5, 1.5, -0.25]),
        ];
        for (loss, z) in cases {
            let m = z.len();
            let sl = sample_loss(loss, &z, &[], 1.0);
            let (rows, k) = sl.factor();
            assert_eq!(k, if loss == Loss::CrossEntropy { m - 1 } else { m });
            let h = hessian(&sl, m);
            for i in 0..m {
                for j in 0..m {
                    let aat: f64 = (0..k).map(|c| f64::from(rows[c * m + i]) * f64::from(rows[c * m + j])).sum();
                    assert!((aat - h[i * m + j]).abs() <= 1e-6, "{loss:?} {z:?}: ({i},{j}) {aat} vs {}", h[i * m + j]);
                }
            }
            // A probe's square norm averages to the trace of H: with all ±1 probes of 3 entries.
            if m == 3 {
                let mut mean = 0.0;
                for bits in 0..8u32 {
                    let r: Vec<f32> = (0..3).map(|i| if bits >> i & 1 == 1 { 1.0 } else { -1.0 }).collect();
                    let ar = sl.factor_probe(&r);
                    mean += ar.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / 8.0;
                }
                let trace: f64 = (0..m).map(|i| h[i * m + i]).sum();
                assert!((mean - trace).abs() <= 1e-6, "{mean} vs {trace}");
            }
        }
    }

    #[test]
    fn losses_and_gradients() {
        let ce = sample_loss(Loss::CrossEntropy, &[1.0, 2.0, 3.0], &[], 2.0);
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert!((ce.value - (lse - 3.0)).abs() < 1e-12);
        assert!((ce.grad.iter().sum::<f64>()).abs() < 1e-12);
        let mse = sample_loss(Loss::Mse, &[1.0, 3.0], &[], 2.0);
        assert_eq!((mse.value, mse.grad.clone()), (1.0, vec![-1.0, 1.0]));
        let rec = sample_loss(Loss::Reconstruction, &[1.0, 3.0], &[0.0, 3.0], 0.0);
        assert_eq!((rec.value, rec.grad), (0.5, vec![1.0, 0.0]));
    }
}
