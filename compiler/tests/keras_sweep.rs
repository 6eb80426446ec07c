//! Findings of the Keras import sweep (scripts/sweep_keras.py: ~25 small Keras models converted
//! by tf2onnx at opsets 13 and 18), each as the graph tf2onnx writes, built in code, that failed
//! before its fix.

mod onnx_builder;

use hawq_compiler::import::import_bytes;
use onnx_builder::{float, ints, tensor, tensor_i64, Model};

/// The float reference's output of `model` on one input in the model's own layout, in the
/// importer's stored order (NHWC; `[L, C]` for a sequence).
fn run(model: &Model, input: &[f32]) -> Vec<f32> {
    let graph = import_bytes(&model.bytes()).expect("imports");
    let hwc = graph.values[graph.input].hwc();
    hawq_compiler::float_exec::run(&graph, &graph.input_layout.to_nhwc(input, hwc))
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{what} output {i}: {g}, expected {w}");
    }
}

/// `[1, 2, 2, 2]` NCHW values of both signs, and the same through an identity 1×1 Conv (so that
/// the activations after it are a layer's output, as in a real model).
fn nchw_input() -> (Vec<f32>, Model) {
    let x: Vec<f32> = (0..8).map(|i| (i as f32 * 1.3).sin() * 2.0).collect();
    let model = Model::new("x", &[1, 2, 2, 2]).init(tensor("eye", &[2, 2, 1, 1], vec![1.0, 0.0, 0.0, 1.0])).node(
        "Conv",
        "front",
        &["x", "eye"],
        &["c"],
        vec![],
    );
    (x, model)
}

/// NCHW `x` in stored (NHWC) order, with `f(value, channel)` applied.
fn nhwc_map(x: &[f32], f: impl Fn(f32, usize) -> f32) -> Vec<f32> {
    (0..4).flat_map(|p| (0..2).map(move |c| (p, c))).map(|(p, c)| f(x[c * 4 + p], c)).collect()
}

/// tf2onnx writes Keras' PReLU as Keras computes it, `relu(x) + (−α)·relu(−x)`; `Neg` of an
/// activation was refused ("operator 'Neg' is not supported on activations"). With
/// `shared_axes=[1, 2]` (one slope per channel) it is one PRelu table per channel, whether the
/// Mul is on the NCHW map or (as tf2onnx writes the per-element default) between a Transpose to
/// NHWC and one back; the per-element default is refused saying what to use instead.
#[test]
fn keras_prelu_is_one_prelu() {
    let alpha = [0.25f32, 0.5];
    let prelu = |v: f32, c: usize| if v >= 0.0 { v } else { alpha[c] * v };
    let (x, front) = nchw_input();
    let decomposed = |front: Model| {
        front.node("Relu", "positive", &["c"], &["pos"], vec![]).node("Neg", "neg", &["c"], &["n"], vec![]).node(
            "Relu",
            "negative",
            &["n"],
            &["rn"],
            vec![],
        )
    };
    let nchw = decomposed(nchw_input().1)
        .init(tensor("minus_alpha", &[1, 2, 1, 1], alpha.iter().map(|a| -a).collect()))
        .node("Mul", "scaled", &["rn", "minus_alpha"], &["m"], vec![])
        .node("Add", "prelu", &["pos", "m"], &["y"], vec![])
        .output("y", &[1, 2, 2, 2]);
    assert_close(&run(&nchw, &x), &nhwc_map(&x, prelu), "PReLU on NCHW");

    let through_nhwc = |front: Model, minus_alpha| {
        decomposed(front)
            .init(minus_alpha)
            .node("Transpose", "to_nhwc", &["rn"], &["t"], vec![ints("perm", &[0, 2, 3, 1])])
            .node("Mul", "scaled", &["t", "minus_alpha"], &["m"], vec![])
            .node("Transpose", "to_nchw", &["m"], &["mt"], vec![ints("perm", &[0, 3, 1, 2])])
            .node("Add", "prelu", &["pos", "mt"], &["y"], vec![])
            .output("y", &[1, 2, 2, 2])
    };
    let per_channel = through_nhwc(nchw_input().1, tensor("minus_alpha", &[1, 1, 2], vec![-0.25, -0.5]));
    assert_close(&run(&per_channel, &x), &nhwc_map(&x, prelu), "PReLU through NHWC");

    let per_element = through_nhwc(front, tensor("minus_alpha", &[2, 2, 2], (0..8).map(|i| i as f32 / -8.0).collect()));
    let err = format!("{:#}", import_bytes(&per_element.bytes()).expect_err("per-element slopes are refused"));
    assert!(err.contains("'prelu'") && err.contains("shared_axes=[1, 2]"), "{err}");
}

