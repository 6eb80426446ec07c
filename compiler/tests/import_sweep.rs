//! Findings of the import-robustness sweep (scripts/sweep_models.py: ShuffleNet, EfficientNet,
//! GhostNet, odd shapes, pads, clamps, MatMul + Add, 1-D audio, ... exported by both torch
//! exporters), each as a small graph built in code that failed before its fix.

mod onnx_builder;

use hawq_compiler::import::import_bytes;
use onnx_builder::{int, ints, tensor, tensor_i64, Model};

/// The float reference's outputs of `model` on one NCHW (or NCL) input.
fn run(model: &Model, input: &[f32]) -> Vec<f32> {
    let graph = import_bytes(&model.bytes()).expect("imports");
    let hwc = graph.values[graph.input].hwc();
    hawq_compiler::float_exec::run(&graph, &graph.input_layout.to_nhwc(input, hwc))
}

/// TorchScript's `x.chunk(2, dim=1)` computes the split point from the shape in int64:
/// `(C + 1) / 2 * 1`. Integer division truncates: 4 channels split at 2, not 2.5 (which the
/// importer refused as "ends holds 2.5, which is not an integer").
#[test]
fn integer_shape_arithmetic_divides_as_integers() {
    let model = Model::new("x", &[1, 4, 2, 2])
        .init(tensor_i64("axis", &[1], vec![1]))
        .init(tensor_i64("channel_index", &[], vec![1]))
        .init(tensor_i64("one", &[], vec![1]))
        .init(tensor_i64("two", &[], vec![2]))
        .init(tensor_i64("zero", &[1], vec![0]))
        .node("Shape", "shape", &["x"], &["s"], vec![])
        .node("Gather", "channels", &["s", "channel_index"], &["c"], vec![int("axis", 0)])
        .node("Add", "plus_one", &["c", "one"], &["c1"], vec![])
        .node("Div", "half", &["c1", "two"], &["h"], vec![])
        .node("Unsqueeze", "as_list", &["h", "zero"], &["ends"], vec![])
        .node("Slice", "first_half", &["x", "zero", "ends", "axis"], &["y"], vec![])
        .output("y", &[1, 2, 2, 2]);
    let x: Vec<f32> = (0..16).map(|i| i as f32).collect();
    // NCHW: channels 0 and 1 are the first 8 values; the reference returns NCHW order too.
    let mut got = run(&model, &x);
    got.sort_by(f32::total_cmp);
    assert_eq!(got, x[..8].to_vec());
}

/// The refusals a PyTorch user meets most say what to do instead, in the one-line error
/// (LogSoftmax, refused here before, is imported now: tests/log_softmax.rs).
#[test]
fn common_unsupported_patterns_are_refused_with_a_way_around() {
    // ShuffleNet's shuffle of 2 groups of 1 channel: [1, 2, 8, 8] → [1, 2, 1, 8, 8].
    let shuffle = Model::base()
        .init(tensor_i64("groups_shape", &[5], vec![1, 2, 1, 8, 8]))
        .node_before("bn", "Reshape", "shuffle", &["c", "groups_shape"], &["g"], vec![])
        .rewire("bn", 0, "g");
    let err = format!("{:#}", import_bytes(&shuffle.bytes()).expect_err("rank 5 is refused"));
    assert!(err.contains("'shuffle' (Reshape)") && err.contains("channel shuffle"), "{err}");
}

/// A MatMul by a constant `[C, M]` on a map whose last logical axis is its channel axis is the
/// same Linear at every position, a 1×1 convolution: a Conv1d front end's `x.transpose(1, 2)`
/// then a per-frame Linear (with its bias Add), and ConvNeXt's `permute(0, 2, 3, 1)` then
/// Linear. Both were refused ("input must be a [N, K] matrix").
#[test]
fn a_matmul_over_the_channels_of_a_channels_last_map_is_a_pointwise_convolution() {
    let weight: Vec<f32> = (0..20).map(|i| (i as f32 * 0.37).sin()).collect(); // [C = 4, M = 5]
    let bias: Vec<f32> = (0..5).map(|m| m as f32 * 0.1 - 0.2).collect();
    let linear = |x: &[f32], positions: usize| -> Vec<f32> {
        // x is channel-major [C = 4, positions]; the result is [positions, M = 5].
        let mut y = Vec::new();
        for p in 0..positions {
            for m in 0..5 {
                y.push(bias[m] + (0..4).map(|c| x[c * positions + p] * weight[c * 5 + m]).sum::<f32>());
            }
        }
        y
    };
    let assert_close = |got: &[f32], want: &[f32], what: &str| {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-5, "{what} output {i}: {g}, expected {w}");
        }
    };

    // An identity Conv first, as the front end: a Transpose straight after the model input
    // changes how the input is read instead (Keras' channels-last inputs).
    let identity: Vec<f32> = (0..16).map(|i| if i % 5 == 0 { 1.0 } else { 0.0 }).collect();
    let frames = Model::new("x", &[1, 4, 3])
        .init(tensor("w", &[4, 5], weight.clone()))
        .init(tensor("b", &[5], bias.clone()))
        .init(tensor("front", &[4, 4, 1], identity.clone()))
        .node("Conv", "front_end", &["x", "front"], &["f"], vec![])
        .node("Transpose", "to_frames", &["f"], &["t"], vec![ints("perm", &[0, 2, 1])])
        .node("MatMul", "per_frame", &["t", "w"], &["mm"], vec![])
        .node("Add", "per_frame_bias", &["mm", "b"], &["y"], vec![])
        .output("y", &[1, 3, 5]);
    let x: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).cos()).collect();
    assert_close(&run(&frames, &x), &linear(&x, 3), "per-frame Linear");

    let pixels = Model::new("x", &[1, 4, 2, 2])
        .init(tensor("w", &[4, 5], weight.clone()))
        .init(tensor("b", &[5], bias.clone()))
        .init(tensor("front", &[4, 4, 1, 1], identity))
        .node("Conv", "front_end", &["x", "front"], &["f"], vec![])
        .node("Transpose", "to_nhwc", &["f"], &["t"], vec![ints("perm", &[0, 2, 3, 1])])
        .node("MatMul", "per_pixel", &["t", "w"], &["mm"], vec![])
        .node("Add", "per_pixel_bias", &["mm", "b"], &["y"], vec![])
        .output("y", &[1, 2, 2, 5]);
    let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.3).sin()).collect();
    assert_close(&run(&pixels, &x), &linear(&x, 4), "per-pixel Linear");
}
