//! The linear pieces of every op, batched over `rows` independent vectors (tangent directions,
//! or the columns of the output-Hessian factor): a batch of a value with `e` elements is a slice
//! of `rows · e` floats, row after row, each row in the IR's per-sample layout (`[H, W, C]` or
//! `[C]`). Keeping every row in the value's own layout makes Reshape a no-op and lets one GEMM
//! serve all rows (`[rows · pixels, channels]`).
//!
//! Convolutions go through im2col and `ndarray::linalg::general_mat_mul` (matrixmultiply's sgemm),
//! as in `float_exec`, whose im2col is private, so the window arithmetic is repeated here.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

use crate::ir::{Activation, Clamp, Value, Window};

/// A read-only matrix over a slice, with element strides.
pub(super) fn mat(data: &[f32], shape: (usize, usize), strides: (usize, usize)) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape(shape.strides(strides), data).expect("matrix view inside its slice")
}

/// A row-major matrix over a mutable slice.
pub(super) fn mat_mut(data: &mut [f32], shape: (usize, usize)) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape(shape, data).expect("matrix view inside its slice")
}

/// `c = a · b + beta · c`; skipped when any dimension is empty (`c` then keeps `beta · c`, which is
/// only ever used with `beta` 1 or on zeroed buffers).
pub(super) fn gemm(a: &ArrayView2<'_, f32>, b: &ArrayView2<'_, f32>, beta: f32, c: &mut ArrayViewMut2<'_, f32>) {
    if a.is_empty() || b.is_empty() || c.is_empty() {
        return;
    }
    general_mat_mul(1.0, a, b, beta, c);
}

/// Window taps of one output coordinate that fall inside the input.
#[derive(Clone, Copy)]
pub(super) struct Taps {
    pub first_tap: usize,
    pub first_input: usize,
    pub count: usize,
}

fn taps_inside(output_coordinate: usize, stride: usize, pad_before: usize, kernel: usize, extent: usize) -> Taps {
    let start = (output_coordinate * stride) as isize - pad_before as isize;
    let first_tap = (-start).max(0) as usize;
    let end_tap = (extent as isize - start).clamp(0, kernel as isize) as usize;
    if first_tap >= end_tap {
        return Taps { first_tap: 0, first_input: 0, count: 0 };
    }
    Taps { first_tap, first_input: (start + first_tap as isize) as usize, count: end_tap - first_tap }
}

/// Shapes of a windowed op (convolution or pooling).
#[derive(Debug, Clone, Copy)]
pub(super) struct Geom {
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub window: Window,
}

impl Geom {
    pub fn new(window: &Window, input: &Value, output: &Value, node_name: &str) -> Geom {
        let (in_h, in_w, in_c) = input.hwc();
        let (out_h, out_w, out_c) = output.hwc();
        assert_eq!(
            window.output_hw(in_h, in_w),
            Some((out_h, out_w)),
            "node {node_name:?}: window {window:?} on {in_h}x{in_w} does not give {out_h}x{out_w}"
        );
        Geom { in_h, in_w, in_c, out_h, out_w, out_c, window: *window }
    }

    pub fn in_pixels(&self) -> usize {
        self.in_h * self.in_w
    }

    pub fn out_pixels(&self) -> usize {
        self.out_h * self.out_w
    }

    pub fn in_len(&self) -> usize {
        self.in_pixels() * self.in_c
    }

    pub fn out_len(&self) -> usize {
        self.out_pixels() * self.out_c
    }

    pub fn taps(&self) -> usize {
        self.window.kernel[0] * self.window.kernel[1]
    }

    /// Columns of the im2col matrix: `(ky, kx, c)`, the weight's order.
    pub fn patch_len(&self) -> usize {
        self.taps() * self.in_c
    }

    /// A 1x1, stride-1, unpadded window, whose im2col matrix is the input itself.
    pub fn is_pointwise(&self) -> bool {
        self.window.kernel == [1, 1] && self.window.stride == [1, 1] && self.window.pads == [0; 4]
    }

    /// The taps inside the input, rows then columns, of output pixel `pixel`.
    pub fn taps_of(&self, pixel: usize) -> (Taps, Taps) {
        let (y, x) = (pixel / self.out_w, pixel % self.out_w);
        let w = &self.window;
        (
            taps_inside(y, w.stride[0], w.pads[0], w.kernel[0], self.in_h),
            taps_inside(x, w.stride[1], w.pads[1], w.kernel[1], self.in_w),
        )
    }
}

/// One row per output pixel, columns `(ky, kx, c)`; taps in the padding are zero. `patches`
/// must be zeroed and `out_pixels · patch_len` long.
pub(super) fn im2col(g: &Geom, input: &[f32], patches: &mut [f32]) {
    let patch_len = g.patch_len();
    let kernel_w = g.window.kernel[1];
    for (pixel, patch) in patches.chunks_exact_mut(patch_len).enumerate() {
        let (rows, columns) = g.taps_of(pixel);
        let run = columns.count * g.in_c;
        for row in 0..rows.count {
            let source = ((rows.first_input + row) * g.in_w + columns.first_input) * g.in_c;
            let destination = ((rows.first_tap + row) * kernel_w + columns.first_tap) * g.in_c;
            patch[destination..destination + run].copy_from_slice(&input[source..source + run]);
        }
    }
}