/// Keras' `selu`, ONNX's Selu, was an unsupported operator; it is one table.
#[test]
fn selu_is_a_table() {
    let (x, front) = nchw_input();
    let model = front.node("Selu", "selu", &["c"], &["y"], vec![float("alpha", 1.5)]).output("y", &[1, 2, 2, 2]);
    let gamma = 1.050_701f32;
    let want = nhwc_map(&x, |v, _| if v >= 0.0 { gamma * v } else { gamma * 1.5 * v.exp_m1() });
    assert_close(&run(&model, &x), &want, "Selu");
}

/// Keras' Conv1D with `padding='causal'` on `[N, L, C]`: tf2onnx pads L on the model input, then
/// unsqueezes to `[N, 1, L, C]` and transposes to NCHW for the Conv. The Pad as the input's first
/// reader made the input read as `[N, C, L]` ("padding axis 1 is not supported"), and a Pad not
/// directly before its Conv was refused.
#[test]
fn a_causal_conv1d_on_a_channels_last_sequence_is_padded_on_its_length() {
    let (l, c, o) = (5usize, 2usize, 3usize);
    let w: Vec<f32> = (0..o * c * 2).map(|i| (i as f32 * 0.9).cos()).collect(); // [O, C, 1, 2]
    let x: Vec<f32> = (0..l * c).map(|i| (i as f32 * 0.4).sin()).collect(); // [L, C]
    let model = Model::new("x", &[1, l as i64, c as i64])
        .init(tensor_i64("causal", &[6], vec![0, 2, 0, 0, 0, 0]))
        .init(tensor_i64("row_axis", &[1], vec![-3]))
        .init(tensor_i64("h_axis", &[1], vec![2]))
        .init(tensor("w", &[o as i64, c as i64, 1, 2], w.clone()))
        .node("Pad", "pad", &["x", "causal"], &["p"], vec![])
        .node("Unsqueeze", "expand", &["p", "row_axis"], &["u"], vec![])
        .node("Transpose", "to_nchw", &["u"], &["t"], vec![ints("perm", &[0, 3, 1, 2])])
        .node("Conv", "conv", &["t", "w"], &["y4"], vec![ints("dilations", &[1, 2])])
        .node("Squeeze", "squeeze", &["y4", "h_axis"], &["y"], vec![])
        .output("y", &[1, o as i64, l as i64]);
    // y[t, o] = Σ_i Σ_k w[o, i, k] · x[t − 2 + 2k, i], zero before the start.
    let mut want = Vec::new();
    for t in 0..l {
        for oc in 0..o {
            let mut sum = 0.0;
            for i in 0..c {
                for k in 0..2 {
                    if let Some(s) = (t + 2 * k).checked_sub(2) {
                        sum += w[(oc * c + i) * 2 + k] * x[s * c + i];
                    }
                }
            }
            want.push(sum);
        }
    }
    assert_close(&run(&model, &x), &want, "causal Conv1D");
}

/// Keras' Dense on a `[N, 1, 1, C]` map (squeeze-and-excitation after `Reshape((1, 1, C))`):
/// tf2onnx writes it as a MatMul on `[N, C]` reshaped back to `[N, 1, 1, M]`, then the bias
/// Add. That reshape of a vector was read NCHW, the vector on W, and the bias refused ("constant
/// varies across positions").
#[test]
fn a_bias_on_a_vector_reshaped_to_one_pixel_is_per_channel() {
    let w: Vec<f32> = (0..12).map(|i| (i as f32 * 0.61).sin()).collect(); // [K = 4, M = 3]
    let b = vec![0.5f32, -0.25, 0.125];
    let model = Model::new("x", &[1, 4])
        .init(tensor("w", &[4, 3], w.clone()))
        .init(tensor("b", &[3], b.clone()))
        .init(tensor_i64("pixel", &[4], vec![-1, 1, 1, 3]))
        .node("MatMul", "dense", &["x", "w"], &["mm"], vec![])
        .node("Reshape", "tensordot", &["mm", "pixel"], &["r"], vec![])
        .node("Add", "bias", &["r", "b"], &["y"], vec![])
        .output("y", &[1, 1, 1, 3]);
    let x = [1.0f32, -2.0, 0.5, 3.0];
    let want: Vec<f32> = (0..3).map(|m| b[m] + (0..4).map(|k| x[k] * w[k * 3 + m]).sum::<f32>()).collect();
    assert_close(&run(&model, &x), &want, "Dense on [N, 1, 1, C]");
}

