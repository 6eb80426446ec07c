//! `hawq`: the command-line front of the compiler. See `hawq --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use hawq_compiler::allocate::{allocate, resolve_pins, Allocation, Budget};
use hawq_compiler::autodiff::{Method, TraceOptions};
use hawq_compiler::data::Dataset;
use hawq_compiler::eval::{default_metric, evaluate, Metric, Runner};
use hawq_compiler::import::import;
use hawq_compiler::ir::InputTransform;
use hawq_compiler::pipeline::{compile, compile_allocation, prepare, prepare_with, progress_bar, BitsFile};
use hawq_compiler::quantize::BitConfig;
use hawq_compiler::report::{Measured, Report};
use hawq_compiler::sensitivity::{measure, LossChoice};

#[derive(Parser)]
#[command(
    name = "hawq",
    version,
    about = "Compile trained ONNX models to mixed-precision integer models for microcontrollers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Quantize an ONNX model and write a `.hq` model file; with a budget, bit widths per layer
    /// are chosen by Hessian sensitivity (HAWQ-V2).
    Compile(CompileArgs),
    /// Per-layer Hessian sensitivity, the Pareto frontier of size against perturbation, and the
    /// measured accuracy of frontier points.
    Analyze(AnalyzeArgs),
    /// Measure a float `.onnx` or a compiled `.hq` model on a dataset.
    Eval(EvalArgs),
    /// Run a compiled model on the inputs of an `.npy` file.
    Run(RunArgs),
    /// Show a compiled model's layers, bit widths, sizes and arena map.
    Inspect(InspectArgs),
    /// Compile and evaluate the bundled example (examples/digits), no arguments needed.
    Demo,
}

#[derive(Args, Clone, Copy)]
struct TransformArgs {
    /// Input scale S of the transform real = x·S + O applied to the raw data.
    #[arg(long, default_value_t = 1.0)]
    input_scale: f32,
    /// Input offset O of the transform real = x·S + O.
    #[arg(long, default_value_t = 0.0)]
    input_offset: f32,
}

impl TransformArgs {
    fn get(self) -> InputTransform {
        InputTransform { scale: self.input_scale, offset: self.input_offset }
    }
}

