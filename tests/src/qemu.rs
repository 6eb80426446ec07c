//! The QEMU firmware of `targets/` as a library: build a board's firmware around a compiled
//! model and a batch of raw inputs, run it under QEMU (or qemu-user), read its report, and
//! compare its outputs with the host runtime's. Used by `tests/tests/qemu.rs`, by
//! `cargo xtask bench` and by the xtask's own test on `examples/digits`.
//!
//! The firmware crates are separate workspaces (`targets/<target>/`), each with its own
//! `.cargo/config.toml` (Rust target, linker script, QEMU runner). This module builds them with
//! `cargo build --release` into two target directories (`target/firmware` and
//! `target/firmware/lane-1`, so that two targets build at once: [`per_target`]), and takes the
//! QEMU command line from the crate's runner, so that `cargo run --release` in a target folder
//! and the tests run the same thing.

use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hawq_compiler::allocate::{allocate, Budget};
use hawq_compiler::autodiff::TraceOptions;
use hawq_compiler::data::Dataset;
use hawq_compiler::import::import;
use hawq_compiler::ir::{Graph, InputTransform};
use hawq_compiler::pipeline::{compile, prepare, Prepared};
use hawq_compiler::quantize::{BitConfig, RawKind};
use hawq_compiler::sensitivity::{measure as measure_sensitivity, LossChoice};

/// A QEMU target of `targets/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// Cortex-M4F, `qemu-system-arm -M mps2-an386`, thumbv7em-none-eabihf.
    CortexM4,
    /// Cortex-M0, `qemu-system-arm -M microbit` (16 KiB RAM, 256 KiB flash), thumbv6m-none-eabi.
    CortexM0,
    /// Cortex-M3, `qemu-system-arm -M mps2-an385`, thumbv7m-none-eabi.
    CortexM3,
    /// RV32IMAC, `qemu-system-riscv32 -M virt -bios none`, riscv32imac-unknown-none-elf.
    Riscv32,
    /// AArch64 Linux under `qemu-aarch64` (no instruction counts), aarch64-unknown-linux-gnu.
    Aarch64,
    /// Bare-metal AArch64, `qemu-system-aarch64 -M virt -cpu max`, aarch64-unknown-none: the
    /// NEON kernels (SMULL/SADALP), built without the dot-product extension.
    Aarch64Virt,
    /// The same firmware built with `-C target-feature=+dotprod`: the SDOT kernels.
    Aarch64VirtDotprod,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::CortexM4,
        Target::CortexM0,
        Target::CortexM3,
        Target::Riscv32,
        Target::Aarch64,
        Target::Aarch64Virt,
        Target::Aarch64VirtDotprod,
    ];

    /// The targets of the real-model suite: one build per kernel path. The SDOT kernels already
    /// run every fixture as the AArch64 Linux program (`-cpu max` has the dot product), so their
    /// bare-metal build is left to `qemu_digits` and the bench, which keeps CI's time in bounds.
    pub const SUITE: [Target; 6] =
        [Target::CortexM4, Target::CortexM0, Target::CortexM3, Target::Riscv32, Target::Aarch64, Target::Aarch64Virt];

    /// The name used in reports and as the folder under `targets/`.
    pub fn name(self) -> &'static str {
        match self {
            Target::CortexM4 => "cortex-m4",
            Target::CortexM0 => "cortex-m0",
            Target::CortexM3 => "cortex-m3",
            Target::Riscv32 => "riscv32",
            Target::Aarch64 => "aarch64",
            Target::Aarch64Virt => "aarch64-virt",
            Target::Aarch64VirtDotprod => "aarch64-virt-dotprod",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The Rust target triple (also the name of the build's output folder).
    pub fn triple(self) -> &'static str {
        match self {
            Target::CortexM4 => "thumbv7em-none-eabihf",
            Target::CortexM0 => "thumbv6m-none-eabi",
            Target::CortexM3 => "thumbv7m-none-eabi",
            Target::Riscv32 => "riscv32imac-unknown-none-elf",
            Target::Aarch64 => "aarch64-unknown-linux-gnu",
            Target::Aarch64Virt | Target::Aarch64VirtDotprod => "aarch64-unknown-none",
        }
    }

    /// Rust flags the build adds to the crate's own (`--config target.<triple>.rustflags`,
    /// which cargo appends to .cargo/config.toml's): the target features of a variant that
    /// shares its crate with another target.
    pub fn extra_rustflags(self) -> &'static [&'static str] {
        match self {
            Target::Aarch64VirtDotprod => &["-C", "target-feature=+dotprod"],
            _ => &[],
        }
    }

    /// Does the firmware report deterministic instruction counts (QEMU system mode, -icount)?
    /// Every target but the AArch64 Linux program under qemu-user.
    pub fn counts_instructions(self) -> bool {
        self != Target::Aarch64
    }

    /// The build lane: which of the two harness target directories the firmware builds in
    /// ([`harness_target_dir`]). The targets the tests pair (Cortex-M4 and RV32; the two
    /// AArch64 virt variants, whose target features differ) are in different lanes.
    pub fn lane(self) -> u8 {
        match self {
            Target::CortexM4 | Target::CortexM3 | Target::Aarch64Virt => 0,
            Target::Riscv32 | Target::CortexM0 | Target::Aarch64 | Target::Aarch64VirtDotprod => 1,
        }
    }

    /// The firmware crate's folder under `targets/` (the two AArch64 virt variants share one).
    fn folder(self) -> &'static str {
        match self {
            Target::Aarch64VirtDotprod => Target::Aarch64Virt.name(),
            _ => self.name(),
        }
    }

    /// The firmware crate's folder.
    pub fn crate_dir(self) -> PathBuf {
        repo_root().join("targets").join(self.folder())
    }

    fn package(self) -> String {
        format!("hawq-fw-{}", self.folder())
    }

    /// The QEMU command line of the crate's `.cargo/config.toml` runner, without the `timeout`
    /// prefix (the caller adds its own), to which the program's path is appended.
    pub fn qemu_command(self) -> Result<Vec<String>> {
        let path = self.crate_dir().join(".cargo/config.toml");
        let text = fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("runner"))
            .ok_or_else(|| anyhow!("{}: no runner", path.display()))?;
        let value = line.split_once('=').map(|(_, v)| v.trim().trim_matches('"')).unwrap_or_default();
        let mut words: Vec<String> = value.split_whitespace().map(String::from).collect();
        if words.first().map(String::as_str) == Some("timeout") {
            // `timeout [-k DURATION] [-s SIGNAL] [--foreground] DURATION COMMAND...`
            let mut i = 1;
            while let Some(w) = words.get(i) {
                i += match w.as_str() {
                    "-k" | "-s" => 2,
                    w if w.starts_with('-') => 1,
                    _ => break,
                };
            }
            words.drain(..(i + 1).min(words.len()));
        }
        if words.is_empty() {
            bail!("{}: empty runner", path.display());
        }
        Ok(words)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The target directory of the firmware builds that share crates: the real boards and the app
