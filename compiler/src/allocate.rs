//! HAWQ-V2 bit allocation: the perturbation Ω of every layer at every bit width, the exact
//! Pareto frontier of size against ΣΩ, and the choice of a configuration under the user's
//! budgets (weight bytes, average bits, arena bytes) and pins.
//!
//! Weights: Ω_i(b) is the second-order term of the loss change that quantizing layer i to b
//! bits causes, `vᵀ H v` with `v = Q_b(W_i) − W_i` the layer's actual perturbation (GPTQ-rounded
//! weights and corrected biases), computed exactly with one Hessian-vector product per layer and
//! width ([`crate::sensitivity`]). HAWQ-V2 estimates this quantity by Tr(H_i)/n_i · ‖v‖², its
//! expectation for a perturbation isotropic in H's eigenbasis; here it is refined per output
//! channel, Σ_c Tr(H_{i,c})/n_{i,c} · ‖v_c‖² (each channel has its own scale and sensitivity).
//! GPTQ rounding is not isotropic: it steers the error into the directions the layer's inputs
//! do not excite, so the trace form overestimated Ω by 4–19× on the real models, unevenly across
//! layers (most for depthwise and small layers), and misranked them. The exact form is used
//! whenever it was measured; the trace form (per channel when per-channel traces are known) is
//! the fallback. Ω is additive over layers, and the size is additive too, so the frontier is a
//! multiple-choice knapsack solved exactly by dynamic programming over layers, keeping only
//! non-dominated (size, ΣΩ) points after each layer.
//!
//! Activations: Ω_j(a) = Tr(H_aj)/n_j · E‖Q_a(A_j) − A_j‖². Their cost is the arena, a maximum
//! over execution steps of the bytes alive at once, which is not additive: the choice under an
//! arena budget is a small 0-1 integer program (one binary per choosable tensor, one constraint
//! per step), solved exactly with `good_lp`'s pure-Rust MILP solver.

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

use crate::ir::{Graph, OpKind};
use crate::quantize::{ActQuant, BitConfig, Calibration, RawKind};

pub const WEIGHT_BITS: [u8; 3] = [2, 4, 8];
pub const ACT_BITS: [u8; 2] = [4, 8];

/// Bytes of one output channel's bias and requantization parameters (contract §1): i16 bias
/// (with the layer's exponent), u16 multiplier mantissa and shift offset (with the layer's base
/// shift).
pub const CHANNEL_BYTES: usize = 4;

/// Average Hessian trace `Tr(H)/n` of one block, with its standard error (0 when exact).
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    pub average: f64,
    pub std_error: f64,
    /// `Tr(H_c)/n_c` of each output channel of a weight layer (empty when unknown, and for
    /// activations).
    pub channels: Vec<f64>,
}

impl Trace {
    /// Ω of a layer whose rounding errors are `errors[c] = ‖Q(W_c) − W_c‖²` per output channel.
    pub fn omega(&self, errors: &[f64]) -> f64 {
        if self.channels.len() == errors.len() {
            self.channels.iter().zip(errors).map(|(t, e)| t * e).sum()
        } else {
            self.average * errors.iter().sum::<f64>()
        }
    }
}

/// Sensitivities of a graph: per node (weight layers) and per value (activations).
#[derive(Debug, Clone, Default)]
pub struct Sensitivity {
    pub weights: Vec<Option<Trace>>,
    pub activations: Vec<Option<Trace>>,
    /// Per node, per entry of `WEIGHT_BITS`: `vᵀ H v` for the layer's actual quantization
    /// perturbation `v = Q_b(W) − W` (weights and corrected biases), when measured.
    pub quadratic: Vec<Option<Vec<f64>>>,
}

/// One weight layer's options.
#[derive(Debug, Clone, Serialize)]
pub struct LayerOptions {
    pub node: usize,
    pub name: String,
    pub params: usize,
    pub trace: Trace,
    /// Per entry of `WEIGHT_BITS`: bytes in the model file and Ω.
    pub bytes: Vec<usize>,
    pub omega: Vec<f64>,
    /// Allowed bit widths after pins (and, in [`allocate`], after [`fills_words`]).
    pub allowed: Vec<u8>,
}

