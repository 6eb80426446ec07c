//! Convolutions whose window covers the whole input, unpadded (squeeze-and-excitation blocks,
//! 1×1 classifier heads, a kernel the size of its feature map), are emitted as fully connected
//! layers, and the model still computes what the float graph does: checked on a graph built in
//! code at 8 and at 4 bits, beside a padded convolution of one output pixel (which stays a
//! convolution). That the two ops give the same bytes on such a layer is
//! `runtime/tests/kernels.rs`' `a_convolution_covering_its_input_equals_the_fully_connected_layer`.

mod onnx_builder;

use hawq_compiler::data::{Dataset, RawData};
use hawq_compiler::emit::runs_as_fully_connected;
use hawq_compiler::import::import_bytes;
use hawq_compiler::ir::InputTransform;
use hawq_compiler::pipeline::{compile, prepare};
use hawq_compiler::quantize::BitConfig;
use onnx_builder::{ints, tensor, Model};

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 37 + seed * 11) % 23) as f32 - 11.0) / 23.0).collect()
}

/// `x [1, 3, 4, 4]` → conv 3×3 pad 1 (8 channels) → Relu → `cover`: conv 4×4 unpadded, stride 2
/// (one pixel, 12 channels) → Relu → `pointwise`: conv 1×1 on that pixel (6 channels) → Relu →
/// `padded`: conv 3×3 padded by 1 on that pixel (one output pixel too, but padded: stays a
/// convolution).
fn model() -> Model {
    Model::new("x", &[1, 3, 4, 4])
        .init(tensor("w0", &[8, 3, 3, 3], values(8 * 27, 1)))
        .init(tensor("b0", &[8], values(8, 2)))
        .init(tensor("w1", &[12, 8, 4, 4], values(12 * 8 * 16, 3)))
        .init(tensor("b1", &[12], values(12, 4)))
        .init(tensor("w2", &[6, 12, 1, 1], values(72, 5)))
        .init(tensor("b2", &[6], values(6, 6)))
        .init(tensor("w3", &[5, 6, 3, 3], values(270, 7)))
        .init(tensor("b3", &[5], values(5, 8)))
        .node("Conv", "first", &["x", "w0", "b0"], &["c0"], vec![ints("pads", &[1, 1, 1, 1])])
        .node("Relu", "r0", &["c0"], &["a0"], vec![])
        .node("Conv", "cover", &["a0", "w1", "b1"], &["c1"], vec![ints("strides", &[2, 2])])
        .node("Relu", "r1", &["c1"], &["a1"], vec![])
        .node("Conv", "pointwise", &["a1", "w2", "b2"], &["c2"], vec![])
        .node("Relu", "r2", &["c2"], &["a2"], vec![])
        .node("Conv", "padded", &["a2", "w3", "b3"], &["y"], vec![ints("pads", &[1, 1, 1, 1])])
        .output("y", &[1, 5, 1, 1])
}

#[test]
fn convolutions_covering_their_input_run_as_fully_connected_layers_and_match_the_float_graph() {
    let g = import_bytes(&model().bytes()).unwrap();
    let samples = 64;
    let x: Vec<f32> = (0..samples * 48).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    let data = Dataset {
        path: "synthetic".into(),
        x: RawData::F32(ndarray::ArrayD::from_shape_vec(vec![samples, 3, 4, 4], x.clone()).unwrap()),
        y: Vec::new(),
    };
    let p = prepare(g.clone(), &data, InputTransform::default()).unwrap();
    let weighted: Vec<(String, bool)> = (0..p.graph.nodes.len())
        .filter(|&i| p.graph.nodes[i].op.has_weights())
        .map(|i| (p.graph.nodes[i].name.clone(), runs_as_fully_connected(&p.graph, i)))
        .collect();
    let expect = [("first", false), ("cover", true), ("pointwise", true), ("padded", false)];
    assert_eq!(weighted.len(), expect.len(), "{weighted:?}");
    for ((name, fc), (want_name, want_fc)) in weighted.iter().zip(expect) {
        assert!(name.contains(want_name) && *fc == want_fc, "{weighted:?}");
    }
    for bits in [8, 4] {
        let compiled = compile(&p, &BitConfig::uniform(&p.graph, bits, 8)).unwrap();
        let model = hawq_runtime::Model::from_bytes(&compiled.blob).unwrap();
        let kinds: Vec<&str> = model.ops().filter_map(|op| op.ok()).map(|op| op.name()).collect();
        assert_eq!(kinds, ["conv2d", "fully_connected", "fully_connected", "conv2d"], "{bits}-bit weights");
        // The compile report names the op the device runs.
        let reported: Vec<&str> =
            compiled.layers.iter().filter(|l| l.weight_bits.is_some()).map(|l| l.op.as_str()).collect();
        assert_eq!(reported, ["conv", "conv as fc", "conv as fc", "conv"], "{bits}-bit weights");
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut it = hawq_runtime::Interpreter::new(&model, &mut arena).unwrap();
        let (mut signal, mut noise) = (0f64, 0f64);
        for s in 0..8 {
            let sample = &x[s * 48..(s + 1) * 48];
            let nhwc = g.input_layout.to_nhwc(sample, (4, 4, 3));
            let float = hawq_compiler::float_exec::run(&g, &nhwc);
            it.write_input_f32(&nhwc).unwrap();
            it.invoke().unwrap();
            let mut got = vec![0f32; float.len()];
            assert_eq!(it.read_output_f32(&mut got).unwrap(), float.len());
            for (q, f) in got.iter().zip(&float) {
                signal += (*f as f64).powi(2);
                noise += (*q as f64 - *f as f64).powi(2);
            }
        }
        let sqnr = 10.0 * (signal / noise.max(1e-30)).log10();
        // At 8 bits each layer's rounding alone keeps it above 30 dB; 4-bit weights of these
        // made-up kernels, above 15 dB. A layer whose rows were read in another order than the
        // input's would be noise: about 0 dB.
        let floor = if bits == 8 { 30.0 } else { 15.0 };
        assert!(sqnr > floor, "{bits}-bit weights: SQNR {sqnr:.1} dB against the float graph");
    }
}
