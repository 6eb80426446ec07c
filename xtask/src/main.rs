//! `cargo xtask`: the project's tasks that drive the QEMU firmware of `targets/`.
//!
//! ```text
//! cargo xtask bench [--json] [--models a,b] [--targets t,u] [--configs int8,mixed,hawq] [--kernels k,l] [--inputs N] [--layers] [--keep DIR] [--opt-level 3|s]
//! cargo xtask run --target T --model FILE.hq [--data FILE.npz] [--inputs N] [--opt-level 3|s]
//! cargo xtask app [--model FILE.hq] [--opt-level 3|s]
//! cargo xtask boards [--model FILE.hq --data FILE.npz]
//! cargo xtask profile --target T --model FILE.hq [--data FILE.npz] [--layer L] [--top N] [--function NAME] [--opt-level 3|s]
//! ```
//!
//! `bench` compiles each model (the fixtures of ../shared/fixtures by default; `digits` is the
//! bundled example) in each configuration, runs a batch of evaluation inputs on each QEMU target
//! and prints instructions per inference (deterministic, QEMU `-icount`), flash (code + model,
//! from the ELF's sections), arena bytes and whether every output byte equals the host runtime's.
//! `--kernels` builds each firmware with the target's best kernels (`best`, the default), the
//! scalar reference (`scalar`) and/or the portable kernels (`portable`); the `kernels` column is
//! the path the firmware reports it ran. On the Cortex-M4 the resnet8 and dscnn int8 rows also
//! show the ratio to TFLM + CMSIS-NN's instructions (../shared/BASELINES.md). The AArch64
//! kernels are counted on the bare-metal `aarch64-virt` (NEON) and `aarch64-virt-dotprod` (SDOT)
//! targets: one firmware crate built without and with `-C target-feature=+dotprod`.
//! `--opt-level s` builds the firmware for size (the crates' profiles say `opt-level = 3`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use hawq_e2e::qemu::{self, compile_cases, Config, Kernels, Measurement, ModelSpec, OptLevel, Target};
use serde_json::json;

mod profile;

