//! Float reference executor of the IR: the ground truth the quantized model is measured against,
//! used for calibration (every value of every sample) and for sensitivity analysis (many forward
//! passes). It must agree with onnxruntime to ~1e-5 relative, so it computes in f32 the way the
//! usual kernels do (products accumulated in f32), and it must be fast, so the normal convolution
//! is im2col followed by a single GEMM (matrixmultiply's `sgemm`, reached through
//! `ndarray::linalg::general_mat_mul`, which is its safe wrapper when ndarray has no BLAS backend),
//! and batches are parallel over samples.
//!
//! Layout is the IR's: per sample, feature maps `[H, W, C]` (NHWC without the batch), vectors `[C]`.
//!
//! Malformed graphs (shapes that disagree with the ops) are a bug of the importer, so they panic
//! with a message naming the node rather than returning an error.

use crate::ir::{Clamp, Conv, Fc, Graph, Node, OpKind, Value, ValueId, Window};
use crate::quantize::ActQuant;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Runs one sample (`input` in the IR's NHWC order) and returns the graph's output value.
///
/// # Panics
/// If `input` does not have the input value's element count, or the graph is malformed.
pub fn run(graph: &Graph, input: &[f32]) -> Vec<f32> {
    let mut values = execute(graph, input, true, None, None);
    values[graph.output].take().unwrap_or_else(|| panic!("output value {} is never computed", graph.output))
}

/// Runs one sample and returns every value, indexed by `ValueId` (the input included). A value
/// that no node produces (other than the input) comes back empty.
///
/// # Panics
/// As [`run`].
pub fn run_all(graph: &Graph, input: &[f32]) -> Vec<Vec<f32>> {
    execute(graph, input, false, None, None).into_iter().map(Option::unwrap_or_default).collect()
}

/// [`run_all`] with the values that have a quantizer in `act` (indexed by value) rounded to
/// its grid as they are produced, the input included: what the device's activations hold, in
/// float (the refinement's student at 4-bit activations).
pub fn run_all_fake_quantized(graph: &Graph, input: &[f32], act: &[Option<ActQuant>]) -> Vec<Vec<f32>> {
    execute(graph, input, false, Some(act), None).into_iter().map(Option::unwrap_or_default).collect()
}

/// [`run_all_fake_quantized`], and each quantized value as it was before its rounding (empty
/// for the values without a quantizer): what the derivatives of the quantizers' clips and
/// scales (LSQ) are taken at.
pub fn run_all_fake_quantized_with_unrounded(
    graph: &Graph,
    input: &[f32],
    act: &[Option<ActQuant>],
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut unrounded = vec![Vec::new(); graph.values.len()];
    let values = execute(graph, input, false, Some(act), Some(&mut unrounded));
    (values.into_iter().map(Option::unwrap_or_default).collect(), unrounded)
}

fn fake_quantize(values: &mut [f32], q: &ActQuant) {
    for x in values {
        *x = q.dequantize(q.quantize(*x));
    }
}

/// Runs many samples, in parallel over samples; returns the output of each, in order.
///
/// # Panics
/// As [`run`].
pub fn run_batch(graph: &Graph, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    inputs.par_iter().map(|input| run(graph, input)).collect()
}

/// Executes the nodes in order. With `release_dead_values`, a value is dropped after its last
/// reader (except the output), which keeps the working set of big models small when only the
/// output is wanted.
fn execute(
    graph: &Graph,
    input: &[f32],
    release_dead_values: bool,
    act: Option<&[Option<ActQuant>]>,
    mut unrounded: Option<&mut Vec<Vec<f32>>>,
) -> Vec<Option<Vec<f32>>> {
    let quantizer = |v: usize| act.and_then(|a| a.get(v)).and_then(Option::as_ref);
    let input_elements = graph.values[graph.input].elements();
    assert_eq!(input.len(), input_elements, "input has {} elements, the graph expects {input_elements}", input.len());

    let last_reader = last_reader_per_value(graph);
    let mut values: Vec<Option<Vec<f32>>> = vec![None; graph.values.len()];
    let mut x = input.to_vec();
    if let Some(q) = quantizer(graph.input) {
        if let Some(u) = unrounded.as_deref_mut() {
            u[graph.input] = x.clone();
        }
        fake_quantize(&mut x, q);
    }
    values[graph.input] = Some(x);

    for (node_index, node) in graph.nodes.iter().enumerate() {
        let mut output = execute_node(graph, node, &values);
        if let Some(q) = quantizer(node.output) {
            if let Some(u) = unrounded.as_deref_mut() {
                u[node.output] = output.clone();
            }
            fake_quantize(&mut output, q);
        }
        let expected = graph.values[node.output].elements();
        assert_eq!(
            output.len(),
            expected,
            "node {:?} produced {} elements, its output expects {expected}",
            node.name,
            output.len()
        );
        values[node.output] = Some(output);

        if release_dead_values {
            for &input_id in &node.inputs {
                if last_reader[input_id] == Some(node_index) && !graph.is_output(input_id) {
                    values[input_id] = None;
                }
            }
        }
    }
    values
}

fn last_reader_per_value(graph: &Graph) -> Vec<Option<usize>> {
    let mut last_reader = vec![None; graph.values.len()];
    for (node_index, node) in graph.nodes.iter().enumerate() {
        for &input_id in &node.inputs {
            last_reader[input_id] = Some(node_index);
        }
    }
    last_reader
}

fn execute_node(graph: &Graph, node: &Node, values: &[Option<Vec<f32>>]) -> Vec<f32> {
    let input_data = |position: usize| -> &[f32] {
        let id: ValueId = *node
            .inputs
            .get(position)
            .unwrap_or_else(|| panic!("node {:?} ({}) has no input #{position}", node.name, node.op.name()));
        values[id].as_deref().unwrap_or_else(|| {
            panic!("node {:?} reads value {id} ({:?}) before it is computed", node.name, graph.values[id].name)
        })
    };
    let input_value = |position: usize| -> &Value { &graph.values[node.inputs[position]] };
    let output_value = &graph.values[node.output];

    match &node.op {
        OpKind::Conv(conv) if conv.depthwise => {
            depthwise_conv(conv, input_data(0), input_value(0), output_value, &node.name)
        }
        OpKind::Conv(conv) => conv2d(conv, input_data(0), input_value(0), output_value, &node.name),
        OpKind::Fc(fc) => fully_connected(fc, input_data(0), &node.name),
        OpKind::AvgPool(window) => {
            pool(PoolKind::Average, window, input_data(0), input_value(0), output_value, &node.name)
        }
        OpKind::MaxPool(window) => pool(PoolKind::Max, window, input_data(0), input_value(0), output_value, &node.name),
        OpKind::Add(clamp) => add(input_data(0), input_data(1), *clamp, &node.name),
        OpKind::Reshape => input_data(0).to_vec(),
        OpKind::Softmax => softmax(input_data(0), output_value),
        OpKind::LogSoftmax => log_softmax(input_data(0), output_value),
        OpKind::Activation(f) => {
            let channels = output_value.hwc().2.max(1);
            input_data(0).iter().enumerate().map(|(i, &x)| f.apply(x, i % channels)).collect()
        }
        OpKind::Mul(clamp) => mul(input_data(0), input_data(1), *clamp, &node.name),
        OpKind::Concat => {
            let parts: Vec<(&[f32], usize)> =
                (0..node.inputs.len()).map(|i| (input_data(i), input_value(i).hwc().2)).collect();
            concat(&parts, output_value)
        }
        OpKind::Slice { begin, step } => slice(input_data(0), input_value(0).hwc(), output_value.hwc(), *begin, *step),
        OpKind::Resize(factor) => resize(input_data(0), input_value(0).hwc(), *factor),
        OpKind::DepthToSpace(block) => depth_to_space(input_data(0), input_value(0).hwc(), *block),
    }
}

/// `a · b`, `b` of `a`'s size or one per channel (the channel being the fastest axis).
fn mul(a: &[f32], b: &[f32], clamp: Clamp, node_name: &str) -> Vec<f32> {
    assert!(
        !b.is_empty() && a.len().is_multiple_of(b.len()),
        "node {node_name:?}: mul of {} and {} elements",
        a.len(),
        b.len()
    );
    a.iter().enumerate().map(|(i, &x)| clamp.apply(x * b[i % b.len()])).collect()
}

/// Along the channel axis: each position's channels are the inputs' channels in input order.
fn concat(parts: &[(&[f32], usize)], output_value: &Value) -> Vec<f32> {
    let (h, w, _) = output_value.hwc();
    let mut out = Vec::with_capacity(output_value.elements());
    for p in 0..h * w {
        for &(data, c) in parts {
            out.extend_from_slice(&data[p * c..(p + 1) * c]);
        }
    }
    out
}

fn slice(
    input: &[f32],
    (_, in_w, in_c): (usize, usize, usize),
    (h, w, c): (usize, usize, usize),
    begin: [usize; 3],
    step: [usize; 3],
) -> Vec<f32> {
    let mut out = Vec::with_capacity(h * w * c);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let (sy, sx, sc) = (begin[0] + y * step[0], begin[1] + x * step[1], begin[2] + ch * step[2]);
                out.push(input[(sy * in_w + sx) * in_c + sc]);
            }
        }
    }
    out
}

