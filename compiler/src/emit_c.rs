//! `hawq compile --emit-c DIR`: a compiled model as C source for firmware that links the C
//! library of the runtime (`runtime-c/`, `libhawq_runtime_c.a` and `hawq.h`).
//!
//! `DIR/<name>_model.h` declares the model array and gives, as macros, what the firmware needs
//! at compile time: the arena size, the input's and each output's element count, quantization
//! (scale, zero point) and representation; `DIR/<name>_model.c` holds the model file's bytes as
//! a `const uint8_t` array aligned to 16 bytes, which a C toolchain places in flash. The
//! enumeration values written here (`HAWQ_RAW_*`, `HAWQ_DTYPE_*`) are the C library's: the CLI
//! test compiles the header against `hawq.h` and checks them there.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use hawq_runtime::format::{DType, InputLayout, RawInput, TensorDesc, FORMAT_VERSION};
use hawq_runtime::Model;

/// The alignment of the model array (the runtime's `include_model!` gives Rust firmware the same).
pub const MODEL_ALIGNMENT: usize = 16;

/// The C name of a model: the file stem (of `-o`) with every character that may not appear in a
/// C identifier replaced by `_`, lowercased, and prefixed by `m` if it starts with a digit.
pub fn c_name(stem: &str) -> Result<String> {
    let mut name: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if name.trim_matches('_').is_empty() {
        bail!("'{stem}' gives no C identifier: name the output file with letters or digits");
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, 'm');
    }
    Ok(name)
}

/// The two files' paths for `name` in `dir`.
pub fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}_model.h")), dir.join(format!("{name}_model.c")))
}