/// templates (their HAL crates), the C programs, the kernel-check firmware and the QEMU targets
/// of lane 0 ([`harness_target_dir`]). Also holds the builds' private folders (`work/`) and
/// lane 1's directory.
pub fn firmware_target_dir() -> PathBuf {
    repo_root().join("target").join("firmware")
}

/// The target directory of `target`'s QEMU firmware: that of its lane ([`Target::lane`]). Two
/// directories, so that two builds run at once ([`per_target`]): one per target would build the
/// host's crates for the build scripts seven times on a fresh machine. Lane 0's is the shared
/// [`firmware_target_dir`], whose host crates and Cortex-M4/M3 dependencies the kernel-check
/// firmware (the same profile) has built by the time the QEMU tests run; lane 1's is
/// `target/firmware/lane-1`.
pub fn harness_target_dir(target: Target) -> PathBuf {
    match target.lane() {
        0 => firmware_target_dir(),
        _ => firmware_target_dir().join("lane-1"),
    }
}

/// `f` of each of `targets`, in `targets`' order, each lane's targets one after another and the
/// two lanes at once. A firmware build is one thread (fat LTO, one codegen unit), so on two cores
/// two lanes take about the time of one.
pub fn per_target<R: Send>(targets: &[Target], f: impl Fn(Target) -> R + Sync) -> Vec<R> {
    let run_lane = |lane: u8| -> Vec<(usize, R)> {
        targets.iter().enumerate().filter(|(_, t)| t.lane() == lane).map(|(i, &t)| (i, f(t))).collect()
    };
    let (mut done, other) = std::thread::scope(|s| {
        let other = s.spawn(|| run_lane(1));
        let mine = run_lane(0);
        (mine, other.join())
    });
    match other {
        Ok(results) => done.extend(results),
        Err(panic) => std::panic::resume_unwind(panic),
    }
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Fails with the fix when QEMU or a cross target is missing: these tests never skip.
pub fn check_tools(targets: &[Target]) -> Result<()> {
    let mut missing = Vec::new();
    for &t in targets {
        let program = t.qemu_command()?.remove(0);
        if Command::new(&program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
            missing.push(program);
        }
    }
    for program in ["timeout"] {
        if Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
            missing.push(program.to_string());
        }
    }
    if !missing.is_empty() {
        missing.dedup();
        bail!("{} not found: run scripts/setup-cross.sh (installs QEMU and the cross targets)", missing.join(", "));
    }
    Ok(())
}

/// Sizes of a linked program, from its ELF section headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ElfSizes {
    /// Bytes stored in the image (flash): every allocated section with contents (code,
    /// read-only data, the model, initial values of `.data`).
    pub image: u64,
    /// Bytes of RAM the statics take (`.data`, `.bss`, `.uninit`; not the stack).
    pub statics: u64,
}

/// One section header of an ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// `sh_type` (8: no bits in the file, like `.bss`).
    pub kind: u64,
    /// `sh_flags` (1: writable, 2: allocated in memory, 4: executable).
    pub flags: u64,
    pub size: u64,
}

impl Section {
    pub const SHF_WRITE: u64 = 1;
    pub const SHF_ALLOC: u64 = 2;
    pub const SHT_NOBITS: u64 = 8;
}