const USAGE: &str = "\
usage:
  cargo xtask bench [--json] [--models a,b] [--targets t,u] [--configs int8,mixed,hawq] [--kernels k,l] [--inputs N] [--layers] [--keep DIR] [--opt-level 3|s]
      models: fixture folder names of ../shared/fixtures (default: all of them), or `digits`
      targets: cortex-m4, cortex-m0, cortex-m3, riscv32, aarch64 (Linux, qemu-user: no counts),
               aarch64-virt (bare metal, NEON), aarch64-virt-dotprod (the same with SDOT);
               default: all
      configs: int8 (uniform), mixed (every packing: 2/4/8-bit weights, 4/8-bit activations),
               hawq (HAWQ-V2's weight bits at 0.55x the int8 weight bytes); default: all
      kernels: best (the target's best path: dsp on the Cortex-M4), scalar (the reference),
               portable (no instruction-set extension); default: best
      opt-level: the firmware's rustc opt-level, 3 (fastest, the default) or s (smallest code)
      keep: write each compiled model to DIR/<model>-<config>.hq (for `profile` and `run`)
  cargo xtask run --target T --model FILE.hq [--data FILE.npz] [--inputs N] [--opt-level 3|s]
      builds T's firmware around a compiled model, runs it under QEMU, prints its report and
      compares its outputs with the host runtime's
  cargo xtask app [--model FILE.hq] [--opt-level 3|s]
      builds the minimal Cortex-M4 app of examples/rust-app around a model (default:
      examples/digits at 8 bits) and prints its code and RAM: what a deployment costs, without
      the QEMU harness's reporting
  cargo xtask boards [--model FILE.hq --data FILE.npz]
      builds the real boards' firmware (targets/boards: nRF52840-DK, Raspberry Pi Pico,
      ESP32-C3) around a model (default: examples/digits at 8 bits); flash them with probe-rs
  cargo xtask profile --target T --model FILE.hq [--data FILE.npz] [--layer L] [--top N] [--function NAME] [--opt-level 3|s]
      runs one inference (the first input of --data, else zeros) under QEMU with every
      instruction logged and prints where they go: instructions per function (the N largest,
      default 25), and per address in the functions whose name contains NAME; with --layer,
      only op L's (numbered as bench --layers numbers them); the whole inference checked against
      the firmware's own count. Slow: 30 s for a tiny model, 70 s for resnet8";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench(&args[1..]),
        Some("run") => run(&args[1..]),
        Some("boards") => boards(&args[1..]),
        Some("app") => app(&args[1..]),
        Some("profile") => profile(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow!("unknown task '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A minimal `--flag [value]` parser.
struct Args {
    rest: Vec<String>,
}

impl Args {
    fn new(args: &[String]) -> Args {
        Args { rest: args.to_vec() }
    }

    fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|a| a != name);
        self.rest.len() != before
    }

    fn value(&mut self, name: &str) -> Result<Option<String>> {
        let Some(i) = self.rest.iter().position(|a| a == name) else {
            return Ok(None);
        };
        if i + 1 >= self.rest.len() {
            bail!("{name} needs a value");
        }
        let v = self.rest.remove(i + 1);
        self.rest.remove(i);
        Ok(Some(v))
    }

    fn finish(self) -> Result<()> {
        if let Some(a) = self.rest.first() {
            bail!("unexpected argument '{a}'\n{USAGE}");
        }
        Ok(())
    }
}

fn list<T>(value: Option<String>, all: Vec<T>, parse: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    match value {
        None => Ok(all),
        Some(v) => v.split(',').filter(|s| !s.is_empty()).map(|s| parse(s.trim())).collect(),
    }
}

fn fixtures_root() -> Result<PathBuf> {
    let dir = std::env::var_os("HAWQ_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| qemu::repo_root().join("../shared/fixtures"));
    if !dir.join("README.md").is_file() {
        bail!(
            "the fixtures are not at {} (set HAWQ_FIXTURES, or bench the bundled example with --models digits)",
            dir.display()
        );
    }
    Ok(dir)
}

fn model_spec(name: &str) -> Result<ModelSpec> {
    if name == "digits" {
        return Ok(ModelSpec::digits());
    }
    let f = hawq_e2e::FIXTURES
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| anyhow!("unknown model '{name}' (a fixture folder name, or `digits`)"))?;
    Ok(ModelSpec::fixture(f, &fixtures_root()?))
}

/// Instructions per inference of TFLM + CMSIS-NN on QEMU's Cortex-M4 (../shared/BASELINES.md).
const TFLM_CMSIS_NN_M4: [(&str, u64); 2] = [("resnet8-cifar10", 29_861_846), ("dscnn-kws", 7_697_262)];

fn opt_level(a: &mut Args) -> Result<OptLevel> {
    match a.value("--opt-level")? {
        None => Ok(OptLevel::Speed),
        Some(v) => OptLevel::from_name(&v).ok_or_else(|| anyhow!("unknown --opt-level '{v}' (3 or s)")),
    }
}

fn kernels_of(name: &str) -> Result<Kernels> {
    match name {
        "best" | "auto" => Ok(Kernels::Auto),
        "scalar" => Ok(Kernels::Scalar),
        "portable" => Ok(Kernels::Portable),
        _ => bail!("unknown kernels '{name}' (best, scalar, portable)"),
    }
}

/// One row of the bench.
struct Row {
    model: String,
    config: Config,
    arena_bytes: usize,
    /// Multiply-accumulates of each op (convolutions and fully connected layers), by op index.
    macs: Vec<Option<u64>>,
    m: Measurement,
}

/// The multiply-accumulates of each op of a compiled model: output elements times each one's
/// receptive field for convolutions (a channel's own for depthwise ones), inputs times outputs
/// for fully connected layers; `None` for the other ops (and for a blob that does not load).
fn layer_macs(blob: &[u8]) -> Vec<Option<u64>> {
    use hawq_runtime::format::Op;
    let Ok(model) = hawq_runtime::Model::from_bytes(blob) else {
        return Vec::new();
    };
    let tensors = model.tensors();
    let elements = |i: u16| tensors.get(i as usize).map_or(0, |t| t.elements() as u64);
    let channels = |i: u16| tensors.get(i as usize).map_or(0, |t| t.shape[3] as u64);
    model
        .ops()
        .map(|op| match op.ok()? {
            Op::Conv2d(p) => Some(elements(p.output) * p.kernel_h as u64 * p.kernel_w as u64 * channels(p.input)),
            Op::DepthwiseConv2d(p) => Some(elements(p.output) * p.kernel_h as u64 * p.kernel_w as u64),
            Op::FullyConnected(p) => Some(elements(p.input) * elements(p.output)),
            _ => None,
        })
        .collect()
}

fn arena_of(blob: &[u8]) -> usize {
    blob.get(12..16).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

fn bench(args: &[String]) -> Result<()> {
    let mut a = Args::new(args);
    let as_json = a.flag("--json");
    let layers = a.flag("--layers");
    let models = list(a.value("--models")?, hawq_e2e::FIXTURES.iter().map(|f| f.name.to_string()).collect(), |s| {
        Ok(s.to_string())
    })?;
    let targets = list(a.value("--targets")?, Target::ALL.to_vec(), |s| {
        Target::from_name(s).ok_or_else(|| anyhow!("unknown target '{s}'"))
    })?;
    let configs = list(a.value("--configs")?, Config::BENCH.to_vec(), |s| {
        Config::BENCH.into_iter().find(|c| c.name() == s).ok_or_else(|| anyhow!("unknown configuration '{s}'"))
    })?;
    let kernels = list(a.value("--kernels")?, vec![Kernels::Auto], kernels_of)?;
    let n: usize = a.value("--inputs")?.map_or(Ok(4), |v| v.parse()).context("--inputs")?;
    let keep = a.value("--keep")?.map(PathBuf::from);
    let opt = opt_level(&mut a)?;
    a.finish()?;
    qemu::check_tools(&targets)?;
    if let Some(dir) = &keep {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }

    let mut rows = Vec::new();
    for name in &models {
        let spec = model_spec(name)?;
        let t0 = Instant::now();
        let cases = compile_cases(&spec, &configs, n)?;
        eprintln!("{name}: compiled {} configuration(s) in {:.1} s", cases.len(), t0.elapsed().as_secs_f64());
        for case in &cases {
            if let Some(dir) = &keep {
                // What `cargo xtask profile --model` and `run --model` take.
                let path = dir.join(format!("{name}-{}.hq", case.config));
                std::fs::write(&path, &case.blob).with_context(|| format!("{}: cannot write", path.display()))?;
            }
            for (&target, &k) in targets.iter().flat_map(|t| kernels.iter().map(move |k| (t, k))) {
                let t0 = Instant::now();
                let m = qemu::measure_with(target, k, opt, &case.blob, &case.inputs, &case.expected)
                    .with_context(|| format!("{name} {} on {target} ({k:?} kernels)", case.config))?;
                eprintln!(
                    "  {name} {} {target} {}: {} ({:.1} s)",
                    case.config,
                    m.kernels.as_deref().unwrap_or("?"),
                    match (&m.fits, m.match_host()) {
                        (Err(_), _) => "does not fit".to_string(),
                        (Ok(()), true) => "matches the host".to_string(),
                        (Ok(()), false) => format!("DIFFERS from the host on inputs {:?}", m.mismatches),
                    },
                    t0.elapsed().as_secs_f64()
                );
                rows.push(Row {
                    model: name.clone(),
                    config: case.config,
                    arena_bytes: arena_of(&case.blob),
                    macs: layer_macs(&case.blob),
                    m,
                });
            }
        }
    }
    if as_json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let mut v = row_json(r, layers);
                v["opt_level"] = json!(opt.name());
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        if opt != OptLevel::Speed {
            println!("Firmware built with opt-level {} (the crates' profiles say 3).\n", opt.name());
        }
        print_table(&rows, layers);
    }
    if rows.iter().any(|r| r.m.fits.is_ok() && !r.m.match_host()) {
        bail!("some target's outputs differ from the host runtime's");
    }
    Ok(())
}

fn row_json(r: &Row, layers: bool) -> serde_json::Value {
    let fits = r.m.fits.is_ok();
    let mut v = json!({
        "model": r.model,
        "target": r.m.target.name(),
        "config": r.config.name(),
        "kernels": r.m.kernels,
        "tflm_cmsis_nn_instructions": baseline(r),
        "instructions": if fits { r.m.mean_instructions() } else { None },
        "flash_bytes": if fits { Some(r.m.flash_bytes) } else { None },
        "arena_bytes": r.arena_bytes,
        "match_host": r.m.match_host(),
        "fits": fits,
        "model_bytes": r.m.model_bytes,
        "stack_bytes": r.m.stack_bytes,
        "runtime_stack_bytes": r.m.runtime_stack_bytes,
    });
    if layers {
        v["layers"] =
            r.m.layers
                .iter()
                .map(|l| {
                    json!({
                        "index": l.index,
                        "op": l.op,
                        "instructions": l.instructions,
                        "macs": r.macs.get(l.index).copied().flatten(),
                    })
                })
                .collect();
    }
    v
}

/// TFLM + CMSIS-NN's instructions for the row's model, when it is an int8 Cortex-M4 row of a
/// model BASELINES.md measured.
fn baseline(r: &Row) -> Option<u64> {
    if r.m.target != Target::CortexM4 || r.config != Config::Int8 {
        return None;
    }
    TFLM_CMSIS_NN_M4.iter().find(|(m, _)| *m == r.model).map(|&(_, n)| n)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(rows: &[Row], layers: bool) {
    println!(
        "| model | target | config | kernels | instructions / inference | × TFLM+CMSIS-NN | flash bytes (model + code) | arena bytes | stack bytes | outputs = host |"
    );
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let m = &r.m;
        let (insn, flash, stack, same) = match &m.fits {
            Err(why) => ("—".to_string(), format!("does not fit ({why})"), "—".to_string(), "—".to_string()),
            Ok(()) => (
                m.mean_instructions().map_or("— (no counter)".to_string(), thousands),
                format!(
                    "{} ({} + {})",
                    thousands(m.flash_bytes),
                    thousands(m.model_bytes as u64),
                    thousands(m.code_bytes())
                ),
                m.stack_bytes.map_or("—".to_string(), |s| thousands(s as u64)),
                if m.match_host() { "yes".to_string() } else { format!("NO (inputs {:?})", m.mismatches) },
            ),
        };
        let ratio = match (baseline(r), m.mean_instructions()) {
            (Some(b), Some(n)) => format!("{:.2}", n as f64 / b as f64),
            _ => "—".to_string(),
        };
        println!(
            "| {} | {} | {} | {} | {insn} | {ratio} | {flash} | {} | {stack} | {same} |",
            r.model,
            m.target,
            r.config,
            m.kernels.as_deref().unwrap_or("?"),
            thousands(r.arena_bytes as u64)
        );
    }
    if layers {
        let per_mac = |r: &Row, l: &qemu::Layer| Some(l.instructions? as f64 / (*r.macs.get(l.index)?)?.max(1) as f64);
        // Each op's best instructions per MAC over the rows of its target (the runtime's
        // interpreter work for the op included, as in the layer's count).
        let best = |target: Target, op: &str| {
            rows.iter()
                .filter(|r| r.m.target == target)
                .flat_map(|r| r.m.layers.iter().filter(|l| l.op == op).filter_map(|l| per_mac(r, l)))
                .fold(f64::INFINITY, f64::min)
        };
        for r in rows.iter().filter(|r| !r.m.layers.is_empty() && r.m.target.counts_instructions()) {
            println!(
                "\n{} {} on {} ({} kernels): instructions per layer (first input), per multiply-accumulate, \
                 and against the op's best per MAC in this run",
                r.model,
                r.config,
                r.m.target,
                r.m.kernels.as_deref().unwrap_or("?")
            );
            for l in &r.m.layers {
                let (macs, rate) = match (r.macs.get(l.index).copied().flatten(), per_mac(r, l)) {
                    (Some(n), Some(x)) => (thousands(n), format!("{x:>8.2} {:>7.2}×", x / best(r.m.target, &l.op))),
                    _ => (String::new(), String::new()),
                };
                println!(
                    "  {:>3} {:<18} {:>14} {:>12} {rate}",
                    l.index,
                    l.op,
                    l.instructions.map_or("—".to_string(), thousands),
                    macs
                );
            }
        }
    }
}

/// The required `--target T` and `--model FILE` of `run` and `profile`.
fn target_and_model(a: &mut Args) -> Result<(Target, String)> {
    let target = a.value("--target")?.ok_or_else(|| anyhow!("--target is required\n{USAGE}"))?;
    let target = Target::from_name(&target).ok_or_else(|| anyhow!("unknown target '{target}'"))?;
    let model = a.value("--model")?.ok_or_else(|| anyhow!("--model is required\n{USAGE}"))?;
    Ok((target, model))
}

/// A compiled model file, checked by the host runtime, and the first `n` inputs of `data` in
/// its raw input form (none without `data`).
fn model_and_inputs(model: &str, data: Option<&str>, n: usize) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let blob = std::fs::read(model).with_context(|| format!("{model}: cannot read"))?;
    let parsed = hawq_runtime::Model::from_bytes(&blob).map_err(|e| anyhow!("{model}: {e}"))?;
    let inputs = match data {
        None => Vec::new(),
        Some(path) => {
            let dataset = hawq_compiler::data::Dataset::load(Path::new(path))?;
            qemu::eval_inputs(&dataset, parsed.input().elements(), n)?
        }
    };
    Ok((blob, inputs))
}

