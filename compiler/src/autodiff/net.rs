//! The differentiated part of a graph, prepared once per call (weights in the layouts the kernels
//! want, window geometry), and the primal record of one sample.

use anyhow::{bail, Result};

use super::kernels::{max_argmax, taps_major, Geom};
use super::Loss;
use crate::float_exec;
use crate::ir::{Clamp, Graph, OpKind, ValueId};

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
}

impl Op {
    pub fn clamp(&self) -> Clamp {
        match self {
            Op::Conv { clamp, .. } | Op::Fc { clamp, .. } | Op::Add(clamp) => *clamp,
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
    /// Does the differentiated part contain a softmax (so the network is not piecewise linear)?
    pub has_softmax: bool,
}

impl<'g> Net<'g> {
    pub fn new(graph: &'g Graph, loss: Loss) -> Result<Net<'g>> {
        let mut producer = vec![None; graph.values.len()];
        for (i, n) in graph.nodes.iter().enumerate() {
            producer[n.output] = Some(i);
        }
        let head = match loss {
            Loss::CrossEntropy if graph.ends_in_softmax() => {
                let last = graph.nodes.last().expect("a graph ending in softmax has nodes");
                if last.output != graph.output {
                    bail!("the final softmax does not produce the graph's output");
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
                    other => bail!(
                        "node {:?}: the sensitivity analysis does not differentiate {} yet",
                        node.name,
                        other.name()
                    ),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let has_softmax = ops.iter().any(|op| matches!(op, Op::Softmax { .. }));
        Ok(Net { graph, loss, ops, end, head, producer, live, has_softmax })
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
        let values = float_exec::run_all(self.graph, input);
        let argmax = self
            .ops
            .iter()
            .enumerate()
            .map(|(n, op)| match op {
                Op::MaxPool(geom) => max_argmax(geom, &values[self.graph.nodes[n].inputs[0]]),
                _ => Vec::new(),
            })
            .collect();
        Tape { values, argmax }
    }
}

/// One sample's forward pass: every value, and each max pool's argmax per output element.
pub(super) struct Tape {
    pub values: Vec<Vec<f32>>,
    pub argmax: Vec<Vec<u32>>,
}
