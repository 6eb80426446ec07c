//! Per-layer Hessian traces, HAWQ-V2's sensitivity: `Tr(H_ii)` of each weight layer's diagonal
//! block and `Tr(∂²L/∂a²)` of each activation value, with two estimators.
//!
//! **Gauss–Newton, exact.** For piecewise-linear networks (no softmax, smooth activation or
//! product of two input-dependent values before the loss; see `Net::not_piecewise_linear`) the
//! logits are linear in one layer's weights, or in one value, for a fixed activation pattern, so
//! each diagonal block of the Hessian *is* its Gauss–Newton block `Jᵢᵀ H_out Jᵢ`. With
//! `H_out = A Aᵀ`, `Tr = Σ_c ‖Jᵢᵀ a_c‖²`: one backward pass per column of `A`, gradients squared
//! and summed. The columns of a sample go back together as one batch (so the convolutions are
//! GEMMs over `columns × pixels`), samples in parallel. Cross-entropy's `A` is reduced to `C − 1`
//! columns (see `loss.rs`). When `A` has more than `exact_max_outputs` columns (an autoencoder's
//! 640 outputs), Rademacher probes `r` in output space replace the columns
//! (`E‖Jᵢᵀ A r‖² = Tr(Jᵢᵀ A Aᵀ Jᵢ)`), `probes_per_pass` of them per backward batch.
//!
//! **Hutchinson.** `E[vᵀ H v] = Tr(H)` for Rademacher `v`: each weight layer (and each value) is
//! probed with its own vector, through the exact forward-over-reverse Hessian-vector product
//! restricted to that block, so there are no cross-layer terms. The probes are drawn
//! independently per sample (`Tr H = (1/N) Σₛ Tr Hₛ`, so one iteration averages `N` independent
//! per-sample estimates). Works for any graph (also one that is not piecewise linear, where the
//! Gauss–Newton block is only an approximation).
//!
//! Per output channel `c` of a weight layer, `Tr(H_{i,c})` comes from the same passes: the
//! squared gradient norms are kept per channel (Gauss–Newton), or `v ⊙ Hv` is summed over the
//! channel's weights (Hutchinson; unbiased since `E[v_j v_k] = δ_jk`).
//!
//! Iterative estimates keep a running mean per layer; a layer stops when, after at least
//! `min_iterations`, its standard error is at most `tolerance × |mean|` (or at `max_iterations`).
//! Probes come from a counter-based generator keyed by `(seed, iteration, sample, layer)`, so
//! results do not depend on thread scheduling.

use std::time::Instant;

use anyhow::Result;
use rayon::prelude::*;

use super::backward::{backward, out_channels, NormSink};
use super::forms::FormSink;
use super::loss::sample_loss;
use super::net::{Net, Tape};
use super::tangent::{hvp_sample_part, Direction, Part, WeightSeed};
use super::{label_of, prepare, Loss};
use crate::ir::{Graph, ValueId};

/// Which estimator [`traces`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Method {
    /// Gauss–Newton when the network is piecewise linear under the loss (then it is the exact
    /// Hessian); otherwise the Gauss–Newton part computed as for those plus Hutchinson probes of
    /// the rest ([`Estimator::GaussNewtonPlusHutchinson`]).
    Auto,
    Hutchinson,
    /// Gauss–Newton even when the network is not piecewise linear (then it is the Gauss–Newton
    /// approximation, [`Traces::exact_hessian`] is false and [`Traces::not_piecewise_linear`]
    /// says why).
    GaussNewton,
}

