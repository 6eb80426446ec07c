//! Timing harness for the Hessian traces on the shared real models:
//!
//! ```text
//! cargo run --release -p hawq-compiler --example trace_bench -- [resnet8|dscnn|autoencoder|mnist8]
//!     [--samples N] [--hutchinson] [--gn-probes]
//! ```
//!
//! Prints the wall time and the per-layer weight and activation traces with their relative
//! standard errors.

use std::path::Path;

use anyhow::{bail, Result};
use hawq_compiler::autodiff::{traces, Loss, Method, TraceOptions};
use hawq_compiler::data::Dataset;
use hawq_compiler::ir::InputTransform;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args.first().map(String::as_str).unwrap_or("resnet8");
    let flag = |name: &str| args.iter().any(|a| a == name);
    let samples: Option<usize> =
        args.iter().position(|a| a == "--samples").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok());
    let fixtures = Path::new("/work/shared/fixtures");
    let (dir, transform, loss) = match model {
        "resnet8" => ("resnet8-cifar10", InputTransform::default(), Loss::CrossEntropy),
        "dscnn" => ("dscnn-kws", InputTransform { scale: 0.5847, offset: -83.0 * 0.5847 }, Loss::CrossEntropy),
        "mnist8" => ("mnist8", InputTransform { scale: 1.0 / 255.0, offset: 0.0 }, Loss::CrossEntropy),
        "autoencoder" => ("autoencoder-ad", InputTransform::default(), Loss::Reconstruction),
        other => bail!("unknown model {other}"),
    };
    let graph = hawq_compiler::import::import(&fixtures.join(dir).join("model.onnx"))?;
    let data = Dataset::load(&fixtures.join(dir).join("calib.npz"))?;
    let mut inputs = hawq_compiler::pipeline::real_inputs(&graph, &data, transform)?;
    let mut labels = data.y.clone();
    if let Some(n) = samples {
        inputs.truncate(n);
        labels.truncate(n);
    }
    let mut opts = TraceOptions::default();
    if flag("--hutchinson") {
        opts.method = Method::Hutchinson;
    }
    if flag("--gn-probes") {
        opts.exact_max_outputs = 0;
    }
    println!("{model}: {} samples, {} MACs/inference, loss {loss:?}", inputs.len(), graph.total_macs());
    let bar = indicatif::ProgressBar::hidden();
    let t = traces(&graph, loss, &inputs, &labels, &opts, &bar)?;
    println!("estimator {:?} (exact Hessian: {}), wall {:.3} s", t.estimator, t.exact_hessian, t.seconds);
    println!(
        "{:>4} {:<16} {:>8} {:>14} {:>14} {:>10} {:>5}",
        "node", "op", "params", "trace", "trace/n", "rel.se", "iter"
    );
    for l in &t.weights {
        let op = graph.nodes[l.node].op.name();
        println!(
            "{:>4} {:<16} {:>8} {:>14.6e} {:>14.6e} {:>10.2e} {:>5}",
            l.node,
            op,
            l.params,
            l.trace,
            l.average(),
            l.relative_std_error(),
            l.iterations
        );
    }
    println!(
        "{:>4} {:<40} {:>8} {:>14} {:>14} {:>10} {:>5}",
        "val", "name", "elems", "trace", "trace/n", "rel.se", "iter"
    );
    for a in &t.activations {
        let mut name = graph.values[a.value].name.clone();
        name.truncate(40);
        println!(
            "{:>4} {:<40} {:>8} {:>14.6e} {:>14.6e} {:>10.2e} {:>5}",
            a.value,
            name,
            a.elements,
            a.trace,
            a.average(),
            a.relative_std_error(),
            a.iterations
        );
    }
    Ok(())
}
