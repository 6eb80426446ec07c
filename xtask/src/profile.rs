//! `cargo xtask profile`: where one inference's instructions go, function by function.
//!
//! The firmware's counter says how many instructions an inference takes and `--layers` how many
//! each layer takes; neither says which code inside a layer they are (the decoding of its op, the
//! split of the arena, a kernel's prologue, its inner loop). This runs the firmware once under
//! QEMU with one instruction per translation block (`-singlestep`) and every block's execution
//! logged (`-d exec,nochain`): one log line per instruction executed, with its address and the
//! ELF symbol it lies in. The lines between the first and the last instruction of the firmware's
//! timed pass (`timed_pass`, one inference through `Interpreter::invoke`) are that inference.
//! They are counted per function and, for `--function`, per address; the total is checked
//! against the firmware's own `-icount` count of the same inference.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use hawq_e2e::qemu::{self, OptLevel, Target};

/// The firmware function around the timed inference (`targets/firmware-common`).
const WINDOW_FUNCTION: &str = "timed_pass";

/// The op reader, called once per op by the interpreter's loop: entering it from the loop
/// starts the next op (what `--layer` counts by).
const OP_READER: &str = "take_linked_op";

/// The most instructions the traced window may hold beyond the firmware's count: `timed_pass`'
/// own prologue, epilogue and counter reads, which the count leaves out (21 for sine-mlp on the
/// Cortex-M4), and a part in 10,000 (resnet8: 277 more in 16.7 M; the firmware's count moved by 8
/// with `-singlestep` too). A window off by an op is off by hundreds to millions.
fn window_slack(counted: u64) -> u64 {
    64 + counted / 10_000
}

pub struct Options {
    pub target: Target,
    pub model: String,
    pub data: Option<String>,
    pub top: usize,
    pub function: Option<String>,
    /// Count only op `layer` (its reading, dispatch and kernel), as `bench --layers` numbers it.
    pub layer: Option<usize>,
    pub opt: OptLevel,
}

/// One inference's instructions per function (demangled name, count), most first, and per
/// address of the functions `--function` names.
struct Profile {
    functions: Vec<(String, u64)>,
    addresses: Vec<(u64, String, u64)>,
    /// The whole inference's instructions.
    total: u64,
    /// Those of the functions and addresses above (`total` without `--layer`).
    selected: u64,
    /// How many ops the trace shows.
    ops: usize,
}

pub fn profile(o: &Options) -> Result<()> {
    if !o.target.counts_instructions() {
        bail!("{}: no instruction trace (QEMU user mode); profile a system-mode target", o.target);
    }
    qemu::check_tools(&[o.target])?;
    let (blob, inputs) = crate::model_and_inputs(&o.model, o.data.as_deref(), 1)?;
    let input = match inputs.into_iter().next() {
        Some(input) => input,
        // Zeros: the kernels' instructions do not depend on the values (no data-dependent
        // branches in the integer paths but saturation).
        None => {
            let model = hawq_runtime::Model::from_bytes(&blob).map_err(|e| anyhow!("{}: {e}", o.model))?;
            vec![0; model.input().elements() * model.raw_input().element_bytes()]
        }
    };
    let fw = crate::firmware(o.target, o.opt, &o.model, &blob, &input)?;
    eprintln!("tracing {} on {} (one log line per instruction: resnet8 takes about 70 s)", o.model, o.target);
    let (profile, stdout) = trace(o.target, &fw.elf, o.function.as_deref(), o.layer)?;
    if let Some(layer) = o.layer {
        if layer >= profile.ops {
            bail!("the trace shows {} ops (entries into `{OP_READER}`): no op {layer}", profile.ops);
        }
    }
    let report = qemu::parse(&stdout)?;
    let counted = report.inferences.first().and_then(|(n, _)| *n);
    print_profile(o, &profile, counted, &fw.elf);
    match counted {
        Some(n) if profile.total < n || profile.total > n + window_slack(n) => bail!(
            "the trace holds {} instructions of the inference, the firmware counted {n}: the window is wrong",
            profile.total
        ),
        None => bail!("the firmware reported no inference:\n{stdout}"),
        Some(_) => Ok(()),
    }
}

/// Runs `elf` under `target`'s QEMU with the instruction log on stderr, read as it comes (a
/// large model's log is gigabytes); returns the profile and the firmware's report.
fn trace(target: Target, elf: &Path, function: Option<&str>, layer: Option<usize>) -> Result<(Profile, String)> {
    let mut words = target.qemu_command()?;
    // After the program, before the machine's options (the last of which may be `-kernel`,
    // whose value is the ELF).
    words.splice(1..1, ["-singlestep", "-d", "exec,nochain", "-D", "/dev/stderr"].map(String::from));
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", words[0]))?;
    let mut stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let stderr = BufReader::new(child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?);
    let mut window = Window::new(function, layer);
    let mut other = String::new();
    for line in stderr.lines() {
        let line = line.context("reading QEMU's log")?;
        match parse_line(&line) {
            Some((pc, symbol)) => window.step(pc, symbol),
            None if other.len() < 4096 => {
                other.push_str(&line);
                other.push('\n');
            }
            None => {}
        }
    }
    let status = child.wait()?;
    let stdout = reader.join().map_err(|_| anyhow!("stdout reader panicked"))??;
    if !status.success() {
        bail!("QEMU exited with {status}\n--- stdout\n{stdout}\n--- stderr\n{other}");
    }
    Ok((window.finish()?, stdout))
}

