//! Reverse mode over `rows` adjoints at once: seeds at the head value, propagated back through
//! every op to the input (a value read by several nodes, or twice by one, sums their adjoints).
//! What is done with the adjoints is up to a [`Sink`]: the gradient (one row), or squared norms
//! per row (the Gauss–Newton traces).

use super::kernels::{
    activation_slopes, add_into, add_reduced_products, add_scaled_rows, avg_backward, channel_major, concat_backward,
    conv_backward_data, conv_weight_grad, conv_weight_sqnorms, dw_backward_data, dw_weight_grad, fc_backward_data,
    fc_weight_grad, mask_rows, max_backward, patches_of, scatter_add, softmax_backward, sqnorm,
};
use super::net::{Net, Op, Tape};
use crate::ir::ValueId;

pub(super) trait Sink {
    /// The complete adjoint of a value the loss depends on (before its producer's clamp).
    fn value(&mut self, net: &Net, value: ValueId, adjoint: &[f32], rows: usize);
    /// A weight layer's output adjoint after its clamp, with the layer's input.
    fn layer(&mut self, net: &Net, node: usize, input: &[f32], delta: &[f32], rows: usize);
    /// The derivative, summed over the rows, of the adjoint rows' objectives in the scale of the
    /// quantizer that rounds `value` ([`Net::act`]).
    fn quantizer_scale(&mut self, _value: ValueId, _derivative: f64) {}
}

/// Two sinks fed by the same backward pass.
impl<A: Sink, B: Sink> Sink for (A, B) {
    fn value(&mut self, net: &Net, value: ValueId, adjoint: &[f32], rows: usize) {
        self.0.value(net, value, adjoint, rows);
        self.1.value(net, value, adjoint, rows);
    }

    fn layer(&mut self, net: &Net, node: usize, input: &[f32], delta: &[f32], rows: usize) {
        self.0.layer(net, node, input, delta, rows);
        self.1.layer(net, node, input, delta, rows);
    }

    fn quantizer_scale(&mut self, value: ValueId, derivative: f64) {
        self.0.quantizer_scale(value, derivative);
        self.1.quantizer_scale(value, derivative);
    }
}

/// The adjoint buffer of `value`, created as zeros.
fn slot(adjoints: &mut [Option<Vec<f32>>], value: ValueId, len: usize) -> &mut Vec<f32> {
    adjoints[value].get_or_insert_with(|| vec![0.0; len])
}