/// `target`'s firmware around `blob` (named `model` in errors) with `inputs` embedded.
fn firmware(target: Target, opt: OptLevel, model: &str, blob: &[u8], inputs: &[u8]) -> Result<qemu::Firmware> {
    match qemu::build_with(target, Kernels::Auto, opt, blob, inputs, qemu::Fault::None)? {
        qemu::Build::Built(fw) => Ok(fw),
        qemu::Build::DoesNotFit(why) => bail!("{model} does not fit {target}: {why}"),
    }
}

fn run(args: &[String]) -> Result<()> {
    let mut a = Args::new(args);
    let (target, model) = target_and_model(&mut a)?;
    let data = a.value("--data")?;
    let n: usize = a.value("--inputs")?.map_or(Ok(4), |v| v.parse()).context("--inputs")?;
    let opt = opt_level(&mut a)?;
    a.finish()?;
    qemu::check_tools(&[target])?;
    let (blob, inputs) = model_and_inputs(&model, data.as_deref(), n)?;
    let fw = firmware(target, opt, &model, &blob, &inputs.concat())?;
    let result = qemu::run(&fw, std::time::Duration::from_secs(600))?;
    print!("{}", result.stdout);
    eprint!("{}", result.stderr);
    println!(
        "flash {} bytes (without the {} bytes of test inputs), statics {} bytes",
        fw.flash_bytes(),
        fw.input_bytes,
        fw.sizes.statics
    );
    if !result.success() {
        bail!("the firmware exited with {:?}{}", result.status, if result.timed_out { " (timed out)" } else { "" });
    }
    if !inputs.is_empty() {
        let report = qemu::parse(&result.stdout)?;
        let host = qemu::host_outputs(&blob, &inputs)?;
        let same = report.inferences.iter().map(|(_, o)| o).eq(host.iter());
        println!("outputs identical to the host runtime: {}", if same { "yes" } else { "NO" });
        if !same {
            bail!("outputs differ from the host runtime");
        }
    }
    Ok(())
}