/// The section headers of an ELF32/ELF64 little-endian file.
pub fn elf_sections(path: &Path) -> Result<Vec<Section>> {
    let data = fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let bad = || anyhow!("{}: not a little-endian ELF file", path.display());
    if data.len() < 64 || data[0..4] != *b"\x7fELF" || data[5] != 1 {
        return Err(bad());
    }
    let wide = match data[4] {
        1 => false,
        2 => true,
        _ => return Err(bad()),
    };
    let u16_at = |o: usize| -> Result<u64> {
        Ok(u16::from_le_bytes(data.get(o..o + 2).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as u64)
    };
    let u32_at = |o: usize| -> Result<u64> {
        Ok(u32::from_le_bytes(data.get(o..o + 4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as u64)
    };
    let u64_at = |o: usize| -> Result<u64> {
        Ok(u64::from_le_bytes(data.get(o..o + 8).ok_or_else(bad)?.try_into().map_err(|_| bad())?))
    };
    let word = |o: usize| if wide { u64_at(o) } else { u32_at(o) };
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (u64_at(0x28)?, u16_at(0x3A)?, u16_at(0x3C)?, u16_at(0x3E)?)
    } else {
        (u32_at(0x20)?, u16_at(0x2E)?, u16_at(0x30)?, u16_at(0x32)?)
    };
    // Section header fields: name, type, flags, addr, offset, size (offsets differ by class).
    let header = |i: u64| -> Result<(u64, u64, u64, u64, u64)> {
        let h = (shoff + i * shentsize) as usize;
        if wide {
            Ok((u32_at(h)?, u32_at(h + 4)?, word(h + 8)?, word(h + 0x18)?, word(h + 0x20)?))
        } else {
            Ok((u32_at(h)?, u32_at(h + 4)?, word(h + 8)?, word(h + 0x10)?, word(h + 0x14)?))
        }
    };
    let (_, _, _, strtab, _) = header(shstrndx)?;
    let name_of = |off: u64| -> String {
        let start = (strtab + off) as usize;
        let end = data[start.min(data.len())..].iter().position(|&b| b == 0).map_or(data.len(), |n| start + n);
        String::from_utf8_lossy(&data[start.min(end)..end]).into_owned()
    };
    (0..shnum)
        .map(|i| {
            let (name, kind, flags, _offset, size) = header(i)?;
            Ok(Section { name: name_of(name), kind, flags, size })
        })
        .collect()
}

/// Reads the section headers of an ELF32/ELF64 little-endian file.
pub fn elf_sizes(path: &Path) -> Result<ElfSizes> {
    let mut sizes = ElfSizes::default();
    for s in elf_sections(path)? {
        if s.flags & Section::SHF_ALLOC == 0 {
            continue;
        }
        // riscv-rt's `.stack` and `.heap` are fictitious sections spanning the free RAM.
        if s.name == ".stack" || s.name == ".heap" {
            continue;
        }
        if s.kind != Section::SHT_NOBITS {
            sizes.image += s.size;
        }
        if s.flags & Section::SHF_WRITE != 0 {
            sizes.statics += s.size;
        }
    }
    Ok(sizes)
}

/// A built firmware: a private copy of the ELF, removed when dropped.
#[derive(Debug)]
pub struct Firmware {
    pub target: Target,
    pub elf: PathBuf,
    pub sizes: ElfSizes,
    /// Bytes of embedded test inputs, counted in `sizes.image` but not part of a deployment.
    pub input_bytes: usize,
    dir: PathBuf,
}

impl Firmware {
    /// Flash a deployment needs: code, read-only data and the model, without the test inputs.
    pub fn flash_bytes(&self) -> u64 {
        self.sizes.image.saturating_sub(self.input_bytes as u64)
    }
}

impl Drop for Firmware {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The outcome of a build: a firmware, or the linker's word that the model does not fit the
/// machine's memory (which is an answer, not an error).
#[derive(Debug)]
pub enum Build {
    Built(Firmware),
    DoesNotFit(String),
}

/// Deliberate failures, to test the verdict path (the firmware's `HAWQ_FAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// `panic!` at start.
    Panic,
    /// An undefined instruction at start (HardFault / illegal-instruction trap / SIGILL).
    Fault,
}

static SEQUENCE: AtomicUsize = AtomicUsize::new(0);

/// Which kernels a firmware is built with (`cargo xtask bench`'s `kernels` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernels {
    /// What the runtime picks for the target (Cortex-M4: DSP; Cortex-M0/M3, RISC-V: portable;
    /// AArch64 Linux: SDOT under `-cpu max`; aarch64-virt: NEON, aarch64-virt-dotprod: SDOT).
    Auto,
    /// The scalar reference kernels (the runtime's `kernels-scalar` feature).
    Scalar,
    /// The portable kernels, no instruction-set extension (`kernels-portable`).
    Portable,
}

impl Kernels {
    /// The cargo feature of the firmware crates' `hawq-firmware-common` dependency, if any.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Kernels::Auto => None,
            Kernels::Scalar => Some("hawq-firmware-common/kernels-scalar"),
            Kernels::Portable => Some("hawq-firmware-common/kernels-portable"),
        }
    }
}

/// What the firmware's release profile optimises for: the crates' `opt-level = 3` (the README's
/// instruction counts), or `opt-level = "s"` (smaller code, a few percent more instructions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum OptLevel {
    #[default]
    Speed,
    Size,
}

