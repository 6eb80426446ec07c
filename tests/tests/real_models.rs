//! The real-model suite: the fixtures' trained models and data (../shared/fixtures), never
//! skipped. Run by scripts/test-real-models.sh.

use std::path::Path;

use hawq_compiler::data::Dataset;
use hawq_compiler::eval::{evaluate, Metric, Runner};
use hawq_compiler::import::import;
use hawq_compiler::ir::{InputLayout, InputTransform};
use hawq_compiler::pipeline::{compile, prepare};
use hawq_compiler::quantize::BitConfig;
use hawq_e2e::{fixtures, FIXTURES};
use ndarray::ArrayD;
use ndarray_npy::NpzReader;

fn reference_output(name: &str) -> ArrayD<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference").join(format!("{name}.npz"));
    let mut npz = NpzReader::new(std::fs::File::open(&path).expect("reference file")).expect("npz");
    npz.by_name("output").or_else(|_| npz.by_name("output.npy")).expect("output array")
}

/// The first 8 evaluation inputs as scripts/onnx_reference_outputs.py feeds them to
/// onnxruntime: transformed, and for the autoencoder the first 8 windows of the first file.
fn reference_inputs(data: &Dataset, t: InputTransform, window: Option<usize>) -> Vec<Vec<f32>> {
    match window {
        Some(n) => {
            let first = data.real(0, t);
            (0..8).map(|w| first[w * 128..w * 128 + n].to_vec()).collect()
        }
        None => (0..8).map(|i| data.real(i, t)).collect(),
    }
}

fn assert_close(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: output size");
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // 1e-4 relative to the element, with a floor of 1e-4 of the row's largest magnitude for
        // values near zero (tiny softmax probabilities, near-zero logits).
        let tol = 1e-4 * w.abs().max(1e-2 * scale).max(1e-6);
        assert!((g - w).abs() <= tol, "{name}: element {i}: ours {g}, onnxruntime {w} (tolerance {tol})");
    }
}

