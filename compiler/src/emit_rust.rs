//! `hawq compile --emit-rust DIR`: a compiled model as a Rust module for firmware that depends on
//! `hawq-runtime`.
//!
//! `DIR/<name>_model.rs` embeds `DIR/<name>_model.hq` (a copy of the model file, beside it) with
//! `include_model!` (16-byte aligned, in flash), and gives as constants what a firmware needs at
//! compile time: the arena size, the model's kernel set (so that the interpreter links only the
//! kernels the model uses), the input's and the first output's sizes and quantization. It adds an
//! `Arena` type of the right size and alignment, `load()` and `interpreter()` over the kernel
//! set, and `read_output()` as real values. The CLI test builds a program on the module and
//! checks its outputs against the runtime's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use hawq_runtime::format::{DType, RawInput, FORMAT_VERSION};
use hawq_runtime::kernels::linked;
use hawq_runtime::Model;

/// The module's name: the C name of the output stem ([`crate::emit_c::c_name`]) with `_model`
/// appended, so that it is never a Rust keyword.
pub fn module_name(stem: &str) -> Result<String> {
    Ok(format!("{}_model", crate::emit_c::c_name(stem)?))
}

/// The module's and the model copy's paths for `module` in `dir`.
pub fn paths(dir: &Path, module: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{module}.rs")), dir.join(format!("{module}.hq")))
}

