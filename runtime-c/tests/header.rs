//! include/hawq.h is what cbindgen makes of src/lib.rs with cbindgen.toml: regenerated here and
//! compared byte for byte, so the committed header cannot go stale. `HAWQ_BLESS=1` rewrites it.
//! The header must also compile as C99 and as C++ with the host compiler, warnings as errors.

use std::path::PathBuf;
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("utf-8 header")
}

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let path = crate_dir().join("include/hawq.h");
    let fresh = generate();
    if std::env::var_os("HAWQ_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/hawq.h");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: regenerate it with `HAWQ_BLESS=1 cargo test -p hawq-runtime-c --test header`",
        path.display()
    );
    for needle in [
        "hawq_status hawq_model_load(const uint8_t *blob, size_t len, hawq_model *out_model);",
        "typedef int32_t hawq_status;",
        "#define HAWQ_MODEL_WORDS 26",
        "HAWQ_ERR_ARENA_SIZE_MISMATCH = 23,",
        "const char *hawq_status_str(int32_t status);",
    ] {
        assert!(fresh.contains(needle), "the header lacks `{needle}`:\n{fresh}");
    }
}

/// Compiles `source` with `compiler` against the header cbindgen makes now (the committed one
/// when the test above passes).
fn compiles(compiler: &str, args: &[&str], source: &str, ext: &str) {
    let dir = tempfile_dir();
    let file = dir.join(format!("check.{ext}"));
    std::fs::write(&file, source).unwrap();
    std::fs::write(dir.join("hawq.h"), generate()).unwrap();
    let include = &dir;
    let out = Command::new(compiler)
        .args(args)
        .arg("-I")
        .arg(include)
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{compiler}: {e} (a host C compiler is needed, as for linking Rust)"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{compiler} {args:?} rejects hawq.h:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn tempfile_dir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir =
        std::env::temp_dir().join(format!("hawq-header-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Uses every declaration, and checks at compile time that the storage sizes are the words the
/// Rust side asserts on (a C compiler with another idea of `size_t` would fail here).
const USE: &str = r#"
#include "hawq.h"
typedef char model_words[sizeof(hawq_model) == HAWQ_MODEL_WORDS * sizeof(size_t) ? 1 : -1];
typedef char interpreter_words[sizeof(hawq_interpreter) == HAWQ_INTERPRETER_WORDS * sizeof(size_t) ? 1 : -1];
typedef char status_size[sizeof(hawq_status) == 4 ? 1 : -1];
int use(const uint8_t *blob, size_t len, uint8_t *arena, size_t arena_len);
int use(const uint8_t *blob, size_t len, uint8_t *arena, size_t arena_len) {
    static hawq_model model;
    static hawq_interpreter it;
    hawq_tensor_info info;
    hawq_raw_kind kind;
    size_t raw_bytes;
    const uint8_t *out;
    size_t n;
    float values[16];
    hawq_status s = hawq_model_load(blob, len, &model);
    if (hawq_abi_version() != HAWQ_ABI_VERSION || hawq_arena_bytes(&model) > arena_len) return -1;
    if (s == HAWQ_OK) s = hawq_input_info(&model, &info);
    if (s == HAWQ_OK) s = hawq_input_raw(&model, &kind, &raw_bytes);
    if (s == HAWQ_OK) s = hawq_output_info(&model, hawq_output_count(&model) - 1, &info);
    if (s == HAWQ_OK) s = hawq_interpreter_init(&model, arena, arena_len, &it);
    if (s == HAWQ_OK) s = hawq_write_input_raw(&it, arena, raw_bytes);
    if (s == HAWQ_OK) s = hawq_invoke(&it);
    if (s == HAWQ_OK) s = hawq_output(&it, 0, &out, &n);
    if (s == HAWQ_OK) s = hawq_output_f32(&it, 0, values, 16);
    return hawq_status_str(s)[0] + (kind == HAWQ_RAW_F32) + (info.dtype == HAWQ_DTYPE_INT4) + HAWQ_FORMAT_VERSION;
}
"#;

#[test]
fn the_header_compiles_as_c_and_cpp() {
    compiles("cc", &["-std=c99", "-x", "c"], USE, "c");
    compiles("c++", &["-std=c++11", "-x", "c++"], USE, "cpp");
}