/// The im2col matrix of one input row (the input itself for a pointwise window).
pub(super) fn patches_of<'a>(g: &Geom, input: &'a [f32], storage: &'a mut Vec<f32>) -> &'a [f32] {
    if g.is_pointwise() {
        input
    } else {
        *storage = vec![0.0; g.out_pixels() * g.patch_len()];
        im2col(g, input, storage);
        storage
    }
}

/// Adjoint of [`im2col`]: adds each patch entry back onto its input element.
pub(super) fn col2im_add(g: &Geom, patches: &[f32], input: &mut [f32]) {
    let patch_len = g.patch_len();
    let kernel_w = g.window.kernel[1];
    for (pixel, patch) in patches.chunks_exact(patch_len).enumerate() {
        let (rows, columns) = g.taps_of(pixel);
        let run = columns.count * g.in_c;
        for row in 0..rows.count {
            let destination = ((rows.first_input + row) * g.in_w + columns.first_input) * g.in_c;
            let source = ((rows.first_tap + row) * kernel_w + columns.first_tap) * g.in_c;
            for (d, &s) in input[destination..destination + run].iter_mut().zip(&patch[source..source + run]) {
                *d += s;
            }
        }
    }
}

/// `out += conv(x, w)` without bias or clamp, for `rows` input rows; `w` is `[out_c, patch]`.
pub(super) fn conv_linear(g: &Geom, w: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
    if rows == 0 {
        return;
    }
    let (pixels, patch_len) = (g.out_pixels(), g.patch_len());
    let weight_t = mat(w, (patch_len, g.out_c), (1, patch_len));
    let mut out = mat_mut(&mut out[..rows * g.out_len()], (rows * pixels, g.out_c));
    if g.is_pointwise() {
        gemm(&mat(x, (rows * pixels, g.in_c), (g.in_c, 1)), &weight_t, 1.0, &mut out);
    } else {
        let mut patches = vec![0.0f32; rows * pixels * patch_len];
        for (row, chunk) in patches.chunks_exact_mut(pixels * patch_len).enumerate() {
            im2col(g, &x[row * g.in_len()..(row + 1) * g.in_len()], chunk);
        }
        gemm(&mat(&patches, (rows * pixels, patch_len), (patch_len, 1)), &weight_t, 1.0, &mut out);
    }
}

/// `dx += convᵀ(d, w)`: the input adjoint of `rows` output adjoints.
pub(super) fn conv_backward_data(g: &Geom, w: &[f32], d: &[f32], rows: usize, dx: &mut [f32]) {
    if rows == 0 {
        return;
    }
    let (pixels, patch_len) = (g.out_pixels(), g.patch_len());
    let weight = mat(w, (g.out_c, patch_len), (patch_len, 1));
    if g.is_pointwise() {
        let mut dx = mat_mut(&mut dx[..rows * g.in_len()], (rows * pixels, g.in_c));
        gemm(&mat(d, (rows * pixels, g.out_c), (g.out_c, 1)), &weight, 1.0, &mut dx);
        return;
    }
    // A few rows at a time (enough for a GEMM of ~512 lines), so the patch adjoint stays in
    // cache for the scatter that follows.
    let chunk = 512usize.div_ceil(pixels).clamp(1, rows);
    let mut patches = vec![0.0f32; chunk * pixels * patch_len];
    for first in (0..rows).step_by(chunk) {
        let count = chunk.min(rows - first);
        let d_rows = &d[first * g.out_len()..(first + count) * g.out_len()];
        let patches = &mut patches[..count * pixels * patch_len];
        gemm(
            &mat(d_rows, (count * pixels, g.out_c), (g.out_c, 1)),
            &weight,
            0.0,
            &mut mat_mut(patches, (count * pixels, patch_len)),
        );
        for (row, row_patches) in patches.chunks_exact(pixels * patch_len).enumerate() {
            let row = first + row;
            col2im_add(g, row_patches, &mut dx[row * g.in_len()..(row + 1) * g.in_len()]);
        }
    }
}

/// `grad = beta · grad + dᵀ · patches`: the weight gradient `[out_c, patch]` of one output
/// adjoint row `d` (`[pixels, out_c]`).
pub(super) fn conv_weight_grad(g: &Geom, patches: &[f32], d: &[f32], beta: f32, grad: &mut [f32]) {
    let (pixels, patch_len) = (g.out_pixels(), g.patch_len());
    gemm(
        &mat(d, (g.out_c, pixels), (1, g.out_c)),
        &mat(patches, (pixels, patch_len), (patch_len, 1)),
        beta,
        &mut mat_mut(grad, (g.out_c, patch_len)),
    );
}

