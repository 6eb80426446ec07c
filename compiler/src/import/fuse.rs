//! Exporters' decompositions of one activation into several elementwise ops, put back together:
//! TorchScript's GELU, `x · (1 + erf(x / √2)) · ½`, and tf2onnx's Keras hard swish,
//! `x · relu6(x + 3) / 6`. Imported op by op they run as three to five ops, each quantizing its
//! result; as one table they run as one, exactly as the float function.

use crate::ir::{Activation, Clamp, Graph, Node, OpKind, ValueId};

/// A per-channel affine op the importer made of a Mul/Add/Div by a constant: a depthwise 1×1
/// convolution with one weight and one bias for every channel, and its clamp.
fn uniform_affine(op: &OpKind) -> Option<(f32, f32, Clamp)> {
    let OpKind::Conv(c) = op else { return None };
    let w = &c.window;
    if !c.depthwise || w.kernel != [1, 1] || w.stride != [1, 1] || w.pads != [0; 4] || c.weight.shape()[3] != 1 {
        return None;
    }
    let (w0, b0) = (*c.weight.iter().next()?, *c.bias.iter().next()?);
    (c.weight.iter().all(|&v| v == w0) && c.bias.iter().all(|&v| v == b0)).then_some((w0, b0, c.clamp))
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// Fuses every occurrence of the two patterns; returns how many were fused.
pub(super) fn fuse_activation_patterns(graph: &mut Graph) -> usize {
    let mut fused = 0;
    while let Some((keep, drop, f)) = find(graph) {
        let last = &mut graph.nodes[keep];
        last.op = OpKind::Activation(f.0);
        last.inputs = vec![f.1];
        remove_nodes(graph, &drop);
        fused += 1;
    }
    fused
}

/// The producer of each value, and how many nodes (and graph outputs) read it.
fn producers_and_readers(graph: &Graph) -> (Vec<Option<usize>>, Vec<usize>) {
    let mut producer = vec![None; graph.values.len()];
    let mut readers = vec![0usize; graph.values.len()];
    for (i, n) in graph.nodes.iter().enumerate() {
        producer[n.output] = Some(i);
        for &v in &n.inputs {
            readers[v] += 1;
        }
    }
    readers[graph.output] += 1;
    for &v in &graph.extra_outputs {
        readers[v] += 1;
    }
    (producer, readers)
}

type Found = (usize, Vec<usize>, (Activation, ValueId));

/// One occurrence: the node that becomes the activation, the nodes it replaces, the activation
/// and its input.
fn find(graph: &Graph) -> Option<Found> {
    let (producer, readers) = producers_and_readers(graph);
    // The node producing `v`, when `v` is read once (by the pattern's next node).
    let inner = |v: ValueId| producer[v].filter(|_| readers[v] == 1);
    for (last, node) in graph.nodes.iter().enumerate() {
        // GELU: DW(½) ← Mul(x, DW(1, +1) ← Erf ← DW(1/√2) ← x).
        if let Some((half, 0.0, c)) = uniform_affine(&node.op) {
            if close(half, 0.5) && c.is_none() {
                let Some(mul) = inner(node.inputs[0]) else { continue };
                if let OpKind::Mul(c) = graph.nodes[mul].op {
                    if c.is_none() {
                        let [a, b] = graph.nodes[mul].inputs[..] else { continue };
                        for (x, gate) in [(a, b), (b, a)] {
                            let chain = (|| {
                                let plus_one = inner(gate)?;
                                let (1.0, 1.0, c) = uniform_affine(&graph.nodes[plus_one].op)? else { return None };
                                let erf = inner(graph.nodes[plus_one].inputs[0]).filter(|_| c.is_none())?;
                                let OpKind::Activation(Activation::Erf) = graph.nodes[erf].op else { return None };
                                let scale = inner(graph.nodes[erf].inputs[0])?;
                                let (w, 0.0, c) = uniform_affine(&graph.nodes[scale].op)? else { return None };
                                let ok = close(w, std::f32::consts::FRAC_1_SQRT_2) && c.is_none();
                                (ok && graph.nodes[scale].inputs[0] == x).then_some(vec![mul, plus_one, erf, scale])
                            })();
                            if let Some(drop) = chain {
                                return Some((last, drop, (Activation::Gelu, x)));
                            }
                        }
                    }
                }
            }
        }
        // Hard swish: Mul(x, DW(1/6) ← DW(1, +3, clamp [0, 6]) ← x), or DW(1/6) after the Mul.
        let relu6_of = |v: ValueId| -> Option<(usize, ValueId)> {
            let n = inner(v)?;
            let (1.0, 3.0, c) = uniform_affine(&graph.nodes[n].op)? else { return None };
            (c == Clamp::RELU6).then_some((n, graph.nodes[n].inputs[0]))
        };
        match &node.op {
            OpKind::Mul(c) if c.is_none() => {
                let [a, b] = node.inputs[..] else { continue };
                for (x, gate) in [(a, b), (b, a)] {
                    let Some(sixth) = inner(gate) else { continue };
                    let Some((w, 0.0, c)) = uniform_affine(&graph.nodes[sixth].op) else { continue };
                    if !close(w, 1.0 / 6.0) || !c.is_none() {
                        continue;
                    }
                    if let Some((relu6, input)) = relu6_of(graph.nodes[sixth].inputs[0]) {
                        if input == x {
                            return Some((last, vec![sixth, relu6], (Activation::HardSwish, x)));
                        }
                    }
                }
            }
            op => {
                let Some((w, 0.0, c)) = uniform_affine(op) else { continue };
                if !close(w, 1.0 / 6.0) || !c.is_none() {
                    continue;
                }
                let Some(mul) = inner(node.inputs[0]) else { continue };
                let OpKind::Mul(c) = graph.nodes[mul].op else { continue };
                let [a, b] = graph.nodes[mul].inputs[..] else { continue };
                if !c.is_none() {
                    continue;
                }
                for (x, gate) in [(a, b), (b, a)] {
                    if let Some((relu6, input)) = relu6_of(gate) {
                        if input == x {
                            return Some((last, vec![mul, relu6], (Activation::HardSwish, x)));
                        }
                    }
                }
            }
        }
    }
    None
}

/// Removes nodes `drop` and the values only they produced, renumbering the rest.
fn remove_nodes(graph: &mut Graph, drop: &[usize]) {
    let nodes: Vec<Node> =
        graph.nodes.drain(..).enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, n)| n).collect();
    let mut used = vec![false; graph.values.len()];
    used[graph.input] = true;
    used[graph.output] = true;
    for &v in &graph.extra_outputs {
        used[v] = true;
    }
    for n in &nodes {
        used[n.output] = true;
        n.inputs.iter().for_each(|&v| used[v] = true);
    }
    let mut new_id = vec![usize::MAX; used.len()];
    let mut values = Vec::new();
    for (v, value) in graph.values.drain(..).enumerate() {
        if used[v] {
            new_id[v] = values.len();
            values.push(value);
        }
    }
    graph.values = values;
    graph.nodes = nodes
        .into_iter()
        .map(|mut n| {
            n.output = new_id[n.output];
            n.inputs.iter_mut().for_each(|v| *v = new_id[*v]);
            n
        })
        .collect();
    graph.input = new_id[graph.input];
    graph.output = new_id[graph.output];
    graph.extra_outputs.iter_mut().for_each(|v| *v = new_id[*v]);
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array4};

    use super::*;
    use crate::ir::{Conv, InputLayout, Value, Window};

    /// A depthwise 1×1 convolution with weight `w` and bias `b` on every channel.
    fn affine(w: f32, b: f32, clamp: Clamp, channels: usize) -> OpKind {
        OpKind::Conv(Conv {
            weight: Array4::from_elem((channels, 1, 1, 1), w),
            bias: Array1::from_elem(channels, b),
            window: Window { kernel: [1, 1], stride: [1, 1], pads: [0; 4] },
            depthwise: true,
            clamp,
        })
    }

    /// A graph over a `[2, 3, 4]` input of `ops`, each `(op, inputs)` producing the next value.
    fn chain(ops: Vec<(OpKind, Vec<usize>)>) -> Graph {
        let values = (0..=ops.len()).map(|v| Value { name: format!("v{v}"), shape: vec![2, 3, 4] }).collect();
        let nodes = ops
            .into_iter()
            .enumerate()
            .map(|(i, (op, inputs))| Node { name: format!("n{i}"), op, inputs, output: i + 1 })
            .collect::<Vec<_>>();
        let output = nodes.len();
        Graph { values, nodes, input: 0, output, input_layout: InputLayout::Nhwc, extra_outputs: Vec::new() }
    }

    fn assert_fuses_to(mut graph: Graph, f: Activation) {
        let x: Vec<f32> = (0..24).map(|i| (i as f32 - 12.0) * 0.45).collect();
        let before = crate::float_exec::run(&graph, &x);
        assert_eq!(fuse_activation_patterns(&mut graph), 1);
        assert_eq!(graph.nodes.len(), 1);
        assert_eq!(graph.nodes[0].op, OpKind::Activation(f));
        assert_eq!((graph.values.len(), graph.nodes[0].inputs[0], graph.output), (2, 0, 1));
        let after = crate::float_exec::run(&graph, &x);
        for (a, b) in after.iter().zip(&before) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn torchscript_gelu_becomes_one_table() {
        assert_fuses_to(
            chain(vec![
                (affine(std::f32::consts::FRAC_1_SQRT_2, 0.0, Clamp::NONE, 4), vec![0]),
                (OpKind::Activation(Activation::Erf), vec![1]),
                (affine(1.0, 1.0, Clamp::NONE, 4), vec![2]),
                (OpKind::Mul(Clamp::NONE), vec![0, 3]),
                (affine(0.5, 0.0, Clamp::NONE, 4), vec![4]),
            ]),
            Activation::Gelu,
        );
    }

    #[test]
    fn keras_hard_swish_becomes_one_table_either_way_round() {
        let relu6 = || (affine(1.0, 3.0, Clamp::RELU6, 4), vec![0]);
        assert_fuses_to(
            chain(vec![
                relu6(),
                (affine(1.0 / 6.0, 0.0, Clamp::NONE, 4), vec![1]),
                (OpKind::Mul(Clamp::NONE), vec![2, 0]),
            ]),
            Activation::HardSwish,
        );
        assert_fuses_to(
            chain(vec![
                relu6(),
                (OpKind::Mul(Clamp::NONE), vec![0, 1]),
                (affine(1.0 / 6.0, 0.0, Clamp::NONE, 4), vec![2]),
            ]),
            Activation::HardSwish,
        );
    }

    /// An intermediate read elsewhere, or a different constant, is not the pattern.
    #[test]
    fn near_misses_are_left_alone() {
        let mut g = chain(vec![
            (affine(1.0, 3.0, Clamp::RELU6, 4), vec![0]),
            (affine(1.0 / 6.0, 0.0, Clamp::NONE, 4), vec![1]),
            (OpKind::Mul(Clamp::NONE), vec![2, 0]),
            (OpKind::Add(Clamp::NONE), vec![3, 2]),
        ]);
        assert_eq!(fuse_activation_patterns(&mut g), 0);
        let mut g = chain(vec![
            (affine(1.0, 2.0, Clamp::RELU6, 4), vec![0]),
            (affine(1.0 / 6.0, 0.0, Clamp::NONE, 4), vec![1]),
            (OpKind::Mul(Clamp::NONE), vec![2, 0]),
        ]);
        assert_eq!(fuse_activation_patterns(&mut g), 0);
        assert_eq!(g.nodes.len(), 3);
    }
}