fn profile(args: &[String]) -> Result<()> {
    let mut a = Args::new(args);
    let (target, model) = target_and_model(&mut a)?;
    let data = a.value("--data")?;
    let top = a.value("--top")?.map_or(Ok(25), |v| v.parse()).context("--top")?;
    let function = a.value("--function")?;
    let layer = a.value("--layer")?.map(|v| v.parse()).transpose().context("--layer")?;
    let opt = opt_level(&mut a)?;
    a.finish()?;
    profile::profile(&profile::Options { target, model, data, top, function, layer, opt })
}

fn app(args: &[String]) -> Result<()> {
    let mut a = Args::new(args);
    let model = a.value("--model")?;
    let opt = opt_level(&mut a)?;
    a.finish()?;
    let (name, blob) = match model {
        None => {
            let case = compile_cases(&ModelSpec::digits(), &[Config::Int8], 1)?.remove(0);
            ("examples/digits (int8)".to_string(), case.blob)
        }
        Some(model) => {
            let blob = std::fs::read(&model).with_context(|| format!("{model}: cannot read"))?;
            hawq_runtime::Model::from_bytes(&blob).map_err(|e| anyhow!("{model}: {e}"))?;
            (model, blob)
        }
    };
    let model = hawq_runtime::Model::from_bytes(&blob).map_err(|e| anyhow!("{name}: {e}"))?;
    let sizes = qemu::build_app(&blob, opt)?;
    let code = sizes.image.saturating_sub(blob.len() as u64);
    println!("{name}: the minimal Cortex-M4 app (examples/rust-app, thumbv7em-none-eabihf, opt-level {})", opt.name());
    println!(
        "  flash {} B = model {} B + code {} B",
        thousands(sizes.image),
        thousands(blob.len() as u64),
        thousands(code)
    );
    println!(
        "  RAM: statics {} B (arena {} B) + the runtime's stack",
        thousands(sizes.statics),
        thousands(model.arena_bytes() as u64)
    );
    Ok(())
}

