//! Does the compiled model compute what the float model computes? Every value of the graph, from
//! the input's own quantization to the output, is compared between the float reference and the
//! bit-exact integer runtime on the calibration inputs (the model the device will run, fed the
//! raw bytes the device will be fed), in the manner of TFLite's quantization debugger: SQNR and
//! cosine per layer, and for the output the top-1 agreement and relative error. A compile whose
//! model parts from the float model fails, naming the layer where it parts and the likely cause.

use anyhow::{anyhow, Result};
use rayon::prelude::*;
use serde::Serialize;

use crate::data::Dataset;
use crate::ir::{Graph, InputTransform};

/// Samples compared (spread evenly over the calibration set).
pub const SAMPLES: usize = 256;

/// A classifier whose top-1 agrees with the float model on fewer samples than this has diverged.
pub const MIN_TOP1_AGREEMENT: f64 = 0.90;
/// An output whose SQNR is below this (dB) has diverged: the error is a third of the signal.
pub const MIN_OUTPUT_SQNR_DB: f64 = 10.0;
/// A layer that loses this much SQNR (dB) against its inputs is where the model parts from the
/// float model, when it ends up below [`LAYER_SQNR_SUSPECT_DB`].
pub const LAYER_DROP_DB: f64 = 12.0;
pub const LAYER_SQNR_SUSPECT_DB: f64 = 20.0;
/// An input whose median feature keeps less SQNR than this is flagged (8 bits over a feature's
/// own range give about 48 dB; 20 dB is under 4 bits' worth).
pub const INPUT_FEATURE_SQNR_MIN_DB: f64 = 20.0;

#[derive(Debug, Clone, Default, Serialize)]
pub struct FeatureSqnr {
    pub median_db: f64,
    pub worst_db: f64,
    pub worst_position: usize,
}

/// Per input position over the samples: Σx, Σx², Σ(q − x)².
#[derive(Clone, Default)]
struct PositionSums {
    sum: f64,
    squares: f64,
    error: f64,
}

/// Error statistics of one value: quantized model against float model.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Agreement {
    /// 10·log10(Σ f² / Σ (q − f)²); infinite when equal.
    pub sqnr_db: f64,
    /// Cosine of the angle between the flattened float and quantized values (1 when both are 0).
    pub cosine: f64,
}

/// One layer's output.
#[derive(Debug, Clone, Serialize)]
pub struct LayerFidelity {
    pub name: String,
    pub op: String,
    pub tensor: String,
    #[serde(flatten)]
    pub agreement: Agreement,
    /// SQNR lost against the worst of the layer's inputs (dB, positive = lost).
    pub drop_db: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fidelity {
    pub samples: usize,
    /// The input tensor after its own quantization (raw sensor values through the folded
    /// transform, or f32 data quantized to the input's bit width).
    pub input: Agreement,
    /// The real range the input tensor is quantized over, and its step.
    pub input_range: (f32, f32),
    pub input_step: f32,
    /// The input's quantization per element position (feature): SQNR of each position's
    /// variation over the samples (its mean is no information), median over positions, and
    /// the worst position. One scale for the whole input serves features of very different
    /// ranges badly, which the whole-tensor SQNR (dominated by the widest feature) hides.
    pub input_feature_sqnr_db: FeatureSqnr,
    pub layers: Vec<LayerFidelity>,
    pub output: Agreement,
    /// A classifier whose output is logits (no softmax at its end; a log-softmax's
    /// log-probabilities are logits, normalized, and their softmax the probabilities): the agreement of the
    /// probabilities they stand for, softmax of each. The verdict takes it in place of the
    /// logits': softmax ignores a constant added to every logit of a sample, and a refined model
    /// is trained on the probabilities (a 2-bit digits CNN refined to 98.5% top-1 agreement
    /// kept 6 dB of logit SQNR).
    pub probabilities: Option<Agreement>,
    /// Fraction of samples whose largest output is the same in both models (classifiers: more
    /// than one output).
    pub top1_agreement: Option<f64>,
    /// ‖q − f‖ / ‖f‖ of the outputs over all samples.
    pub output_relative_error: f64,
    /// Set when the model has diverged: why, naming the layer.
    pub divergence: Option<String>,
    /// Advice that does not fail the compile (e.g. the input's quantization dominates the error).
    pub notes: Vec<String>,
}

#[derive(Default, Clone)]
struct Sums {
    signal: f64,
    error: f64,
    dot: f64,
    quant: f64,
}

impl Sums {
    fn add(&mut self, f: &[f32], q: &[f32]) {
        for (&a, &b) in f.iter().zip(q) {
            let (a, b) = (a as f64, b as f64);
            self.signal += a * a;
            self.error += (b - a) * (b - a);
            self.dot += a * b;
            self.quant += b * b;
        }
    }