/// One choosable activation tensor (with the tensors that share its quantization).
#[derive(Debug, Clone, Serialize)]
pub struct ActOptions {
    pub value: usize,
    pub name: String,
    pub elements: usize,
    pub trace: Trace,
    /// Values whose quantization follows this one (max pool, reshape outputs).
    pub followers: Vec<usize>,
    /// Per entry of `ACT_BITS`.
    pub omega: Vec<f64>,
}

pub fn weight_layer_bytes(op: &OpKind, bits: u8) -> usize {
    let (rows, k) = match op {
        OpKind::Conv(c) => (c.weight.shape()[0], c.weight.len() / c.weight.shape()[0]),
        OpKind::Fc(f) => (f.weight.shape()[0], f.weight.shape()[1]),
        _ => return 0,
    };
    rows * ((k * bits as usize).div_ceil(8) + CHANNEL_BYTES)
}

/// Whether a layer's rows of `k` weights fill their 32-bit words of `b`-bit weights (`32 / b`
/// lanes each) to at least 7/8, which the allocator asks of 4- and 2-bit widths: a kernel
/// multiplies every lane of a row's words, and the padding of a row that half-fills its last
/// word costs as much as weights (a 2-bit pointwise layer over 24 channels, 32 lanes a row, took
/// 22% more Cortex-M4 instructions than its 8-bit form; the zoo's mobilenet-v2, 2026-12-07).
/// Depthwise layers, whose kernels take their weights tap by tap, and 8 bits are always offered.
pub fn fills_words(op: &OpKind, bits: u8) -> bool {
    let k = match op {
        OpKind::Conv(c) if !c.depthwise => c.weight.len() / c.weight.shape()[0].max(1),
        OpKind::Fc(f) => f.weight.shape()[1],
        _ => return true,
    };
    let per_word = 32 / bits.max(1) as usize;
    let lanes = k.div_ceil(per_word) * per_word;
    bits >= 8 || 8 * (lanes - k) <= lanes
}

/// The rounding error of a weight layer at a bit width: `perturbation(node, bits)[c]` is
/// ‖Q_b(W_c) − W_c‖² of output channel c with the compiler's quantizer.
pub type Perturbation<'a> = &'a (dyn Fn(usize, u8) -> Vec<f64> + Sync);

/// Ω tables of every weight layer; `pins` fixes layers (by node index) to a width.
pub fn layer_options(
    graph: &Graph,
    sens: &Sensitivity,
    perturbation: Perturbation<'_>,
    pins: &[(usize, u8)],
) -> Vec<LayerOptions> {
    graph
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, node)| {
            let params = node.op.weight_count();
            if params == 0 {
                return None;
            }
            let trace = sens.weights.get(i).cloned().flatten()?;
            let omega = match sens.quadratic.get(i).cloned().flatten() {
                // A negative form (possible only where the Hessian is indefinite, a softmax inside
                // the loss) would reward quantizing; no curvature is the most it can say.
                Some(q) if q.len() == WEIGHT_BITS.len() => q.iter().map(|&x| x.max(0.0)).collect(),
                _ => WEIGHT_BITS.iter().map(|&b| trace.omega(&perturbation(i, b))).collect(),
            };
            let bytes = WEIGHT_BITS.iter().map(|&b| weight_layer_bytes(&node.op, b)).collect();
            let allowed = match pins.iter().find(|(n, _)| *n == i) {
                Some(&(_, b)) => vec![b],
                None => WEIGHT_BITS.to_vec(),
            };
            Some(LayerOptions { node: i, name: node.name.clone(), params, trace, bytes, omega, allowed })
        })
        .collect()
}