/// A Tile other than Keras 3's UpSampling2D and Keras' exact gelu (tf2onnx: Erfc, which ONNX
/// does not define) are refused saying what converts instead.
#[test]
fn keras_refusals_say_what_to_do_instead() {
    for (op, hint) in [("Tile", "Resizing(interpolation='nearest')"), ("Erfc", "swish")] {
        let model = Model::base()
            .init(tensor_i64("repeats", &[4], vec![1, 1, 2, 1]))
            .node_before("bn", op, "keras_op", &["c", "repeats"], &["t"], vec![])
            .rewire("bn", 0, "t");
        let err = format!("{:#}", import_bytes(&model.bytes()).expect_err("refused"));
        assert!(err.contains("'keras_op'") && err.contains(hint), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// tf2onnx writes the NCHW → NHWC Transpose of a 1×1 map as a Reshape, `[N, C, 1, 1]` to
/// `[N, 1, 1, C]` (MobileNetV2 from keras.applications at 32×32, before its global pool). Read
/// NCHW first, that put the channels on W, and the pool's ReduceMean over axes 1 and 2 was
/// refused ("only over the spatial axes [2, 3]").
#[test]
fn a_reshape_that_moves_unit_axes_keeps_the_channels() {
    let w: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect(); // [3, 2, 1, 1]
    let model = Model::new("x", &[1, 2, 1, 1])
        .init(tensor("w", &[3, 2, 1, 1], w.clone()))
        .init(tensor_i64("nhwc", &[4], vec![-1, 1, 1, 3]))
        .node("Conv", "pointwise", &["x", "w"], &["c"], vec![])
        .node("Reshape", "to_nhwc", &["c", "nhwc"], &["r"], vec![])
        .node("ReduceMean", "pool", &["r"], &["y"], vec![ints("axes", &[1, 2]), onnx_builder::int("keepdims", 0)])
        .output("y", &[1, 3]);
    let x = [0.75f32, -1.5];
    let want: Vec<f32> = (0..3).map(|o| w[o * 2] * x[0] + w[o * 2 + 1] * x[1]).collect();
    assert_close(&run(&model, &x), &want, "global pool after a relabelling Reshape");
}

/// Keras 3's UpSampling2D repeats each axis (`ops.repeat`), which tf2onnx writes as an Unsqueeze
/// after the axis, a Tile of the new axis, a Transpose to NHWC and a Reshape merging the two:
/// a nearest resize by the repeat count. Tile was an unsupported operator.
#[test]
fn keras_upsampling_by_repetition_is_a_nearest_resize() {
    let x: Vec<f32> = (0..12).map(|i| i as f32 - 5.5).collect(); // NCHW [1, 2, 2, 3]
    let model = Model::new("x", &[1, 2, 2, 3])
        .init(tensor("eye", &[2, 2, 1, 1], vec![1.0, 0.0, 0.0, 1.0]))
        .init(tensor_i64("after_h", &[1], vec![3]))
        .init(tensor_i64("reps", &[5], vec![1, 1, 1, 2, 1]))
        .init(tensor_i64("merged", &[4], vec![-1, 4, 3, 2]))
        .node("Conv", "front", &["x", "eye"], &["c"], vec![])
        .node("Unsqueeze", "expand", &["c", "after_h"], &["u"], vec![])
        .node("Tile", "repeat", &["u", "reps"], &["t"], vec![])
        .node("Transpose", "to_nhwc", &["t"], &["tt"], vec![ints("perm", &[0, 2, 3, 4, 1])])
        .node("Reshape", "merge", &["tt", "merged"], &["y"], vec![])
        .output("y", &[1, 4, 3, 2]);
    // NHWC [4, 3, 2]: row h is the input's row h / 2.
    let mut want = Vec::new();
    for h in 0..4 {
        for w in 0..3 {
            for c in 0..2 {
                want.push(x[c * 6 + (h / 2) * 3 + w]);
            }
        }
    }
    assert_close(&run(&model, &x), &want, "UpSampling2D");
}
