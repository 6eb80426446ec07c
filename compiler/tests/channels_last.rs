//! Channels-last rank-3 inputs: a Keras Conv1D on `[N, L, C]` as tf2onnx writes it (Unsqueeze to
//! `[N, 1, L, C]`, Transpose to NCHW, a Conv with a 1×K kernel, Squeeze back to `[N, C, L]`,
//! Transpose to `[N, L, C]`, ReduceMean over L) imports without moving data and computes the
//! Conv1D, and PyTorch's patterns on `[N, C, L]` still read the input channel-major.

mod onnx_builder;

use hawq_compiler::import::import_bytes;
use hawq_compiler::ir::{InputLayout, OpKind};
use onnx_builder::{int, ints, tensor, tensor_i64, Model};

const L: usize = 4;
const C: usize = 2;
const O: usize = 3;
const K: usize = 2;

fn conv_weight() -> Vec<f32> {
    (0..O * C * K).map(|i| ((i * 7) % 11) as f32 / 10.0 - 0.5).collect()
}

fn input() -> Vec<f32> {
    (0..L * C).map(|i| ((i * 5) % 9) as f32 / 8.0 - 0.3).collect()
}

const FC: [f32; O * 2] = [0.5, -0.25, 0.75, 0.1, -0.4, 0.3];
const BIAS: [f32; O] = [0.1, -0.2, 0.05];

/// tf2onnx's graph of `Conv1D(O, K, activation="relu")`, `GlobalAveragePooling1D`, `Dense(2)` on a
/// `[1, L, C]` input (the opset-18 form: Transpose and ReduceMean rather than GlobalAveragePool).
fn keras_conv1d() -> Model {
    Model::new("x", &[1, L as i64, C as i64])
        .init(tensor_i64("axis1", &[1], vec![1]))
        .init(tensor_i64("axis2", &[1], vec![2]))
        .init(tensor("w", &[O as i64, C as i64, 1, K as i64], conv_weight()))
        .init(tensor("b", &[1, O as i64, 1], BIAS.to_vec()))
        .init(tensor("fc", &[O as i64, 2], FC.to_vec()))
        .node("Unsqueeze", "expand", &["x", "axis1"], &["e"], vec![])
        .node("Transpose", "to_nchw", &["e"], &["t"], vec![ints("perm", &[0, 3, 1, 2])])
        .node("Conv", "conv", &["t", "w"], &["c"], vec![ints("kernel_shape", &[1, K as i64])])
        .node("Squeeze", "squeeze", &["c", "axis2"], &["s"], vec![])
        .node("Add", "bias", &["s", "b"], &["a"], vec![])
        .node("Relu", "relu", &["a"], &["r"], vec![])
        .node("Transpose", "to_nlc", &["r"], &["rt"], vec![ints("perm", &[0, 2, 1])])
        .node("ReduceMean", "gap", &["rt"], &["g"], vec![ints("axes", &[1]), int("keepdims", 0)])
        .node("MatMul", "dense", &["g", "fc"], &["y"], vec![])
        .output("y", &[1, 2])
}

/// The same computation written out: `x[l][c]` is time step `l`, feature `c`.
/// The imported graph on [`input`] gives what [`expected`] computes by hand.
fn assert_computes_the_conv1d(graph: &hawq_compiler::ir::Graph) {
    let x = input();
    let got = hawq_compiler::float_exec::run(graph, &x);
    let want = expected(&x);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "ours {got:?}, expected {want:?}");
    }
}

fn expected(x: &[f32]) -> Vec<f32> {
    let w = conv_weight();
    let steps = L - K + 1;
    let mut mean = [0f32; O];
    for (o, m) in mean.iter_mut().enumerate() {
        for l in 0..steps {
            let mut acc = BIAS[o];
            for c in 0..C {
                for k in 0..K {
                    acc += w[(o * C + c) * K + k] * x[(l + k) * C + c];
                }
            }
            *m += acc.max(0.0) / steps as f32;
        }
    }
    (0..2).map(|j| (0..O).map(|o| mean[o] * FC[o * 2 + j]).sum()).collect()
}

