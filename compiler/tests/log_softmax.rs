//! Models that end in LogSoftmax (pytorch/examples' MNIST `F.log_softmax(x, dim=1)`): the
//! digits example's trained CNN with a LogSoftmax appended in code, at opsets 11 and 13 with and
//! without `axis`, against the same CNN ending in its logits and in a Softmax; and graphs built in
//! code for the axis rules and placements the importer takes and refuses.

mod onnx_builder;

use std::path::{Path, PathBuf};

use hawq_compiler::data::Dataset;
use hawq_compiler::eval::{evaluate, Metric, Runner};
use hawq_compiler::import::import_bytes;
use hawq_compiler::ir::{InputTransform, OpKind};
use hawq_compiler::onnx_proto::{AttributeProto, ModelProto, NodeProto, OperatorSetIdProto};
use hawq_compiler::pipeline::{compile, prepare};
use hawq_compiler::quantize::BitConfig;
use onnx_builder::{int, ints, tensor, Model};
use prost::Message;

const TRANSFORM: InputTransform = InputTransform { scale: 0.0625, offset: 0.0 };

fn digits(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits").join(file)
}

/// The digits CNN (outputs `logits`, `[N, 10]`) with `op` appended as the graph's output, the
/// default domain at `opset`, and `axis` set when given.
fn digits_ending_in(op: Option<&str>, opset: i64, axis: Option<i64>) -> Vec<u8> {
    let bytes = std::fs::read(digits("model.onnx")).expect("the digits model");
    let mut m = ModelProto::decode(bytes.as_slice()).expect("decode");
    m.opset_import = vec![OperatorSetIdProto { domain: String::new(), version: opset }];
    let graph = m.graph.as_mut().expect("graph");
    if let Some(op) = op {
        let attribute = axis.map(|a| AttributeProto { name: "axis".into(), r#type: 2, i: a, ..Default::default() });
        graph.node.push(NodeProto {
            input: vec!["logits".into()],
            output: vec!["out".into()],
            name: "/head".into(),
            op_type: op.into(),
            attribute: attribute.into_iter().collect(),
            ..Default::default()
        });
        graph.output[0].name = "out".into();
    }
    m.encode_to_vec()
}

struct Compiled {
    graph: hawq_compiler::ir::Graph,
    blob: Vec<u8>,
    fidelity: hawq_compiler::fidelity::Fidelity,
}

fn int8(bytes: &[u8], calib: &Dataset) -> Compiled {
    let graph = import_bytes(bytes).expect("imports");
    let prepared = prepare(graph.clone(), calib, TRANSFORM).expect("prepare");
    let compiled = compile(&prepared, &BitConfig::uniform(&prepared.graph, 8, 8)).expect("compile");
    let fidelity =
        hawq_compiler::fidelity::measure(&prepared.graph, &compiled.blob, calib, TRANSFORM).expect("fidelity");
    Compiled { graph, blob: compiled.blob, fidelity }
}

/// The compiled model's output on every sample of `data`.
fn outputs(blob: &[u8], data: &Dataset) -> Vec<Vec<f32>> {
    let model = hawq_runtime::Model::from_bytes(blob).expect("loads");
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut it = hawq_runtime::Interpreter::new(&model, &mut arena).expect("interpreter");
    (0..data.len())
        .map(|i| {
            it.write_input_raw(&data.raw(i)).expect("input");
            it.invoke().expect("runs");
            let mut out = vec![0f32; model.output().elements()];
            it.read_output_f32(&mut out).expect("output");
            out
        })
        .collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

fn float_log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = logits.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
    logits.iter().map(|&x| x as f64 - max - lse).collect()
}

/// The MNIST example's ending, as TorchScript writes it at opset 11 (`axis` 1, or absent: the
/// default 1 flattens `[N, 10]` from axis 1, the same row) and at 13 (`axis` 1 or −1, or absent:
/// −1). Each imports as a final log-softmax, computes the float model's log-probabilities,
/// compiles to int8 with the fidelity check passing, and on the device gives finite
/// log-probabilities within the check of the float ones, whose argmax is the logits' and the
/// Softmax model's on every eval sample; `hawq eval`'s top-1 is the logits model's.
#[test]
fn the_digits_cnn_ending_in_log_softmax_compiles_at_opsets_11_and_13() {
    let calib = Dataset::load(&digits("calib.npz")).expect("calib");
    let eval = Dataset::load(&digits("eval.npz")).expect("eval");
    let logits = int8(&digits_ending_in(None, 13, None), &calib);
    let softmax = int8(&digits_ending_in(Some("Softmax"), 13, None), &calib);
    let logit_outputs = outputs(&logits.blob, &eval);
    let softmax_outputs = outputs(&softmax.blob, &eval);
    let bar = indicatif::ProgressBar::hidden();
    let top1 = |runner: &Runner<'_>| evaluate(runner, &eval, Metric::Top1, 1, &bar).expect("eval");
    let logits_top1 = top1(&Runner::Quantized { model: hawq_runtime::Model::from_bytes(&logits.blob).unwrap() });
    let float_top1 = top1(&Runner::Float { graph: &logits.graph, transform: TRANSFORM });

    for (opset, axis) in [(11, None), (11, Some(1)), (13, None), (13, Some(1)), (13, Some(-1))] {
        let what = format!("opset {opset}, axis {axis:?}");
        let c = int8(&digits_ending_in(Some("LogSoftmax"), opset, axis), &calib);
        assert!(matches!(c.graph.nodes.last().map(|n| &n.op), Some(OpKind::LogSoftmax)), "{what}");

        // The float reference: the log-softmax of the logits model's logits.
        for i in (0..eval.len()).step_by(37) {
            let x = c.graph.input_layout.to_nhwc(&eval.real(i, TRANSFORM), c.graph.values[c.graph.input].hwc());
            let got = hawq_compiler::float_exec::run(&c.graph, &x);
            let want = float_log_softmax(&hawq_compiler::float_exec::run(&logits.graph, &x));
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()), "{what}: sample {i}: {got:?} vs {want:?}");
            }
        }

        // The fidelity check judges the log-probabilities by the probabilities they stand for,
        // as it does the logits: the same verdict, the same numbers.
        let f = &c.fidelity;
        assert!(f.divergence.is_none(), "{what}: {:?}", f.divergence);
        let p = f.probabilities.as_ref().expect("a classifier's log-probabilities are judged as probabilities");
        let lp = logits.fidelity.probabilities.as_ref().expect("logits");
        println!(
            "{what}: top-1 agreement {:?}, probabilities SQNR {:.2} dB (logits model {:.2} dB), log-probabilities SQNR {:.2} dB",
            f.top1_agreement, p.sqnr_db, lp.sqnr_db, f.output.sqnr_db
        );
        assert!(f.top1_agreement.expect("classifier") >= 0.97, "{what}");
        assert_eq!(f.top1_agreement, logits.fidelity.top1_agreement, "{what}");
        assert!((p.sqnr_db - lp.sqnr_db).abs() < 0.05, "{what}: {} vs {} dB", p.sqnr_db, lp.sqnr_db);

        // On the device: finite log-probabilities whose exponentials sum to 1, close to the
        // float model's, and the same class as the logits and Softmax models, sample by sample.
        let got = outputs(&c.blob, &eval);
        let mut worst_probability = 0f64;
        for (i, lp) in got.iter().enumerate() {
            assert!(lp.iter().all(|v| v.is_finite() && *v <= 1e-3), "{what}: sample {i}: {lp:?}");
            let total: f64 = lp.iter().map(|&v| (v as f64).exp()).sum();
            assert!((total - 1.0).abs() < 5e-3, "{what}: sample {i}: probabilities sum to {total}");
            assert_eq!(argmax(lp), argmax(&logit_outputs[i]), "{what}: sample {i}");
            assert_eq!(argmax(lp), argmax(&softmax_outputs[i]), "{what}: sample {i}");
            for (l, s) in lp.iter().zip(&softmax_outputs[i]) {
                worst_probability = worst_probability.max(((*l as f64).exp() - *s as f64).abs());
            }
        }
        // The Softmax model's probabilities are the same logits' through micromath's exp: the
        // two differ by micromath's ln alone.
        assert!(worst_probability < 2e-3, "{what}: exp(log-softmax) parts from softmax by {worst_probability}");

        let compiled_top1 = top1(&Runner::Quantized { model: hawq_runtime::Model::from_bytes(&c.blob).unwrap() });
        let float = top1(&Runner::Float { graph: &c.graph, transform: TRANSFORM });
        println!("{what}: top-1 float {float:.4}, int8 {compiled_top1:.4}");
        assert_eq!(compiled_top1, logits_top1, "{what}");
        assert_eq!(float, float_top1, "{what}");
    }
}