/// `‖dₖ,cᵀ · patches‖²` for each of `rows` output adjoint rows `k` and each output channel `c`
/// (row-major `[rows, out_c]`): the squared norms of the weight gradients, per output channel,
/// without forming them one by one. The rows are laid side by side as `D = [pixels, rows · out_c]`;
/// then either `G = patchesᵀ · D` is formed (cost `pixels · patch · rows · out_c`) and its columns
/// squared, or, when the layer has few pixels, the Gram matrix `K = patches · patchesᵀ` is, and
/// `‖G_j‖² = ⟨D_j, K · D_j⟩` per column `j` (cost `pixels² · (patch + rows · out_c)`).
pub(super) fn conv_weight_sqnorms(g: &Geom, patches: &[f32], d: &[f32], rows: usize) -> Vec<f64> {
    let (pixels, patch_len, width) = (g.out_pixels(), g.patch_len(), rows * g.out_c);
    let side_by_side = side_by_side(g, d, rows);
    if pixels * patch_len * width <= pixels * pixels * (patch_len + width) {
        sqnorms_direct(g, patches, &side_by_side, rows)
    } else {
        sqnorms_gram(g, patches, &side_by_side, rows)
    }
}

/// The rows `[rows, pixels, out_c]` rearranged to `[pixels, rows · out_c]`.
fn side_by_side(g: &Geom, d: &[f32], rows: usize) -> Vec<f32> {
    let (pixels, out_c) = (g.out_pixels(), g.out_c);
    let width = rows * out_c;
    let mut out = vec![0.0f32; pixels * width];
    for row in 0..rows {
        for pixel in 0..pixels {
            let source = &d[row * g.out_len() + pixel * out_c..][..out_c];
            out[pixel * width + row * out_c..][..out_c].copy_from_slice(source);
        }
    }
    out
}

fn sqnorms_direct(g: &Geom, patches: &[f32], side_by_side: &[f32], rows: usize) -> Vec<f64> {
    let (pixels, patch_len) = (g.out_pixels(), g.patch_len());
    let width = rows * g.out_c;
    let p = mat(patches, (pixels, patch_len), (patch_len, 1));
    let mut grads = vec![0.0f32; patch_len * width];
    gemm(&p.t(), &mat(side_by_side, (pixels, width), (width, 1)), 0.0, &mut mat_mut(&mut grads, (patch_len, width)));
    let mut norms = vec![0.0f64; width];
    for line in grads.chunks_exact(width) {
        for (norm, &x) in norms.iter_mut().zip(line) {
            *norm += f64::from(x) * f64::from(x);
        }
    }
    norms
}

fn sqnorms_gram(g: &Geom, patches: &[f32], side_by_side: &[f32], rows: usize) -> Vec<f64> {
    let (pixels, patch_len) = (g.out_pixels(), g.patch_len());
    let width = rows * g.out_c;
    let p = mat(patches, (pixels, patch_len), (patch_len, 1));
    let mut gram = vec![0.0f32; pixels * pixels];
    gemm(&p, &p.t(), 0.0, &mut mat_mut(&mut gram, (pixels, pixels)));
    let mut product = vec![0.0f32; pixels * width];
    gemm(
        &mat(&gram, (pixels, pixels), (pixels, 1)),
        &mat(side_by_side, (pixels, width), (width, 1)),
        0.0,
        &mut mat_mut(&mut product, (pixels, width)),
    );
    let mut norms = vec![0.0f64; width];
    for (line, d_line) in product.chunks_exact(width).zip(side_by_side.chunks_exact(width)) {
        for (norm, (&kd, &d)) in norms.iter_mut().zip(line.iter().zip(d_line)) {
            *norm += f64::from(kd) * f64::from(d);
        }
    }
    norms
}

/// Depthwise weights `[out_c, taps]` rearranged to `[taps, out_c]`.
pub(super) fn taps_major(w: &[f32], out_c: usize, taps: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; w.len()];
    for oc in 0..out_c {
        for tap in 0..taps {
            t[tap * out_c + oc] = w[oc * taps + tap];
        }
    }
    t
}

/// Back from `[taps, out_c]` to `[out_c, taps]`.
pub(super) fn channel_major(t: &[f32], out_c: usize, taps: usize) -> Vec<f32> {
    let mut w = vec![0.0f32; t.len()];
    for oc in 0..out_c {
        for tap in 0..taps {
            w[oc * taps + tap] = t[tap * out_c + oc];
        }
    }
    w
}

/// Every (output pixel, tap inside, input pixel) of a window.
fn tap_list(g: &Geom) -> Vec<(usize, usize, usize)> {
    let kernel_w = g.window.kernel[1];
    let mut list = Vec::with_capacity(g.out_pixels() * g.taps());
    for pixel in 0..g.out_pixels() {
        let (rows, columns) = g.taps_of(pixel);
        for row in 0..rows.count {
            for column in 0..columns.count {
                let tap = (rows.first_tap + row) * kernel_w + columns.first_tap + column;
                let input_pixel = (rows.first_input + row) * g.in_w + columns.first_input + column;
                list.push((pixel, tap, input_pixel));
            }
        }
    }
    list
}