/// Propagates `seeds` (`rows` rows at the head) back through the graph. The input's adjoint is
/// computed only with `want_input`.
pub(super) fn backward(net: &Net, tape: &Tape, seeds: Vec<f32>, rows: usize, want_input: bool, sink: &mut impl Sink) {
    let graph = net.graph;
    let mut adjoints: Vec<Option<Vec<f32>>> = vec![None; graph.values.len()];
    adjoints[net.head] = Some(seeds);
    let wanted = |v: ValueId| v != graph.input || want_input;
    for n in (0..net.end).rev() {
        let node = &graph.nodes[n];
        let Some(mut d) = adjoints[node.output].take() else { continue };
        sink.value(net, node.output, &d, rows);
        let op = &net.ops[n];
        // A rounded value: the adjoint passes the rounding inside the quantizer's clip and moves
        // its scale (LSQ); the producer's clamp is then judged on the value before the rounding
        // (a ReLU output of a third of a step rounds to 0, yet the ReLU passes its derivative).
        let output = match (net.quantizer(node.output), tape.unrounded.get(node.output)) {
            (Some(q), Some(unrounded)) if !unrounded.is_empty() => {
                let (pass, scale): (Vec<f32>, Vec<f32>) = unrounded.iter().map(|&x| q.derivatives(x)).unzip();
                let mut derivative = 0.0f64;
                for row in d.chunks_exact_mut(unrounded.len()) {
                    for ((a, &p), &ds) in row.iter_mut().zip(&pass).zip(&scale) {
                        derivative += f64::from(*a) * f64::from(ds);
                        *a *= p;
                    }
                }
                sink.quantizer_scale(node.output, derivative);
                unrounded
            }
            _ => &tape.values[node.output],
        };
        mask_rows(op.clamp(), output, &mut d);
        let x_id = node.inputs[0];
        let x_len = net.len(x_id);
        match op {
            Op::Conv { geom, w, w_taps, depthwise, .. } => {
                sink.layer(net, n, &tape.values[x_id], &d, rows);
                if wanted(x_id) {
                    let dx = slot(&mut adjoints, x_id, rows * x_len);
                    if *depthwise {
                        dw_backward_data(geom, w_taps, &d, rows, dx);
                    } else {
                        conv_backward_data(geom, w, &d, rows, dx);
                    }
                }
            }
            Op::Fc { dims, w, .. } => {
                sink.layer(net, n, &tape.values[x_id], &d, rows);
                if wanted(x_id) {
                    fc_backward_data(w, *dims, &d, rows, slot(&mut adjoints, x_id, rows * x_len));
                }
            }
            Op::AvgPool(geom) => {
                if wanted(x_id) {
                    let dx = slot(&mut adjoints, x_id, rows * x_len);
                    for (d_row, dx_row) in d.chunks_exact(geom.out_len()).zip(dx.chunks_exact_mut(x_len)) {
                        avg_backward(geom, d_row, dx_row);
                    }
                }
            }
            Op::MaxPool(geom) => {
                if wanted(x_id) {
                    let dx = slot(&mut adjoints, x_id, rows * x_len);
                    for (d_row, dx_row) in d.chunks_exact(geom.out_len()).zip(dx.chunks_exact_mut(x_len)) {
                        max_backward(&tape.argmax[n], d_row, dx_row);
                    }
                }
            }
            Op::Add(_) => {
                for &i in &node.inputs {
                    if wanted(i) {
                        add_into(slot(&mut adjoints, i, d.len()), &d);
                    }
                }
            }
            Op::Reshape => {
                if wanted(x_id) {
                    match &mut adjoints[x_id] {
                        Some(dx) => add_into(dx, &d),
                        empty => *empty = Some(d),
                    }
                }
            }
            Op::Softmax { row_len } => {
                if wanted(x_id) {
                    let s = &tape.values[node.output];
                    let dx = slot(&mut adjoints, x_id, rows * x_len);
                    for (d_row, dx_row) in d.chunks_exact(s.len()).zip(dx.chunks_exact_mut(x_len)) {
                        softmax_backward(s, d_row, *row_len, dx_row);
                    }
                }
            }
            Op::Activation { f, channels } => {
                if wanted(x_id) {
                    let slopes = activation_slopes(f, *channels, &tape.values[x_id]);
                    add_scaled_rows(&d, &slopes, x_len, slot(&mut adjoints, x_id, rows * x_len));
                }
            }
            Op::Mul(_) => {
                let (a_id, b_id) = (node.inputs[0], node.inputs[1]);
                let (a, b) = (&tape.values[a_id], &tape.values[b_id]);
                if wanted(a_id) {
                    add_scaled_rows(&d, b, a.len(), slot(&mut adjoints, a_id, rows * a.len()));
                }
                if wanted(b_id) {
                    add_reduced_products(&d, a, b.len(), slot(&mut adjoints, b_id, rows * b.len()));
                }
            }
            Op::Concat { pixels, channels } => {
                let out_c = channels.iter().sum();
                let mut offset = 0;
                for (&i, &c) in node.inputs.iter().zip(channels) {
                    if wanted(i) {
                        concat_backward(&d, c, offset, out_c, *pixels, slot(&mut adjoints, i, rows * net.len(i)));
                    }
                    offset += c;
                }
            }
            Op::Gather { source } => {
                if wanted(x_id) {
                    scatter_add(source, &d, x_len, slot(&mut adjoints, x_id, rows * x_len));
                }
            }
        }
    }
    if want_input {
        if let Some(d) = &adjoints[graph.input] {
            sink.value(net, graph.input, d, rows);
        }
    }
}

/// The gradient of one adjoint row: weights, biases, and every value's adjoint.
pub(super) struct GradientSink {
    pub weights: Vec<Vec<f32>>,
    pub biases: Vec<Vec<f32>>,
    pub values: Vec<Vec<f32>>,
    /// Per value, the derivative in the scale of its quantizer (0 for values without one).
    pub quantizer_scales: Vec<f64>,
}

impl GradientSink {
    pub fn new(nodes: usize, values: usize) -> GradientSink {
        GradientSink {
            weights: vec![Vec::new(); nodes],
            biases: vec![Vec::new(); nodes],
            values: vec![Vec::new(); values],
            quantizer_scales: vec![0.0; values],
        }
    }
}

/// Sum over pixels of `[pixels, channels]`.
pub(super) fn channel_sums(d: &[f32], channels: usize) -> Vec<f32> {
    let mut sums = vec![0.0f32; channels];
    for pixel in d.chunks_exact(channels) {
        add_into(&mut sums, pixel);
    }
    sums
}

