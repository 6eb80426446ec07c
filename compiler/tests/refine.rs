//! The whole-network refinement on the bundled digits model: deterministic across runs and
//! thread counts, never worse on its held-out loss, and its model compiles with the refined
//! integers.

use std::path::Path;

use hawq_compiler::autodiff::Loss;
use hawq_compiler::data::Dataset;
use hawq_compiler::ir::InputTransform;
use hawq_compiler::pipeline::{compile_refined, prepare, real_inputs, Prepared};
use hawq_compiler::quantize::{activation_params, BitConfig};
use hawq_compiler::refine::{refine, RefineOptions};

fn digits(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits").join(file)
}

/// The digits model prepared on its calibration set, and that set's real-valued inputs.
fn prepared_digits() -> (Prepared, Vec<Vec<f32>>) {
    let graph = hawq_compiler::import::import(&digits("model.onnx")).unwrap();
    let calib = Dataset::load(&digits("calib.npz")).unwrap();
    let transform = InputTransform { scale: 1.0 / 16.0, offset: 0.0 };
    let p = prepare(graph, &calib, transform).unwrap();
    let inputs = real_inputs(&p.graph, &calib, transform).unwrap();
    (p, inputs)
}

#[test]
fn refinement_is_deterministic_and_compiles() {
    let (p, inputs) = prepared_digits();
    let bits = BitConfig::uniform(&p.graph, 2, 8);
    let opts = RefineOptions { steps: 30, seconds: 1e9, ..Default::default() };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| refine(&p, &inputs, &bits, Loss::CrossEntropy, &opts).unwrap())
    };
    let one = run(1);
    assert!(!one.stopped_early && one.steps == 30);
    assert!(one.loss_after <= one.loss_before, "{} > {}", one.loss_after, one.loss_before);
    for other in [run(2), run(1), run(3)] {
        assert_eq!(one.loss_after.to_bits(), other.loss_after.to_bits());
        assert_eq!(one.roundings, other.roundings);
    }
    let compiled = compile_refined(&p, &one, &bits).unwrap();
    assert!(compiled.weight_bytes > 0);
}

/// With 4-bit activations the student's activations hold what the device's will (rounded to
/// their grids, gradients straight through): the refinement lowers the held-out loss of the
/// quantized network, stays deterministic, and runs with 8-bit weights too (nothing but the
/// activations below 8 bits).
#[test]
fn refinement_sees_4_bit_activations() {
    let (p, inputs) = prepared_digits();
    for (weight_bits, learn_activation_ranges) in [(8, false), (8, true), (2, false), (2, true)] {
        let opts = RefineOptions { steps: 200, seconds: 1e9, learn_activation_ranges, ..Default::default() };
        let bits = BitConfig::uniform(&p.graph, weight_bits, 4);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| refine(&p, &inputs, &bits, Loss::CrossEntropy, &opts).unwrap())
        };
        let one = run(1);
        assert!(one.loss_after < one.loss_before, "w{weight_bits}/a4: {} ≥ {}", one.loss_after, one.loss_before);
        let two = run(2);
        assert_eq!(one.loss_after.to_bits(), two.loss_after.to_bits());
        assert_eq!(one.acts, two.acts, "w{weight_bits}/a4: the learned ranges differ across thread counts");
        // The student's loss is that of the 4-bit network: the float-activation network of the
        // same refined weights scores another.
        let float_acts = BitConfig::uniform(&p.graph, weight_bits, 8);
        let zero = RefineOptions { steps: 0, ..opts };
        let start_float = refine(&p, &inputs, &float_acts, Loss::CrossEntropy, &zero).unwrap();
        assert_ne!(start_float.loss_before.to_bits(), one.loss_before.to_bits(), "w{weight_bits}");
        assert!(compile_refined(&p, &one, &bits).unwrap().weight_bytes > 0);
    }
}

/// At 4-bit activations the refinement learns their clipping ranges (LSQ): the learned scales
/// move away from the calibration's, the held-out loss falls, every range is one the model file
/// can hold (an f16 scale, the calibration's zero point), values that share their input's
/// quantization keep sharing it, and the compiled model's tensor table holds exactly the learned
/// ranges.
#[test]
fn refinement_learns_4_bit_activation_ranges_and_emit_writes_them() {
    let (p, inputs) = prepared_digits();
    let bits = BitConfig::uniform(&p.graph, 8, 4);
    let opts = RefineOptions { steps: 200, seconds: 1e9, learn_activation_ranges: true, ..Default::default() };
    let refined = refine(&p, &inputs, &bits, Loss::CrossEntropy, &opts).unwrap();
    assert!(refined.loss_after < refined.loss_before, "{} ≥ {}", refined.loss_after, refined.loss_before);
    let calibrated = activation_params(&p.graph, &p.calibration, &bits, p.raw, p.transform).unwrap();
    assert_eq!(refined.acts.len(), calibrated.len());
    assert!(refined.learned_ranges > 0);
    let moved = refined.acts.iter().zip(&calibrated).filter(|(r, c)| r.scale != c.scale).count();
    assert!(moved > 0, "no activation range moved from the calibration's");
    for (v, (r, c)) in refined.acts.iter().zip(&calibrated).enumerate() {
        assert_eq!((r.zero_point, r.bits), (c.zero_point, c.bits), "value {v}");
        if c.bits >= 8 {
            assert_eq!(r, c, "value {v}: an 8-bit activation's range is the calibration's");
        }
        assert_eq!(half::f16::from_f32(r.scale).to_f32(), r.scale, "value {v}: not an f16 scale");
        assert!(r.scale > 0.0);
    }
    for node in p.graph.nodes.iter().filter(|n| n.op.ties_output_to_input()) {
        assert_eq!(refined.acts[node.output], refined.acts[node.inputs[0]], "{}", node.name);
    }
    let compiled = compile_refined(&p, &refined, &bits).unwrap();
    let model = hawq_runtime::Model::from_bytes(&compiled.blob).unwrap();
    for (v, q) in refined.acts.iter().enumerate() {
        let t = model.tensors().get(v).unwrap();
        if t.dtype == hawq_runtime::format::DType::F32 {
            continue;
        }
        assert_eq!(t.scale.to_f32(), q.scale, "tensor {v}: scale");
        assert_eq!(i32::from(t.zero_point), q.zero_point, "tensor {v}: zero point");
    }
}
