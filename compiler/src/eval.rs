//! Measuring a model on a labelled dataset: the float ONNX model through the float reference, or
//! a compiled `.hq` through the bit-exact integer runtime (exactly what the device computes).

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;

use crate::data::Dataset;
use crate::ir::{Graph, InputTransform};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Fraction of samples whose largest output is the label `y`.
    Top1,
    /// Root mean squared error between the output and `y`.
    Rmse,
    /// Area under the ROC curve of the mean squared reconstruction error (autoencoders): each
    /// sample is cut into windows of the model's input size, `y` = 1 marks anomalies.
    AucRecon,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Top1 => "top1",
            Metric::Rmse => "rmse",
            Metric::AucRecon => "auc-recon",
        }
    }
}

/// Something that maps one raw input (values before the input transform, in the file's element
/// order, as f32) to real outputs.
#[allow(clippy::large_enum_variant)] // one runner per evaluation; boxing buys nothing
pub enum Runner<'a> {
    Float { graph: &'a Graph, transform: InputTransform },
    Quantized { model: hawq_runtime::Model<'a> },
}

impl Runner<'_> {
    pub fn input_len(&self) -> usize {
        match self {
            Runner::Float { graph, .. } => graph.values[graph.input].elements(),
            Runner::Quantized { model } => model.input().elements(),
        }
    }

    pub fn output_len(&self) -> usize {
        match self {
            Runner::Float { graph, .. } => graph.values[graph.output].elements(),
            Runner::Quantized { model } => model.output().elements(),
        }
    }

    pub fn infer(&self, raw: &[f32]) -> Result<Vec<f32>> {
        match self {
            Runner::Float { graph, transform } => {
                let real: Vec<f32> = raw.iter().map(|&x| x * transform.scale + transform.offset).collect();
                let nhwc = graph.input_layout.to_nhwc(&real, graph.values[graph.input].hwc());
                Ok(crate::float_exec::run(graph, &nhwc))
            }
            Runner::Quantized { model } => {
                let bytes: Vec<u8> = match model.raw_input() {
                    hawq_runtime::RawInput::U8 => raw.iter().map(|&x| x as u8).collect(),
                    hawq_runtime::RawInput::I8 => raw.iter().map(|&x| x as i8 as u8).collect(),
                    hawq_runtime::RawInput::F32 => raw.iter().flat_map(|x| x.to_le_bytes()).collect(),
                };
                let mut arena = vec![0u8; model.arena_bytes()];
                let mut it = hawq_runtime::Interpreter::new(model, &mut arena).map_err(|e| anyhow!("{e}"))?;
                it.write_input_raw(&bytes).map_err(|e| anyhow!("{e}"))?;
                it.invoke().map_err(|e| anyhow!("{e}"))?;
                let mut out = vec![0f32; model.output().elements()];
                it.read_output_f32(&mut out).map_err(|e| anyhow!("{e}"))?;
                Ok(out)
            }
        }
    }

    /// The real values a raw input stands for, which is what an autoencoder reconstructs: the
    /// float model's transform `x·S + O`, or a compiled model's input quantization
    /// `(q − z)·s` with `q = x − 128` for uint8 and `q = x` for int8 (contract §6; the
    /// transform is folded into `z` and `s`). Float inputs of a compiled model are real already.
    pub fn input_real(&self, raw: &[f32]) -> Vec<f32> {
        match self {
            Runner::Float { transform: t, .. } => raw.iter().map(|&x| x * t.scale + t.offset).collect(),
            Runner::Quantized { model } => {
                let input = model.input();
                let (s, z) = (input.scale.to_f32(), input.zero_point as f32);
                match model.raw_input() {
                    hawq_runtime::RawInput::U8 => raw.iter().map(|&x| (x - 128.0 - z) * s).collect(),
                    hawq_runtime::RawInput::I8 => raw.iter().map(|&x| (x - z) * s).collect(),
                    hawq_runtime::RawInput::F32 => raw.to_vec(),
                }
            }
        }
    }

    /// Refuses data a compiled model would misread: it takes the raw dtype it was calibrated on
    /// (uint8 pixels, int8 features or float32 reals), and any other would be cast silently.
    pub fn check_dtype(&self, data: &Dataset) -> Result<()> {
        let Runner::Quantized { model } = self else { return Ok(()) };
        let takes = match model.raw_input() {
            hawq_runtime::RawInput::U8 => "uint8",
            hawq_runtime::RawInput::I8 => "int8",
            hawq_runtime::RawInput::F32 => "float32",
        };
        if data.dtype_name() != takes {
            bail!(
                "{}: 'x' holds {} but the compiled model takes {takes} inputs (the dtype it was calibrated on)",
                data.path.display(),
                data.dtype_name()
            );
        }
        Ok(())
    }
}

/// Picks the metric a dataset calls for when the user gives none.
pub fn default_metric(runner: &Runner<'_>, data: &Dataset) -> Metric {
    if data.sample_len() > runner.input_len() && runner.input_len() == runner.output_len() {
        Metric::AucRecon
    } else if runner.output_len() == 1 {
        Metric::Rmse
    } else {
        Metric::Top1
    }
}