fn resize(input: &[f32], (h, w, c): (usize, usize, usize), [fh, fw]: [usize; 2]) -> Vec<f32> {
    let mut out = Vec::with_capacity(h * fh * w * fw * c);
    for y in 0..h * fh {
        for x in 0..w * fw {
            let p = (y / fh) * w + x / fw;
            out.extend_from_slice(&input[p * c..(p + 1) * c]);
        }
    }
    out
}

fn depth_to_space(input: &[f32], (h, w, c): (usize, usize, usize), b: usize) -> Vec<f32> {
    let oc = c / (b * b);
    let mut out = Vec::with_capacity(h * w * c);
    for y in 0..h * b {
        for x in 0..w * b {
            let base = ((y / b) * w + x / b) * c + ((y % b) * b + x % b) * oc;
            out.extend_from_slice(&input[base..base + oc]);
        }
    }
    out
}

/// Checks that the output's spatial size is what the window makes of the input's, and returns
/// `((in_h, in_w, in_c), (out_h, out_w, out_c))`.
fn windowed_shapes(
    window: &Window,
    input: &Value,
    output: &Value,
    node_name: &str,
) -> ((usize, usize, usize), (usize, usize, usize)) {
    let (in_h, in_w, in_c) = input.hwc();
    let (out_h, out_w, out_c) = output.hwc();
    let expected = window.output_hw(in_h, in_w);
    assert_eq!(
        expected,
        Some((out_h, out_w)),
        "node {node_name:?}: window {window:?} on {in_h}x{in_w} does not give the output's {out_h}x{out_w}"
    );
    ((in_h, in_w, in_c), (out_h, out_w, out_c))
}

