//! Import coverage on the project's own model zoo (examples/zoo, made by scripts/make_zoo.py):
//! each model as torch's TorchScript exporter writes it (opset 13) and as its default dynamo
//! exporter writes it (opset 20, weights in an external `.onnx.data` file), and three Keras
//! models (scripts/make_keras_zoo.py) as tf2onnx writes them at opset 13 and at its newest, 18:
//! channels-last inputs with Transposes around the convolutions. Every export imports, computes
//! what onnxruntime computes, and compiles to an int8 model within a point of float.

use std::path::{Path, PathBuf};

use hawq_compiler::data::Dataset;
use hawq_compiler::eval::{evaluate, Metric, Runner};
use hawq_compiler::import::import;
use hawq_compiler::ir::InputTransform;
use hawq_compiler::pipeline::{compile, prepare};
use hawq_compiler::quantize::BitConfig;
use ndarray::ArrayD;

/// Torch's two exporters (`model-ts.onnx`, `model-dynamo.onnx`).
const TORCH: &[&str] = &["ts", "dynamo"];
/// tf2onnx at opset 13 and at its newest opset (`model-opset13.onnx`, `model-opset18.onnx`).
const TF2ONNX: &[&str] = &["opset13", "opset18"];
/// Model folder, whether it is a classifier, its exports (also the keys of reference.npz).
const MODELS: &[(&str, bool, &[&str])] = &[
    ("lenet", true, TORCH),
    ("vgg", true, TORCH),
    ("resnet", true, TORCH),
    ("mobilenet-v1", true, TORCH),
    ("kws-conv1d", true, TORCH),
    ("mlp", true, TORCH),
    ("mlp-autoencoder", false, TORCH),
    ("mobilenet-v2", true, TORCH),
    ("mobilenet-v3-small", true, TORCH),
    ("resnet-20", true, TORCH),
    ("squeezenet", true, TORCH),
    ("mcunet", true, TORCH),
    ("se-net", true, TORCH),
    ("tcn", true, TORCH),
    ("tiny-unet", false, TORCH),
    ("tiny-unet-resize", false, TORCH),
    ("keras-cnn", true, TF2ONNX),
    ("keras-ds-cnn", true, TF2ONNX),
    ("keras-conv1d", true, TF2ONNX),
];
const TRANSFORM: InputTransform = InputTransform { scale: 0.0625, offset: 0.0 };

fn zoo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/zoo").join(path)
}

fn reference(model: &str, key: &str) -> ArrayD<f32> {
    let file = std::fs::File::open(zoo(&format!("{model}/reference.npz"))).expect("reference.npz");
    let mut npz = ndarray_npy::NpzReader::new(file).expect("npz");
    npz.by_name(key).or_else(|_| npz.by_name(&format!("{key}.npy"))).expect("array")
}

