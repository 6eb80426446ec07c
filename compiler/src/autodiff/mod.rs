//! Exact derivatives of a calibration loss with respect to the weights and the activations of a
//! graph, for HAWQ-V2's per-layer Hessian traces. No Rust library does Hessian-vector products,
//! so the reverse mode and the forward-over-reverse mode are written here, on the IR directly.
//!
//! # The loss
//!
//! [`Loss`] is chosen by the caller; the batch loss `L` is the **mean over samples** of the
//! per-sample loss `ℓ`:
//! - [`Loss::CrossEntropy`]: `ℓ = logsumexp(z) − z_y` on the logits `z` (if the graph ends in a
//!   Softmax, that node is left out and its input are the logits); labels are class indices.
//! - [`Loss::Mse`]: `ℓ = mean over the m outputs of (out − y)²`, `y` the sample's scalar target
//!   (1-output regression; with several outputs every output is compared to `y`).
//! - [`Loss::Reconstruction`]: `ℓ = mean over outputs of (out − input)²` (autoencoders; the
//!   input, in the IR's NHWC order, is a constant target: perturbing the input activation changes
//!   the network's output, not the target). Labels are ignored (may be empty).
//!
//! # Conventions
//!
//! - The forward pass is [`crate::float_exec::run_all`] (f32); derivatives are computed in f32
//!   with f64 accumulation of losses, norms and sums over samples.
//! - Clamps (ReLU, ReLU6, clip, fused into Conv/Fc/Add) pass the derivative where
//!   `lo < pre-activation < hi`, strictly: at a bound (output equal to `lo` or `hi`) the
//!   derivative is 0. Max pool routes the derivative to the argmax tap, ties to the first tap in
//!   row-major window order. Average pool divides by the count of taps inside the input.
//! - Activations ([`crate::ir::Activation`]) take `f′` and `f″` of their input; at a kink the
//!   derivative from the right (`Activation::derivative`).
//! - Second derivatives treat clamp masks, the linear pieces of piecewise-linear activations and
//!   max-pool argmaxes as constant (their derivative is zero almost everywhere), and include the
//!   curvature of softmaxes and smooth activations and the cross terms of products
//!   (`∂²(a·b)/∂a∂b = 1`), so the Hessian is exact.
//! - A network is *piecewise linear* when the loss reads through no softmax, no activation that is
//!   not piecewise linear, and no product of two values that both depend on the input. For a
//!   fixed pattern it is then linear in any one layer's weights or any one value, so each
//!   diagonal block of the Hessian equals its Gauss–Newton block; [`Method::Auto`] uses the exact
//!   Gauss–Newton estimator only there.
//! - A value read by several nodes (or twice by one) gets the sum of their adjoints; linear index
//!   maps (concat, slice, nearest resize, depth-to-space) have scatter-adds as adjoints.
//! - Weight vectors ([`WeightVector`]) are per node, in the IR's row-major weight order
//!   (`[out_c, kh, kw, in_c]`, depthwise `[out_c, kh, kw, 1]`, fc `[out, in]`), with biases.
//!   [`hvp`] covers weights **and** biases; the traces ([`traces`]) cover weights only (HAWQ's
//!   sensitivity).
//! - Activation gradients are **per sample** of the batch loss: `∂L/∂a⁽ˢ⁾ = (1/N) ∂ℓₛ/∂a⁽ˢ⁾`.
//! - Activation traces are `(1/N) Σₛ Tr(∂²ℓₛ/∂a⁽ˢ⁾²)`, equal to the trace of the batch loss's
//!   Hessian with respect to all samples' copies of the value; a perturbation of a value is
//!   applied after its producer's clamp (as quantization of the stored value is).

mod backward;
mod forms;
mod kernels;
mod loss;
mod net;
mod tangent;
mod trace;

use anyhow::{bail, Result};
use rayon::prelude::*;

use crate::ir::{Graph, OpKind};
use crate::quantize::ActQuant;
use backward::{backward, GradientSink};
use loss::{check_labels, sample_loss};
use net::Net;
use tangent::{hvp_sample, Direction, WeightSeed};

pub use trace::{traces, ActTrace, Estimator, LayerTrace, Method, TraceOptions, Traces};

/// The calibration loss; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Loss {
    CrossEntropy,
    Mse,
    Reconstruction,
}

