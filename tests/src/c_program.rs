//! The C side of the runtime as a user builds it: the static library of `runtime-c/` for a
//! microcontroller, and the C example of `examples/c` compiled with Debian's `arm-none-eabi-gcc`
//! around a model written by `hawq compile --emit-c`, linked into a Cortex-M4 program for
//! QEMU's mps2-an386 (the machine of `targets/cortex-m4`). Used by `tests/tests/c_api.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::qemu::{build_lock, firmware_target_dir, repo_root};

/// The cargo profile of the static library (the workspace's `release-c`: fat LTO, one codegen
/// unit, `panic = "abort"`).
pub const STATICLIB_PROFILE: &str = "release-c";

/// `arm-none-eabi-gcc`'s flags for the Cortex-M4F with the hard-float ABI of
/// `thumbv7em-none-eabihf`.
pub const CORTEX_M4_FLAGS: [&str; 4] = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"];

/// The C compiler's warnings and code generation for the example (freestanding: no C library).
pub const C_FLAGS: [&str; 10] = [
    "-std=c11",
    "-Os",
    "-g",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-ffreestanding",
    "-ffunction-sections",
    "-fdata-sections",
    "-fno-common",
];

pub const GCC: &str = "arm-none-eabi-gcc";

/// Fails with the fix when the cross C compiler is missing: this suite never skips.
pub fn check_gcc() -> Result<()> {
    match Command::new(GCC).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => bail!("{GCC} not found: run scripts/setup-cross.sh (installs Debian's gcc-arm-none-eabi)"),
    }
}

/// The cargo command that builds `libhawq_runtime_c.a` for `triple`, as the README gives it
/// (`cargo rustc --crate-type staticlib`: the package is also an rlib for its Rust tests, and
/// cargo applies the profile's LTO only to a library built as a static library alone).
pub fn staticlib_args(triple: &str) -> Vec<String> {
    [
        "rustc",
        "-p",
        "hawq-runtime-c",
        "--lib",
        "--profile",
        STATICLIB_PROFILE,
        "--target",
        triple,
        "--crate-type",
        "staticlib",
    ]
    .map(String::from)
    .to_vec()
}