/// Weight gradient `[out_c, …]` of one output-adjoint row `d` of a weight layer, given its input
/// `x` (and, for normal convolutions, its im2col matrix, computed on demand).
pub(super) fn weight_grad(op: &Op, x: &[f32], d: &[f32]) -> Vec<f32> {
    match op {
        Op::Conv { geom, depthwise: true, .. } => {
            let mut taps = vec![0.0f32; geom.taps() * geom.out_c];
            dw_weight_grad(geom, x, d, &mut taps);
            channel_major(&taps, geom.out_c, geom.taps())
        }
        Op::Conv { geom, .. } => {
            let mut storage = Vec::new();
            let patches = patches_of(geom, x, &mut storage);
            let mut grad = vec![0.0f32; geom.out_c * geom.patch_len()];
            conv_weight_grad(geom, patches, d, 0.0, &mut grad);
            grad
        }
        Op::Fc { dims, .. } => {
            let mut grad = vec![0.0f32; dims.0 * dims.1];
            fc_weight_grad(x, d, false, &mut grad);
            grad
        }
        _ => unreachable!("weight gradient of a layer without weights"),
    }
}

/// Number of output channels of a weight layer (the bias length).
pub(super) fn out_channels(op: &Op) -> usize {
    match op {
        Op::Conv { geom, .. } => geom.out_c,
        Op::Fc { dims, .. } => dims.0,
        _ => 0,
    }
}

impl Sink for GradientSink {
    fn value(&mut self, _net: &Net, value: ValueId, adjoint: &[f32], _rows: usize) {
        self.values[value] = adjoint.to_vec();
    }

    fn quantizer_scale(&mut self, value: ValueId, derivative: f64) {
        self.quantizer_scales[value] += derivative;
    }

    fn layer(&mut self, net: &Net, node: usize, input: &[f32], delta: &[f32], _rows: usize) {
        let op = &net.ops[node];
        self.weights[node] = weight_grad(op, input, delta);
        self.biases[node] = channel_sums(delta, out_channels(op));
    }
}

/// Per adjoint row, the squared norms of each weight layer's weight gradient per output channel
/// (row-major `[rows, out_c]`, so a row's norm is the sum of its `out_c` entries), and the squared
/// norm of each value's adjoint.
pub(super) struct NormSink {
    pub weights: Vec<Vec<f64>>,
    pub values: Vec<Vec<f64>>,
}

impl NormSink {
    pub fn new(nodes: usize, values: usize) -> NormSink {
        NormSink { weights: vec![Vec::new(); nodes], values: vec![Vec::new(); values] }
    }
}

impl Sink for NormSink {
    fn value(&mut self, net: &Net, value: ValueId, adjoint: &[f32], _rows: usize) {
        self.values[value] = adjoint.chunks_exact(net.len(value).max(1)).map(sqnorm).collect();
    }

    fn layer(&mut self, net: &Net, node: usize, input: &[f32], delta: &[f32], rows: usize) {
        let op = &net.ops[node];
        self.weights[node] = match op {
            Op::Conv { geom, depthwise: false, .. } => {
                let mut storage = Vec::new();
                let patches = patches_of(geom, input, &mut storage);
                conv_weight_sqnorms(geom, patches, delta, rows)
            }
            Op::Conv { geom, .. } => {
                // Depthwise: the gradient in taps-major order `[taps, out_c]`; channel c's norm
                // is over its column.
                let mut grad = vec![0.0f32; geom.taps() * geom.out_c];
                let mut norms = Vec::with_capacity(rows * geom.out_c);
                for d in delta.chunks_exact(geom.out_len()) {
                    grad.fill(0.0);
                    dw_weight_grad(geom, input, d, &mut grad);
                    let mut row = vec![0.0f64; geom.out_c];
                    for tap in grad.chunks_exact(geom.out_c) {
                        for (n, &g) in row.iter_mut().zip(tap) {
                            *n += f64::from(g) * f64::from(g);
                        }
                    }
                    norms.extend(row);
                }
                norms
            }
            Op::Fc { .. } => {
                // The gradient of output o is `d_o · x`: its squared norm is `d_o² ‖x‖²`.
                let x_norm = sqnorm(input);
                delta.iter().map(|&d| f64::from(d) * f64::from(d) * x_norm).collect()
            }
            _ => unreachable!("weight norms of a layer without weights"),
        };
    }
}
