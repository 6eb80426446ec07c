//! `hawq`: the command-line front of the compiler. See `hawq --help`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use hawq_compiler::allocate::{allocate, resolve_pins, Allocation, Budget};
use hawq_compiler::autodiff::{Method, TraceOptions};
use hawq_compiler::data::{Dataset, RawData};
use hawq_compiler::eval::{default_metric, evaluate, Metric, Runner};
use hawq_compiler::import::import;
use hawq_compiler::ir::{Graph, InputTransform};
use hawq_compiler::pipeline::{
    compile, compile_allocation, prepare, prepare_with, progress_bar, with_input_normalization, BitsFile,
};
use hawq_compiler::quantize::BitConfig;
use hawq_compiler::report::shorten;
use hawq_compiler::report::{Measured, Report};
use hawq_compiler::sensitivity::{measure, LossChoice};

/// `println!` that hands a failed write (a closed pipe: `hawq inspect m.hq | head`) back as an
/// error, which `main` ends quietly on, instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {
        writeln!(std::io::stdout(), $($t)*).map_err(anyhow::Error::from)?
    };
}

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
    /// Write a firmware project for a board around a compiled model (the app templates of
    /// examples/apps and examples/rust-app, with the model's Rust module).
    NewApp(NewAppArgs),
    /// Compile and evaluate the bundled example (examples/digits), no arguments needed.
    Demo,
}

#[derive(Args, Clone, Default)]
struct TransformArgs {
    /// Input scale S of the transform real = x·S + O applied to uint8/int8 data [default: 1]; one
    /// value per channel (comma-separated) makes the transform per channel
    #[arg(long, allow_hyphen_values = true, value_delimiter = ',', num_args = 1)]
    input_scale: Vec<f32>,
    /// Input offset O of the transform real = x·S + O (negative values need no `=`) [default: 0];
    /// one value per channel (comma-separated) makes the transform per channel
    #[arg(long, allow_hyphen_values = true, value_delimiter = ',', num_args = 1)]
    input_offset: Vec<f32>,
}

impl TransformArgs {
    fn given(&self) -> bool {
        !self.input_scale.is_empty() || !self.input_offset.is_empty()
    }

    /// The graph to compile and the transform folded into its input: a per-channel transform
    /// becomes the graph's first op (`pipeline::with_input_normalization`), the input then taken
    /// as is.
    fn apply(&self, model: &Path, graph: Graph) -> Result<(Graph, InputTransform)> {
        if self.input_scale.len() > 1 || self.input_offset.len() > 1 {
            let graph = with_input_normalization(graph, &self.input_scale, &self.input_offset)
                .with_context(|| model.display().to_string())?;
            return Ok((graph, InputTransform::default()));
        }
        let scale = self.input_scale.first().copied().unwrap_or(1.0);
        let offset = self.input_offset.first().copied().unwrap_or(0.0);
        Ok((graph, InputTransform { scale, offset }))
    }

    /// Float data are taken as real values: a transform given with them would be ignored.
    fn check_applies(&self, data: &Dataset) -> Result<()> {
        if self.given() && matches!(data.x, RawData::F32(_)) {
            bail!(
                "{}: 'x' holds float32 values, which are taken as real; --input-scale/--input-offset apply to \
                 uint8/int8 data only",
                data.path.display()
            );
        }
        Ok(())
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
    /// Weight bits of every layer (2, 4 or 8) [default: 8]; not with a budget.
    #[arg(long, value_parser = parse_weight_bits)]
    bits: Option<u8>,
    /// Activation bits of every tensor (4 or 8) [default: 8]; the input of a uint8/int8 model
    /// stays 8-bit; not with a budget.
    #[arg(long, value_parser = parse_act_bits)]
    act_bits: Option<u8>,
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
    /// Also write the model as C source into this folder, for firmware linking the C library
    /// (libhawq_runtime_c.a, hawq.h): `<name>_model.h` (arena size, input/output sizes and
    /// quantization as macros) and `<name>_model.c` (the bytes, 16-byte aligned), where `<name>`
    /// is the output file's stem.
    #[arg(long, value_name = "DIR")]
    emit_c: Option<PathBuf>,
    /// Also write the model as a Rust module into this folder, for firmware depending on
    /// `hawq-runtime`: `<name>_model.rs` (arena size, kernel set, input/output sizes and
    /// quantization as constants; `Arena`, `load`, `interpreter`, `read_output`) and
    /// `<name>_model.hq` beside it, which the module embeds.
    #[arg(long, value_name = "DIR")]
    emit_rust: Option<PathBuf>,
    /// Write the model even when it parts from the float model (top-1 agreement below 90%, or
    /// output SQNR below 10 dB, on the calibration data).
    #[arg(long)]
    allow_low_fidelity: bool,
    /// Do not equalize channel ranges across layers (on by default: a tensor whose widest channel
    /// spans 8× its median gets the channel scaled down and its readers' weights scaled up).
    #[arg(long)]
    no_equalize: bool,
    /// Refine the quantized model for this many steps before writing it: distillation from the
    /// float model on the calibration data, straight-through rounding and learned scales of the
    /// layers below 8 bits, activations below 8 bits rounded as the device rounds them (0: no
    /// refinement) [default: 0].
    #[arg(long)]
    refine_steps: Option<usize>,
    /// Wall-clock limit of the refinement in seconds (stopping early makes the result depend on
    /// the machine's speed) [default: 60].
    #[arg(long)]
    refine_seconds: Option<f64>,
    /// With --refine-steps, also learn the clipping ranges (scales) of the activations below 8
    /// bits (LSQ); off by default: on the fixtures it moved accuracy within the eval sets' noise,
    /// up with 8-bit weights and down with 2- and 4-bit ones (README, "Below 4 bits").
    #[arg(long, requires = "refine_steps")]
    refine_act_ranges: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of the sensitivity analysis shared by `compile` and `analyze`. Optional so that
/// `compile` without a budget (no analysis) can refuse them instead of ignoring them.
#[derive(Args, Clone, Default)]
struct HawqArgs {
    /// Keep a layer at a bit width: `--pin LAYER=8` (repeatable).
    #[arg(long)]
    pin: Vec<String>,
    /// Keep the first and the last weight layer at 8 bits.
    #[arg(long)]
    pin_first_last: bool,
    /// Calibration loss for the Hessian [default: auto].
    #[arg(long, value_enum)]
    loss: Option<LossChoice>,
    /// Trace estimator: exact Gauss-Newton where it equals the Hessian, else Gauss-Newton plus
    /// Hutchinson probes of the remainder
    /// [default: auto].
    #[arg(long, value_enum)]
    trace_method: Option<TraceMethod>,
    /// Relative standard error at which iterative trace estimates stop [default: 0.001].
    #[arg(long)]
    tolerance: Option<f64>,
    /// Maximum iterations of iterative trace estimates [default: 100].
    #[arg(long)]
    max_iterations: Option<usize>,
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
            method: match self.trace_method.unwrap_or(TraceMethod::Auto) {
                TraceMethod::Auto => Method::Auto,
                TraceMethod::Hutchinson => Method::Hutchinson,
                TraceMethod::GaussNewton => Method::GaussNewton,
            },
            tolerance: self.tolerance.unwrap_or(1e-3),
            max_iterations: self.max_iterations.unwrap_or(100),
            ..TraceOptions::default()
        }
    }

