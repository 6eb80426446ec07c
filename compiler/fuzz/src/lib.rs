//! Shared by the compiler's fuzz targets. Errors are the expected outcome for most inputs; a
//! panic, an abort or an allocation past libFuzzer's limits is a crash.

use std::path::PathBuf;

use hawq_compiler::data::{Dataset, RawData};
use hawq_compiler::ir::{Graph, InputTransform, OpKind};
use hawq_compiler::quantize::BitConfig;

/// Graphs whose values hold more elements than this in total are imported but not executed (a
/// valid but big model is slow, not wrong, and running it would only report timeouts).
pub const MAX_VALUE_ELEMENTS: usize = 1 << 18;
/// Likewise for multiply-accumulates per inference.
pub const MAX_MACS: usize = 1 << 22;
/// Likewise for the inputs per output of a weight layer: GPTQ's moments are `K × K` per layer.
pub const MAX_LAYER_INPUTS: usize = 1 << 10;
/// Calibration samples of the compile target.
const CALIBRATION_SAMPLES: usize = 4;

/// Is the graph small enough to execute within the fuzzer's time and memory?
pub fn small_enough(g: &Graph) -> bool {
    let elements = g.values.iter().try_fold(0usize, |n, v| n.checked_add(v.elements()));
    let layer_inputs = g.nodes.iter().all(|n| match &n.op {
        OpKind::Conv(c) => c.weight.len() / c.weight.shape()[0].max(1) <= MAX_LAYER_INPUTS,
        OpKind::Fc(f) => f.weight.shape()[1] <= MAX_LAYER_INPUTS,
        _ => true,
    });
    // Window work of pools (taps per output), which MACs do not count.
    let window_work = g.nodes.iter().try_fold(0usize, |n, node| match &node.op {
        OpKind::AvgPool(w) | OpKind::MaxPool(w) => {
            n.checked_add(g.values[node.output].elements().checked_mul(w.kernel[0].checked_mul(w.kernel[1])?)?)
        }
        _ => Some(n),
    });
    elements.is_some_and(|n| n <= MAX_VALUE_ELEMENTS)
        && g.total_macs() <= MAX_MACS
        && window_work.is_some_and(|n| n <= MAX_MACS)
        && layer_inputs
}

/// `n` input values in [-2, 2) taken from `data`, starting at `salt` (so that samples differ).
pub fn input_from(data: &[u8], n: usize, salt: usize) -> Vec<f32> {
    if data.is_empty() {
        return vec![0.0; n];
    }
    (0..n).map(|i| (data[(i * 31 + salt * 7919) % data.len()] as f32 - 128.0) / 64.0).collect()
}

/// Imports `data` as an ONNX file; if the graph imports and is small, runs the float reference
/// on one input. The float reference panics on a malformed graph, so this checks that every
/// graph the importer accepts is consistent.
pub fn import_and_run(data: &[u8]) -> Option<Graph> {
    let graph = hawq_compiler::import::import_bytes(data).ok()?;
    if !small_enough(&graph) {
        return None;
    }
    let x = input_from(data, graph.values[graph.input].elements(), 0);
    let y = hawq_compiler::float_exec::run(&graph, &x);
    assert_eq!(y.len(), graph.values[graph.output].elements(), "output length");
    Some(graph)
}

