//! Forward-over-reverse Hessian-vector products of one sample, for many directions at once.
//!
//! A direction perturbs weights and biases (`W + εV`, `b + εḃ`) and/or values (`a + εr`, added
//! after the value's clamp). Its tangents `ȧ = da/dε` are pushed forward through the same linear
//! maps as the primal (clamp masks and max-pool argmaxes fixed), then the loss's Hessian turns
//! the head's tangent into the tangent of the head's adjoint, and the tangent adjoints `δ̇` are
//! pulled back with the product rule: through a convolution, `δ̇ₓ = Wᵀ⋆δ̇ + Vᵀ⋆δ` and
//! `ġ_W = δ̇ ⊛ x + δ ⊛ ẋ`; through a softmax, `δ̇_z = ṡ∘(δ − ⟨s,δ⟩) + s∘(δ̇ − ⟨ṡ,δ⟩ − ⟨s,δ̇⟩)`;
//! through an activation `y = f(x)`, `δ̇ₓ = f′(x)∘δ̇ + f″(x)∘ẋ∘δ`; through a product `a·b`,
//! `δ̇_a = δ̇∘b + δ∘ḃ` and `δ̇_b = δ̇∘a + δ∘ȧ` (summed over the copies of a broadcast `b`), whose
//! second terms are the bilinear map's cross derivative `∂²(a·b)/∂a∂b = 1`. Linear index maps
//! (concat, slice, resize, depth-to-space) move tangents and tangent adjoints as the primal.
//! The result `(ġ_W, ġ_b, δ̇_a)` is `H v` restricted to each block.
//!
//! Directions are sorted by where they start; every value then carries tangents only for the
//! prefix of directions that have started by its position (the others are zero there), and
//! tangent adjoints are only formed for the same prefix (a direction that only wants quadratic
//! forms of its own seeds needs none below its start; a `full` one starts at the input).

use super::backward::{channel_sums, out_channels, weight_grad};
use super::kernels::{
    activation_curvatures, activation_slopes, add_broadcast_rows, add_into, add_reduced_products, add_scaled_rows,
    avg_backward, avg_forward, concat_backward, concat_forward, conv_backward_data, conv_linear, conv_weight_grad, dot,
    dw_backward_data, dw_linear, dw_weight_grad, fc_backward_data, fc_linear, fc_weight_grad, gather_add, im2col,
    mask_rows, max_backward, max_forward, patches_of, scatter_add, softmax_backward, taps_major,
};
use super::kernels::{channel_major, Geom};
use super::loss::SampleLoss;
use super::net::{Net, Op, Tape};
use crate::ir::ValueId;

pub(super) struct WeightSeed {
    pub node: usize,
    /// In the IR's weight order.
    pub w: Vec<f32>,
    /// Empty for no bias perturbation.
    pub b: Vec<f32>,
}

pub(super) struct Direction {
    pub weights: Vec<WeightSeed>,
    pub values: Vec<(ValueId, Vec<f32>)>,
    /// Collect `H v` for every weight layer (weights and biases); otherwise only the quadratic
    /// forms of the direction's own seeds.
    pub full: bool,
}

#[derive(Debug, Default)]
pub(super) struct Response {
    /// With `full`: per node, the weight and bias blocks of `H v` (empty for other nodes).
    pub weights: Vec<Vec<f32>>,
    pub biases: Vec<Vec<f32>>,
    /// Per weight seed `(V, ḃ)`: `⟨V, (Hv)_W⟩ + ⟨ḃ, (Hv)_b⟩` at its node.
    pub weight_forms: Vec<f64>,
    /// Per weight seed, the same form split by output channel `c`:
    /// `⟨V_c, (Hv)_{W,c}⟩ + ḃ_c (Hv)_{b,c}` (they sum to the seed's entry of `weight_forms`).
    pub weight_channel_forms: Vec<Vec<f64>>,
    /// Per value seed `r`: `⟨r, (Hv)_a⟩`.
    pub value_forms: Vec<f64>,
}

/// Linear part of a weight layer with weights `w` (IR order) applied to `rows` input rows.
pub(super) fn layer_linear(op: &Op, w: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
    match op {
        Op::Conv { geom, depthwise: true, .. } => {
            dw_linear(geom, &taps_major(w, geom.out_c, geom.taps()), x, rows, out);
        }
        Op::Conv { geom, .. } => conv_linear(geom, w, x, rows, out),
        Op::Fc { dims, .. } => fc_linear(w, *dims, x, rows, out),
        _ => unreachable!("linear map of a layer without weights"),
    }
}