impl OptLevel {
    pub fn from_name(name: &str) -> Option<OptLevel> {
        match name {
            "3" | "speed" => Some(OptLevel::Speed),
            "s" | "size" => Some(OptLevel::Size),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OptLevel::Speed => "3",
            OptLevel::Size => "s",
        }
    }

    /// Cargo arguments overriding the crate's profile (none for its own `opt-level = 3`).
    fn cargo_args(self) -> Vec<String> {
        match self {
            OptLevel::Speed => Vec::new(),
            OptLevel::Size => vec!["--config".into(), "profile.release.opt-level=\"s\"".into()],
        }
    }
}

/// Builds `target`'s firmware with `model` and `inputs` (concatenated raw inputs) embedded.
pub fn build(target: Target, model: &[u8], inputs: &[u8], fault: Fault) -> Result<Build> {
    build_with(target, Kernels::Auto, OptLevel::Speed, model, inputs, fault)
}

/// [`build`] with a choice of kernels and optimisation.
pub fn build_with(
    target: Target,
    kernels: Kernels,
    opt: OptLevel,
    model: &[u8],
    inputs: &[u8],
    fault: Fault,
) -> Result<Build> {
    let (dir, triple, package) = (target.crate_dir(), target.triple(), target.package());
    let mut args: Vec<String> = kernels.feature().map(|f| vec!["--features".into(), f.into()]).unwrap_or_default();
    args.extend(opt.cargo_args());
    let flags = target.extra_rustflags();
    if !flags.is_empty() {
        let quoted: Vec<String> = flags.iter().map(|f| format!("{f:?}")).collect();
        args.extend(["--config".to_string(), format!("target.{triple}.rustflags=[{}]", quoted.join(","))]);
    }
    Ok(match cargo_build(&dir, &harness_target_dir(target), triple, &package, model, inputs, fault, &args)? {
        Ok((dir, elf)) => {
            let sizes = elf_sizes(&elf)?;
            Build::Built(Firmware { target, elf, sizes, input_bytes: inputs.len(), dir })
        }
        Err(why) => Build::DoesNotFit(why),
    })
}

/// Builds a firmware crate into `target_dir` with `model` and `inputs` embedded and `args` added
/// to cargo's (features, `--config`); returns a private folder and the ELF copied into it, or the
/// linker's message when the program does not fit the memory.
#[allow(clippy::too_many_arguments)]
fn cargo_build(
    crate_dir: &Path,
    target_dir: &Path,
    triple: &str,
    package: &str,
    model: &[u8],
    inputs: &[u8],
    fault: Fault,
    args: &[String],
) -> Result<std::result::Result<(PathBuf, PathBuf), String>> {
    let work = firmware_target_dir().join("work");
    fs::create_dir_all(&work).with_context(|| format!("{}: cannot create", work.display()))?;
    let dir = work.join(format!("{package}-{}-{}", std::process::id(), SEQUENCE.fetch_add(1, Ordering::SeqCst)));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let model_path = dir.join("model.hq");
    let inputs_path = dir.join("inputs.bin");
    fs::write(&model_path, model)?;
    fs::write(&inputs_path, inputs)?;

    // One build at a time in a target directory, across threads and processes: the ELF is
    // copied out before the next build overwrites it.
    let lock = build_lock(target_dir)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Not --locked: the crate's Cargo.lock pins what it lists, and a dependency the runtime
    // gains later is added to it rather than failing every firmware build.
    cmd.current_dir(crate_dir)
        .args(["build", "--release", "--quiet", "--target-dir"])
        .arg(target_dir)
        .args(args)
        .env("HAWQ_MODEL", &model_path)
        .env("HAWQ_INPUTS", &inputs_path)
        .env(
            "HAWQ_FAULT",
            match fault {
                Fault::None => "",
                Fault::Panic => "panic",
                Fault::Fault => "fault",
            },
        );
    // The crate's .cargo/config.toml carries the target and the linker script flags: outer
    // settings must not override them.
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR"]
    {
        cmd.env_remove(var);
    }
    let output = cmd.output().with_context(|| format!("running cargo build in {}", crate_dir.display()))?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&dir);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if let Some(line) = stderr.lines().find(|l| l.contains("will not fit in region") || l.contains("overflowed by"))
        {
            return Ok(Err(line.trim().trim_start_matches("= note:").trim().to_string()));
        }
        bail!("building {} failed:\n{stderr}", crate_dir.display());
    }
    let built = target_dir.join(triple).join("release").join(package);
    let elf = dir.join(package);
    fs::copy(&built, &elf).with_context(|| format!("{}: cannot copy", built.display()))?;
    drop(lock);
    Ok(Ok((dir, elf)))
}

/// Holds the target directory `target_dir` for one build until dropped: an exclusive lock on a
/// file in it, which excludes every other handle to that file, in this process's other threads
/// as in other processes.
pub(crate) fn build_lock(target_dir: &Path) -> Result<File> {
    fs::create_dir_all(target_dir).with_context(|| format!("{}: cannot create", target_dir.display()))?;
    let lock = File::create(target_dir.join("hawq-build.lock"))?;
    lock.lock().context("locking the firmware build")?;
    Ok(lock)
}

