//! Error-compensating weight rounding (GPTQ, Frantar et al. 2022) for 4- and 2-bit layers.
//!
//! Rounding each weight to its nearest grid point minimises ‖Q(w) − w‖², but what matters is the
//! layer's output on real inputs. Below 8 bits the compiled bias absorbs the expected output
//! shift of the rounding, `(Q(w) − w)ᵀ E[x]` (bias correction, `emit.rs`, with the patch means
//! measured here, zeros of the padding included), so what is left is the output error
//! `(Q(w) − w)ᵀ Σ (Q(w) − w)` with `Σ = E[x xᵀ] − E[x] E[x]ᵀ` the covariance of the layer's input
//! patches on the calibration set. GPTQ minimises that: it rounds one weight at a time and moves
//! the error it makes onto the weights not yet rounded, along Σ⁻¹, so later choices compensate
//! earlier ones. (With the uncentred second moment instead, GPTQ spends its freedom on cancelling
//! the mean shift that the bias cancels anyway; after ReLUs the mean dominates `E[x xᵀ]`.)
//!
//! The order in which weights are rounded matters; each channel is rounded both in the natural
//! order and in decreasing order of Σ's diagonal (the most active inputs first, "act-order"),
//! and the rounding with the smaller output error is kept (neither order wins for every layer:
//! act-order helps wide layers and hurts 9-tap depthwise ones). The scale is chosen by output
//! error too: among clipping ratios, then refined by the least-squares scale of the integers
//! found. Scales stay per output channel and symmetric (the integer contract does not change).

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Axis};
use rayon::prelude::*;

use crate::ir::{Graph, OpKind};
use crate::quantize::WeightGrid;

/// First and second moments of a layer's input patches, per output position and sample.
#[derive(Debug, Clone)]
pub struct Moments {
    /// `E[x xᵀ]`.
    pub second: Array2<f64>,
    /// `E[x]` (padding included as zeros, as the layer sees it).
    pub mean: Vec<f64>,
}

impl Moments {
    /// `E[x xᵀ] − E[x] E[x]ᵀ`.
    pub fn covariance(&self) -> Array2<f64> {
        let k = self.mean.len();
        Array2::from_shape_fn((k, k), |(i, j)| self.second[[i, j]] - self.mean[i] * self.mean[j])
    }

    fn of(p: &Array2<f64>) -> Moments {
        Moments { second: gram(p), mean: p.sum_axis(Axis(0)).to_vec() }
    }

    fn add(&mut self, other: &Moments) {
        self.second += &other.second;
        self.mean.iter_mut().zip(&other.mean).for_each(|(a, b)| *a += b);
    }

    fn scale(&mut self, by: f64) {
        self.second.mapv_inplace(|v| v * by);
        self.mean.iter_mut().for_each(|m| *m *= by);
    }
}

/// Columns per block of [`gram`].
const GRAM_BLOCK: usize = 64;

/// `pᵀ p`, multiplying only the column blocks on and above the diagonal and mirroring the rest,
/// which halves the work of the layers' moments. Each entry is the same dot product over the rows
/// of `p`, summed in the same order, as in the whole product (the GEMM's blocking along the
/// summed dimension depends on the number of rows only), and `(pᵀp)ᵢⱼ = (pᵀp)ⱼᵢ` exactly, so
/// the result is bit for bit `p.t().dot(p)`.
fn gram(p: &Array2<f64>) -> Array2<f64> {
    let k = p.ncols();
    let mut out = Array2::<f64>::zeros((k, k));
    for first in (0..k).step_by(GRAM_BLOCK) {
        let end = (first + GRAM_BLOCK).min(k);
        let lhs = p.slice(s![.., ..end]).reversed_axes();
        let rhs = p.slice(s![.., first..end]);
        general_mat_mul(1.0, &lhs, &rhs, 0.0, &mut out.slice_mut(s![..end, first..end]));
    }
    // Entries below the diagonal blocks, from their mirror images above.
    for first in (0..k).step_by(GRAM_BLOCK) {
        let end = (first + GRAM_BLOCK).min(k);
        for i in end..k {
            for j in first..end {
                out[[i, j]] = out[[j, i]];
            }
        }
    }
    out
}