/// Visits every (output pixel, tap inside, input pixel) of a window.
fn for_each_tap(g: &Geom, f: impl FnMut(&(usize, usize, usize))) {
    tap_list(g).iter().for_each(f);
}

/// Depthwise `out += conv(x, w)` for `rows` rows; `w_taps` is `[taps, out_c]`, output channel
/// `c` reads input channel `c / multiplier`. Row by row, so each row's data stays in cache.
pub(super) fn dw_linear(g: &Geom, w_taps: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
    let (in_c, out_c) = (g.in_c, g.out_c);
    let multiplier = out_c / in_c;
    let taps = tap_list(g);
    for (x, out) in x.chunks_exact(g.in_len()).zip(out.chunks_exact_mut(g.out_len())).take(rows) {
        for &(pixel, tap, input_pixel) in &taps {
            let acc = &mut out[pixel * out_c..][..out_c];
            let xs = &x[input_pixel * in_c..][..in_c];
            let ws = &w_taps[tap * out_c..][..out_c];
            if multiplier == 1 {
                for ((a, &xv), &wv) in acc.iter_mut().zip(xs).zip(ws) {
                    *a += xv * wv;
                }
            } else {
                for ((group, &xv), wg) in acc.chunks_exact_mut(multiplier).zip(xs).zip(ws.chunks_exact(multiplier)) {
                    for (a, &wv) in group.iter_mut().zip(wg) {
                        *a += xv * wv;
                    }
                }
            }
        }
    }
}

/// Depthwise `dx += convᵀ(d, w)` for `rows` rows.
pub(super) fn dw_backward_data(g: &Geom, w_taps: &[f32], d: &[f32], rows: usize, dx: &mut [f32]) {
    let (in_c, out_c) = (g.in_c, g.out_c);
    let multiplier = out_c / in_c;
    let taps = tap_list(g);
    for (d, dx) in d.chunks_exact(g.out_len()).zip(dx.chunks_exact_mut(g.in_len())).take(rows) {
        for &(pixel, tap, input_pixel) in &taps {
            let ws = &w_taps[tap * out_c..][..out_c];
            let ds = &d[pixel * out_c..][..out_c];
            let xs = &mut dx[input_pixel * in_c..][..in_c];
            if multiplier == 1 {
                for ((xv, &dv), &wv) in xs.iter_mut().zip(ds).zip(ws) {
                    *xv += dv * wv;
                }
            } else {
                for ((xv, dg), wg) in xs.iter_mut().zip(ds.chunks_exact(multiplier)).zip(ws.chunks_exact(multiplier)) {
                    *xv += dg.iter().zip(wg).map(|(&dv, &wv)| dv * wv).sum::<f32>();
                }
            }
        }
    }
}

/// Depthwise weight gradient of one row, accumulated into `grad_taps` (`[taps, out_c]`).
pub(super) fn dw_weight_grad(g: &Geom, x: &[f32], d: &[f32], grad_taps: &mut [f32]) {
    let (in_c, out_c) = (g.in_c, g.out_c);
    let multiplier = out_c / in_c;
    for_each_tap(g, |&(pixel, tap, input_pixel)| {
        let ds = &d[pixel * out_c..][..out_c];
        let xs = &x[input_pixel * in_c..][..in_c];
        let gs = &mut grad_taps[tap * out_c..][..out_c];
        if multiplier == 1 {
            for ((gv, &xv), &dv) in gs.iter_mut().zip(xs).zip(ds) {
                *gv += dv * xv;
            }
        } else {
            for ((gg, &xv), dg) in gs.chunks_exact_mut(multiplier).zip(xs).zip(ds.chunks_exact(multiplier)) {
                for (gv, &dv) in gg.iter_mut().zip(dg) {
                    *gv += dv * xv;
                }
            }
        }
    });
}

/// Fully connected `out += x · wᵀ` for `rows` rows; `w` is `[outputs, inputs]`.
pub(super) fn fc_linear(w: &[f32], (outputs, inputs): (usize, usize), x: &[f32], rows: usize, out: &mut [f32]) {
    if rows == 0 {
        return;
    }
    gemm(
        &mat(x, (rows, inputs), (inputs, 1)),
        &mat(w, (inputs, outputs), (1, inputs)),
        1.0,
        &mut mat_mut(&mut out[..rows * outputs], (rows, outputs)),
    );
}

/// Fully connected `dx += d · w` for `rows` rows.
pub(super) fn fc_backward_data(w: &[f32], (outputs, inputs): (usize, usize), d: &[f32], rows: usize, dx: &mut [f32]) {
    if rows == 0 {
        return;
    }
    gemm(
        &mat(d, (rows, outputs), (outputs, 1)),
        &mat(w, (outputs, inputs), (inputs, 1)),
        1.0,
        &mut mat_mut(&mut dx[..rows * inputs], (rows, inputs)),
    );
}