#[derive(Args)]
struct CompileArgs {
    /// The trained float model.
    model: PathBuf,
    /// Calibration data (.npz with `x` and `y`).
    #[arg(long)]
    calib: PathBuf,
    #[command(flatten)]
    transform: TransformArgs,
    /// Weight bits of every layer (2, 4 or 8).
    #[arg(long, default_value_t = 8, value_parser = parse_weight_bits)]
    bits: u8,
    /// Activation bits of every tensor (4 or 8); the input of a uint8/int8 model stays 8-bit.
    #[arg(long, default_value_t = 8, value_parser = parse_act_bits)]
    act_bits: u8,
    /// Per-layer bit widths (JSON: {"weight_bits": {layer: b}, "act_bits": {tensor: b}}).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    hawq: HawqArgs,
    /// Weight budget in KiB (packed weights + per-channel parameters): bits chosen by HAWQ-V2.
    #[arg(long)]
    budget_kib: Option<f64>,
    /// Average weight bits (parameter-weighted) not to exceed: bits chosen by HAWQ-V2.
    #[arg(long)]
    avg_bits: Option<f64>,
    /// Arena budget in KiB: activations chosen for 4 bits by HAWQ-V2 until it fits.
    #[arg(long)]
    max_arena_kib: Option<f64>,
    /// Write the analysis report (Markdown, JSON, SVG) into this folder.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Output model file.
    #[arg(short, long)]
    output: PathBuf,
    /// Write the model even when it parts from the float model (top-1 agreement below 90%, or
    /// output SQNR below 10 dB, on the calibration data).
    #[arg(long)]
    allow_low_fidelity: bool,
    /// Do not equalize channel ranges across layers (on by default: a tensor whose widest channel
    /// spans 8× its median gets the channel scaled down and its readers' weights scaled up).
    #[arg(long)]
    no_equalize: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of the sensitivity analysis shared by `compile` and `analyze`.
#[derive(Args, Clone)]
struct HawqArgs {
    /// Keep a layer at a bit width: `--pin LAYER=8` (repeatable).
    #[arg(long)]
    pin: Vec<String>,
    /// Keep the first and the last weight layer at 8 bits.
    #[arg(long)]
    pin_first_last: bool,
    /// Calibration loss for the Hessian.
    #[arg(long, value_enum, default_value_t = LossChoice::Auto)]
    loss: LossChoice,
    /// Trace estimator: exact Gauss-Newton where it equals the Hessian, else Hutchinson.
    #[arg(long, value_enum, default_value_t = TraceMethod::Auto)]
    trace_method: TraceMethod,
    /// Relative standard error at which iterative trace estimates stop.
    #[arg(long, default_value_t = 1e-3)]
    tolerance: f64,
    /// Maximum iterations of iterative trace estimates.
    #[arg(long, default_value_t = 100)]
    max_iterations: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TraceMethod {
    Auto,
    Hutchinson,
    GaussNewton,
}

impl HawqArgs {
    fn trace_options(&self) -> TraceOptions {
        TraceOptions {
            method: match self.trace_method {
                TraceMethod::Auto => Method::Auto,
                TraceMethod::Hutchinson => Method::Hutchinson,
                TraceMethod::GaussNewton => Method::GaussNewton,
            },
            tolerance: self.tolerance,
            max_iterations: self.max_iterations,
            ..TraceOptions::default()
        }
    }
}

#[derive(Args)]
struct AnalyzeArgs {
    /// The trained float model.
    model: PathBuf,
    /// Calibration data (.npz with `x` and `y`): the Hessian's loss is measured on it.
    #[arg(long)]
    calib: PathBuf,
    #[command(flatten)]
    transform: TransformArgs,
    #[command(flatten)]
    hawq: HawqArgs,
    /// Measure frontier points on this dataset with the bit-exact runtime.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// top1, rmse or auc-recon for --eval; chosen from the model and data when omitted.
    #[arg(long, value_enum)]
    metric: Option<Metric>,
    /// Window stride for auc-recon.
    #[arg(long, default_value_t = 128)]
    window_stride: usize,
    /// Frontier points to measure with --eval.
    #[arg(long, default_value_t = 6)]
    points: usize,
    /// Write the report (Markdown, JSON, SVG) into this folder.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// A float `.onnx` model or a compiled `.hq` model.
    model: PathBuf,
    /// Evaluation data (.npz with `x` and `y`).
    #[arg(long)]
    data: PathBuf,
    /// Input transform for an ONNX model (a `.hq` model carries its own).
    #[command(flatten)]
    transform: TransformArgs,
    /// top1, rmse or auc-recon; chosen from the model and data when omitted.
    #[arg(long, value_enum)]
    metric: Option<Metric>,
    /// Window stride for auc-recon.
    #[arg(long, default_value_t = 128)]
    window_stride: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RunArgs {
    model: PathBuf,
    /// Inputs: one sample or a batch (first axis), uint8/int8/float32 as the model was compiled.
    #[arg(long)]
    input: PathBuf,
    /// Outputs as float32, one row per sample.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Args)]
struct InspectArgs {
    model: PathBuf,
    #[arg(long)]
    json: bool,
}

fn parse_weight_bits(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(b @ (2 | 4 | 8)) => Ok(b),
        _ => Err(format!("weight bits must be 2, 4 or 8, not '{s}'")),
    }
}

fn parse_act_bits(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(b @ (4 | 8)) => Ok(b),
        _ => Err(format!("activation bits must be 4 or 8, not '{s}'")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(a) => cmd_compile(&a),
        Command::Analyze(a) => cmd_analyze(&a),
        Command::Eval(a) => cmd_eval(&a),
        Command::Run(a) => cmd_run(&a),
        Command::Inspect(a) => cmd_inspect(&a),
        Command::Demo => cmd_demo(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of contexts, outermost first.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", msg.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn kib(v: Option<f64>) -> Option<usize> {
    v.map(|k| (k * 1024.0).floor() as usize)
}

fn cmd_compile(a: &CompileArgs) -> Result<()> {
    let graph = import(&a.model)?;
    let calib = Dataset::load(&a.calib)?;
    let budget = Budget { weight_bytes: kib(a.budget_kib), avg_bits: a.avg_bits, arena_bytes: kib(a.max_arena_kib) };
    let prepared = prepare_with(graph, &calib, a.transform.get(), !a.no_equalize)?;
    let compiled = if budget == Budget::default() {
        let mut bits = BitConfig::uniform(&prepared.graph, a.bits, a.act_bits);
        if let Some(path) = &a.config {
            bits = BitsFile::load(path)?.apply(&prepared.graph, bits, path)?;
        }
        if a.report.is_some() {
            bail!("--report needs a budget (--budget-kib, --avg-bits or --max-arena-kib); for the analysis alone use `hawq analyze`");
        }
        compile(&prepared, &bits)?
    } else {
        if a.config.is_some() {
            bail!("--config fixes the bits; it cannot be combined with a budget (use --pin)");
        }
        let pins = resolve_pins(&prepared.graph, &a.hawq.pin, a.hawq.pin_first_last)?;
        let m = measure(&prepared, &calib, a.hawq.loss, &a.hawq.trace_options())?;
        let allocation = allocate(
            &prepared.graph,
            &m.sensitivity,
            &prepared.calibration,
            prepared.raw,
            &|n, b| prepared.weight_perturbation(n, b),
            budget,
            &pins,
        )?;
        let (compiled, bits) = compile_allocation(&prepared, &allocation, budget.arena_bytes)?;
        if let Some(dir) = &a.report {
            let mut report = build_report(&a.model, &m, &allocation);
            report.chosen_bits = Some(allocation.layers.iter().map(|l| bits.weight_bits[l.node]).collect());
            report.write(dir)?;
            if !a.json {
                println!("report: {}", dir.join("report.md").display());
            }
        }
        compiled
    };
    let fidelity = hawq_compiler::fidelity::measure(&prepared.graph, &compiled.blob, &calib, a.transform.get())
        .with_context(|| format!("{}: measuring the compiled model against the float model", a.model.display()))?;
    if let Some(why) = &fidelity.divergence {
        if !a.allow_low_fidelity {
            eprint!("{}", fidelity.render());
            bail!(
                "{}: the quantized model does not compute what the float model computes: {why}. Nothing written \
                 (--allow-low-fidelity writes it anyway)",
                a.model.display()
            );
        }
        eprintln!("warning: {}: {why}; written anyway (--allow-low-fidelity)", a.model.display());
    }
    hawq_compiler::emit::write_atomic(&a.output, &compiled.blob)?;
    if a.json {
        println!(
            "{}",
            json!({
                "output": a.output,
                "file_bytes": compiled.blob.len(),
                "weight_bytes": compiled.weight_bytes,
                "arena_bytes": compiled.arena_bytes,
                "layers": compiled.layers,
                "equalized": prepared.equalized,
                "fidelity": fidelity,
            })
        );
    } else {
        println!("{} → {}", a.model.display(), a.output.display());
        for e in &prepared.equalized {
            println!(
                "equalized '{}': widest channel {:.0}× the median → {:.1}× ({} channels scaled, consumers compensated)",
                e.tensor, e.spread_before, e.spread_after, e.channels_scaled
            );
        }
        println!("{:<48} {:<17} {:>5} {:>5} {:>7} {:>9} {:>10}", "layer", "op", "w", "a", "params", "bytes", "MACs");
        for l in &compiled.layers {
            let wb = l.weight_bits.map_or("-".to_string(), |b| b.to_string());
            let name = shorten(&l.name, 48);
            println!(
                "{name:<48} {:<17} {wb:>5} {:>5} {:>7} {:>9} {:>10}",
                l.op,
                format!("{}→{}", l.in_bits, l.out_bits),
                l.params,
                l.weight_bytes,
                l.macs
            );
        }
        println!(
            "weights {} bytes, arena {} bytes, model file {} bytes",
            compiled.weight_bytes,
            compiled.arena_bytes,
            compiled.blob.len()
        );
        print!("{}", fidelity.render());
    }
    Ok(())
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s.chars().rev().take(n - 1).collect::<Vec<_>>().into_iter().rev().collect();
        format!("…{tail}")
    }
}

fn is_hq(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "hq")
}

fn read_blob(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))
}

fn load_model<'a>(path: &Path, blob: &'a [u8]) -> Result<hawq_runtime::Model<'a>> {
    hawq_runtime::Model::from_bytes(blob).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn cmd_eval(a: &EvalArgs) -> Result<()> {
    let data = Dataset::load(&a.data)?;
    let blob;
    let graph;
    let (runner, sizes) = if is_hq(&a.model) {
        blob = read_blob(&a.model)?;
        let model = load_model(&a.model, &blob)?;
        let sizes = (model.weight_bytes(), model.arena_bytes());
        (Runner::Quantized { model }, Some(sizes))
    } else {
        graph = import(&a.model)?;
        (Runner::Float { graph: &graph, transform: a.transform.get() }, None)
    };
    let metric = a.metric.unwrap_or_else(|| default_metric(&runner, &data));
    let bar = progress_bar(data.len(), "evaluating");
    let value = evaluate(&runner, &data, metric, a.window_stride, &bar)?;
    bar.finish_and_clear();
    if a.json {
        let mut obj = json!({ "metric": metric.name(), "value": value, "samples": data.len() });
        if let Some((w, ar)) = sizes {
            obj["weight_bytes"] = json!(w);
            obj["arena_bytes"] = json!(ar);
        }
        println!("{obj}");
    } else {
        print!("{} {}: {value:.4} on {} samples", a.model.display(), metric.name(), data.len());
        if let Some((w, ar)) = sizes {
            print!(" (weights {w} bytes, arena {ar} bytes)");
        }
        println!();
    }
    Ok(())
}

