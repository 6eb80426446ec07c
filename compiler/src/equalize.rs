//! Cross-layer range equalization (after Nagel et al. 2019, "Data-Free Quantization"): when one
//! channel of an activation dwarfs the others, one scale per tensor leaves the others a few
//! levels. A ReLU layer's output channel `c` can be divided by `s_c > 0` and the layers reading it
//! multiply their weights for that channel by `s_c`: the float function is unchanged (ReLU,
//! pooling and reshapes commute with a positive per-channel scale), the activation's channel
//! ranges are evened out. The weights of both layers are quantized per output channel, so the
//! producer loses nothing; a consumer's row gets the range its columns and the activations
//! balance, `s_c ∝ √(a_c / r_c)` (activation range `a_c`, consumer column range `r_c`, both then
//! `∝ √(a_c·r_c)`).
//!
//! Only channels wider than the balance point are scaled down (`s_c ≥ 1`), and only in tensors
//! whose widest channel spans at least [`SPREAD_MIN`]× the median: models without such channels
//! compile exactly as before.

use crate::ir::{Graph, OpKind, ValueId};

/// A tensor whose widest channel spans less than this many times its median channel is left
/// alone.
pub const SPREAD_MIN: f32 = 8.0;

/// Calibration samples whose float activations give the channel ranges.
const SAMPLES: usize = 64;

/// One equalized tensor.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Equalized {
    pub tensor: String,
    /// Widest channel range over the median channel range, before and after.
    pub spread_before: f32,
    pub spread_after: f32,
    pub channels_scaled: usize,
}

/// Where a rescaled channel is read: weight entries to multiply by the channel's scale.
enum Reader {
    /// Conv (not depthwise) node: `weight[.., .., .., c]`.
    Conv(usize),
    /// Depthwise node with `per_group` outputs per input channel: rows `c·per_group..`.
    Depthwise(usize, usize),
    /// Fully connected node whose column `k` reads channel `k % channels`.
    Fc(usize, usize),
}

/// The layers reading `v`'s channels, through channel-preserving, positively homogeneous
/// ops (pools, reshapes that keep the channel as the fastest axis); `None` if anything else reads
/// it (an add, a (log-)softmax, the graph's output), which a per-channel scale would change.
fn readers(graph: &Graph, consumers: &[Vec<usize>], v: ValueId) -> Option<Vec<Reader>> {
    let channels = graph.values[v].hwc().2;
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(u) = stack.pop() {
        if graph.is_output(u) || consumers[u].is_empty() {
            return None;
        }
        for &n in &consumers[u] {
            let node = &graph.nodes[n];
            match &node.op {
                OpKind::Conv(c) if c.depthwise => {
                    out.push(Reader::Depthwise(n, c.weight.shape()[0] / channels.max(1)));
                }
                OpKind::Conv(_) => out.push(Reader::Conv(n)),
                OpKind::Fc(_) => out.push(Reader::Fc(n, channels)),
                OpKind::AvgPool(_) | OpKind::MaxPool(_) | OpKind::Resize(_) => stack.push(node.output),
                OpKind::Reshape => {
                    let next = &graph.values[node.output];
                    // A flatten to a vector keeps channel = index % C, which the FC mapping uses;
                    // any other reshape keeps channels only if they stay the last axis.
                    if next.shape.len() == 1 || next.hwc().2 == channels {
                        stack.push(node.output)
                    } else {
                        return None;
                    }
                }
                // Not channel-preserving (concat, slice, depth-to-space move channels), not
                // positively homogeneous (the activations), or mixing two values.
                OpKind::Add(_)
                | OpKind::Softmax
                | OpKind::LogSoftmax
                | OpKind::Activation(_)
                | OpKind::Mul(_)
                | OpKind::Concat
                | OpKind::Slice { .. }
                | OpKind::DepthToSpace(_) => return None,
            }
        }
    }
    Some(out)
}

/// `max |x|` per channel of every value over up to [`SAMPLES`] inputs.
fn channel_ranges(graph: &Graph, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let step = inputs.len().div_ceil(SAMPLES).max(1);
    let mut ranges: Vec<Vec<f32>> = graph.values.iter().map(|v| vec![0f32; v.hwc().2.max(1)]).collect();
    for input in inputs.iter().step_by(step) {
        let values = crate::float_exec::run_all(graph, input);
        for (r, x) in ranges.iter_mut().zip(&values) {
            let c = r.len();
            for (k, &v) in x.iter().enumerate() {
                r[k % c] = r[k % c].max(v.abs());
            }
        }
    }
    ranges
}

fn spread(ranges: &[f32]) -> f32 {
    let mut live: Vec<f32> = ranges.iter().copied().filter(|&a| a > 0.0).collect();
    if live.len() < 2 {
        return 1.0;
    }
    live.sort_by(f32::total_cmp);
    live[live.len() - 1] / live[live.len() / 2]
}