/// The estimator that was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Estimator {
    /// One backward pass per column of the output-Hessian factor; standard error 0.
    GaussNewtonExact,
    /// Gauss–Newton with Rademacher probes in output space (many outputs).
    GaussNewtonProbes,
    /// Rademacher probes of the exact Hessian-vector product.
    Hutchinson,
    /// `Tr(H) = Tr(G) + Tr(H − G)`: the Gauss–Newton part by the Gauss–Newton estimator (exact,
    /// or output-space probes for many outputs), the remainder (the curvature of the network's
    /// smooth activations and products) by Rademacher probes. The remainder is small next to
    /// the Gauss–Newton part near a trained minimum (its weights are the loss's gradients), so
    /// the probes' spread, `2 Σ_{j≠k} (H − G)²_jk` per probe, is a fraction of Hutchinson's on
    /// the whole Hessian: a control variate whose expectation is known exactly.
    GaussNewtonPlusHutchinson,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceOptions {
    pub method: Method,
    /// Relative standard error at which a layer's iterative estimate stops.
    pub tolerance: f64,
    pub max_iterations: usize,
    /// Iterations before the stopping rule applies (the standard error of fewer is unreliable).
    pub min_iterations: usize,
    pub seed: u64,
    /// Largest number of factor columns (C − 1 for cross-entropy, m for MSE) done exactly.
    pub exact_max_outputs: usize,
    /// Output-space probes per backward pass in the Gauss–Newton probe mode.
    pub probes_per_pass: usize,
    /// Also estimate the activation traces.
    pub activations: bool,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            method: Method::Auto,
            tolerance: 1e-3,
            max_iterations: 100,
            min_iterations: 8,
            seed: 0x4841_5751,
            exact_max_outputs: 32,
            probes_per_pass: 16,
            activations: true,
        }
    }
}

/// `Tr(H_ii)` of one weight layer (weights only, batch-mean loss).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerTrace {
    /// Node index.
    pub node: usize,
    pub trace: f64,
    /// `Tr(H_{i,c})` of each output channel `c`'s diagonal block (its weights only), from the
    /// same passes or probes as `trace`, which is their sum. A layer's channels differ in
    /// sensitivity (and are quantized with their own scales), so the trace form of Ω weighs each
    /// channel's rounding error by its own trace. Hutchinson's per-channel estimates have more
    /// spread than the layer's (fewer weights each; see `channel_std_errors`), and the stopping
    /// rule looks at the layer's only.
    pub channels: Vec<f64>,
    /// Standard error of each entry of `channels` (0 for the exact estimator).
    pub channel_std_errors: Vec<f64>,
    /// Number of weights.
    pub params: usize,
    /// Standard error of `trace` (0 for the exact estimator).
    pub std_error: f64,
    /// Iterations averaged (1 for the exact estimator).
    pub iterations: usize,
    /// The estimator that gave `trace`.
    pub estimator: Estimator,
}

impl LayerTrace {
    /// `Tr / n`, HAWQ-V2's average trace.
    pub fn average(&self) -> f64 {
        self.trace / self.params.max(1) as f64
    }

    /// `Tr(H_{i,c}) / n_c` of each output channel (`n_c = params / channels`).
    pub fn channel_averages(&self) -> Vec<f64> {
        let per = (self.params / self.channels.len().max(1)).max(1) as f64;
        self.channels.iter().map(|t| t / per).collect()
    }

    pub fn relative_std_error(&self) -> f64 {
        relative(self.std_error, self.trace)
    }
}

/// `(1/N) Σₛ Tr(∂²ℓₛ/∂a⁽ˢ⁾²)` of one value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ActTrace {
    pub value: ValueId,
    pub trace: f64,
    /// Elements per sample.
    pub elements: usize,
    pub std_error: f64,
    pub iterations: usize,
    /// The estimator that gave `trace`.
    pub estimator: Estimator,
}

impl ActTrace {
    /// `Tr / elements`.
    pub fn average(&self) -> f64 {
        self.trace / self.elements.max(1) as f64
    }

    pub fn relative_std_error(&self) -> f64 {
        relative(self.std_error, self.trace)
    }
}