/// A vector over all layers' parameters, in blocks per node (indexed like `graph.nodes`):
/// `weights[n]` in the IR's row-major weight order and `biases[n]`, both empty for nodes without
/// weights. As a direction, an empty block means zero.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightVector {
    pub weights: Vec<Vec<f32>>,
    pub biases: Vec<Vec<f32>>,
}

impl WeightVector {
    /// Zeros for every weight layer's weights and biases.
    pub fn zeros(graph: &Graph) -> WeightVector {
        let of = |op: &OpKind| match op {
            OpKind::Conv(c) => (vec![0.0; c.weight.len()], vec![0.0; c.bias.len()]),
            OpKind::Fc(f) => (vec![0.0; f.weight.len()], vec![0.0; f.bias.len()]),
            _ => (Vec::new(), Vec::new()),
        };
        let (weights, biases) = graph.nodes.iter().map(|n| of(&n.op)).unzip();
        WeightVector { weights, biases }
    }

    /// The graph's own parameters.
    pub fn of(graph: &Graph) -> WeightVector {
        let of = |op: &OpKind| match op {
            OpKind::Conv(c) => (c.weight.iter().copied().collect(), c.bias.to_vec()),
            OpKind::Fc(f) => (f.weight.iter().copied().collect(), f.bias.to_vec()),
            _ => (Vec::new(), Vec::new()),
        };
        let (weights, biases) = graph.nodes.iter().map(|n| of(&n.op)).unzip();
        WeightVector { weights, biases }
    }

    /// `Σ selfᵢ otherᵢ` over the blocks both have (in f64).
    pub fn dot(&self, other: &WeightVector) -> f64 {
        let blocks = |a: &[Vec<f32>], b: &[Vec<f32>]| -> f64 {
            a.iter().zip(b).filter(|(x, y)| x.len() == y.len()).map(|(x, y)| kernels::dot(x, y)).sum()
        };
        blocks(&self.weights, &other.weights) + blocks(&self.biases, &other.biases)
    }

    /// A copy of `graph` whose parameters are moved by `step · self` (empty blocks leave them).
    ///
    /// # Panics
    /// If a non-empty block does not have its layer's size.
    pub fn apply(&self, graph: &Graph, step: f32) -> Graph {
        let mut g = graph.clone();
        let moved = |p: &mut dyn Iterator<Item = &mut f32>, d: Option<&Vec<f32>>, len: usize| {
            if let Some(d) = d.filter(|d| !d.is_empty()) {
                assert_eq!(d.len(), len, "direction block size");
                p.zip(d).for_each(|(x, &dx)| *x += step * dx);
            }
        };
        for (n, node) in g.nodes.iter_mut().enumerate() {
            let (w, b) = (self.weights.get(n), self.biases.get(n));
            match &mut node.op {
                OpKind::Conv(c) => {
                    let (wl, bl) = (c.weight.len(), c.bias.len());
                    moved(&mut c.weight.iter_mut(), w, wl);
                    moved(&mut c.bias.iter_mut(), b, bl);
                }
                OpKind::Fc(f) => {
                    let (wl, bl) = (f.weight.len(), f.bias.len());
                    moved(&mut f.weight.iter_mut(), w, wl);
                    moved(&mut f.bias.iter_mut(), b, bl);
                }
                _ => {}
            }
        }
        g
    }
}

/// The loss and its gradient on a batch.
#[derive(Debug, Clone)]
pub struct Gradients {
    /// The batch loss `L` (mean over samples).
    pub loss: f64,
    /// `∂L/∂θ` for every weight layer's weights and biases.
    pub params: WeightVector,
    /// `activations[s][v] = ∂L/∂(value v of sample s)` (that is `(1/N) ∂ℓₛ/∂a`); empty for
    /// values the loss does not depend on (e.g. the probabilities of a stripped final Softmax).
    pub activations: Vec<Vec<Vec<f32>>>,
}