/// `(header, source)` of the model `blob`, named `name` ([`c_name`]); `origin` (the source
/// model's file name) goes into the comments.
pub fn sources(name: &str, blob: &[u8], origin: &str) -> Result<(String, String)> {
    let model = Model::from_bytes(blob).map_err(|e| anyhow!("internal error: the model does not load: {e}"))?;
    let upper = name.to_ascii_uppercase();
    let guard = format!("{upper}_MODEL_H");
    let input = *model.input();
    let raw = model.raw_input();
    let raw_bytes = input.elements() * raw.element_bytes();
    let layout = describe_layout(&input, model.meta().input_layout);
    let (raw_code, raw_name, raw_what) = match raw {
        RawInput::U8 => (0, "HAWQ_RAW_U8", "uint8_t"),
        RawInput::I8 => (1, "HAWQ_RAW_I8", "int8_t"),
        RawInput::F32 => (2, "HAWQ_RAW_F32", "float (little-endian)"),
    };
    let outputs: Vec<TensorDesc> = (0..model.output_count())
        .map(|i| model.output_tensor(i).and_then(|t| model.tensor(t)))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow!("internal error: an output names no tensor"))?;
    let first = outputs[0];
    let read_first = match first.dtype {
        DType::I8 => format!("float y = {upper}_OUTPUT0_SCALE * ((int8_t)out[i] - {upper}_OUTPUT0_ZERO_POINT);"),
        DType::I4 => "// two int4 values per byte (low nibble first); or hawq_output_f32".to_string(),
        DType::F32 => "// little-endian floats; or hawq_output_f32".to_string(),
    };

    let mut h = String::new();
    let w = &mut h;
    let _ = writeln!(w, "/* {name}_model.h: made by `hawq compile --emit-c` from {origin}; do not edit.");
    let _ = writeln!(w, " *");
    let _ = writeln!(
        w,
        " * The compiled model ({} bytes, format {FORMAT_VERSION}) is the array {name}_model in {name}_model.c,",
        blob.len()
    );
    let _ = writeln!(
        w,
        " * {MODEL_ALIGNMENT}-byte aligned read-only data (flash). Build {name}_model.c with your firmware and"
    );
    let _ = writeln!(w, " * link libhawq_runtime_c.a (runtime-c/ in hawq-edge); hawq.h is its header. Use:");
    let _ = writeln!(w, " *");
    let _ = writeln!(w, " *   static hawq_model model;");
    let _ = writeln!(w, " *   static hawq_interpreter it;");
    let _ = writeln!(w, " *   static uint8_t arena[{upper}_ARENA_BYTES] __attribute__((aligned(16)));");
    let _ = writeln!(w, " *   hawq_model_load({name}_model, {upper}_MODEL_BYTES, &model);");
    let _ = writeln!(w, " *   hawq_interpreter_init(&model, arena, sizeof arena, &it);");
    let _ = writeln!(
        w,
        " *   hawq_write_input_raw(&it, raw, {upper}_INPUT_RAW_BYTES);  // {} x {raw_what}",
        input.elements()
    );
    let _ = writeln!(w, " *   hawq_invoke(&it);");
    let _ = writeln!(w, " *   const uint8_t *out; size_t n;");
    let _ = writeln!(w, " *   hawq_output(&it, 0, &out, &n);");
    let _ = writeln!(w, " *   {read_first}");
    let _ = writeln!(w, " *");
    let _ = writeln!(w, " * Each call returns a hawq_status: HAWQ_OK, or an error hawq_status_str() names.");
    let _ = writeln!(w, " */");
    let _ = writeln!(w, "#ifndef {guard}");
    let _ = writeln!(w, "#define {guard}");
    let _ = writeln!(w);
    let _ = writeln!(w, "#include <stdint.h>");
    let _ = writeln!(w);
    let _ =
        writeln!(w, "/* The model file: bytes, and the format version the library must read (HAWQ_FORMAT_VERSION). */");
    let _ = writeln!(w, "#define {upper}_MODEL_BYTES {}u", blob.len());
    let _ = writeln!(w, "#define {upper}_MODEL_FORMAT_VERSION {FORMAT_VERSION}");
    let _ = writeln!(w, "/* Bytes of RAM for the arena of hawq_interpreter_init (= hawq_arena_bytes). */");
    let _ = writeln!(w, "#define {upper}_ARENA_BYTES {}u", model.arena_bytes());
    let _ = writeln!(w);
    let _ = writeln!(w, "/* The input: {} values, {layout}.", input.elements());
    let _ = writeln!(w, " * hawq_write_input_raw takes {upper}_INPUT_RAW_BYTES bytes: one {raw_what} per value");
    let _ = writeln!(w, " * ({raw_name}); {}.", raw_rule(raw));
    let _ = writeln!(w, " * In the arena it is quantized: real = SCALE * (q - ZERO_POINT). */");
    let _ = writeln!(w, "#define {upper}_INPUT_ELEMENTS {}u", input.elements());
    let _ = writeln!(w, "#define {upper}_INPUT_RAW_KIND {raw_code} /* {raw_name} */");
    let _ = writeln!(w, "#define {upper}_INPUT_RAW_BYTES {raw_bytes}u");
    let _ = writeln!(w, "#define {upper}_INPUT_SCALE {}", float_literal(input.scale.to_f32())?);
    let _ = writeln!(w, "#define {upper}_INPUT_ZERO_POINT {}", int_literal(input.zero_point as i32));
    let _ = writeln!(w);
    let _ = writeln!(w, "/* The outputs (hawq_output's index): values, bytes, representation (HAWQ_DTYPE_*) and");
    let _ =
        writeln!(w, " * quantization, real = SCALE * (q - ZERO_POINT); float outputs have scale 1, zero point 0. */");
    let _ = writeln!(w, "#define {upper}_OUTPUT_COUNT {}u", outputs.len());
    for (i, t) in outputs.iter().enumerate() {
        let (code, dtype) = match t.dtype {
            DType::I8 => (0, "HAWQ_DTYPE_INT8"),
            DType::I4 => (1, "HAWQ_DTYPE_INT4"),
            DType::F32 => (2, "HAWQ_DTYPE_FLOAT32"),
        };
        let p = format!("{upper}_OUTPUT{i}");
        let _ = writeln!(w, "#define {p}_ELEMENTS {}u", t.elements());
        let _ = writeln!(w, "#define {p}_BYTES {}u", t.bytes());
        let _ = writeln!(w, "#define {p}_DTYPE {code} /* {dtype} */");
        let _ = writeln!(w, "#define {p}_SCALE {}", float_literal(t.scale.to_f32())?);
        let _ = writeln!(w, "#define {p}_ZERO_POINT {}", int_literal(t.zero_point as i32));
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "#ifdef __cplusplus");
    let _ = writeln!(w, "extern \"C\" {{");
    let _ = writeln!(w, "#endif");
    let _ = writeln!(w);
    let _ = writeln!(w, "extern const uint8_t {name}_model[{upper}_MODEL_BYTES];");
    let _ = writeln!(w);
    let _ = writeln!(w, "#ifdef __cplusplus");
    let _ = writeln!(w, "}}");
    let _ = writeln!(w, "#endif");
    let _ = writeln!(w);
    let _ =
        writeln!(w, "/* After hawq.h (as in {name}_model.c): a library of another model format fails to compile. */");
    let _ = writeln!(w, "#if defined(HAWQ_FORMAT_VERSION) && HAWQ_FORMAT_VERSION != {upper}_MODEL_FORMAT_VERSION");
    let _ = writeln!(
        w,
        "#error \"{name}_model.h holds a model of format {FORMAT_VERSION}, but hawq.h is for another: use the hawq and libhawq_runtime_c.a of one release\""
    );
    let _ = writeln!(w, "#endif");
    let _ = writeln!(w);
    let _ = writeln!(w, "#endif /* {guard} */");

    let mut c = String::with_capacity(blob.len() * 6 + 1024);
    let w = &mut c;
    let _ = writeln!(
        w,
        "/* {name}_model.c: made by `hawq compile --emit-c` from {origin}; do not edit. See {name}_model.h. */"
    );
    let _ = writeln!(w, "#include \"hawq.h\"");
    let _ = writeln!(w, "#include \"{name}_model.h\"");
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "/* {MODEL_ALIGNMENT}-byte aligned, as hawq_runtime::include_model! embeds a model in Rust firmware. */"
    );
    let _ = writeln!(w, "#if defined(__ICCARM__)");
    let _ = writeln!(w, "#pragma data_alignment = {MODEL_ALIGNMENT}");
    let _ = writeln!(w, "#define {upper}_MODEL_ALIGN_BEFORE");
    let _ = writeln!(w, "#define {upper}_MODEL_ALIGN_AFTER");
    let _ = writeln!(w, "#elif defined(__GNUC__) || defined(__clang__) || defined(__CC_ARM)");
    let _ = writeln!(w, "#define {upper}_MODEL_ALIGN_BEFORE");
    let _ = writeln!(w, "#define {upper}_MODEL_ALIGN_AFTER __attribute__((aligned({MODEL_ALIGNMENT})))");
    let _ = writeln!(w, "#else");
    let _ = writeln!(w, "#define {upper}_MODEL_ALIGN_BEFORE _Alignas({MODEL_ALIGNMENT})");
    let _ = writeln!(w, "#define {upper}_MODEL_ALIGN_AFTER");
    let _ = writeln!(w, "#endif");
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "{upper}_MODEL_ALIGN_BEFORE const uint8_t {name}_model[{upper}_MODEL_BYTES] {upper}_MODEL_ALIGN_AFTER = {{"
    );
    for row in blob.chunks(16) {
        w.push_str("   ");
        for b in row {
            let _ = write!(w, " 0x{b:02x},");
        }
        w.push('\n');
    }
    let _ = writeln!(w, "}};");
    Ok((h, c))
}

