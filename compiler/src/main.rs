//! `hawq`: the command-line front of the compiler. See `hawq --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use hawq_compiler::data::Dataset;
use hawq_compiler::eval::{default_metric, evaluate, Metric, Runner};
use hawq_compiler::import::import;
use hawq_compiler::ir::InputTransform;
use hawq_compiler::pipeline::{compile, prepare, progress_bar, BitsFile};
use hawq_compiler::quantize::BitConfig;

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
    /// Quantize an ONNX model and write a `.hq` model file.
    Compile(CompileArgs),
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
    /// Output model file.
    #[arg(short, long)]
    output: PathBuf,
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

fn cmd_compile(a: &CompileArgs) -> Result<()> {
    let graph = import(&a.model)?;
    let calib = Dataset::load(&a.calib)?;
    let mut bits = BitConfig::uniform(&graph, a.bits, a.act_bits);
    if let Some(path) = &a.config {
        bits = BitsFile::load(path)?.apply(&graph, bits, path)?;
    }
    let prepared = prepare(graph, &calib, a.transform.get())?;
    let compiled = compile(&prepared, &bits)?;
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
            })
        );
    } else {
        println!("{} → {}", a.model.display(), a.output.display());
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
    if raw.is_empty() || raw.len() % n_in != 0 {
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
            format!("t{} {} {:?} @{}", v["index"], v["dtype"].as_str().unwrap_or(""), v["shape"], v["offset"])
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

/// The bundled example: compile examples/digits at 8 bits and evaluate float and integer models.
fn cmd_demo() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits");
    let model = dir.join("model.onnx");
    let transform = InputTransform { scale: 0.0625, offset: 0.0 };
    let graph = import(&model)?;
    let calib = Dataset::load(&dir.join("calib.npz"))?;
    let eval = Dataset::load(&dir.join("eval.npz"))?;
    let float = {
        let bar = progress_bar(eval.len(), "float eval");
        let v = evaluate(&Runner::Float { graph: &graph, transform }, &eval, Metric::Top1, 1, &bar)?;
        bar.finish_and_clear();
        v
    };
    println!("examples/digits: float model top-1 {:.2}% on {} samples", 100.0 * float, eval.len());
    let prepared = prepare(graph, &calib, transform)?;
    let out_dir = Path::new("target/demo");
    std::fs::create_dir_all(out_dir).with_context(|| format!("{}: cannot create", out_dir.display()))?;
    for (name, w, act) in [("int8", 8, 8), ("w4a8", 4, 8), ("w4a4", 4, 4)] {
        let bits = BitConfig::uniform(&prepared.graph, w, act);
        let compiled = compile(&prepared, &bits)?;
        let path = out_dir.join(format!("digits-{name}.hq"));
        hawq_compiler::emit::write_atomic(&path, &compiled.blob)?;
        let model = hawq_runtime::Model::from_bytes(&compiled.blob).map_err(|e| anyhow!("{e}"))?;
        let bar = progress_bar(eval.len(), name);
        let acc = evaluate(&Runner::Quantized { model }, &eval, Metric::Top1, 1, &bar)?;
        bar.finish_and_clear();
        println!(
            "  {name:<5} top-1 {:.2}%  weights {:>5} B  arena {:>5} B  → {}",
            100.0 * acc,
            compiled.weight_bytes,
            compiled.arena_bytes,
            path.display()
        );
    }
    Ok(())
}