/// Imports, calibrates on inputs derived from `data`, compiles at 8 bits and at a mixed
/// configuration, and runs each compiled model once on the runtime. Compilation may fail with
/// an error (scales out of the format's range, for example); a model it returns must load and run.
pub fn compile_and_run(data: &[u8]) {
    let Some(graph) = import_and_run(data) else { return };
    let n = graph.values[graph.input].elements();
    let samples: Vec<f32> = (0..CALIBRATION_SAMPLES).flat_map(|s| input_from(data, n, s + 1)).collect();
    let Ok(x) = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[CALIBRATION_SAMPLES, n]), samples) else {
        return;
    };
    let calib =
        Dataset { path: PathBuf::from("fuzz-calib.npz"), x: RawData::F32(x), y: vec![0.0; CALIBRATION_SAMPLES] };
    let Ok(prepared) = hawq_compiler::pipeline::prepare(graph, &calib, InputTransform::default()) else { return };
    let g = &prepared.graph;
    let uniform = BitConfig::uniform(g, 8, 8);
    // Weights 4, 2, 8 bits in turn; every other intermediate activation at 4 bits.
    let mixed = BitConfig {
        weight_bits: (0..g.nodes.len()).map(|i| [4, 2, 8][i % 3]).collect(),
        act_bits: (0..g.values.len())
            .map(|v| if v != g.input && v != g.output && v % 2 == 1 { 4 } else { 8 })
            .collect(),
    };
    for bits in [uniform, mixed] {
        let Ok(compiled) = hawq_compiler::pipeline::compile(&prepared, &bits) else { continue };
        let model = hawq_runtime::Model::from_bytes(&compiled.blob).expect("a compiled model loads");
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut it = hawq_runtime::Interpreter::new(&model, &mut arena).expect("the declared arena is accepted");
        let raw: Vec<u8> = match model.raw_input() {
            hawq_runtime::RawInput::F32 => input_from(data, n, 9).iter().flat_map(|v| v.to_le_bytes()).collect(),
            other => panic!("a float calibration set compiled to raw input {other:?}"),
        };
        it.write_input_raw(&raw).expect("raw input of the model's size");
        it.invoke().expect("a compiled model runs");
        let mut out = vec![0f32; model.output().elements()];
        it.read_output_f32(&mut out).expect("output buffer of the model's size");
    }
}

/// The fuzz input as an `.npz` file. First byte even: the rest is the file. Odd: the next two
/// bytes (u16 LE) split the rest into the contents of `x.npy` and `y.npy`, which are zipped
/// (stored, with valid checksums), so that mutations reach the `.npy` parser instead of failing
/// the zip's CRC.
pub fn npz_bytes(data: &[u8]) -> Option<Vec<u8>> {
    let (&mode, rest) = data.split_first()?;
    if mode % 2 == 0 {
        return Some(rest.to_vec());
    }
    let split = u16::from_le_bytes([*rest.first()?, *rest.get(1)?]) as usize;
    let members = &rest[2..];
    let (x, y) = members.split_at(split.min(members.len()));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in [("x.npy", x), ("y.npy", y)] {
        zip.start_file(name, options).ok()?;
        std::io::Write::write_all(&mut zip, bytes).ok()?;
    }
    Some(zip.finish().ok()?.into_inner())
}

/// Writes the `.npz` file of `data` (see [`npz_bytes`]; `Dataset::load` takes a path) and loads
/// it; when it loads, calls the accessors the compiler uses on every sample.
pub fn load_dataset(data: &[u8]) {
    let Some(bytes) = npz_bytes(data) else { return };
    let path = std::env::temp_dir().join(format!("hawq-fuzz-npz-{}.npz", std::process::id()));
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    let Ok(d) = Dataset::load(&path) else { return };
    // Known, left to data.rs: a Fortran-order `x` loads, and then every sample reads as empty
    // (`as_slice` is None), which the float executor turns into a panic. Skipped here so that
    // the run can look for anything else; see README.md.
    let standard = match &d.x {
        RawData::U8(a) => a.is_standard_layout(),
        RawData::I8(a) => a.is_standard_layout(),
        RawData::F32(a) => a.is_standard_layout(),
    };
    if !standard {
        return;
    }
    let n = d.sample_len();
    let _ = d.check_sample_len(n);
    let _ = d.dtype_name();
    for i in 0..d.len().min(4) {
        assert_eq!(d.real(i, InputTransform::default()).len(), n, "sample {i}: real values");
        assert_eq!(d.raw_f32(i).len(), n, "sample {i}: raw values");
        let bytes = d.raw(i);
        assert!(bytes.len() == n || bytes.len() == 4 * n, "sample {i}: {} raw bytes for {n} values", bytes.len());
    }
}