/// A real board's firmware crate under `targets/boards/` (built, not run: it needs the board and
/// a debug probe; see targets/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// The folder under `targets/boards/`.
    pub name: &'static str,
    pub triple: &'static str,
    pub chip: &'static str,
}

pub const BOARDS: [Board; 3] = [
    Board { name: "nrf52840-dk", triple: "thumbv7em-none-eabihf", chip: "nRF52840 (Cortex-M4F)" },
    Board { name: "pico", triple: "thumbv6m-none-eabi", chip: "RP2040 (Cortex-M0+)" },
    Board { name: "esp32c3", triple: "riscv32imc-unknown-none-elf", chip: "ESP32-C3 (RV32IMC)" },
];

/// Builds a board's firmware around `model` and `inputs`; returns its sizes (flash without the
/// inputs, statics), or the linker's message when it does not fit.
pub fn build_board(board: Board, model: &[u8], inputs: &[u8]) -> Result<std::result::Result<ElfSizes, String>> {
    let dir = repo_root().join("targets/boards").join(board.name);
    let package = format!("hawq-board-{}", board.name);
    Ok(match cargo_build(&dir, &firmware_target_dir(), board.triple, &package, model, inputs, Fault::None, &[])? {
        Ok((work, elf)) => {
            let mut sizes = elf_sizes(&elf)?;
            sizes.image = sizes.image.saturating_sub(inputs.len() as u64);
            let _ = fs::remove_dir_all(work);
            Ok(sizes)
        }
        Err(why) => Err(why),
    })
}

/// Builds the minimal Cortex-M4 app of `examples/rust-app` around `model`: a copy of the template
/// with the module `hawq compile --emit-rust` writes for it, so what it measures is what a user
/// who starts from the template ships (no QEMU harness, no test inputs). Returns its sizes.
pub fn build_app(model: &[u8], opt: OptLevel) -> Result<ElfSizes> {
    let template = repo_root().join("examples/rust-app");
    let target_dir = firmware_target_dir();
    let work = target_dir.join("work");
    let dir = work.join(format!("rust-app-{}-{}", std::process::id(), SEQUENCE.fetch_add(1, Ordering::SeqCst)));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("src"))?;
    fs::create_dir_all(dir.join(".cargo"))?;
    for file in ["Cargo.lock", "build.rs", "memory.x", "src/main.rs", ".cargo/config.toml"] {
        fs::copy(template.join(file), dir.join(file)).with_context(|| format!("copying {file} of the template"))?;
    }
    let manifest = fs::read_to_string(template.join("Cargo.toml"))?;
    let runtime = repo_root().join("runtime");
    let relative = "path = \"../../runtime\"";
    if !manifest.contains(relative) {
        bail!("examples/rust-app/Cargo.toml no longer names the runtime as {relative}");
    }
    fs::write(
        dir.join("Cargo.toml"),
        manifest.replace(relative, &format!("path = {:?}", runtime.display().to_string())),
    )?;
    // The template's module name, so that its main.rs builds unchanged.
    let module = "digits_model";
    hawq_compiler::emit_rust::write(&dir.join("src"), module, model, "model.hq")?;

    let lock = build_lock(&target_dir.join("rust-app"))?;
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&dir)
        .args(["build", "--release", "--quiet", "--target-dir"])
        .arg(target_dir.join("rust-app"))
        .args(opt.cargo_args());
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR"]
    {
        cmd.env_remove(var);
    }
    let output = cmd.output().context("running cargo build for the app")?;
    drop(lock);
    if !output.status.success() {
        bail!("building the app in {} failed:\n{}", dir.display(), String::from_utf8_lossy(&output.stderr));
    }
    let sizes = elf_sizes(&target_dir.join("rust-app/thumbv7em-none-eabihf/release/hawq-rust-app"))?;
    let _ = fs::remove_dir_all(&dir);
    Ok(sizes)
}

/// What a QEMU run returned.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit status, `None` when the process was killed by a signal.
    pub status: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status == Some(0) && !self.timed_out
    }

    /// The run's output for an error message.
    pub fn transcript(&self) -> String {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        format!(
            "status {:?}{}\n--- stdout (last lines)\n{}\n--- stderr (last lines)\n{}",
            self.status,
            if self.timed_out { " (timed out)" } else { "" },
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// Runs a firmware under its QEMU command, killed after `timeout`.
pub fn run(fw: &Firmware, timeout: Duration) -> Result<Run> {
    run_elf(fw.target, &fw.elf, timeout)
}

/// Runs any program built for `target`'s machine (e.g. the C example of `examples/c`) under
/// the target's QEMU command, killed after `timeout`.
pub fn run_elf(target: Target, elf: &Path, timeout: Duration) -> Result<Run> {
    let qemu = target.qemu_command()?;
    let start = Instant::now();
    let output = Command::new("timeout")
        .args(["-k", "5", &format!("{}", timeout.as_secs().max(1))])
        .args(&qemu)
        .arg(elf)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", qemu[0]))?;
    let status = output.status.code();
    Ok(Run {
        status,
        // GNU timeout exits 124 when the command timed out (137 when it had to be killed).
        timed_out: matches!(status, Some(124) | Some(137)),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        wall: start.elapsed(),
    })
}

/// One layer of the per-layer breakdown (first inference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub index: usize,
    pub op: String,
    pub instructions: Option<u64>,
}

/// The firmware's report (see `targets/firmware-common/src/lib.rs`).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub target: String,
    /// The kernel path the firmware ran (`dsp`, `portable`, `scalar`, ...), from its header.
    pub kernels: Option<String>,
    pub model_bytes: usize,
    pub arena_bytes: usize,
    pub inputs: usize,
    pub layers: Vec<Layer>,
    /// Instructions per inference (`None` without a counter) and the output bytes.
    pub inferences: Vec<(Option<u64>, Vec<u8>)>,
    pub stack_used: Option<usize>,
    /// The deepest the stack went below the caller of `Interpreter::invoke` (the runtime's own).
    pub stack_runtime: Option<usize>,
    pub error: Option<String>,
    pub ok: bool,
}