/// Input adjoint of a weight layer with weights `w` for `rows` output-adjoint rows.
fn layer_backward(op: &Op, w: &[f32], d: &[f32], rows: usize, dx: &mut [f32]) {
    match op {
        Op::Conv { geom, depthwise: true, .. } => {
            dw_backward_data(geom, &taps_major(w, geom.out_c, geom.taps()), d, rows, dx);
        }
        Op::Conv { geom, .. } => conv_backward_data(geom, w, d, rows, dx),
        Op::Fc { dims, .. } => fc_backward_data(w, *dims, d, rows, dx),
        _ => unreachable!("backward of a layer without weights"),
    }
}

/// `grad += d ⊛ x`: the weight gradient of one row added to `grad` (IR order).
fn add_weight_grad(op: &Op, x: &[f32], d: &[f32], grad: &mut [f32]) {
    match op {
        Op::Conv { geom, depthwise: true, .. } => {
            let mut taps = vec![0.0f32; geom.taps() * geom.out_c];
            dw_weight_grad(geom, x, d, &mut taps);
            add_into(grad, &channel_major(&taps, geom.out_c, geom.taps()));
        }
        Op::Conv { geom, .. } => {
            let mut storage = Vec::new();
            let patches = patches_of(geom, x, &mut storage);
            conv_weight_grad(geom, patches, d, 1.0, grad);
        }
        Op::Fc { .. } => fc_weight_grad(x, d, true, grad),
        _ => unreachable!("weight gradient of a layer without weights"),
    }
}

fn im2col_row(geom: &Geom, x: &[f32]) -> Vec<f32> {
    let mut p = vec![0.0f32; geom.out_pixels() * geom.patch_len()];
    im2col(geom, x, &mut p);
    p
}

/// Which part of the Hessian [`hvp_sample`] multiplies by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// The whole Hessian.
    Full,
    /// `H − G`, the Hessian less its Gauss–Newton part `Jᵀ H_out J`: only the curvature of the
    /// network's own nonlinear nodes (smooth activations, products, an inner softmax), carried
    /// back by the linear adjoints. The head's tangent adjoint `H_out J v` is left out, which is
    /// exactly the Gauss–Newton part.
    Residual,
}

/// `H v` pieces for each direction, of the per-sample loss times `scale`.
///
/// # Panics
/// If a direction's seeds do not match the graph's shapes.
pub(super) fn hvp_sample(net: &Net, tape: &Tape, loss: &SampleLoss, scale: f64, dirs: &[Direction]) -> Vec<Response> {
    hvp_sample_part(net, tape, loss, scale, dirs, Part::Full)
}