    fn merge(mut self, o: &Sums) -> Sums {
        self.signal += o.signal;
        self.error += o.error;
        self.dot += o.dot;
        self.quant += o.quant;
        self
    }

    fn agreement(&self) -> Agreement {
        let sqnr_db = if self.error == 0.0 {
            f64::INFINITY
        } else if self.signal == 0.0 {
            f64::NEG_INFINITY
        } else {
            10.0 * (self.signal / self.error).log10()
        };
        let norms = (self.signal * self.quant).sqrt();
        let cosine = if norms == 0.0 {
            if self.signal == self.quant {
                1.0
            } else {
                0.0
            }
        } else {
            self.dot / norms
        };
        Agreement { sqnr_db, cosine }
    }
}

/// Per sample: error sums per value, and whether the argmax agreed.
struct SampleResult {
    sums: Vec<Sums>,
    /// The input's real values and their quantization error, per position.
    input: Vec<(f32, f32)>,
    top1_agree: bool,
    /// The output's softmax against the float model's (classifiers with a logits output).
    probabilities: Sums,
}

/// Compares the compiled `blob` of `graph` with the float graph on up to [`SAMPLES`] samples of
/// `data` (raw values, mapped to real by `transform` for the float model).
pub fn measure(graph: &Graph, blob: &[u8], data: &Dataset, transform: InputTransform) -> Result<Fidelity> {
    let model = hawq_runtime::Model::from_bytes(blob).map_err(|e| anyhow!("the compiled model does not load: {e}"))?;
    let n = data.len().min(SAMPLES);
    let picks: Vec<usize> = (0..n).map(|i| i * data.len() / n).collect();
    let hwc = graph.values[graph.input].hwc();
    let classifier = is_classifier(graph, data);
    // A log-softmax output counts as logits: a constant error shared by a sample's
    // log-probabilities (micromath's `ln` of the sum on the device) changes nothing it decides.
    let logits = classifier && !graph.ends_in_softmax();
    let results: Vec<SampleResult> = picks
        .par_iter()
        .map(|&i| -> Result<SampleResult> {
            let real = graph.input_layout.to_nhwc(&data.real(i, transform), hwc);
            let float = crate::float_exec::run_all(graph, &real);
            let mut sums = vec![Sums::default(); graph.values.len()];
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut it = hawq_runtime::Interpreter::new(&model, &mut arena).map_err(|e| anyhow!("{e}"))?;
            it.write_input_raw(&data.raw(i)).map_err(|e| anyhow!("{e}"))?;
            let mut buf = vec![0f32; float.iter().map(Vec::len).max().unwrap_or(0)];
            let input = graph.input as u16;
            let got = it.tensor_f32(input, &mut buf).map_err(|e| anyhow!("{e}"))?;
            sums[graph.input].add(&float[graph.input], &buf[..got]);
            let input: Vec<(f32, f32)> =
                float[graph.input].iter().zip(&buf[..got]).map(|(&f, &q)| (f, q - f)).collect();
            let mut failure = None;
            it.invoke_observed(|_, op, arena| {
                let v = op.output() as usize;
                match hawq_runtime::interpreter::read_tensor_f32(&model, arena, op.output(), &mut buf) {
                    Ok(got) => sums[v].add(&float[v], &buf[..got]),
                    Err(e) => failure = Some(e),
                }
            })
            .map_err(|e| anyhow!("{e}"))?;
            if let Some(e) = failure {
                return Err(anyhow!("{e}"));
            }
            let out = graph.output;
            let got = it.tensor_f32(out as u16, &mut buf).map_err(|e| anyhow!("{e}"))?;
            let top1_agree = argmax(&float[out]) == argmax(&buf[..got]);
            let mut probabilities = Sums::default();
            if logits {
                probabilities.add(&softmax(&float[out]), &softmax(&buf[..got]));
            }
            Ok(SampleResult { sums, input, top1_agree, probabilities })
        })
        .collect::<Result<_>>()?;
    let totals = results.iter().fold(vec![Sums::default(); graph.values.len()], |acc, r| {
        acc.iter().zip(&r.sums).map(|(a, b)| a.clone().merge(b)).collect()
    });
    let input_desc = model.input();
    let (scale, zero) = (input_desc.scale.to_f32(), input_desc.zero_point as i32);
    let (lo, hi) = input_desc.dtype.bits().map_or((0, 0), |b| b.range());
    let mut fidelity = Fidelity {
        samples: n,
        input: totals[graph.input].agreement(),
        input_range: (scale * (lo - zero) as f32, scale * (hi - zero) as f32),
        input_step: scale,
        input_feature_sqnr_db: feature_sqnr(&results),
        layers: Vec::new(),
        output: totals[graph.output].agreement(),
        probabilities: logits
            .then(|| results.iter().fold(Sums::default(), |acc, r| acc.merge(&r.probabilities)).agreement()),
        top1_agreement: classifier.then(|| results.iter().filter(|r| r.top1_agree).count() as f64 / n.max(1) as f64),
        output_relative_error: (totals[graph.output].error / totals[graph.output].signal.max(f64::MIN_POSITIVE)).sqrt(),
        divergence: None,
        notes: Vec::new(),
    };
    for node in &graph.nodes {
        let agreement = totals[node.output].agreement();
        let worst_input = node.inputs.iter().map(|&v| totals[v].agreement().sqnr_db).fold(f64::INFINITY, f64::min);
        let drop_db = if worst_input.is_finite() && agreement.sqnr_db.is_finite() {
            worst_input - agreement.sqnr_db
        } else if agreement.sqnr_db.is_finite() {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        fidelity.layers.push(LayerFidelity {
            name: node.name.clone(),
            op: node.op.name().to_string(),
            tensor: graph.values[node.output].name.clone(),
            agreement,
            drop_db,
        });
    }
    // The scales the model file keeps (half precision), by value.
    let scales: Vec<f32> =
        (0..graph.values.len()).map(|v| model.tensors().get(v).map_or(f32::NAN, |t| t.scale.to_f32())).collect();
    diagnose(graph, data, transform, &picks, &scales, &mut fidelity);
    Ok(fidelity)
}

/// A classifier: several outputs, not a reconstruction of the input, and labels that are class
/// indices of the outputs.
fn is_classifier(graph: &Graph, data: &Dataset) -> bool {
    let outputs = graph.values[graph.output].elements();
    outputs > 1
        && outputs != graph.values[graph.input].elements()
        && data.y.iter().all(|&y| y >= 0.0 && y.fract() == 0.0 && y < outputs as f64)
}

fn feature_sqnr(results: &[SampleResult]) -> FeatureSqnr {
    let positions = results.first().map_or(0, |r| r.input.len());
    let mut sums = vec![PositionSums::default(); positions];
    for r in results {
        for (p, &(x, e)) in sums.iter_mut().zip(&r.input) {
            p.sum += x as f64;
            p.squares += (x as f64).powi(2);
            p.error += (e as f64).powi(2);
        }
    }
    let n = results.len().max(1) as f64;
    let mut per: Vec<(f64, usize)> = sums
        .iter()
        .enumerate()
        .filter_map(|(k, p)| {
            let variance = (p.squares / n - (p.sum / n).powi(2)).max(0.0);
            // A position that never varies carries no information to lose.
            (variance > 0.0).then(|| {
                let db = if p.error == 0.0 { f64::INFINITY } else { 10.0 * (variance / (p.error / n)).log10() };
                (db, k)
            })
        })
        .collect();
    if per.is_empty() {
        return FeatureSqnr { median_db: f64::INFINITY, worst_db: f64::INFINITY, worst_position: 0 };
    }
    per.sort_by(|a, b| a.0.total_cmp(&b.0));
    FeatureSqnr { median_db: per[per.len() / 2].0, worst_db: per[0].0, worst_position: per[0].1 }
}

fn softmax(v: &[f32]) -> Vec<f32> {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = v.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|&x| x / sum).collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(k, _)| k)
}