/// The module's source for the model `blob`, named `module` ([`module_name`]); `origin` (the
/// source model's file name) goes into the documentation.
pub fn source(module: &str, blob: &[u8], origin: &str) -> Result<String> {
    let model = Model::from_bytes(blob).map_err(|e| anyhow!("internal error: the model does not load: {e}"))?;
    let kernels = linked::required(&model).map_err(|e| anyhow!("internal error: {e}"))?;
    let input = *model.input();
    let output = *model.output();
    let raw = model.raw_input();
    let (raw_name, raw_what) = match raw {
        RawInput::U8 => ("U8", "one byte per value, the runtime stores q = x − 128"),
        RawInput::I8 => ("I8", "one byte per value, the runtime stores q = x"),
        RawInput::F32 => ("F32", "four little-endian bytes per value (an f32), quantized by the runtime"),
    };
    let [_, h, w, c] = input.shape;
    let layout = match model.meta().input_layout {
        hawq_runtime::format::InputLayout::Nchw => format!("[C, H, W] = [{c}, {h}, {w}]"),
        hawq_runtime::format::InputLayout::Nhwc => format!("[H, W, C] = [{h}, {w}, {c}]"),
    };
    let (out_dtype, out_rule) = match output.dtype {
        DType::I8 => ("I8", "one signed byte per value"),
        DType::I4 => ("I4", "two signed 4-bit values per byte, low nibble first"),
        DType::F32 => ("F32", "little-endian f32 values (scale 1, zero point 0)"),
    };
    let names: Vec<String> = linked::names(kernels).map(|n| format!("`{n}`")).collect();

    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "//! `{module}`: made by `hawq compile --emit-rust` from {origin}; do not edit.");
    let _ = writeln!(w, "//!");
    let _ = writeln!(
        w,
        "//! The compiled model ({} bytes, format {FORMAT_VERSION}) is `{module}.hq` beside this file, embedded",
        blob.len()
    );
    let _ = writeln!(w, "//! 16-byte aligned (flash on a microcontroller). Needs the `hawq-runtime` crate of the same");
    let _ = writeln!(w, "//! release. Use:");
    let _ = writeln!(w, "//!");
    let _ = writeln!(w, "//! ```ignore");
    let _ = writeln!(w, "//! mod {module};");
    let _ = writeln!(w, "//!");
    let _ = writeln!(w, "//! static mut ARENA: {module}::Arena = {module}::Arena::new();");
    let _ = writeln!(w, "//!");
    let _ = writeln!(w, "//! let model = {module}::load()?;");
    let _ = writeln!(w, "//! // SAFETY (in your firmware): the only reference to ARENA.");
    let _ = writeln!(w, "//! let arena = unsafe {{ &mut *core::ptr::addr_of_mut!(ARENA) }};");
    let _ = writeln!(w, "//! let mut it = {module}::interpreter(&model, arena)?;");
    let _ = writeln!(w, "//! it.write_input_raw(&raw)?; // {module}::INPUT_RAW_BYTES bytes, or write_input_f32");
    let _ = writeln!(w, "//! it.invoke()?;");
    let _ = writeln!(w, "//! let y = {module}::read_output(&it)?; // [f32; {module}::OUTPUT_ELEMENTS]");
    let _ = writeln!(w, "//! ```");
    let _ = writeln!(w, "//!");
    let _ =
        writeln!(w, "//! Every call returns `Result<_, hawq_runtime::Error>`; the runtime never panics on bad input.");
    let _ = writeln!(w);
    // Generated: what a firmware leaves unused is no warning, nor are exact float literals.
    let _ = writeln!(w, "#![allow(dead_code, clippy::unreadable_literal)]");
    let _ = writeln!(w);
    let _ = writeln!(w, "use hawq_runtime::{{Error, Interpreter, Model}};");
    let _ = writeln!(w);
    let _ = writeln!(w, "/// The model file's bytes.");
    let _ = writeln!(w, "pub static MODEL: &[u8] = hawq_runtime::include_model!(\"{module}.hq\");");
    let _ = writeln!(w, "/// Bytes of the model file.");
    let _ = writeln!(w, "pub const MODEL_BYTES: usize = {};", blob.len());
    let _ = writeln!(w, "/// The model format version; the runtime refuses another.");
    let _ = writeln!(w, "pub const FORMAT_VERSION: u16 = {FORMAT_VERSION};");
    let _ =
        writeln!(w, "/// Bytes of RAM for the arena (tensors and kernel scratch); the runtime's stack comes on top.");
    let _ = writeln!(w, "pub const ARENA_BYTES: usize = {};", model.arena_bytes());
    let _ = writeln!(w, "/// The kernels the model needs (`hawq_runtime::kernels::linked`): {}.", names.join(", "));
    let _ = writeln!(w, "/// The interpreter of [`interpreter`] links only these.");
    let _ = writeln!(w, "pub const KERNELS: u32 = {kernels:#x};");
    let _ = writeln!(w);
    let _ = writeln!(w, "/// The input: {} values, {layout} as the source model takes them.", input.elements());
    let _ = writeln!(w, "pub const INPUT_ELEMENTS: usize = {};", input.elements());
    let _ = writeln!(w, "/// What `Interpreter::write_input_raw` takes: {raw_what} (`RawInput::{raw_name}`).");
    let _ = writeln!(w, "pub const INPUT_RAW_BYTES: usize = {};", input.elements() * raw.element_bytes());
    let _ = writeln!(w, "/// The input's quantization in the arena: real = `SCALE · (q − ZERO_POINT)`.");
    let _ = writeln!(w, "pub const INPUT_SCALE: f32 = {};", float_literal(input.scale.to_f32())?);
    let _ = writeln!(w, "pub const INPUT_ZERO_POINT: i32 = {};", input.zero_point);
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "/// The first output: {} values, {} bytes, {out_rule} (`DType::{out_dtype}`).",
        output.elements(),
        output.bytes()
    );
    let _ = writeln!(w, "pub const OUTPUT_ELEMENTS: usize = {};", output.elements());
    let _ = writeln!(w, "pub const OUTPUT_BYTES: usize = {};", output.bytes());
    let _ = writeln!(w, "/// The output's quantization: real = `SCALE · (q − ZERO_POINT)`.");
    let _ = writeln!(w, "pub const OUTPUT_SCALE: f32 = {};", float_literal(output.scale.to_f32())?);
    let _ = writeln!(w, "pub const OUTPUT_ZERO_POINT: i32 = {};", output.zero_point);
    let _ = writeln!(w, "/// Outputs of the model (1 + the graph's further outputs, `Interpreter::output_bytes_at`).");
    let _ = writeln!(w, "pub const OUTPUT_COUNT: usize = {};", model.output_count());
    let _ = writeln!(w);
    let _ = writeln!(w, "/// The arena: [`ARENA_BYTES`], aligned as the runtime's kernels need. Make it a `static`");
    let _ = writeln!(w, "/// on a microcontroller (the stack is small), a `Box` or a local on a host.");
    let _ = writeln!(w, "#[repr(C, align(16))]");
    let _ = writeln!(w, "pub struct Arena(pub [u8; ARENA_BYTES]);");
    let _ = writeln!(w);
    let _ = writeln!(w, "impl Arena {{");
    let _ = writeln!(w, "    pub const fn new() -> Self {{");
    let _ = writeln!(w, "        Arena([0; ARENA_BYTES])");
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
    let _ = writeln!(w, "impl Default for Arena {{");
    let _ = writeln!(w, "    fn default() -> Self {{");
    let _ = writeln!(w, "        Self::new()");
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
    let _ = writeln!(w, "/// Parses and validates [`MODEL`] (once, at start).");
    let _ = writeln!(w, "pub fn load() -> Result<Model<'static>, Error> {{");
    let _ = writeln!(w, "    Model::from_bytes_with_kernels::<KERNELS>(MODEL)");
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
    let _ = writeln!(w, "/// An interpreter of `model` in `arena`, linking only [`KERNELS`].");
    let _ = writeln!(w, "pub fn interpreter<'m, 'a>(");
    let _ = writeln!(w, "    model: &'m Model<'m>,");
    let _ = writeln!(w, "    arena: &'a mut Arena,");
    let _ = writeln!(w, ") -> Result<Interpreter<'m, 'a, KERNELS>, Error> {{");
    let _ = writeln!(w, "    Interpreter::<KERNELS>::with_kernels(model, &mut arena.0)");
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
    let _ = writeln!(w, "/// The first output as real values, after `invoke`.");
    let _ = writeln!(
        w,
        "pub fn read_output(it: &Interpreter<'_, '_, KERNELS>) -> Result<[f32; OUTPUT_ELEMENTS], Error> {{"
    );
    let _ = writeln!(w, "    let mut y = [0f32; OUTPUT_ELEMENTS];");
    let _ = writeln!(w, "    it.read_output_f32(&mut y)?;");
    let _ = writeln!(w, "    Ok(y)");
    let _ = writeln!(w, "}}");
    Ok(s)
}

