//! The C interface end to end, as a C firmware developer uses it: `hawq compile --emit-c`
//! writes the bundled digits model (examples/digits, int8 and mixed precision) as C source,
//! `examples/c/main.c` includes it with `hawq.h`, Debian's `arm-none-eabi-gcc` compiles it and
//! links `libhawq_runtime_c.a` (built for thumbv7em-none-eabihf) by a minimal startup and linker
//! script, and QEMU's Cortex-M4 (mps2-an386, the machine of `targets/cortex-m4`) runs it. Every
//! output byte must equal the host runtime's, the library's description of the model must equal
//! the generated macros (checked in C on the device), and the instruction count of an inference
//! must be that of the Rust firmware within 5%, and no `core::fmt` may be linked. Prints the
//! program's code and RAM sizes.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use hawq_e2e::c_program::{
    build_c_program, build_staticlib, check_gcc, example_dir, inputs_header, parse_map, read, symbols_containing,
};
use hawq_e2e::qemu::{self, compile_cases, firmware_target_dir, repo_root, Config, ModelSpec, Target};

/// Removes its folder when dropped.
struct Work(PathBuf);

impl Drop for Work {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const INPUTS: usize = 8;

#[test]
fn a_c_program_linking_the_static_library_runs_digits_on_qemu_cortex_m4_like_the_host() -> Result<()> {
    qemu::check_tools(&[Target::CortexM4])?;
    check_gcc()?;
    let lib = build_staticlib(Target::CortexM4.triple())?;
    let cases = compile_cases(&ModelSpec::digits(), &Config::ALL, INPUTS)?;
    let example = example_dir();
    for case in &cases {
        let work =
            Work(firmware_target_dir().join("work").join(format!("c-api-{}-{}", std::process::id(), case.config)));
        let _ = fs::remove_dir_all(&work.0);
        fs::create_dir_all(&work.0)?;
        let (_, model_c) = hawq_compiler::emit_c::write(&work.0, "digits", &case.blob, "model.onnx")?;
        fs::write(work.0.join("test_inputs.h"), inputs_header(&case.inputs, "DIGITS_INPUT_RAW_BYTES"))?;
        let program = build_c_program(
            &work.0,
            &[example.join("main.c"), example.join("qemu-mps2-an386/board.c"), model_c],
            &[example.clone(), repo_root().join("runtime-c/include"), work.0.clone()],
            std::slice::from_ref(&lib),
            &example.join("qemu-mps2-an386/link.ld"),
        )
        .with_context(|| format!("digits {}", case.config))?;

        let run = qemu::run_elf(Target::CortexM4, &program.elf, Duration::from_secs(120))?;
        ensure!(run.success(), "digits {}: the C program failed\n{}", case.config, run.transcript());
        let report = qemu::parse(&run.stdout).with_context(|| run.transcript())?;
        ensure!(report.ok && report.error.is_none(), "digits {}: {}", case.config, run.transcript());
        ensure!(
            report.inferences.len() == INPUTS,
            "{} of {INPUTS} inferences\n{}",
            report.inferences.len(),
            run.stdout
        );
        for (i, ((_, got), want)) in report.inferences.iter().zip(&case.expected).enumerate() {
            ensure!(
                got == want,
                "digits {} input {i}: C on the Cortex-M4 gave {got:02x?}, the host {want:02x?}",
                case.config
            );
        }
        // A status crosses the interface with its number and message.
        let arena_short = run.stdout.lines().find(|l| l.starts_with("status arena_short=")).unwrap_or_default();
        ensure!(
            arena_short == "status arena_short=20 arena too small for the model (see hawq_arena_bytes)",
            "the short arena's status: '{arena_short}'"
        );

        // Instructions per inference, against the Rust firmware on the same machine.
        let c_counts: Vec<u64> = report.inferences.iter().filter_map(|(n, _)| *n).collect();
        ensure!(c_counts.len() == INPUTS, "the C program reported no instruction counts");
        let c_mean = c_counts.iter().sum::<u64>() / c_counts.len() as u64;
        let rust = qemu::measure(Target::CortexM4, &case.blob, &case.inputs, &case.expected)?;
        ensure!(rust.match_host(), "the Rust firmware does not match the host: {:?}", rust.mismatches);
        let rust_mean = rust.mean_instructions().context("the Rust firmware reported no counts")?;
        let ratio = c_mean as f64 / rust_mean as f64;
        ensure!(
            (0.95..=1.05).contains(&ratio),
            "digits {}: the C program takes {c_mean} instructions per inference, the Rust firmware {rust_mean}",
            case.config
        );

        // Sizes: the linker's map by origin, the stack's high-water mark.
        let linked = parse_map(&read(&program.map)?)?;
        let c_text = linked.get(".text", "main.o") + linked.get(".text", "board.o") + linked.get(".vectors", "board.o");
        let lib_text = linked.get(".text", "libhawq_runtime_c.a");
        let builtins_text = linked.get(".text", "compiler_builtins");
        let libgcc_text = linked.get(".text", "libgcc.a");
        let lib_rodata = linked.get(".rodata", "libhawq_runtime_c.a") + linked.get(".rodata", "compiler_builtins");
        let model_rodata = linked.get(".rodata", "digits_model.o");
        let inputs_bytes: u64 = case.inputs.iter().map(|x| x.len() as u64).sum();
        let c_rodata = linked.get(".rodata", "main.o") + linked.get(".rodata", "board.o");
        let (data, bss) = (linked.section(".data"), linked.section(".bss"));
        let stack = report.stack_used.context("no stack report")?;
        ensure!(model_rodata >= case.blob.len() as u64, "the model array is not in .rodata");
        ensure!(lib_text > 0 && c_text > 0, "the map attributes no code: {linked:?}");
        ensure!(bss >= report.arena_bytes as u64, ".bss ({bss} B) does not hold the arena ({} B)", report.arena_bytes);
        // No core::fmt: the library formats nothing (static status strings, a panic handler that
        // traps without a message), and LTO drops the formatting of the runtime's unreachable
        // panics. The demangled runtime's names show that the search can find Rust symbols.
        ensure!(!symbols_containing(&program.elf, "hawq_runtime::")?.is_empty(), "no Rust symbols found by nm");
        let fmt = symbols_containing(&program.elf, "core::fmt")?;
        ensure!(fmt.is_empty(), "core::fmt is linked into the C program: {fmt:?}");
        println!(
            "c-api digits {config}: outputs equal the host on {INPUTS} inputs; {c_mean} instructions per \
             inference (Rust firmware {rust_mean}, {ratio:.4}x)\n\
             \x20 flash: C program .text {c_text} B (main.c + board.c + vectors), libhawq_runtime_c.a .text \
             {lib_text} B + compiler_builtins {builtins_text} B + libgcc {libgcc_text} B, library .rodata {lib_rodata} B, \
             model array {model_rodata} B, C .rodata {c_rodata} B (of which test inputs {inputs_bytes} B); \
             total .text {total_text} B\n\
             \x20 RAM: arena {arena} B, .bss {bss} B (arena + handles + line buffer), .data {data} B, stack used {stack} B; \
             no core::fmt linked",
            config = case.config,
            total_text = linked.section(".text") + linked.section(".vectors"),
            arena = report.arena_bytes,
        );
    }
    Ok(())
}
