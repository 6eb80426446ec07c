//! The board app templates (examples/apps: nRF52840-DK, Pico, ESP32-C3): each one's committed
//! model module is what `hawq compile --emit-rust` writes for its model file, and each builds for
//! its chip with its locked dependencies, fitting the chip's flash and RAM. Built only: flashing
//! needs the board.

use std::path::PathBuf;
use std::process::Command;

use hawq_e2e::qemu;

/// A template: its folder under examples/apps, Rust target, binary name, and the chip's flash
/// and RAM (what the image and statics must fit).
struct Template {
    dir: &'static str,
    target: &'static str,
    bin: &'static str,
    flash: u64,
    ram: u64,
}

const TEMPLATES: [Template; 3] = [
    Template {
        dir: "nrf52840-dk",
        target: "thumbv7em-none-eabihf",
        bin: "hawq-app-nrf52840-dk",
        flash: 1024 << 10,
        ram: 256 << 10,
    },
    Template { dir: "pico", target: "thumbv6m-none-eabi", bin: "hawq-app-pico", flash: 2048 << 10, ram: 264 << 10 },
    Template {
        dir: "esp32c3",
        target: "riscv32imc-unknown-none-elf",
        bin: "hawq-app-esp32c3",
        flash: 4096 << 10,
        ram: 400 << 10,
    },
];

fn folder(t: &Template) -> PathBuf {
    qemu::repo_root().join("examples/apps").join(t.dir)
}

#[test]
fn each_committed_module_is_what_emit_rust_writes_for_its_model() {
    for t in &TEMPLATES {
        let src = folder(t).join("src");
        let blob = std::fs::read(src.join("digits_model.hq")).expect("the committed model");
        hawq_runtime::Model::from_bytes(&blob).unwrap_or_else(|e| {
            panic!("examples/apps/{}: the model does not load with this runtime ({e}): regenerate it (README)", t.dir)
        });
        let committed = std::fs::read_to_string(src.join("digits_model.rs")).expect("the committed module");
        let written = hawq_compiler::emit_rust::source("digits_model", &blob, "model.onnx").unwrap();
        assert_eq!(committed, written, "examples/apps/{}/src/digits_model.rs is stale: regenerate it (README)", t.dir);
    }
}

#[test]
fn each_template_builds_for_its_board_and_fits_it() {
    // The firmware's target directory: the boards' firmware (targets/boards) builds the same HAL
    // crates with the same profile, so a test run compiles them once.
    let target_dir = qemu::firmware_target_dir();
    let mut report = Vec::new();
    for t in &TEMPLATES {
        let out = Command::new(env!("CARGO"))
            .args(["build", "--release", "--locked", "--quiet"])
            .current_dir(folder(t))
            .env("CARGO_TARGET_DIR", &target_dir)
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "examples/apps/{} does not build (missing target {}? run scripts/setup-cross.sh):\n{}",
            t.dir,
            t.target,
            String::from_utf8_lossy(&out.stderr)
        );
        let elf = target_dir.join(t.target).join("release").join(t.bin);
        let sizes = qemu::elf_sizes(&elf).unwrap();
        let model = std::fs::metadata(folder(t).join("src/digits_model.hq")).unwrap().len();
        assert!(sizes.image > model, "{}: the model is not in the image", t.dir);
        assert!(sizes.image <= t.flash, "{}: {} B of image do not fit {} B of flash", t.dir, sizes.image, t.flash);
        assert!(sizes.statics <= t.ram, "{}: {} B of statics do not fit {} B of RAM", t.dir, sizes.statics, t.ram);
        report.push(format!(
            "examples/apps/{}: flash {} B (model {model} B), RAM statics {} B (arena included), {}",
            t.dir, sizes.image, sizes.statics, t.target
        ));
    }
    for line in report {
        println!("{line}");
    }
}