/// Ω tables of every activation whose bit width can be chosen.
pub fn activation_options(graph: &Graph, sens: &Sensitivity, calib: &Calibration, raw: RawKind) -> Vec<ActOptions> {
    let mut out = Vec::new();
    let tied_to = |v: usize| {
        graph.nodes.iter().find(|n| n.output == v).and_then(|n| n.op.ties_output_to_input().then_some(n.inputs[0]))
    };
    for v in 0..graph.values.len() {
        let fixed_input = v == graph.input && raw != RawKind::F32;
        let softmax = graph.nodes.iter().any(|n| n.output == v && n.op.is_normalization());
        if fixed_input || softmax || tied_to(v).is_some() {
            continue;
        }
        let Some(trace) = sens.activations.get(v).cloned().flatten() else { continue };
        // Followers: values tied (transitively) to v.
        let mut followers = Vec::new();
        for w in 0..graph.values.len() {
            let mut root = w;
            while let Some(r) = tied_to(root) {
                root = r;
            }
            if root == v && w != v {
                followers.push(w);
            }
        }
        let elements = graph.values[v].elements();
        let omega = ACT_BITS
            .iter()
            .map(|&a| {
                let q = calib.choose(v, a);
                let mse =
                    calib.sorted[v].iter().map(|&x| ((q.dequantize(q.quantize(x)) - x) as f64).powi(2)).sum::<f64>()
                        / calib.sorted[v].len().max(1) as f64;
                // E‖Q(A) − A‖² per sample = n · (mean squared error per element).
                trace.average * elements as f64 * mse
            })
            .collect();
        out.push(ActOptions { value: v, name: graph.values[v].name.clone(), elements, trace, followers, omega });
    }
    out
}

/// A point of the weight frontier: total bytes, ΣΩ, and the bits of each layer (in the order of
/// the `LayerOptions` it was computed from).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrontierPoint {
    pub size: usize,
    pub omega: f64,
    pub bits: Vec<u8>,
}

/// The exact Pareto frontier of (Σ size, ΣΩ) over all per-layer choices, sorted by size. `size`
/// maps (layer, bits) to the measure being budgeted (bytes, or params·bits for average bits).
///
/// A width is offered only where it is smaller than every wider allowed width: rows of a weight
/// or two take a byte at any width (a fully connected layer on one feature), so narrower weights
/// there save nothing, and their Ω, equal up to rounding noise, must not pick them over weights
/// that run cheaper.
pub fn frontier(layers: &[LayerOptions], size: impl Fn(&LayerOptions, u8) -> usize) -> Vec<FrontierPoint> {
    let mut points = vec![FrontierPoint { size: 0, omega: 0.0, bits: Vec::new() }];
    for layer in layers {
        let offered: Vec<u8> = (layer.allowed.iter().copied())
            .filter(|&b| !layer.allowed.iter().any(|&w| w > b && size(layer, w) <= size(layer, b)))
            .collect();
        let mut next: Vec<FrontierPoint> = Vec::with_capacity(points.len() * offered.len());
        for p in &points {
            for &b in &offered {
                let k = WEIGHT_BITS.iter().position(|&x| x == b).unwrap_or(0);
                let mut bits = p.bits.clone();
                bits.push(b);
                next.push(FrontierPoint { size: p.size + size(layer, b), omega: p.omega + layer.omega[k], bits });
            }
        }
        points = pareto(next);
    }
    points
}

/// Keeps the points no other point dominates (smaller or equal size and strictly smaller Ω, or
/// equal Ω and strictly smaller size).
fn pareto(mut pts: Vec<FrontierPoint>) -> Vec<FrontierPoint> {
    pts.sort_by(|a, b| a.size.cmp(&b.size).then(a.omega.total_cmp(&b.omega)));
    let mut out: Vec<FrontierPoint> = Vec::new();
    for p in pts {
        if out.last().is_none_or(|last| p.omega < last.omega) {
            out.push(p);
        }
    }
    out
}

/// The frontier point with the smallest ΣΩ whose size is within `budget`.
pub fn select(points: &[FrontierPoint], budget: usize) -> Option<&FrontierPoint> {
    points.iter().filter(|p| p.size <= budget).min_by(|a, b| a.omega.total_cmp(&b.omega))
}