/// Range of the weights that read channel `c`, over every reader.
fn column_range(graph: &Graph, readers: &[Reader], c: usize) -> f32 {
    let mut r = 0f32;
    for reader in readers {
        match (reader, &graph.nodes[reader_node(reader)].op) {
            (Reader::Conv(_), OpKind::Conv(conv)) => {
                r = conv.weight.slice(ndarray::s![.., .., .., c]).iter().fold(r, |m, w| m.max(w.abs()));
            }
            (Reader::Depthwise(_, g), OpKind::Conv(conv)) => {
                r = conv
                    .weight
                    .slice(ndarray::s![c * g..(c + 1) * g, .., .., ..])
                    .iter()
                    .fold(r, |m, w| m.max(w.abs()));
            }
            (Reader::Fc(_, channels), OpKind::Fc(fc)) => {
                for (k, col) in fc.weight.columns().into_iter().enumerate() {
                    if k % channels == c {
                        r = col.iter().fold(r, |m, w| m.max(w.abs()));
                    }
                }
            }
            _ => {}
        }
    }
    r
}

fn reader_node(r: &Reader) -> usize {
    match *r {
        Reader::Conv(n) | Reader::Depthwise(n, _) | Reader::Fc(n, _) => n,
    }
}

/// Equalizes every eligible tensor of `graph` (see the module doc), using `inputs` (real, NHWC)
/// for the activation ranges. Returns what it changed.
pub fn equalize(graph: &mut Graph, inputs: &[Vec<f32>]) -> Vec<Equalized> {
    let consumers = graph.consumers();
    let mut ranges: Option<Vec<Vec<f32>>> = None;
    let mut done = Vec::new();
    for p in 0..graph.nodes.len() {
        let (clamp, v) = match &graph.nodes[p].op {
            OpKind::Conv(c) => (c.clamp, graph.nodes[p].output),
            OpKind::Fc(f) => (f.clamp, graph.nodes[p].output),
            _ => continue,
        };
        // ReLU or nothing: positively homogeneous. A finite upper clamp (ReLU6) is not.
        if !(clamp.hi == f32::INFINITY && (clamp.lo == 0.0 || clamp.lo == f32::NEG_INFINITY)) {
            continue;
        }
        let Some(readers) = readers(graph, &consumers, v) else { continue };
        if readers.is_empty() {
            continue;
        }
        let ranges = ranges.get_or_insert_with(|| channel_ranges(graph, inputs));
        let a = ranges[v].clone();
        let before = spread(&a);
        if before < SPREAD_MIN {
            continue;
        }
        let balance: Vec<f32> = (0..a.len())
            .map(|c| {
                let r = column_range(graph, &readers, c);
                if a[c] > 0.0 && r > 0.0 {
                    (a[c] / r).sqrt()
                } else {
                    0.0
                }
            })
            .collect();
        let mut live: Vec<f32> = balance.iter().copied().filter(|&b| b > 0.0).collect();
        if live.is_empty() {
            continue;
        }
        live.sort_by(f32::total_cmp);
        let median = live[live.len() / 2];
        let scales: Vec<f32> = balance.iter().map(|&b| if b > 0.0 { (b / median).max(1.0) } else { 1.0 }).collect();
        apply(graph, p, &readers, &scales);
        let after: Vec<f32> = a.iter().zip(&scales).map(|(&x, &s)| x / s).collect();
        done.push(Equalized {
            tensor: graph.values[v].name.clone(),
            spread_before: before,
            spread_after: spread(&after),
            channels_scaled: scales.iter().filter(|&&s| s > 1.0).count(),
        });
        ranges[v] = after;
    }
    done
}