fn hex(s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd-length hex output");
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| anyhow!("bad hex: {e}")))
        .collect()
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

fn count(v: &str) -> Result<Option<u64>> {
    if v == "-" {
        Ok(None)
    } else {
        Ok(Some(v.parse().map_err(|e| anyhow!("bad count '{v}': {e}"))?))
    }
}

/// Parses a firmware's stdout.
pub fn parse(stdout: &str) -> Result<Report> {
    let mut r = Report::default();
    let mut header = false;
    for line in stdout.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("hawq ") {
            header = true;
            r.target = field(rest, "target").unwrap_or_default().to_string();
            r.kernels = field(rest, "kernels").map(str::to_string);
            let num = |k: &str| -> Result<usize> {
                field(rest, k).ok_or_else(|| anyhow!("header lacks {k}"))?.parse().map_err(|e| anyhow!("{k}: {e}"))
            };
            r.model_bytes = num("model_bytes")?;
            r.arena_bytes = num("arena_bytes")?;
            r.inputs = num("inputs")?;
        } else if let Some(rest) = line.strip_prefix("layer ") {
            let mut w = rest.split_whitespace();
            let (Some(index), Some(op), Some(n)) = (w.next(), w.next(), w.next()) else {
                bail!("bad layer line: {line}");
            };
            r.layers.push(Layer { index: index.parse()?, op: op.to_string(), instructions: count(n)? });
        } else if let Some(rest) = line.strip_prefix("inference ") {
            let n: usize = rest.split_whitespace().next().unwrap_or_default().parse()?;
            if n != r.inferences.len() {
                bail!("inference {n} out of order");
            }
            let instructions = count(field(rest, "instructions").ok_or_else(|| anyhow!("no instructions: {line}"))?)?;
            let output = hex(field(rest, "output").unwrap_or_default())?;
            r.inferences.push((instructions, output));
        } else if let Some(rest) = line.strip_prefix("stack ") {
            r.stack_used = field(rest, "used").and_then(|v| v.parse().ok());
            r.stack_runtime = field(rest, "runtime").and_then(|v| v.parse().ok());
        } else if let Some(msg) = line.strip_prefix("error: ") {
            r.error = Some(msg.to_string());
        } else if line == "ok" {
            r.ok = true;
        }
    }
    if !header && r.error.is_none() {
        bail!("no report header and no error in the output");
    }
    Ok(r)
}

/// The host runtime's output bytes for each raw input (the reference every target must equal).
pub fn host_outputs(model: &[u8], inputs: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
    let model = hawq_runtime::Model::from_bytes(model).map_err(|e| anyhow!("host: {e}"))?;
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut it = hawq_runtime::Interpreter::new(&model, &mut arena).map_err(|e| anyhow!("host: {e}"))?;
    inputs
        .iter()
        .map(|x| {
            it.write_input_raw(x).map_err(|e| anyhow!("host: {e}"))?;
            it.invoke().map_err(|e| anyhow!("host: {e}"))?;
            Ok(it.output_bytes().to_vec())
        })
        .collect()
}

/// The first `n` evaluation inputs as raw bytes. When the data's samples are longer than the
/// model's input (the anomaly-detection files: 196 windows of 640 values), the first `n`
/// windows of the first sample at stride 128, as the real-model suite takes them.
pub fn eval_inputs(data: &Dataset, input_elements: usize, n: usize) -> Result<Vec<Vec<u8>>> {
    let per = data.sample_len();
    if per == input_elements {
        return Ok((0..n.min(data.len())).map(|i| data.raw(i)).collect());
    }
    if per > input_elements {
        let width = data.raw(0).len() / per;
        let first = data.raw(0);
        let stride = 128;
        let windows = (per - input_elements) / stride + 1;
        return Ok((0..n.min(windows))
            .map(|w| first[w * stride * width..(w * stride + input_elements) * width].to_vec())
            .collect());
    }
    bail!("{}: samples of {per} values, the model's input takes {input_elements}", data.path.display())
}

/// The two bit configurations the QEMU tests and the bench compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Config {
    /// Every weight and activation at 8 bits.
    Int8,
    /// 2-, 4- and 8-bit weights and some 4-bit activations ([`mixed_bits`]): every packing.
    Mixed,
    /// What HAWQ-V2 chooses for weights at 0.55× the uniform 8-bit weight bytes (the compiler's
    /// `--budget-kib`, activations at 8 bits): the mixed precision a user would deploy.
    Hawq,
}