/// Bytes alive at each op step for an activation bit assignment, as the planner sees lifetimes
/// (without in-place reuse, so an upper bound of the planned arena's lower bound).
pub fn live_steps(graph: &Graph) -> Vec<Vec<usize>> {
    let consumers = graph.consumers();
    let n = graph.nodes.len();
    let mut steps = vec![Vec::new(); n];
    for (v, readers) in consumers.iter().enumerate() {
        let first = graph.nodes.iter().position(|nd| nd.output == v).unwrap_or(0);
        let mut last = readers.iter().copied().max().unwrap_or(first);
        if graph.is_output(v) {
            last = n.saturating_sub(1);
        }
        for step in steps.iter_mut().take(last + 1).skip(first) {
            step.push(v);
        }
    }
    steps
}

fn value_bytes(graph: &Graph, v: usize, bits: u8) -> usize {
    let n = graph.values[v].elements();
    if graph.nodes.iter().any(|nd| nd.output == v && nd.op.is_normalization()) {
        4 * n
    } else {
        (n * bits as usize).div_ceil(8)
    }
}

/// Chooses activation bits minimising ΣΩ subject to every step's live bytes ≤ `max_bytes`
/// (exact 0-1 program). Returns the bits per value (all values; non-choosable ones keep
/// `default`), or an error if even all-4-bit does not fit.
pub fn choose_activations(
    graph: &Graph,
    acts: &[ActOptions],
    default: &BitConfig,
    max_bytes: usize,
) -> Result<Vec<u8>> {
    use good_lp::{constraint, microlp, variable, Expression, ProblemVariables, Solution, SolverModel};
    let mut vars = ProblemVariables::new();
    // x[j] = 1 when activation j is 4-bit.
    let x: Vec<_> = acts.iter().map(|_| vars.add(variable().binary())).collect();
    let mut objective = Expression::from(0.0);
    for (a, &xj) in acts.iter().zip(&x) {
        objective += a.omega[1] + (a.omega[0] - a.omega[1]) * xj;
    }
    let owner: Vec<Option<usize>> =
        (0..graph.values.len()).map(|v| acts.iter().position(|a| a.value == v || a.followers.contains(&v))).collect();
    let mut problem = vars.minimise(objective).using(microlp);
    for (i, step) in live_steps(graph).into_iter().enumerate() {
        // The op's kernel scratch is alive at its step too (it barely depends on the input's
        // bits: the larger of the two).
        let w = default.weight_bits.get(i).copied().unwrap_or(8);
        let scratch = [4, 8].map(|a| crate::emit::scratch_bytes(graph, i, w, a)).into_iter().max().unwrap_or(0);
        let mut live = Expression::from(scratch as f64);
        for v in step {
            match owner[v] {
                Some(j) => {
                    let (b8, b4) = (value_bytes(graph, v, 8) as f64, value_bytes(graph, v, 4) as f64);
                    live += b8 + (b4 - b8) * x[j];
                }
                None => live += value_bytes(graph, v, default.act_bits[v]) as f64,
            }
        }
        problem = problem.with(constraint!(live <= max_bytes as f64));
    }
    let solution =
        problem.solve().map_err(|e| anyhow!("no activation bit assignment fits {max_bytes} arena bytes ({e})"))?;
    let mut bits = default.act_bits.clone();
    for (a, &xj) in acts.iter().zip(&x) {
        let b = if solution.value(xj) > 0.5 { 4 } else { 8 };
        bits[a.value] = b;
        for &f in &a.followers {
            bits[f] = b;
        }
    }
    Ok(bits)
}

/// Applies a weight frontier point to a bit configuration.
pub fn apply_weights(layers: &[LayerOptions], point: &FrontierPoint, mut bits: BitConfig) -> BitConfig {
    for (l, &b) in layers.iter().zip(&point.bits) {
        bits.weight_bits[l.node] = b;
    }
    bits
}