    fn loss(&self) -> LossChoice {
        self.loss.unwrap_or(LossChoice::Auto)
    }

    /// The first option given, as its flag, for errors where none applies.
    fn first_given(&self) -> Option<&'static str> {
        [
            (!self.pin.is_empty(), "--pin"),
            (self.pin_first_last, "--pin-first-last"),
            (self.loss.is_some(), "--loss"),
            (self.trace_method.is_some(), "--trace-method"),
            (self.tolerance.is_some(), "--tolerance"),
            (self.max_iterations.is_some(), "--max-iterations"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
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
    /// Window stride for auc-recon with --eval [default: 128].
    #[arg(long, value_parser = parse_positive)]
    window_stride: Option<usize>,
    /// Frontier points to measure with --eval [default: 6].
    #[arg(long, value_parser = parse_positive)]
    points: Option<usize>,
    /// With --eval, also refine each measured configuration (distillation from the float model
    /// on the calibration data, straight-through rounding) for this many steps and measure it
    /// again (0: no refinement) [default: 0].
    #[arg(long)]
    refine_steps: Option<usize>,
    /// Wall-clock limit of each refinement in seconds (stopping early makes the result depend
    /// on the machine's speed) [default: 60].
    #[arg(long)]
    refine_seconds: Option<f64>,
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
    /// Window stride for auc-recon [default: 128].
    #[arg(long, value_parser = parse_positive)]
    window_stride: Option<usize>,
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
struct NewAppArgs {
    /// The board whose template to start from.
    #[arg(long, value_enum)]
    board: hawq_compiler::new_app::Board,
    /// The compiled model (`hawq compile -o`).
    #[arg(long)]
    model: PathBuf,
    /// The project's folder (new, or empty).
    dir: PathBuf,
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

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("must be a whole number of at least 1, not '{s}'")),
    }
}

/// The step between auc-recon windows when none is given (the one the autoencoder fixture's
/// accuracy is measured with).
const DEFAULT_WINDOW_STRIDE: usize = 128;

/// Whether two paths name the same existing file: compared canonically (symbolic links, `..`)
/// and, on unix, by device and inode (hard links).
fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ca), Ok(cb)) = (a.canonicalize(), b.canonicalize()) {
        if ca == cb {
            return true;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    false
}

/// Refuses an output that is one of the inputs: the write would destroy what it was made from.
fn refuse_overwriting_inputs(output: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    for (what, input) in inputs {
        if same_file(output, input) {
            bail!(
                "{}: the output is the {what} file {}; refusing to overwrite an input",
                output.display(),
                input.display()
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // One line like every other error: clap's first paragraph names the flags and the
            // reason (its usage and tips follow after a blank line).
            let text = e.render().to_string();
            let first: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
            eprintln!("{}", first.join(" "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Compile(a) => cmd_compile(&a),
        Command::Analyze(a) => cmd_analyze(&a),
        Command::Eval(a) => cmd_eval(&a),
        Command::Run(a) => cmd_run(&a),
        Command::Inspect(a) => cmd_inspect(&a),
        Command::NewApp(a) => cmd_new_app(&a),
        Command::Demo => cmd_demo(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of the output went away (`| head`): nothing left to say.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
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
    let mut inputs = vec![("model", a.model.as_path()), ("calibration data", a.calib.as_path())];
    if let Some(config) = &a.config {
        inputs.push(("bit configuration", config.as_path()));
    }
    refuse_overwriting_inputs(&a.output, &inputs)?;
    let c_name = match &a.emit_c {
        Some(dir) => {
            let stem = a.output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let name = hawq_compiler::emit_c::c_name(&stem).with_context(|| a.output.display().to_string())?;
            let (h, c) = hawq_compiler::emit_c::paths(dir, &name);
            refuse_overwriting_inputs(&h, &inputs)?;
            refuse_overwriting_inputs(&c, &inputs)?;
            if dir.exists() && !dir.is_dir() {
                bail!("{}: --emit-c needs a folder, this is a file", dir.display());
            }
            Some(name)
        }
        None => None,
    };
    let rust_module = match &a.emit_rust {
        Some(dir) => {
            let stem = a.output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let module =
                hawq_compiler::emit_rust::module_name(&stem).with_context(|| a.output.display().to_string())?;
            let (rs, hq) = hawq_compiler::emit_rust::paths(dir, &module);
            refuse_overwriting_inputs(&rs, &inputs)?;
            refuse_overwriting_inputs(&hq, &inputs)?;
            if dir.exists() && !dir.is_dir() {
                bail!("{}: --emit-rust needs a folder, this is a file", dir.display());
            }
            Some(module)
        }
        None => None,
    };
    let budget = Budget { weight_bytes: kib(a.budget_kib), avg_bits: a.avg_bits, arena_bytes: kib(a.max_arena_kib) };
    // Flags that would be ignored are refused before the (long) work starts.
    let model = a.model.display();
    if budget == Budget::default() {
        if a.report.is_some() {
            bail!("{model}: --report needs a budget (--budget-kib, --avg-bits or --max-arena-kib); for the analysis alone use `hawq analyze`");
        }
        if let Some(flag) = a.hawq.first_given() {
            bail!("{model}: {flag} steers the HAWQ-V2 allocation, which runs only with a budget (--budget-kib, --avg-bits or --max-arena-kib)");
        }
    } else {
        if a.config.is_some() {
            bail!("{model}: --config fixes the bits; it cannot be combined with a budget (use --pin)");
        }
        if a.bits.is_some() || a.act_bits.is_some() {
            bail!("{model}: --bits/--act-bits set uniform bit widths; with a budget HAWQ-V2 chooses them (use --pin)");
        }
        if a.budget_kib.is_some() && a.avg_bits.is_some() {
            bail!("{model}: give a weight budget in KiB (--budget-kib) or in average bits (--avg-bits), not both");
        }
    }
    let graph = import_compilable(&a.model)?;
    let calib = Dataset::load(&a.calib)?;
    a.transform.check_applies(&calib)?;
    let (graph, transform) = a.transform.apply(&a.model, graph)?;
    let prepared = prepare_with(graph, &calib, transform, !a.no_equalize)?;
    let (compiled, bits) = if budget == Budget::default() {
        let mut bits = BitConfig::uniform(&prepared.graph, a.bits.unwrap_or(8), a.act_bits.unwrap_or(8));
        if let Some(path) = &a.config {
            bits = BitsFile::load(path)?.apply(&prepared.graph, bits, path)?;
        }
        (compile(&prepared, &bits).with_context(|| model.to_string())?, bits)
    } else {
        let pins =
            resolve_pins(&prepared.graph, &a.hawq.pin, a.hawq.pin_first_last).with_context(|| model.to_string())?;
        // The loss is measured on the calibration labels: its errors concern that file.
        let m = measure(&prepared, &calib, a.hawq.loss(), &a.hawq.trace_options())
            .with_context(|| a.calib.display().to_string())?;
        let allocation = allocate(
            &prepared.graph,
            &m.sensitivity,
            &prepared.calibration,
            prepared.raw,
            &|n, b| prepared.weight_perturbation(n, b),
            budget,
            &pins,
        )
        .with_context(|| model.to_string())?;
        if allocation.partial_words {
            eprintln!(
                "{model}: the weight budget needs 4- or 2-bit rows that leave part of their last word empty; \
                 those layers multiply the empty lanes too (a larger budget leaves such widths out)"
            );
        }
        let (compiled, bits) =
            compile_allocation(&prepared, &allocation, budget.arena_bytes).with_context(|| model.to_string())?;
        if let Some(dir) = &a.report {
            let mut report = build_report(&a.model, &m, &allocation);
            report.chosen_bits = Some(allocation.layers.iter().map(|l| bits.weight_bits[l.node]).collect());
            report.write(dir)?;
            if !a.json {
                out!("report: {}", dir.join("report.md").display());
            }
        }
        (compiled, bits)
    };
    let refine_options = hawq_compiler::refine::RefineOptions {
        steps: a.refine_steps.unwrap_or(0),
        seconds: a.refine_seconds.unwrap_or(60.0),
        learn_activation_ranges: a.refine_act_ranges,
        ..Default::default()
    };
    let refinable = bits.below_8_bits();
    let compiled = if refine_options.steps > 0 && refinable {
        let loss = hawq_compiler::sensitivity::choose_loss(&prepared.graph, &calib.y, a.hawq.loss())
            .with_context(|| a.calib.display().to_string())?;
        let inputs = hawq_compiler::pipeline::real_inputs(&prepared.graph, &calib, prepared.transform)?;
        let refined = hawq_compiler::refine::refine(&prepared, &inputs, &bits, loss, &refine_options)
            .with_context(|| format!("{model}: refinement"))?;
        if refined.stopped_early {
            eprintln!(
                "{model}: the refinement stopped at {} of {} steps (--refine-seconds); the result depends on this machine's speed",
                refined.steps, refine_options.steps
            );
        }
        if !a.json {
            out!(
                "refinement: {} steps in {:.1} s, distillation loss on held-out calibration samples {:.4e} -> {:.4e}{}{}",
                refined.steps,
                refined.seconds,
                refined.loss_before,
                refined.loss_after,
                if refined.learned_ranges > 0 {
                    format!(", {} activation ranges below 8 bits learned", refined.learned_ranges)
                } else {
                    String::new()
                },
                if refined.kept_start { " (no gain: the unrefined model kept)" } else { "" }
            );
        }
        hawq_compiler::pipeline::compile_refined(&prepared, &refined, &bits).with_context(|| model.to_string())?
    } else {
        compiled
    };
    let fidelity = hawq_compiler::fidelity::measure(&prepared.graph, &compiled.blob, &calib, transform)
        .with_context(|| format!("{}: measuring the compiled model against the float model", a.model.display()))?;
    if let Some(why) = &fidelity.divergence {
        if !a.allow_low_fidelity {
            eprint!("{}", fidelity.render());
            // Below 8 bits, distillation from the float model often wins back what rounding lost
            // (ResNet-8 at 26,200 B, a third of its int8 weights: 80.0% → 84.5%).
            let refine = if refinable && refine_options.steps == 0 {
                "; --refine-steps 500 refines the weights below 8 bits against the float model"
            } else {
                ""
            };
            bail!(
                "{}: the quantized model does not compute what the float model computes: {why}{refine}. Nothing \
                 written (--allow-low-fidelity writes it anyway)",
                a.model.display()
            );
        }
        eprintln!("warning: {}: {why}; written anyway (--allow-low-fidelity)", a.model.display());
    }
    hawq_compiler::emit::write_atomic(&a.output, &compiled.blob)?;
    let c_files = match (&a.emit_c, &c_name) {
        (Some(dir), Some(name)) => {
            let origin = a.model.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            Some(hawq_compiler::emit_c::write(dir, name, &compiled.blob, &origin)?)
        }
        _ => None,
    };
    let rust_files = match (&a.emit_rust, &rust_module) {
        (Some(dir), Some(module)) => {
            let origin = a.model.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            Some(hawq_compiler::emit_rust::write(dir, module, &compiled.blob, &origin)?)
        }
        _ => None,
    };
    if a.json {
        out!(
            "{}",
            json!({
                "output": a.output,
                "c_header": c_files.as_ref().map(|f| &f.0),
                "c_source": c_files.as_ref().map(|f| &f.1),
                "rust_module": rust_files.as_ref().map(|f| &f.0),
                "file_bytes": compiled.blob.len(),
                "weight_bytes": compiled.weight_bytes,
                "arena_bytes": compiled.arena_bytes,
                "layers": compiled.layers,
                "equalized": prepared.equalized,
                "fidelity": fidelity,
            })
        );
    } else {
        out!("{} → {}", a.model.display(), a.output.display());
        if let Some((h, c)) = &c_files {
            out!("C: {}, {}", h.display(), c.display());
        }
        if let Some((rs, hq)) = &rust_files {
            out!("Rust: {} (embeds {})", rs.display(), hq.display());
        }
        for e in &prepared.equalized {
            out!(
                "equalized '{}': widest channel {:.0}× the median → {:.1}× ({} channels scaled, consumers compensated)",
                e.tensor,
                e.spread_before,
                e.spread_after,
                e.channels_scaled
            );
        }
        out!("{:<48} {:<17} {:>5} {:>5} {:>7} {:>9} {:>10}", "layer", "op", "w", "a", "params", "bytes", "MACs");
        for l in &compiled.layers {
            let wb = l.weight_bits.map_or("-".to_string(), |b| b.to_string());
            let name = shorten(&l.name, 48);
            out!(
                "{name:<48} {:<17} {wb:>5} {:>5} {:>7} {:>9} {:>10}",
                l.op,
                format!("{}→{}", l.in_bits, l.out_bits),
                l.params,
                l.weight_bytes,
                l.macs
            );
        }
        out!(
            "weights {} bytes, arena {} bytes (kernel scratch included; RAM with the runtime's stack ≤ {} bytes \
             on the Cortex-M4: {} bytes), model file {} bytes",
            compiled.weight_bytes,
            compiled.arena_bytes,
            hawq_runtime::STACK_BYTES_CORTEX_M4,
            compiled.arena_bytes + hawq_runtime::STACK_BYTES_CORTEX_M4,
            compiled.blob.len()
        );
        print!("{}", fidelity.render());
    }
    Ok(())
}

fn is_hq(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "hq")
}

/// Imports a model to compile and checks it against the model format's limits (16-bit tensor
/// indices, ...) before the calibration data are even read: a model the format cannot hold fails
/// at once, naming the file, rather than after calibration.
fn import_compilable(path: &Path) -> Result<hawq_compiler::ir::Graph> {
    let graph = import(path)?;
    hawq_compiler::pipeline::check_format_limits(&graph).with_context(|| path.display().to_string())?;
    Ok(graph)
}

fn read_blob(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))
}

fn load_model<'a>(path: &Path, blob: &'a [u8]) -> Result<hawq_runtime::Model<'a>> {
    hawq_runtime::Model::from_bytes(blob).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn cmd_eval(a: &EvalArgs) -> Result<()> {
    if is_hq(&a.model) && a.transform.given() {
        bail!(
            "{}: --input-scale/--input-offset apply to an ONNX model; a compiled model has its input transform \
             folded in",
            a.model.display()
        );
    }
    let data = Dataset::load(&a.data)?;
    let blob;
    let graph;
    let (runner, sizes) = if is_hq(&a.model) {
        blob = read_blob(&a.model)?;
        let model = load_model(&a.model, &blob)?;
        let sizes = (model.weight_bytes(), model.arena_bytes());
        (Runner::Quantized { model }, Some(sizes))
    } else {
        let transform;
        (graph, transform) = a.transform.apply(&a.model, import(&a.model)?)?;
        (Runner::Float { graph: &graph, transform }, None)
    };
    let metric = a.metric.unwrap_or_else(|| default_metric(&runner, &data));
    refuse_window_stride(&a.model, metric, a.window_stride)?;
    let bar = progress_bar(data.len(), "evaluating");
    let value = evaluate(&runner, &data, metric, a.window_stride.unwrap_or(DEFAULT_WINDOW_STRIDE), &bar)?;
    bar.finish_and_clear();
    if a.json {
        let mut obj = json!({ "metric": metric.name(), "value": value, "samples": data.len() });
        if let Some((w, ar)) = sizes {
            obj["weight_bytes"] = json!(w);
            obj["arena_bytes"] = json!(ar);
        }
        out!("{obj}");
    } else {
        print!("{} {}: {value:.4} on {} samples", a.model.display(), metric.name(), data.len());
        if let Some((w, ar)) = sizes {
            print!(" (weights {w} bytes, arena {ar} bytes)");
        }
        out!();
    }
    Ok(())
}

/// `--window-stride` cuts auc-recon windows; with any other metric it would be ignored.
fn refuse_window_stride(model: &Path, metric: Metric, stride: Option<usize>) -> Result<()> {
    if stride.is_some() && metric != Metric::AucRecon {
        bail!("{}: --window-stride applies to auc-recon only; the metric is {}", model.display(), metric.name());
    }
    Ok(())
}

fn cmd_run(a: &RunArgs) -> Result<()> {
    use hawq_compiler::data::{read_npy_file, NpyArray};
    use hawq_runtime::RawInput;
    refuse_overwriting_inputs(&a.output, &[("model", a.model.as_path()), ("input", a.input.as_path())])?;
    let blob = read_blob(&a.model)?;
    let model = load_model(&a.model, &blob)?;
    let n_in = model.input().elements();
    let input = read_npy_file(&a.input)?;
    // The model takes the raw dtype it was calibrated on; any other would be cast silently.
    let raw: Vec<f32> = match (model.raw_input(), &input) {
        (RawInput::U8, NpyArray::U8(x)) => x.iter().map(|&v| v as f32).collect(),
        (RawInput::I8, NpyArray::I8(x)) => x.iter().map(|&v| v as f32).collect(),
        (RawInput::F32, NpyArray::F32(x)) => x.iter().copied().collect(),
        (kind, other) => bail!(
            "{}: holds {} but {} takes {} inputs (the dtype it was calibrated on)",
            a.input.display(),
            other.dtype_name(),
            a.model.display(),
            match kind {
                RawInput::U8 => "uint8",
                RawInput::I8 => "int8",
                RawInput::F32 => "float32",
            }
        ),
    };
    if raw.is_empty() || !raw.len().is_multiple_of(n_in) {
        bail!("{}: {} values is not a whole number of inputs of {n_in} values", a.input.display(), raw.len());
    }
    if let Some(k) = raw.iter().position(|v| !v.is_finite()) {
        bail!("{}: sample {} holds NaN or infinity; inputs must be finite", a.input.display(), k / n_in);
    }
    let runner = Runner::Quantized { model };
    let n_out = runner.output_len();
    let mut out = Vec::with_capacity(raw.len() / n_in * n_out);
    for (i, sample) in raw.chunks(n_in).enumerate() {
        out.extend(runner.infer(sample).with_context(|| format!("{}: sample {i}", a.input.display()))?);
    }
    let y = ndarray::Array2::from_shape_vec((raw.len() / n_in, n_out), out)?;
    let mut bytes = Vec::new();
    ndarray_npy::WriteNpyExt::write_npy(&y, &mut bytes)
        .map_err(|e| anyhow!("{}: cannot encode the outputs ({e})", a.output.display()))?;
    hawq_compiler::emit::write_atomic(&a.output, &bytes)?;
    Ok(())
}

fn cmd_inspect(a: &InspectArgs) -> Result<()> {
    use hawq_runtime::format::Op;
    let blob = read_blob(&a.model)?;
    let model = load_model(&a.model, &blob)?;
    let describe = |i: u16| match model.tensor(i) {
        Some(t) => {
            json!({ "index": i, "shape": t.shape, "dtype": format!("{:?}", t.dtype), "offset": t.offset, "bytes": t.bytes() })
        }
        // The loader proved every op's tensors exist; kept total all the same.
        None => json!({ "index": i }),
    };
    let mut layers = Vec::new();
    let mut scratch_regions = Vec::new();
    for (i, op) in model.ops().enumerate() {
        let op = op.map_err(|e| anyhow!("{}: {e}", a.model.display()))?;
        let (bits, bytes) = match &op {
            Op::Conv2d(p) | Op::DepthwiseConv2d(p) => (Some(p.weight_bits), p.weights.len()),
            Op::FullyConnected(p) => (Some(p.weight_bits), p.weights.len()),
            _ => (None, 0),
        };
        let scratch = op_scratch(&model, &op);
        if let Some((offset, size)) = scratch {
            scratch_regions.push((i, offset, size));
        }
        // The Cortex-M4 form of a 4- or 2-bit layer's rows (`high_rows`, `offset_rows`).
        let rows = hawq_runtime::kernels::linked::row_forms(&op, model.tensors()).unwrap_or(0);
        let rows = hawq_runtime::kernels::linked::names(rows).next();
        layers.push(json!({
            "index": i,
            "op": op.name(),
            "weight_bits": bits,
            "rows": rows,
            "weight_bytes": bytes,
            "inputs": op.inputs().iter().map(|&t| describe(t)).collect::<Vec<_>>(),
            "output": describe(op.output()),
            "scratch": scratch.map(|(offset, bytes)| json!({ "offset": offset, "bytes": bytes })),
        }));
    }
    let scratch_max = scratch_regions.iter().map(|r| r.2).max().unwrap_or(0);
    let kernels = hawq_runtime::kernels::linked::required(&model).map_err(|e| anyhow!("{}: {e}", a.model.display()))?;
    let kernel_names: Vec<&str> = hawq_runtime::kernels::linked::names(kernels).collect();
    if a.json {
        out!(
            "{}",
            json!({
                "file_bytes": blob.len(),
                "weight_bytes": model.weight_bytes(),
                "arena_bytes": model.arena_bytes(),
                "largest_scratch_bytes": scratch_max,
                "runtime_stack_bytes": hawq_runtime::STACK_BYTES_CORTEX_M4,
                "ram_bytes": model.arena_bytes() + hawq_runtime::STACK_BYTES_CORTEX_M4,
                "raw_input": format!("{:?}", model.raw_input()),
                "kernels": kernels,
                "kernel_names": kernel_names,
                "layers": layers,
                "tensors": (0..model.tensors().len()).map(|i| describe(i as u16)).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    out!(
        "{}: {} bytes, weights {} bytes, arena {} bytes (kernel scratch included, largest {} bytes), input {:?} {:?}",
        a.model.display(),
        blob.len(),
        model.weight_bytes(),
        model.arena_bytes(),
        scratch_max,
        model.raw_input(),
        model.input().shape
    );
    out!(
        "RAM: arena {} + the runtime's stack ≤ {} (measured on the Cortex-M4) = {} bytes",
        model.arena_bytes(),
        hawq_runtime::STACK_BYTES_CORTEX_M4,
        model.arena_bytes() + hawq_runtime::STACK_BYTES_CORTEX_M4
    );
    out!("kernels: {} (Interpreter::<{kernels:#x}>::with_kernels links only these)", kernel_names.join(", "));
    out!("{:>3} {:<17} {:>4} {:>8} {:<6}  tensors (index dtype shape @offset)", "#", "op", "w", "bytes", "rows");
    for l in &layers {
        let t = |v: &serde_json::Value| {
            // The shape as `[1, 32, 32, 16]` (its JSON text), not the JSON value's Debug form.
            format!("t{} {} {} @{}", v["index"], v["dtype"].as_str().unwrap_or(""), v["shape"], v["offset"])
        };
        let ins: Vec<String> = l["inputs"].as_array().map(|a| a.iter().map(t).collect()).unwrap_or_default();
        let scratch = match &l["scratch"] {
            serde_json::Value::Null => String::new(),
            v => format!(", scratch @{} +{}", v["offset"], v["bytes"]),
        };
        out!(
            "{:>3} {:<17} {:>4} {:>8} {:<6}  {} → {}{scratch}",
            l["index"].as_u64().unwrap_or(0),
            l["op"].as_str().unwrap_or(""),
            l["weight_bits"].as_u64().map_or("-".into(), |b| b.to_string()),
            l["weight_bytes"].as_u64().unwrap_or(0),
            l["rows"].as_str().map_or("-", |r| r.trim_end_matches("_rows")),
            ins.join(" + "),
            t(&l["output"])
        );
    }
    out!("arena map ({} bytes, one column = {} bytes):", model.arena_bytes(), model.arena_bytes().div_ceil(64).max(1));
    let col = model.arena_bytes().div_ceil(64).max(1);
    for (i, t) in model.tensors().iter().enumerate() {
        let (start, end) = (t.offset as usize / col, (t.offset as usize + t.bytes()).div_ceil(col));
        let bar: String = (0..64).map(|c| if c >= start && c < end { '#' } else { '.' }).collect();
        out!("  t{i:<3} {bar} {:>7} +{}", t.offset, t.bytes());
    }
    for (i, offset, size) in scratch_regions {
        let (start, end) = (offset / col, (offset + size).div_ceil(col));
        let bar: String = (0..64).map(|c| if c >= start && c < end { 's' } else { '.' }).collect();
        out!("  s{i:<3} {bar} {offset:>7} +{size}  (scratch of op {i})");
    }
    Ok(())
}

/// The arena offset and size of an op's kernel scratch (conv, depthwise, fully connected).
fn op_scratch(model: &hawq_runtime::Model<'_>, op: &hawq_runtime::format::Op<'_>) -> Option<(usize, usize)> {
    use hawq_runtime::format::Op;
    use hawq_runtime::kernels;
    use hawq_runtime::quant::Bits;
    let bits = |b: u8| Bits::from_u8(b).unwrap_or(Bits::B8);
    let act = |t: &hawq_runtime::format::TensorDesc| t.dtype.bits().unwrap_or(Bits::B8);
    let (offset, size) = match op {
        Op::Conv2d(p) | Op::DepthwiseConv2d(p) => {
            let (i, o) = (model.tensor(p.input)?, model.tensor(p.output)?);
            let g = kernels::Window {
                in_h: i.shape[1] as usize,
                in_w: i.shape[2] as usize,
                in_c: i.shape[3] as usize,
                out_h: o.shape[1] as usize,
                out_w: o.shape[2] as usize,
                out_c: o.shape[3] as usize,
                kernel_h: p.kernel_h as usize,
                kernel_w: p.kernel_w as usize,
                stride_h: p.stride_h as usize,
                stride_w: p.stride_w as usize,
                pad_top: p.pad_top as usize,
                pad_left: p.pad_left as usize,
            };
            let size = if matches!(op, Op::Conv2d(_)) {
                kernels::conv2d_scratch_bytes(&g, bits(p.weight_bits), act(&i))
            } else {
                kernels::depthwise_conv2d_scratch_bytes(&g, bits(p.weight_bits), act(&i))
            };
            (p.scratch, size)
        }
        Op::FullyConnected(p) => {
            let (i, o) = (model.tensor(p.input)?, model.tensor(p.output)?);
            (
                p.scratch,
                kernels::fully_connected_scratch_bytes(i.elements(), o.elements(), bits(p.weight_bits), act(&i)),
            )
        }
        _ => return None,
    };
    (size > 0).then_some((offset as usize, size))
}

fn cmd_new_app(a: &NewAppArgs) -> Result<()> {
    let blob = read_blob(&a.model)?;
    let files = hawq_compiler::new_app::write(a.board, &blob, &a.model, &a.dir)?;
    out!("wrote {} files into {}", files.len(), a.dir.display());
    out!(
        "build and flash: cd {} && cargo run --release (README.md: wiring, runner, the sensor's scale)",
        a.dir.display()
    );
    Ok(())
}

/// The bundled example: the whole HAWQ-V2 pipeline on examples/digits, no arguments needed.
fn cmd_demo() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits");
    let out = Path::new("target/demo");
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let transform = TransformArgs { input_scale: vec![0.0625], input_offset: Vec::new() };
    let hawq = HawqArgs::default();
    out!("== examples/digits: float model");
    cmd_eval(&EvalArgs {
        model: dir.join("model.onnx"),
        data: dir.join("eval.npz"),
        transform: transform.clone(),
        metric: Some(Metric::Top1),
        window_stride: None,
        json: false,
    })?;
    out!("\n== Hessian sensitivity, Pareto frontier, measured frontier points");
    cmd_analyze(&AnalyzeArgs {
        model: dir.join("model.onnx"),
        calib: dir.join("calib.npz"),
        transform: transform.clone(),
        hawq: hawq.clone(),
        eval: Some(dir.join("eval.npz")),
        metric: Some(Metric::Top1),
        window_stride: None,
        points: None,
        refine_steps: None,
        refine_seconds: None,
        report: Some(out.join("report")),
        json: false,
    })?;
    // The arena budget is under the 8-bit arena (1,868 bytes with the kernels' scratch), so HAWQ
    // must put some activations at 4 bits.
    out!("\n== compile under a 1.5 KiB weight budget and a 1.6 KiB arena budget");
    let model_out = out.join("digits.hq");
    cmd_compile(&CompileArgs {
        model: dir.join("model.onnx"),
        calib: dir.join("calib.npz"),
        transform,
        bits: None,
        act_bits: None,
        config: None,
        hawq,
        budget_kib: Some(1.5),
        avg_bits: None,
        max_arena_kib: Some(1.6),
        report: None,
        output: model_out.clone(),
        emit_c: None,
        emit_rust: None,
        allow_low_fidelity: false,
        no_equalize: false,
        refine_steps: None,
        refine_seconds: None,
        refine_act_ranges: false,
        json: false,
    })?;
    cmd_eval(&EvalArgs {
        model: model_out,
        data: dir.join("eval.npz"),
        transform: TransformArgs::default(),
        metric: Some(Metric::Top1),
        window_stride: None,
        json: false,
    })?;
    out!("\nreport: {}", out.join("report/report.md").display());
    Ok(())
}

fn build_report(model: &Path, m: &hawq_compiler::sensitivity::Measured, a: &Allocation) -> Report {
    Report {
        model: model.display().to_string(),
        loss: format!("{:?}", m.loss),
        trace_method: format!(
            "{:?} over {} samples ({}{})",
            m.traces.estimator,
            m.traces.samples,
            if m.traces.exact_hessian { "exact Hessian diagonal blocks" } else { "Gauss–Newton approximation" },
            m.traces.not_piecewise_linear.as_ref().map_or(String::new(), |why| format!("; {why}"))
        ),
        trace_seconds: m.traces.seconds,
        layers: a.layers.clone(),
        activations: a.activations.clone(),
        frontier: a.frontier.iter().map(|f| (f.size, f.omega)).collect(),
        chosen: a.chosen,
        chosen_bits: a.chosen.map(|c| a.frontier[c].bits.clone()),
        measured: Vec::new(),
        refinements: Vec::new(),
        omega_against_refined: None,
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
    let model = a.model.display();
    if a.eval.is_none() {
        for (given, flag) in [
            (a.metric.is_some(), "--metric"),
            (a.window_stride.is_some(), "--window-stride"),
            (a.points.is_some(), "--points"),
            (a.refine_steps.is_some(), "--refine-steps"),
            (a.refine_seconds.is_some(), "--refine-seconds"),
        ] {
            if given {
                bail!("{model}: {flag} applies to the measurements of --eval, which is not given");
            }
        }
    }
    if let Some(metric) = a.metric {
        refuse_window_stride(&a.model, metric, a.window_stride)?;
    }
    let graph = import_compilable(&a.model)?;
    let calib = Dataset::load(&a.calib)?;
    a.transform.check_applies(&calib)?;
    let (graph, transform) = a.transform.apply(&a.model, graph)?;
    let prepared = prepare(graph, &calib, transform)?;
    let pins = resolve_pins(&prepared.graph, &a.hawq.pin, a.hawq.pin_first_last).with_context(|| model.to_string())?;
    let m = measure(&prepared, &calib, a.hawq.loss(), &a.hawq.trace_options())
        .with_context(|| a.calib.display().to_string())?;
    let allocation = allocate(
        &prepared.graph,
        &m.sensitivity,
        &prepared.calibration,
        prepared.raw,
        &|n, b| prepared.weight_perturbation(n, b),
        Budget::default(),
        &pins,
    )
    .with_context(|| model.to_string())?;
    let mut report = build_report(&a.model, &m, &allocation);
    if let Some(eval_path) = &a.eval {
        let eval = Dataset::load(eval_path)?;
        let mut configs: Vec<(String, BitConfig, Option<f64>)> = Vec::new();
        for w in [8, 4] {
            configs.push((format!("uniform w{w}"), BitConfig::uniform(&prepared.graph, w, 8), None));
        }
        for i in spread(allocation.frontier.len(), a.points.unwrap_or(6)) {
            let bits = hawq_compiler::allocate::apply_weights(
                &allocation.layers,
                &allocation.frontier[i],
                BitConfig::uniform(&prepared.graph, 8, 8),
            );
            configs.push((format!("hawq #{i}"), bits, Some(allocation.frontier[i].omega)));
        }
        let refine_options = hawq_compiler::refine::RefineOptions {
            steps: a.refine_steps.unwrap_or(0),
            seconds: a.refine_seconds.unwrap_or(60.0),
            ..Default::default()
        };
        let calib_inputs = if refine_options.steps > 0 {
            hawq_compiler::pipeline::real_inputs(&prepared.graph, &calib, prepared.transform)?
        } else {
            Vec::new()
        };
        for (label, bits, omega) in configs {
            let measure_compiled = |compiled: &hawq_compiler::emit::Compiled| -> Result<(Metric, f64)> {
                let quantized = hawq_runtime::Model::from_bytes(&compiled.blob).map_err(|e| {
                    anyhow!("{model}: {label}: internal error: the runtime rejects the compiled model ({e})")
                })?;
                let runner = Runner::Quantized { model: quantized };
                let metric = a.metric.unwrap_or_else(|| default_metric(&runner, &eval));
                refuse_window_stride(&a.model, metric, a.window_stride)?;
                let bar = progress_bar(eval.len(), &label);
                let value = evaluate(&runner, &eval, metric, a.window_stride.unwrap_or(DEFAULT_WINDOW_STRIDE), &bar)?;
                bar.finish_and_clear();
                Ok((metric, value))
            };
            let compiled = compile(&prepared, &bits).with_context(|| format!("{model}: {label}"))?;
            let (metric, mut value) = measure_compiled(&compiled)?;
            let mut before_refinement = None;
            if refine_options.steps > 0 && bits.below_8_bits() {
                let refined = hawq_compiler::refine::refine(&prepared, &calib_inputs, &bits, m.loss, &refine_options)
                    .with_context(|| format!("{model}: {label}: refinement"))?;
                if refined.stopped_early {
                    eprintln!(
                        "{model}: {label}: the refinement stopped at {} of {} steps (--refine-seconds); the result depends on this machine's speed",
                        refined.steps, refine_options.steps
                    );
                }
                let compiled = hawq_compiler::pipeline::compile_refined(&prepared, &refined, &bits)
                    .with_context(|| format!("{model}: {label}: refined"))?;
                before_refinement = Some(value);
                value = measure_compiled(&compiled)?.1;
                report.refinements.push(hawq_compiler::report::RefinementReport {
                    label: label.clone(),
                    steps: refined.steps,
                    seconds: refined.seconds,
                    loss_before: refined.loss_before,
                    loss_after: refined.loss_after,
                    kept_start: refined.kept_start,
                    omega,
                });
            }
            report.measured.push(Measured {
                label,
                weight_bytes: compiled.weight_bytes,
                arena_bytes: compiled.arena_bytes,
                metric: metric.name().to_string(),
                value,
                before_refinement,
                bits: allocation.layers.iter().map(|l| bits.weight_bits[l.node]).collect(),
            });
        }
    }
    report.omega_against_refined = hawq_compiler::report::OmegaAgainstRefined::of(&report.refinements);
    if let Some(dir) = &a.report {
        report.write(dir)?;
    }
    if a.json {
        out!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    out!(
        "{}: loss {}, Hessian traces and Ω by {} in {:.2} s",
        a.model.display(),
        report.loss,
        report.trace_method,
        report.trace_seconds
    );
    out!(
        "{:>3} {:<40} {:>7} {:>11} {:>7} {:>10} {:>10} {:>10}",
        "#",
        "layer",
        "params",
        "Tr(H)/n",
        "±rel",
        "Ω(2)",
        "Ω(4)",
        "Ω(8)"
    );
    for (k, l) in report.layers.iter().enumerate() {
        let rel = if l.trace.average != 0.0 { l.trace.std_error / l.trace.average.abs() } else { 0.0 };
        out!(
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
    out!(
        "frontier: {} non-dominated configurations, {}..{} weight bytes",
        report.frontier.len(),
        report.frontier.first().map_or(0, |p| p.0),
        report.frontier.last().map_or(0, |p| p.0)
    );
    for m in &report.measured {
        let before = m.before_refinement.map_or_else(String::new, |v| format!(" (before refinement {v:.4})"));
        out!(
            "  {:<12} {} {:.4}{before}  weights {:>7} B  arena {:>7} B  bits {}",
            m.label,
            m.metric,
            m.value,
            m.weight_bytes,
            m.arena_bytes,
            hawq_compiler::report::bits_string(&m.bits)
        );
    }
    for r in &report.refinements {
        out!(
            "  refinement of {}: {} steps in {:.1} s, distillation loss {:.4e} -> {:.4e}{}",
            r.label,
            r.steps,
            r.seconds,
            r.loss_before,
            r.loss_after,
            if r.kept_start { " (no gain: the unrefined model kept)" } else { "" }
        );
    }
    if let Some(c) = &report.omega_against_refined {
        out!(
            "  ΣΩ against the held-out distillation loss over {} refined frontier points: Spearman ρ {:.2} before refinement, {:.2} after",
            c.points,
            c.rho_before,
            c.rho_after
        );
    }
    if let Some(dir) = &a.report {
        out!("report: {}", dir.join("report.md").display());
    }
    Ok(())
}