#[test]
fn a_keras_conv1d_on_a_channels_last_input_imports_without_moving_data() {
    let graph = import_bytes(&keras_conv1d().bytes()).expect("import");
    // The input bytes are stored as they come: rows are time steps, columns channels.
    assert_eq!(graph.input_layout, InputLayout::Nhwc);
    assert_eq!(graph.values[graph.input].shape, vec![1, L, C]);
    let kernels: Vec<[usize; 2]> = graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            OpKind::Conv(c) => Some(c.window.kernel),
            _ => None,
        })
        .collect();
    assert_eq!(kernels, vec![[1, K]]);
    assert_computes_the_conv1d(&graph);
}

/// The opset-13 form ends with GlobalAveragePool on the NCHW map and a Squeeze of its two unit
/// axes; the Squeeze after the Conv keeps the sequence channel-major.
#[test]
fn the_opset_13_form_with_global_average_pool_computes_the_same() {
    let mut m = keras_conv1d();
    m.graph.node.retain(|n| n.name != "to_nlc" && n.name != "gap");
    let m = m
        .init(tensor_i64("axes23", &[1], vec![2]))
        .node_before("dense", "GlobalAveragePool", "gap", &["r"], &["g3"], vec![])
        .node_before("dense", "Squeeze", "flat", &["g3", "axes23"], &["g"], vec![]);
    let graph = import_bytes(&m.bytes()).expect("import");
    assert_computes_the_conv1d(&graph);
}

/// PyTorch's Conv1d-as-Conv2d, `x.unsqueeze(2)` on `[N, C, L]`: the input stays channel-major
/// (an Unsqueeze at axis 1 is what marks the input channels-last).
#[test]
fn an_unsqueeze_to_n_c_1_l_keeps_the_input_channel_major() {
    let m = Model::new("x", &[1, C as i64, L as i64])
        .init(tensor_i64("axis2", &[1], vec![2]))
        .init(tensor("w", &[O as i64, C as i64, 1, K as i64], conv_weight()))
        .init(tensor("fc", &[O as i64, 2], FC.to_vec()))
        .node("Unsqueeze", "expand", &["x", "axis2"], &["e"], vec![])
        .node("Conv", "conv", &["e", "w"], &["c"], vec![ints("kernel_shape", &[1, K as i64])])
        .node("GlobalAveragePool", "gap", &["c"], &["g"], vec![])
        .node("Flatten", "flat", &["g"], &["f"], vec![])
        .node("MatMul", "dense", &["f", "fc"], &["y"], vec![])
        .output("y", &[1, 2]);
    let graph = import_bytes(&m.bytes()).expect("import");
    assert_eq!(graph.input_layout, InputLayout::Nchw);
    // Channel-major [C, L] bytes, the runtime's [L, C] after the input transpose.
    let nlc = input();
    let ncl: Vec<f32> = (0..C * L).map(|i| nlc[(i % L) * C + i / L]).collect();
    let got = hawq_compiler::float_exec::run(&graph, &graph.input_layout.to_nhwc(&ncl, (1, L, C)));
    let w = conv_weight();
    let steps = L - K + 1;
    let want: Vec<f32> = (0..2)
        .map(|j| {
            (0..O)
                .map(|o| {
                    let sum: f32 = (0..steps)
                        .map(|l| {
                            (0..C)
                                .flat_map(|c| (0..K).map(move |k| (c, k)))
                                .map(|(c, k)| w[(o * C + c) * K + k] * nlc[(l + k) * C + c])
                                .sum::<f32>()
                        })
                        .sum();
                    sum / steps as f32 * FC[o * 2 + j]
                })
                .sum()
        })
        .collect();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "ours {got:?}, expected {want:?}");
    }
}

/// A channels-last sequence is not a Conv1d's input: BatchNormalization over its axis 1 (the time
/// steps) is refused, naming the node.
#[test]
fn batch_norm_over_a_channels_last_sequence_is_refused() {
    let ones = || vec![1.0; L];
    let m = Model::new("x", &[1, L as i64, C as i64])
        .init(tensor("s", &[L as i64], ones()))
        .init(tensor("b", &[L as i64], vec![0.0; L]))
        .init(tensor("m", &[L as i64], vec![0.0; L]))
        .init(tensor("v", &[L as i64], ones()))
        .node("Transpose", "same", &["x"], &["t"], vec![ints("perm", &[0, 1, 2])])
        .node("BatchNormalization", "bn", &["t", "s", "b", "m", "v"], &["y"], vec![])
        .output("y", &[1, L as i64, C as i64]);
    let err = format!("{:#}", import_bytes(&m.bytes()).expect_err("refused"));
    assert!(err.contains("'bn'") && err.contains("channel-major"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
