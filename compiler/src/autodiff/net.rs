//! The differentiated part of a graph, prepared once per call (weights in the layouts the kernels
//! want, window geometry), and the primal record of one sample.

use anyhow::{bail, Result};

use super::kernels::{max_argmax, taps_major, Geom};
use super::Loss;
use crate::float_exec;
use crate::ir::{Activation, Clamp, Graph, OpKind, ValueId};
use crate::quantize::ActQuant;

pub(super) enum Op {
    Conv {
        geom: Geom,
        /// `[out_c, patch]` (normal) or `[out_c, taps]` (depthwise), row-major.
        w: Vec<f32>,
        /// Depthwise only: `[taps, out_c]`.
        w_taps: Vec<f32>,
        depthwise: bool,
        clamp: Clamp,
    },
    Fc {
        /// `(outputs, inputs)`.
        dims: (usize, usize),
        w: Vec<f32>,
        clamp: Clamp,
    },
    AvgPool(Geom),
    MaxPool(Geom),
    Add(Clamp),
    Reshape,
    Softmax {
        row_len: usize,
    },
    /// An elementwise nonlinearity of the input, element `i` in channel `i % channels`.
    Activation {
        f: Activation,
        channels: usize,
    },
    /// `a[i] · b[i % b.len()]` of the two inputs (`b` of `a`'s size, or one per channel), then
    /// the clamp.
    Mul(Clamp),
    /// Channel concatenation of the inputs over `pixels` positions, with each input's channels.
    Concat {
        pixels: usize,
        channels: Vec<usize>,
    },
    /// `out[i] = in[source[i]]`: Slice, nearest Resize and DepthToSpace, which copy input
    /// elements (some several times, or not at all).
    Gather {
        source: Vec<u32>,
    },
}

impl Op {
    pub fn clamp(&self) -> Clamp {
        match self {
            Op::Conv { clamp, .. } | Op::Fc { clamp, .. } | Op::Add(clamp) | Op::Mul(clamp) => *clamp,
            _ => Clamp::NONE,
        }
    }
}

pub(super) struct Net<'g> {
    pub graph: &'g Graph,
    pub loss: Loss,
    /// Ops of nodes `0..end`, the nodes the loss depends on (the final Softmax is left out when the
    /// loss is cross-entropy on its input).
    pub ops: Vec<Op>,
    pub end: usize,
    /// The value the loss reads: the logits for cross-entropy, the output otherwise.
    pub head: ValueId,
    /// Node producing each value (`None` for the input and for values no node produces).
    pub producer: Vec<Option<usize>>,
    /// Does the loss depend on the value?
    pub live: Vec<bool>,
    /// Why the network is not piecewise linear up to the loss, naming the first node that makes
    /// it so (a softmax, a smooth activation, or a product of two values that both depend on the
    /// input); `None` when it is, and each diagonal block of the Hessian is then its
    /// Gauss–Newton block.
    pub not_piecewise_linear: Option<String>,
    /// Activation quantizers by value (empty: float activations): the forward pass rounds those
    /// values to their grids, and the backward pass lets the gradient through the rounding
    /// unchanged inside each quantizer's clip and stops it at and beyond the clip (LSQ's
    /// straight-through estimator, [`ActQuant::derivatives`]), where it moves the scale instead.
    pub act: &'g [Option<ActQuant>],
    /// Whether the rounding of [`Net::act`] is differentiated as LSQ (the tape then keeps the
    /// values before their rounding); otherwise the gradient passes every rounding unchanged.
    pub lsq: bool,
}