/// The input rows (or columns) a window position covers: the first tap index whose input
/// coordinate is inside, the first coordinate, and the number of taps inside. Taps in the zero
/// padding are skipped rather than multiplied by zero.
fn taps_inside(output_coordinate: usize, stride: usize, pad_before: usize, kernel: usize, extent: usize) -> TapRange {
    // Input coordinate of tap k is output_coordinate * stride + k - pad_before.
    let start = (output_coordinate * stride) as isize - pad_before as isize;
    let first_tap = (-start).max(0) as usize;
    let end_tap = (extent as isize - start).clamp(0, kernel as isize) as usize;
    if first_tap >= end_tap {
        // The window lies wholly in the padding.
        return TapRange { first_tap: 0, first_input: 0, count: 0 };
    }
    TapRange { first_tap, first_input: (start + first_tap as isize) as usize, count: end_tap - first_tap }
}

struct TapRange {
    first_tap: usize,
    first_input: usize,
    count: usize,
}

fn conv2d(conv: &Conv, input: &[f32], input_value: &Value, output_value: &Value, node_name: &str) -> Vec<f32> {
    let window = &conv.window;
    let ((in_h, in_w, in_c), (out_h, out_w, out_c)) = windowed_shapes(window, input_value, output_value, node_name);
    let [kernel_h, kernel_w] = window.kernel;
    let weight_shape = conv.weight.shape();
    assert_eq!(
        weight_shape,
        [out_c, kernel_h, kernel_w, in_c],
        "node {node_name:?}: conv weight shape vs [out_c, kh, kw, in_c] of the values and window"
    );
    assert_eq!(conv.bias.len(), out_c, "node {node_name:?}: bias length");

    let patch_len = kernel_h * kernel_w * in_c;
    let pixels = out_h * out_w;
    // Weights as [out_c, patch]; importers may hand over a permuted (non-standard) layout, which
    // would then be copied once here.
    let weight_standard = conv.weight.as_standard_layout();
    let weight_matrix = weight_standard.view().into_shape_with_order((out_c, patch_len)).expect("standard layout");

    // The output starts as the bias broadcast over pixels, and the GEMM accumulates into it (beta 1).
    let mut output = Vec::with_capacity(pixels * out_c);
    let bias = conv.bias.as_standard_layout();
    let bias = bias.as_slice().expect("standard layout");
    for _ in 0..pixels {
        output.extend_from_slice(bias);
    }

    let is_pointwise = window.kernel == [1, 1] && window.stride == [1, 1] && window.pads == [0; 4];
    let patches_storage;
    let patches: &[f32] = if is_pointwise {
        // A 1x1, stride-1, unpadded conv's im2col matrix is the input itself.
        input
    } else {
        patches_storage = im2col(input, (in_h, in_w, in_c), (out_h, out_w), window);
        &patches_storage
    };
    let patch_matrix = ArrayView2::from_shape((pixels, patch_len), patches).expect("im2col size");
    let mut output_matrix = ArrayViewMut2::from_shape((pixels, out_c), &mut output).expect("output size");
    general_mat_mul(1.0, &patch_matrix, &weight_matrix.t(), 1.0, &mut output_matrix);

    apply_clamp(&mut output, conv.clamp);
    output
}

/// One row per output pixel, columns in the weight's `(ky, kx, c)` order; taps in the padding are
/// zero.
fn im2col(
    input: &[f32],
    (in_h, in_w, in_c): (usize, usize, usize),
    (out_h, out_w): (usize, usize),
    window: &Window,
) -> Vec<f32> {
    let [kernel_h, kernel_w] = window.kernel;
    let patch_len = kernel_h * kernel_w * in_c;
    let mut patches = vec![0.0f32; out_h * out_w * patch_len];
    for (pixel, patch) in patches.chunks_exact_mut(patch_len).enumerate() {
        let (out_y, out_x) = (pixel / out_w, pixel % out_w);
        let rows = taps_inside(out_y, window.stride[0], window.pads[0], kernel_h, in_h);
        let columns = taps_inside(out_x, window.stride[1], window.pads[1], kernel_w, in_w);
        for row in 0..rows.count {
            let in_y = rows.first_input + row;
            let ky = rows.first_tap + row;
            // Taps inside along x are contiguous in both the input row and the patch row.
            let source_start = (in_y * in_w + columns.first_input) * in_c;
            let destination_start = (ky * kernel_w + columns.first_tap) * in_c;
            let run_len = columns.count * in_c;
            patch[destination_start..destination_start + run_len]
                .copy_from_slice(&input[source_start..source_start + run_len]);
        }
    }
    patches
}

