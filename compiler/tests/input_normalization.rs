//! A per-channel input transform (`--input-scale a,b,c --input-offset d,e,f`, torchvision's
//! `Normalize(mean, std)`): the graph gains a first op that applies it to the raw input, which
//! must compute exactly what the original graph computes on the transformed input (borders of a
//! padded first convolution included), and the compiled model must follow the float one.

mod onnx_builder;

use std::path::Path;
use std::process::Command;

use hawq_compiler::float_exec;
use hawq_compiler::import::import_bytes;
use hawq_compiler::pipeline::with_input_normalization;
use ndarray::{Array1, Array4};
use ndarray_npy::NpzWriter;
use onnx_builder::{int, ints, tensor, Model};

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// `x (1×3×8×8) → conv 3×3 pad 1 (6 channels) → Relu → GlobalAveragePool → Flatten → Gemm → 4 logits`.
fn model() -> Model {
    let w = (0..6 * 3 * 9).map(|i| (((i * 37) % 23) as f32 - 11.0) / 40.0).collect();
    let fc = (0..4 * 6).map(|i| (((i * 11) % 7) as f32 - 3.0) / 3.0).collect();
    Model::new("x", &[1, 3, 8, 8])
        .init(tensor("w", &[6, 3, 3, 3], w))
        .init(tensor("b", &[6], vec![0.1, -0.2, 0.05, 0.0, 0.3, -0.1]))
        .init(tensor("fc_w", &[4, 6], fc))
        .init(tensor("fc_b", &[4], vec![0.0, 0.1, -0.1, 0.0]))
        .node("Conv", "conv", &["x", "w", "b"], &["c"], vec![ints("pads", &[1, 1, 1, 1])])
        .node("Relu", "relu", &["c"], &["r"], vec![])
        .node("GlobalAveragePool", "gap", &["r"], &["g"], vec![])
        .node("Flatten", "flatten", &["g"], &["f"], vec![])
        .node("Gemm", "fc", &["f", "fc_w", "fc_b"], &["logits"], vec![int("transB", 1)])
        .output("logits", &[1, 4])
}

/// Images whose channels have different ranges (as photographs' do), NCHW like PyTorch's.
fn images(n: usize) -> Array4<u8> {
    Array4::from_shape_fn((n, 3, 8, 8), |(i, c, y, x)| {
        let base = [170usize, 110, 60][c];
        ((base + (i * 31 + y * 13 + x * 7 + c * 5) % 80) % 256) as u8
    })
}

fn scale_offset() -> (Vec<f32>, Vec<f32>) {
    let scale = STD.iter().map(|s| 1.0 / (255.0 * s)).collect();
    let offset = MEAN.iter().zip(STD).map(|(m, s)| -m / s).collect();
    (scale, offset)
}

#[test]
fn the_first_op_computes_the_transform_the_original_graph_expects() {
    let graph = import_bytes(&model().bytes()).unwrap();
    let (scale, offset) = scale_offset();
    let normalized = with_input_normalization(graph.clone(), &scale, &offset).unwrap();
    assert_eq!(normalized.nodes.len(), graph.nodes.len() + 1);
    let x = images(4);
    for sample in x.outer_iter() {
        // The runtime's NHWC order.
        let raw: Vec<f32> =
            (0..64).flat_map(|p| (0..3).map(move |c| (c, p))).map(|(c, p)| sample[[c, p / 8, p % 8]] as f32).collect();
        let real: Vec<f32> = raw.iter().enumerate().map(|(i, &v)| v * scale[i % 3] + offset[i % 3]).collect();
        let (want, got) = (float_exec::run(&graph, &real), float_exec::run(&normalized, &raw));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{got:?} against {want:?}");
        }
    }
}

