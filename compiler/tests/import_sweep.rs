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