fn cmd_run(a: &RunArgs) -> Result<()> {
    use ndarray_npy::{read_npy, write_npy};
    let blob = read_blob(&a.model)?;
    let model = load_model(&a.model, &blob)?;
    let n_in = model.input().elements();
    let raw: Vec<f32> = if let Ok(x) = read_npy::<_, ndarray::ArrayD<u8>>(&a.input) {
        x.iter().map(|&v| v as f32).collect()
    } else if let Ok(x) = read_npy::<_, ndarray::ArrayD<i8>>(&a.input) {
        x.iter().map(|&v| v as f32).collect()
    } else {
        let x: ndarray::ArrayD<f32> = read_npy(&a.input)
            .map_err(|e| anyhow!("{}: not a uint8, int8 or float32 .npy file ({e})", a.input.display()))?;
        x.iter().copied().collect()
    };
    if raw.is_empty() || !raw.len().is_multiple_of(n_in) {
        bail!("{}: {} values is not a whole number of inputs of {n_in} values", a.input.display(), raw.len());
    }
    let runner = Runner::Quantized { model };
    let n_out = runner.output_len();
    let mut out = Vec::with_capacity(raw.len() / n_in * n_out);
    for sample in raw.chunks(n_in) {
        out.extend(runner.infer(sample)?);
    }
    let y = ndarray::Array2::from_shape_vec((raw.len() / n_in, n_out), out)?;
    write_npy(&a.output, &y).map_err(|e| anyhow!("{}: cannot write ({e})", a.output.display()))?;
    Ok(())
}