/// Fully connected weight gradient `grad (+)= d ⊗ x` of one row.
pub(super) fn fc_weight_grad(x: &[f32], d: &[f32], accumulate: bool, grad: &mut [f32]) {
    for (line, &dv) in grad.chunks_exact_mut(x.len()).zip(d) {
        if accumulate {
            line.iter_mut().zip(x).for_each(|(gv, &xv)| *gv += dv * xv);
        } else {
            line.iter_mut().zip(x).for_each(|(gv, &xv)| *gv = dv * xv);
        }
    }
}

/// Average pool of one row (mean of the taps inside the input, 0 for a window all in padding).
pub(super) fn avg_forward(g: &Geom, x: &[f32], out: &mut [f32]) {
    let c = g.in_c;
    for pixel in 0..g.out_pixels() {
        let (rows, columns) = g.taps_of(pixel);
        let count = rows.count * columns.count;
        if count == 0 {
            continue;
        }
        let scale = 1.0 / count as f32;
        let acc = &mut out[pixel * c..][..c];
        for y in rows.first_input..rows.first_input + rows.count {
            for x_ in columns.first_input..columns.first_input + columns.count {
                acc.iter_mut().zip(&x[(y * g.in_w + x_) * c..][..c]).for_each(|(a, &v)| *a += v * scale);
            }
        }
    }
}

/// Adjoint of [`avg_forward`]: each output's adjoint divided by its count of valid taps.
pub(super) fn avg_backward(g: &Geom, d: &[f32], dx: &mut [f32]) {
    let c = g.in_c;
    for pixel in 0..g.out_pixels() {
        let (rows, columns) = g.taps_of(pixel);
        let count = rows.count * columns.count;
        if count == 0 {
            continue;
        }
        let scale = 1.0 / count as f32;
        let ds = &d[pixel * c..][..c];
        for y in rows.first_input..rows.first_input + rows.count {
            for x_ in columns.first_input..columns.first_input + columns.count {
                dx[(y * g.in_w + x_) * c..][..c].iter_mut().zip(ds).for_each(|(a, &v)| *a += v * scale);
            }
        }
    }
}

/// No input element: the max of a window wholly in the padding.
pub(super) const NO_TAP: u32 = u32::MAX;

/// For each max-pool output element, the input element it takes: the first tap (in row-major
/// window order) holding the maximum.
pub(super) fn max_argmax(g: &Geom, x: &[f32]) -> Vec<u32> {
    let c = g.in_c;
    let mut best = vec![NO_TAP; g.out_len()];
    let mut best_value = vec![f32::NEG_INFINITY; c];
    for pixel in 0..g.out_pixels() {
        let (rows, columns) = g.taps_of(pixel);
        let arg = &mut best[pixel * c..][..c];
        best_value.fill(f32::NEG_INFINITY);
        for y in rows.first_input..rows.first_input + rows.count {
            for x_ in columns.first_input..columns.first_input + columns.count {
                let base = (y * g.in_w + x_) * c;
                for ch in 0..c {
                    let v = x[base + ch];
                    if arg[ch] == NO_TAP || v > best_value[ch] {
                        arg[ch] = (base + ch) as u32;
                        best_value[ch] = v;
                    }
                }
            }
        }
    }
    best
}

/// `out = x[argmax]` for one row.
pub(super) fn max_forward(argmax: &[u32], x: &[f32], out: &mut [f32]) {
    for (o, &a) in out.iter_mut().zip(argmax) {
        if a != NO_TAP {
            *o += x[a as usize];
        }
    }
}

/// Adjoint of [`max_forward`]: each output's adjoint goes to its argmax.
pub(super) fn max_backward(argmax: &[u32], d: &[f32], dx: &mut [f32]) {
    for (&dv, &a) in d.iter().zip(argmax) {
        if a != NO_TAP {
            dx[a as usize] += dv;
        }
    }
}

/// Does a clamp pass the derivative at an output value `a`? Only strictly inside `(lo, hi)`: an
/// output on a bound means the pre-activation was at or beyond it, and the derivative there is
/// taken as 0 (the one-sided derivative from the clamped side; the set is of measure zero).
pub(super) fn passes(clamp: Clamp, a: f32) -> bool {
    a > clamp.lo && a < clamp.hi
}

/// Zeroes, in every row of `rows_data`, the elements whose output `post` is clamped.
pub(super) fn mask_rows(clamp: Clamp, post: &[f32], rows_data: &mut [f32]) {
    if clamp.is_none() || post.is_empty() {
        return;
    }
    // As a 0/1 factor, so the per-row loop is a plain (vectorized) product.
    let mask: Vec<f32> = post.iter().map(|&a| if passes(clamp, a) { 1.0 } else { 0.0 }).collect();
    for row in rows_data.chunks_exact_mut(post.len()) {
        row.iter_mut().zip(&mask).for_each(|(v, &m)| *v *= m);
    }
}