/// Depthwise (with channel multiplier): output channel `c` reads input channel `c / multiplier`,
/// i.e. input channel `i` feeds output channels `i * multiplier .. (i + 1) * multiplier`.
fn depthwise_conv(conv: &Conv, input: &[f32], input_value: &Value, output_value: &Value, node_name: &str) -> Vec<f32> {
    let window = &conv.window;
    let ((in_h, in_w, in_c), (out_h, out_w, out_c)) = windowed_shapes(window, input_value, output_value, node_name);
    let [kernel_h, kernel_w] = window.kernel;
    assert_eq!(
        conv.weight.shape(),
        [out_c, kernel_h, kernel_w, 1],
        "node {node_name:?}: depthwise weight shape vs [out_c, kh, kw, 1] of the values and window"
    );
    assert!(in_c > 0 && out_c % in_c == 0, "node {node_name:?}: depthwise out_c {out_c} not a multiple of in_c {in_c}");
    assert_eq!(conv.bias.len(), out_c, "node {node_name:?}: bias length");
    let multiplier = out_c / in_c;

    // Weights rearranged to [kh, kw, out_c] so the innermost loop runs over contiguous channels of
    // both the weights and the accumulator.
    let weight_by_tap = conv.weight.index_axis(Axis(3), 0).permuted_axes([1, 2, 0]);
    let weight_by_tap = weight_by_tap.as_standard_layout();
    let weight_by_tap = weight_by_tap.as_slice().expect("standard layout");
    let bias = conv.bias.to_vec();

    let mut output = vec![0.0f32; out_h * out_w * out_c];
    for (pixel, accumulator) in output.chunks_exact_mut(out_c).enumerate() {
        let (out_y, out_x) = (pixel / out_w, pixel % out_w);
        accumulator.copy_from_slice(&bias);
        let rows = taps_inside(out_y, window.stride[0], window.pads[0], kernel_h, in_h);
        let columns = taps_inside(out_x, window.stride[1], window.pads[1], kernel_w, in_w);
        for row in 0..rows.count {
            for column in 0..columns.count {
                let (ky, kx) = (rows.first_tap + row, columns.first_tap + column);
                let (in_y, in_x) = (rows.first_input + row, columns.first_input + column);
                let input_pixel = &input[(in_y * in_w + in_x) * in_c..][..in_c];
                let tap_weights = &weight_by_tap[(ky * kernel_w + kx) * out_c..][..out_c];
                if multiplier == 1 {
                    for ((acc, &x), &w) in accumulator.iter_mut().zip(input_pixel).zip(tap_weights) {
                        *acc += x * w;
                    }
                } else {
                    for ((group_acc, &x), group_weights) in accumulator
                        .chunks_exact_mut(multiplier)
                        .zip(input_pixel)
                        .zip(tap_weights.chunks_exact(multiplier))
                    {
                        for (acc, &w) in group_acc.iter_mut().zip(group_weights) {
                            *acc += x * w;
                        }
                    }
                }
            }
        }
    }
    apply_clamp(&mut output, conv.clamp);
    output
}

fn fully_connected(fc: &Fc, input: &[f32], node_name: &str) -> Vec<f32> {
    let (outputs, inputs) = fc.weight.dim();
    assert_eq!(
        input.len(),
        inputs,
        "node {node_name:?}: fc weight is [{outputs}, {inputs}], input has {}",
        input.len()
    );
    assert_eq!(fc.bias.len(), outputs, "node {node_name:?}: bias length");
    let input_vector = ArrayView1::from(input);
    let mut output: Vec<f32> = fc.weight.dot(&input_vector).to_vec();
    for (y, &b) in output.iter_mut().zip(fc.bias.iter()) {
        *y += b;
    }
    apply_clamp(&mut output, fc.clamp);
    output
}

#[derive(Clone, Copy)]
enum PoolKind {
    /// Mean of the taps inside the input (padding not counted); 0 if the window is all padding.
    Average,
    /// Max of the taps inside the input; -inf if the window is all padding (ONNX forbids that).
    Max,
}

fn pool(
    kind: PoolKind,
    window: &Window,
    input: &[f32],
    input_value: &Value,
    output_value: &Value,
    node_name: &str,
) -> Vec<f32> {
    let ((in_h, in_w, in_c), (out_h, out_w, out_c)) = windowed_shapes(window, input_value, output_value, node_name);
    assert_eq!(in_c, out_c, "node {node_name:?}: pooling changes channels {in_c} -> {out_c}");
    let [kernel_h, kernel_w] = window.kernel;
    let initial = match kind {
        PoolKind::Average => 0.0,
        PoolKind::Max => f32::NEG_INFINITY,
    };

    let mut output = vec![initial; out_h * out_w * out_c];
    for (pixel, accumulator) in output.chunks_exact_mut(out_c).enumerate() {
        let (out_y, out_x) = (pixel / out_w, pixel % out_w);
        let rows = taps_inside(out_y, window.stride[0], window.pads[0], kernel_h, in_h);
        let columns = taps_inside(out_x, window.stride[1], window.pads[1], kernel_w, in_w);
        for in_y in rows.first_input..rows.first_input + rows.count {
            for in_x in columns.first_input..columns.first_input + columns.count {
                let input_pixel = &input[(in_y * in_w + in_x) * in_c..][..in_c];
                match kind {
                    PoolKind::Average => accumulator.iter_mut().zip(input_pixel).for_each(|(acc, &x)| *acc += x),
                    PoolKind::Max => accumulator.iter_mut().zip(input_pixel).for_each(|(acc, &x)| *acc = acc.max(x)),
                }
            }
        }
        if let PoolKind::Average = kind {
            let taps = rows.count * columns.count;
            if taps > 0 {
                let scale = 1.0 / taps as f32;
                accumulator.iter_mut().for_each(|acc| *acc *= scale);
            }
        }
    }
    output
}

fn add(a: &[f32], b: &[f32], clamp: Clamp, node_name: &str) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "node {node_name:?}: add of {} and {} elements (no broadcasting)", a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| clamp.apply(x + y)).collect()
}

/// Over the last axis, `(x − max) − ln Σ exp(x − max)`: the max subtracted so `exp` cannot
/// overflow, the sum in f64 as softmax's, and no log of a probability, which would be `−inf` where
/// it underflows.
fn log_softmax(input: &[f32], output_value: &Value) -> Vec<f32> {
    let row_len = output_value.shape.last().copied().unwrap_or(1).max(1);
    let mut output = vec![0.0f32; input.len()];
    for (row_in, row_out) in input.chunks(row_len).zip(output.chunks_mut(row_len)) {
        let max = row_in.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row_in.iter().map(|&x| (f64::from(x) - f64::from(max)).exp()).sum();
        let lse = sum.ln();
        for (y, &x) in row_out.iter_mut().zip(row_in) {
            *y = (f64::from(x) - f64::from(max) - lse) as f32;
        }
    }
    output
}