/// [`hvp_sample`] of the given part of the Hessian.
pub(super) fn hvp_sample_part(
    net: &Net,
    tape: &Tape,
    loss: &SampleLoss,
    scale: f64,
    dirs: &[Direction],
    part: Part,
) -> Vec<Response> {
    let graph = net.graph;
    let value_count = graph.values.len();
    // A direction starts where its first seed is; one that collects `H v` for every layer needs
    // tangent adjoints down to the input (the cross-layer blocks), so it starts at 0.
    let start_of = |d: &Direction| -> usize {
        if d.full {
            return 0;
        }
        let w = d.weights.iter().map(|s| s.node + 1);
        let v = d.values.iter().map(|(v, _)| net.position(*v));
        w.chain(v).min().unwrap_or(usize::MAX)
    };
    let mut order: Vec<usize> = (0..dirs.len()).collect();
    order.sort_by_key(|&i| start_of(&dirs[i]));
    let starts: Vec<usize> = order.iter().map(|&i| start_of(&dirs[i])).collect();
    let live_at = |position: usize| starts.partition_point(|&s| s <= position);
    let rows_of: Vec<usize> = (0..value_count).map(|v| live_at(net.position(v))).collect();
    let dir = |k: usize| &dirs[order[k]];

    // Seeds by node and by value: (sorted direction index, seed index).
    let mut node_seeds: Vec<Vec<(usize, usize)>> = vec![Vec::new(); graph.nodes.len()];
    let mut value_seeds: Vec<Vec<(usize, usize)>> = vec![Vec::new(); value_count];
    for k in 0..order.len() {
        for (si, s) in dir(k).weights.iter().enumerate() {
            assert!(s.node < net.end && graph.nodes[s.node].op.has_weights(), "weight seed on node {}", s.node);
            assert_eq!(s.w.len(), graph.nodes[s.node].op.weight_count(), "weight seed size at node {}", s.node);
            node_seeds[s.node].push((k, si));
        }
        for (si, (v, r)) in dir(k).values.iter().enumerate() {
            assert_eq!(r.len(), net.len(*v), "value seed size at value {v}");
            value_seeds[*v].push((k, si));
        }
    }
    let mut responses: Vec<Response> = (0..order.len())
        .map(|k| Response {
            weight_forms: vec![0.0; dir(k).weights.len()],
            weight_channel_forms: vec![Vec::new(); dir(k).weights.len()],
            value_forms: vec![0.0; dir(k).values.len()],
            ..Response::default()
        })
        .collect();
    for (k, response) in responses.iter_mut().enumerate() {
        if dir(k).full {
            response.weights = vec![Vec::new(); graph.nodes.len()];
            response.biases = vec![Vec::new(); graph.nodes.len()];
        }
    }

    // Forward tangents.
    let mut tangents: Vec<Vec<f32>> = vec![Vec::new(); value_count];
    let add_value_seeds = |v: ValueId, t: &mut [f32]| {
        let len = net.len(v);
        for &(k, si) in &value_seeds[v] {
            add_into(&mut t[k * len..(k + 1) * len], &dir(k).values[si].1);
        }
    };
    {
        let input = graph.input;
        let mut t = vec![0.0f32; rows_of[input] * net.len(input)];
        add_value_seeds(input, &mut t);
        tangents[input] = t;
    }
    for (n, node) in graph.nodes[..net.end].iter().enumerate() {
        let o = node.output;
        let (o_len, o_rows) = (net.len(o), rows_of[o]);
        let mut z = vec![0.0f32; o_rows * o_len];
        let x_id = node.inputs[0];
        let (x, x_rows, x_len) = (&tape.values[x_id], rows_of[x_id], net.len(x_id));
        let op = &net.ops[n];
        match op {
            Op::Conv { w, .. } | Op::Fc { w, .. } => {
                layer_linear(op, w, &tangents[x_id], x_rows, &mut z);
                for &(k, si) in &node_seeds[n] {
                    let seed = &dir(k).weights[si];
                    let row = &mut z[k * o_len..(k + 1) * o_len];
                    layer_linear(op, &seed.w, x, 1, row);
                    if !seed.b.is_empty() {
                        for pixel in row.chunks_exact_mut(seed.b.len()) {
                            add_into(pixel, &seed.b);
                        }
                    }
                }
            }
            Op::AvgPool(geom) => {
                for (x_row, z_row) in tangents[x_id].chunks_exact(x_len).zip(z.chunks_exact_mut(o_len)) {
                    avg_forward(geom, x_row, z_row);
                }
            }
            Op::MaxPool(_) => {
                for (x_row, z_row) in tangents[x_id].chunks_exact(x_len).zip(z.chunks_exact_mut(o_len)) {
                    max_forward(&tape.argmax[n], x_row, z_row);
                }
            }
            Op::Add(_) => {
                for &i in &node.inputs {
                    add_into(&mut z, &tangents[i]);
                }
            }
            Op::Reshape => add_into(&mut z, &tangents[x_id]),
            Op::Softmax { row_len } => {
                let s = &tape.values[o];
                for (x_row, z_row) in tangents[x_id].chunks_exact(x_len).zip(z.chunks_exact_mut(o_len)) {
                    softmax_backward(s, x_row, *row_len, z_row);
                }
            }
            Op::Activation { f, channels } => {
                add_scaled_rows(&tangents[x_id], &activation_slopes(f, *channels, x), o_len, &mut z);
            }
            Op::Mul(_) => {
                // ȧ∘b + a∘ḃ.
                let (a_id, b_id) = (node.inputs[0], node.inputs[1]);
                let (a, b) = (&tape.values[a_id], &tape.values[b_id]);
                add_scaled_rows(&tangents[a_id], b, o_len, &mut z);
                add_broadcast_rows(&tangents[b_id], b.len(), a, &mut z);
            }
            Op::Concat { pixels, channels } => {
                let out_c = channels.iter().sum();
                let mut offset = 0;
                for (&i, &c) in node.inputs.iter().zip(channels) {
                    concat_forward(&tangents[i], c, offset, out_c, *pixels, &mut z);
                    offset += c;
                }
            }
            Op::Gather { source } => gather_add(source, &tangents[x_id], x_len, &mut z),
        }
        mask_rows(op.clamp(), &tape.values[o], &mut z);
        add_value_seeds(o, &mut z);
        tangents[o] = z;
    }

    // The loss: primal adjoint and its tangents at the head.
    let head = net.head;
    let head_len = net.len(head);
    let mut adjoints: Vec<Option<Vec<f32>>> = vec![None; value_count];
    let mut tangent_adjoints: Vec<Option<Vec<f32>>> = vec![None; value_count];
    adjoints[head] = Some(loss.grad.iter().map(|&g| (g * scale) as f32).collect());
    tangent_adjoints[head] = Some(match part {
        Part::Full => tangents[head].chunks_exact(head_len.max(1)).flat_map(|t| loss.hess_vec(t, scale)).collect(),
        Part::Residual => vec![0.0; tangents[head].len()],
    });

    let finish_value = |v: ValueId, td: &[f32], responses: &mut [Response]| {
        let len = net.len(v);
        for &(k, si) in &value_seeds[v] {
            responses[k].value_forms[si] = dot(&dir(k).values[si].1, &td[k * len..(k + 1) * len]);
        }
    };
    for n in (0..net.end).rev() {
        let node = &graph.nodes[n];
        let o = node.output;
        let (o_len, o_rows) = (net.len(o), rows_of[o]);
        let td_taken = tangent_adjoints[o].take().unwrap_or_else(|| vec![0.0; o_rows * o_len]);
        finish_value(o, &td_taken, &mut responses);
        let Some(mut d) = adjoints[o].take() else { continue };
        let mut td = td_taken;
        let op = &net.ops[n];
        mask_rows(op.clamp(), &tape.values[o], &mut d);
        mask_rows(op.clamp(), &tape.values[o], &mut td);
        let x_id = node.inputs[0];
        let (x, x_rows, x_len) = (&tape.values[x_id], rows_of[x_id], net.len(x_id));
        let primal_wanted = |v: ValueId| v != graph.input;
        match op {
            Op::Conv { w, .. } | Op::Fc { w, .. } => {
                if primal_wanted(x_id) {
                    layer_backward(op, w, &d, 1, adjoints[x_id].get_or_insert_with(|| vec![0.0; x_len]));
                }
                if x_rows > 0 {
                    let tdx = tangent_adjoints[x_id].get_or_insert_with(|| vec![0.0; x_rows * x_len]);
                    layer_backward(op, w, &td, x_rows, tdx);
                    for &(k, si) in node_seeds[n].iter().filter(|&&(k, _)| k < x_rows) {
                        layer_backward(op, &dir(k).weights[si].w, &d, 1, &mut tdx[k * x_len..(k + 1) * x_len]);
                    }
                }
                // Tangent weight gradients, for the directions that want them here.
                let mut patches: Option<Vec<f32>> = None;
                for k in 0..o_rows {
                    let own: Vec<usize> = node_seeds[n].iter().filter(|&&(kk, _)| kk == k).map(|&(_, si)| si).collect();
                    if !dir(k).full && own.is_empty() {
                        continue;
                    }
                    let td_row = &td[k * o_len..(k + 1) * o_len];
                    let mut grad = match op {
                        Op::Conv { geom, depthwise: false, .. } if !geom.is_pointwise() => {
                            let p = patches.get_or_insert_with(|| im2col_row(geom, x));
                            let mut g = vec![0.0f32; geom.out_c * geom.patch_len()];
                            conv_weight_grad(geom, p, td_row, 0.0, &mut g);
                            g
                        }
                        _ => weight_grad(op, x, td_row),
                    };
                    if k < x_rows {
                        add_weight_grad(op, &tangents[x_id][k * x_len..(k + 1) * x_len], &d, &mut grad);
                    }
                    let bias_grad = channel_sums(td_row, out_channels(op));
                    for si in own {
                        let seed = &dir(k).weights[si];
                        // Weights are `[out_c, …]` in the IR's order: channel c is a contiguous
                        // block of `grad` and of the seed.
                        let per = grad.len() / bias_grad.len().max(1);
                        let forms: Vec<f64> = (0..bias_grad.len())
                            .map(|c| {
                                let w = dot(&seed.w[c * per..(c + 1) * per], &grad[c * per..(c + 1) * per]);
                                w + seed.b.get(c).map_or(0.0, |&b| f64::from(b) * f64::from(bias_grad[c]))
                            })
                            .collect();
                        responses[k].weight_forms[si] = forms.iter().sum();
                        responses[k].weight_channel_forms[si] = forms;
                    }
                    if dir(k).full {
                        responses[k].weights[n] = grad;
                        responses[k].biases[n] = bias_grad;
                    }
                }
            }
            Op::AvgPool(geom) => {
                if primal_wanted(x_id) {
                    avg_backward(geom, &d, adjoints[x_id].get_or_insert_with(|| vec![0.0; x_len]));
                }
                if x_rows > 0 {
                    let tdx = tangent_adjoints[x_id].get_or_insert_with(|| vec![0.0; x_rows * x_len]);
                    for (d_row, dx_row) in td.chunks_exact(o_len).zip(tdx.chunks_exact_mut(x_len)) {
                        avg_backward(geom, d_row, dx_row);
                    }
                }
            }
            Op::MaxPool(_) => {
                let argmax = &tape.argmax[n];
                if primal_wanted(x_id) {
                    max_backward(argmax, &d, adjoints[x_id].get_or_insert_with(|| vec![0.0; x_len]));
                }
                if x_rows > 0 {
                    let tdx = tangent_adjoints[x_id].get_or_insert_with(|| vec![0.0; x_rows * x_len]);
                    for (d_row, dx_row) in td.chunks_exact(o_len).zip(tdx.chunks_exact_mut(x_len)) {
                        max_backward(argmax, d_row, dx_row);
                    }
                }
            }
            Op::Add(_) | Op::Reshape => {
                for &i in &node.inputs {
                    if primal_wanted(i) {
                        add_into(adjoints[i].get_or_insert_with(|| vec![0.0; o_len]), &d);
                    }
                    let i_rows = rows_of[i];
                    if i_rows > 0 {
                        let tdx = tangent_adjoints[i].get_or_insert_with(|| vec![0.0; i_rows * o_len]);
                        add_into(tdx, &td[..i_rows * o_len]);
                    }
                }
            }
            Op::Softmax { row_len } => {
                let s = &tape.values[o];
                if primal_wanted(x_id) {
                    softmax_backward(s, &d, *row_len, adjoints[x_id].get_or_insert_with(|| vec![0.0; x_len]));
                }
                if x_rows > 0 {
                    let tdx = tangent_adjoints[x_id].get_or_insert_with(|| vec![0.0; x_rows * x_len]);
                    for k in 0..x_rows {
                        // ṡ from the input's tangent (the output's may include a value seed).
                        let mut s_dot = vec![0.0f32; o_len];
                        softmax_backward(s, &tangents[x_id][k * x_len..(k + 1) * x_len], *row_len, &mut s_dot);
                        let td_row = &td[k * o_len..(k + 1) * o_len];
                        let out = &mut tdx[k * x_len..(k + 1) * x_len];
                        softmax_tangent_backward(s, &s_dot, &d, td_row, *row_len, out);
                    }
                }
            }
            Op::Activation { f, channels } => {
                let slopes = activation_slopes(f, *channels, x);
                if primal_wanted(x_id) {
                    add_scaled_rows(&d, &slopes, x_len, adjoints[x_id].get_or_insert_with(|| vec![0.0; x_len]));
                }
                if x_rows > 0 {
                    let tdx = tangent_adjoints[x_id].get_or_insert_with(|| vec![0.0; x_rows * x_len]);
                    add_scaled_rows(&td, &slopes, x_len, tdx);
                    // The activation's own curvature, f″(x)∘ẋ∘δ (zero on linear pieces).
                    if !f.is_piecewise_linear() {
                        let curvatures = activation_curvatures(f, *channels, x);
                        let weighted: Vec<f32> = curvatures.iter().zip(&d).map(|(&c, &dv)| c * dv).collect();
                        add_scaled_rows(&tangents[x_id], &weighted, x_len, tdx);
                    }
                }
            }
            Op::Mul(_) => {
                let (a_id, b_id) = (node.inputs[0], node.inputs[1]);
                let (a, b) = (&tape.values[a_id], &tape.values[b_id]);
                if primal_wanted(a_id) {
                    add_scaled_rows(&d, b, o_len, adjoints[a_id].get_or_insert_with(|| vec![0.0; o_len]));
                }
                if primal_wanted(b_id) {
                    add_reduced_products(&d, a, b.len(), adjoints[b_id].get_or_insert_with(|| vec![0.0; b.len()]));
                }
                // The product rule; the second terms are the cross derivative of the bilinear map,
                // which the Gauss–Newton matrix leaves out.
                let (a_rows, b_rows) = (rows_of[a_id], rows_of[b_id]);
                if a_rows > 0 {
                    let tda = tangent_adjoints[a_id].get_or_insert_with(|| vec![0.0; a_rows * o_len]);
                    add_scaled_rows(&td, b, o_len, tda);
                    add_broadcast_rows(&tangents[b_id], b.len(), &d, tda);
                }
                if b_rows > 0 {
                    let tdb = tangent_adjoints[b_id].get_or_insert_with(|| vec![0.0; b_rows * b.len()]);
                    add_reduced_products(&td, a, b.len(), tdb);
                    add_reduced_products(&tangents[a_id], &d, b.len(), tdb);
                }
            }
            Op::Concat { pixels, channels } => {
                let out_c = channels.iter().sum();
                let mut offset = 0;
                for (&i, &c) in node.inputs.iter().zip(channels) {
                    let (i_len, i_rows) = (net.len(i), rows_of[i]);
                    if primal_wanted(i) {
                        let dx = adjoints[i].get_or_insert_with(|| vec![0.0; i_len]);
                        concat_backward(&d, c, offset, out_c, *pixels, dx);
                    }
                    if i_rows > 0 {
                        let tdx = tangent_adjoints[i].get_or_insert_with(|| vec![0.0; i_rows * i_len]);
                        concat_backward(&td, c, offset, out_c, *pixels, tdx);
                    }
                    offset += c;
                }
            }
            Op::Gather { source } => {
                if primal_wanted(x_id) {
                    scatter_add(source, &d, x_len, adjoints[x_id].get_or_insert_with(|| vec![0.0; x_len]));
                }
                if x_rows > 0 {
                    let tdx = tangent_adjoints[x_id].get_or_insert_with(|| vec![0.0; x_rows * x_len]);
                    scatter_add(source, &td, x_len, tdx);
                }
            }
        }
    }
    let input = graph.input;
    let td = tangent_adjoints[input].take().unwrap_or_else(|| vec![0.0; rows_of[input] * net.len(input)]);
    finish_value(input, &td, &mut responses);

    // Back to the caller's order.
    let mut out: Vec<Option<Response>> = (0..dirs.len()).map(|_| None).collect();
    for (k, r) in responses.into_iter().enumerate() {
        out[order[k]] = Some(r);
    }
    out.into_iter().map(|r| r.expect("every direction answered")).collect()
}

/// `out += ṡ∘(d − ⟨s,d⟩) + s∘(ḋ − ⟨ṡ,d⟩ − ⟨s,ḋ⟩)` per softmax row.
fn softmax_tangent_backward(s: &[f32], s_dot: &[f32], d: &[f32], d_dot: &[f32], row_len: usize, out: &mut [f32]) {
    let rows = s.chunks(row_len).zip(s_dot.chunks(row_len)).zip(d.chunks(row_len)).zip(d_dot.chunks(row_len));
    for ((((s, sd), d), dd), o) in rows.zip(out.chunks_mut(row_len)) {
        let s_d = dot(s, d);
        let sd_d = dot(sd, d);
        let s_dd = dot(s, dd);
        for i in 0..s.len() {
            let (sv, sdv, dv, ddv) = (f64::from(s[i]), f64::from(sd[i]), f64::from(d[i]), f64::from(dd[i]));
            o[i] += (sdv * (dv - s_d) + sv * (ddv - sd_d - s_dd)) as f32;
        }
    }
}