/// Softmax backward of one row set: `s ∘ (d − ⟨s, d⟩)` per softmax row of `row_len`.
pub(super) fn softmax_backward(s: &[f32], d: &[f32], row_len: usize, out: &mut [f32]) {
    for ((s_row, d_row), o_row) in s.chunks(row_len).zip(d.chunks(row_len)).zip(out.chunks_mut(row_len)) {
        let dot: f64 = s_row.iter().zip(d_row).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
        for ((o, &sv), &dv) in o_row.iter_mut().zip(s_row).zip(d_row) {
            *o += (f64::from(sv) * (f64::from(dv) - dot)) as f32;
        }
    }
}

/// `f′(xᵢ)` of every element of one row of an activation's input (element `i` in channel
/// `i % channels`).
pub(super) fn activation_slopes(f: &Activation, channels: usize, x: &[f32]) -> Vec<f32> {
    x.iter().enumerate().map(|(i, &v)| f.derivative(v, i % channels)).collect()
}

/// `f″(xᵢ)` of every element, as [`activation_slopes`].
pub(super) fn activation_curvatures(f: &Activation, channels: usize, x: &[f32]) -> Vec<f32> {
    x.iter().enumerate().map(|(i, &v)| f.second_derivative(v, i % channels)).collect()
}

/// `out_r += x_r ∘ factor` for every row `x_r` of `x` (`x` and `out` in rows of `len`), with
/// `factor` broadcast over the row (`factor[i % factor.len()]`): an elementwise derivative
/// (`factor` of the row's length), or a product with a per-channel value.
pub(super) fn add_scaled_rows(x: &[f32], factor: &[f32], len: usize, out: &mut [f32]) {
    if len == 0 || factor.is_empty() {
        return;
    }
    for (x_row, out_row) in x.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
        for ((o, &xv), &f) in out_row.iter_mut().zip(x_row).zip(factor.iter().cycle()) {
            *o += xv * f;
        }
    }
}

/// `out_r[i] += full[i] · x_r[i % x_len]` for every row `x_r` of `x` (each `x_len` long), rows of
/// `out` as long as `full`: the broadcast factor's rows against a fixed full-size value.
pub(super) fn add_broadcast_rows(x: &[f32], x_len: usize, full: &[f32], out: &mut [f32]) {
    if x_len == 0 || full.is_empty() {
        return;
    }
    for (x_row, out_row) in x.chunks_exact(x_len).zip(out.chunks_exact_mut(full.len())) {
        for ((o, &fv), &xv) in out_row.iter_mut().zip(full).zip(x_row.iter().cycle()) {
            *o += fv * xv;
        }
    }
}

/// `out_r[i % out_len] += x_r[i] · full[i]` for every row `x_r` of `x` (each as long as `full`),
/// rows of `out` `out_len` long: the adjoint of a broadcast, which sums the copies.
pub(super) fn add_reduced_products(x: &[f32], full: &[f32], out_len: usize, out: &mut [f32]) {
    if out_len == 0 || full.is_empty() {
        return;
    }
    for (x_row, out_row) in x.chunks_exact(full.len()).zip(out.chunks_exact_mut(out_len)) {
        for (x_part, f_part) in x_row.chunks(out_len).zip(full.chunks(out_len)) {
            for ((o, &xv), &fv) in out_row.iter_mut().zip(x_part).zip(f_part) {
                *o += xv * fv;
            }
        }
    }
}

/// Channel concatenation, one input at a time: adds each row of `part` (`pixels × part_c`) into
/// channels `offset..offset + part_c` of the matching row of `out` (`pixels × out_c`).
pub(super) fn concat_forward(part: &[f32], part_c: usize, offset: usize, out_c: usize, pixels: usize, out: &mut [f32]) {
    if part_c == 0 || pixels == 0 {
        return;
    }
    for (p_row, o_row) in part.chunks_exact(pixels * part_c).zip(out.chunks_exact_mut(pixels * out_c)) {
        for (p_pixel, o_pixel) in p_row.chunks_exact(part_c).zip(o_row.chunks_exact_mut(out_c)) {
            add_into(&mut o_pixel[offset..offset + part_c], p_pixel);
        }
    }
}

/// Adjoint of [`concat_forward`]: adds channels `offset..offset + part_c` of each row of `d`
/// (`pixels × out_c`) into the matching row of `dx` (`pixels × part_c`).
pub(super) fn concat_backward(d: &[f32], part_c: usize, offset: usize, out_c: usize, pixels: usize, dx: &mut [f32]) {
    if part_c == 0 || pixels == 0 {
        return;
    }
    for (d_row, x_row) in d.chunks_exact(pixels * out_c).zip(dx.chunks_exact_mut(pixels * part_c)) {
        for (d_pixel, x_pixel) in d_row.chunks_exact(out_c).zip(x_row.chunks_exact_mut(part_c)) {
            add_into(x_pixel, &d_pixel[offset..offset + part_c]);
        }
    }
}