/// Writes `DIR/<module>.rs` and `DIR/<module>.hq` (creating `dir`); returns their paths.
pub fn write(dir: &Path, module: &str, blob: &[u8], origin: &str) -> Result<(PathBuf, PathBuf)> {
    if dir.exists() && !dir.is_dir() {
        bail!("{}: --emit-rust needs a folder, this is a file", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    let text = source(module, blob, origin)?;
    let (rs, hq) = paths(dir, module);
    crate::emit::write_atomic(&hq, blob)?;
    crate::emit::write_atomic(&rs, text.as_bytes())?;
    Ok((rs, hq))
}

/// A Rust `f32` literal that reads back as exactly `v`.
fn float_literal(v: f32) -> Result<String> {
    if !v.is_finite() {
        bail!("internal error: a scale of {v} has no Rust literal");
    }
    let s = format!("{v:?}");
    Ok(if s.contains(['.', 'e']) { s } else { format!("{s}.0") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_never_keywords() {
        assert_eq!(module_name("digits").unwrap(), "digits_model");
        assert_eq!(module_name("type").unwrap(), "type_model");
        assert_eq!(module_name("8-bit.v2").unwrap(), "m8_bit_v2_model");
        assert!(module_name("--").is_err());
    }

    #[test]
    fn float_literals_read_back_exactly() {
        for v in [0.0625f32, 1.0, 3.0517578e-5, 0.1, 1e-7, 65504.0, -2.5] {
            let s = float_literal(v).unwrap();
            assert_eq!(s.parse::<f32>().unwrap(), v, "{s}");
        }
        assert!(float_literal(f32::INFINITY).is_err());
    }
}
