//! `hawq new-app`: a firmware project for a board around a compiled model, from the app
//! templates of `examples/` (built into the binary): the template's files, the model module
//! `--emit-rust` writes for the model, the template's `main.rs` pointed at it, and its
//! `hawq-runtime` dependency pointed at this checkout's runtime (the crate is not on crates.io).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hawq_runtime::format::RawInput;
use hawq_runtime::Model;

/// A board with an app template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Board {
    /// nRF52840-DK (Cortex-M4F): SAADC, LED1, defmt over RTT, probe-rs.
    Nrf52840Dk,
    /// Raspberry Pi Pico (RP2040, Cortex-M0+): ADC on GPIO26, the LED, UF2 or probe-rs.
    Pico,
    /// ESP32-C3 (RV32IMC): ADC on GPIO3, an LED on GPIO7, esp-println, espflash.
    Esp32c3,
    /// Any Cortex-M4F (QEMU's mps2-an386 memory map): the minimal app, no HAL.
    CortexM4,
}

/// The template's files, as `(path in the project, contents)`; `src/main.rs` and `Cargo.toml`
/// are rewritten on the way out.
fn template(board: Board) -> &'static [(&'static str, &'static [u8])] {
    macro_rules! files {
        ($dir:literal: $($file:literal),+) => {
            &[$(($file, include_bytes!(concat!("../../examples/", $dir, "/", $file)) as &[u8])),+]
        };
    }
    match board {
        Board::Nrf52840Dk => {
            files!("apps/nrf52840-dk": "Cargo.toml", "Cargo.lock", ".cargo/config.toml", "build.rs", "memory.x", "README.md", "src/main.rs")
        }
        Board::Pico => {
            files!("apps/pico": "Cargo.toml", "Cargo.lock", ".cargo/config.toml", "build.rs", "memory.x", "README.md", "src/main.rs")
        }
        Board::Esp32c3 => {
            files!("apps/esp32c3": "Cargo.toml", "Cargo.lock", ".cargo/config.toml", "README.md", "src/main.rs")
        }
        Board::CortexM4 => {
            files!("rust-app": "Cargo.toml", "Cargo.lock", ".cargo/config.toml", "build.rs", "memory.x", "README.md", "src/main.rs")
        }
    }
}

/// The templates' model module and their runtime dependency, as committed.
const TEMPLATE_MODULE: &str = "digits_model";
const TEMPLATE_RUNTIME: [&str; 2] = ["path = \"../../../runtime\"", "path = \"../../runtime\""];

/// This checkout's runtime crate, where the binary was built from.
fn runtime_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime")
}

/// Writes the project for `board` around the model `blob` (read from `model_path`) into `dir`,
/// which must not exist or be empty; returns the files written.
pub fn write(board: Board, blob: &[u8], model_path: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let model = Model::from_bytes(blob).map_err(|e| anyhow::anyhow!("{}: {e}", model_path.display()))?;
    if model.raw_input() == RawInput::F32 && board != Board::CortexM4 {
        bail!(
            "{}: the model takes float32 inputs; the app templates sample an ADC into integer inputs (compile \
             with uint8/int8 calibration data, or use --emit-rust and write_input_f32 in your own firmware)",
            model_path.display()
        );
    }
    if dir.exists() && (!dir.is_dir() || std::fs::read_dir(dir)?.next().is_some()) {
        bail!("{}: exists and is not an empty folder; new-app writes a new project", dir.display());
    }
    let runtime = runtime_dir()
        .canonicalize()
        .with_context(|| format!("{}: the runtime crate this hawq was built from is gone", runtime_dir().display()))?;
    let stem = model_path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let module = crate::emit_rust::module_name(stem).with_context(|| model_path.display().to_string())?;
    let mut written = Vec::new();
    for &(file, contents) in template(board) {
        let path = dir.join(file);
        let text = || std::str::from_utf8(contents).with_context(|| format!("internal error: {file} is not text"));
        let bytes: Vec<u8> = match file {
            "src/main.rs" => text()?.replace(TEMPLATE_MODULE, &module).into_bytes(),
            "Cargo.toml" => {
                let manifest = text()?;
                let Some(from) = TEMPLATE_RUNTIME.iter().find(|p| manifest.contains(*p)) else {
                    bail!("internal error: the {board:?} template no longer names the runtime by a relative path");
                };
                manifest.replace(from, &format!("path = {:?}", runtime.display().to_string())).into_bytes()
            }
            _ => contents.to_vec(),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("{}: cannot write", path.display()))?;
        written.push(path);
    }
    let origin = model_path.file_name().and_then(|s| s.to_str()).unwrap_or("model.hq");
    let (rs, hq) = crate::emit_rust::write(&dir.join("src"), &module, blob, origin)?;
    written.extend([rs, hq]);
    Ok(written)
}