fn relative(std_error: f64, trace: f64) -> f64 {
    if std_error == 0.0 {
        0.0
    } else {
        std_error / trace.abs()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Traces {
    /// One per weight layer the loss depends on, in node order.
    pub weights: Vec<LayerTrace>,
    /// One per value the loss depends on (the input included), in value order; empty unless
    /// [`TraceOptions::activations`].
    pub activations: Vec<ActTrace>,
    /// The estimator of every trace (each [`LayerTrace`] and [`ActTrace`] names its own too).
    pub estimator: Estimator,
    /// Is the estimated quantity the Hessian's trace (false: the Gauss–Newton approximation)?
    pub exact_hessian: bool,
    /// Why the network is not piecewise linear (the first node that makes it so), when it is
    /// not: its Gauss–Newton blocks are then not the Hessian's, and [`Method::Auto`] uses
    /// Hutchinson.
    pub not_piecewise_linear: Option<String>,
    pub samples: usize,
    /// Wall time (with the quadratic forms made in the same passes, for `traces_and_forms`).
    pub seconds: f64,
}

/// Per-layer traces of the batch loss's Hessian; see the module documentation for the
/// estimators. The progress bar counts samples (exact) or iterations (iterative).
///
/// # Errors
/// As [`super::loss_value`].
pub fn traces(
    graph: &Graph,
    loss: Loss,
    inputs: &[Vec<f32>],
    labels: &[f64],
    opts: &TraceOptions,
    progress: &indicatif::ProgressBar,
) -> Result<Traces> {
    let net = prepare(graph, loss, inputs, labels)?;
    Ok(traces_and_forms(&net, inputs, labels, opts, progress, &[]).0)
}

/// [`traces`] on a prepared net, and the quadratic forms `vᵀ H v` of single-layer directions
/// `form_seeds` from the same backward passes when the exact Gauss–Newton estimator runs on a
/// piecewise-linear network (its blocks are then the Hessian's; see `forms.rs`); `None` when the
/// forms were not made.
pub(super) fn traces_and_forms(
    net: &Net,
    inputs: &[Vec<f32>],
    labels: &[f64],
    opts: &TraceOptions,
    progress: &indicatif::ProgressBar,
    form_seeds: &[WeightSeed],
) -> (Traces, Option<Vec<f64>>) {
    let started = Instant::now();
    let piecewise_linear = net.is_piecewise_linear();
    let use_gauss_newton = match opts.method {
        Method::Auto => piecewise_linear,
        Method::GaussNewton => true,
        Method::Hutchinson => false,
    };
    let batch = Batch { net, inputs, labels };
    let mut forms = None;
    let (estimator, (weights, activations)) = if opts.method == Method::Auto && !piecewise_linear {
        let columns = match net.loss {
            Loss::CrossEntropy => net.len(net.head) - 1,
            Loss::Mse | Loss::Reconstruction => net.len(net.head),
        };
        let gauss_newton = if columns <= opts.exact_max_outputs {
            gauss_newton_exact(&batch, opts, progress, None).0
        } else {
            gauss_newton_probes(&batch, opts, progress)
        };
        let remainder = hutchinson_part(&batch, opts, progress, Part::Residual, Some(&gauss_newton));
        (Estimator::GaussNewtonPlusHutchinson, combine(&gauss_newton, remainder))
    } else if use_gauss_newton {
        let columns = match net.loss {
            Loss::CrossEntropy => net.len(net.head) - 1,
            Loss::Mse | Loss::Reconstruction => net.len(net.head),
        };
        if columns <= opts.exact_max_outputs {
            let form_seeds = piecewise_linear.then_some(form_seeds);
            let (results, exact_forms) = gauss_newton_exact(&batch, opts, progress, form_seeds);
            forms = exact_forms;
            (Estimator::GaussNewtonExact, results)
        } else {
            (Estimator::GaussNewtonProbes, gauss_newton_probes(&batch, opts, progress))
        }
    } else {
        (Estimator::Hutchinson, hutchinson_part(&batch, opts, progress, Part::Full, None))
    };
    let traces = Traces {
        weights,
        activations,
        estimator,
        exact_hessian: piecewise_linear
            || matches!(estimator, Estimator::Hutchinson | Estimator::GaussNewtonPlusHutchinson),
        not_piecewise_linear: net.not_piecewise_linear.clone(),
        samples: inputs.len(),
        seconds: started.elapsed().as_secs_f64(),
    };
    (traces, forms)
}

struct Batch<'a, 'g> {
    net: &'a Net<'g>,
    inputs: &'a [Vec<f32>],
    labels: &'a [f64],
}

/// Iterative estimators keep every sample's forward pass across iterations when all of them fit
/// in this many bytes, and recompute them otherwise.
const TAPE_CACHE_BYTES: usize = 256 << 20;

impl Batch<'_, '_> {
    fn cached_tapes(&self) -> Option<Vec<Tape>> {
        let per_sample: usize = self.net.graph.values.iter().map(|v| v.elements() * 4).sum();
        (per_sample * self.inputs.len() <= TAPE_CACHE_BYTES)
            .then(|| self.inputs.par_iter().map(|x| self.net.tape(x)).collect())
    }
}

/// Sample `s`'s forward pass, from the cache or computed into `storage`.
fn tape_of<'t>(
    net: &Net,
    cache: &'t Option<Vec<Tape>>,
    s: usize,
    x: &[f32],
    storage: &'t mut Option<Tape>,
) -> &'t Tape {
    match cache {
        Some(tapes) => &tapes[s],
        None => storage.insert(net.tape(x)),
    }
}

