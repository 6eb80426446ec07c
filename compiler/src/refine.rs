//! A short whole-network refinement of a quantized configuration, with the float model as
//! teacher (quantization-aware distillation, no labels and no training code needed).
//!
//! Per-layer rounding (`gptq.rs`, `learned_rounding.rs`) makes each layer's output close to the
//! float layer's given the float input; it cannot see that the errors of several 2-bit layers
//! compound, nor let a layer's bias or an 8-bit layer make up for a 2-bit one. Here the whole
//! quantized network is trained on the calibration inputs to reproduce the float network's
//! head (the logits of a classifier: KL divergence from the float model's softmax; otherwise the
//! outputs: mean squared difference), with the exact gradients of `autodiff`:
//!
//! - each weight of a layer below 8 bits has a latent float value `W`; the network uses
//!   `s·clamp(round(W/s), ±qmax)` with the layer's per-channel scales `s` (starting from the
//!   rounding `emit` makes), and the gradient passes through the rounding unchanged (straight-through
//!   estimator; zero beyond the clamp). `W` starts on the grid, at the learned rounding, so the
//!   refinement starts from exactly the model `emit` would write;
//! - the per-channel scales of those layers are learned too (LSQ: `∂Q/∂s = round(W/s) − W/s`
//!   inside the grid, `±qmax` beyond it);
//! - biases (with their bias correction folded in) and the weights of 8-bit layers are trained as
//!   floats (8-bit rounding of them is near-lossless and left to `emit`);
//! - activations below 8 bits are rounded to their grids, and the scale of each (its clipping
//!   range; the zero point stays the calibration's) is learned too (LSQ:
//!   [`ActQuant::derivatives`], the gradient stopped at the clip and moving it instead), from
//!   the calibration's MSE-optimal range; the scales are rounded to the f16 the model file
//!   stores in every forward pass, so the student holds exactly the ranges `emit` writes
//!   ([`Refined::acts`]);
//! - Adam, a fixed number of steps over minibatches in an order drawn from a seeded generator:
//!   the step decays along a cosine; the result is the same on every run and thread count (gradients are summed in sample order).
//!   A wall-clock limit can stop it early; the result then depends on the machine's speed, and
//!   [`Refined::stopped_early`] says so.
//!
//! One calibration sample in five is held out; of the parameters reached every 25 steps, those
//! with the least distillation loss on the held-out samples are kept (the starting model when
//! none beats it). The result is a float graph whose low-bit layers hold weights exactly on
//! their grids, with the roundings to hand to `emit` ([`crate::emit::pin_rounding`]).

use std::time::Instant;

use anyhow::Result;
use rayon::prelude::*;

use crate::autodiff::{head_loss_gradients, head_value, Loss};
use crate::emit::{fake_quantized, round_layer};
use crate::ir::{Graph, OpKind};
use crate::pipeline::Prepared;
use crate::quantize::WeightGrid;
use crate::quantize::{activation_params, snap_f16, ActQuant, BitConfig};

/// Refinement settings.
#[derive(Debug, Clone, Copy)]
pub struct RefineOptions {
    /// Adam steps (minibatches); 0 turns the refinement off.
    pub steps: usize,
    /// Wall-clock limit in seconds; reaching it stops the steps early (non-deterministic).
    pub seconds: f64,
    /// Samples per minibatch.
    pub batch: usize,
    /// Adam's first step (then decayed to 0 along a cosine), as a fraction of each weight's quantization step `s` (biases: of the
    /// layer's mean absolute bias, or of its mean scale when the biases are all 0).
    pub learning_rate: f64,
    /// Seed of the minibatch order.
    pub seed: u64,
    /// Learn the clipping ranges of the activations below 8 bits (LSQ; the quantizers then stop
    /// the gradient at their clips). Off: the calibration's ranges, plain straight-through.
    pub learn_activation_ranges: bool,
}

impl Default for RefineOptions {
    fn default() -> RefineOptions {
        RefineOptions {
            steps: 300,
            seconds: 60.0,
            batch: 32,
            learning_rate: 0.01,
            seed: 0x5eed,
            learn_activation_ranges: false,
        }
    }
}

