//! Converters' decompositions of one ONNX operator, put back together on the ONNX nodes before
//! import, where a part alone is not something the importer (or the runtime) can take.
//!
//! tf2onnx writes Keras' PReLU as Keras computes it, `relu(x) + (−α) · relu(−x)`:
//! `Add(Relu(x), Mul(Relu(Neg(x)), −α))`. `Neg` of an activation has no integer op, and the
//! four ops would each quantize their result; as one `PRelu(x, α)` it is one table per channel.
//! Its default, one slope per element rather than shared over H and W, comes with a Transpose
//! to NHWC before the Mul and one back after it.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};

use super::Val;
use crate::onnx_proto::NodeProto;

/// Replaces every Keras PReLU decomposition in `nodes` by a `PRelu` node whose slope, `α`, is
/// added to `consts`; `outputs` are the graph's output names (read, so never dropped). Returns
/// how many were replaced.
pub(super) fn keras_prelu(nodes: &mut Vec<NodeProto>, consts: &mut HashMap<String, Val>, outputs: &[String]) -> usize {
    let mut replaced = 0;
    while let Some((add, drop, x, slope)) = find_prelu(nodes, consts, outputs) {
        let name = format!("{}__prelu_slope", nodes[add].output[0]);
        consts.insert(name.clone(), Val::Const(slope));
        let node = &mut nodes[add];
        node.op_type = "PRelu".into();
        node.input = vec![x, name];
        node.attribute.clear();
        let mut drop = drop;
        drop.sort_unstable();
        for i in drop.into_iter().rev() {
            nodes.remove(i);
        }
        replaced += 1;
    }
    replaced
}

/// One occurrence: the Add that becomes the PRelu, the four nodes it replaces, `x` and `α`.
fn find_prelu(
    nodes: &[NodeProto],
    consts: &HashMap<String, Val>,
    outputs: &[String],
) -> Option<(usize, Vec<usize>, String, ArrayD<f64>)> {
    let mut producer = HashMap::new();
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in &n.output {
            producer.insert(o.as_str(), i);
        }
        for input in &n.input {
            *readers.entry(input.as_str()).or_default() += 1;
        }
    }
    for o in outputs {
        *readers.entry(o.as_str()).or_default() += 1;
    }
    // The node of `op` producing `v` when `v` has no reader but the pattern's next node.
    let sole = |v: &str, op: &str| -> Option<usize> {
        let p = *producer.get(v)?;
        (nodes[p].op_type == op && readers.get(v) == Some(&1) && nodes[p].input.len() == 1).then_some(p)
    };
    let constant = |v: &str| match consts.get(v) {
        Some(Val::Const(c)) => Some(c),
        _ => None,
    };
    for (add, node) in nodes.iter().enumerate() {
        if node.op_type != "Add" || node.input.len() != 2 || !node.domain.is_empty() && node.domain != "ai.onnx" {
            continue;
        }
        for (positive, negative) in [(&node.input[0], &node.input[1]), (&node.input[1], &node.input[0])] {
            let Some(relu) = sole(positive, "Relu") else { continue };
            let mut dropped = vec![relu];
            // A Transpose after the Mul, with its inverse before it.
            let back = sole(negative, "Transpose");
            let negative = match back {
                Some(t) => {
                    dropped.push(t);
                    &nodes[t].input[0]
                }
                None => negative,
            };
            let Some(&mul) = producer.get(negative.as_str()) else { continue };
            if nodes[mul].op_type != "Mul" || readers.get(negative.as_str()) != Some(&1) || nodes[mul].input.len() != 2
            {
                continue;
            }
            let m = &nodes[mul].input;
            let (relu_neg, minus_alpha) = match (constant(&m[0]), constant(&m[1])) {
                (None, Some(c)) => (&m[0], c),
                (Some(c), None) => (&m[1], c),
                _ => continue,
            };
            let (relu_neg, perm) = match back {
                Some(back) => {
                    let Some(t) = sole(relu_neg, "Transpose") else { continue };
                    let (p, q) = (perm_of(&nodes[t]), perm_of(&nodes[back]));
                    if p.len() != q.len() || q.iter().enumerate().any(|(i, &j)| p.get(j) != Some(&i)) {
                        continue;
                    }
                    dropped.push(t);
                    (&nodes[t].input[0], Some(p))
                }
                None => (relu_neg, None),
            };
            let Some(relu_of_neg) = sole(relu_neg, "Relu") else { continue };
            let Some(neg) = sole(&nodes[relu_of_neg].input[0], "Neg") else { continue };
            let x = &nodes[relu].input[0];
            if nodes[neg].input[0] != *x || constant(x).is_some() {
                continue;
            }
            // A constant on the transposed map is on the map through the inverse permutation.
            let slope = match perm {
                Some(p) => {
                    let Some(c) = unsqueezed(minus_alpha, p.len()) else { continue };
                    let mut inverse = vec![0; p.len()];
                    for (i, &j) in p.iter().enumerate() {
                        inverse[j] = i;
                    }
                    c.permuted_axes(IxDyn(&inverse)).mapv(|v| -v)
                }
                None => minus_alpha.mapv(|v| -v),
            };
            dropped.extend([mul, relu_of_neg, neg]);
            return Some((add, dropped, x.clone(), slope));
        }
    }
    None
}

/// A Transpose's `perm`, when it is a permutation.
fn perm_of(node: &NodeProto) -> Vec<usize> {
    let perm: Vec<usize> = node
        .attribute
        .iter()
        .find(|a| a.name == "perm")
        .map(|a| a.ints.iter().filter_map(|&i| usize::try_from(i).ok()).collect())
        .unwrap_or_default();
    let mut seen = vec![false; perm.len()];
    for &p in &perm {
        match seen.get_mut(p) {
            Some(s) if !*s => *s = true,
            _ => return Vec::new(),
        }
    }
    perm
}

/// `c` with leading unit axes up to `rank` (ONNX's broadcast), or `None` above it.
fn unsqueezed(c: &ArrayD<f64>, rank: usize) -> Option<ArrayD<f64>> {
    let missing = rank.checked_sub(c.ndim())?;
    let shape: Vec<usize> = std::iter::repeat_n(1, missing).chain(c.shape().iter().copied()).collect();
    c.clone().into_shape_with_order(IxDyn(&shape)).ok()
}
