//! HAWQ-V2 sensitivity of a prepared model on its labelled calibration set: picks the loss,
//! runs the trace estimators of [`crate::autodiff`], and returns per-layer average traces (and
//! per output channel for weight layers), and the exact quadratic forms `vᵀHv` of every weight
//! layer's quantization perturbation at every width, which the allocation uses as Ω.

use anyhow::{bail, Result};
use rayon::prelude::*;

use crate::allocate::{Sensitivity, Trace, WEIGHT_BITS};
use crate::autodiff::{traces_and_forms, LayerDirection, Loss, TraceOptions, Traces};
use crate::data::Dataset;
use crate::emit::fake_quantized_widths;
use crate::ir::{Graph, OpKind};
use crate::pipeline::{real_inputs, Prepared};

/// The user's choice of calibration loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossChoice {
    /// Cross-entropy for classifiers, MSE for one-output regression, reconstruction MSE for
    /// autoencoders (input size = output size).
    Auto,
    CrossEntropy,
    Mse,
    Reconstruction,
}

/// The loss a model and its labels call for.
pub fn choose_loss(graph: &Graph, labels: &[f64], choice: LossChoice) -> Result<Loss> {
    let outputs = graph.values[graph.output].elements();
    let inputs = graph.values[graph.input].elements();
    Ok(match choice {
        LossChoice::CrossEntropy => Loss::CrossEntropy,
        LossChoice::Mse => Loss::Mse,
        LossChoice::Reconstruction => Loss::Reconstruction,
        LossChoice::Auto if graph.ends_in_normalization() => Loss::CrossEntropy,
        LossChoice::Auto if outputs == inputs && outputs > 1 => Loss::Reconstruction,
        LossChoice::Auto if outputs == 1 => Loss::Mse,
        LossChoice::Auto => {
            let classes = labels.iter().all(|&y| y >= 0.0 && y.fract() == 0.0 && (y as usize) < outputs);
            if !classes {
                bail!("cannot tell the loss from the model and labels; pass --loss");
            }
            Loss::CrossEntropy
        }
    })
}

/// The perturbation `v = Q_b(W) − W` (GPTQ rounding, bias correction) the compiled model really
/// has, of every weight layer at every width of `WEIGHT_BITS`, in that order per layer. The
/// layers are rounded in parallel.
fn quantization_directions(p: &Prepared) -> Vec<LayerDirection> {
    let weight_layers: Vec<usize> =
        (0..p.graph.nodes.len()).filter(|&i| matches!(p.graph.nodes[i].op, OpKind::Conv(_) | OpKind::Fc(_))).collect();
    weight_layers
        .par_iter()
        .flat_map_iter(|&i| {
            let node = &p.graph.nodes[i];
            let (w0, b0): (Vec<f32>, Vec<f32>) = match &node.op {
                OpKind::Conv(c) => (c.weight.iter().copied().collect(), c.bias.to_vec()),
                OpKind::Fc(f) => (f.weight.iter().copied().collect(), f.bias.to_vec()),
                _ => unreachable!("weight layers only"),
            };
            let means = &p.calibration.channel_means[node.inputs[0]];
            let quantized = fake_quantized_widths(&node.op, p.moments[i].as_ref(), means, &WEIGHT_BITS)
                .expect("convolutions and fully connected layers have weights");
            quantized
                .into_iter()
                .map(|(w, b)| {
                    let weights = w.iter().zip(&w0).map(|(q, w)| q - w).collect();
                    let biases = b.iter().zip(&b0).map(|(q, b)| q - b).collect();
                    LayerDirection { node: i, weights, biases }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

pub struct Measured {
    pub sensitivity: Sensitivity,
    pub traces: Traces,
    pub loss: Loss,
}

/// Traces of every weight layer and activation on the calibration set, and the exact quadratic
/// forms `vᵀ H v` of every weight layer's quantization perturbation at every width.
pub fn measure(p: &Prepared, calib: &Dataset, choice: LossChoice, opts: &TraceOptions) -> Result<Measured> {
    let loss = choose_loss(&p.graph, &calib.y, choice)?;
    let inputs = real_inputs(&p.graph, calib, p.transform)?;
    let directions = quantization_directions(p);
    let bar = crate::pipeline::progress_bar(inputs.len(), "hessian");
    let (traces, forms) = traces_and_forms(&p.graph, loss, &inputs, &calib.y, opts, &directions, &bar)?;
    bar.finish_and_clear();
    // One form per width of `WEIGHT_BITS`, per layer, as the directions were made.
    let mut quadratic = vec![None; p.graph.nodes.len()];
    for (d, f) in directions.chunks(WEIGHT_BITS.len()).zip(forms.chunks(WEIGHT_BITS.len())) {
        quadratic[d[0].node] = Some(f.to_vec());
    }
    let mut sensitivity = Sensitivity {
        weights: vec![None; p.graph.nodes.len()],
        activations: vec![None; p.graph.values.len()],
        quadratic,
    };
    for t in &traces.weights {
        let per = t.params.max(1) as f64;
        sensitivity.weights[t.node] =
            Some(Trace { average: t.average(), std_error: t.std_error / per, channels: t.channel_averages() });
    }
    for t in &traces.activations {
        let per = t.elements.max(1) as f64;
        sensitivity.activations[t.value] =
            Some(Trace { average: t.average(), std_error: t.std_error / per, channels: Vec::new() });
    }
    Ok(Measured { sensitivity, traces, loss })
}