/// Decides whether the model has diverged and why.
fn diagnose(
    graph: &Graph,
    data: &Dataset,
    transform: InputTransform,
    picks: &[usize],
    scales: &[f32],
    f: &mut Fidelity,
) {
    // What the outputs mean: a logits classifier's probabilities.
    let judged = f.probabilities.as_ref().unwrap_or(&f.output);
    let output_bad = judged.sqnr_db < MIN_OUTPUT_SQNR_DB;
    let top1_bad = f.top1_agreement.is_some_and(|a| a < MIN_TOP1_AGREEMENT);
    // The layer where the error grows most suddenly, among those left suspiciously poor.
    let suspect = f
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.agreement.sqnr_db < LAYER_SQNR_SUSPECT_DB && l.drop_db >= LAYER_DROP_DB)
        .max_by(|a, b| a.1.drop_db.total_cmp(&b.1.drop_db))
        .map(|(i, _)| i);
    // The input's own quantization limits the model when its typical feature keeps less
    // resolution than the output ends up with.
    let feature = f.input_feature_sqnr_db.median_db;
    let input_dominates = feature < f.output.sqnr_db + 3.0 || feature < INPUT_FEATURE_SQNR_MIN_DB;
    if input_dominates {
        f.notes.push(format!(
            "the input's own quantization limits the model: one scale over {:.4}..{:.4} (step {:.4}) leaves the median input \
             feature {feature:.1} dB of SQNR (the worst, position {}, {:.1} dB; the output {:.1} dB). If the features have very \
             different ranges (e.g. MFCC's energy coefficient), normalize them per feature before the model; if they are \
             integers, pass them raw (uint8/int8 data with --input-scale/--input-offset) so that none is lost",
            f.input_range.0,
            f.input_range.1,
            f.input_step,
            f.input_feature_sqnr_db.worst_position,
            f.input_feature_sqnr_db.worst_db,
            f.output.sqnr_db
        ));
    }
    if !(output_bad || top1_bad) && suspect.is_none() {
        return;
    }
    let what = match (top1_bad, f.top1_agreement) {
        (true, Some(a)) => format!("top-1 agrees with the float model on {:.1}% of {} samples", 100.0 * a, f.samples),
        _ if f.probabilities.is_some() => {
            format!(
                "output probabilities' (softmax of the logits) SQNR {:.1} dB against the float model",
                judged.sqnr_db
            )
        }
        _ => format!("output SQNR {:.1} dB against the float model", f.output.sqnr_db),
    };
    if input_dominates && (output_bad || top1_bad) {
        f.divergence = Some(format!(
            "{what}; cause: the input's own quantization (median input feature {feature:.1} dB of SQNR over one scale for \
             {:.4}..{:.4}): normalize the input features before the model, or pass integer data raw",
            f.input_range.0, f.input_range.1
        ));
        return;
    }
    let Some(i) = suspect else {
        if output_bad || top1_bad {
            let floor = crate::quantize::SMALLEST_SCALE;
            let at_floor: Vec<_> =
                graph.nodes.iter().filter(|n| scales.get(n.output).is_some_and(|&s| s <= 1.01 * floor)).collect();
            let cause = if input_dominates {
                "the input's own quantization".to_string()
            } else if let Some(first) = at_floor.first() {
                format!(
                    "{} layers, the first '{}', have activations finer than the model file's smallest scale \
                     ({floor:.1e}, half precision): they vanish, as in a model without trained weights or without \
                     its batch-norm statistics (check the export, or scale the network's activations up)",
                    at_floor.len(),
                    first.name
                )
            } else {
                "no single layer: the error accumulates (try more bits)".to_string()
            };
            f.divergence = Some(format!("{what}; cause: {cause}"));
        }
        return;
    };
    let layer = &f.layers[i];
    let cause = likely_cause(graph, data, transform, picks, scales, i);
    let msg = format!(
        "layer '{}' ({}) parts from the float model: SQNR {:.1} dB, {:.1} dB below its input; {what}; likely cause: {cause}",
        layer.name, layer.op, layer.agreement.sqnr_db, layer.drop_db
    );
    if output_bad || top1_bad {
        f.divergence = Some(msg);
    } else {
        f.notes.push(msg);
    }
}