#[test]
fn the_wrong_number_of_values_names_the_channels() {
    let graph = import_bytes(&model().bytes()).unwrap();
    let e = with_input_normalization(graph.clone(), &[1.0, 2.0], &[]).unwrap_err().to_string();
    assert!(e.contains("2 values") && e.contains("3 channels"), "{e}");
    let e = with_input_normalization(graph, &[1.0, 0.0, 1.0], &[0.0]).unwrap_err().to_string();
    assert!(e.contains("channel 1 is 0"), "{e}");
}

fn hawq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hawq")).args(args).output().unwrap()
}

fn json_value(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// End to end: the compiled model takes the raw pixels and agrees with the float model fed the
/// normalized ones (the compile's fidelity check), and the transform lists parse as documented.
#[test]
fn compile_with_a_per_channel_transform_takes_raw_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let (onnx, data, out) = (dir.path().join("m.onnx"), dir.path().join("d.npz"), dir.path().join("m.hq"));
    std::fs::write(&onnx, model().bytes()).unwrap();
    let graph = import_bytes(&model().bytes()).unwrap();
    let (scale, offset) = scale_offset();
    let normalized = with_input_normalization(graph, &scale, &offset).unwrap();
    let x = images(96);
    // Labels: the float model's own classes, so that accuracy measures agreement with it.
    let y = Array1::from_iter(x.outer_iter().map(|s| {
        let raw: Vec<f32> =
            (0..64).flat_map(|p| (0..3).map(move |c| (c, p))).map(|(c, p)| s[[c, p / 8, p % 8]] as f32).collect();
        let logits = float_exec::run(&normalized, &raw);
        (0..4).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap() as i64
    }));
    let mut npz = NpzWriter::new(std::fs::File::create(&data).unwrap());
    npz.add_array("x", &x).unwrap();
    npz.add_array("y", &y).unwrap();
    npz.finish().unwrap();
    let list = |v: &[f32]| v.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(",");
    let (s, o) = (list(&scale), list(&offset));
    let p = |path: &Path| path.to_str().unwrap().to_string();
    let compiled =
        hawq(&["compile", &p(&onnx), "--calib", &p(&data), "--input-scale", &s, "--input-offset", &o, "-o", &p(&out)]);
    assert!(compiled.status.success(), "{}", String::from_utf8_lossy(&compiled.stderr));
    let float = json_value(&hawq(&[
        "eval",
        &p(&onnx),
        "--data",
        &p(&data),
        "--input-scale",
        &s,
        "--input-offset",
        &o,
        "--json",
    ]));
    let int = json_value(&hawq(&["eval", &p(&out), "--data", &p(&data), "--json"]));
    let (float, int) = (float["value"].as_f64().unwrap(), int["value"].as_f64().unwrap());
    assert_eq!(float, 1.0, "the labels are the float model's classes");
    assert!(int >= 0.9, "the compiled model parts from the float one: top-1 {int}");
    // The compiled model's logits on the raw pixels against the float model's on the normalized
    // ones: a transform lost or applied to the wrong channel moves them by far more.
    let (xs, ys) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    ndarray_npy::write_npy(&xs, &x).unwrap();
    let run = hawq(&["run", &p(&out), "--input", &p(&xs), "-o", &p(&ys)]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let got: ndarray::Array2<f32> = ndarray_npy::read_npy(&ys).unwrap();
    let (mut err, mut norm) = (0f64, 0f64);
    for (row, s) in got.outer_iter().zip(x.outer_iter()) {
        let raw: Vec<f32> =
            (0..64).flat_map(|p| (0..3).map(move |c| (c, p))).map(|(c, p)| s[[c, p / 8, p % 8]] as f32).collect();
        for (g, w) in row.iter().zip(float_exec::run(&normalized, &raw)) {
            err += ((g - w) as f64).powi(2);
            norm += (w as f64).powi(2);
        }
    }
    let sqnr = 10.0 * (norm / err).log10();
    println!("compiled top-1 agreement {int}, logits SQNR {sqnr:.1} dB");
    assert!(sqnr > 25.0, "logits SQNR {sqnr:.1} dB");
}