/// Divides producer `p`'s output channel `c` by `scales[c]` and multiplies its readers' weights
/// for that channel by it.
fn apply(graph: &mut Graph, p: usize, readers: &[Reader], scales: &[f32]) {
    match &mut graph.nodes[p].op {
        OpKind::Conv(conv) => {
            for (c, &s) in scales.iter().enumerate() {
                conv.weight.slice_mut(ndarray::s![c, .., .., ..]).mapv_inplace(|w| w / s);
                conv.bias[c] /= s;
            }
        }
        OpKind::Fc(fc) => {
            for (c, &s) in scales.iter().enumerate() {
                fc.weight.row_mut(c).mapv_inplace(|w| w / s);
                fc.bias[c] /= s;
            }
        }
        _ => {}
    }
    for reader in readers {
        match (reader, &mut graph.nodes[reader_node(reader)].op) {
            (Reader::Conv(_), OpKind::Conv(conv)) => {
                for (c, &s) in scales.iter().enumerate() {
                    conv.weight.slice_mut(ndarray::s![.., .., .., c]).mapv_inplace(|w| w * s);
                }
            }
            (Reader::Depthwise(_, g), OpKind::Conv(conv)) => {
                for (c, &s) in scales.iter().enumerate() {
                    conv.weight.slice_mut(ndarray::s![c * g..(c + 1) * g, .., .., ..]).mapv_inplace(|w| w * s);
                }
            }
            (Reader::Fc(_, channels), OpKind::Fc(fc)) => {
                for (k, mut col) in fc.weight.columns_mut().into_iter().enumerate() {
                    let s = scales[k % channels];
                    col.mapv_inplace(|w| w * s);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Clamp, Conv, Fc, InputLayout, Node, Value, Window};
    use ndarray::{Array1, Array2, Array4};

    /// conv (ReLU) → global average pool → flatten → FC, with conv channel 1 scaled 1000× and the
    /// FC's column for it 1/1000×: equalization brings the channel back and leaves the function.
    fn wide_graph() -> Graph {
        let mut w = Array4::from_shape_fn((3, 1, 1, 2), |(o, _, _, i)| 0.3 + 0.1 * o as f32 - 0.2 * i as f32);
        w.slice_mut(ndarray::s![1, .., .., ..]).mapv_inplace(|x| x * 1000.0);
        let mut b = Array1::from(vec![0.1, 0.2, 0.05]);
        b[1] *= 1000.0;
        let mut fc = Array2::from_shape_fn((2, 3), |(o, i)| 0.5 - 0.25 * o as f32 + 0.1 * i as f32);
        fc.column_mut(1).mapv_inplace(|x| x / 1000.0);
        let window = Window { kernel: [1, 1], stride: [1, 1], pads: [0; 4] };
        let pool = Window { kernel: [2, 2], stride: [1, 1], pads: [0; 4] };
        let value = |name: &str, shape: Vec<usize>| Value { name: name.into(), shape };
        Graph {
            values: vec![
                value("in", vec![2, 2, 2]),
                value("conv", vec![2, 2, 3]),
                value("pool", vec![1, 1, 3]),
                value("flat", vec![3]),
                value("out", vec![2]),
            ],
            nodes: vec![
                Node {
                    name: "conv".into(),
                    op: OpKind::Conv(Conv { weight: w, bias: b, window, depthwise: false, clamp: Clamp::RELU }),
                    inputs: vec![0],
                    output: 1,
                },
                Node { name: "pool".into(), op: OpKind::AvgPool(pool), inputs: vec![1], output: 2 },
                Node { name: "flat".into(), op: OpKind::Reshape, inputs: vec![2], output: 3 },
                Node {
                    name: "fc".into(),
                    op: OpKind::Fc(Fc { weight: fc, bias: Array1::zeros(2), clamp: Clamp::NONE }),
                    inputs: vec![3],
                    output: 4,
                },
            ],
            input: 0,
            output: 4,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
        }
    }

    #[test]
    fn a_wide_channel_is_brought_back_and_the_function_kept() {
        let mut graph = wide_graph();
        let inputs: Vec<Vec<f32>> =
            (0..8).map(|s| (0..8).map(|k| ((s * 8 + k) as f32 * 0.37).sin().abs()).collect()).collect();
        let before: Vec<Vec<f32>> = inputs.iter().map(|x| crate::float_exec::run(&graph, x)).collect();
        let done = equalize(&mut graph, &inputs);
        assert_eq!(done.len(), 1, "{done:?}");
        assert!(done[0].spread_before > 500.0 && done[0].spread_after < 4.0, "{done:?}");
        assert_eq!(done[0].channels_scaled, 1);
        for (x, want) in inputs.iter().zip(&before) {
            let got = crate::float_exec::run(&graph, x);
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn relu6_and_balanced_tensors_are_left_alone() {
        let mut graph = wide_graph();
        if let OpKind::Conv(c) = &mut graph.nodes[0].op {
            c.clamp = Clamp::RELU6;
        }
        let inputs = vec![vec![0.5f32; 8]];
        let copy = graph.clone();
        assert!(equalize(&mut graph, &inputs).is_empty());
        assert_eq!(graph, copy);
        // Without the 1000× channel the spread is below SPREAD_MIN.
        let mut balanced = wide_graph();
        if let OpKind::Conv(c) = &mut balanced.nodes[0].op {
            c.weight.slice_mut(ndarray::s![1, .., .., ..]).mapv_inplace(|x| x / 1000.0);
            c.bias[1] /= 1000.0;
        }
        let copy = balanced.clone();
        assert!(equalize(&mut balanced, &inputs).is_empty());
        assert_eq!(balanced, copy);
    }
}