fn cmd_inspect(a: &InspectArgs) -> Result<()> {
    use hawq_runtime::format::Op;
    let blob = read_blob(&a.model)?;
    let model = load_model(&a.model, &blob)?;
    let tensors = model.tensors();
    let describe = |i: u16| {
        let t = &tensors[i as usize];
        json!({ "index": i, "shape": t.shape, "dtype": format!("{:?}", t.dtype), "offset": t.offset, "bytes": t.bytes() })
    };
    let mut layers = Vec::new();
    for (i, op) in model.ops().enumerate() {
        let op = op.map_err(|e| anyhow!("{}: {e}", a.model.display()))?;
        let (bits, bytes) = match &op {
            Op::Conv2d(p) | Op::DepthwiseConv2d(p) => (Some(p.weight_bits), p.weights.len()),
            Op::FullyConnected(p) => (Some(p.weight_bits), p.weights.len()),
            _ => (None, 0),
        };
        layers.push(json!({
            "index": i,
            "op": op.name(),
            "weight_bits": bits,
            "weight_bytes": bytes,
            "inputs": op.inputs().iter().map(|&t| describe(t)).collect::<Vec<_>>(),
            "output": describe(op.output()),
        }));
    }
    if a.json {
        println!(
            "{}",
            json!({
                "file_bytes": blob.len(),
                "weight_bytes": model.weight_bytes(),
                "arena_bytes": model.arena_bytes(),
                "raw_input": format!("{:?}", model.raw_input()),
                "layers": layers,
            })
        );
        return Ok(());
    }
    println!(
        "{}: {} bytes, weights {} bytes, arena {} bytes, input {:?} {:?}",
        a.model.display(),
        blob.len(),
        model.weight_bytes(),
        model.arena_bytes(),
        model.raw_input(),
        model.input().shape
    );
    println!("{:>3} {:<17} {:>4} {:>8}  tensors (index dtype shape @offset)", "#", "op", "w", "bytes");
    for l in &layers {
        let t = |v: &serde_json::Value| {
            // The shape as `[1, 32, 32, 16]` (its JSON text), not the JSON value's Debug form.
            format!("t{} {} {} @{}", v["index"], v["dtype"].as_str().unwrap_or(""), v["shape"], v["offset"])
        };
        let ins: Vec<String> = l["inputs"].as_array().map(|a| a.iter().map(t).collect()).unwrap_or_default();
        println!(
            "{:>3} {:<17} {:>4} {:>8}  {} → {}",
            l["index"],
            l["op"].as_str().unwrap_or(""),
            l["weight_bits"].as_u64().map_or("-".into(), |b| b.to_string()),
            l["weight_bytes"],
            ins.join(" + "),
            t(&l["output"])
        );
    }
    println!(
        "arena map ({} bytes, one column = {} bytes):",
        model.arena_bytes(),
        model.arena_bytes().div_ceil(64).max(1)
    );
    let col = model.arena_bytes().div_ceil(64).max(1);
    for (i, t) in tensors.iter().enumerate() {
        let (start, end) = (t.offset as usize / col, (t.offset as usize + t.bytes()).div_ceil(col));
        let bar: String = (0..64).map(|c| if c >= start && c < end { '#' } else { '.' }).collect();
        println!("  t{i:<3} {bar} {:>7} +{}", t.offset, t.bytes());
    }
    Ok(())
}

