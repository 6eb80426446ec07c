//! HAWQ-V2 sensitivity of a prepared model on its labelled calibration set: picks the loss,
//! runs the trace estimators of [`crate::autodiff`], and returns per-layer average traces.

use anyhow::{bail, Result};

use crate::allocate::{Sensitivity, Trace};
use crate::autodiff::{traces, Loss, TraceOptions, Traces};
use crate::data::Dataset;
use crate::ir::Graph;
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
        LossChoice::Auto if graph.ends_in_softmax() => Loss::CrossEntropy,
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

pub struct Measured {
    pub sensitivity: Sensitivity,
    pub traces: Traces,
    pub loss: Loss,
}

/// Traces of every weight layer and activation on the calibration set.
pub fn measure(p: &Prepared, calib: &Dataset, choice: LossChoice, opts: &TraceOptions) -> Result<Measured> {
    let loss = choose_loss(&p.graph, &calib.y, choice)?;
    let inputs = real_inputs(&p.graph, calib, p.transform)?;
    let bar = crate::pipeline::progress_bar(inputs.len(), "hessian");
    let traces = traces(&p.graph, loss, &inputs, &calib.y, opts, &bar)?;
    bar.finish_and_clear();
    let mut sensitivity =
        Sensitivity { weights: vec![None; p.graph.nodes.len()], activations: vec![None; p.graph.values.len()] };
    for t in &traces.weights {
        let per = t.params.max(1) as f64;
        sensitivity.weights[t.node] = Some(Trace { average: t.average(), std_error: t.std_error / per });
    }
    for t in &traces.activations {
        let per = t.elements.max(1) as f64;
        sensitivity.activations[t.value] = Some(Trace { average: t.average(), std_error: t.std_error / per });
    }
    Ok(Measured { sensitivity, traces, loss })
}