/// `x → Conv (4 channels) → GlobalAveragePool → op` on `[1, 1, 4, 4]`: the pooled map is
/// `[N, 4, 1, 1]`, one row of classes whichever way it is stored.
fn pooled(op: &str, opset: i64, axis: Option<i64>) -> Model {
    let w: Vec<f32> = (0..36).map(|i| ((i * 5) % 11) as f32 / 11.0 - 0.5).collect();
    Model::new("x", &[1, 1, 4, 4])
        .opset(opset)
        .init(tensor("w", &[4, 1, 3, 3], w))
        .node("Conv", "conv", &["x", "w"], &["c"], vec![ints("pads", &[1, 1, 1, 1])])
        .node("GlobalAveragePool", "pool", &["c"], &["p"], vec![])
        .node(op, "head", &["p"], &["y"], axis.map(|a| int("axis", a)).into_iter().collect())
        .output("y", &[1, 4, 1, 1])
}

fn import_error(model: &Model) -> String {
    format!("{:#}", import_bytes(&model.bytes()).expect_err("refused"))
}

/// Before opset 13 (Log)Softmax normalizes the dims from `axis` on, flattened, so on `[N, C, 1, 1]`
/// the default `axis` 1 is the class row; from 13 on it normalizes `axis` alone, so the default −1
/// is a row of one element per class (all zeros), which is refused, and `axis` 1 is the class
/// row. Whatever is taken computes the float reference's row over the classes; what is refused
/// says which dim holds separate rows. Softmax follows the same rules.
#[test]
fn the_axis_is_read_by_the_opset_s_rule() {
    let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.61).sin()).collect();
    for op in ["LogSoftmax", "Softmax"] {
        for (opset, axis) in [(11, None), (11, Some(1)), (13, Some(1)), (13, Some(-3)), (8, None)] {
            let what = format!("{op} at opset {opset}, axis {axis:?}");
            let model = pooled(op, opset, axis);
            let graph = import_bytes(&model.bytes()).unwrap_or_else(|e| panic!("{what}: {e:#}"));
            let y = hawq_compiler::float_exec::run(&graph, &graph.input_layout.to_nhwc(&x, (4, 4, 1)));
            // The pooled channels, normalized as one row.
            let logits = {
                let mut g = graph.clone();
                let last = g.nodes.pop().unwrap();
                g.output = last.inputs[0];
                hawq_compiler::float_exec::run(&g, &g.input_layout.to_nhwc(&x, (4, 4, 1)))
            };
            assert_eq!(y.len(), 4, "{what}");
            let lsm = float_log_softmax(&logits);
            for (got, l) in y.iter().zip(&lsm) {
                let want = if op == "Softmax" { l.exp() } else { *l };
                assert!((*got as f64 - want).abs() < 1e-6, "{what}: {y:?} vs row {logits:?}");
            }
        }
        for (opset, axis, why) in [
            (13, None, "dim 1 (4) holds separate rows"),
            (13, Some(3), "dim 1 (4) holds separate rows"),
            (11, Some(2), "dim 1 (4) holds separate rows"),
            (11, Some(0), "across the batch"),
            (13, Some(0), "across the batch"),
        ] {
            let err = import_error(&pooled(op, opset, axis));
            assert!(
                err.contains(&format!("'head' ({op})")) && err.contains(why),
                "{op} opset {opset} axis {axis:?}: {err}"
            );
            assert!(err.contains(&format!("opset {opset}")), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        let err = import_error(&pooled(op, 13, Some(4)));
        assert!(err.contains("'axis' 4 is out of range"), "{err}");
        // A 1-D map of one channel, `[N, 1, L]`, normalized along L: one row of the sample, but
        // stored as L positions of one channel, where the device's rows are the channels.
        let along_length = Model::new("x", &[1, 1, 6])
            .node("Relu", "relu", &["x"], &["r"], vec![])
            .node(op, "head", &["r"], &["y"], vec![])
            .output("y", &[1, 1, 6]);
        let err = import_error(&along_length);
        assert!(err.contains(&format!("'head' ({op})")) && err.contains("across positions"), "{op}: {err}");
    }
}

/// The runtime computes (log-)softmax in f32 as the model's output: anything after it is refused,
/// naming both nodes.
#[test]
fn log_softmax_is_taken_only_as_the_last_operation() {
    let base = || {
        let mut m = Model::base();
        m.graph.output.clear();
        m
    };
    let then_relu = base()
        .node("LogSoftmax", "log_probs", &["logits"], &["lp"], vec![int("axis", 1)])
        .node("Relu", "after", &["lp"], &["r"], vec![])
        .output("r", &[1, 10]);
    let err = import_error(&then_relu);
    assert!(
        err.contains("'log_probs' (LogSoftmax)")
            && err.contains("only as the last operation")
            && err.contains("'after'"),
        "{err}"
    );
    let at_end = base().node("LogSoftmax", "log_probs", &["logits"], &["lp"], vec![]).output("lp", &[1, 10]);
    let graph = import_bytes(&at_end.bytes()).expect("imports");
    assert!(graph.ends_in_normalization() && !graph.ends_in_softmax());
    assert_eq!(graph.output, graph.nodes.last().unwrap().output);
}

/// The Hessian of a model ending in LogSoftmax is the logits model's: the automatic loss is
/// cross-entropy, read from the LogSoftmax's input, so every layer's trace is the same number.
/// Any other loss would differentiate the log-probabilities themselves, which is refused by name.
#[test]
fn sensitivity_reads_the_logits_under_a_log_softmax() {
    use hawq_compiler::autodiff::{Loss, TraceOptions};
    use hawq_compiler::sensitivity::{measure, LossChoice};
    let calib = Dataset::load(&digits("calib.npz")).expect("calib");
    let prepared = |bytes: &[u8]| prepare(import_bytes(bytes).expect("imports"), &calib, TRANSFORM).expect("prepare");
    let logits = prepared(&digits_ending_in(None, 13, None));
    let log_probs = prepared(&digits_ending_in(Some("LogSoftmax"), 11, None));
    let opts = TraceOptions::default();
    let a = measure(&logits, &calib, LossChoice::Auto, &opts).expect("logits");
    let b = measure(&log_probs, &calib, LossChoice::Auto, &opts).expect("log-softmax");
    assert_eq!(b.loss, Loss::CrossEntropy);
    let traces = |m: &hawq_compiler::sensitivity::Measured| -> Vec<f64> {
        m.sensitivity.weights.iter().flatten().map(|t| t.average).collect()
    };
    let (ta, tb) = (traces(&a), traces(&b));
    assert_eq!(ta.len(), tb.len());
    assert!(!ta.is_empty());
    for (x, y) in ta.iter().zip(&tb) {
        assert!((x - y).abs() <= 1e-9 * x.abs().max(1e-30), "traces {ta:?} vs {tb:?}");
    }
    let err = format!("{:#}", measure(&log_probs, &calib, LossChoice::Mse, &opts).err().expect("refused"));
    assert!(err.contains("(log_softmax)") && err.contains("--loss cross-entropy"), "{err}");
}
