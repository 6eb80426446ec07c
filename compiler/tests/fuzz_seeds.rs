//! Seed inputs for the compiler's fuzz targets (compiler/fuzz/): valid ONNX models built with
//! `onnx_builder` plus the bundled digits model, and valid `.npz` datasets. The test checks that
//! every seed is accepted (so fuzzing starts deep in the importer and the compiler, not at the
//! decoder); with `HAWQ_WRITE_FUZZ_SEEDS=1` it also writes them to `compiler/fuzz/corpus/`.

mod onnx_builder;

use std::path::{Path, PathBuf};

use hawq_compiler::data::Dataset;
use ndarray::{Array1, Array2, Array4};
use ndarray_npy::{NpzWriter, WriteNpyExt};
use onnx_builder::{float, int, ints, string, tensor, tensor_i64, Model};

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits").join(file)
}

/// Small valid models covering each supported operator and layout.
fn seed_models() -> Vec<(&'static str, Vec<u8>)> {
    let base = Model::base();
    let relu6 = Model::base()
        .init(tensor("lo", &[], vec![0.0]))
        .init(tensor("hi", &[], vec![6.0]))
        .node_before("pool", "Clip", "clip", &["r", "lo", "hi"], &["r6"], vec![])
        .rewire("pool", 0, "r6");
    let same_avg = Model::base()
        .attr("conv", string("auto_pad", "SAME_UPPER"))
        .attr("conv", ints("strides", &[2, 2]))
        .attr("pool", ints("kernel_shape", &[2, 2]))
        .attr("pool", ints("strides", &[1, 1]))
        .init(tensor("fc_w", &[10, 18], vec![0.05; 180]));
    let mut same_avg = same_avg;
    same_avg.node_mut("conv").attribute.retain(|a| a.name != "pads");
    same_avg.node_mut("pool").op_type = "AveragePool".into();
    // Depthwise then pointwise, a residual add, global average pool, softmax.
    let mobile = Model::new("x", &[1, 2, 6, 6])
        .init(tensor("dw", &[2, 1, 3, 3], (0..18).map(|i| (i % 5) as f32 / 10.0 - 0.2).collect()))
        .init(tensor("pw", &[2, 2, 1, 1], vec![0.5, -0.25, 0.75, 0.1]))
        .init(tensor("fc_w", &[2, 3], vec![0.3, -0.2, 0.1, 0.4, 0.2, -0.1]))
        .init(tensor("fc_b", &[3], vec![0.0, 0.1, -0.1]))
        .init(tensor("k", &[1, 2, 1, 1], vec![2.0, 0.5]))
        .node("Conv", "dw", &["x", "dw"], &["d"], vec![ints("pads", &[1, 1, 1, 1]), int("group", 2)])
        .node("Mul", "scale", &["d", "k"], &["d2"], vec![])
        .node("Relu", "relu", &["d2"], &["r"], vec![])
        .node("Conv", "pw", &["r", "pw"], &["q"], vec![])
        .node("Add", "residual", &["q", "x"], &["s"], vec![])
        .node("GlobalAveragePool", "gap", &["s"], &["g"], vec![])
        .node("Flatten", "flatten", &["g"], &["f"], vec![])
        .node("MatMul", "fc", &["f", "fc_w"], &["m"], vec![])
        .node("Add", "fc_bias", &["m", "fc_b"], &["logits"], vec![])
        .node("Softmax", "softmax", &["logits"], &["probs"], vec![int("axis", 1)])
        .output("probs", &[1, 3]);
    // NHWC input with a Transpose (TensorFlow converters), a constant-folded reshape target.
    let nhwc = Model::new("x", &[1, 4, 4, 1])
        .init(tensor("w", &[3, 1, 2, 2], (0..12).map(|i| i as f32 / 12.0 - 0.5).collect()))
        .init(tensor("b", &[3], vec![0.0, 0.1, 0.2]))
        .init(tensor_i64("shape_a", &[1], vec![1]))
        .init(tensor_i64("shape_b", &[1], vec![-1]))
        .init(tensor("fc_w", &[27, 2], (0..54).map(|i| ((i * 5) % 7) as f32 / 7.0 - 0.5).collect()))
        .node("Transpose", "to_nchw", &["x"], &["t"], vec![ints("perm", &[0, 3, 1, 2])])
        .node("Conv", "conv", &["t", "w", "b"], &["c"], vec![ints("strides", &[1, 1])])
        .node("Relu", "relu", &["c"], &["r"], vec![])
        .node("Transpose", "to_nhwc", &["r"], &["rt"], vec![ints("perm", &[0, 2, 3, 1])])
        .node("Concat", "shape", &["shape_a", "shape_b"], &["s"], vec![int("axis", 0)])
        .node("Reshape", "reshape", &["rt", "s"], &["f"], vec![])
        .node("Gemm", "fc", &["f", "fc_w"], &["y"], vec![float("alpha", 0.5)])
        .output("y", &[1, 2]);
    // A vector model (MLP) with BatchNormalization on the features.
    let mlp = Model::new("x", &[1, 4])
        .init(tensor("w1", &[4, 8], (0..32).map(|i| ((i * 3) % 11) as f32 / 11.0 - 0.5).collect()))
        .init(tensor("b1", &[8], vec![0.05; 8]))
        .init(tensor("w2", &[1, 8], vec![0.2, -0.1, 0.3, 0.0, 0.1, -0.2, 0.25, 0.15]))
        .node("Gemm", "fc1", &["x", "w1", "b1"], &["h"], vec![])
        .node("Relu", "relu", &["h"], &["r"], vec![])
        .node("Gemm", "fc2", &["r", "w2"], &["y"], vec![int("transB", 1)])
        .output("y", &[1, 1]);
    vec![
        ("base.onnx", base.bytes()),
        ("relu6.onnx", relu6.bytes()),
        ("same_avg.onnx", same_avg.bytes()),
        ("mobile.onnx", mobile.bytes()),
        ("nhwc.onnx", nhwc.bytes()),
        ("mlp.onnx", mlp.bytes()),
        ("digits.onnx", std::fs::read(example("model.onnx")).unwrap()),
    ]
}