/// `Trace 0: 0x7f… [00800400/000013a0/00000010/ff020201] symbol`: the guest address (the
/// bracket's second field) and the symbol (absent where the address has none).
fn parse_line(line: &str) -> Option<(u64, &str)> {
    let rest = line.strip_prefix("Trace ")?;
    let (bracket, symbol) = rest.split_once('[')?.1.split_once(']')?;
    let pc = u64::from_str_radix(bracket.split('/').nth(1)?, 16).ok()?;
    Some((pc, symbol.trim()))
}

/// The counts of the timed pass: every instruction from the window function's first to its
/// last (those after its last are the firmware's report, counted in `pending` and dropped); with
/// a layer, only that op's.
struct Window<'f> {
    function: Option<&'f str>,
    layer: Option<usize>,
    started: bool,
    /// Each symbol of the log once, demangled, with what the counting asks of it; the log's
    /// lines (tens of millions) refer to them by index.
    symbols: Vec<Symbol>,
    index: HashMap<String, usize>,
    by_symbol: Vec<u64>,
    by_address: HashMap<(u64, usize), u64>,
    pending: Vec<(u64, usize)>,
    total: u64,
    /// The op the instructions belong to: `None` before the first entry into the reader.
    op: Option<usize>,
    previous: Option<usize>,
}

struct Symbol {
    name: String,
    reader: bool,
    builtin: bool,
    listed: bool,
}

impl<'f> Window<'f> {
    fn new(function: Option<&'f str>, layer: Option<usize>) -> Self {
        Window {
            function,
            layer,
            started: false,
            symbols: Vec::new(),
            index: HashMap::new(),
            by_symbol: Vec::new(),
            by_address: HashMap::new(),
            pending: Vec::new(),
            total: 0,
            op: None,
            previous: None,
        }
    }

    fn step(&mut self, pc: u64, symbol: &str) {
        let in_window = symbol.contains(WINDOW_FUNCTION);
        if !self.started && !in_window {
            return;
        }
        self.started = true;
        let id = self.intern(symbol);
        self.pending.push((pc, id));
        if in_window {
            self.commit();
        }
    }

    fn intern(&mut self, symbol: &str) -> usize {
        if let Some(&id) = self.index.get(symbol) {
            return id;
        }
        let name = demangled(symbol);
        self.symbols.push(Symbol {
            reader: name.contains(OP_READER),
            builtin: is_builtin(&name),
            listed: self.function.is_some_and(|f| name.contains(f)),
            name,
        });
        self.by_symbol.push(0);
        self.index.insert(symbol.to_string(), self.symbols.len() - 1);
        self.symbols.len() - 1
    }

    fn commit(&mut self) {
        for (pc, id) in std::mem::take(&mut self.pending) {
            // An op starts where the loop calls the reader; a return into the reader from
            // something it called (a compiler builtin) does not start one.
            let from = self.previous.map(|p| &self.symbols[p]);
            if self.symbols[id].reader && !from.is_some_and(|f| f.reader || f.builtin) {
                self.op = Some(self.op.map_or(0, |i| i + 1));
            }
            self.total += 1;
            if self.layer.is_none() || self.layer == self.op {
                if self.symbols[id].listed {
                    *self.by_address.entry((pc, id)).or_default() += 1;
                }
                self.by_symbol[id] += 1;
            }
            self.previous = Some(id);
        }
    }

    fn finish(self) -> Result<Profile> {
        if !self.started {
            bail!("the trace never entered `{WINDOW_FUNCTION}`: no timed inference, or a firmware without symbols");
        }
        let selected = self.by_symbol.iter().sum();
        let ops = self.op.map_or(0, |i| i + 1);
        let name = |id: usize| self.symbols[id].name.clone();
        // Symbols that demangle alike (one function's copies in two crates) count as one.
        let mut merged: HashMap<String, u64> = HashMap::new();
        for (id, &n) in self.by_symbol.iter().enumerate().filter(|(_, &n)| n > 0) {
            *merged.entry(name(id)).or_default() += n;
        }
        let mut functions: Vec<_> = merged.into_iter().collect();
        functions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut addresses: Vec<_> = self.by_address.iter().map(|(&(pc, id), &n)| (pc, name(id), n)).collect();
        addresses.sort();
        Ok(Profile { functions, addresses, total: self.total, selected, ops })
    }
}

/// Code the compiler calls on its own (copies, fills, division): `compiler_builtins`, `core`
/// and the ARM EABI helpers.
fn is_builtin(name: &str) -> bool {
    name.starts_with("compiler_builtins::") || name.starts_with("core::") || name.starts_with("__aeabi")
}

/// A Rust symbol without its hash (`hawq_runtime::interpreter::run_op`); others as they are.
fn demangled(symbol: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(symbol))
}