/// `out_r[i] += x_r[source[i]]` for every row (rows of `x` are `x_len` long, of `out`
/// `source.len()`): an op whose output elements are copies of input elements.
pub(super) fn gather_add(source: &[u32], x: &[f32], x_len: usize, out: &mut [f32]) {
    if x_len == 0 || source.is_empty() {
        return;
    }
    for (x_row, out_row) in x.chunks_exact(x_len).zip(out.chunks_exact_mut(source.len())) {
        for (o, &s) in out_row.iter_mut().zip(source) {
            *o += x_row[s as usize];
        }
    }
}

/// Adjoint of [`gather_add`]: `dx_r[source[i]] += d_r[i]`, so an element copied several times
/// (nearest upsampling) gets the sum of its copies' adjoints.
pub(super) fn scatter_add(source: &[u32], d: &[f32], x_len: usize, dx: &mut [f32]) {
    if x_len == 0 || source.is_empty() {
        return;
    }
    for (d_row, x_row) in d.chunks_exact(source.len()).zip(dx.chunks_exact_mut(x_len)) {
        for (&dv, &s) in d_row.iter().zip(source) {
            x_row[s as usize] += dv;
        }
    }
}

/// `Σ aᵢ bᵢ` in f64.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

/// `Σ aᵢ²`: in f32 over 8 lanes of blocks of 64 elements (8 terms per lane, all positive, so
/// ~1e-7 relative), the blocks summed in f64.
pub(super) fn sqnorm(a: &[f32]) -> f64 {
    let mut total = 0.0f64;
    let mut blocks = a.chunks_exact(64);
    for block in &mut blocks {
        let mut lanes = [0.0f32; 8];
        for eight in block.chunks_exact(8) {
            for (l, &x) in lanes.iter_mut().zip(eight) {
                *l += x * x;
            }
        }
        total += lanes.iter().map(|&l| f64::from(l)).sum::<f64>();
    }
    total + blocks.remainder().iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()
}