impl Config {
    /// The configurations the QEMU tests run: between them every packing of the contract.
    pub const ALL: [Config; 2] = [Config::Int8, Config::Mixed];
    /// Every configuration, for the bench.
    pub const BENCH: [Config; 3] = [Config::Int8, Config::Mixed, Config::Hawq];

    pub fn name(self) -> &'static str {
        match self {
            Config::Int8 => "int8",
            Config::Mixed => "mixed",
            Config::Hawq => "hawq",
        }
    }

    /// The bit widths of this configuration; [`Config::Hawq`] measures the model's Hessian on
    /// the calibration set.
    pub fn bits(self, prepared: &Prepared, calib: &Dataset) -> Result<BitConfig> {
        Ok(match self {
            Config::Int8 => BitConfig::uniform(&prepared.graph, 8, 8),
            Config::Mixed => mixed_bits(&prepared.graph, prepared.raw),
            Config::Hawq => hawq_bits(prepared, calib, HAWQ_BUDGET_FRACTION)?,
        })
    }
}

/// The weight budget of [`Config::Hawq`] as a fraction of uniform 8-bit weight bytes (the
/// HAWQ-V2 acceptance point of the project).
pub const HAWQ_BUDGET_FRACTION: f64 = 0.55;

/// HAWQ-V2's allocation of weight bits within `fraction` of the uniform 8-bit weight bytes.
pub fn hawq_bits(prepared: &Prepared, calib: &Dataset, fraction: f64) -> Result<BitConfig> {
    let int8 = compile(prepared, &BitConfig::uniform(&prepared.graph, 8, 8))?;
    let budget = (fraction * int8.weight_bytes as f64).floor() as usize;
    let measured = measure_sensitivity(prepared, calib, LossChoice::Auto, &TraceOptions::default())?;
    let perturbation = |n: usize, b: u8| prepared.weight_perturbation(n, b);
    let allocation = allocate(
        &prepared.graph,
        &measured.sensitivity,
        &prepared.calibration,
        prepared.raw,
        &perturbation,
        Budget { weight_bytes: Some(budget), ..Budget::default() },
        &[],
    )?;
    Ok(allocation.bits)
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mixed-precision configuration that exercises every packing: the first and last layers with
/// weights at 8 bits, the layers between alternating 4 and 2 bits; node outputs alternating 8
/// and 4 bits (starting at 8), the graph's output at 8. A uint8/int8 input stays 8-bit (the
/// compiler requires it); a float input is quantized to 4 bits.
pub fn mixed_bits(graph: &Graph, raw: RawKind) -> BitConfig {
    let mut bits = BitConfig::uniform(graph, 8, 8);
    let weighted: Vec<usize> = (0..graph.nodes.len()).filter(|&i| graph.nodes[i].op.has_weights()).collect();
    for (k, &i) in weighted.iter().enumerate() {
        let first_or_last = k == 0 || k + 1 == weighted.len();
        bits.weight_bits[i] = if first_or_last {
            8
        } else if k % 2 == 1 {
            4
        } else {
            2
        };
    }
    for (k, node) in graph.nodes.iter().enumerate() {
        if node.output != graph.output {
            bits.act_bits[node.output] = if k % 2 == 0 { 8 } else { 4 };
        }
    }
    bits.act_bits[graph.input] = if raw == RawKind::F32 { 4 } else { 8 };
    bits
}

/// A firmware's results on one model, compared with the host.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub target: Target,
    /// The kernel path the firmware reported.
    pub kernels: Option<String>,
    /// `Err(linker message)` when the model does not fit the machine.
    pub fits: std::result::Result<(), String>,
    /// Instructions of each inference (empty without a counter or when it does not fit).
    pub instructions: Vec<u64>,
    pub layers: Vec<Layer>,
    /// Flash a deployment needs (code + model), from the ELF's sections.
    pub flash_bytes: u64,
    pub model_bytes: usize,
    pub arena_bytes: usize,
    pub stack_bytes: Option<usize>,
    /// The runtime's part of it: the deepest below the caller of `Interpreter::invoke`.
    pub runtime_stack_bytes: Option<usize>,
    /// Indices of the inputs whose output bytes differ from the host's.
    pub mismatches: Vec<usize>,
    pub inferences: usize,
    pub wall: Duration,
}

impl Measurement {
    /// Mean instructions per inference (they differ per input only on data-dependent code).
    pub fn mean_instructions(&self) -> Option<u64> {
        if self.instructions.is_empty() {
            return None;
        }
        let n = self.instructions.len() as u64;
        Some((self.instructions.iter().sum::<u64>() + n / 2) / n)
    }

    pub fn match_host(&self) -> bool {
        self.fits.is_ok() && self.mismatches.is_empty() && self.inferences > 0
    }

    /// Flash minus the model: the program's code and constants.
    pub fn code_bytes(&self) -> u64 {
        self.flash_bytes.saturating_sub(self.model_bytes as u64)
    }
}

/// Builds, runs and checks one model on one target: every output byte must equal the host's
/// (`expected`), the run must exit 0 and report every input. A model that does not fit the
/// machine is a result (`fits: Err`), any other failure an error.
pub fn measure(target: Target, model: &[u8], inputs: &[Vec<u8>], expected: &[Vec<u8>]) -> Result<Measurement> {
    measure_with(target, Kernels::Auto, OptLevel::Speed, model, inputs, expected)
}