/// Validates a batch and builds the differentiated net.
fn prepare<'g>(graph: &'g Graph, loss: Loss, inputs: &[Vec<f32>], labels: &[f64]) -> Result<Net<'g>> {
    let net = Net::new(graph, loss)?;
    if inputs.is_empty() {
        bail!("no samples");
    }
    let expected = graph.values[graph.input].elements();
    if let Some((i, x)) = inputs.iter().enumerate().find(|(_, x)| x.len() != expected) {
        bail!("sample {i} has {} elements, the graph's input takes {expected}", x.len());
    }
    check_labels(loss, labels, inputs.len(), net.len(net.head))?;
    Ok(net)
}

fn label_of(labels: &[f64], s: usize) -> f64 {
    labels.get(s).copied().unwrap_or(0.0)
}

/// The batch loss `L`, from the float executor's forward pass.
///
/// # Errors
/// If the loss does not fit the graph (see [`Loss`]), or the batch is empty or mis-sized.
pub fn loss_value(graph: &Graph, loss: Loss, inputs: &[Vec<f32>], labels: &[f64]) -> Result<f64> {
    let net = prepare(graph, loss, inputs, labels)?;
    let total: f64 = inputs
        .par_iter()
        .enumerate()
        .map(|(s, x)| {
            let tape = net.tape(x);
            sample_loss(loss, &tape.values[net.head], x, label_of(labels, s)).value
        })
        .collect::<Vec<_>>()
        .iter()
        .sum();
    Ok(total / inputs.len() as f64)
}

/// Reverse mode: the batch loss, `∂L/∂θ` (weights and biases), and per-sample activation
/// gradients `∂L/∂a⁽ˢ⁾`. Parallel over samples.
///
/// # Errors
/// As [`loss_value`].
pub fn gradients(graph: &Graph, loss: Loss, inputs: &[Vec<f32>], labels: &[f64]) -> Result<Gradients> {
    let net = prepare(graph, loss, inputs, labels)?;
    let n = inputs.len() as f64;
    let per_sample: Vec<(f64, GradientSink)> = inputs
        .par_iter()
        .enumerate()
        .map(|(s, x)| {
            let tape = net.tape(x);
            let sl = sample_loss(loss, &tape.values[net.head], x, label_of(labels, s));
            let seeds = sl.grad.iter().map(|&g| (g / n) as f32).collect();
            let mut sink = GradientSink::new(graph.nodes.len(), graph.values.len());
            backward(&net, &tape, seeds, 1, true, &mut sink);
            (sl.value, sink)
        })
        .collect();
    let mut params = WeightVector::zeros(graph);
    let mut weights: Vec<Vec<f64>> = params.weights.iter().map(|w| vec![0.0; w.len()]).collect();
    let mut biases: Vec<Vec<f64>> = params.biases.iter().map(|b| vec![0.0; b.len()]).collect();
    let mut total = 0.0;
    let mut activations = Vec::with_capacity(per_sample.len());
    for (value, sink) in per_sample {
        total += value;
        for (acc, g) in weights.iter_mut().zip(&sink.weights).chain(biases.iter_mut().zip(&sink.biases)) {
            acc.iter_mut().zip(g).for_each(|(a, &x)| *a += f64::from(x));
        }
        activations.push(sink.values);
    }
    for (out, acc) in params.weights.iter_mut().zip(&weights).chain(params.biases.iter_mut().zip(&biases)) {
        out.iter_mut().zip(acc).for_each(|(o, &a)| *o = a as f32);
    }
    Ok(Gradients { loss: total / n, params, activations })
}

/// The value a loss reads: the logits of a classifier ending in softmax for
/// [`Loss::CrossEntropy`], else the graph's output.
///
/// # Errors
/// As [`loss_value`], for the graph alone.
pub fn head_value(graph: &Graph, loss: Loss) -> Result<usize> {
    Ok(Net::new(graph, loss)?.head)
}

/// What [`head_loss_gradients`] returns.
pub struct HeadGradients {
    /// The batch loss (the mean over samples).
    pub loss: f64,
    /// `∂L/∂θ` (weights and biases).
    pub params: WeightVector,
    /// Per value, `∂L/∂s` of the scale `s` of its quantizer in `act` (0 for values without
    /// one, and for the input, which no node produces), with LSQ's straight-through rounding
    /// ([`ActQuant::derivatives`]).
    pub quantizer_scales: Vec<f64>,
}