fn print_profile(o: &Options, p: &Profile, counted: Option<u64>, elf: &Path) {
    match o.layer {
        None => println!("{} on {}: one inference, instructions per function (QEMU -singlestep trace)", o.model, o.target),
        Some(l) => println!(
            "{} on {}: op {l} of {} (its reading, dispatch and kernel), instructions per function (QEMU -singlestep trace)",
            o.model, o.target, p.ops
        ),
    }
    let pct = |n: u64| 100.0 * n as f64 / p.selected.max(1) as f64;
    for (name, n) in p.functions.iter().take(o.top) {
        println!("{n:>12}  {:>5.1}%  {name}", pct(*n));
    }
    let rest: u64 = p.functions.iter().skip(o.top).map(|(_, n)| n).sum();
    if rest > 0 {
        println!("{rest:>12}  {:>5.1}%  ({} more functions)", pct(rest), p.functions.len() - o.top);
    }
    if o.layer.is_some() {
        println!("{:>12}  op {}", p.selected, o.layer.unwrap_or(0));
    }
    println!(
        "{:>12}  traced in the inference (the firmware counted {}; the trace adds `{WINDOW_FUNCTION}`'s own instructions)",
        p.total,
        counted.map_or("nothing".to_string(), |n| n.to_string())
    );
    if let Some(f) = &o.function {
        // The firmware is removed after the run, so its disassembly is read now.
        let text = disassembly(elf);
        println!("\nper address in functions whose name contains `{f}`:");
        let mut last = "";
        for (pc, name, n) in &p.addresses {
            if name != last {
                println!("{name}:");
                last = name;
            }
            println!("{pc:>10x} {n:>10}  {}", text.get(pc).map_or("", String::as_str));
        }
    }
}

/// Each instruction's text by address (`llvm-objdump -d`), or nothing if the tool is missing.
fn disassembly(elf: &Path) -> HashMap<u64, String> {
    let Ok(out) = Command::new("llvm-objdump").args(["-d", "--no-show-raw-insn"]).arg(elf).output() else {
        return Default::default();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (pc, insn) = line.trim_start().split_once(':')?;
            let pc = u64::from_str_radix(pc, 16).ok()?;
            Some((pc, insn.trim().replace('\t', " ")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_is_the_instructions_from_one_entry_into_the_reader_to_the_next() {
        let pass = "_ZN20hawq_firmware_common10timed_pass17h0000000000000000E";
        let reader = "_ZN12hawq_runtime6format6decode14take_linked_op17h0000000000000000E";
        let run = "_ZN12hawq_runtime11interpreter6run_op17h0000000000000000E";
        let memcpy = "_ZN17compiler_builtins3mem6memcpy17h0000000000000000E";
        let mut w = Window::new(None, Some(1));
        // op 0: reader, run; op 1: reader, a builtin it calls, the reader again, run, run.
        for (pc, s) in [
            (1, pass),
            (2, reader),
            (3, run),
            (1, pass),
            (2, reader),
            (4, memcpy),
            (2, reader),
            (3, run),
            (3, run),
            (1, pass),
        ] {
            w.step(pc, s);
        }
        let p = w.finish().expect("started");
        assert_eq!((p.total, p.selected, p.ops), (10, 6, 2));
        let run_count = p.functions.iter().find(|(f, _)| f.ends_with("run_op")).map(|(_, n)| *n);
        assert_eq!(run_count, Some(2));
    }

    #[test]
    fn a_log_line_gives_its_address_and_symbol() {
        let line = "Trace 0: 0x7f0df4147940 [00800400/000013a0/00000010/ff020201] _ZN20hawq_firmware_common10timed_pass17h8a90324acde0dcd2E";
        let (pc, symbol) = parse_line(line).expect("a trace line");
        assert_eq!(pc, 0x13a0);
        assert_eq!(demangled(symbol), "hawq_firmware_common::timed_pass");
        assert_eq!(parse_line("qemu-system-arm: warning: something"), None);
    }

    #[test]
    fn the_window_runs_from_the_first_to_the_last_timed_pass_instruction() {
        let mut w = Window::new(Some("run_op"), None);
        for (pc, s) in [
            (1, "_ZN20hawq_firmware_common9run_inner17h0000000000000000E"),
            (2, "_ZN20hawq_firmware_common10timed_pass17h0000000000000000E"),
            (3, "_ZN12hawq_runtime11interpreter6run_op17h0000000000000000E"),
            (3, "_ZN12hawq_runtime11interpreter6run_op17h0000000000000000E"),
            (4, "_ZN20hawq_firmware_common10timed_pass17h0000000000000000E"),
            (5, "_ZN20hawq_firmware_common9run_inner17h0000000000000000E"),
        ] {
            w.step(pc, s);
        }
        let p = w.finish().expect("started");
        assert_eq!((p.total, p.selected), (4, 4));
        assert_eq!(p.functions[0], ("hawq_firmware_common::timed_pass".to_string(), 2));
        assert_eq!(p.addresses, vec![(3, "hawq_runtime::interpreter::run_op".to_string(), 2)]);
    }
}