#[test]
fn float_reference_matches_onnxruntime_on_every_fixture() {
    let root = fixtures();
    let cases: &[(&str, &str, &str, Option<usize>, bool)] = &[
        ("resnet8-cifar10", "resnet8-cifar10/model.onnx", "resnet8-cifar10/eval.npz", None, false),
        ("resnet8-cifar10-nchw", "resnet8-cifar10/model_nchw.onnx", "resnet8-cifar10/eval.npz", None, true),
        ("dscnn-kws", "dscnn-kws/model.onnx", "dscnn-kws/eval.npz", None, false),
        ("mnist8", "mnist8/model.onnx", "mnist8/eval.npz", None, false),
        ("autoencoder-ad", "autoencoder-ad/model.onnx", "autoencoder-ad/eval.npz", Some(640), false),
        ("sine-mlp", "sine-mlp/model.onnx", "sine-mlp/data.npz", None, false),
    ];
    for &(name, model, data, window, nhwc_data_for_nchw_model) in cases {
        let graph = import(&root.join(model)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let fixture = FIXTURES.iter().find(|f| name.starts_with(f.name)).expect("fixture metadata");
        let data = Dataset::load(&root.join(data)).unwrap();
        let want = reference_output(name);
        let per = want.len() / 8;
        for (s, x) in reference_inputs(&data, fixture.transform, window).iter().enumerate() {
            // The fixture data are NHWC; the NCHW export's graph input is channel-major, and the
            // importer stores it NHWC, so the NHWC sample is already in the runtime's order.
            let x = if nhwc_data_for_nchw_model {
                assert_eq!(graph.input_layout, InputLayout::Nchw);
                x.clone()
            } else {
                graph.input_layout.to_nhwc(x, graph.values[graph.input].hwc())
            };
            let got = hawq_compiler::float_exec::run(&graph, &x);
            let want = want.as_slice().expect("contiguous")[s * per..(s + 1) * per].to_vec();
            assert_close(&format!("{name} sample {s}"), &got, &want);
        }
    }
}

#[test]
fn uniform_int8_meets_the_accuracy_targets_on_the_bit_exact_runtime() {
    let root = fixtures();
    let mut failures = Vec::new();
    for f in FIXTURES {
        let graph = import(&root.join(f.model)).unwrap();
        let calib = Dataset::load(&root.join(f.calib)).unwrap();
        let eval = Dataset::load(&root.join(f.eval)).unwrap();
        let prepared = prepare(graph, &calib, f.transform).unwrap();
        let compiled = compile(&prepared, &BitConfig::uniform(&prepared.graph, 8, 8)).unwrap();
        let model = hawq_runtime::Model::from_bytes(&compiled.blob).unwrap();
        let bar = indicatif::ProgressBar::hidden();
        let value = evaluate(&Runner::Quantized { model }, &eval, f.metric, 128, &bar).unwrap();
        let ok = if f.metric == Metric::Rmse { value <= f.int8_target } else { value >= f.int8_target };
        println!(
            "{:<16} int8 {} = {value:.4} (target {}{}) weights {} B arena {} B file {} B",
            f.name,
            f.metric.name(),
            if f.metric == Metric::Rmse { "≤ " } else { "≥ " },
            f.int8_target,
            compiled.weight_bytes,
            compiled.arena_bytes,
            compiled.blob.len()
        );
        if !ok {
            failures.push(format!("{}: {} {value:.4} misses {}", f.name, f.metric.name(), f.int8_target));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// The fidelity report (compiled model against float model, layer by layer, on the calibration
/// data) on every fixture at uniform 8 and 4 bits: printed, and none may diverge.
#[test]
fn fidelity_report_on_every_fixture() {
    let root = fixtures();
    let mut failures = Vec::new();
    for f in FIXTURES {
        let graph = import(&root.join(f.model)).unwrap();
        let calib = Dataset::load(&root.join(f.calib)).unwrap();
        let prepared = prepare(graph, &calib, f.transform).unwrap();
        for bits in [8, 4] {
            let compiled = compile(&prepared, &BitConfig::uniform(&prepared.graph, bits, 8)).unwrap();
            let fidelity =
                hawq_compiler::fidelity::measure(&prepared.graph, &compiled.blob, &calib, f.transform).unwrap();
            println!("== {} w{bits}\n{}", f.name, fidelity.render());
            if let Some(why) = &fidelity.divergence {
                failures.push(format!("{} w{bits}: {why}", f.name));
            }
            if bits == 8 && fidelity.top1_agreement.is_some_and(|a| a < 0.95) {
                failures.push(format!("{} w8: top-1 agreement {:?}", f.name, fidelity.top1_agreement));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// `Interpreter::invoke_threads` gives the one-thread output bytes on every fixture, in int8 and
/// in mixed precision (4-bit activations run whole, 2/4-bit weights in bands), with the weights
/// prepared once (the host's fast path) and without, on 2 threads (large layers split) and on 3
/// (every layer of two rows or more split).
#[test]
fn threads_give_the_one_thread_bytes_on_every_fixture() {
    use hawq_e2e::qemu::{compile_cases, Config, ModelSpec};
    use hawq_runtime::{Interpreter, Model, Threads};
    let root = fixtures();
    for f in FIXTURES {
        for case in compile_cases(&ModelSpec::fixture(f, &root), &[Config::Int8, Config::Mixed], 8).unwrap() {
            let model = Model::from_bytes(&case.blob).unwrap();
            for (threads, min_macs) in [(2, None), (3, Some(0))] {
                let mut pool = Threads::new(&model, threads).unwrap();
                if let Some(m) = min_macs {
                    pool = pool.min_macs(m);
                }
                let mut arena = vec![0u8; model.arena_bytes()];
                let mut workspace = vec![0u8; model.host_workspace_bytes()];
                let mut it = Interpreter::with_workspace(&model, &mut arena, &mut workspace).unwrap();
                for (i, (x, want)) in case.inputs.iter().zip(&case.expected).enumerate() {
                    it.write_input_raw(x).unwrap();
                    it.invoke_threads(&mut pool).unwrap();
                    assert_eq!(
                        it.output_bytes(),
                        &want[..],
                        "{} {}: {threads} threads, input {i}",
                        f.name,
                        case.config
                    );
                }
            }
            println!("{} {}: {} inputs, 2 and 3 threads = 1 thread", f.name, case.config, case.inputs.len());
        }
    }
}

/// Every fixture, int8 and mixed, runs in a thread of 64 KiB of stack (a musl thread has 128)
/// with the weights prepared once and without, giving the expected bytes: no host kernel keeps
/// a layer's worth of anything on the stack.
#[test]
fn every_fixture_runs_in_a_thread_of_64_kib_of_stack() {
    use hawq_e2e::qemu::{compile_cases, Config, ModelSpec};
    use hawq_runtime::{Interpreter, Model};
    let root = fixtures();
    for f in FIXTURES {
        for case in compile_cases(&ModelSpec::fixture(f, &root), &[Config::Int8, Config::Mixed], 4).unwrap() {
            let worker = std::thread::Builder::new().stack_size(64 * 1024);
            // A stack overflow aborts the whole test binary: it fails loudly.
            let ran = worker
                .spawn(move || {
                    let model = Model::from_bytes(&case.blob).unwrap();
                    let mut arena = vec![0u8; model.arena_bytes()];
                    let mut workspace = vec![0u8; model.host_workspace_bytes()];
                    for prepared in [true, false] {
                        let mut it = if prepared {
                            Interpreter::with_workspace(&model, &mut arena, &mut workspace).unwrap()
                        } else {
                            Interpreter::new(&model, &mut arena).unwrap()
                        };
                        for (x, want) in case.inputs.iter().zip(&case.expected) {
                            it.write_input_raw(x).unwrap();
                            it.invoke().unwrap();
                            assert_eq!(it.output_bytes(), &want[..], "prepared {prepared}");
                        }
                    }
                    case.inputs.len()
                })
                .unwrap()
                .join();
            assert!(ran.is_ok(), "{}: failed in a 64 KiB thread", f.name);
        }
        println!("{}: int8 and mixed in a 64 KiB thread, with and without prepared weights", f.name);
    }
}