/// [`measure`] with a choice of kernels.
pub fn measure_with(
    target: Target,
    kernels: Kernels,
    opt: OptLevel,
    model: &[u8],
    inputs: &[Vec<u8>],
    expected: &[Vec<u8>],
) -> Result<Measurement> {
    let joined: Vec<u8> = inputs.concat();
    let mut m = Measurement {
        target,
        kernels: None,
        fits: Ok(()),
        instructions: Vec::new(),
        layers: Vec::new(),
        flash_bytes: 0,
        model_bytes: model.len(),
        arena_bytes: 0,
        stack_bytes: None,
        runtime_stack_bytes: None,
        mismatches: Vec::new(),
        inferences: 0,
        wall: Duration::ZERO,
    };
    let fw = match build_with(target, kernels, opt, model, &joined, Fault::None)? {
        Build::Built(fw) => fw,
        Build::DoesNotFit(why) => {
            m.fits = Err(why);
            return Ok(m);
        }
    };
    m.flash_bytes = fw.flash_bytes();
    let run = run(&fw, Duration::from_secs(600))?;
    m.wall = run.wall;
    if !run.success() {
        bail!("{target}: the firmware failed\n{}", run.transcript());
    }
    let report = parse(&run.stdout).with_context(|| format!("{target}: {}", run.transcript()))?;
    if !report.ok || report.inferences.len() != inputs.len() {
        bail!(
            "{target}: incomplete report ({} of {} inferences)\n{}",
            report.inferences.len(),
            inputs.len(),
            run.transcript()
        );
    }
    m.arena_bytes = report.arena_bytes;
    m.kernels = report.kernels.clone();
    m.stack_bytes = report.stack_used;
    m.runtime_stack_bytes = report.stack_runtime;
    m.inferences = report.inferences.len();
    for (i, ((n, out), want)) in report.inferences.iter().zip(expected).enumerate() {
        if out != want {
            m.mismatches.push(i);
        }
        if let Some(n) = n {
            m.instructions.push(*n);
        }
    }
    if target.counts_instructions() && m.instructions.len() != inputs.len() {
        bail!("{target}: the firmware reported no instruction counts");
    }
    // The timers are 32-bit: a wrapped count would be far below the sum of its layers.
    if let (Some(&first), false) = (m.instructions.first(), report.layers.is_empty()) {
        let layers: u64 = report.layers.iter().filter_map(|l| l.instructions).sum();
        if first + first / 100 + 1000 < layers {
            bail!("{target}: instruction counter wrapped ({first} for the inference, {layers} for its layers)");
        }
    }
    m.layers = report.layers;
    Ok(m)
}

/// A model to compile and run: an ONNX file, its calibration and evaluation data, and the input
/// transform.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: String,
    pub model: PathBuf,
    pub calib: PathBuf,
    pub eval: PathBuf,
    pub transform: InputTransform,
}

impl ModelSpec {
    /// A fixture of `../shared/fixtures` (the real-model suite's).
    pub fn fixture(f: &crate::Fixture, root: &Path) -> ModelSpec {
        ModelSpec {
            name: f.name.to_string(),
            model: root.join(f.model),
            calib: root.join(f.calib),
            eval: root.join(f.eval),
            transform: f.transform,
        }
    }

    /// The bundled example `examples/digits` (the project's own model and data).
    pub fn digits() -> ModelSpec {
        let dir = repo_root().join("examples/digits");
        ModelSpec {
            name: "digits".to_string(),
            model: dir.join("model.onnx"),
            calib: dir.join("calib.npz"),
            eval: dir.join("eval.npz"),
            transform: InputTransform { scale: 0.0625, offset: 0.0 },
        }
    }
}

/// One compiled model with its inputs and the host runtime's outputs for them.
#[derive(Debug, Clone)]
pub struct Case {
    pub model: String,
    pub config: Config,
    pub blob: Vec<u8>,
    pub inputs: Vec<Vec<u8>>,
    pub expected: Vec<Vec<u8>>,
}

/// Compiles `spec` in each configuration (calibrating once) and takes its first `n` evaluation
/// inputs, with the host runtime's outputs as the reference.
pub fn compile_cases(spec: &ModelSpec, configs: &[Config], n: usize) -> Result<Vec<Case>> {
    let graph = import(&spec.model).with_context(|| spec.name.clone())?;
    let calib = Dataset::load(&spec.calib)?;
    let eval = Dataset::load(&spec.eval)?;
    let input_elements = graph.values[graph.input].elements();
    let inputs = eval_inputs(&eval, input_elements, n)?;
    let prepared = prepare(graph, &calib, spec.transform)?;
    configs
        .iter()
        .map(|&config| {
            let bits = config.bits(&prepared, &calib)?;
            let compiled = compile(&prepared, &bits).with_context(|| format!("compiling {} ({config})", spec.name))?;
            let expected = host_outputs(&compiled.blob, &inputs)?;
            Ok(Case { model: spec.name.clone(), config, blob: compiled.blob, inputs: inputs.clone(), expected })
        })
        .collect()
}