impl<'g> Net<'g> {
    pub fn new(graph: &'g Graph, loss: Loss) -> Result<Net<'g>> {
        let mut producer = vec![None; graph.values.len()];
        for (i, n) in graph.nodes.iter().enumerate() {
            producer[n.output] = Some(i);
        }
        let head = match loss {
            Loss::CrossEntropy if graph.ends_in_normalization() => {
                let last = graph.nodes.last().expect("a graph ending in softmax has nodes");
                if last.output != graph.output {
                    bail!("the final {} does not produce the graph's output", last.op.name());
                }
                last.inputs[0]
            }
            _ => graph.output,
        };
        let end = producer[head].map_or(0, |p| p + 1);
        if head != graph.input && producer[head].is_none() {
            bail!("the loss reads value {head}, which no node produces");
        }
        let head_len = graph.values[head].elements();
        match loss {
            Loss::CrossEntropy => {
                let last_dim = graph.values[head].shape.last().copied().unwrap_or(1);
                if head_len < 2 || last_dim != head_len {
                    bail!(
                        "cross-entropy needs a single row of at least 2 logits; value {:?} has shape {:?}",
                        graph.values[head].name,
                        graph.values[head].shape
                    );
                }
            }
            Loss::Reconstruction => {
                let input_len = graph.values[graph.input].elements();
                if head_len != input_len {
                    bail!("reconstruction loss: the output has {head_len} elements, the input {input_len}");
                }
            }
            Loss::Mse => {}
        }

        let mut live = vec![false; graph.values.len()];
        live[head] = true;
        for n in graph.nodes[..end].iter().rev() {
            if live[n.output] {
                for &i in &n.inputs {
                    live[i] = true;
                }
            }
        }

        let ops = graph.nodes[..end]
            .iter()
            .map(|node| {
                let input = &graph.values[node.inputs[0]];
                let output = &graph.values[node.output];
                let gather = |source: Vec<u32>| {
                    assert!(
                        source.len() == output.elements() && source.iter().all(|&s| (s as usize) < input.elements()),
                        "node {:?}: {} of {:?} into {:?}",
                        node.name,
                        node.op.name(),
                        input.shape,
                        output.shape
                    );
                    Op::Gather { source }
                };
                Ok(match &node.op {
                    OpKind::Conv(c) => {
                        let geom = Geom::new(&c.window, input, output, &node.name);
                        let w: Vec<f32> = c.weight.iter().copied().collect();
                        let expected =
                            if c.depthwise { geom.out_c * geom.taps() } else { geom.out_c * geom.patch_len() };
                        assert_eq!(w.len(), expected, "node {:?}: weight size vs its values", node.name);
                        if c.depthwise {
                            assert!(
                                geom.in_c > 0 && geom.out_c.is_multiple_of(geom.in_c),
                                "node {:?}: depthwise out_c not a multiple of in_c",
                                node.name
                            );
                        }
                        let w_taps = if c.depthwise { taps_major(&w, geom.out_c, geom.taps()) } else { Vec::new() };
                        Op::Conv { geom, w, w_taps, depthwise: c.depthwise, clamp: c.clamp }
                    }
                    OpKind::Fc(f) => {
                        let dims = f.weight.dim();
                        assert_eq!(dims.1, input.elements(), "node {:?}: fc input size", node.name);
                        Op::Fc { dims, w: f.weight.iter().copied().collect(), clamp: f.clamp }
                    }
                    OpKind::AvgPool(w) => Op::AvgPool(Geom::new(w, input, output, &node.name)),
                    OpKind::MaxPool(w) => Op::MaxPool(Geom::new(w, input, output, &node.name)),
                    OpKind::Add(c) => Op::Add(*c),
                    OpKind::Reshape => Op::Reshape,
                    OpKind::Softmax => Op::Softmax { row_len: output.shape.last().copied().unwrap_or(1).max(1) },
                    // Read only as the cross-entropy's normalization, which leaves it out above;
                    // a loss on log-probabilities themselves has no use that would pay for its
                    // derivatives.
                    OpKind::LogSoftmax => bail!(
                        "node {:?} (log_softmax): a final LogSoftmax is differentiated only under the cross-entropy \
                         loss, which reads its input (the logits); pass --loss cross-entropy",
                        node.name
                    ),
                    OpKind::Activation(f) => {
                        assert_eq!(input.elements(), output.elements(), "node {:?}: activation size", node.name);
                        Op::Activation { f: f.clone(), channels: output.hwc().2.max(1) }
                    }
                    OpKind::Mul(clamp) => {
                        let (a, b) = (input.elements(), graph.values[node.inputs[1]].elements());
                        assert!(
                            b > 0 && a.is_multiple_of(b) && output.elements() == a,
                            "node {:?}: mul of {a} and {b} elements into {}",
                            node.name,
                            output.elements()
                        );
                        Op::Mul(*clamp)
                    }
                    OpKind::Concat => {
                        let (h, w, out_c) = output.hwc();
                        let channels: Vec<usize> = node.inputs.iter().map(|&i| graph.values[i].hwc().2).collect();
                        let pixels_match = node.inputs.iter().all(|&i| {
                            let (hi, wi, _) = graph.values[i].hwc();
                            hi * wi == h * w
                        });
                        assert!(
                            channels.iter().sum::<usize>() == out_c && pixels_match,
                            "node {:?}: concat of channels {channels:?} into {:?}",
                            node.name,
                            output.shape
                        );
                        Op::Concat { pixels: h * w, channels }
                    }
                    OpKind::Slice { begin, step } => gather(slice_source(input.hwc(), output.hwc(), *begin, *step)),
                    OpKind::Resize(factor) => gather(resize_source(input.hwc(), *factor)),
                    OpKind::DepthToSpace(block) => gather(depth_to_space_source(input.hwc(), *block)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let not_piecewise_linear = not_piecewise_linear(graph, end, &live);
        Ok(Net { graph, loss, ops, end, head, producer, live, not_piecewise_linear, act: &[], lsq: false })
    }

    /// Is the network piecewise linear up to the loss (see [`Net::not_piecewise_linear`])?
    pub fn is_piecewise_linear(&self) -> bool {
        self.not_piecewise_linear.is_none()
    }

    pub fn len(&self, value: ValueId) -> usize {
        self.graph.values[value].elements()
    }

    /// Position of a value in execution order: 0 for the input, `p + 1` for node `p`'s output.
    pub fn position(&self, value: ValueId) -> usize {
        self.producer[value].map_or(0, |p| p + 1)
    }

    /// Weight layers the loss depends on, in node order.
    pub fn weight_nodes(&self) -> Vec<usize> {
        (0..self.end)
            .filter(|&n| self.graph.nodes[n].op.has_weights() && self.live[self.graph.nodes[n].output])
            .collect()
    }

    /// Values the loss depends on (the input included), in id order.
    pub fn live_values(&self) -> Vec<ValueId> {
        (0..self.graph.values.len()).filter(|&v| self.live[v]).collect()
    }

    /// Runs one sample forward with the float executor and records what the derivatives need.
    pub fn tape(&self, input: &[f32]) -> Tape {
        let (values, unrounded) = if self.act.is_empty() {
            (float_exec::run_all(self.graph, input), Vec::new())
        } else if self.lsq {
            float_exec::run_all_fake_quantized_with_unrounded(self.graph, input, self.act)
        } else {
            (float_exec::run_all_fake_quantized(self.graph, input, self.act), Vec::new())
        };
        let argmax = self
            .ops
            .iter()
            .enumerate()
            .map(|(n, op)| match op {
                Op::MaxPool(geom) => max_argmax(geom, &values[self.graph.nodes[n].inputs[0]]),
                _ => Vec::new(),
            })
            .collect();
        Tape { values, unrounded, argmax }
    }

    /// The quantizer of `value`, if the forward pass rounds it.
    pub fn quantizer(&self, value: ValueId) -> Option<&ActQuant> {
        self.act.get(value).and_then(Option::as_ref)
    }
}

/// Why nodes `0..end` are not piecewise linear in the input and the weights (for a fixed pattern
/// of clamps, kinks and max-pool argmaxes), considering the nodes the loss depends on: the first
/// softmax, smooth activation, or product of two values that both depend on the input (a
/// product is bilinear, so its Hessian has a part beyond Gauss–Newton's).
fn not_piecewise_linear(graph: &Graph, end: usize, live: &[bool]) -> Option<String> {
    let mut depends_on_input = vec![false; graph.values.len()];
    depends_on_input[graph.input] = true;
    for node in &graph.nodes[..end] {
        depends_on_input[node.output] = node.inputs.iter().any(|&i| depends_on_input[i]);
    }
    graph.nodes[..end].iter().filter(|node| live[node.output]).find_map(|node| {
        let why = match &node.op {
            OpKind::Softmax => "is not piecewise linear (a softmax inside the loss)",
            OpKind::Activation(f) if !f.is_piecewise_linear() => "is not piecewise linear",
            OpKind::Mul(_) if node.inputs.iter().all(|&i| depends_on_input[i]) => {
                "is not piecewise linear (a product of two values that both depend on the input)"
            }
            _ => return None,
        };
        Some(format!("node {:?} ({}) {why}", node.name, node.op.name()))
    })
}

/// The input element each output element of a Slice copies (see [`OpKind::Slice`]).
pub(super) fn slice_source(
    (_, in_w, in_c): (usize, usize, usize),
    (h, w, c): (usize, usize, usize),
    begin: [usize; 3],
    step: [usize; 3],
) -> Vec<u32> {
    let mut source = Vec::with_capacity(h * w * c);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let (sy, sx, sc) = (begin[0] + y * step[0], begin[1] + x * step[1], begin[2] + ch * step[2]);
                source.push(((sy * in_w + sx) * in_c + sc) as u32);
            }
        }
    }
    source
}

/// The input element each output element of a nearest Resize by `[f_h, f_w]` copies.
pub(super) fn resize_source((h, w, c): (usize, usize, usize), [fh, fw]: [usize; 2]) -> Vec<u32> {
    let mut source = Vec::with_capacity(h * fh * w * fw * c);
    for y in 0..h * fh {
        for x in 0..w * fw {
            let pixel = (y / fh) * w + x / fw;
            source.extend((pixel * c..(pixel + 1) * c).map(|i| i as u32));
        }
    }
    source
}

/// The input element each output element of a DepthToSpace with block `b` (DCR order) copies.
pub(super) fn depth_to_space_source((h, w, c): (usize, usize, usize), b: usize) -> Vec<u32> {
    let out_c = c / (b * b).max(1);
    let mut source = Vec::with_capacity(h * w * c);
    for y in 0..h * b {
        for x in 0..w * b {
            let base = ((y / b) * w + x / b) * c + ((y % b) * b + x % b) * out_c;
            source.extend((base..base + out_c).map(|i| i as u32));
        }
    }
    source
}

/// One sample's forward pass: every value (rounded where it has a quantizer), and each max
/// pool's argmax per output element.
pub(super) struct Tape {
    pub values: Vec<Vec<f32>>,
    /// The values that have a quantizer in [`Net::act`] before their rounding (empty for the
    /// others, and for every value when there are no quantizers).
    pub unrounded: Vec<Vec<f32>>,
    pub argmax: Vec<Vec<u32>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{InputLayout, Node, Value};

    /// Runs one node on the input `0, 1, 2, …` with the float executor: each output element is
    /// then the index of the input element it copies.
    fn copied_indices(op: OpKind, input: &[usize], output: &[usize]) -> Vec<u32> {
        let value = |name: &str, shape: &[usize]| Value { name: name.into(), shape: shape.to_vec() };
        let graph = Graph {
            values: vec![value("in", input), value("out", output)],
            nodes: vec![Node { name: "map".into(), op, inputs: vec![0], output: 1 }],
            input: 0,
            output: 1,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
        };
        let x: Vec<f32> = (0..graph.values[0].elements()).map(|i| i as f32).collect();
        float_exec::run(&graph, &x).iter().map(|&v| v as u32).collect()
    }

    /// The index maps of Slice, Resize and DepthToSpace are the float executor's ops.
    #[test]
    fn index_maps_match_the_float_executor() {
        let (begin, step) = ([1, 0, 1], [2, 3, 2]);
        let slice = copied_indices(OpKind::Slice { begin, step }, &[5, 7, 5], &[2, 3, 2]);
        assert_eq!(slice_source((5, 7, 5), (2, 3, 2), begin, step), slice);
        let resize = copied_indices(OpKind::Resize([2, 3]), &[2, 3, 2], &[4, 9, 2]);
        assert_eq!(resize_source((2, 3, 2), [2, 3]), resize);
        let depth = copied_indices(OpKind::DepthToSpace(2), &[2, 3, 8], &[4, 6, 2]);
        assert_eq!(depth_to_space_source((2, 3, 8), 2), depth);
        // A permutation: every input element once.
        let mut sorted = depth.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..48).collect::<Vec<u32>>());
    }
}