/// Resolves `--pin NAME=BITS` arguments against the graph's weight layers.
pub fn resolve_pins(graph: &Graph, pins: &[String], pin_first_last: bool) -> Result<Vec<(usize, u8)>> {
    let mut out = Vec::new();
    for p in pins {
        let (name, bits) = p.rsplit_once('=').ok_or_else(|| anyhow!("--pin '{p}': expected LAYER=BITS"))?;
        let bits: u8 = bits.parse().map_err(|_| anyhow!("--pin '{p}': bits must be 2, 4 or 8"))?;
        if !WEIGHT_BITS.contains(&bits) {
            bail!("--pin '{p}': bits must be 2, 4 or 8");
        }
        let node = graph
            .nodes
            .iter()
            .position(|n| n.name == name && n.op.has_weights())
            .ok_or_else(|| anyhow!("--pin '{p}': no layer with weights is named '{name}'"))?;
        out.push((node, bits));
    }
    if pin_first_last {
        let weighted: Vec<usize> =
            graph.nodes.iter().enumerate().filter(|(_, n)| n.op.has_weights()).map(|(i, _)| i).collect();
        for i in [weighted.first(), weighted.last()].into_iter().flatten() {
            if !out.iter().any(|(n, _)| n == i) {
                out.push((*i, 8));
            }
        }
    }
    Ok(out)
}

/// The activation quantization error of one tensor at `bits`, for reports.
pub fn activation_mse(calib: &Calibration, v: usize, q: &ActQuant) -> f64 {
    let s = &calib.sorted[v];
    s.iter().map(|&x| ((q.dequantize(q.quantize(x)) - x) as f64).powi(2)).sum::<f64>() / s.len().max(1) as f64
}

/// What the user constrains: any combination; none means uniform 8-bit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    /// Upper bound on weight bytes in the model file (packed weights + per-channel parameters).
    pub weight_bytes: Option<usize>,
    /// Upper bound on the parameter-weighted average weight bit width.
    pub avg_bits: Option<f64>,
    /// Upper bound on the arena; activations go to 4 bits where Ω says it hurts least.
    pub arena_bytes: Option<usize>,
}

/// The outcome of an allocation: the configuration and what it was chosen from.
#[derive(Debug, Clone)]
pub struct Allocation {
    pub bits: BitConfig,
    pub layers: Vec<LayerOptions>,
    pub activations: Vec<ActOptions>,
    /// The weight-bytes frontier (always in bytes, for reports).
    pub frontier: Vec<FrontierPoint>,
    /// Index in `frontier` of the chosen weights (by their byte size).
    pub chosen: Option<usize>,
    /// The weight budget needed widths whose rows leave lanes of their last word empty
    /// ([`fills_words`]), which the allocation otherwise leaves out: every width was offered.
    pub partial_words: bool,
}