/// Why node `i`'s output is poorly quantized: values finer than the model file's
/// half-precision scales can step (`scales`, by value), one channel's range dwarfing the others'
/// in its input or output (one scale per tensor leaves the others a few levels), weights at few
/// bits, or activations at few bits.
fn likely_cause(
    graph: &Graph,
    data: &Dataset,
    transform: InputTransform,
    picks: &[usize],
    scales: &[f32],
    i: usize,
) -> String {
    let node = &graph.nodes[i];
    let hwc = graph.values[graph.input].hwc();
    let tensors: Vec<usize> = node.inputs.iter().copied().chain([node.output]).collect();
    let mut channel_max: Vec<Vec<f32>> = tensors.iter().map(|&v| vec![0f32; graph.values[v].hwc().2]).collect();
    for &s in picks.iter().take(32) {
        let real = graph.input_layout.to_nhwc(&data.real(s, transform), hwc);
        let values = crate::float_exec::run_all(graph, &real);
        for (&v, maxima) in tensors.iter().zip(channel_max.iter_mut()) {
            let c = maxima.len();
            for (k, &x) in values[v].iter().enumerate() {
                maxima[k % c] = maxima[k % c].max(x.abs());
            }
        }
    }
    let out_top = channel_max.last().map_or(0.0, |m| m.iter().fold(0f32, |a, &b| a.max(b)));
    if let Some(&step) = scales.get(node.output).filter(|&&s| s <= 1.01 * crate::quantize::SMALLEST_SCALE) {
        return format!(
            "'{}' spans only ±{out_top:.2e}, finer than the model file's half-precision scales step (at least \
             {step:.1e}: about {:.0} levels are left): activations that nearly vanish, as in a model without trained \
             weights or without its batch-norm statistics (check the export, or scale the network's activations up)",
            graph.values[node.output].name,
            out_top / step
        );
    }
    for (&v, maxima) in tensors.iter().zip(&channel_max) {
        let mut sorted = maxima.clone();
        sorted.sort_by(f32::total_cmp);
        let median = sorted[sorted.len() / 2];
        let (widest, &top) = maxima.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap_or((0, &0.0));
        if maxima.len() > 1 && median > 0.0 && top / median >= SPREAD_SUSPECT {
            return format!(
                "channel {widest} of '{}' spans ±{top:.4}, {:.0}× the median channel (±{median:.4}): one scale per tensor \
                 leaves the other channels a few levels (equalize the channels' ranges in the model, e.g. scale this \
                 channel down in its producer and up in its consumers)",
                graph.values[v].name,
                top / median
            );
        }
    }
    if node.op.has_weights() {
        return format!(
            "the weights or activations at their bit width; pin this layer to 8 bits (--pin '{}=8') or allow more bytes",
            node.name
        );
    }
    "the activations' bit width; keep this tensor at 8 bits".to_string()
}