type Results = (Vec<LayerTrace>, Vec<ActTrace>);

/// The exact Gauss–Newton traces, and with `form_seeds` the quadratic forms of those
/// single-layer directions from the same backward passes (see `forms.rs`).
fn gauss_newton_exact(
    b: &Batch,
    opts: &TraceOptions,
    progress: &indicatif::ProgressBar,
    form_seeds: Option<&[WeightSeed]>,
) -> (Results, Option<Vec<f64>>) {
    let net = b.net;
    let graph = net.graph;
    progress.set_length(b.inputs.len() as u64);
    let per_sample: Vec<(NormSink, FormSink)> = b
        .inputs
        .par_iter()
        .enumerate()
        .map(|(s, x)| {
            let tape = net.tape(x);
            let sl = sample_loss(net.loss, &tape.values[net.head], x, label_of(b.labels, s));
            let (seeds, rows) = sl.factor();
            let mut sinks = (
                NormSink::new(graph.nodes.len(), graph.values.len()),
                FormSink::new(graph.nodes.len(), form_seeds.unwrap_or_default()),
            );
            backward(net, &tape, seeds, rows, opts.activations, &mut sinks);
            progress.inc(1);
            sinks
        })
        .collect();
    let n = b.inputs.len() as f64;
    let mut channel_sums: Vec<Vec<f64>> = net.ops.iter().map(|op| vec![0.0; out_channels(op)]).collect();
    let mut value_sums = vec![0.0f64; graph.values.len()];
    for (sink, _) in &per_sample {
        for (acc, rows) in channel_sums.iter_mut().zip(&sink.weights) {
            for row in rows.chunks_exact(acc.len().max(1)) {
                add_f64(acc, row);
            }
        }
        for (acc, rows) in value_sums.iter_mut().zip(&sink.values) {
            *acc += rows.iter().sum::<f64>();
        }
    }
    // Summed in sample order, so the result does not depend on thread scheduling.
    let forms = form_seeds
        .map(|seeds| (0..seeds.len()).map(|k| per_sample.iter().map(|(_, f)| f.forms[k]).sum::<f64>() / n).collect());
    let results = finish(
        net,
        opts,
        Estimator::GaussNewtonExact,
        |node| {
            let channels: Vec<f64> = channel_sums[node].iter().map(|c| c / n).collect();
            Running::exact(channels.iter().sum(), channels)
        },
        |value| Running::exact(value_sums[value] / n, Vec::new()),
    );
    (results, forms)
}

/// `acc += x`.
fn add_f64(acc: &mut [f64], x: &[f64]) {
    acc.iter_mut().zip(x).for_each(|(a, &v)| *a += v);
}

