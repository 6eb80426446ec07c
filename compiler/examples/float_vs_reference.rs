//! The float reference (`float_exec`) against another runtime's outputs, for import sweeps
//! (scripts/sweep_keras.py): `float_vs_reference MODEL.onnx REF.npz PREFIX`, where REF.npz holds
//! `x` (inputs in the model's layout, first axis the sample) and `PREFIX_out0`, `PREFIX_out1`, ...
//! (the graph's outputs in order, e.g. onnxruntime's). Prints one line: `IMPORT-ERROR <error>`, or
//! `OK outputs=<n> worst_rel=<e>`, the largest difference relative to its row's largest magnitude.

use std::path::Path;

use anyhow::{Context, Result};
use hawq_compiler::import::import;
use ndarray::ArrayD;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, refs, prefix] = args.as_slice() else {
        anyhow::bail!("usage: float_vs_reference MODEL.onnx REF.npz PREFIX");
    };
    let graph = match import(Path::new(model)) {
        Ok(g) => g,
        Err(e) => {
            println!("IMPORT-ERROR {e:#}");
            return Ok(());
        }
    };
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(refs).context("REF.npz")?)?;
    let x: ArrayD<f32> = npz.by_name("x.npy")?;
    let mut want: Vec<ArrayD<f32>> = Vec::new();
    while let Ok(a) = npz.by_name(&format!("{prefix}_out{}.npy", want.len())) {
        want.push(a);
    }
    let n = x.shape()[0];
    let per_sample = x.len() / n;
    let hwc = graph.values[graph.input].hwc();
    let outputs: Vec<usize> = std::iter::once(graph.output).chain(graph.extra_outputs.iter().copied()).collect();
    let (mut worst, mut notes) = (0f32, Vec::new());
    let x = x.as_standard_layout();
    for s in 0..n {
        let sample = &x.as_slice().context("x")?[s * per_sample..(s + 1) * per_sample];
        let values = hawq_compiler::float_exec::run_all(&graph, &graph.input_layout.to_nhwc(sample, hwc));
        for (k, w) in want.iter().enumerate() {
            let m = w.len() / n;
            let w = w.as_standard_layout();
            let row = &w.as_slice().context("reference")?[s * m..(s + 1) * m];
            let Some(got) = outputs.get(k).map(|&id| &values[id]) else {
                notes.push(format!("output {k} missing"));
                continue;
            };
            if got.len() != row.len() {
                notes.push(format!("output {k}: {} values, reference {}", got.len(), row.len()));
                continue;
            }
            let scale = row.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-6);
            worst = got.iter().zip(row).fold(worst, |m, (a, b)| m.max((a - b).abs() / scale));
        }
    }
    notes.dedup();
    println!("OK outputs={} worst_rel={worst:.3e} {}", want.len(), notes.join("; "));
    Ok(())
}