/// Writes `DIR/<name>_model.h` and `DIR/<name>_model.c` (creating `dir`); returns their paths.
pub fn write(dir: &Path, name: &str, blob: &[u8], origin: &str) -> Result<(PathBuf, PathBuf)> {
    if dir.exists() && !dir.is_dir() {
        bail!("{}: --emit-c needs a folder, this is a file", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    let (header, source) = sources(name, blob, origin)?;
    let (h, c) = paths(dir, name);
    crate::emit::write_atomic(&h, header.as_bytes())?;
    crate::emit::write_atomic(&c, source.as_bytes())?;
    Ok((h, c))
}

/// A C `float` literal that reads back as exactly `v` (Rust prints the shortest decimal that
/// round-trips; C compilers round decimal literals correctly).
fn float_literal(v: f32) -> Result<String> {
    if !v.is_finite() {
        bail!("internal error: a scale of {v} has no C literal");
    }
    let s = format!("{v:?}");
    let s = if s.contains(['.', 'e']) { s } else { format!("{s}.0") };
    Ok(if v < 0.0 { format!("({s}f)") } else { format!("{s}f") })
}

fn int_literal(v: i32) -> String {
    if v < 0 {
        format!("({v})")
    } else {
        v.to_string()
    }
}

fn raw_rule(raw: RawInput) -> &'static str {
    match raw {
        RawInput::U8 => "the runtime stores q = x - 128",
        RawInput::I8 => "the runtime stores q = x",
        RawInput::F32 => "the runtime quantizes each with the input's scale and zero point",
    }
}

/// The input's shape in the order the firmware hands values over (the source model's layout).
fn describe_layout(t: &TensorDesc, layout: InputLayout) -> String {
    let [_, h, w, c] = t.shape;
    match layout {
        _ if c == 1 && h == 1 => format!("a vector of {w}"),
        _ if c == 1 => format!("H x W = {h} x {w}, one channel"),
        InputLayout::Nchw => format!("channel-major C x H x W = {c} x {h} x {w} as the source model takes them"),
        InputLayout::Nhwc if h == 1 && w == 1 => format!("a vector of {c}"),
        InputLayout::Nhwc => format!("channels-last H x W x C = {h} x {w} x {c} as the source model takes them"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_c_identifiers() {
        assert_eq!(c_name("digits").unwrap(), "digits");
        assert_eq!(c_name("My-Model.v2").unwrap(), "my_model_v2");
        assert_eq!(c_name("8bit").unwrap(), "m8bit");
        assert!(c_name("--").is_err());
        assert!(c_name("").is_err());
    }

    #[test]
    fn float_literals_read_back_exactly() {
        for v in [0.0625f32, 1.0, 3.0517578e-5, 0.1, 1e-7, 65504.0, 0.007_843_138, -2.5] {
            let s = float_literal(v).unwrap();
            let digits = s.trim_start_matches('(').trim_end_matches(')').trim_end_matches('f');
            assert_eq!(digits.parse::<f32>().unwrap(), v, "{s}");
            assert!(s.contains('.') || s.contains('e'), "{s} must be a floating literal");
        }
        assert!(float_literal(f32::NAN).is_err());
        assert_eq!(int_literal(-128), "(-128)");
        assert_eq!(int_literal(3), "3");
    }
}