/// Running mean and variance (Welford) of an iterative estimate, with its stopping state, and
/// the same for its per-channel parts over the same iterations (their means sum to `mean`).
#[derive(Debug, Clone, Default)]
struct Running {
    n: usize,
    mean: f64,
    m2: f64,
    done: bool,
    /// A known part added to the estimate (the Gauss–Newton trace under
    /// [`Estimator::GaussNewtonPlusHutchinson`]), which the stopping rule's relative error is
    /// taken against.
    offset: f64,
    channel_mean: Vec<f64>,
    channel_m2: Vec<f64>,
}

impl Running {
    /// An exact value (one "iteration", no spread).
    fn exact(value: f64, channels: Vec<f64>) -> Running {
        let channel_m2 = vec![0.0; channels.len()];
        Running { n: 1, mean: value, m2: 0.0, done: true, offset: 0.0, channel_mean: channels, channel_m2 }
    }

    /// One estimate given by its per-channel parts.
    fn push_channels(&mut self, channels: &[f64], opts: &TraceOptions) {
        if self.done {
            return;
        }
        if self.channel_mean.is_empty() {
            self.channel_mean = vec![0.0; channels.len()];
            self.channel_m2 = vec![0.0; channels.len()];
        }
        let n = (self.n + 1) as f64;
        for ((mean, m2), &x) in self.channel_mean.iter_mut().zip(&mut self.channel_m2).zip(channels) {
            let delta = x - *mean;
            *mean += delta / n;
            *m2 += delta * (x - *mean);
        }
        self.push(channels.iter().sum(), opts);
    }

    fn push(&mut self, x: f64, opts: &TraceOptions) {
        if self.done {
            return;
        }
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
        let converged = self.n >= opts.min_iterations.max(2)
            && self.std_error() <= opts.tolerance * (self.offset + self.mean).abs();
        self.done = converged || self.n >= opts.max_iterations;
    }

    fn channel_std_errors(&self) -> Vec<f64> {
        self.channel_m2.iter().map(|&m2| standard_error(m2, self.n)).collect()
    }

    fn std_error(&self) -> f64 {
        standard_error(self.m2, self.n)
    }
}

/// The standard error of a mean of `n` values whose squared deviations sum to `m2`.
fn standard_error(m2: f64, n: usize) -> f64 {
    if n < 2 {
        return 0.0;
    }
    (m2 / (n - 1) as f64 / n as f64).sqrt()
}