/// Checks that `metric` applies to the model and the labels, before any inference.
fn check_metric(runner: &Runner<'_>, data: &Dataset, metric: Metric) -> Result<()> {
    let path = data.path.display();
    let (n_in, n_out) = (runner.input_len(), runner.output_len());
    if metric != Metric::AucRecon {
        data.check_sample_len(n_in)?;
    }
    match metric {
        Metric::Top1 => {
            if n_out < 2 {
                bail!("{path}: top1 needs a model with one output per class; this one has {n_out} output");
            }
            if let Some((i, y)) =
                data.y.iter().enumerate().find(|(_, &y)| !(y.fract() == 0.0 && (0.0..n_out as f64).contains(&y)))
            {
                bail!("{path}: sample {i}: label {y} is not a class index in 0..{n_out}");
            }
        }
        Metric::Rmse => {
            if n_out != 1 {
                bail!("{path}: rmse compares one output with 'y'; the model has {n_out} outputs");
            }
            if let Some((i, y)) = data.y.iter().enumerate().find(|(_, y)| !y.is_finite()) {
                bail!("{path}: sample {i}: target {y} is not a finite number");
            }
        }
        Metric::AucRecon => {
            if n_out != n_in {
                bail!("{path}: auc-recon needs a model that reconstructs its input; it takes {n_in} values and gives {n_out}");
            }
            if data.sample_len() < n_in {
                bail!("{path}: samples have {} values, fewer than the model's input {n_in}", data.sample_len());
            }
            if let Some((i, y)) = data.y.iter().enumerate().find(|(_, &y)| y != 0.0 && y != 1.0) {
                bail!("{path}: sample {i}: label {y} is not 0 (normal) or 1 (anomaly)");
            }
        }
    }
    Ok(())
}

/// Evaluates `metric` over the dataset; `progress` ticks once per sample. `window_stride` is the
/// step between auc-recon windows (at least 1).
pub fn evaluate(
    runner: &Runner<'_>,
    data: &Dataset,
    metric: Metric,
    window_stride: usize,
    progress: &indicatif::ProgressBar,
) -> Result<f64> {
    runner.check_dtype(data)?;
    check_metric(runner, data, metric)?;
    if window_stride == 0 {
        bail!("{}: the auc-recon window stride must be at least 1", data.path.display());
    }
    let n_in = runner.input_len();
    let outputs: Vec<Result<f64>> = (0..data.len())
        .into_par_iter()
        .map(|i| {
            let raw = data.raw_f32(i);
            let infer = |x: &[f32]| runner.infer(x).with_context(|| format!("{}: sample {i}", data.path.display()));
            let r = match metric {
                Metric::Top1 => {
                    let out = infer(&raw)?;
                    let best = out.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(k, _)| k);
                    Ok(if best as f64 == data.y[i] { 1.0 } else { 0.0 })
                }
                Metric::Rmse => {
                    let out = infer(&raw)?;
                    Ok((out[0] as f64 - data.y[i]).powi(2))
                }
                Metric::AucRecon => {
                    let mut total = 0.0;
                    let mut windows = 0;
                    let mut start = 0;
                    while start + n_in <= raw.len() {
                        let window = &raw[start..start + n_in];
                        let out = infer(window)?;
                        // Like with like: the real input the model saw against its real output.
                        let target = runner.input_real(window);
                        let err: f64 =
                            target.iter().zip(&out).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>()
                                / n_in as f64;
                        total += err;
                        windows += 1;
                        start += window_stride;
                    }
                    Ok(total / windows.max(1) as f64)
                }
            };
            progress.inc(1);
            r
        })
        .collect();
    let values: Vec<f64> = outputs.into_iter().collect::<Result<_>>()?;
    Ok(match metric {
        Metric::Top1 => values.iter().sum::<f64>() / values.len() as f64,
        Metric::Rmse => (values.iter().sum::<f64>() / values.len() as f64).sqrt(),
        Metric::AucRecon => auc(&values, &data.y).with_context(|| data.path.display().to_string())?,
    })
}

/// 1-based ranks of `v` in increasing order, tied values at their average rank.
pub(crate) fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = avg;
        }
        i = j + 1;
    }
    ranks
}

/// ROC AUC of `scores` against binary `labels` (1 = positive), by the Mann–Whitney U statistic
/// with tied scores given their average rank.
pub fn auc(scores: &[f64], labels: &[f64]) -> Result<f64> {
    let ranks = average_ranks(scores);
    let pos = labels.iter().filter(|&&y| y == 1.0).count() as f64;
    let neg = labels.iter().filter(|&&y| y == 0.0).count() as f64;
    if pos == 0.0 || neg == 0.0 || pos + neg != labels.len() as f64 {
        bail!("auc-recon needs labels y of 0 (normal) and 1 (anomaly), with both present");
    }
    let rank_sum: f64 = ranks.iter().zip(labels).filter(|(_, &y)| y == 1.0).map(|(r, _)| r).sum();
    Ok((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

#[cfg(test)]
mod tests {
    use super::auc;

    #[test]
    fn auc_of_perfect_inverted_and_tied_scores() {
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[0.0, 0.0, 1.0, 1.0]).unwrap(), 1.0);
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &[0.0, 0.0, 1.0, 1.0]).unwrap(), 0.0);
        assert_eq!(auc(&[0.5, 0.5, 0.5, 0.5], &[0.0, 1.0, 0.0, 1.0]).unwrap(), 0.5);
        // One of four positive/negative pairs misordered.
        assert_eq!(auc(&[0.1, 0.6, 0.5, 0.9], &[0.0, 0.0, 1.0, 1.0]).unwrap(), 0.75);
        assert!(auc(&[0.1, 0.2], &[1.0, 1.0]).is_err());
    }
}