/// `a += b`.
pub(super) fn add_into(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, &y)| *x += y);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(seed: u64, len: usize) -> Vec<f32> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn geom(in_hw: (usize, usize), in_c: usize, out_c: usize, window: Window) -> Geom {
        let (out_h, out_w) = window.output_hw(in_hw.0, in_hw.1).unwrap();
        Geom { in_h: in_hw.0, in_w: in_hw.1, in_c, out_h, out_w, out_c, window }
    }

    /// Both ways of forming the squared norms of the weight gradients, per row and output
    /// channel, agree with forming each gradient, on a strided, asymmetrically padded window.
    #[test]
    fn weight_sqnorms_direct_and_gram_agree_with_gradients() {
        let window = Window { kernel: [3, 2], stride: [2, 1], pads: [1, 0, 2, 1] };
        let g = geom((7, 5), 3, 4, window);
        let rows = 3;
        let x = values(1, g.in_len());
        let d = values(2, rows * g.out_len());
        let mut storage = Vec::new();
        let patches = patches_of(&g, &x, &mut storage).to_vec();
        let expected: Vec<f64> = d
            .chunks_exact(g.out_len())
            .flat_map(|row| {
                let mut grad = vec![0.0f32; g.out_c * g.patch_len()];
                conv_weight_grad(&g, &patches, row, 0.0, &mut grad);
                // The gradient is `[out_c, patch]`: one norm per output channel.
                grad.chunks_exact(g.patch_len())
                    .map(|channel| channel.iter().map(|&v| f64::from(v).powi(2)).sum())
                    .collect::<Vec<f64>>()
            })
            .collect();
        let sbs = side_by_side(&g, &d, rows);
        for got in [sqnorms_direct(&g, &patches, &sbs, rows), sqnorms_gram(&g, &patches, &sbs, rows)] {
            assert_eq!(got.len(), rows * g.out_c);
            for (a, e) in got.iter().zip(&expected) {
                assert!((a - e).abs() <= 1e-5 * e, "{a} vs {e}");
            }
        }
    }

    /// `col2im_add` is the adjoint of `im2col`: `⟨im2col(x), p⟩ = ⟨x, col2im(p)⟩`; likewise the
    /// convolution and its backward-data, depthwise included.
    #[test]
    fn backward_kernels_are_adjoints() {
        let window = Window { kernel: [3, 3], stride: [2, 2], pads: [0, 1, 1, 0] };
        let g = geom((6, 7), 2, 6, window);
        let x = values(3, g.in_len());
        let p = values(4, g.out_pixels() * g.patch_len());
        let mut cols = vec![0.0f32; p.len()];
        im2col(&g, &x, &mut cols);
        let mut back = vec![0.0f32; x.len()];
        col2im_add(&g, &p, &mut back);
        assert!((dot(&cols, &p) - dot(&x, &back)).abs() < 1e-4);

        let d = values(5, g.out_len());
        let w = values(6, g.out_c * g.patch_len());
        let mut y = vec![0.0f32; g.out_len()];
        conv_linear(&g, &w, &x, 1, &mut y);
        let mut dx = vec![0.0f32; x.len()];
        conv_backward_data(&g, &w, &d, 1, &mut dx);
        assert!((dot(&y, &d) - dot(&x, &dx)).abs() < 1e-4);

        // Depthwise with multiplier 3 and 1.
        for g in [g, geom((6, 7), 2, 2, window)] {
            let d = values(5, g.out_len());
            let w_taps = taps_major(&values(7, g.out_c * g.taps()), g.out_c, g.taps());
            let mut y = vec![0.0f32; g.out_len()];
            dw_linear(&g, &w_taps, &x, 1, &mut y);
            let mut dx = vec![0.0f32; x.len()];
            dw_backward_data(&g, &w_taps, &d, 1, &mut dx);
            assert!((dot(&y, &d) - dot(&x, &dx)).abs() < 1e-4);
            // And the depthwise weight gradient is ⟨d, conv(x, ·)⟩.
            let mut grad = vec![0.0f32; w_taps.len()];
            dw_weight_grad(&g, &x, &d, &mut grad);
            assert!((dot(&y, &d) - dot(&w_taps, &grad)).abs() < 1e-4);
        }
    }

    /// The pieces of a product with a broadcast factor, of a concatenation and of an index map
    /// are pairwise adjoint, over two rows: `⟨a ∘ B, Y⟩ = ⟨B, Σ_copies Y ∘ a⟩`,
    /// `⟨concat(P), D⟩ = ⟨P, concatᵀ(D)⟩`, `⟨gather(X), D⟩ = ⟨X, scatter(D)⟩`; and broadcasting
    /// by the scaled rows matches the broadcast rows.
    #[test]
    fn product_concat_and_gather_pieces_are_adjoints() {
        let (rows, n, nb) = (2, 12, 3);
        let a = values(11, n);
        let b_rows = values(12, rows * nb);
        let y = values(13, rows * n);
        let mut ab = vec![0.0f32; rows * n];
        add_broadcast_rows(&b_rows, nb, &a, &mut ab);
        let mut back = vec![0.0f32; rows * nb];
        add_reduced_products(&y, &a, nb, &mut back);
        assert!((dot(&ab, &y) - dot(&b_rows, &back)).abs() < 1e-5);
        // The same product with the roles swapped: rows of `a` scaled by one broadcast `b`.
        let mut ba = vec![0.0f32; n];
        add_scaled_rows(&a, &b_rows[..nb], n, &mut ba);
        assert!(ba.iter().zip(&ab[..n]).all(|(p, q)| (p - q).abs() < 1e-6));

        let (pixels, out_c, part_c, offset) = (3, 5, 2, 1);
        let part = values(14, rows * pixels * part_c);
        let d = values(15, rows * pixels * out_c);
        let mut joined = vec![0.0f32; d.len()];
        concat_forward(&part, part_c, offset, out_c, pixels, &mut joined);
        let mut split = vec![0.0f32; part.len()];
        concat_backward(&d, part_c, offset, out_c, pixels, &mut split);
        assert!((dot(&joined, &d) - dot(&part, &split)).abs() < 1e-5);
        assert_eq!(joined[out_c + offset], part[part_c], "pixel 1's first channel of the part");

        // An upsampling-like map: every input element read twice, one never.
        let source = [0u32, 0, 1, 1, 2, 2, 4, 4];
        let x = values(16, rows * 5);
        let d = values(17, rows * source.len());
        let mut gathered = vec![0.0f32; d.len()];
        gather_add(&source, &x, 5, &mut gathered);
        let mut scattered = vec![0.0f32; x.len()];
        scatter_add(&source, &d, 5, &mut scattered);
        assert!((dot(&gathered, &d) - dot(&x, &scattered)).abs() < 1e-5);
        assert_eq!(scattered[3], 0.0);
        assert_eq!(scattered[5 + 4], d[source.len() + 6] + d[source.len() + 7]);
    }

    #[test]
    fn max_pool_ties_go_to_the_first_tap() {
        let window = Window { kernel: [2, 2], stride: [2, 2], pads: [0, 0, 1, 1] };
        let g = geom((3, 3), 1, 1, window);
        let x = [1.0, 1.0, 0.5, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0];
        // Windows: {0,1,3,4} all 1 → 0; {2,5} → 5; {6,7} → 6 (tie); {8} → 8.
        assert_eq!(max_argmax(&g, &x), vec![0, 5, 6, 8]);
    }

    #[test]
    fn sqnorm_is_accurate() {
        let v = values(8, 1000);
        let exact: f64 = v.iter().map(|&x| f64::from(x).powi(2)).sum();
        assert!((sqnorm(&v) - exact).abs() <= 1e-6 * exact);
    }
}