/// A refined configuration.
pub struct Refined {
    /// The float graph with the refined parameters: layers below 8 bits hold `s·q` exactly.
    pub graph: Graph,
    /// Per node, the refined rounding (scale and integers per output channel) of layers below
    /// 8 bits.
    pub roundings: Vec<Option<crate::emit::LayerRounding>>,
    /// Per value, the activation quantization to compile with: the calibration's, with the
    /// learned scales of the activations below 8 bits (and of the values tied to them).
    pub acts: Vec<ActQuant>,
    /// Activations whose clipping range was learned (the values tied to them not counted).
    pub learned_ranges: usize,
    /// Distillation loss on the held-out calibration samples before and after.
    pub loss_before: f64,
    pub loss_after: f64,
    pub steps: usize,
    pub seconds: f64,
    /// The wall-clock limit stopped the steps: the result depends on the machine's speed.
    pub stopped_early: bool,
    /// The refinement did not lower the loss and the starting model was kept.
    pub kept_start: bool,
}

/// The distillation loss of one sample and its gradient in the student's head values `z`:
/// KL(softmax(t) ‖ softmax(z)) for logits (`classifier`), else the mean squared difference.
pub fn distillation_loss(classifier: bool, z: &[f32], teacher: &[f32]) -> (f64, Vec<f64>) {
    if classifier {
        let softmax = |v: &[f32]| {
            let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let e: Vec<f64> = v.iter().map(|&x| (f64::from(x) - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            (e.iter().map(|x| x / sum).collect::<Vec<f64>>(), sum.ln() + max)
        };
        let (p, lse_z) = softmax(z);
        let (q, lse_t) = softmax(teacher);
        // KL = Σ q (log q − log p), log q = t − lse_t, log p = z − lse_z.
        let value = q
            .iter()
            .zip(z.iter().zip(teacher))
            .map(|(&qi, (&zi, &ti))| qi * ((f64::from(ti) - lse_t) - (f64::from(zi) - lse_z)))
            .sum();
        (value, p.iter().zip(&q).map(|(pi, qi)| pi - qi).collect())
    } else {
        let m = z.len().max(1) as f64;
        let r: Vec<f64> = z.iter().zip(teacher).map(|(&a, &b)| f64::from(a) - f64::from(b)).collect();
        (r.iter().map(|x| x * x).sum::<f64>() / m, r.iter().map(|x| 2.0 * x / m).collect())
    }
}

/// The per-layer quantizer of the straight-through estimator: the width, and the per-channel
/// scales it starts from.
struct Grid {
    scales: Vec<f32>,
    grid: WeightGrid,
}

impl Grid {
    /// `s·clamp(round(W/s), ±qmax)` at scales `scales`, and whether the gradient passes to `W`
    /// (inside the clamp).
    fn quantize(&self, w: &[f32], scales: &[f32], out: &mut [f32], pass: &mut [bool]) {
        let k = w.len() / scales.len().max(1);
        for (c, &s) in scales.iter().enumerate() {
            for j in c * k..(c + 1) * k {
                let u = w[j] / s;
                out[j] = s * self.grid.round_f32(u);
                pass[j] = self.grid.inside(u);
            }
        }
    }

    /// `∂Q/∂s` of one weight (LSQ, Esser et al. 2020, with the straight-through rounding):
    /// `round(u) − u` inside the clamp, `±qmax` beyond it, `u = W/s`.
    fn scale_derivative(&self, w: f32, s: f32) -> f32 {
        let u = w / s;
        let r = self.grid.round_f32(u);
        if self.grid.inside(u) {
            r - u
        } else {
            r
        }
    }
}

fn set_params(graph: &mut Graph, node: usize, weights: &[f32], biases: &[f32]) {
    match &mut graph.nodes[node].op {
        OpKind::Conv(c) => {
            c.weight.iter_mut().zip(weights).for_each(|(a, &b)| *a = b);
            c.bias.iter_mut().zip(biases).for_each(|(a, &b)| *a = b);
        }
        OpKind::Fc(f) => {
            f.weight.iter_mut().zip(weights).for_each(|(a, &b)| *a = b);
            f.bias.iter_mut().zip(biases).for_each(|(a, &b)| *a = b);
        }
        _ => {}
    }
}

/// One calibration sample in `HOLD_OUT` is held out to choose the parameters kept.
const HOLD_OUT: usize = 5;

/// Steps between checks of the held-out loss.
const CHECK_EVERY: usize = 25;

/// A scale's Adam step relative to its weights' (a scale moves every weight of its channel).
const SCALE_RATE: f32 = 0.1;

/// An activation scale's Adam step, as a fraction of its calibrated scale per unit of the
/// learning rate.
const ACT_SCALE_RATE: f32 = 0.1;

/// A held-out loss and the parameters reaching it: latent weights, biases, scales, and the
/// activation scales (per value).
type Params = (f64, Vec<Layers>, Vec<Layers>, Vec<Layers>, Vec<f32>);

/// One layer's parameters of one kind (latent weights, biases or scales).
type Layers = Vec<f32>;

fn keep_if_better(best: &mut Params, loss: f64, (w, b, s, a): (&[Layers], &[Layers], &[Layers], &[f32])) {
    if loss < best.0 {
        *best = (loss, w.to_vec(), b.to_vec(), s.to_vec(), a.to_vec());
    }
}

/// Whether the op clamps its output below a finite bound (ReLU6, a clip). Such a value's
/// range is not learned: its calibrated range already ends at the bound, and the many values
/// saturated there make the loss sharply least at that scale (on the digits CNN, moving the
/// ReLU6 output's 4-bit scale 2% either way multiplied the held-out loss by 4, and learning it
/// kept no step better than the start).
fn bounded_above(op: &OpKind) -> bool {
    let clamp = match op {
        OpKind::Conv(c) => c.clamp,
        OpKind::Fc(f) => f.clamp,
        OpKind::Add(c) | OpKind::Mul(c) => *c,
        _ => return false,
    };
    clamp.hi.is_finite()
}

/// A seeded linear congruential generator (the minibatch order).
fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

/// Refines the configuration `weight_bits` (per node) of `p` on the real calibration inputs
/// `inputs`, with `loss` the calibration loss the sensitivity uses (cross-entropy: the head is
/// the logits, distilled by KL; otherwise the outputs, by mean squared difference).
pub fn refine(
    p: &Prepared,
    inputs: &[Vec<f32>],
    bits: &BitConfig,
    loss: Loss,
    opts: &RefineOptions,
) -> Result<Refined> {
    let started = Instant::now();
    let weight_bits = &bits.weight_bits;
    // The student's activations below 8 bits are rounded to the grids the device will hold
    // (straight-through in the backward pass), so the weights learn to live with them; 8-bit
    // activations stay float (the refined float network scores what its integer model does).
    let calibrated = activation_params(&p.graph, &p.calibration, bits, p.raw, p.transform)?;
    let rounded: Vec<Option<ActQuant>> = if calibrated.iter().all(|a| a.bits >= 8) {
        Vec::new()
    } else {
        calibrated.iter().map(|a| (a.bits < 8).then_some(*a)).collect()
    };
    // The scales learned: those of the rounded values a node computes, except the values that
    // share their input's quantization (max pool, reshape, ...), which follow their input's
    // (`tied_to`). The input's is not: no node produces it, and its adjoint is not computed.
    let mut tied_to: Vec<usize> = (0..p.graph.values.len()).collect();
    let mut learned = vec![false; p.graph.values.len()];
    for node in &p.graph.nodes {
        if node.op.ties_output_to_input() {
            tied_to[node.output] = tied_to[node.inputs[0]];
        } else {
            learned[node.output] = opts.learn_activation_ranges
                && rounded.get(node.output).is_some_and(Option::is_some)
                && !bounded_above(&node.op);
        }
    }
    // The quantizers of the rounded values at the activation scales `act_scales` (per value; the
    // learned ones read), each rounded to the f16 the model file stores.
    let quantizers = |act_scales: &[f32]| -> Vec<Option<ActQuant>> {
        rounded
            .iter()
            .enumerate()
            .map(|(v, q)| {
                let root = tied_to[v];
                q.map(|q| if learned[root] { ActQuant { scale: snap_f16(act_scales[root]), ..q } } else { q })
            })
            .collect()
    };
    let student_outputs = |g: &Graph, x: &[f32], act: &[Option<ActQuant>]| {
        if act.is_empty() {
            crate::float_exec::run_all(g, x)
        } else {
            crate::float_exec::run_all_fake_quantized(g, x, act)
        }
    };
    let classifier = loss == Loss::CrossEntropy;
    let head_loss = if classifier { Loss::CrossEntropy } else { Loss::Mse };
    let head = head_value(&p.graph, head_loss)?;
    let teacher: Vec<Vec<f32>> =
        inputs.par_iter().map(|x| crate::float_exec::run_all(&p.graph, x).swap_remove(head)).collect();

    // The starting model: the layers below 8 bits as `emit` rounds them (bias correction
    // folded into the bias), the 8-bit layers float.
    let mut latent_w: Vec<Vec<f32>> = vec![Vec::new(); p.graph.nodes.len()];
    let mut latent_b: Vec<Vec<f32>> = vec![Vec::new(); p.graph.nodes.len()];
    let mut grids: Vec<Option<Grid>> = (0..p.graph.nodes.len()).map(|_| None).collect();
    for (i, node) in p.graph.nodes.iter().enumerate() {
        if !node.op.has_weights() {
            continue;
        }
        let bits = weight_bits[i];
        let means = &p.calibration.channel_means[node.inputs[0]];
        if bits < 8 {
            let moments = p.moments[i].as_ref();
            let rounding = round_layer(&node.op, moments, bits);
            let Some((w, b)) = fake_quantized(&node.op, moments, means, bits) else { continue };
            grids[i] = Some(Grid { scales: rounding.iter().map(|(s, _)| *s).collect(), grid: WeightGrid::of(bits) });
            latent_w[i] = w;
            latent_b[i] = b;
        } else {
            let (w, b) = match &node.op {
                OpKind::Conv(c) => (c.weight.iter().copied().collect(), c.bias.to_vec()),
                OpKind::Fc(f) => (f.weight.iter().copied().collect(), f.bias.to_vec()),
                _ => continue,
            };
            latent_w[i] = w;
            latent_b[i] = b;
        }
    }
    // Per-parameter step sizes for Adam.
    let rates: Vec<(Vec<f32>, f32)> = p
        .graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let w = &latent_w[i];
            if w.is_empty() {
                return (Vec::new(), 0.0);
            }
            let rows = latent_b[i].len().max(1);
            let k = w.len() / rows;
            let scales: Vec<f32> = match &grids[i] {
                Some(g) => g.scales.clone(),
                None => w.chunks(k.max(1)).map(|r| r.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0).collect(),
            };
            let per_weight = (0..w.len()).map(|j| opts.learning_rate as f32 * scales[j / k.max(1)]).collect();
            let mean_b = latent_b[i].iter().map(|b| b.abs()).sum::<f32>() / rows as f32;
            let mean_s = scales.iter().sum::<f32>() / scales.len().max(1) as f32;
            let bias_rate = opts.learning_rate as f32 * if mean_b > 0.0 { mean_b } else { mean_s };
            (per_weight, bias_rate)
        })
        .collect();

    let student = |latent_w: &[Vec<f32>], latent_b: &[Vec<f32>], latent_s: &[Vec<f32>]| -> (Graph, Vec<Vec<bool>>) {
        let mut g = p.graph.clone();
        let mut passes = vec![Vec::new(); latent_w.len()];
        for i in 0..latent_w.len() {
            if latent_w[i].is_empty() {
                continue;
            }
            match &grids[i] {
                Some(grid) => {
                    let mut q = vec![0f32; latent_w[i].len()];
                    let mut pass = vec![false; latent_w[i].len()];
                    grid.quantize(&latent_w[i], &latent_s[i], &mut q, &mut pass);
                    set_params(&mut g, i, &q, &latent_b[i]);
                    passes[i] = pass;
                }
                None => set_params(&mut g, i, &latent_w[i], &latent_b[i]),
            }
        }
        (g, passes)
    };
    // Every fifth calibration sample is held out: the refinement can fit the float model's
    // outputs on a thousand images far better than it generalises (on ResNet-8 the training
    // loss kept falling while the accuracy on unseen images fell), so the parameters kept are
    // those with the least loss on the held-out samples, checked every `CHECK_EVERY` steps.
    let held_out: Vec<usize> = (0..inputs.len()).filter(|s| s % HOLD_OUT == HOLD_OUT - 1).collect();
    let training: Vec<usize> =
        (0..inputs.len()).filter(|s| s % HOLD_OUT != HOLD_OUT - 1 || inputs.len() < HOLD_OUT).collect();
    let held_out_loss = |g: &Graph, act: &[Option<ActQuant>]| -> f64 {
        let set = if held_out.is_empty() { &training } else { &held_out };
        let losses: Vec<f64> = set
            .par_iter()
            .map(|&s| {
                let z = student_outputs(g, &inputs[s], act).swap_remove(head);
                distillation_loss(classifier, &z, &teacher[s]).0
            })
            .collect();
        losses.iter().sum::<f64>() / set.len().max(1) as f64
    };
    // The scales are learned too (LSQ), from the rounding's.
    let mut latent_s: Vec<Vec<f32>> =
        grids.iter().map(|g| g.as_ref().map_or_else(Vec::new, |g| g.scales.clone())).collect();
    // The activation scales (LSQ), from the calibration's.
    let mut act_scales: Vec<f32> = calibrated.iter().map(|a| a.scale).collect();
    // LSQ's gradient scale, 1/√(N·Q_P) with N the value's elements and Q_P its levels above
    // zero. Adam divides it out again (up to its ε); it is kept so that the gradient is LSQ's.
    let lsq_gradient_scale: Vec<f64> = calibrated
        .iter()
        .enumerate()
        .map(|(v, q)| {
            let levels_above_zero = (q.range().1 - q.zero_point).max(1) as f64;
            1.0 / (p.graph.values[v].elements().max(1) as f64 * levels_above_zero).sqrt()
        })
        .collect();
    let (start_graph, _) = student(&latent_w, &latent_b, &latent_s);
    let loss_before = held_out_loss(&start_graph, &quantizers(&act_scales));
    let mut best = (loss_before, latent_w.clone(), latent_b.clone(), latent_s.clone(), act_scales.clone());

    let zeros = |v: &[Vec<f32>]| v.iter().map(|x| vec![0f32; x.len()]).collect::<Vec<_>>();
    let (mut m_w, mut v_w, mut m_b, mut v_b) = (zeros(&latent_w), zeros(&latent_w), zeros(&latent_b), zeros(&latent_b));
    let (mut m_s, mut v_s) = (zeros(&latent_s), zeros(&latent_s));
    let (mut m_a, mut v_a) = (vec![0f32; act_scales.len()], vec![0f32; act_scales.len()]);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-12f32);
    let mut order: Vec<usize> = Vec::new();
    let mut seed = opts.seed;
    let mut steps = 0;
    let mut stopped_early = false;
    let batch = opts.batch.clamp(1, training.len().max(1));
    while steps < opts.steps && !training.is_empty() {
        if started.elapsed().as_secs_f64() > opts.seconds {
            stopped_early = true;
            break;
        }
        if order.len() < batch {
            // A new epoch: a Fisher–Yates shuffle from the seeded generator.
            let mut epoch = training.clone();
            for i in (1..epoch.len()).rev() {
                epoch.swap(i, (next(&mut seed) % (i as u64 + 1)) as usize);
            }
            order = epoch;
        }
        let picked: Vec<usize> = order.drain(..batch).collect();
        // Mixup of each picked sample with another training sample, the float model's output on
        // the mixture as its target: the calibration set alone is too small to fit without
        // overfitting (on ResNet-8, 800 images held the held-out loss gain to a few percent),
        // and mixtures are inputs of the same kind for any model (images, spectra, signals).
        let xs: Vec<Vec<f32>> = picked
            .iter()
            .map(|&s| {
                let other = &inputs[training[(next(&mut seed) % training.len() as u64) as usize]];
                let mix = (next(&mut seed) % (1 << 24)) as f32 / (1 << 24) as f32;
                inputs[s].iter().zip(other).map(|(&a, &b)| a + mix * (b - a)).collect()
            })
            .collect();
        let targets: Vec<Vec<f32>> =
            xs.par_iter().map(|x| crate::float_exec::run_all(&p.graph, x).swap_remove(head)).collect();
        let (g, passes) = student(&latent_w, &latent_b, &latent_s);
        let act = quantizers(&act_scales);
        let gradients = head_loss_gradients(&g, head_loss, &act, opts.learn_activation_ranges, &xs, |s, z| {
            distillation_loss(classifier, z, &targets[s])
        })?;
        let grad = &gradients.params;
        steps += 1;
        let (c1, c2) = (1.0 - b1.powi(steps as i32), 1.0 - b2.powi(steps as i32));
        // Cosine decay of the step to 0: at a constant step the latent weights keep hopping
        // across rounding boundaries to the end (1,000 constant steps on ResNet-8 ended with a
        // higher loss than 300).
        let decay = (0.5 * (1.0 + (std::f64::consts::PI * (steps - 1) as f64 / opts.steps as f64).cos())) as f32;
        for i in 0..latent_w.len() {
            if latent_w[i].is_empty() {
                continue;
            }
            let (rate_w, rate_b) = &rates[i];
            for j in 0..latent_w[i].len() {
                // Straight-through: the gradient of the rounded weight, where it is not clamped.
                let g = if passes[i].is_empty() || passes[i][j] { grad.weights[i][j] } else { 0.0 };
                m_w[i][j] = b1 * m_w[i][j] + (1.0 - b1) * g;
                v_w[i][j] = b2 * v_w[i][j] + (1.0 - b2) * g * g;
                latent_w[i][j] -= decay * rate_w[j] * (m_w[i][j] / c1) / ((v_w[i][j] / c2).sqrt() + eps);
            }
            if let Some(grid) = &grids[i] {
                let k = latent_w[i].len() / latent_s[i].len().max(1);
                for c in 0..latent_s[i].len() {
                    let s = latent_s[i][c];
                    let g: f32 = (c * k..(c + 1) * k)
                        .map(|j| grad.weights[i][j] * grid.scale_derivative(latent_w[i][j], s))
                        .sum();
                    m_s[i][c] = b1 * m_s[i][c] + (1.0 - b1) * g;
                    v_s[i][c] = b2 * v_s[i][c] + (1.0 - b2) * g * g;
                    let moved =
                        s - decay * SCALE_RATE * rate_w[c * k] * (m_s[i][c] / c1) / ((v_s[i][c] / c2).sqrt() + eps);
                    // A scale stays positive: at most halved per step.
                    latent_s[i][c] = moved.max(0.5 * s);
                }
            }
            for j in 0..latent_b[i].len() {
                let g = grad.biases[i][j];
                m_b[i][j] = b1 * m_b[i][j] + (1.0 - b1) * g;
                v_b[i][j] = b2 * v_b[i][j] + (1.0 - b2) * g * g;
                latent_b[i][j] -= decay * rate_b * (m_b[i][j] / c1) / ((v_b[i][j] / c2).sqrt() + eps);
            }
        }
        // The activation scales: a scale's derivative gathers those of the values tied to it.
        let mut act_gradients = vec![0f64; act_scales.len()];
        for (v, &d) in gradients.quantizer_scales.iter().enumerate() {
            act_gradients[tied_to[v]] += d;
        }
        for v in (0..act_scales.len()).filter(|&v| learned[v]) {
            let g = (act_gradients[v] * lsq_gradient_scale[v]) as f32;
            m_a[v] = b1 * m_a[v] + (1.0 - b1) * g;
            v_a[v] = b2 * v_a[v] + (1.0 - b2) * g * g;
            let rate = opts.learning_rate as f32 * ACT_SCALE_RATE * calibrated[v].scale;
            let s = act_scales[v];
            // A scale stays positive: at most halved per step.
            act_scales[v] = (s - decay * rate * (m_a[v] / c1) / ((v_a[v] / c2).sqrt() + eps)).max(0.5 * s);
        }
        if steps % CHECK_EVERY == 0 {
            let loss = held_out_loss(&student(&latent_w, &latent_b, &latent_s).0, &quantizers(&act_scales));
            keep_if_better(&mut best, loss, (&latent_w, &latent_b, &latent_s, &act_scales));
        }
    }
    if steps % CHECK_EVERY != 0 {
        let loss = held_out_loss(&student(&latent_w, &latent_b, &latent_s).0, &quantizers(&act_scales));
        keep_if_better(&mut best, loss, (&latent_w, &latent_b, &latent_s, &act_scales));
    }
    let (loss_after, final_w, final_b, final_s, final_act_scales) = best;
    let final_quantizers = quantizers(&final_act_scales);
    let acts =
        calibrated.iter().enumerate().map(|(v, c)| final_quantizers.get(v).copied().flatten().unwrap_or(*c)).collect();
    // `best` only ever takes a strictly lower loss.
    let kept_start = loss_after >= loss_before;
    let (graph, _) = student(&final_w, &final_b, &final_s);
    let roundings = grids
        .iter()
        .zip(final_w.iter().zip(&final_s))
        .map(|(grid, (w, scales))| {
            let grid = grid.as_ref()?;
            let k = w.len() / scales.len().max(1);
            Some(
                scales
                    .iter()
                    .enumerate()
                    .map(|(c, &s)| {
                        let q = w[c * k..(c + 1) * k].iter().map(|&x| grid.grid.round((x / s) as f64));
                        (s, q.collect())
                    })
                    .collect(),
            )
        })
        .collect();
    Ok(Refined {
        graph,
        roundings,
        acts,
        learned_ranges: learned.iter().filter(|&&l| l).count(),
        loss_before,
        loss_after,
        steps,
        seconds: started.elapsed().as_secs_f64(),
        stopped_early,
        kept_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distillation losses' gradients against central differences.
    #[test]
    fn distillation_gradient_matches_finite_differences() {
        let teacher = [0.3f32, -1.2, 2.0, 0.1];
        let z = [0.5f32, -0.4, 1.1, -0.9];
        for classifier in [true, false] {
            let (_, g) = distillation_loss(classifier, &z, &teacher);
            for j in 0..4 {
                let e = 1e-3f32;
                let (mut plus, mut minus) = (z, z);
                plus[j] += e;
                minus[j] -= e;
                let fd = (distillation_loss(classifier, &plus, &teacher).0
                    - distillation_loss(classifier, &minus, &teacher).0)
                    / (2.0 * f64::from(e));
                assert!((fd - g[j]).abs() < 1e-4, "{classifier} {j}: {fd} vs {}", g[j]);
            }
            // Zero, with a zero gradient, when the student matches the teacher.
            let (v, g) = distillation_loss(classifier, &teacher, &teacher);
            assert!(v.abs() < 1e-12 && g.iter().all(|x| x.abs() < 1e-12));
        }
    }

    /// The straight-through quantizer: on the grid, clamped, and the gradient mask.
    #[test]
    fn grid_rounds_clamps_and_masks() {
        // The 2-bit grid, −2..=1: the negative end one step further out than the positive.
        let grid = Grid { scales: vec![0.5, 0.25], grid: WeightGrid::of(2) };
        let w = [0.2f32, 0.3, -0.9, 1.0, 0.1, -0.2, -1.4, -0.6];
        let (mut q, mut pass) = ([0f32; 8], [false; 8]);
        grid.quantize(&w, &grid.scales, &mut q, &mut pass);
        assert_eq!(q, [0.0, 0.5, -1.0, 0.5, 0.0, -0.25, -0.5, -0.5]);
        assert_eq!(pass, [true, true, true, false, true, true, false, true]);
        // ∂Q/∂s against central differences where the rounding does not change (the
        // straight-through part, round(u), is held), and ±qmax in the clamp.
        for &(w, s) in &[(0.3f32, 0.5f32), (-0.2, 0.25), (0.1, 0.25)] {
            let e = 1e-4f32;
            let r = (w / s).round();
            let fd = ((s + e) * r - (s - e) * r) / (2.0 * e) - w / s;
            assert!((fd - grid.scale_derivative(w, s)).abs() < 1e-3, "{w} {s}");
        }
        assert_eq!(grid.scale_derivative(-1.4, 0.5), -2.0);
        assert_eq!(grid.scale_derivative(1.0, 0.25), 1.0);
    }
}