/// Over the last axis, after subtracting the row's max so `exp` cannot overflow. The sum is
/// accumulated in f64 so long rows do not lose the small terms.
fn softmax(input: &[f32], output_value: &Value) -> Vec<f32> {
    let row_len = output_value.shape.last().copied().unwrap_or(1).max(1);
    let mut output = vec![0.0f32; input.len()];
    for (row_in, row_out) in input.chunks(row_len).zip(output.chunks_mut(row_len)) {
        let max = row_in.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f64;
        for (y, &x) in row_out.iter_mut().zip(row_in) {
            *y = (x - max).exp();
            sum += f64::from(*y);
        }
        let inverse_sum = (1.0 / sum) as f32;
        row_out.iter_mut().for_each(|y| *y *= inverse_sum);
    }
    output
}

fn apply_clamp(values: &mut [f32], clamp: Clamp) {
    if !clamp.is_none() {
        values.iter_mut().for_each(|x| *x = clamp.apply(*x));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Conv, Fc, InputLayout, Node};
    use ndarray::{Array1, Array2, Array4};
    use proptest::prelude::*;

    /// Small deterministic generator so the tests need no extra dependency.
    struct SplitMix(u64);

    impl SplitMix {
        fn next_f32(&mut self) -> f32 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            // Uniform in [-1, 1).
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }

        fn vec(&mut self, len: usize) -> Vec<f32> {
            (0..len).map(|_| self.next_f32()).collect()
        }
    }

    fn value(name: &str, shape: &[usize]) -> Value {
        Value { name: name.into(), shape: shape.to_vec() }
    }

    /// Fake quantization rounds exactly the values that have a quantizer, the input included,
    /// to their grids (clamped to the range), and what follows reads the rounded values.
    #[test]
    fn fake_quantized_values_are_on_their_grids() {
        let mut rng = SplitMix(7);
        let fc = Fc {
            weight: Array2::from_shape_vec((3, 5), rng.vec(15)).unwrap(),
            bias: Array1::from(rng.vec(3)),
            clamp: Clamp::NONE,
        };
        let g = single_node_graph(OpKind::Fc(fc.clone()), &[vec![1, 5]], &[1, 3]);
        let x: Vec<f32> = rng.vec(5).iter().map(|v| 3.0 * v).collect();
        assert_eq!(run_all_fake_quantized(&g, &x, &[]), run_all(&g, &x));
        let q_in = ActQuant { scale: 0.25, zero_point: -3, bits: 4 };
        let q_out = ActQuant { scale: 0.1, zero_point: 2, bits: 4 };
        let got = run_all_fake_quantized(&g, &x, &[Some(q_in), Some(q_out)]);
        let on_grid = |v: f32, q: &ActQuant| {
            let k = v / q.scale + q.zero_point as f32;
            (k - k.round()).abs() < 1e-4 && (q.range().0..=q.range().1).contains(&(k.round() as i32))
        };
        assert!(got[0].iter().all(|&v| on_grid(v, &q_in)), "{:?}", got[0]);
        assert!(got[1].iter().all(|&v| on_grid(v, &q_out)), "{:?}", got[1]);
        // The output is the rounding of the layer applied to the rounded input.
        let from_rounded = run_all(&g, &got[0]);
        for (o, f) in got[1].iter().zip(&from_rounded[1]) {
            assert_eq!(*o, q_out.dequantize(q_out.quantize(*f)));
        }
    }

    fn single_node_graph(op: OpKind, input_shapes: &[Vec<usize>], output_shape: &[usize]) -> Graph {
        let mut values: Vec<Value> =
            input_shapes.iter().enumerate().map(|(i, s)| value(&format!("in{i}"), s)).collect();
        values.push(value("out", output_shape));
        let output = values.len() - 1;
        Graph {
            values,
            nodes: vec![Node { name: "n".into(), op, inputs: (0..input_shapes.len()).collect(), output }],
            input: 0,
            output,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
        }
    }

    fn assert_close(actual: &[f32], expected: &[f64], tolerance: f64) {
        assert_eq!(actual.len(), expected.len());
        for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            let error = (f64::from(a) - e).abs();
            assert!(error <= tolerance * (1.0 + e.abs()), "element {i}: {a} vs reference {e}");
        }
    }

    /// Direct seven-loop convolution in f64 with explicit zero padding, covering normal and
    /// depthwise with the documented channel mapping.
    fn naive_conv(
        conv: &Conv,
        input: &[f32],
        (in_h, in_w, in_c): (usize, usize, usize),
    ) -> (Vec<f64>, (usize, usize, usize)) {
        let w = &conv.weight;
        let (out_c, kernel_h, kernel_w, weight_in_c) = w.dim();
        let (out_h, out_w) = conv.window.output_hw(in_h, in_w).unwrap();
        let [stride_y, stride_x] = conv.window.stride;
        let (pad_top, pad_left) = (conv.window.pads[0] as isize, conv.window.pads[1] as isize);
        let at = |y: isize, x: isize, c: usize| -> f64 {
            if y < 0 || x < 0 || y >= in_h as isize || x >= in_w as isize {
                0.0
            } else {
                f64::from(input[(y as usize * in_w + x as usize) * in_c + c])
            }
        };
        let mut out = vec![0.0f64; out_h * out_w * out_c];
        for oy in 0..out_h {
            for ox in 0..out_w {
                for oc in 0..out_c {
                    let mut acc = f64::from(conv.bias[oc]);
                    for ky in 0..kernel_h {
                        for kx in 0..kernel_w {
                            let y = (oy * stride_y) as isize + ky as isize - pad_top;
                            let x = (ox * stride_x) as isize + kx as isize - pad_left;
                            for ic in 0..weight_in_c {
                                let input_channel = if conv.depthwise { oc / (out_c / in_c) } else { ic };
                                acc += at(y, x, input_channel) * f64::from(w[[oc, ky, kx, ic]]);
                            }
                        }
                    }
                    out[(oy * out_w + ox) * out_c + oc] =
                        acc.max(f64::from(conv.clamp.lo)).min(f64::from(conv.clamp.hi));
                }
            }
        }
        (out, (out_h, out_w, out_c))
    }

    fn naive_pool(window: &Window, average: bool, input: &[f32], (in_h, in_w, c): (usize, usize, usize)) -> Vec<f64> {
        let (out_h, out_w) = window.output_hw(in_h, in_w).unwrap();
        let mut out = Vec::new();
        for oy in 0..out_h {
            for ox in 0..out_w {
                for ch in 0..c {
                    let mut taps = Vec::new();
                    for ky in 0..window.kernel[0] {
                        for kx in 0..window.kernel[1] {
                            let y = (oy * window.stride[0] + ky) as isize - window.pads[0] as isize;
                            let x = (ox * window.stride[1] + kx) as isize - window.pads[1] as isize;
                            if y >= 0 && x >= 0 && (y as usize) < in_h && (x as usize) < in_w {
                                taps.push(f64::from(input[(y as usize * in_w + x as usize) * c + ch]));
                            }
                        }
                    }
                    out.push(if average {
                        taps.iter().sum::<f64>() / taps.len() as f64
                    } else {
                        taps.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                    });
                }
            }
        }
        out
    }

    /// A window with output of at least 1x1 and every window touching the input (pads < kernel,
    /// as ONNX requires).
    fn window_strategy() -> impl Strategy<Value = ((usize, usize), Window)> {
        (1usize..=4, 1usize..=4, 1usize..=2, 1usize..=2).prop_flat_map(|(kernel_h, kernel_w, stride_y, stride_x)| {
            (kernel_h..=kernel_h + 5, kernel_w..=kernel_w + 5, 0..kernel_h, 0..kernel_w, 0..kernel_h, 0..kernel_w)
                .prop_map(move |(h, w, top, left, bottom, right)| {
                    let window = Window {
                        kernel: [kernel_h, kernel_w],
                        stride: [stride_y, stride_x],
                        pads: [top, left, bottom, right],
                    };
                    ((h, w), window)
                })
        })
    }

    fn check_conv(
        window: Window,
        (h, w): (usize, usize),
        in_c: usize,
        out_c: usize,
        depthwise: bool,
        clamp: Clamp,
        seed: u64,
    ) {
        let mut rng = SplitMix(seed);
        let weight_in_c = if depthwise { 1 } else { in_c };
        let [kernel_h, kernel_w] = window.kernel;
        let weight_len = out_c * kernel_h * kernel_w * weight_in_c;
        let conv = Conv {
            weight: Array4::from_shape_vec((out_c, kernel_h, kernel_w, weight_in_c), rng.vec(weight_len)).unwrap(),
            bias: Array1::from(rng.vec(out_c)),
            window,
            depthwise,
            clamp,
        };
        let input = rng.vec(h * w * in_c);
        let (expected, (out_h, out_w, _)) = naive_conv(&conv, &input, (h, w, in_c));
        let graph = single_node_graph(OpKind::Conv(conv), &[vec![h, w, in_c]], &[out_h, out_w, out_c]);
        assert_close(&run(&graph, &input), &expected, 1e-5);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn conv_matches_naive(
            ((h, w), window) in window_strategy(),
            in_c in 1usize..=5,
            out_c in 1usize..=6,
            relu in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let clamp = if relu { Clamp::RELU } else { Clamp::NONE };
            check_conv(window, (h, w), in_c, out_c, false, clamp, seed);
        }

        #[test]
        fn depthwise_matches_naive(
            ((h, w), window) in window_strategy(),
            in_c in 1usize..=5,
            multiplier in 1usize..=3,
            relu6 in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let clamp = if relu6 { Clamp::RELU6 } else { Clamp::NONE };
            check_conv(window, (h, w), in_c, in_c * multiplier, true, clamp, seed);
        }

        #[test]
        fn pools_match_naive(((h, w), window) in window_strategy(), c in 1usize..=4, seed in any::<u64>()) {
            let input = SplitMix(seed).vec(h * w * c);
            let (out_h, out_w) = window.output_hw(h, w).unwrap();
            for average in [true, false] {
                let op = if average { OpKind::AvgPool(window) } else { OpKind::MaxPool(window) };
                let graph = single_node_graph(op, &[vec![h, w, c]], &[out_h, out_w, c]);
                assert_close(&run(&graph, &input), &naive_pool(&window, average, &input, (h, w, c)), 1e-6);
            }
        }

        #[test]
        fn fc_matches_naive(
            inputs in 1usize..=40,
            outputs in 1usize..=12,
            relu in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut rng = SplitMix(seed);
            let clamp = if relu { Clamp::RELU } else { Clamp::NONE };
            let fc = Fc {
                weight: Array2::from_shape_vec((outputs, inputs), rng.vec(outputs * inputs)).unwrap(),
                bias: Array1::from(rng.vec(outputs)),
                clamp,
            };
            let input = rng.vec(inputs);
            let expected: Vec<f64> = (0..outputs)
                .map(|o| {
                    let dot: f64 = (0..inputs).map(|i| f64::from(fc.weight[[o, i]]) * f64::from(input[i])).sum();
                    (dot + f64::from(fc.bias[o])).max(f64::from(clamp.lo)).min(f64::from(clamp.hi))
                })
                .collect();
            let graph = single_node_graph(OpKind::Fc(fc), &[vec![inputs]], &[outputs]);
            assert_close(&run(&graph, &input), &expected, 1e-5);
        }

        #[test]
        fn softmax_matches_naive(
            rows in 1usize..=4,
            row_len in 1usize..=12,
            scale in 0.1f32..200.0,
            seed in any::<u64>(),
        ) {
            let input: Vec<f32> = SplitMix(seed).vec(rows * row_len).iter().map(|x| x * scale).collect();
            let mut expected = Vec::new();
            for row in input.chunks(row_len) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let exps: Vec<f64> = row.iter().map(|&x| (f64::from(x) - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                expected.extend(exps.iter().map(|e| e / sum));
            }
            let shape = vec![rows, row_len];
            let graph = single_node_graph(OpKind::Softmax, std::slice::from_ref(&shape), &shape);
            let output = run(&graph, &input);
            assert_close(&output, &expected, 1e-6);
        }
    }

    proptest! {
        #[test]
        fn log_softmax_matches_naive(
            rows in 1usize..=4,
            row_len in 1usize..=12,
            scale in 0.1f32..2000.0,
            seed in any::<u64>(),
        ) {
            let input: Vec<f32> = SplitMix(seed).vec(rows * row_len).iter().map(|x| x * scale).collect();
            let mut expected = Vec::new();
            for row in input.chunks(row_len) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let sum: f64 = row.iter().map(|&x| (f64::from(x) - max).exp()).sum();
                expected.extend(row.iter().map(|&x| f64::from(x) - max - sum.ln()));
            }
            let shape = vec![rows, row_len];
            let graph = single_node_graph(OpKind::LogSoftmax, std::slice::from_ref(&shape), &shape);
            let output = run(&graph, &input);
            prop_assert!(output.iter().all(|y| y.is_finite() && *y <= 0.0));
            assert_close(&output, &expected, 1e-6);
            // The same argmax as softmax's, row by row.
            let probs = run(&single_node_graph(OpKind::Softmax, std::slice::from_ref(&shape), &shape), &input);
            let argmax = |v: &[f32]| v.iter().enumerate().fold(0, |b, (i, x)| if *x > v[b] { i } else { b });
            for (lp, p) in output.chunks(row_len).zip(probs.chunks(row_len)) {
                prop_assert_eq!(argmax(lp), argmax(p));
            }
        }
    }

    #[test]
    fn conv_named_cases() {
        let square = |k: usize, s: usize, p: [usize; 4]| Window { kernel: [k, k], stride: [s, s], pads: p };
        // 1x1 pointwise (the no-im2col path), 1x1 strided, 3x3 same, stride 2 with TF-style
        // asymmetric pads, non-square kernel with asymmetric pads.
        check_conv(square(1, 1, [0; 4]), (5, 7), 6, 4, false, Clamp::NONE, 1);
        check_conv(square(1, 2, [0; 4]), (6, 6), 3, 5, false, Clamp::RELU, 2);
        check_conv(square(3, 1, [1; 4]), (8, 8), 4, 8, false, Clamp::RELU, 3);
        check_conv(square(3, 2, [0, 0, 1, 1]), (8, 8), 3, 16, false, Clamp::NONE, 4);
        check_conv(Window { kernel: [1, 3], stride: [1, 2], pads: [0, 1, 0, 2] }, (4, 9), 2, 3, false, Clamp::NONE, 5);
        check_conv(Window { kernel: [3, 2], stride: [2, 1], pads: [2, 0, 1, 1] }, (7, 5), 3, 2, false, Clamp::RELU6, 6);
        // Depthwise: multiplier 1 and 2, stride 2, asymmetric pads.
        check_conv(square(3, 1, [1; 4]), (6, 6), 4, 4, true, Clamp::RELU6, 7);
        check_conv(square(3, 2, [0, 1, 1, 0]), (7, 8), 3, 6, true, Clamp::NONE, 8);
        check_conv(Window { kernel: [2, 3], stride: [1, 2], pads: [1, 2, 0, 1] }, (5, 6), 2, 4, true, Clamp::NONE, 9);
    }

    #[test]
    fn global_average_pool_to_vector() {
        let input: Vec<f32> = (0..2 * 3 * 2).map(|x| x as f32).collect();
        let window = Window { kernel: [2, 3], stride: [1, 1], pads: [0; 4] };
        let graph = single_node_graph(OpKind::AvgPool(window), &[vec![2, 3, 2]], &[2]);
        // Channel 0 holds 0, 2, ..., 10; channel 1 holds 1, 3, ..., 11.
        assert_eq!(run(&graph, &input), vec![5.0, 6.0]);
    }

    #[test]
    fn add_clamps_and_reshape_copies() {
        let a = vec![1.0, -2.0, 3.0, 7.0];
        let graph = Graph {
            values: vec![value("a", &[2, 1, 2]), value("b", &[2, 1, 2]), value("sum", &[2, 1, 2]), value("flat", &[4])],
            nodes: vec![
                Node { name: "add".into(), op: OpKind::Add(Clamp::RELU6), inputs: vec![0, 0], output: 2 },
                Node { name: "flatten".into(), op: OpKind::Reshape, inputs: vec![2], output: 3 },
            ],
            input: 0,
            output: 3,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
        };
        let all = run_all(&graph, &a);
        assert_eq!(all[0], a);
        assert!(all[1].is_empty(), "value b is never produced");
        assert_eq!(all[2], vec![2.0, 0.0, 6.0, 6.0]);
        assert_eq!(all[3], all[2]);
        assert_eq!(run(&graph, &a), all[3]);
    }

    /// A small residual network: conv → depthwise → conv, add with the skip, global average pool,
    /// reshape, fc, softmax; checked value by value against the naive ops composed by hand, and
    /// `run`/`run_batch` against `run_all`.
    #[test]
    fn residual_network_end_to_end() {
        let mut rng = SplitMix(42);
        let mut conv = |in_c: usize, out_c: usize, k: usize, stride: usize, depthwise: bool, clamp: Clamp| {
            let weight_in_c = if depthwise { 1 } else { in_c };
            let pad = k / 2;
            Conv {
                weight: Array4::from_shape_vec((out_c, k, k, weight_in_c), rng.vec(out_c * k * k * weight_in_c))
                    .unwrap(),
                bias: Array1::from(rng.vec(out_c)),
                window: Window { kernel: [k, k], stride: [stride, stride], pads: [pad; 4] },
                depthwise,
                clamp,
            }
        };
        let stem = conv(3, 8, 3, 2, false, Clamp::RELU);
        let depthwise = conv(8, 8, 3, 1, true, Clamp::RELU6);
        let pointwise = conv(8, 8, 1, 1, false, Clamp::NONE);
        let fc = Fc {
            weight: Array2::from_shape_vec((5, 8), rng.vec(40)).unwrap(),
            bias: Array1::from(rng.vec(5)),
            clamp: Clamp::NONE,
        };
        let values = vec![
            value("image", &[8, 8, 3]),
            value("stem", &[4, 4, 8]),
            value("dw", &[4, 4, 8]),
            value("pw", &[4, 4, 8]),
            value("residual", &[4, 4, 8]),
            value("pooled", &[1, 1, 8]),
            value("flat", &[8]),
            value("logits", &[5]),
            value("probabilities", &[5]),
        ];
        let node =
            |name: &str, op: OpKind, inputs: Vec<usize>, output: usize| Node { name: name.into(), op, inputs, output };
        let pool_window = Window { kernel: [4, 4], stride: [1, 1], pads: [0; 4] };
        let graph = Graph {
            values,
            nodes: vec![
                node("stem", OpKind::Conv(stem.clone()), vec![0], 1),
                node("dw", OpKind::Conv(depthwise.clone()), vec![1], 2),
                node("pw", OpKind::Conv(pointwise.clone()), vec![2], 3),
                node("add", OpKind::Add(Clamp::RELU), vec![3, 1], 4),
                node("pool", OpKind::AvgPool(pool_window), vec![4], 5),
                node("flatten", OpKind::Reshape, vec![5], 6),
                node("fc", OpKind::Fc(fc.clone()), vec![6], 7),
                node("softmax", OpKind::Softmax, vec![7], 8),
            ],
            input: 0,
            output: 8,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
        };
        let image = rng.vec(8 * 8 * 3);
        let all = run_all(&graph, &image);

        // Each stage's reference is computed from the executor's previous value, so errors do not
        // compound and the tolerance can stay tight.
        assert_close(&all[1], &naive_conv(&stem, &image, (8, 8, 3)).0, 1e-5);
        assert_close(&all[2], &naive_conv(&depthwise, &all[1], (4, 4, 8)).0, 1e-5);
        assert_close(&all[3], &naive_conv(&pointwise, &all[2], (4, 4, 8)).0, 1e-5);
        let residual: Vec<f64> = all[3].iter().zip(&all[1]).map(|(&a, &b)| f64::from(a + b).max(0.0)).collect();
        assert_close(&all[4], &residual, 1e-6);
        assert_close(&all[5], &naive_pool(&pool_window, true, &all[4], (4, 4, 8)), 1e-6);
        assert_eq!(all[6], all[5]);
        let logits: Vec<f64> = (0..5)
            .map(|o| {
                (0..8).map(|i| f64::from(fc.weight[[o, i]]) * f64::from(all[6][i])).sum::<f64>() + f64::from(fc.bias[o])
            })
            .collect();
        assert_close(&all[7], &logits, 1e-5);
        let logits_from_executor: Vec<f64> = all[7].iter().map(|&l| f64::from(l)).collect();
        let exp_sum: f64 = logits_from_executor.iter().map(|l| l.exp()).sum();
        let probabilities: Vec<f64> = logits_from_executor.iter().map(|l| l.exp() / exp_sum).collect();
        assert_close(&all[8], &probabilities, 1e-6);
        assert!((all[8].iter().sum::<f32>() - 1.0).abs() < 1e-6);

        assert_eq!(run(&graph, &image), all[8]);
        let images: Vec<Vec<f32>> = (0..6).map(|_| rng.vec(8 * 8 * 3)).collect();
        let batch = run_batch(&graph, &images);
        for (image, output) in images.iter().zip(&batch) {
            assert_eq!(&run(&graph, image), output);
        }
    }

    #[test]
    fn graph_without_nodes_returns_input() {
        let graph = Graph {
            values: vec![value("x", &[3])],
            nodes: vec![],
            input: 0,
            output: 0,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
        };
        assert_eq!(run(&graph, &[1.0, 2.0, 3.0]), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    #[should_panic(expected = "input has 2 elements")]
    fn wrong_input_length_panics() {
        let graph = Graph {
            values: vec![value("x", &[3])],
            nodes: vec![],
            input: 0,
            output: 0,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
        };
        run(&graph, &[1.0, 2.0]);
    }
}