fn finish(
    net: &Net,
    opts: &TraceOptions,
    estimator: Estimator,
    node_stat: impl Fn(usize) -> Running,
    value_stat: impl Fn(ValueId) -> Running,
) -> Results {
    let weights = net
        .weight_nodes()
        .into_iter()
        .map(|node| {
            let r = node_stat(node);
            let params = net.graph.nodes[node].op.weight_count();
            LayerTrace {
                node,
                trace: r.mean,
                channel_std_errors: r.channel_std_errors(),
                std_error: r.std_error(),
                iterations: r.n,
                params,
                channels: r.channel_mean,
                estimator,
            }
        })
        .collect();
    let activations = if opts.activations {
        net.live_values()
            .into_iter()
            .map(|value| {
                let r = value_stat(value);
                ActTrace {
                    value,
                    trace: r.mean,
                    elements: net.len(value),
                    std_error: r.std_error(),
                    iterations: r.n,
                    estimator,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    (weights, activations)
}

/// SplitMix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` Rademacher entries (±1) determined by `seed` and the key.
fn rademacher(seed: u64, key: [u64; 3], len: usize) -> Vec<f32> {
    let stream = mix(seed ^ mix(key[0] ^ mix(key[1] ^ mix(key[2]))));
    let mut out = Vec::with_capacity(len);
    let mut block = 0u64;
    while out.len() < len {
        let bits = mix(stream ^ mix(block));
        block += 1;
        for i in 0..64.min(len - out.len()) {
            out.push(if (bits >> i) & 1 == 1 { 1.0 } else { -1.0 });
        }
    }
    out
}

/// Keys of the probes of a value (weight layers use their node index).
fn value_key(net: &Net, value: ValueId) -> u64 {
    (net.graph.nodes.len() + value) as u64
}

const OUTPUT_PROBE_KEY: u64 = u64::MAX;

fn gauss_newton_probes(b: &Batch, opts: &TraceOptions, progress: &indicatif::ProgressBar) -> Results {
    let net = b.net;
    let graph = net.graph;
    let nodes = net.weight_nodes();
    let values = if opts.activations { net.live_values() } else { Vec::new() };
    let mut node_stats = vec![Running::default(); graph.nodes.len()];
    let mut value_stats = vec![Running::default(); graph.values.len()];
    let n = b.inputs.len() as f64;
    let head_len = net.len(net.head);
    let max_iterations = opts.max_iterations.max(1);
    progress.set_length(max_iterations as u64);
    let cache = b.cached_tapes();
    let mut iteration = 0;
    while iteration < max_iterations
        && !(nodes.iter().all(|&i| node_stats[i].done) && values.iter().all(|&v| value_stats[v].done))
    {
        let probes = opts.probes_per_pass.max(1).min(max_iterations - iteration);
        let per_sample: Vec<NormSink> = b
            .inputs
            .par_iter()
            .enumerate()
            .map(|(s, x)| {
                let mut storage = None;
                let tape = tape_of(net, &cache, s, x, &mut storage);
                let sl = sample_loss(net.loss, &tape.values[net.head], x, label_of(b.labels, s));
                let seeds: Vec<f32> = (0..probes)
                    .flat_map(|p| {
                        let r = rademacher(opts.seed, [(iteration + p) as u64, s as u64, OUTPUT_PROBE_KEY], head_len);
                        sl.factor_probe(&r)
                    })
                    .collect();
                let mut sink = NormSink::new(graph.nodes.len(), graph.values.len());
                backward(net, tape, seeds, probes, opts.activations, &mut sink);
                sink
            })
            .collect();
        for p in 0..probes {
            for &node in &nodes {
                let out_c = out_channels(&net.ops[node]);
                let mut channels = vec![0.0f64; out_c];
                for sink in &per_sample {
                    if let Some(row) = sink.weights[node].get(p * out_c..(p + 1) * out_c) {
                        add_f64(&mut channels, row);
                    }
                }
                channels.iter_mut().for_each(|c| *c /= n);
                node_stats[node].push_channels(&channels, opts);
            }
            for &value in &values {
                let sum: f64 = per_sample.iter().map(|sink| sink.values[value].get(p).copied().unwrap_or(0.0)).sum();
                value_stats[value].push(sum / n, opts);
            }
        }
        iteration += probes;
        progress.set_position(iteration as u64);
    }
    finish(net, opts, Estimator::GaussNewtonProbes, |node| node_stats[node].clone(), |value| value_stats[value].clone())
}

/// The Gauss–Newton part and the probed remainder, summed per layer, channel and value; the
/// spread is the remainder's.
fn combine((gn_weights, gn_values): &Results, (weights, values): Results) -> Results {
    let weights = weights
        .into_iter()
        .zip(gn_weights)
        .map(|(mut r, g)| {
            r.trace += g.trace;
            r.channels.iter_mut().zip(&g.channels).for_each(|(c, gc)| *c += gc);
            // Independent estimates (the Gauss–Newton part has a spread when probed).
            r.std_error = r.std_error.hypot(g.std_error);
            r.channel_std_errors.iter_mut().zip(&g.channel_std_errors).for_each(|(e, ge)| *e = e.hypot(*ge));
            r.estimator = Estimator::GaussNewtonPlusHutchinson;
            r
        })
        .collect();
    let values = values
        .into_iter()
        .zip(gn_values)
        .map(|(mut r, g)| {
            r.trace += g.trace;
            r.std_error = r.std_error.hypot(g.std_error);
            r.estimator = Estimator::GaussNewtonPlusHutchinson;
            r
        })
        .collect();
    (weights, values)
}

/// Hutchinson's estimate of the traces of `part` of the Hessian; with `offsets` (the
/// Gauss–Newton traces, for [`Part::Residual`]) the stopping rule measures the spread against
/// the offset's and the estimate's sum.
fn hutchinson_part(
    b: &Batch,
    opts: &TraceOptions,
    progress: &indicatif::ProgressBar,
    part: Part,
    offsets: Option<&Results>,
) -> Results {
    let net = b.net;
    let graph = net.graph;
    let nodes = net.weight_nodes();
    let values = if opts.activations { net.live_values() } else { Vec::new() };
    let mut node_stats = vec![Running::default(); graph.nodes.len()];
    let mut value_stats = vec![Running::default(); graph.values.len()];
    if let Some((gn_weights, gn_values)) = offsets {
        for t in gn_weights {
            node_stats[t.node].offset = t.trace;
        }
        for t in gn_values {
            value_stats[t.value].offset = t.trace;
        }
    }
    let n = b.inputs.len();
    let max_iterations = opts.max_iterations.max(1);
    progress.set_length(max_iterations as u64);
    let cache = b.cached_tapes();
    for iteration in 0..max_iterations {
        let active_nodes: Vec<usize> = nodes.iter().copied().filter(|&i| !node_stats[i].done).collect();
        let active_values: Vec<ValueId> = values.iter().copied().filter(|&v| !value_stats[v].done).collect();
        if active_nodes.is_empty() && active_values.is_empty() {
            break;
        }
        let per_sample: Vec<(Vec<Vec<f64>>, Vec<f64>)> = b
            .inputs
            .par_iter()
            .enumerate()
            .map(|(s, x)| {
                let mut storage = None;
                let tape = tape_of(net, &cache, s, x, &mut storage);
                let sl = sample_loss(net.loss, &tape.values[net.head], x, label_of(b.labels, s));
                let key = |target: u64| [iteration as u64, s as u64, target];
                let mut dirs: Vec<Direction> = active_nodes
                    .iter()
                    .map(|&node| Direction {
                        weights: vec![WeightSeed {
                            node,
                            w: rademacher(opts.seed, key(node as u64), graph.nodes[node].op.weight_count()),
                            b: Vec::new(),
                        }],
                        values: Vec::new(),
                        full: false,
                    })
                    .collect();
                dirs.extend(active_values.iter().map(|&value| Direction {
                    weights: Vec::new(),
                    values: vec![(value, rademacher(opts.seed, key(value_key(net, value)), net.len(value)))],
                    full: false,
                }));
                let responses = hvp_sample_part(net, tape, &sl, 1.0 / n as f64, &dirs, part);
                // Each direction has one seed: per layer its per-channel forms, per value its form.
                let (layers, values) = responses.split_at(active_nodes.len());
                let layer_forms: Vec<Vec<f64>> = layers.iter().map(|r| r.weight_channel_forms.concat()).collect();
                let value_forms: Vec<f64> = values.iter().map(|r| r.value_forms.iter().sum::<f64>()).collect();
                (layer_forms, value_forms)
            })
            .collect();
        for (k, &node) in active_nodes.iter().enumerate() {
            let mut channels = vec![0.0f64; out_channels(&net.ops[node])];
            for (layer_forms, _) in &per_sample {
                add_f64(&mut channels, &layer_forms[k]);
            }
            node_stats[node].push_channels(&channels, opts);
        }
        for (k, &value) in active_values.iter().enumerate() {
            value_stats[value].push(per_sample.iter().map(|(_, forms)| forms[k]).sum::<f64>(), opts);
        }
        progress.set_position(iteration as u64 + 1);
    }
    finish(net, opts, Estimator::Hutchinson, |node| node_stats[node].clone(), |value| value_stats[value].clone())
}
