//! Quadratic forms `vᵀ H v` of directions within single layers, from the loss Hessian's factor,
//! for networks that are piecewise linear up to the loss (no softmax, smooth activation or product
//! of two input-dependent values inside; see `Net::not_piecewise_linear`).
//!
//! There the Hessian of a sample's loss is its Gauss–Newton matrix `Jᵀ A Aᵀ J` (`J` the head's
//! Jacobian, `A Aᵀ` the loss's Hessian on the head; clamp masks, the pieces of piecewise-linear
//! activations and max-pool argmaxes are fixed, and a layer's output is affine in its own weights
//! and bias, so no second-order term of the network remains for a direction within one layer).
//! Hence `vᵀ H v = Σ_r ⟨a_r, J v⟩²` over the factor's columns `a_r`, and `⟨a_r, J v⟩ = ⟨δ_r, ż⟩`
//! with `δ_r` the adjoint of column `a_r` at the layer's pre-activation and `ż = V ⋆ x + ḃ` the
//! direction's change of the pre-activation.
//! One backward pass of the factor's columns (as the exact Gauss–Newton traces do) serves every
//! direction; each direction costs only its own layer's linear map on one row. The
//! forward-over-reverse products of `tangent.rs` give the same forms up to f32 rounding, at the
//! cost of pushing every direction forward and back through the whole network.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};

use super::backward::Sink;
use super::kernels::{add_into, gemm, mat, mat_mut, patches_of};
use super::net::{Net, Op};
use super::tangent::{layer_linear, WeightSeed};
use crate::ir::ValueId;

/// Per sample: `Σ_r ⟨δ_r, ż_d⟩²` of every direction `d`, each a single-layer weight seed.
pub(super) struct FormSink<'a> {
    seeds: &'a [WeightSeed],
    /// Per node, the indices in `seeds` of the directions on it.
    by_node: Vec<Vec<usize>>,
    pub forms: Vec<f64>,
}

impl<'a> FormSink<'a> {
    pub fn new(nodes: usize, seeds: &'a [WeightSeed]) -> FormSink<'a> {
        let mut by_node = vec![Vec::new(); nodes];
        for (i, s) in seeds.iter().enumerate() {
            by_node[s.node].push(i);
        }
        FormSink { seeds, by_node, forms: vec![0.0; seeds.len()] }
    }
}

impl Sink for FormSink<'_> {
    fn value(&mut self, _net: &Net, _value: ValueId, _adjoint: &[f32], _rows: usize) {}

    fn layer(&mut self, net: &Net, node: usize, input: &[f32], delta: &[f32], rows: usize) {
        let directions = &self.by_node[node];
        if directions.is_empty() || rows == 0 {
            return;
        }
        let op = &net.ops[node];
        let out_len = delta.len() / rows;
        let z_dot = self.pre_activation_tangents(op, directions, input, out_len);
        // ⟨δ_r, ż_d⟩ for every factor column r and direction d, as one f64 product (the f32
        // entries are exact in f64, and the sums are long: whole feature maps).
        let delta: Vec<f64> = delta.iter().map(|&x| f64::from(x)).collect();
        let mut j_v = Array2::<f64>::zeros((rows, directions.len()));
        general_mat_mul(
            1.0,
            &ArrayView2::from_shape((rows, out_len), &delta).expect("rows of the layer's output"),
            &ArrayView2::from_shape((directions.len(), out_len), &z_dot).expect("one row per direction").t(),
            0.0,
            &mut j_v,
        );
        for (k, &i) in directions.iter().enumerate() {
            self.forms[i] = j_v.column(k).iter().map(|v| v * v).sum();
        }
    }
}

impl FormSink<'_> {
    /// `ż_d = V_d ⋆ x + ḃ_d` of each direction `d` of `directions` on a layer with input `x`, one
    /// row of `out_len` per direction, in f64. A normal convolution's directions share one im2col
    /// matrix and one GEMM (their weights side by side); other layers take one product each.
    fn pre_activation_tangents(&self, op: &Op, directions: &[usize], x: &[f32], out_len: usize) -> Vec<f64> {
        let count = directions.len();
        let mut z_dot = vec![0.0f64; count * out_len];
        match op {
            Op::Conv { geom, depthwise: false, .. } => {
                let (pixels, patch_len, out_c) = (geom.out_pixels(), geom.patch_len(), geom.out_c);
                let weights: Vec<f32> = directions.iter().flat_map(|&i| self.seeds[i].w.iter().copied()).collect();
                let mut storage = Vec::new();
                let patches = patches_of(geom, x, &mut storage);
                let mut side_by_side = vec![0.0f32; pixels * count * out_c];
                gemm(
                    &mat(patches, (pixels, patch_len), (patch_len, 1)),
                    &mat(&weights, (patch_len, count * out_c), (1, patch_len)),
                    0.0,
                    &mut mat_mut(&mut side_by_side, (pixels, count * out_c)),
                );
                for (pixel, line) in side_by_side.chunks_exact(count * out_c).enumerate() {
                    for (k, (&i, z)) in directions.iter().zip(line.chunks_exact(out_c)).enumerate() {
                        let b = &self.seeds[i].b;
                        let out = &mut z_dot[k * out_len + pixel * out_c..][..out_c];
                        for (c, (o, &v)) in out.iter_mut().zip(z).enumerate() {
                            *o = f64::from(v + b.get(c).copied().unwrap_or(0.0));
                        }
                    }
                }
            }
            _ => {
                let mut row = vec![0.0f32; out_len];
                for (&i, out) in directions.iter().zip(z_dot.chunks_exact_mut(out_len)) {
                    let seed = &self.seeds[i];
                    row.fill(0.0);
                    layer_linear(op, &seed.w, x, 1, &mut row);
                    if !seed.b.is_empty() {
                        for pixel in row.chunks_exact_mut(seed.b.len()) {
                            add_into(pixel, &seed.b);
                        }
                    }
                    out.iter_mut().zip(&row).for_each(|(o, &v)| *o = f64::from(v));
                }
            }
        }
        z_dot
    }
}