/// The bundled example: the whole HAWQ-V2 pipeline on examples/digits, no arguments needed.
fn cmd_demo() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits");
    let out = Path::new("target/demo");
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let transform = TransformArgs { input_scale: 0.0625, input_offset: 0.0 };
    let hawq = HawqArgs {
        pin: Vec::new(),
        pin_first_last: false,
        loss: LossChoice::Auto,
        trace_method: TraceMethod::Auto,
        tolerance: 1e-3,
        max_iterations: 100,
    };
    println!("== examples/digits: float model");
    cmd_eval(&EvalArgs {
        model: dir.join("model.onnx"),
        data: dir.join("eval.npz"),
        transform,
        metric: Some(Metric::Top1),
        window_stride: 1,
        json: false,
    })?;
    println!("\n== Hessian sensitivity, Pareto frontier, measured frontier points");
    cmd_analyze(&AnalyzeArgs {
        model: dir.join("model.onnx"),
        calib: dir.join("calib.npz"),
        transform,
        hawq: hawq.clone(),
        eval: Some(dir.join("eval.npz")),
        metric: Some(Metric::Top1),
        window_stride: 1,
        points: 6,
        report: Some(out.join("report")),
        json: false,
    })?;
    println!("\n== compile under a 1.5 KiB weight budget and a 0.5 KiB arena budget");
    let model_out = out.join("digits.hq");
    cmd_compile(&CompileArgs {
        model: dir.join("model.onnx"),
        calib: dir.join("calib.npz"),
        transform,
        bits: 8,
        act_bits: 8,
        config: None,
        hawq,
        budget_kib: Some(1.5),
        avg_bits: None,
        max_arena_kib: Some(0.5),
        report: None,
        output: model_out.clone(),
        allow_low_fidelity: false,
        no_equalize: false,
        json: false,
    })?;
    cmd_eval(&EvalArgs {
        model: model_out,
        data: dir.join("eval.npz"),
        transform,
        metric: Some(Metric::Top1),
        window_stride: 1,
        json: false,
    })?;
    println!("\nreport: {}", out.join("report/report.md").display());
    Ok(())
}

fn build_report(model: &Path, m: &hawq_compiler::sensitivity::Measured, a: &Allocation) -> Report {
    Report {
        model: model.display().to_string(),
        loss: format!("{:?}", m.loss),
        trace_method: format!(
            "{:?} over {} samples{}",
            m.traces.estimator,
            m.traces.samples,
            if m.traces.exact_hessian { " (exact Hessian diagonal blocks)" } else { "" }
        ),
        trace_seconds: m.traces.seconds,
        layers: a.layers.clone(),
        activations: a.activations.clone(),
        frontier: a.frontier.iter().map(|f| (f.size, f.omega)).collect(),
        chosen: a.chosen,
        chosen_bits: a.chosen.map(|c| a.frontier[c].bits.clone()),
        measured: Vec::new(),
    }
}