/// Reverse mode for a caller's per-sample loss on the head value ([`head_value`] of `head`), the
/// values with a quantizer in `act` rounded (with `lsq`, differentiated as LSQ does: the gradient
/// stopped at the clip, the scales' derivatives summed; otherwise plain straight-through):
/// `sample_loss(s, z)` gives sample `s`'s loss and `∂ℓ/∂z` at head values `z`. Returns the batch
/// loss (the mean over samples), `∂L/∂θ` (weights and biases) and the derivatives in the
/// activation quantizers' scales, summed in sample order (the result does not depend on the
/// number of threads). Used by the refinement's distillation loss (`crate::refine`), whose
/// targets are the float model's outputs rather than labels.
///
/// # Errors
/// As [`loss_value`].
pub fn head_loss_gradients(
    graph: &Graph,
    head: Loss,
    act: &[Option<ActQuant>],
    lsq: bool,
    inputs: &[Vec<f32>],
    sample_loss: impl Fn(usize, &[f32]) -> (f64, Vec<f64>) + Sync,
) -> Result<HeadGradients> {
    let net = Net { act, lsq, ..Net::new(graph, head)? };
    if inputs.is_empty() {
        bail!("no samples");
    }
    let n = inputs.len() as f64;
    let per_sample: Vec<(f64, GradientSink)> = inputs
        .par_iter()
        .enumerate()
        .map(|(s, x)| {
            let tape = net.tape(x);
            let (value, grad) = sample_loss(s, &tape.values[net.head]);
            let seeds = grad.iter().map(|&g| (g / n) as f32).collect();
            let mut sink = GradientSink::new(graph.nodes.len(), graph.values.len());
            backward(&net, &tape, seeds, 1, false, &mut sink);
            (value, sink)
        })
        .collect();
    let mut params = WeightVector::zeros(graph);
    let mut weights: Vec<Vec<f64>> = params.weights.iter().map(|w| vec![0.0; w.len()]).collect();
    let mut biases: Vec<Vec<f64>> = params.biases.iter().map(|b| vec![0.0; b.len()]).collect();
    let mut total = 0.0;
    let mut quantizer_scales = vec![0.0f64; graph.values.len()];
    for (value, sink) in per_sample {
        total += value;
        for (acc, g) in weights.iter_mut().zip(&sink.weights).chain(biases.iter_mut().zip(&sink.biases)) {
            acc.iter_mut().zip(g).for_each(|(a, &x)| *a += f64::from(x));
        }
        quantizer_scales.iter_mut().zip(&sink.quantizer_scales).for_each(|(a, &x)| *a += x);
    }
    for (out, acc) in params.weights.iter_mut().zip(&weights).chain(params.biases.iter_mut().zip(&biases)) {
        out.iter_mut().zip(acc).for_each(|(o, &a)| *o = a as f32);
    }
    Ok(HeadGradients { loss: total / n, params, quantizer_scales })
}

/// A direction in one weight layer's parameters: `weights` in the IR's weight order, `biases`
/// per output channel (empty: no bias component).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDirection {
    pub node: usize,
    pub weights: Vec<f32>,
    pub biases: Vec<f32>,
}

/// `vᵀ H v` of the batch loss for each direction `v` (each within one layer's weights and
/// biases), exactly: from one backward pass of the loss Hessian's factor per sample where the
/// diagonal blocks are Gauss–Newton blocks (piecewise-linear networks, `forms`), else by
/// forward-over-reverse products (all directions in one pass per sample); samples in parallel.
/// With `v = Q(W) − W` this is twice the second-order term of the loss change that quantizing the
/// layer causes, which HAWQ-V2's `Tr(H)/n · ‖v‖²` estimates for a random `v`.
///
/// # Errors
/// As [`loss_value`], or if a direction does not match its layer's sizes.
pub fn quadratic_forms(
    graph: &Graph,
    loss: Loss,
    inputs: &[Vec<f32>],
    labels: &[f64],
    directions: &[LayerDirection],
) -> Result<Vec<f64>> {
    let net = prepare(graph, loss, inputs, labels)?;
    let (live, seeds) = layer_seeds(&net, directions)?;
    Ok(scatter(&live, live_forms(&net, inputs, labels, seeds), directions.len()))
}