/// Small valid datasets of every supported dtype.
fn seed_datasets(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let write = |name: &str, f: &dyn Fn(&mut NpzWriter<std::fs::File>)| -> Vec<u8> {
        let path = dir.join(name);
        let mut npz = NpzWriter::new(std::fs::File::create(&path).unwrap());
        f(&mut npz);
        npz.finish().unwrap();
        std::fs::read(&path).unwrap()
    };
    vec![
        (
            "u8_i64.npz",
            write("u8_i64.npz", &|n| {
                n.add_array("x", &Array4::<u8>::from_shape_fn((3, 1, 2, 2), |(a, _, b, c)| (a * 4 + b * 2 + c) as u8))
                    .unwrap();
                n.add_array("y", &Array1::<i64>::from_vec(vec![0, 1, 2])).unwrap();
            }),
        ),
        (
            "i8_f32.npz",
            write("i8_f32.npz", &|n| {
                n.add_array("x", &Array2::<i8>::from_shape_fn((2, 5), |(a, b)| (a as i8) * 3 - b as i8)).unwrap();
                n.add_array("y", &Array1::<f32>::from_vec(vec![0.5, -1.0])).unwrap();
            }),
        ),
        (
            "f32_f64.npz",
            write("f32_f64.npz", &|n| {
                n.add_array("x", &Array2::<f32>::from_shape_fn((2, 3), |(a, b)| a as f32 - b as f32 / 3.0)).unwrap();
                n.add_array("y", &Array1::<f64>::from_vec(vec![1.0, 2.0])).unwrap();
            }),
        ),
        ("digits_calib.npz", std::fs::read(example("calib.npz")).unwrap()),
    ]
}

/// The npz target's member form: mode 1, the length of `x.npy` (u16 LE), `x.npy`, `y.npy`.
fn npz_members<A, B>(x: &A, y: &B) -> Vec<u8>
where
    A: WriteNpyExt,
    B: WriteNpyExt,
{
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    x.write_npy(&mut xb).unwrap();
    y.write_npy(&mut yb).unwrap();
    let split = u16::try_from(xb.len()).unwrap().to_le_bytes();
    [&[1u8][..], &split, &xb, &yb].concat()
}

#[test]
fn fuzz_seeds_are_valid_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let models = seed_models();
    for (name, bytes) in &models {
        let graph = hawq_compiler::import::import_bytes(bytes).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let x = vec![0.25f32; graph.values[graph.input].elements()];
        let y = hawq_compiler::float_exec::run(&graph, &x);
        assert!(y.iter().all(|v| v.is_finite()), "{name}: {y:?}");
    }
    let datasets = seed_datasets(dir.path());
    for (name, bytes) in &datasets {
        let path = dir.path().join(format!("check_{name}"));
        std::fs::write(&path, bytes).unwrap();
        let d = Dataset::load(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(!d.is_empty(), "{name}");
    }
    // The npz target's inputs: a mode byte, then the file (even) or the two members (odd).
    let mut npz_inputs: Vec<(&str, Vec<u8>)> =
        datasets.iter().map(|(name, bytes)| (*name, [&[0u8][..], bytes].concat())).collect();
    npz_inputs.push(("members_u8_i64", npz_members(&Array2::<u8>::from_elem((2, 3), 7), &Array1::<i64>::zeros(2))));
    npz_inputs.push(("members_f32_f32", npz_members(&Array2::<f32>::from_elem((3, 2), 0.5), &Array1::<f32>::zeros(3))));
    if std::env::var_os("HAWQ_WRITE_FUZZ_SEEDS").is_some() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (target, seeds) in [("import", &models), ("compile", &models), ("npz", &npz_inputs)] {
            let d = corpus.join(target);
            std::fs::create_dir_all(&d).unwrap();
            for (name, bytes) in seeds.iter() {
                std::fs::write(d.join(name), bytes).unwrap();
            }
        }
    }
}