/// Evenly spaced frontier points (by size) to measure.
fn spread(n: usize, count: usize) -> Vec<usize> {
    if n == 0 || count == 0 {
        return Vec::new();
    }
    let count = count.min(n);
    let mut idx: Vec<usize> = (0..count).map(|k| if count == 1 { n - 1 } else { k * (n - 1) / (count - 1) }).collect();
    idx.dedup();
    idx
}

fn cmd_analyze(a: &AnalyzeArgs) -> Result<()> {
    let graph = import(&a.model)?;
    let calib = Dataset::load(&a.calib)?;
    let prepared = prepare(graph, &calib, a.transform.get())?;
    let pins = resolve_pins(&prepared.graph, &a.hawq.pin, a.hawq.pin_first_last)?;
    let m = measure(&prepared, &calib, a.hawq.loss, &a.hawq.trace_options())?;
    let allocation = allocate(
        &prepared.graph,
        &m.sensitivity,
        &prepared.calibration,
        prepared.raw,
        &|n, b| prepared.weight_perturbation(n, b),
        Budget::default(),
        &pins,
    )?;
    let mut report = build_report(&a.model, &m, &allocation);
    if let Some(eval_path) = &a.eval {
        let eval = Dataset::load(eval_path)?;
        let mut configs: Vec<(String, BitConfig)> = Vec::new();
        for w in [8, 4] {
            configs.push((format!("uniform w{w}"), BitConfig::uniform(&prepared.graph, w, 8)));
        }
        for i in spread(allocation.frontier.len(), a.points) {
            let bits = hawq_compiler::allocate::apply_weights(
                &allocation.layers,
                &allocation.frontier[i],
                BitConfig::uniform(&prepared.graph, 8, 8),
            );
            configs.push((format!("hawq #{i}"), bits));
        }
        for (label, bits) in configs {
            let compiled = compile(&prepared, &bits)?;
            let model = hawq_runtime::Model::from_bytes(&compiled.blob).map_err(|e| anyhow!("{e}"))?;
            let runner = Runner::Quantized { model };
            let metric = a.metric.unwrap_or_else(|| default_metric(&runner, &eval));
            let bar = progress_bar(eval.len(), &label);
            let value = evaluate(&runner, &eval, metric, a.window_stride, &bar)?;
            bar.finish_and_clear();
            report.measured.push(Measured {
                label,
                weight_bytes: compiled.weight_bytes,
                arena_bytes: compiled.arena_bytes,
                metric: metric.name().to_string(),
                value,
                bits: allocation.layers.iter().map(|l| bits.weight_bits[l.node]).collect(),
            });
        }
    }
    if let Some(dir) = &a.report {
        report.write(dir)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{}: loss {}, Hessian traces and Ω by {} in {:.2} s",
        a.model.display(),
        report.loss,
        report.trace_method,
        report.trace_seconds
    );
    println!(
        "{:>3} {:<40} {:>7} {:>11} {:>7} {:>10} {:>10} {:>10}",
        "#", "layer", "params", "Tr(H)/n", "±rel", "Ω(2)", "Ω(4)", "Ω(8)"
    );
    for (k, l) in report.layers.iter().enumerate() {
        let rel = if l.trace.average != 0.0 { l.trace.std_error / l.trace.average.abs() } else { 0.0 };
        println!(
            "{k:>3} {:<40} {:>7} {:>11.4e} {:>6.2}% {:>10.3e} {:>10.3e} {:>10.3e}",
            shorten(&l.name, 40),
            l.params,
            l.trace.average,
            100.0 * rel,
            l.omega[0],
            l.omega[1],
            l.omega[2]
        );
    }
    println!(
        "frontier: {} non-dominated configurations, {}..{} weight bytes",
        report.frontier.len(),
        report.frontier.first().map_or(0, |p| p.0),
        report.frontier.last().map_or(0, |p| p.0)
    );
    for m in &report.measured {
        println!(
            "  {:<12} {} {:.4}  weights {:>7} B  arena {:>7} B  bits {}",
            m.label,
            m.metric,
            m.value,
            m.weight_bytes,
            m.arena_bytes,
            hawq_compiler::report::bits_string(&m.bits)
        );
    }
    if let Some(dir) = &a.report {
        println!("report: {}", dir.join("report.md").display());
    }
    Ok(())
}