/// [`traces`] and [`quadratic_forms`] together: where the traces are exact Gauss–Newton ones of a
/// piecewise-linear network, the forms come from the same backward passes (which is most of
/// their cost), else they are computed after the traces. The results are those of the two
/// functions.
///
/// # Errors
/// As [`quadratic_forms`].
pub fn traces_and_forms(
    graph: &Graph,
    loss: Loss,
    inputs: &[Vec<f32>],
    labels: &[f64],
    opts: &TraceOptions,
    directions: &[LayerDirection],
    progress: &indicatif::ProgressBar,
) -> Result<(Traces, Vec<f64>)> {
    let net = prepare(graph, loss, inputs, labels)?;
    let (live, seeds) = layer_seeds(&net, directions)?;
    let fuse = use_factor_for_forms(&net, seeds.len());
    let (traces, forms) =
        trace::traces_and_forms(&net, inputs, labels, opts, progress, if fuse { &seeds } else { &[] });
    let forms = match forms {
        Some(forms) if fuse => forms,
        _ => live_forms(&net, inputs, labels, seeds),
    };
    Ok((traces, scatter(&live, forms, directions.len())))
}

/// Checks every direction against its layer, and returns the indices of the directions on
/// layers the loss depends on with their seeds (a layer the loss does not read has no curvature).
fn layer_seeds(net: &Net, directions: &[LayerDirection]) -> Result<(Vec<usize>, Vec<WeightSeed>)> {
    let graph = net.graph;
    for d in directions {
        let op = &graph.nodes.get(d.node).map(|n| &n.op);
        let bias_len = match op {
            Some(OpKind::Conv(c)) => c.bias.len(),
            Some(OpKind::Fc(f)) => f.bias.len(),
            _ => bail!("direction on node {}, which has no weights", d.node),
        };
        let weights = op.map_or(0, |op| op.weight_count());
        if d.weights.len() != weights || !(d.biases.is_empty() || d.biases.len() == bias_len) {
            bail!("direction on node {} has the wrong size", d.node);
        }
    }
    let weight_nodes = net.weight_nodes();
    let live: Vec<usize> = (0..directions.len()).filter(|&i| weight_nodes.contains(&directions[i].node)).collect();
    let seeds = live
        .iter()
        .map(|&i| {
            let d = &directions[i];
            WeightSeed { node: d.node, w: d.weights.clone(), b: d.biases.clone() }
        })
        .collect();
    Ok((live, seeds))
}

/// The forms of the live directions (`live[k]` is the index of `live_forms[k]`), zeros elsewhere.
fn scatter(live: &[usize], live_forms: Vec<f64>, directions: usize) -> Vec<f64> {
    let mut forms = vec![0.0; directions];
    for (&i, form) in live.iter().zip(live_forms) {
        forms[i] = form;
    }
    forms
}

/// The forms of `seeds`, by the cheaper of the two exact methods.
fn live_forms(net: &Net, inputs: &[Vec<f32>], labels: &[f64], seeds: Vec<WeightSeed>) -> Vec<f64> {
    if use_factor_for_forms(net, seeds.len()) {
        factor_forms(net, inputs, labels, &seeds)
    } else {
        tangent_forms(net, inputs, labels, seeds)
    }
}

/// Are the forms better made from the loss Hessian's factor ([`forms`])? Only where the
/// Hessian's diagonal blocks are Gauss–Newton blocks (a piecewise-linear network), and when the
/// factor has no more columns than there are directions (one backward row per column, against a
/// forward and a backward row per direction for the tangent products).
fn use_factor_for_forms(net: &Net, directions: usize) -> bool {
    let columns = match net.loss {
        Loss::CrossEntropy => net.len(net.head) - 1,
        Loss::Mse | Loss::Reconstruction => net.len(net.head),
    };
    net.is_piecewise_linear() && columns <= directions
}

/// The forms from one backward pass of the loss Hessian's factor per sample; see [`forms`].
/// Samples in parallel, their forms summed in sample order.
fn factor_forms(net: &Net, inputs: &[Vec<f32>], labels: &[f64], seeds: &[WeightSeed]) -> Vec<f64> {
    let per_sample: Vec<Vec<f64>> = inputs
        .par_iter()
        .enumerate()
        .map(|(s, x)| {
            let tape = net.tape(x);
            let sl = sample_loss(net.loss, &tape.values[net.head], x, label_of(labels, s));
            let (columns, rows) = sl.factor();
            let mut sink = forms::FormSink::new(net.graph.nodes.len(), seeds);
            backward(net, &tape, columns, rows, false, &mut sink);
            sink.forms
        })
        .collect();
    // Summed in sample order (as the traces' pass sums them), independent of thread scheduling.
    let n = inputs.len() as f64;
    (0..seeds.len()).map(|k| per_sample.iter().map(|f| f[k]).sum::<f64>() / n).collect()
}

