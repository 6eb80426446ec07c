//! The `hawq` command line on the bundled example and on malformed inputs: every bad input is a
//! one-line error naming the problem, with a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hawq_compiler::onnx_proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, TypeProtoTensor, ValueInfoProto,
};
use ndarray::{Array1, Array4};
use ndarray_npy::NpzWriter;
use prost::Message;

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits").join(file)
}

fn hawq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hawq")).args(args).output().expect("hawq runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failing run printed exactly one line, mentioning each of `needles`.
fn assert_one_line_error(o: &Output, needles: &[&str]) {
    assert!(!o.status.success(), "expected failure, got success; stderr: {}", stderr(o));
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line of error, got:\n{err}");
    for n in needles {
        assert!(lines[0].contains(n), "error line should mention '{n}': {}", lines[0]);
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn compile_digits(out: &Path, extra: &[&str]) -> Output {
    let (model, calib) = (example("model.onnx"), example("calib.npz"));
    let mut args = vec!["compile", p(&model), "--calib", p(&calib), "--input-scale", "0.0625"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", p(out)]);
    hawq(&args)
}

#[test]
fn compile_eval_run_and_inspect_the_bundled_example() {
    let dir = tmp();
    let out = dir.path().join("digits.hq");
    let o = compile_digits(&out, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let compiled: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(compiled["weight_bytes"].as_u64().unwrap() > 0);

    let o = hawq(&["eval", p(&out), "--data", p(&example("eval.npz")), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["metric"], "top1");
    assert_eq!(v["samples"], 500);
    assert!(v["value"].as_f64().unwrap() >= 0.95, "int8 digits accuracy {v}");
    assert_eq!(v["weight_bytes"], compiled["weight_bytes"]);
    assert_eq!(v["arena_bytes"], compiled["arena_bytes"]);

    let o = hawq(&[
        "eval",
        p(&example("model.onnx")),
        "--data",
        p(&example("eval.npz")),
        "--input-scale",
        "0.0625",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(f.get("weight_bytes").is_none(), "an ONNX model has no weight_bytes: {f}");
    assert!(f["value"].as_f64().unwrap() >= 0.95);

    let x = Array4::<u8>::from_shape_fn((3, 1, 8, 8), |(n, _, y, x)| ((n * 5 + y * 3 + x) % 17) as u8);
    let xin = dir.path().join("x.npy");
    let yout = dir.path().join("y.npy");
    ndarray_npy::write_npy(&xin, &x).unwrap();
    let o = hawq(&["run", p(&out), "--input", p(&xin), "-o", p(&yout)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let y: ndarray::Array2<f32> = ndarray_npy::read_npy(&yout).unwrap();
    assert_eq!(y.shape(), &[3, 10]);

    let o = hawq(&["inspect", p(&out), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let i: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(i["layers"].as_array().unwrap().len(), compiled["layers"].as_array().unwrap().len());
    // Every conv and FC layer has its kernel scratch in the arena, clear of its own input and
    // output; it shares the arena with the tensors dead by then (the arena is less than the
    // tensors and scratch laid end to end).
    let arena = i["arena_bytes"].as_u64().unwrap();
    let (mut scratch_total, mut with_scratch) = (0, 0);
    for l in i["layers"].as_array().unwrap() {
        let weighted = ["conv2d", "depthwise_conv2d", "fully_connected"].contains(&l["op"].as_str().unwrap());
        let Some(s) = l["scratch"].as_object() else {
            assert!(!weighted, "no scratch for {l}");
            continue;
        };
        let (at, bytes) = (s["offset"].as_u64().unwrap(), s["bytes"].as_u64().unwrap());
        assert!(weighted && bytes > 0 && at % 4 == 0 && at + bytes <= arena, "{l}");
        for t in l["inputs"].as_array().unwrap().iter().chain([&l["output"]]) {
            let (t0, t1) =
                (t["offset"].as_u64().unwrap(), t["offset"].as_u64().unwrap() + t["bytes"].as_u64().unwrap());
            assert!(at + bytes <= t0 || t1 <= at, "scratch over a tensor of its op: {l}");
        }
        scratch_total += bytes;
        with_scratch += 1;
    }
    assert!(with_scratch >= 3);
    let tensors: u64 = i["tensors"].as_array().unwrap().iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    assert!(arena < tensors + scratch_total, "arena {arena}, tensors {tensors}, scratch {scratch_total}");
    assert_eq!(i["ram_bytes"].as_u64().unwrap(), arena + i["runtime_stack_bytes"].as_u64().unwrap());
    // The kernel set names each op kind of the layers and the weight widths, nothing else.
    let names: Vec<&str> = i["kernel_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for l in i["layers"].as_array().unwrap() {
        let op = l["op"].as_str().unwrap();
        assert!(op == "reshape" || names.contains(&op), "{op} missing from {names:?}");
        if let Some(bits) = l["weight_bits"].as_u64() {
            assert!(names.contains(&format!("weights_{bits}").as_str()), "{bits}-bit weights missing from {names:?}");
        }
    }
    let ops_used = |n: &&str| i["layers"].as_array().unwrap().iter().any(|l| l["op"] == **n);
    let is_op = |n: &&&str| {
        !n.starts_with("weights_")
            && !["acts_4", "long_rows", "depthwise_general", "conv_general", "high_rows", "offset_rows"].contains(*n)
    };
    assert!(names.iter().filter(is_op).all(ops_used), "{names:?}");
    let o = hawq(&["inspect", p(&out)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("arena map"));
    assert!(text.contains("(scratch of op 0)") && text.contains("RAM: arena"), "{text}");
    assert!(text.contains("kernels: conv2d"), "{text}");
    // Shapes print as lists of numbers (the digits model's input is 8×8 grey pixels).
    assert!(text.contains("[1,8,8,1]") || text.contains("[1, 8, 8, 1]"), "{text}");
    assert!(!text.contains("Number("), "{text}");
}

#[test]
fn truncated_onnx_is_a_one_line_error() {
    let dir = tmp();
    let bytes = std::fs::read(example("model.onnx")).unwrap();
    let bad = dir.path().join("truncated.onnx");
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    let o = hawq(&["eval", p(&bad), "--data", p(&example("eval.npz"))]);
    assert_one_line_error(&o, &["truncated.onnx"]);
}

#[test]
fn garbage_onnx_is_a_one_line_error() {
    let dir = tmp();
    let bad = dir.path().join("garbage.onnx");
    std::fs::write(&bad, b"\xff\xfe this is not a protobuf at all \x00\x01\x02").unwrap();
    let out = dir.path().join("o.hq");
    let o = hawq(&["compile", p(&bad), "--calib", p(&example("calib.npz")), "-o", p(&out)]);
    assert_one_line_error(&o, &["garbage.onnx", "ONNX"]);
    assert!(!out.exists());
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: 1,
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|&d| Dimension { dim_value: Some(d), dim_param: None }).collect(),
                }),
            }),
        }),
    }
}

fn write_model(path: &Path, graph: GraphProto) {
    let model = ModelProto {
        ir_version: 7,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
        producer_name: "hawq tests".into(),
        producer_version: String::new(),
        graph: Some(graph),
    };
    std::fs::write(path, model.encode_to_vec()).unwrap();
}

#[test]
fn unsupported_op_names_the_node_and_op() {
    let dir = tmp();
    let graph = GraphProto {
        node: vec![NodeProto {
            input: vec!["x".into()],
            output: vec!["y".into()],
            name: "my_lstm".into(),
            op_type: "LSTM".into(),
            ..Default::default()
        }],
        input: vec![value_info("x", &[1, 4])],
        output: vec![value_info("y", &[1, 4])],
        ..Default::default()
    };
    let path = dir.path().join("lstm.onnx");
    write_model(&path, graph);
    let o = hawq(&["eval", p(&path), "--data", p(&example("eval.npz"))]);
    assert_one_line_error(&o, &["lstm.onnx", "my_lstm", "LSTM"]);
}

#[test]
fn unsupported_attribute_names_the_node_and_attribute() {
    let dir = tmp();
    let graph = GraphProto {
        node: vec![NodeProto {
            input: vec!["x".into()],
            output: vec!["y".into()],
            name: "dilated".into(),
            op_type: "MaxPool".into(),
            attribute: vec![
                AttributeProto { name: "kernel_shape".into(), r#type: 7, ints: vec![3, 3], ..Default::default() },
                AttributeProto { name: "strides".into(), r#type: 7, ints: vec![2, 2], ..Default::default() },
                AttributeProto { name: "dilations".into(), r#type: 7, ints: vec![2, 2], ..Default::default() },
            ],
            ..Default::default()
        }],
        input: vec![value_info("x", &[1, 1, 8, 8])],
        output: vec![value_info("y", &[1, 1, 4, 4])],
        ..Default::default()
    };
    let path = dir.path().join("dilated.onnx");
    write_model(&path, graph);
    let o = hawq(&["eval", p(&path), "--data", p(&example("eval.npz"))]);
    assert_one_line_error(&o, &["dilated.onnx", "'dilated'", "MaxPool", "dilations"]);
}

fn write_npz(path: &Path, x_key: &str, x: &Array4<u8>, y_key: &str, y: &Array1<i64>) {
    let mut npz = NpzWriter::new(std::fs::File::create(path).unwrap());
    npz.add_array(x_key, x).unwrap();
    npz.add_array(y_key, y).unwrap();
    npz.finish().unwrap();
}

#[test]
fn wrong_npz_keys_are_a_one_line_error() {
    let dir = tmp();
    let path = dir.path().join("wrong.npz");
    write_npz(&path, "images", &Array4::zeros((2, 1, 8, 8)), "labels", &Array1::zeros(2));
    let o = hawq(&["eval", p(&example("model.onnx")), "--data", p(&path)]);
    assert_one_line_error(&o, &["wrong.npz", "'x'"]);
}

#[test]
fn wrong_npz_shapes_are_a_one_line_error() {
    let dir = tmp();
    let path = dir.path().join("shape.npz");
    write_npz(&path, "x", &Array4::zeros((2, 1, 9, 9)), "y", &Array1::zeros(2));
    let o = hawq(&["compile", p(&example("model.onnx")), "--calib", p(&path), "-o", p(&dir.path().join("o.hq"))]);
    assert_one_line_error(&o, &["shape.npz", "[1, 9, 9]"]);

    let path = dir.path().join("count.npz");
    write_npz(&path, "x", &Array4::zeros((3, 1, 8, 8)), "y", &Array1::zeros(2));
    let o = hawq(&["eval", p(&example("model.onnx")), "--data", p(&path)]);
    assert_one_line_error(&o, &["count.npz", "3 samples", "2 values"]);
}

#[test]
fn corrupted_model_file_is_a_one_line_error() {
    let dir = tmp();
    let out = dir.path().join("m.hq");
    let o = compile_digits(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut blob = std::fs::read(&out).unwrap();
    let mid = blob.len() / 2;
    blob[mid] ^= 0x55;
    std::fs::write(&out, &blob).unwrap();
    let o = hawq(&["inspect", p(&out)]);
    assert_one_line_error(&o, &["m.hq", "checksum"]);
}

#[test]
fn bad_bits_and_transform_are_rejected() {
    let dir = tmp();
    let out = dir.path().join("o.hq");
    let o = compile_digits(&out, &["--bits", "3"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("2, 4 or 8"), "{}", stderr(&o));
    // Real zero would sit at raw value 0.5: not an integer zero point.
    let o = compile_digits(&out, &["--input-offset=-0.03125"]);
    assert_one_line_error(&o, &["input transform"]);
    assert!(!out.exists());
}

#[test]
fn per_layer_bit_file_is_applied_and_validated() {
    let dir = tmp();
    let cfg = dir.path().join("bits.json");
    let out = dir.path().join("mixed.hq");
    std::fs::write(&cfg, r#"{"weight_bits": {"/conv2/Conv": 2, "/fc/Gemm": 4}, "act_bits": {"/dw/Conv_output_0": 4}}"#)
        .unwrap();
    let o = compile_digits(&out, &["--config", p(&cfg), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let layers = v["layers"].as_array().unwrap();
    let layer = |name: &str| layers.iter().find(|l| l["name"] == name).cloned().unwrap_or_default();
    assert_eq!(layer("/conv2/Conv")["weight_bits"], 2);
    assert_eq!(layer("/fc/Gemm")["weight_bits"], 4);
    assert_eq!(layer("/conv1/Conv")["weight_bits"], 8);
    assert_eq!(layer("/dw/Conv")["out_bits"], 4);

    std::fs::write(&cfg, r#"{"weight_bits": {"no_such_layer": 4}}"#).unwrap();
    let o = compile_digits(&out, &["--config", p(&cfg)]);
    assert_one_line_error(&o, &["bits.json", "no_such_layer"]);
}

#[test]
fn float_reference_matches_onnxruntime_on_the_bundled_example() {
    let graph = hawq_compiler::import::import(&example("model.onnx")).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/digits.npz");
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let input: ndarray::ArrayD<f32> = npz.by_name("input").unwrap();
    let output: ndarray::ArrayD<f32> = npz.by_name("output").unwrap();
    let per_in = input.len() / 8;
    let per_out = output.len() / 8;
    for s in 0..8 {
        let x = &input.as_slice().unwrap()[s * per_in..(s + 1) * per_in];
        let x = graph.input_layout.to_nhwc(x, graph.values[graph.input].hwc());
        let got = hawq_compiler::float_exec::run(&graph, &x);
        let want = &output.as_slice().unwrap()[s * per_out..(s + 1) * per_out];
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-4 * w.abs().max(1e-2 * scale), "sample {s}: ours {g}, onnxruntime {w}");
        }
    }
}

// ---- data files: layouts, sizes, dtypes, values -------------------------------------------

/// `.npy` bytes with the given header dictionary (padded as NumPy pads it) and data.
fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut dict = dict.to_string();
    while !(10 + dict.len() + 1).is_multiple_of(64) {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A zip of `.npy` entries, deflated.
fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Rewrites the uncompressed size a zip declares for its first entry (local header and central
/// directory), as a forged or bombed archive would.
fn forge_uncompressed_size(zip: &mut [u8], size: u32) {
    let find = |zip: &[u8], sig: &[u8]| zip.windows(4).position(|w| w == sig).expect("zip signature");
    let local = find(zip, b"PK\x03\x04");
    zip[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
    let central = find(zip, b"PK\x01\x02");
    zip[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
}

fn labels_npy(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    ndarray_npy::WriteNpyExt::write_npy(&Array1::<i64>::zeros(n), &mut out).unwrap();
    out
}

fn read_digits(file: &str) -> (ndarray::ArrayD<u8>, ndarray::ArrayD<i64>) {
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(example(file)).unwrap()).unwrap();
    (npz.by_name("x").unwrap(), npz.by_name("y").unwrap())
}

/// Writes `x` in Fortran (column-major) order, as `np.asfortranarray` or `x.T.copy().T` would.
fn write_fortran_npz(path: &Path, x: &ndarray::ArrayD<u8>, y: &ndarray::ArrayD<i64>) {
    use ndarray::ShapeBuilder;
    let mut fortran = ndarray::ArrayD::<u8>::zeros(x.shape().f());
    fortran.assign(x);
    assert!(!fortran.is_standard_layout());
    let mut npz = NpzWriter::new(std::fs::File::create(path).unwrap());
    npz.add_array("x", &fortran).unwrap();
    npz.add_array("y", y).unwrap();
    npz.finish().unwrap();
    let bytes = std::fs::read(path).unwrap();
    let flag = b"'fortran_order': True";
    assert!(bytes.windows(flag.len()).any(|w| w == flag), "not written in Fortran order");
}

fn json_value(o: &Output) -> f64 {
    assert!(o.status.success(), "{}", stderr(o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    v["value"].as_f64().expect("value")
}

#[test]
fn fortran_order_data_give_the_results_of_c_order_data() {
    let dir = tmp();
    let (x, y) = read_digits("eval.npz");
    let fortran_eval = dir.path().join("eval_f.npz");
    write_fortran_npz(&fortran_eval, &x, &y);
    let (cx, cy) = read_digits("calib.npz");
    let fortran_calib = dir.path().join("calib_f.npz");
    write_fortran_npz(&fortran_calib, &cx, &cy);

    let model = example("model.onnx");
    let float_eval =
        |data: &Path| json_value(&hawq(&["eval", p(&model), "--data", p(data), "--input-scale", "0.0625", "--json"]));
    let c_value = float_eval(&example("eval.npz"));
    assert!(c_value > 0.9, "float digits accuracy {c_value}");
    assert_eq!(float_eval(&fortran_eval), c_value);

    // Calibrating on the Fortran copy gives the very same model file.
    let (c_out, f_out) = (dir.path().join("c.hq"), dir.path().join("f.hq"));
    let o = compile_digits(&c_out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hawq(&["compile", p(&model), "--calib", p(&fortran_calib), "--input-scale", "0.0625", "-o", p(&f_out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&c_out).unwrap(), std::fs::read(&f_out).unwrap());
    let hq_eval = |data: &Path| json_value(&hawq(&["eval", p(&c_out), "--data", p(data), "--json"]));
    assert_eq!(hq_eval(&fortran_eval), hq_eval(&example("eval.npz")));
}

#[test]
fn npz_sizes_are_bounded_before_allocating() {
    let dir = tmp();
    let model = example("model.onnx");
    let eval = |name: &str, zip: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, zip).unwrap();
        hawq(&["eval", p(&model), "--data", p(&path)])
    };
    // A header claiming 10^12 samples in a file of a few hundred bytes.
    let x = npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000000, 1, 8, 8), }", &[]);
    let o = eval("huge.npz", &zip_bytes(&[("x.npy", &x), ("y.npy", &labels_npy(2))]));
    assert_one_line_error(&o, &["huge.npz", "'x'", "2 GiB"]);

    // A bomb: 8 MiB of zeros (8 KiB compressed) whose entry declares 3 GiB, under a header that
    // agrees: refused from the sizes, nothing decompressed.
    let zeros = vec![0u8; 8 << 20];
    let x = npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (3221225472,), }", &zeros);
    let mut zip = zip_bytes(&[("x.npy", &x), ("y.npy", &labels_npy(2))]);
    assert!(zip.len() < 64 << 10);
    forge_uncompressed_size(&mut zip, 3 << 30);
    let o = eval("bomb.npz", &zip);
    assert_one_line_error(&o, &["bomb.npz", "'x'", "2 GiB"]);

    // An entry that declares less than it expands to: reading stops at the declared size.
    let x = npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 8, 8), }", &zeros);
    let mut zip = zip_bytes(&[("x.npy", &x), ("y.npy", &labels_npy(2))]);
    forge_uncompressed_size(&mut zip, (x.len() - zeros.len() + 128) as u32);
    let o = eval("lying.npz", &zip);
    assert_one_line_error(&o, &["lying.npz", "'x'", "declared size"]);

    // A header claiming more data than the entry declares.
    let x = npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (200, 1, 8, 8), }", &[0; 128]);
    let o = eval("short.npz", &zip_bytes(&[("x.npy", &x), ("y.npy", &labels_npy(2))]));
    assert_one_line_error(&o, &["short.npz", "'x'", "12800 bytes"]);
}

#[test]
fn data_of_another_dtype_than_the_model_takes_is_refused() {
    let dir = tmp();
    let out = dir.path().join("digits.hq");
    assert!(compile_digits(&out, &[]).status.success());
    // The pixels as float32, as a pipeline that normalises them would store them.
    let (x, y) = read_digits("eval.npz");
    let xf = x.mapv(|v| v as f32);
    let data = dir.path().join("float.npz");
    let mut npz = NpzWriter::new(std::fs::File::create(&data).unwrap());
    npz.add_array("x", &xf).unwrap();
    npz.add_array("y", &y).unwrap();
    npz.finish().unwrap();
    let o = hawq(&["eval", p(&out), "--data", p(&data)]);
    assert_one_line_error(&o, &["float.npz", "float32", "uint8"]);

    let input = dir.path().join("x.npy");
    ndarray_npy::write_npy(&input, &xf.slice(ndarray::s![0..2, .., .., ..]).to_owned()).unwrap();
    let o = hawq(&["run", p(&out), "--input", p(&input), "-o", p(&dir.path().join("y.npy"))]);
    assert_one_line_error(&o, &["x.npy", "float32", "uint8"]);
    assert!(!dir.path().join("y.npy").exists());
}

fn write_float_npz(path: &Path, x: &ndarray::ArrayD<f32>, y: &ndarray::ArrayD<f64>) {
    let mut npz = NpzWriter::new(std::fs::File::create(path).unwrap());
    npz.add_array("x", x).unwrap();
    npz.add_array("y", y).unwrap();
    npz.finish().unwrap();
}

#[test]
fn non_finite_inputs_and_bad_labels_name_the_sample() {
    let dir = tmp();
    let model = example("model.onnx");
    let (x, y) = read_digits("eval.npz");
    let x = x.mapv(|v| v as f32 / 16.0);
    let y = y.mapv(|v| v as f64);
    let good = dir.path().join("good.npz");
    write_float_npz(&good, &x, &y);
    assert!(json_value(&hawq(&["eval", p(&model), "--data", p(&good), "--json"])) > 0.9);

    let mut nan_x = x.clone();
    nan_x[[3, 0, 4, 4]] = f32::NAN;
    let nan = dir.path().join("nan.npz");
    write_float_npz(&nan, &nan_x, &y);
    let o = hawq(&["eval", p(&model), "--data", p(&nan)]);
    assert_one_line_error(&o, &["nan.npz", "sample 3", "NaN"]);
    let o = hawq(&["compile", p(&model), "--calib", p(&nan), "-o", p(&dir.path().join("o.hq"))]);
    assert_one_line_error(&o, &["nan.npz", "sample 3", "NaN"]);
    let all_nan = dir.path().join("all_nan.npz");
    write_float_npz(&all_nan, &x.mapv(|_| f32::NAN), &y);
    let o = hawq(&["eval", p(&model), "--data", p(&all_nan)]);
    assert_one_line_error(&o, &["all_nan.npz", "sample 0"]);
    let mut inf_x = x.clone();
    inf_x[[7, 0, 0, 0]] = f32::INFINITY;
    write_float_npz(&nan, &inf_x, &y);
    let o = hawq(&["eval", p(&model), "--data", p(&nan)]);
    assert_one_line_error(&o, &["nan.npz", "sample 7"]);

    for (bad, shown) in [(f64::NAN, "NaN"), (10.0, "10"), (2.5, "2.5"), (-1.0, "-1")] {
        let mut bad_y = y.clone();
        bad_y[[4]] = bad;
        let labels = dir.path().join("labels.npz");
        write_float_npz(&labels, &x, &bad_y);
        let o = hawq(&["eval", p(&model), "--data", p(&labels), "--metric", "top1"]);
        assert_one_line_error(&o, &["labels.npz", "sample 4", shown, "0..10"]);
    }
}

// ---- outputs: never an input, atomic, the umask's permissions ------------------------------

#[test]
fn an_output_that_is_an_input_is_refused() {
    let dir = tmp();
    let model = dir.path().join("model.onnx");
    std::fs::copy(example("model.onnx"), &model).unwrap();
    let calib = dir.path().join("calib.npz");
    std::fs::copy(example("calib.npz"), &calib).unwrap();
    let original = std::fs::read(&model).unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let dotted = sub.join("../model.onnx");
    let hard = dir.path().join("hard.onnx");
    std::fs::hard_link(&model, &hard).unwrap();
    let mut outputs = vec![model.clone(), dotted, hard];
    #[cfg(unix)]
    {
        let link = dir.path().join("link.hq");
        std::os::unix::fs::symlink(&model, &link).unwrap();
        outputs.push(link);
    }
    for out in &outputs {
        let o = hawq(&["compile", p(&model), "--calib", p(&calib), "--input-scale", "0.0625", "-o", p(out)]);
        assert_one_line_error(&o, &[p(out), "model file", "refusing"]);
    }
    let o = hawq(&["compile", p(&model), "--calib", p(&calib), "--input-scale", "0.0625", "-o", p(&calib)]);
    assert_one_line_error(&o, &["calib.npz", "calibration data", "refusing"]);
    assert_eq!(std::fs::read(&model).unwrap(), original);

    let hq = dir.path().join("m.hq");
    assert!(compile_digits(&hq, &[]).status.success());
    let input = dir.path().join("x.npy");
    ndarray_npy::write_npy(&input, &Array4::<u8>::zeros((1, 1, 8, 8))).unwrap();
    let o = hawq(&["run", p(&hq), "--input", p(&input), "-o", p(&input)]);
    assert_one_line_error(&o, &["x.npy", "input file", "refusing"]);
    let o = hawq(&["run", p(&hq), "--input", p(&input), "-o", p(&hq)]);
    assert_one_line_error(&o, &["m.hq", "model file", "refusing"]);
    assert!(ndarray_npy::read_npy::<_, ndarray::ArrayD<u8>>(&input).is_ok());
}

/// The mode `File::create` gives a new file in `dir` (0666 less the umask).
#[cfg(unix)]
fn created_mode(dir: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("probe");
    std::fs::File::create(&probe).unwrap();
    let mode = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    std::fs::remove_file(probe).unwrap();
    mode
}

#[test]
fn outputs_are_replaced_atomically_with_the_umask_permissions() {
    let dir = tmp();
    let hq = dir.path().join("m.hq");
    assert!(compile_digits(&hq, &[]).status.success());
    let input = dir.path().join("x.npy");
    ndarray_npy::write_npy(&input, &Array4::<u8>::zeros((2, 1, 8, 8))).unwrap();
    // `out.npy` shares its inode with `kept.npy`: writing in place would change both; a new file
    // renamed over `out.npy` leaves `kept.npy` as it was.
    let kept = dir.path().join("kept.npy");
    std::fs::write(&kept, b"previous contents").unwrap();
    let out = dir.path().join("out.npy");
    std::fs::hard_link(&kept, &out).unwrap();
    let o = hawq(&["run", p(&hq), "--input", p(&input), "-o", p(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&kept).unwrap(), b"previous contents");
    let y: ndarray::Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(y.shape(), &[2, 10]);

    // No temporary file is left beside the outputs.
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["kept.npy", "m.hq", "out.npy", "x.npy"]);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let want = created_mode(dir.path());
        for f in [&hq, &out] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want, "{}: mode {mode:o}, File::create gives {want:o}", f.display());
        }
    }
}

// ---- flags: parsed as documented, refused where they would change nothing -----------------

#[test]
fn negative_offsets_parse_without_an_equals_sign() {
    let dir = tmp();
    let data = example("eval.npz");
    let model = example("model.onnx");
    // real = x/2 − 48.5 puts real zero at raw 97: zero point −31 on the uint8 − 128 scale.
    let out = dir.path().join("o.hq");
    let args = ["--input-scale", "0.5", "--input-offset", "-48.5"];
    let o = hawq(&[&["compile", p(&model), "--calib", p(&example("calib.npz"))][..], &args, &["-o", p(&out)]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hawq(&[&["eval", p(&model), "--data", p(&data)][..], &args, &["--json"]].concat());
    let shifted = json_value(&o);
    let o = hawq(&["eval", p(&model), "--data", p(&data), "--input-scale", "0.5", "--input-offset=-48.5", "--json"]);
    assert_eq!(json_value(&o), shifted);
}

/// An offset whose real zero falls between two raw integers is refused with the nearest offset
/// that is exact, which then compiles.
#[test]
fn an_inexact_input_offset_is_refused_with_the_nearest_exact_one() {
    let dir = tmp();
    let model = example("model.onnx");
    let out = dir.path().join("o.hq");
    // real = x/2 − 48.3: zero at raw 96.6 (uint8), −31.4 on the uint8 − 128 scale; nearest −31,
    // i.e. x = 97 and offset −48.5.
    let calib = example("calib.npz");
    let o = hawq(&[
        "compile",
        p(&model),
        "--calib",
        p(&calib),
        "--input-scale",
        "0.5",
        "--input-offset=-48.3",
        "-o",
        p(&out),
    ]);
    assert_one_line_error(&o, &["-31.4", "--input-offset=-48.5", "(real zero at -31)"]);
    assert!(!out.exists());
    let o = hawq(&[
        "compile",
        p(&model),
        "--calib",
        p(&calib),
        "--input-scale",
        "0.5",
        "--input-offset=-48.5",
        "-o",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn flags_that_would_change_nothing_are_refused() {
    let dir = tmp();
    let model = example("model.onnx");
    let data = example("eval.npz");
    let out = dir.path().join("o.hq");

    let o = hawq(&["eval", p(&model), "--data", p(&data), "--metric", "auc-recon", "--window-stride", "0"]);
    assert_one_line_error(&o, &["--window-stride", "at least 1"]);
    let o = hawq(&["eval", p(&model), "--data", p(&data), "--input-scale", "0.0625", "--window-stride", "16"]);
    assert_one_line_error(&o, &["model.onnx", "--window-stride", "auc-recon", "top1"]);
    let o = hawq(&["eval", p(&model), "--data", p(&data), "--input-scale", "0.0625", "--metric", "rmse"]);
    assert_one_line_error(&o, &["eval.npz", "rmse", "10 outputs"]);
    let o = hawq(&["eval", p(&model), "--data", p(&data), "--input-scale", "0.0625", "--metric", "auc-recon"]);
    assert_one_line_error(&o, &["eval.npz", "auc-recon", "64 values and gives 10"]);

    assert!(compile_digits(&out, &[]).status.success());
    for flag in ["--input-scale", "--input-offset"] {
        let o = hawq(&["eval", p(&out), "--data", p(&data), flag, "0.0625"]);
        assert_one_line_error(&o, &["o.hq", flag, "folded"]);
    }

    let o = compile_digits(&out, &["--pin", "/conv1/Conv=8"]);
    assert_one_line_error(&o, &["model.onnx", "--pin", "budget"]);
    let o = compile_digits(&out, &["--tolerance", "0.01"]);
    assert_one_line_error(&o, &["model.onnx", "--tolerance", "budget"]);
    let o = compile_digits(&out, &["--budget-kib", "1.5", "--bits", "4"]);
    assert_one_line_error(&o, &["model.onnx", "--bits", "budget"]);
    let o = compile_digits(&out, &["--budget-kib", "1.5", "--avg-bits", "4"]);
    assert_one_line_error(&o, &["model.onnx", "not both"]);
    for flag in [&["--metric", "top1"][..], &["--window-stride", "4"], &["--points", "3"]] {
        let o = hawq(&[&["analyze", p(&model), "--calib", p(&example("calib.npz"))][..], flag].concat());
        assert_one_line_error(&o, &["model.onnx", flag[0], "--eval"]);
    }

    // Float data are real values: a transform on them would be ignored.
    let (x, y) = read_digits("calib.npz");
    let float = dir.path().join("float.npz");
    write_float_npz(&float, &x.mapv(|v| v as f32 / 16.0), &y.mapv(|v| v as f64));
    let o = hawq(&["compile", p(&model), "--calib", p(&float), "--input-scale", "2", "-o", p(&out)]);
    assert_one_line_error(&o, &["float.npz", "float32", "--input-scale"]);
}

// ---- auc-recon on a compiled model compares real values with real values ------------------

/// An 8-value "autoencoder" that reconstructs non-negative inputs and zeroes negative ones:
/// `y = relu(x)` (a Gemm with the identity, then Relu).
fn write_relu_autoencoder(path: &Path) {
    let mut eye = vec![0f32; 64];
    for i in 0..8 {
        eye[i * 9] = 1.0;
    }
    let weight =
        TensorProto { dims: vec![8, 8], data_type: 1, float_data: eye, name: "w".into(), ..Default::default() };
    let graph = GraphProto {
        node: vec![
            NodeProto {
                input: vec!["x".into(), "w".into()],
                output: vec!["h".into()],
                name: "fc".into(),
                op_type: "Gemm".into(),
                ..Default::default()
            },
            NodeProto {
                input: vec!["h".into()],
                output: vec!["y".into()],
                name: "relu".into(),
                op_type: "Relu".into(),
                ..Default::default()
            },
        ],
        initializer: vec![weight],
        input: vec![value_info("x", &[1, 8])],
        output: vec![value_info("y", &[1, 8])],
        ..Default::default()
    };
    write_model(path, graph);
}

#[test]
fn auc_recon_of_a_compiled_model_agrees_with_the_float_model() {
    let dir = tmp();
    let model = dir.path().join("ae.onnx");
    write_relu_autoencoder(&model);
    // uint8 sensor values with real = x/16 − 8: normal samples (y = 0) stay at or above raw 128
    // (real ≥ 0, reconstructed), anomalies (y = 1) dip below it (the Relu cannot reconstruct
    // them), by a varying amount. Each sample is two windows of 8 values.
    let n = 64;
    let x = ndarray::Array2::<u8>::from_shape_fn((n, 16), |(i, j)| {
        let wave = ((i * 7 + j * 13) % 100) as u8;
        if i % 2 == 1 && j % 5 == 0 {
            100 - (i as u8 % 40) // anomaly: real between −8.25 and −1.75
        } else {
            128 + wave
        }
    });
    let y = Array1::<i64>::from_shape_fn(n, |i| (i % 2) as i64);
    let data = dir.path().join("ae.npz");
    let mut npz = NpzWriter::new(std::fs::File::create(&data).unwrap());
    npz.add_array("x", &x).unwrap();
    npz.add_array("y", &y).unwrap();
    npz.finish().unwrap();
    // Calibration takes whole inputs: the same values cut into windows.
    let calib = dir.path().join("calib.npz");
    let mut npz = NpzWriter::new(std::fs::File::create(&calib).unwrap());
    npz.add_array("x", &x.to_shape((2 * n, 8)).unwrap()).unwrap();
    npz.add_array("y", &Array1::<i64>::zeros(2 * n)).unwrap();
    npz.finish().unwrap();
    let transform = ["--input-scale", "0.0625", "--input-offset", "-8"];
    let hq = dir.path().join("ae.hq");
    let o = hawq(&[&["compile", p(&model), "--calib", p(&calib)][..], &transform, &["-o", p(&hq)]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let metric = ["--metric", "auc-recon", "--window-stride", "8", "--json"];
    let float = json_value(&hawq(&[&["eval", p(&model), "--data", p(&data)][..], &transform, &metric].concat()));
    let compiled = json_value(&hawq(&[&["eval", p(&hq), "--data", p(&data)][..], &metric].concat()));
    assert!(float > 0.99, "float AUC {float}");
    // Compared in raw units (128..227 against outputs of 0..6.2) the normal samples would look
    // worst and the AUC would be near 0.
    assert!((compiled - float).abs() < 0.02, "compiled AUC {compiled}, float {float}");
}

// ---- the tensor table has no fixed capacity --------------------------------------------------

/// A chain of `layers` fully connected layers over 8 values, each a cyclic shift of its input by
/// one place (a permutation: every layer is exact at 8 bits, and the values stay in range however
/// long the chain). One weight initializer serves every layer.
fn write_shift_chain(path: &Path, layers: usize) {
    let mut shift = vec![0f32; 64];
    for i in 0..8 {
        // Gemm computes y = x·B: y[(i + 1) % 8] = x[i].
        shift[i * 8 + (i + 1) % 8] = 1.0;
    }
    let weight =
        TensorProto { dims: vec![8, 8], data_type: 1, float_data: shift, name: "w".into(), ..Default::default() };
    let name = |k: usize| {
        if k == 0 {
            "x".to_string()
        } else if k == layers {
            "y".to_string()
        } else {
            format!("h{k}")
        }
    };
    let node = (1..=layers)
        .map(|k| NodeProto {
            input: vec![name(k - 1), "w".into()],
            output: vec![name(k)],
            name: format!("fc{k}"),
            op_type: "Gemm".into(),
            ..Default::default()
        })
        .collect();
    let graph = GraphProto {
        node,
        initializer: vec![weight],
        input: vec![value_info("x", &[1, 8])],
        output: vec![value_info("y", &[1, 8])],
        ..Default::default()
    };
    write_model(path, graph);
}

/// uint8 samples of 8 values and zero labels.
fn write_u8_samples(path: &Path, x: &ndarray::Array2<u8>) {
    let mut npz = NpzWriter::new(std::fs::File::create(path).unwrap());
    npz.add_array("x", x).unwrap();
    npz.add_array("y", &Array1::<i64>::zeros(x.nrows())).unwrap();
    npz.finish().unwrap();
}

/// 100 layers, 101 tensors: past the 64 of format version 3's fixed tensor table. The model
/// compiles (the runtime's loader re-reads it), `inspect` lists every tensor through the table,
/// and running it gives the input shifted by 100 mod 8 = 4 places, within a quantization step.
#[test]
fn a_model_of_more_than_64_tensors_compiles_and_runs() {
    let dir = tmp();
    let model = dir.path().join("chain.onnx");
    write_shift_chain(&model, 100);
    let x = ndarray::Array2::<u8>::from_shape_fn((64, 8), |(i, j)| ((i * 37 + j * 101) % 256) as u8);
    let calib = dir.path().join("calib.npz");
    write_u8_samples(&calib, &x);
    let hq = dir.path().join("chain.hq");
    let o = hawq(&["compile", p(&model), "--calib", p(&calib), "--input-scale", "0.0625", "-o", p(&hq)]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = hawq(&["inspect", p(&hq), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let i: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(i["layers"].as_array().unwrap().len(), 100);
    let tensors = i["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 101);
    assert!(tensors.iter().enumerate().all(|(k, t)| t["index"] == k && t["shape"] == serde_json::json!([1, 1, 1, 8])));

    let xin = dir.path().join("x.npy");
    let inputs = x.slice(ndarray::s![..5, ..]).to_owned();
    ndarray_npy::write_npy(&xin, &inputs).unwrap();
    let yout = dir.path().join("y.npy");
    let o = hawq(&["run", p(&hq), "--input", p(&xin), "-o", p(&yout)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let y: ndarray::Array2<f32> = ndarray_npy::read_npy(&yout).unwrap();
    for (s, row) in y.outer_iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let want = inputs[[s, (j + 4) % 8]] as f32 * 0.0625;
            assert!((v - want).abs() <= 0.0625, "sample {s} element {j}: {v}, want {want}");
        }
    }
}

/// The only limit left is the 16-bit tensor index: a model of 65,536 tensors is refused right
/// after import, naming the file and the limit, before the calibration data are read (the
/// calibration file here does not exist).
#[test]
fn more_tensors_than_16_bit_indices_can_name_are_refused_before_calibration() {
    let dir = tmp();
    let model = dir.path().join("huge.onnx");
    write_shift_chain(&model, 65_535);
    let missing = dir.path().join("no-such-calib.npz");
    let o = hawq(&["compile", p(&model), "--calib", p(&missing), "-o", p(&dir.path().join("huge.hq"))]);
    assert_one_line_error(&o, &["huge.onnx", "65536 tensors", "65535"]);
}

/// `hawq compile --emit-c`: the model as C source that compiles against the C library's header
/// (runtime-c/include/hawq.h) with the host's C compiler; the array holds exactly the `.hq`
/// file's bytes, 16-byte aligned, and every macro equals what the runtime reads from the model.
#[test]
fn emit_c_writes_the_model_as_c_source_that_agrees_with_the_model_file() {
    let dir = tmp();
    let out = dir.path().join("digits.hq");
    let cdir = dir.path().join("c");
    let o = compile_digits(&out, &["--emit-c", p(&cdir), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let (header, source) = (cdir.join("digits_model.h"), cdir.join("digits_model.c"));
    assert_eq!(v["c_header"].as_str(), Some(p(&header)));
    assert_eq!(v["c_source"].as_str(), Some(p(&source)));
    let text = std::fs::read_to_string(&header).unwrap();
    assert!(text.contains(&format!("#define DIGITS_ARENA_BYTES {}u", v["arena_bytes"])), "{text}");

    let check = dir.path().join("check.c");
    std::fs::write(
        &check,
        r#"#include <stdio.h>
#include <string.h>
#include "hawq.h"
#include "digits_model.h"
_Static_assert(DIGITS_INPUT_RAW_KIND == HAWQ_RAW_U8, "raw kind");
_Static_assert(DIGITS_OUTPUT0_DTYPE == HAWQ_DTYPE_INT8, "dtype");
_Static_assert(DIGITS_MODEL_FORMAT_VERSION == HAWQ_FORMAT_VERSION, "format");
_Static_assert(sizeof digits_model == DIGITS_MODEL_BYTES, "bytes");
static unsigned bits(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
int main(int argc, char **argv) {
    FILE *f = fopen(argv[argc - 1], "wb");
    if (!f || fwrite(digits_model, 1, sizeof digits_model, f) != sizeof digits_model) return 1;
    fclose(f);
    printf("align=%u arena=%u in=%u raw=%u in_scale=%08x in_zp=%d outs=%u out=%u out_bytes=%u out_scale=%08x out_zp=%d\n",
           (unsigned)((size_t)digits_model % 16), DIGITS_ARENA_BYTES, DIGITS_INPUT_ELEMENTS, DIGITS_INPUT_RAW_BYTES,
           bits(DIGITS_INPUT_SCALE), DIGITS_INPUT_ZERO_POINT, DIGITS_OUTPUT_COUNT, DIGITS_OUTPUT0_ELEMENTS,
           DIGITS_OUTPUT0_BYTES, bits(DIGITS_OUTPUT0_SCALE), DIGITS_OUTPUT0_ZERO_POINT);
    return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("check");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime-c/include");
    let cc = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .args([
            include.as_os_str(),
            "-I".as_ref(),
            cdir.as_os_str(),
            check.as_os_str(),
            source.as_os_str(),
            "-o".as_ref(),
        ])
        .arg(&exe)
        .output()
        .expect("the host C compiler (cc) runs");
    assert!(cc.status.success(), "cc rejects the emitted C:\n{}", String::from_utf8_lossy(&cc.stderr));
    let copy = dir.path().join("copy.hq");
    let run = Command::new(&exe).arg(&copy).output().expect("the check program runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let blob = std::fs::read(&out).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), blob, "the C array is not the model file");

    let model = hawq_runtime::Model::from_bytes(&blob).unwrap();
    let (input, output) = (*model.input(), *model.output());
    let want = format!(
        "align=0 arena={} in={} raw={} in_scale={:08x} in_zp={} outs=1 out={} out_bytes={} out_scale={:08x} out_zp={}",
        model.arena_bytes(),
        input.elements(),
        input.elements(),
        input.scale.to_f32().to_bits(),
        input.zero_point,
        output.elements(),
        output.bytes(),
        output.scale.to_f32().to_bits(),
        output.zero_point
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), want);
}

/// `hawq compile --emit-rust`: a program written as the module's documentation says (`load`,
/// `Arena`, `interpreter`, `write_input_raw`, `invoke`, `read_output`), built with cargo against
/// this repository's `hawq-runtime`, gives on every input the bytes and real values the runtime
/// gives on the model file; its constants are the model's.
#[test]
fn emit_rust_writes_a_module_a_program_runs_the_model_with() {
    let dir = tmp();
    let out = dir.path().join("digits.hq");
    let rdir = dir.path().join("rs");
    let o = compile_digits(&out, &["--emit-rust", p(&rdir), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let module = rdir.join("digits_model.rs");
    assert_eq!(v["rust_module"].as_str(), Some(p(&module)));
    let blob = std::fs::read(&out).unwrap();
    assert_eq!(std::fs::read(rdir.join("digits_model.hq")).unwrap(), blob, "the embedded copy is not the model");

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let app = dir.path().join("app");
    std::fs::create_dir_all(app.join("src")).unwrap();
    std::fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"emit-rust-check\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nhawq-runtime = {{ path = {:?} }}\n\n[workspace]\n",
            p(&repo.join("runtime"))
        ),
    )
    .unwrap();
    // The repository's lock file: the same dependency versions as the runtime's own build.
    std::fs::copy(repo.join("Cargo.lock"), app.join("Cargo.lock")).unwrap();
    std::fs::write(
        app.join("src/main.rs"),
        format!(
            r#"#[path = {:?}]
mod digits_model;

fn main() {{
    let raw = std::fs::read(std::env::args().nth(1).expect("inputs")).expect("read inputs");
    let model = digits_model::load().expect("load");
    let mut arena = Box::new(digits_model::Arena::new());
    let mut it = digits_model::interpreter(&model, &mut arena).expect("interpreter");
    println!("arena={{}} in={{}} raw={{}} out={{}} out_bytes={{}} outs={{}} kernels={{:#x}} model={{}} align={{}}",
        digits_model::ARENA_BYTES, digits_model::INPUT_ELEMENTS, digits_model::INPUT_RAW_BYTES,
        digits_model::OUTPUT_ELEMENTS, digits_model::OUTPUT_BYTES, digits_model::OUTPUT_COUNT,
        digits_model::KERNELS, digits_model::MODEL_BYTES, digits_model::MODEL.as_ptr() as usize % 16);
    for x in raw.chunks_exact(digits_model::INPUT_RAW_BYTES) {{
        it.write_input_raw(x).expect("input");
        it.invoke().expect("invoke");
        let y = digits_model::read_output(&it).expect("output");
        println!("{{:?}} {{:?}}", it.output_bytes(), y.map(f32::to_bits));
    }}
}}
"#,
            p(&module)
        ),
    )
    .unwrap();
    let inputs: Vec<u8> = (0..5 * 64u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 & 0x0F).collect();
    let input_file = dir.path().join("inputs.bin");
    std::fs::write(&input_file, &inputs).unwrap();
    let run = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--offline", "--manifest-path"])
        .arg(app.join("Cargo.toml"))
        .arg("--")
        .arg(&input_file)
        .env("CARGO_TARGET_DIR", repo.join("target/emit-rust-check"))
        .output()
        .expect("cargo runs");
    assert!(run.status.success(), "the program on the emitted module fails:\n{}", String::from_utf8_lossy(&run.stderr));

    let model = hawq_runtime::Model::from_bytes(&blob).unwrap();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut it = hawq_runtime::Interpreter::new(&model, &mut arena).unwrap();
    let kernels = hawq_runtime::kernels::linked::required(&model).unwrap();
    let (input, output) = (*model.input(), *model.output());
    let mut want = vec![format!(
        "arena={} in={} raw={} out={} out_bytes={} outs=1 kernels={kernels:#x} model={} align=0",
        model.arena_bytes(),
        input.elements(),
        input.elements(),
        output.elements(),
        output.bytes(),
        blob.len()
    )];
    for x in inputs.chunks_exact(64) {
        it.write_input_raw(x).unwrap();
        it.invoke().unwrap();
        let mut y = vec![0f32; output.elements()];
        it.read_output_f32(&mut y).unwrap();
        want.push(format!("{:?} {:?}", it.output_bytes(), y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()));
    }
    assert_eq!(String::from_utf8_lossy(&run.stdout).lines().collect::<Vec<_>>(), want);
}

#[test]
fn emit_rust_refuses_a_file() {
    let dir = tmp();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let out = dir.path().join("digits.hq");
    let o = compile_digits(&out, &["--emit-rust", p(&file)]);
    assert_one_line_error(&o, &["not-a-folder", "--emit-rust needs a folder"]);
    assert!(!out.exists(), "nothing may be written when --emit-rust is refused");
}

/// `hawq inspect m.hq | head`: a reader that goes away ends the command quietly, not with a
/// panic and a backtrace (the output pipe is closed before hawq writes anything).
#[test]
fn a_closed_output_pipe_ends_the_command_quietly() {
    let dir = tmp();
    let out = dir.path().join("digits.hq");
    assert!(compile_digits(&out, &[]).status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hawq"))
        .args(["inspect", p(&out)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hawq runs");
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(&o));
    assert_eq!(stderr(&o), "");
}

#[test]
fn emit_c_refuses_a_file_and_names_from_the_output_stem() {
    let dir = tmp();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let out = dir.path().join("9-digits.v1.hq");
    let o = compile_digits(&out, &["--emit-c", p(&file)]);
    assert_one_line_error(&o, &["not-a-folder", "--emit-c needs a folder"]);
    assert!(!out.exists(), "nothing may be written when --emit-c is refused");

    let cdir = dir.path().join("c");
    let o = compile_digits(&out, &["--emit-c", p(&cdir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(cdir.join("m9_digits_v1_model.h")).unwrap();
    assert!(text.contains("extern const uint8_t m9_digits_v1_model[M9_DIGITS_V1_MODEL_BYTES];"), "{text}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("m9_digits_v1_model.c"), "{stdout}");
}

/// The README's first command: the whole pipeline on the bundled example, no arguments, in a
/// scratch directory (it writes `target/demo/` under the current one).
#[test]
fn demo_runs_the_whole_pipeline_on_the_bundled_example() {
    let dir = std::env::temp_dir().join(format!("hawq-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hawq")).arg("demo").current_dir(&dir).output().expect("hawq runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "demo failed: {}\n{out}", stderr(&o));
    assert!(dir.join("target/demo/digits.hq").is_file() && dir.join("target/demo/report/report.md").is_file());
    // The arena budget made HAWQ choose 4-bit activations: the model's arena is under 1.6 KiB.
    let blob = std::fs::read(dir.join("target/demo/digits.hq")).unwrap();
    let model = hawq_runtime::Model::from_bytes(&blob).expect("the demo's model loads");
    assert!(model.arena_bytes() <= 1638, "arena {}", model.arena_bytes());
    assert!(model.tensors().iter().any(|t| t.dtype == hawq_runtime::DType::I4), "no 4-bit activation");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hawq new-app`: every board's project names the model's module and this checkout's runtime,
/// the Cortex-M4 one builds, and a folder in use or a float model for an ADC template is refused.
#[test]
fn new_app_writes_a_project_around_the_model_that_builds() {
    let dir = tmp();
    let model = dir.path().join("my-sensor.hq");
    let o = compile_digits(&model, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime").canonicalize().unwrap();
    for board in ["nrf52840-dk", "pico", "esp32c3", "cortex-m4"] {
        let project = dir.path().join(board);
        let o = hawq(&["new-app", "--board", board, "--model", p(&model), p(&project)]);
        assert!(o.status.success(), "{board}: {}", stderr(&o));
        let main = std::fs::read_to_string(project.join("src/main.rs")).unwrap();
        assert!(main.contains("mod my_sensor_model;") && !main.contains("digits_model"), "{board}: {main}");
        let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
        assert!(manifest.contains(&format!("path = {:?}", runtime.display().to_string())), "{board}: {manifest}");
        let module = std::fs::read_to_string(project.join("src/my_sensor_model.rs")).unwrap();
        assert_eq!(
            module,
            hawq_compiler::emit_rust::source("my_sensor_model", &std::fs::read(&model).unwrap(), "my-sensor.hq")
                .unwrap()
        );
        assert!(project.join(".cargo/config.toml").is_file() && project.join("README.md").is_file());
        // A second time into the same folder: refused, nothing overwritten.
        let o = hawq(&["new-app", "--board", board, "--model", p(&model), p(&project)]);
        assert_one_line_error(&o, &["not an empty folder"]);
    }
    let project = dir.path().join("cortex-m4");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/firmware");
    let build = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "the Cortex-M4 project does not build:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    // A float-input model cannot take an ADC's samples.
    let (onnx, floats) = (dir.path().join("relu.onnx"), dir.path().join("floats.npz"));
    write_relu_autoencoder(&onnx);
    let x = ndarray::Array2::from_shape_fn((32, 8), |(i, j)| ((i * 3 + j) % 7) as f32 / 7.0);
    let mut npz = NpzWriter::new(std::fs::File::create(&floats).unwrap());
    npz.add_array("x", &x).unwrap();
    npz.add_array("y", &ndarray::Array1::<i64>::zeros(32)).unwrap();
    npz.finish().unwrap();
    let float_model = dir.path().join("f.hq");
    let o = hawq(&["compile", p(&onnx), "--calib", p(&floats), "-o", p(&float_model), "--allow-low-fidelity"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hawq(&["new-app", "--board", "pico", "--model", p(&float_model), p(&dir.path().join("f"))]);
    assert_one_line_error(&o, &["f.hq", "float32 inputs", "write_input_f32"]);
}