/// A channel whose range is this many times the median channel's is flagged as the cause.
const SPREAD_SUSPECT: f32 = 32.0;

impl Fidelity {
    /// A table for the terminal.
    pub fn render(&self) -> String {
        let mut s = format!("fidelity against the float model on {} calibration samples:\n", self.samples);
        s += &format!("{:<48} {:<17} {:>9} {:>8}\n", "layer", "op", "SQNR dB", "cosine");
        s += &format!(
            "{:<48} {:<17} {:>9.1} {:>8.4}   median feature {:.1} dB\n",
            "(input quantization)", "", self.input.sqnr_db, self.input.cosine, self.input_feature_sqnr_db.median_db
        );
        for l in &self.layers {
            let flag =
                if l.agreement.sqnr_db < LAYER_SQNR_SUSPECT_DB && l.drop_db >= LAYER_DROP_DB { "  <-" } else { "" };
            s += &format!(
                "{:<48} {:<17} {:>9.1} {:>8.4}{flag}\n",
                crate::report::shorten(&l.name, 48),
                l.op,
                l.agreement.sqnr_db,
                l.agreement.cosine
            );
        }
        match self.top1_agreement {
            Some(a) => s += &format!("output: top-1 agreement {:.1}%, ", 100.0 * a),
            None => s += "output: ",
        }
        s += &format!("SQNR {:.1} dB, relative error {:.4}", self.output.sqnr_db, self.output_relative_error);
        if let Some(p) = &self.probabilities {
            s += &format!("; probabilities (softmax) SQNR {:.1} dB", p.sqnr_db);
        }
        s += "\n";
        for n in &self.notes {
            s += &format!("note: {n}\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn agreement(sqnr_db: f64) -> Agreement {
        Agreement { sqnr_db, cosine: 1.0 }
    }

    /// A model whose error grows layer by layer, none of them a sudden drop, with activations
    /// that vanish from its third layer on (their scale at the smallest): the verdict names that
    /// layer, not "the error accumulates".
    #[test]
    fn a_gradual_divergence_into_the_smallest_scale_names_the_first_such_layer() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits");
        let graph = crate::import::import(&root.join("model.onnx")).expect("digits imports");
        let data = Dataset::load(&root.join("calib.npz")).expect("digits data");
        let layers: Vec<LayerFidelity> = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| LayerFidelity {
                name: n.name.clone(),
                op: n.op.name().to_string(),
                tensor: graph.values[n.output].name.clone(),
                agreement: agreement(40.0 - 5.0 * i as f64),
                drop_db: 5.0,
            })
            .collect();
        let mut f = Fidelity {
            samples: 8,
            input: agreement(50.0),
            input_range: (0.0, 1.0),
            input_step: 1.0 / 255.0,
            input_feature_sqnr_db: FeatureSqnr { median_db: 50.0, worst_db: 45.0, worst_position: 0 },
            layers,
            output: agreement(2.0),
            probabilities: None,
            top1_agreement: None,
            output_relative_error: 0.8,
            divergence: None,
            notes: vec![],
        };
        let mut scales = vec![1e-3f32; graph.values.len()];
        let third = &graph.nodes[2];
        for n in &graph.nodes[2..] {
            scales[n.output] = crate::quantize::SMALLEST_SCALE;
        }
        diagnose(&graph, &data, InputTransform::default(), &[0, 1, 2], &scales, &mut f);
        let verdict = f.divergence.expect("diverged");
        let n = graph.nodes.len() - 2;
        assert!(verdict.contains(&format!("{n} layers, the first '{}'", third.name)), "{verdict}");
        assert!(verdict.contains("smallest scale"), "{verdict}");
        // With ordinary scales, the same figures are an accumulated error.
        let mut f2 = Fidelity { divergence: None, ..f };
        diagnose(&graph, &data, InputTransform::default(), &[0, 1, 2], &vec![1e-3; graph.values.len()], &mut f2);
        assert!(f2.divergence.expect("diverged").contains("the error accumulates"));
    }
}