/// Input moments of one weight layer.
#[derive(Debug, Clone)]
pub enum InputMoments {
    /// One `K`-input set shared by all output channels (conv, fully connected).
    Shared(Moments),
    /// One `taps`-input set per input channel (depthwise conv).
    PerChannel(Vec<Moments>),
}

impl InputMoments {
    fn add(&mut self, other: &InputMoments) {
        match (self, other) {
            (InputMoments::Shared(a), InputMoments::Shared(b)) => a.add(b),
            (InputMoments::PerChannel(a), InputMoments::PerChannel(b)) => {
                a.iter_mut().zip(b).for_each(|(x, y)| x.add(y));
            }
            _ => unreachable!("a layer's moments keep their kind"),
        }
    }

    fn scale(&mut self, by: f64) {
        match self {
            InputMoments::Shared(m) => m.scale(by),
            InputMoments::PerChannel(v) => v.iter_mut().for_each(|m| m.scale(by)),
        }
    }
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

/// Moments of every weight layer's input patches over `inputs` (real NHWC samples) and output
/// positions.
pub fn input_moments(graph: &Graph, inputs: &[Vec<f32>]) -> Vec<Option<InputMoments>> {
    input_moments_visiting(graph, inputs, 1, |_, _| ()).0
}

/// [`input_moments`] of every `step`-th sample of `inputs` (from the first), in one forward pass
/// over all of them that also hands each sample's values to `visit(sample index, values)`; its
/// results come back in sample order. (Calibration needs every value of every sample too, and
/// the forward pass is then made once.)
pub(crate) fn input_moments_visiting<T: Send>(
    graph: &Graph,
    inputs: &[Vec<f32>],
    step: usize,
    visit: impl Fn(usize, &[Vec<f32>]) -> T + Sync,
) -> (Vec<Option<InputMoments>>, Vec<T>) {
    let step = step.max(1);
    let of_sample = |values: &[Vec<f32>]| -> Vec<Option<InputMoments>> {
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
                                    Moments::of(&p.select(Axis(1), &cols))
                                })
                                .collect(),
                        )
                    }
                    _ => InputMoments::Shared(Moments::of(&p)),
                })
            })
            .collect()
    };
    // Summed as they are made (a layer's K × K matrix per sample would not fit for many samples).
    let merge = |mut acc: Vec<Option<InputMoments>>, other: Vec<Option<InputMoments>>| {
        for (a, o) in acc.iter_mut().zip(other) {
            match (a.as_mut(), o) {
                (Some(a), Some(o)) => a.add(&o),
                (None, o) => *a = o,
                (Some(_), None) => {}
            }
        }
        acc
    };
    // Fixed chunks of the moment samples (16 of them), summed in order, so the result does not
    // depend on thread scheduling (a different summation order could flip a rounding). A chunk
    // of `chunk` moment samples spans `chunk · step` samples.
    let empty = || vec![None; graph.nodes.len()];
    let moment_samples = inputs.len().div_ceil(step);
    let chunk = moment_samples.div_ceil(16).max(1);
    let partial: Vec<(Vec<Option<InputMoments>>, Vec<T>)> = inputs
        .par_chunks(chunk * step)
        .enumerate()
        .map(|(c, samples)| {
            let mut acc = empty();
            let mut visited = Vec::with_capacity(samples.len());
            for (j, x) in samples.iter().enumerate() {
                let values = crate::float_exec::run_all(graph, x);
                if j % step == 0 {
                    acc = merge(acc, of_sample(&values));
                }
                visited.push(visit(c * chunk * step + j, &values));
            }
            (acc, visited)
        })
        .collect();
    let mut total = empty();
    let mut visited = Vec::with_capacity(inputs.len());
    for (moments, v) in partial {
        total = merge(total, moments);
        visited.extend(v);
    }
    for (node, m) in graph.nodes.iter().zip(total.iter_mut()) {
        if let Some(m) = m {
            let (oh, ow, _) = graph.values[node.output].hwc();
            let positions = if matches!(node.op, OpKind::Fc(_)) { 1 } else { oh * ow };
            m.scale(1.0 / (moment_samples * positions).max(1) as f64);
        }
    }
    (total, visited)
}

/// GPTQ's dampening, as a fraction of the mean diagonal of H: keeps dead inputs from making H
/// singular. 0.1% to 3% measured the same on the real models' held-out loss curvature; 10% was
/// worse.
const DAMPENING: f64 = 0.01;