/// Float outputs against onnxruntime's on 8 eval samples: within 1e-4 relative to the element,
/// with a floor of 1e-4 of the row's largest magnitude for values near zero.
#[test]
fn every_export_imports_and_matches_onnxruntime() {
    let mut failures = Vec::new();
    for &(name, _, exports) in MODELS {
        let x = reference(name, "x");
        let per_sample = x.len() / 8;
        for &export in exports {
            let path = zoo(&format!("{name}/model-{export}.onnx"));
            let graph = match import(&path) {
                Ok(g) => g,
                Err(e) => {
                    failures.push(format!("{e:#}"));
                    continue;
                }
            };
            let want = reference(name, export);
            let outputs = want.len() / 8;
            let hwc = graph.values[graph.input].hwc();
            for s in 0..8 {
                let sample = &x.as_slice().expect("contiguous")[s * per_sample..(s + 1) * per_sample];
                let got = hawq_compiler::float_exec::run(&graph, &graph.input_layout.to_nhwc(sample, hwc));
                let row = &want.as_slice().expect("contiguous")[s * outputs..(s + 1) * outputs];
                let scale = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (i, (g, w)) in got.iter().zip(row).enumerate() {
                    let tol = 1e-4 * w.abs().max(1e-2 * scale).max(1e-6);
                    if (g - w).abs() > tol {
                        failures.push(format!("{name} {export} sample {s} output {i}: ours {g}, onnxruntime {w}"));
                        break;
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Uniform int8 through the bit-exact runtime: no fidelity divergence, and the classifiers
/// within one point of their float model on the 500 eval samples.
#[test]
fn every_export_compiles_to_int8_within_a_point_of_float() {
    let calib = Dataset::load(&zoo("calib.npz")).expect("calib");
    let eval = Dataset::load(&zoo("eval.npz")).expect("eval");
    let bar = indicatif::ProgressBar::hidden();
    let mut failures = Vec::new();
    for &(name, classifier, exports) in MODELS {
        for &export in exports {
            let path = zoo(&format!("{name}/model-{export}.onnx"));
            let Ok(graph) = import(&path) else {
                failures.push(format!("{name} {export}: does not import"));
                continue;
            };
            let prepared = prepare(graph.clone(), &calib, TRANSFORM).expect("prepare");
            let compiled = compile(&prepared, &BitConfig::uniform(&prepared.graph, 8, 8)).expect("compile");
            let fidelity =
                hawq_compiler::fidelity::measure(&prepared.graph, &compiled.blob, &calib, TRANSFORM).expect("fidelity");
            if let Some(why) = fidelity.divergence {
                failures.push(format!("{name} {export}: {why}"));
            }
            if classifier {
                let float =
                    evaluate(&Runner::Float { graph: &graph, transform: TRANSFORM }, &eval, Metric::Top1, 1, &bar)
                        .expect("float eval");
                let model = hawq_runtime::Model::from_bytes(&compiled.blob).expect("load");
                let int8 = evaluate(&Runner::Quantized { model }, &eval, Metric::Top1, 1, &bar).expect("int8 eval");
                println!("{name:<16} {export:<6} float {float:.4} int8 {int8:.4}");
                if (float - int8).abs() > 0.01 || float < 0.95 {
                    failures.push(format!("{name} {export}: float {float:.4}, int8 {int8:.4}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// External data as the dynamo exporter writes it, and what a hostile or damaged file could do
/// with it: a location outside the model's folder, a range past the file's end, a missing file,
/// a model handed over as bytes. Each is a one-line error naming the initializer.
#[test]
fn external_data_is_read_inside_the_model_folder_and_bounds_checked() {
    use hawq_compiler::onnx_proto::ModelProto;
    use prost::Message;
    let dir = tempfile::tempdir().expect("temp dir");
    let original = zoo("lenet/model-dynamo.onnx");
    let bytes = std::fs::read(&original).expect("model");
    std::fs::copy(zoo("lenet/model-dynamo.onnx.data"), dir.path().join("model-dynamo.onnx.data")).expect("data");
    let reference = import(&original).expect("the zoo model imports");
    let copy = dir.path().join("copy.onnx");
    std::fs::write(&copy, &bytes).expect("write");
    assert_eq!(import(&copy).expect("the copy imports"), reference);

    let edited = |key: &str, value: &str| {
        let mut m = ModelProto::decode(bytes.as_slice()).expect("decode");
        let graph = m.graph.as_mut().expect("graph");
        let t = graph.initializer.iter_mut().find(|t| t.data_location == 1).expect("an external initializer");
        let name = t.name.clone();
        let entry = t.external_data.iter_mut().find(|e| e.key == key);
        match entry {
            Some(e) => e.value = value.to_string(),
            None => t.external_data.push(hawq_compiler::onnx_proto::StringStringEntryProto {
                key: key.to_string(),
                value: value.to_string(),
            }),
        }
        let path = dir.path().join(format!("{key}.onnx"));
        std::fs::write(&path, m.encode_to_vec()).expect("write");
        (path, name)
    };
    for (key, value, needle) in [
        ("location", "../model-dynamo.onnx.data", "must be a plain path inside the model's folder"),
        ("location", "/etc/passwd", "must be a plain path inside the model's folder"),
        ("location", "missing.data", "cannot open its external data"),
        ("offset", "99999999", "lie outside"),
        ("length", "abc", "is not a byte count"),
    ] {
        let (path, name) = edited(key, value);
        let err = format!("{:#}", import(&path).expect_err(value));
        assert!(err.contains(&name) && err.contains(needle), "{key}={value}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let err = format!("{:#}", hawq_compiler::import::import_bytes(&bytes).expect_err("bytes"));
    assert!(err.contains("needs the model file's folder"), "{err}");
}

/// A dilated Conv1d is imported as the plain kernel it equals (zeros between the taps): the
/// kws model's second convolution has dilation 2 and kernel 3, so a 5-tap kernel.
#[test]
fn a_dilated_convolution_becomes_the_equal_plain_kernel() {
    let graph = import(&zoo("kws-conv1d/model-ts.onnx")).expect("import");
    let kernels: Vec<[usize; 2]> = graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            hawq_compiler::ir::OpKind::Conv(c) => Some(c.window.kernel),
            _ => None,
        })
        .collect();
    assert_eq!(kernels, vec![[1, 3], [1, 5]]);
}