/// Builds `libhawq_runtime_c.a` for `triple` (as the README tells users to) into the shared
/// firmware target directory; returns its path.
pub fn build_staticlib(triple: &str) -> Result<PathBuf> {
    let target_dir = firmware_target_dir();
    let _lock = build_lock(&target_dir)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args(staticlib_args(triple))
        .args(["--quiet", "--locked", "--target-dir"])
        .arg(&target_dir);
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR"]
    {
        cmd.env_remove(var);
    }
    let out = cmd.output().context("running cargo build -p hawq-runtime-c")?;
    if !out.status.success() {
        bail!("building hawq-runtime-c for {triple} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let lib = target_dir.join(triple).join(STATICLIB_PROFILE).join("libhawq_runtime_c.a");
    if !lib.is_file() {
        bail!("{}: not built", lib.display());
    }
    Ok(lib)
}

/// `test_inputs.h` of `examples/c/main.c`: the raw inputs as a C array.
pub fn inputs_header(inputs: &[Vec<u8>], raw_bytes_macro: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "/* Made by tests/tests/c_api.rs: {} raw inputs of the model. */", inputs.len());
    let _ = writeln!(s, "#define TEST_INPUT_COUNT {}u", inputs.len());
    let _ = writeln!(s, "static const uint8_t test_inputs[TEST_INPUT_COUNT][{raw_bytes_macro}] = {{");
    for x in inputs {
        s.push_str("    {");
        for (i, b) in x.iter().enumerate() {
            if i % 16 == 0 {
                s.push_str("\n        ");
            }
            let _ = write!(s, "0x{b:02x}, ");
        }
        s.push_str("\n    },\n");
    }
    s.push_str("};\n");
    s
}

/// A linked C program and its linker map.
#[derive(Debug)]
pub struct CProgram {
    pub elf: PathBuf,
    pub map: PathBuf,
}

/// Compiles each of `sources` (with `includes`) to an object named after it in `work`, and links
/// them with `libs` (in order, then libgcc) by `linker_script`, with unused sections removed.
pub fn build_c_program(
    work: &Path,
    sources: &[PathBuf],
    includes: &[PathBuf],
    libs: &[PathBuf],
    linker_script: &Path,
) -> Result<CProgram> {
    let mut objects = Vec::new();
    for src in sources {
        let stem = src.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let obj = work.join(format!("{stem}.o"));
        let mut cmd = Command::new(GCC);
        cmd.args(CORTEX_M4_FLAGS).args(C_FLAGS);
        for dir in includes {
            cmd.arg("-I").arg(dir);
        }
        cmd.arg("-c").arg(src).arg("-o").arg(&obj);
        run(cmd, &format!("compiling {}", src.display()))?;
        objects.push(obj);
    }
    let elf = work.join("program.elf");
    let map = work.join("program.map");
    let mut cmd = Command::new(GCC);
    cmd.args(CORTEX_M4_FLAGS)
        .args(["-nostdlib", "-Wl,--gc-sections", "-T"])
        .arg(linker_script)
        .arg(format!("-Wl,-Map={}", map.display()))
        .args(&objects)
        .args(libs)
        .arg("-lgcc")
        .arg("-o")
        .arg(&elf);
    run(cmd, "linking")?;
    Ok(CProgram { elf, map })
}

fn run(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{what}: running {GCC}"))?;
    if !out.status.success() {
        bail!("{what} failed: {cmd:?}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Bytes a linked program takes, by output section (`.text`, `.rodata`, `.data`, `.bss`, ...)
/// and by where the input section came from, read from a GNU ld map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Linked {
    /// `(output section, origin) → bytes`. Origins: an object file's name (`main.o`), the
    /// member of an archive (`libhawq_runtime_c.a` for the runtime and interface, whatever the
    /// member; `compiler_builtins` for that member of it), `libgcc.a`, or `*fill*`.
    pub bytes: BTreeMap<(String, String), u64>,
}

impl Linked {
    pub fn get(&self, section: &str, origin: &str) -> u64 {
        self.bytes.get(&(section.to_string(), origin.to_string())).copied().unwrap_or(0)
    }

    /// Bytes of `section` from every origin.
    pub fn section(&self, section: &str) -> u64 {
        self.bytes.iter().filter(|((s, _), _)| s == section).map(|(_, &n)| n).sum()
    }

    /// Bytes of every section from `origin`.
    pub fn origin(&self, origin: &str) -> u64 {
        self.bytes.iter().filter(|((_, o), _)| o == origin).map(|(_, &n)| n).sum()
    }
}

/// Where an input section of the map came from, as [`Linked`] names it.
fn origin(path: &str) -> String {
    if let Some((archive, member)) = path.split_once('(') {
        let archive = Path::new(archive).file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if archive == "libhawq_runtime_c.a" && member.starts_with("compiler_builtins") {
            return "compiler_builtins".to_string();
        }
        return archive;
    }
    Path::new(path).file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.to_string())
}

fn is_hex(s: &str) -> bool {
    s.strip_prefix("0x").is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Parses a GNU ld map (`-Wl,-Map=`): the part after "Linker script and memory map", where an
/// output section starts at column 0 and each input section is ` name address size file`, the
/// name alone on its line when it is long.
pub fn parse_map(text: &str) -> Result<Linked> {
    let Some(start) = text.find("Linker script and memory map") else {
        bail!("not a GNU ld map: no memory map");
    };
    let mut linked = Linked::default();
    let mut output = String::new();
    let mut pending: Option<String> = None;
    for line in text[start..].lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            pending = None;
            if line.starts_with('.') {
                output = fields[0].to_string();
            } else {
                output.clear();
            }
            continue;
        }
        if output.is_empty() {
            continue;
        }
        let (name, rest) = if let Some(name) = pending.take() {
            (name, &fields[..])
        } else if fields[0].starts_with('.') || fields[0] == "*fill*" || fields[0] == "COMMON" {
            if fields.len() == 1 {
                pending = Some(fields[0].to_string());
                continue;
            }
            (fields[0].to_string(), &fields[1..])
        } else {
            continue;
        };
        // `address size [file]`; a symbol line is `address name`, which has no size.
        if rest.len() < 2 || !is_hex(rest[0]) || !is_hex(rest[1]) {
            continue;
        }
        let size = u64::from_str_radix(&rest[1][2..], 16)?;
        if size == 0 {
            continue;
        }
        let from = if name == "*fill*" { "*fill*".to_string() } else { origin(&rest[2..].join(" ")) };
        *linked.bytes.entry((output.clone(), from)).or_default() += size;
    }
    if linked.bytes.is_empty() {
        bail!("the map lists no input sections");
    }
    Ok(linked)
}

/// Symbols of the linked program whose name contains `needle` (from `arm-none-eabi-nm`).
pub fn symbols_containing(elf: &Path, needle: &str) -> Result<Vec<String>> {
    let out = Command::new("arm-none-eabi-nm").arg("-C").arg(elf).output().context("running arm-none-eabi-nm")?;
    if !out.status.success() {
        bail!("arm-none-eabi-nm failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(needle)).map(str::to_string).collect())
}

/// The C example's folder (`examples/c`).
pub fn example_dir() -> PathBuf {
    repo_root().join("examples/c")
}

/// Reads a text file with its path in the error.
pub fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_sections_are_summed_by_origin() {
        let map = "\
Archive member included to satisfy reference by file (symbol)
 .text          0x00000000       0x99 /x/discarded.o

Linker script and memory map

.vectors        0x00000000       0x40
 *(.vectors)
 .vectors       0x00000000       0x40 /w/board.o
                0x00000000                vectors

.text           0x00000040      0x200
 .text.main     0x00000040       0x60 /w/main.o
 .text._ZN14hawq_runtime11interpreter6invoke17h0123456789abcdefE
                0x000000a0      0x100 /t/libhawq_runtime_c.a(hawq_runtime_c-1234.hawq_runtime_c.abc-cgu.0.rcgu.o)
                0x000000a0                hawq_invoke
 .text.memcpy   0x000001a0       0x40 /t/libhawq_runtime_c.a(compiler_builtins-5678.compiler_builtins.def-cgu.0.rcgu.o)
 *fill*         0x000001e0        0x2 
 .text          0x000001e4       0x5c /usr/lib/gcc/arm-none-eabi/12.2.1/thumb/v7e-m+fp/hard/libgcc.a(_udivmoddi4.o)

.bss            0x20000000      0x410
 .bss.arena     0x20000000      0x400 /w/main.o
 COMMON         0x20000400       0x10 /w/board.o
";
        let l = parse_map(map).unwrap();
        assert_eq!(l.get(".vectors", "board.o"), 0x40);
        assert_eq!(l.get(".text", "main.o"), 0x60);
        assert_eq!(l.get(".text", "libhawq_runtime_c.a"), 0x100);
        assert_eq!(l.get(".text", "compiler_builtins"), 0x40);
        assert_eq!(l.get(".text", "*fill*"), 2);
        assert_eq!(l.get(".text", "libgcc.a"), 0x5c);
        assert_eq!(l.section(".text"), 0x60 + 0x100 + 0x40 + 2 + 0x5c);
        assert_eq!(l.section(".bss"), 0x410);
        assert_eq!(l.origin("discarded.o"), 0, "sections before the memory map are not linked");
        assert!(parse_map("nothing").is_err());
    }
}