/// HAWQ-V2 allocation under `budget`: weights from the exact frontier, activations from the
/// exact 0-1 program, each minimising the total perturbation.
pub fn allocate(
    graph: &Graph,
    sens: &Sensitivity,
    calib: &Calibration,
    raw: RawKind,
    perturbation: Perturbation<'_>,
    budget: Budget,
    pins: &[(usize, u8)],
) -> Result<Allocation> {
    let by_bytes = |l: &LayerOptions, b: u8| l.bytes[WEIGHT_BITS.iter().position(|&x| x == b).unwrap_or(2)];
    // Widths whose rows leave lanes empty cost the kernels instructions for nothing: they are
    // offered only when the budget cannot be met without them.
    let all_widths = layer_options(graph, sens, perturbation, pins);
    let mut layers = all_widths.clone();
    for l in layers.iter_mut().filter(|l| !pins.iter().any(|(n, _)| *n == l.node)) {
        l.allowed.retain(|&b| fills_words(&graph.nodes[l.node].op, b));
    }
    let smallest = |layers: &[LayerOptions], size: &dyn Fn(&LayerOptions, u8) -> usize| -> usize {
        layers.iter().map(|l| l.allowed.iter().map(|&b| size(l, b)).min().unwrap_or(0)).sum()
    };
    let by_bits = |l: &LayerOptions, b: u8| l.params * b as usize;
    let total: usize = layers.iter().map(|l| l.params).sum();
    let reachable = match (budget.weight_bytes, budget.avg_bits) {
        (Some(max), None) => smallest(&layers, &by_bytes) <= max,
        (None, Some(avg)) => smallest(&layers, &by_bits) <= (avg * total as f64).floor() as usize,
        _ => true,
    };
    let partial_words = !reachable;
    if partial_words {
        layers = all_widths;
    }
    let activations = activation_options(graph, sens, calib, raw);
    let bytes_frontier = frontier(&layers, by_bytes);
    let mut bits = BitConfig::uniform(graph, 8, 8);
    let weights: Option<FrontierPoint> = match (budget.weight_bytes, budget.avg_bits) {
        (Some(_), Some(_)) => bail!("give a weight budget in bytes or in average bits, not both"),
        (Some(max), None) => Some(
            select(&bytes_frontier, max)
                .ok_or_else(|| {
                    anyhow!("no configuration fits {max} weight bytes (the smallest needs {})", bytes_frontier[0].size)
                })?
                .clone(),
        ),
        (None, Some(avg)) => {
            // The same exact frontier, over params · bits instead of bytes.
            let bits_frontier = frontier(&layers, by_bits);
            let limit = (avg * total as f64).floor() as usize;
            let p = select(&bits_frontier, limit)
                .ok_or_else(|| anyhow!("no configuration averages {avg} weight bits or fewer"))?;
            let size = layers.iter().zip(&p.bits).map(|(l, &b)| by_bytes(l, b)).sum();
            Some(FrontierPoint { size, omega: p.omega, bits: p.bits.clone() })
        }
        (None, None) => None,
    };
    let chosen = weights.as_ref().and_then(|w| bytes_frontier.iter().position(|p| p.bits == w.bits));
    if let Some(w) = &weights {
        bits = apply_weights(&layers, w, bits);
    }
    if let Some(max) = budget.arena_bytes {
        bits.act_bits = choose_activations(graph, &activations, &bits, max)?;
    }
    Ok(Allocation { bits, layers, activations, frontier: bytes_frontier, chosen, partial_words })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The widths offered to a convolution of `out_c` rows of `kh·kw·in_c` weights and to a
    /// fully connected layer: 8 bits always, narrower ones where the rows fill 7/8 of their
    /// words' lanes.
    #[test]
    fn narrow_widths_only_where_rows_fill_their_words() {
        use crate::ir::{Clamp, Conv, Fc, Window};
        use ndarray::{Array1, Array2, Array4};
        let conv = |kh: usize, in_c: usize, depthwise: bool| {
            OpKind::Conv(Conv {
                weight: Array4::zeros((4, kh, kh, in_c)),
                bias: Array1::zeros(4),
                window: Window { kernel: [kh, kh], stride: [1, 1], pads: [0; 4] },
                depthwise,
                clamp: Clamp::NONE,
            })
        };
        let fc =
            |k: usize| OpKind::Fc(Fc { weight: Array2::zeros((3, k)), bias: Array1::zeros(3), clamp: Clamp::NONE });
        let offered = |op: &OpKind| WEIGHT_BITS.iter().copied().filter(|&b| fills_words(op, b)).collect::<Vec<_>>();
        // 24 weights: three 4-bit words; 1.5 2-bit words (8 of 32 lanes padding).
        assert_eq!(offered(&conv(1, 24, false)), [4, 8]);
        // 72 weights: 4.5 2-bit words, 8 of 80 lanes padding (1/10).
        assert_eq!(offered(&conv(3, 8, false)), [2, 4, 8]);
        // 70 weights: 10 of 80 2-bit lanes (1/8, the most allowed); 2 of 72 4-bit ones.
        assert_eq!(offered(&fc(70)), [2, 4, 8]);
        // 69: 11 of 80 2-bit lanes.
        assert_eq!(offered(&fc(69)), [4, 8]);
        // 27 (3×3×3): 5 of 32 lanes at 4 and at 2 bits.
        assert_eq!(offered(&conv(3, 3, false)), [8]);
        // Depthwise rows are taken tap by tap: every width.
        assert_eq!(offered(&conv(3, 1, true)), [2, 4, 8]);
        assert_eq!(offered(&fc(10)), [8]);
        assert_eq!(offered(&fc(64)), [2, 4, 8]);
    }

    fn layer(bytes: [usize; 3], omega: [f64; 3], allowed: Vec<u8>) -> LayerOptions {
        LayerOptions {
            node: 0,
            name: String::new(),
            params: 0,
            trace: Trace { average: 1.0, std_error: 0.0, channels: Vec::new() },
            bytes: bytes.to_vec(),
            omega: omega.to_vec(),
            allowed,
        }
    }

    fn by_bytes(l: &LayerOptions, b: u8) -> usize {
        l.bytes[WEIGHT_BITS.iter().position(|&x| x == b).unwrap()]
    }

    proptest! {
        /// The DP frontier equals the brute-force Pareto set over all 3^n configurations.
        #[test]
        fn dp_frontier_matches_brute_force(spec in prop::collection::vec((1usize..50, 1usize..50, 1usize..50, 0.0f64..10.0, 0.0f64..10.0, 0.0f64..10.0, 0u8..4), 1..6)) {
            let layers: Vec<LayerOptions> = spec.iter().map(|&(a, b, c, x, y, z, pin)| {
                let allowed = match pin { 0 => vec![2], 1 => vec![8], _ => WEIGHT_BITS.to_vec() };
                layer([a, a + b, a + b + c], [x + y + z, y + z, z], allowed)
            }).collect();
            let dp = frontier(&layers, by_bytes);
            let mut all = vec![FrontierPoint { size: 0, omega: 0.0, bits: vec![] }];
            for l in &layers {
                all = all.iter().flat_map(|p| l.allowed.iter().map(move |&b| {
                    let k = WEIGHT_BITS.iter().position(|&x| x == b).unwrap();
                    let mut bits = p.bits.clone();
                    bits.push(b);
                    FrontierPoint { size: p.size + l.bytes[k], omega: p.omega + l.omega[k], bits }
                })).collect();
            }
            let brute = pareto(all.clone());
            prop_assert_eq!(dp.len(), brute.len());
            for (d, b) in dp.iter().zip(&brute) {
                prop_assert_eq!(d.size, b.size);
                prop_assert!((d.omega - b.omega).abs() < 1e-9);
            }
            // No configuration dominates a frontier point.
            for d in &dp {
                prop_assert!(!all.iter().any(|p| p.size <= d.size && p.omega < d.omega - 1e-9));
            }
            for (d, l) in dp.iter().flat_map(|d| d.bits.iter().zip(&layers).map(move |x| (d, x))) {
                prop_assert!(l.1.allowed.contains(l.0), "{:?}", d);
            }
        }
    }

    /// A graph of one fully connected layer of `outputs × inputs` zero weights.
    fn fc_graph(outputs: usize, inputs: usize) -> Graph {
        use crate::ir::{Clamp, Fc, InputLayout, Node, Value};
        let fc = Fc {
            weight: ndarray::Array2::zeros((outputs, inputs)),
            bias: ndarray::Array1::zeros(outputs),
            clamp: Clamp::NONE,
        };
        Graph {
            values: vec![
                Value { name: "x".into(), shape: vec![inputs] },
                Value { name: "y".into(), shape: vec![outputs] },
            ],
            nodes: vec![Node { name: "fc".into(), op: OpKind::Fc(fc), inputs: vec![0], output: 1 }],
            input: 0,
            output: 1,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
        }
    }

    /// Ω of a layer: the measured `vᵀHv` per width when known (negative values, possible only
    /// with an indefinite Hessian, count as 0); otherwise the per-channel trace form, or the
    /// layer-average trace form when per-channel traces are missing.
    #[test]
    fn omega_from_exact_forms_else_channel_traces() {
        let graph = fc_graph(2, 3);
        // Channel errors (per output channel): 1 and 3 at every width, scaled by the width.
        let errors = |_: usize, b: u8| vec![1.0 / b as f64, 3.0 / b as f64];
        let trace = Trace { average: 2.0, std_error: 0.0, channels: vec![1.0, 4.0] };
        let mut sens = Sensitivity { weights: vec![Some(trace.clone())], ..Sensitivity::default() };
        let per_channel = layer_options(&graph, &sens, &errors, &[]);
        let want: Vec<f64> = WEIGHT_BITS.iter().map(|&b| (1.0 + 12.0) / b as f64).collect();
        assert_eq!(per_channel[0].omega, want);
        sens.weights[0] = Some(Trace { channels: Vec::new(), ..trace });
        let average = layer_options(&graph, &sens, &errors, &[]);
        let want: Vec<f64> = WEIGHT_BITS.iter().map(|&b| 2.0 * 4.0 / b as f64).collect();
        assert_eq!(average[0].omega, want);
        sens.quadratic = vec![Some(vec![5.0, 0.5, -1e-9])];
        assert_eq!(layer_options(&graph, &sens, &errors, &[])[0].omega, vec![5.0, 0.5, 0.0]);
    }

    /// A layer of 24 inputs is offered 2 bits (a word and a half a row) only when the weight
    /// budget cannot be met without them, and the allocation says so.
    #[test]
    fn partial_words_only_when_the_budget_needs_them() {
        let graph = fc_graph(4, 24);
        let trace = Trace { average: 1.0, std_error: 0.0, channels: Vec::new() };
        let sens = Sensitivity { weights: vec![Some(trace)], ..Sensitivity::default() };
        let calib = Calibration { sorted: vec![vec![0.0]; 2], channel_means: vec![vec![0.0]; 2] };
        let errors = |_: usize, b: u8| vec![1.0 / b as f64; 4];
        let run = |max: usize| {
            let budget = Budget { weight_bytes: Some(max), ..Budget::default() };
            allocate(&graph, &sens, &calib, RawKind::F32, &errors, budget, &[])
        };
        // Rows: 6, 12 or 24 bytes at 2, 4 or 8 bits, and 4 bytes of parameters each.
        let at4 = run(4 * 16).unwrap();
        assert_eq!((at4.bits.weight_bits[0], at4.partial_words), (4, false));
        assert!(at4.frontier.iter().all(|p| p.bits[0] != 2), "{:?}", at4.frontier);
        let at2 = run(4 * 10).unwrap();
        assert_eq!((at2.bits.weight_bits[0], at2.partial_words), (2, true));
        assert!(run(4 * 10 - 1).is_err());
    }

    /// A width that saves no bytes is not chosen, even when rounding noise puts its Ω below
    /// the wider width's.
    #[test]
    fn widths_that_save_nothing_are_not_offered() {
        let layers = vec![
            layer([16, 16, 16], [0.0, 1e-30, 2e-30], WEIGHT_BITS.to_vec()),
            layer([10, 20, 40], [9.0, 2.0, 0.2], WEIGHT_BITS.to_vec()),
        ];
        let f = frontier(&layers, by_bytes);
        assert!(f.iter().all(|p| p.bits[0] == 8), "{f:?}");
        assert_eq!(f.iter().map(|p| p.size).collect::<Vec<_>>(), vec![26, 36, 56]);
        // Pinned to a width that saves nothing: kept, it is the user's choice.
        let pinned = vec![layer([16, 16, 16], [0.0; 3], vec![2])];
        assert_eq!(frontier(&pinned, by_bytes)[0].bits, vec![2]);
    }

    #[test]
    fn select_takes_the_least_perturbation_within_budget() {
        let layers = vec![
            layer([10, 20, 40], [5.0, 1.0, 0.1], WEIGHT_BITS.to_vec()),
            layer([10, 20, 40], [9.0, 2.0, 0.2], WEIGHT_BITS.to_vec()),
        ];
        let f = frontier(&layers, by_bytes);
        let p = select(&f, 60).unwrap();
        assert_eq!(p.size, 60);
        assert_eq!(p.bits, vec![4, 8], "the more sensitive layer keeps 8 bits");
        assert!(select(&f, 19).is_none());
    }
}