/// Refinements of the scale by least squares after the clipping-ratio search.
const SCALE_REFITS: usize = 3;

/// Upper Cholesky factor `U` of `(H + λI)⁻¹` (`H⁻¹ = Uᵀ U`), with the dampening GPTQ uses
/// (`λ` = 1% of the mean diagonal) so that dead inputs do not make H singular.
pub fn inverse_cholesky(h: &Array2<f64>) -> Option<Array2<f64>> {
    let k = h.nrows();
    let mean_diag = (0..k).map(|i| h[[i, i]]).sum::<f64>() / k.max(1) as f64;
    let damp = DAMPENING * mean_diag.max(1e-12);
    let mut a = h.clone();
    for i in 0..k {
        a[[i, i]] += damp;
    }
    let l = cholesky_lower(&a)?;
    // H⁻¹ = L⁻ᵀ L⁻¹; invert L (lower triangular) by forward substitution, one column of L⁻¹ at a
    // time. The column is kept contiguous (`column[j]` = L⁻¹[j, col]) so that the dot products
    // run over two slices.
    let l = l.as_standard_layout();
    let l = l.as_slice().expect("standard layout");
    let mut linv = Array2::<f64>::zeros((k, k));
    let mut column = vec![0.0f64; k];
    for col in 0..k {
        for i in col..k {
            let mut s = if i == col { 1.0 } else { 0.0 };
            for (&lij, &x) in l[i * k + col..i * k + i].iter().zip(&column[col..i]) {
                s -= lij * x;
            }
            column[i] = s / l[i * k + i];
        }
        for i in col..k {
            linv[[i, col]] = column[i];
        }
    }
    let hinv = linv.t().dot(&linv);
    // Upper factor of H⁻¹: Uᵀ U = H⁻¹ with U = Lᵀ of its lower Cholesky factor.
    Some(cholesky_lower(&hinv)?.reversed_axes())
}