fn boards(args: &[String]) -> Result<()> {
    let mut a = Args::new(args);
    let model = a.value("--model")?;
    let data = a.value("--data")?;
    a.finish()?;
    let (name, blob, inputs) = match (model, data) {
        (None, None) => {
            let case = compile_cases(&ModelSpec::digits(), &[Config::Int8], 4)?.remove(0);
            ("examples/digits (int8)".to_string(), case.blob, case.inputs)
        }
        (Some(model), Some(data)) => {
            let blob = std::fs::read(&model).with_context(|| format!("{model}: cannot read"))?;
            let parsed = hawq_runtime::Model::from_bytes(&blob).map_err(|e| anyhow!("{model}: {e}"))?;
            let dataset = hawq_compiler::data::Dataset::load(Path::new(&data))?;
            let inputs = qemu::eval_inputs(&dataset, parsed.input().elements(), 4)?;
            (model, blob, inputs)
        }
        _ => bail!("--model and --data go together"),
    };
    println!("| board | chip | flash bytes (model {} B + code) | RAM statics bytes |", blob.len());
    println!("|---|---|---:|---:|");
    let mut failed = Vec::new();
    for board in qemu::BOARDS {
        let t0 = Instant::now();
        match qemu::build_board(board, &blob, &inputs.concat())? {
            Ok(sizes) => println!(
                "| {} | {} | {} | {} |",
                board.name,
                board.chip,
                thousands(sizes.image),
                thousands(sizes.statics)
            ),
            Err(why) => {
                println!("| {} | {} | does not fit: {why} | |", board.name, board.chip);
                failed.push(board.name);
            }
        }
        eprintln!("  {} built in {:.1} s", board.name, t0.elapsed().as_secs_f64());
    }
    eprintln!("model: {name}; flash a board with `cargo run --release` in its folder (see targets/README.md)");
    if !failed.is_empty() {
        bail!("{name} does not fit {failed:?}");
    }
    Ok(())
}
