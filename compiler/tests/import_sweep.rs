//! Findings of the import-robustness sweep (scripts/sweep_models.py: ShuffleNet, EfficientNet,
//! GhostNet, odd shapes, pads, clamps, MatMul + Add, 1-D audio, ... exported by both torch
//! exporters), each as a small graph built in code that failed before its fix.

mod onnx_builder;

use hawq_compiler::import::import_bytes;
use onnx_builder::{int, tensor_i64, Model};

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

/// The refusals a PyTorch user meets most say what to do instead, in the one-line error.
#[test]
fn common_unsupported_patterns_are_refused_with_a_way_around() {
    let log_softmax = Model::base()
        .node("LogSoftmax", "log_probs", &["logits"], &["lp"], vec![int("axis", 1)])
        .output("lp", &[1, 10]);
    let err = format!("{:#}", import_bytes(&log_softmax.bytes()).expect_err("LogSoftmax is refused"));
    assert!(err.contains("'log_probs' (LogSoftmax)") && err.contains("end the model at the logits"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // ShuffleNet's shuffle of 2 groups of 1 channel: [1, 2, 8, 8] → [1, 2, 1, 8, 8].
    let shuffle = Model::base()
        .init(tensor_i64("groups_shape", &[5], vec![1, 2, 1, 8, 8]))
        .node_before("bn", "Reshape", "shuffle", &["c", "groups_shape"], &["g"], vec![])
        .rewire("bn", 0, "g");
    let err = format!("{:#}", import_bytes(&shuffle.bytes()).expect_err("rank 5 is refused"));
    assert!(err.contains("'shuffle' (Reshape)") && err.contains("channel shuffle"), "{err}");
}