fn cholesky_lower(a: &Array2<f64>) -> Option<Array2<f64>> {
    let k = a.nrows();
    // Row-major `k × k`; row `i` of L is only read up to column `j < i` while entry `(i, j)` is
    // computed, so rows `i` and `j` are read as slices.
    let mut l = vec![0.0f64; k * k];
    for i in 0..k {
        for j in 0..=i {
            let mut s = a[[i, j]];
            for (&lip, &ljp) in l[i * k..i * k + j].iter().zip(&l[j * k..j * k + j]) {
                s -= lip * ljp;
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * k + i] = s.sqrt();
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
    }
    Some(Array2::from_shape_vec((k, k), l).expect("k × k"))
}

/// GPTQ for the output channels that share one input-moment matrix `H`: `H` itself (to score
/// roundings by output error) and, per rounding order tried, the order and the upper Cholesky
/// factor of the dampened inverse of `H` permuted to it.
#[derive(Debug, Clone)]
pub struct Gptq {
    h: Array2<f64>,
    factors: Vec<(Vec<usize>, Array2<f64>)>,
}

impl Gptq {
    /// `None` when the dampened `H` is not positive definite (non-finite moments).
    pub fn new(h: &Array2<f64>) -> Option<Gptq> {
        let k = h.nrows();
        let natural: Vec<usize> = (0..k).collect();
        let mut act_order = natural.clone();
        act_order.sort_by(|&a, &b| h[[b, b]].total_cmp(&h[[a, a]]));
        let orders = if act_order == natural { vec![natural] } else { vec![natural, act_order] };
        let factors = orders
            .into_par_iter()
            .map(|order| {
                let permuted = Array2::from_shape_fn((k, k), |(i, j)| h[[order[i], order[j]]]);
                // Standard layout, which the rounding reads row by row.
                let u = inverse_cholesky(&permuted)?.as_standard_layout().into_owned();
                Some((order, u))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Gptq { h: h.as_standard_layout().into_owned(), factors })
    }

    pub fn inputs(&self) -> usize {
        self.h.nrows()
    }

    /// The input covariance the roundings are scored on.
    pub fn covariance(&self) -> &Array2<f64> {
        &self.h
    }

    /// GPTQ rounding of one output channel `w` at scale `s` to `grid`: of the orders
    /// tried, the rounding with the least output error.
    pub fn round(&self, w: &[f32], s: f32, grid: WeightGrid) -> Vec<i8> {
        self.round_scored(w, s, grid).1
    }

    /// [`Gptq::round`] with the output error of the rounding it returns.
    fn round_scored(&self, w: &[f32], s: f32, grid: WeightGrid) -> (f64, Vec<i8>) {
        let mut best: Option<(f64, Vec<i8>)> = None;
        for (order, u) in &self.factors {
            let permuted: Vec<f32> = order.iter().map(|&i| w[i]).collect();
            let qp = round_row(&permuted, s, grid, u);
            let mut q = vec![0i8; w.len()];
            for (j, &i) in order.iter().enumerate() {
                q[i] = qp[j];
            }
            let e = output_error(w, s, &q, &self.h);
            if best.as_ref().is_none_or(|b| e < b.0) {
                best = Some((e, q));
            }
        }
        best.expect("one order")
    }

    /// Quantizes one output channel at `bits`, choosing among clipping ratios the scale whose
    /// rounding has the least output error on `H`, then trying the least-squares scale of the
    /// best integers so far (the scale the integers call for; re-rounding at it can change them).
    pub fn quantize(&self, w: &[f32], bits: u8) -> (f32, Vec<i8>) {
        let grid = WeightGrid::of(bits);
        let amax = w.iter().fold(0f32, |m, &x| m.max(x.abs()));
        if amax == 0.0 {
            return (1.0, vec![0; w.len()]);
        }
        let mut best: Option<(f64, f32, Vec<i8>)> = None;
        let consider = |s: f32, best: &mut Option<(f64, f32, Vec<i8>)>| {
            if !(s > 0.0 && s.is_finite()) {
                return;
            }
            let (e, q) = self.round_scored(w, s, grid);
            if best.as_ref().is_none_or(|b| e < b.0) {
                *best = Some((e, s, q));
            }
        };
        for s in [1.0f32, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3].into_iter().flat_map(|r| grid.scales(amax, r)) {
            consider(s, &mut best);
        }
        if best.is_none() {
            // No finite positive scale (an infinite weight, which the importer rejects): nearest
            // rounding, which never fails.
            return crate::quantize::quantize_channel(w, bits);
        }
        for _ in 0..SCALE_REFITS {
            let Some((_, _, q)) = best.as_ref() else { break };
            let s = optimal_scale(w, q, &self.h);
            consider(s as f32, &mut best);
        }
        best.map_or_else(|| crate::quantize::quantize_channel(w, bits), |(_, s, q)| (s, q))
    }
}

/// The scale minimising the output error `(w − s·q)ᵀ H (w − s·q)` for fixed integers `q`:
/// `s = qᵀHw / qᵀHq`.
pub(crate) fn optimal_scale(w: &[f32], q: &[i8], h: &Array2<f64>) -> f64 {
    let w: Vec<f64> = w.iter().map(|&x| x as f64).collect();
    let q: Vec<f64> = q.iter().map(|&x| x as f64).collect();
    let hw = matrix_vector(h, &w);
    let hq = matrix_vector(h, &q);
    let (mut qhw, mut qhq) = (0.0, 0.0);
    for i in 0..q.len() {
        qhw += q[i] * hw[i];
        qhq += q[i] * hq[i];
    }
    if qhq > 0.0 {
        qhw / qhq
    } else {
        0.0
    }
}

/// `H x` for a square row-major `H`, each entry summed over `j` in order. Four rows are summed
/// side by side: each sum is a chain of dependent additions, and independent chains keep the
/// processor busy where one would wait on each addition (the sums themselves are unchanged).
fn matrix_vector(h: &Array2<f64>, x: &[f64]) -> Vec<f64> {
    let k = x.len();
    let h = h.as_standard_layout();
    let h = h.as_slice().expect("standard layout");
    let mut out = vec![0.0f64; k];
    let mut rows = h.chunks_exact(k * 4);
    let mut lines = out.chunks_exact_mut(4);
    for (four, sums) in (&mut rows).zip(&mut lines) {
        let (r0, rest) = four.split_at(k);
        let (r1, rest) = rest.split_at(k);
        let (r2, r3) = rest.split_at(k);
        let mut acc = [0.0f64; 4];
        for j in 0..k {
            acc[0] += r0[j] * x[j];
            acc[1] += r1[j] * x[j];
            acc[2] += r2[j] * x[j];
            acc[3] += r3[j] * x[j];
        }
        sums.copy_from_slice(&acc);
    }
    for (row, sum) in rows.remainder().chunks_exact(k).zip(lines.into_remainder()) {
        *sum = row.iter().zip(x).fold(0.0, |acc, (&a, &b)| acc + a * b);
    }
    out
}

/// GPTQ rounding of one output channel `w` at scale `s` to `grid`, with `u` the upper
/// Cholesky factor of the dampened inverse input moment matrix.
pub fn round_row(w: &[f32], s: f32, grid: WeightGrid, u: &Array2<f64>) -> Vec<i8> {
    let mut w: Vec<f64> = w.iter().map(|&x| x as f64).collect();
    let n = w.len();
    let u = u.as_standard_layout();
    let u = u.as_slice().expect("standard layout");
    let s = s as f64;
    let mut q = vec![0i8; n];
    for j in 0..n {
        q[j] = grid.round(w[j] / s);
        let qj = q[j] as f64;
        let err = (w[j] - qj * s) / u[j * n + j];
        for (wk, &ujk) in w[j + 1..].iter_mut().zip(&u[j * n + j + 1..(j + 1) * n]) {
            *wk -= err * ujk;
        }
    }
    q
}

/// The layer-output error `(w − s·q)ᵀ H (w − s·q)` of a rounding.
pub fn output_error(w: &[f32], s: f32, q: &[i8], h: &Array2<f64>) -> f64 {
    let d: Vec<f64> = w.iter().zip(q).map(|(&x, &qi)| x as f64 - s as f64 * qi as f64).collect();
    let hd = matrix_vector(h, &d);
    let mut e = 0.0;
    for i in 0..d.len() {
        e += d[i] * hd[i];
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    /// The blocked Gram matrix is bit for bit the whole product, for widths below, at and above
    /// the block size and rows above the GEMM's blocking of the summed dimension.
    #[test]
    fn gram_is_the_whole_product_bit_for_bit() {
        let mut seed = 13;
        for (rows, k) in [(5, 3), (700, 64), (1030, 150), (300, 577)] {
            let p = Array2::from_shape_fn((rows, k), |_| lcg(&mut seed));
            let full = p.t().dot(&p);
            let blocked = gram(&p);
            assert!(full.iter().zip(&blocked).all(|(a, b)| a.to_bits() == b.to_bits()), "{rows} × {k}");
        }
    }

    #[test]
    fn inverse_cholesky_factors_the_inverse() {
        let mut seed = 7;
        let x = Array2::from_shape_fn((40, 6), |_| lcg(&mut seed));
        let h = x.t().dot(&x);
        let u = inverse_cholesky(&h).unwrap();
        let mut damped = h.clone();
        let damp = DAMPENING * (0..6).map(|i| h[[i, i]]).sum::<f64>() / 6.0;
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
        let mut wins = 0;
        for _ in 0..20 {
            let w: Vec<f32> = (0..16).map(|_| lcg(&mut seed) as f32).collect();
            for bits in [2u8, 4] {
                let (s_near, q_near) = crate::quantize::quantize_channel(&w, bits);
                let (s, q) = Gptq::new(&h).unwrap().quantize(&w, bits);
                let grid = WeightGrid::of(bits);
                assert!(q.iter().all(|&v| (grid.lo..=grid.hi).contains(&(v as i32))));
                if output_error(&w, s, &q, &h) <= output_error(&w, s_near, &q_near, &h) {
                    wins += 1;
                }
            }
        }
        assert!(wins >= 36, "GPTQ should almost always match or beat nearest rounding: {wins}/40");
    }

    /// Inputs of unequal activity (so act-order differs from the natural order) and correlated.
    fn unequal_moments(seed: &mut u64) -> Array2<f64> {
        let base = Array2::from_shape_fn((300, 6), |_| lcg(seed));
        let x = Array2::from_shape_fn((300, 12), |(n, k)| (1.0 + k as f64) * (base[[n, k % 6]] + 0.3 * lcg(seed)));
        x.t().dot(&x) / 300.0
    }

    /// Of the rounding orders, `round` keeps the one with the least output error, and the orders
    /// tried are the natural one and decreasing diagonal of H.
    #[test]
    fn rounding_keeps_the_better_order() {
        let mut seed = 3;
        let h = unequal_moments(&mut seed);
        let g = Gptq::new(&h).unwrap();
        assert_eq!(g.factors.len(), 2);
        let diag: Vec<f64> = g.factors[1].0.iter().map(|&i| h[[i, i]]).collect();
        assert!(diag.windows(2).all(|p| p[0] >= p[1]), "act-order is by decreasing activity");
        let mut strictly_better = 0;
        for _ in 0..30 {
            let w: Vec<f32> = (0..12).map(|_| lcg(&mut seed) as f32).collect();
            let s = 0.3f32;
            let q = g.round(&w, s, WeightGrid::of(2));
            let single: Vec<f64> = g
                .factors
                .iter()
                .map(|(order, u)| {
                    let permuted: Vec<f32> = order.iter().map(|&i| w[i]).collect();
                    let qp = round_row(&permuted, s, WeightGrid::of(2), u);
                    let mut q = vec![0i8; 12];
                    order.iter().zip(qp).for_each(|(&i, v)| q[i] = v);
                    output_error(&w, s, &q, &h)
                })
                .collect();
            let e = output_error(&w, s, &q, &h);
            let best = single.iter().copied().fold(f64::INFINITY, f64::min);
            assert!(e <= best + 1e-12, "{e} vs orders {single:?}");
            strictly_better += usize::from(single.iter().any(|&x| x > e + 1e-12));
        }
        assert!(strictly_better > 0, "the two orders should differ on some channel");
    }

    /// Non-finite weights (the importer rejects them, but GPTQ must not panic on them) fall back
    /// to nearest rounding; non-finite moments make `Gptq::new` decline and singular ones are
    /// dampened.
    #[test]
    fn non_finite_weights_and_moments_do_not_panic() {
        let mut seed = 17;
        let h = unequal_moments(&mut seed);
        let g = Gptq::new(&h).unwrap();
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
            let mut w: Vec<f32> = (0..12).map(|_| lcg(&mut seed) as f32).collect();
            w[3] = bad;
            for bits in [2u8, 4] {
                let grid = WeightGrid::of(bits);
                let (_, q) = g.quantize(&w, bits);
                assert_eq!(q.len(), 12);
                assert!(q.iter().all(|&v| (grid.lo..=grid.hi).contains(&(v as i32))), "{bad} at {bits} bits: {q:?}");
            }
        }
        let mut nan = h.clone();
        nan[[2, 2]] = f64::NAN;
        assert!(Gptq::new(&nan).is_none());
        let singular = Gptq::new(&Array2::zeros((12, 12))).expect("dampening makes a zero H invertible");
        let w: Vec<f32> = (0..12).map(|_| lcg(&mut seed) as f32).collect();
        let (s, q) = singular.quantize(&w, 4);
        assert!(s.is_finite() && s > 0.0 && q.len() == 12);
    }

    /// The chosen scale has no more output error than any clipping ratio of the search, and the
    /// least-squares refit is what makes it beat them on some channels.
    #[test]
    fn scale_choice_beats_every_clipping_ratio() {
        let mut seed = 5;
        let h = unequal_moments(&mut seed);
        let g = Gptq::new(&h).unwrap();
        let mut refit_won = 0;
        for _ in 0..30 {
            let w: Vec<f32> = (0..12).map(|_| lcg(&mut seed) as f32).collect();
            let amax = w.iter().fold(0f32, |m, &x| m.max(x.abs()));
            for bits in [2u8, 4] {
                let grid = WeightGrid::of(bits);
                let (s, q) = g.quantize(&w, bits);
                let e = output_error(&w, s, &q, &h);
                let best = [1.0f32, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
                    .into_iter()
                    .flat_map(|r| grid.scales(amax, r))
                    .map(|s| output_error(&w, s, &g.round(&w, s, grid), &h))
                    .fold(f64::INFINITY, f64::min);
                assert!(e <= best, "{e} vs grid {best}");
                refit_won += usize::from(e < best);
            }
        }
        assert!(refit_won > 0, "the refit should improve on the grid somewhere");
    }
}