/// The forms by forward-over-reverse products, all directions in one pass per sample, samples
/// in parallel (exact for any network, softmaxes, smooth activations and products included).
fn tangent_forms(net: &Net, inputs: &[Vec<f32>], labels: &[f64], seeds: Vec<WeightSeed>) -> Vec<f64> {
    let dirs: Vec<Direction> =
        seeds.into_iter().map(|seed| Direction { weights: vec![seed], values: Vec::new(), full: false }).collect();
    let scale = 1.0 / inputs.len() as f64;
    let per_sample: Vec<Vec<f64>> = inputs
        .par_iter()
        .enumerate()
        .map(|(s, x)| {
            let tape = net.tape(x);
            let sl = sample_loss(net.loss, &tape.values[net.head], x, label_of(labels, s));
            hvp_sample(net, &tape, &sl, scale, &dirs).iter().map(|r| r.weight_forms[0]).collect()
        })
        .collect();
    (0..dirs.len()).map(|k| per_sample.iter().map(|f| f[k]).sum()).collect()
}

/// The exact Hessian-vector product `H v` of the batch loss with respect to all weights and
/// biases (forward-over-reverse, not finite differences). Blocks of `v` that are empty count as
/// zero; the result has every weight layer's weight and bias blocks.
///
/// # Errors
/// As [`loss_value`], or if a block of `v` does not have its layer's size.
pub fn hvp(graph: &Graph, loss: Loss, inputs: &[Vec<f32>], labels: &[f64], v: &WeightVector) -> Result<WeightVector> {
    let net = prepare(graph, loss, inputs, labels)?;
    let mut seeds = Vec::new();
    for n in net.weight_nodes() {
        let op = &graph.nodes[n].op;
        let w = v.weights.get(n).cloned().unwrap_or_default();
        let b = v.biases.get(n).cloned().unwrap_or_default();
        let bias_len = match op {
            OpKind::Conv(c) => c.bias.len(),
            OpKind::Fc(f) => f.bias.len(),
            _ => 0,
        };
        if (!w.is_empty() && w.len() != op.weight_count()) || (!b.is_empty() && b.len() != bias_len) {
            bail!("direction block of node {n} ({:?}) has the wrong size", graph.nodes[n].name);
        }
        if w.iter().chain(&b).all(|&x| x == 0.0) {
            continue;
        }
        let w = if w.is_empty() { vec![0.0; op.weight_count()] } else { w };
        seeds.push(WeightSeed { node: n, w, b });
    }
    let mut result = WeightVector::zeros(graph);
    if seeds.is_empty() {
        return Ok(result);
    }
    let scale = 1.0 / inputs.len() as f64;
    let direction = [Direction { weights: seeds, values: Vec::new(), full: true }];
    let per_sample: Vec<_> = inputs
        .par_iter()
        .enumerate()
        .map(|(s, x)| {
            let tape = net.tape(x);
            let sl = sample_loss(loss, &tape.values[net.head], x, label_of(labels, s));
            hvp_sample(&net, &tape, &sl, scale, &direction).pop().expect("one response")
        })
        .collect();
    let mut weights: Vec<Vec<f64>> = result.weights.iter().map(|w| vec![0.0; w.len()]).collect();
    let mut biases: Vec<Vec<f64>> = result.biases.iter().map(|b| vec![0.0; b.len()]).collect();
    for r in &per_sample {
        for (acc, g) in weights.iter_mut().zip(&r.weights).chain(biases.iter_mut().zip(&r.biases)) {
            acc.iter_mut().zip(g).for_each(|(a, &x)| *a += f64::from(x));
        }
    }
    for (out, acc) in result.weights.iter_mut().zip(&weights).chain(result.biases.iter_mut().zip(&biases)) {
        out.iter_mut().zip(acc).for_each(|(o, &a)| *o = a as f32);
    }
    Ok(result)
}
