//! The Rust app template (examples/rust-app): its committed model module is what
//! `hawq compile --emit-rust` writes for its model file, and the app builds for the Cortex-M4 with
//! it. Built only (the app has no output to compare; `qemu_digits` runs the same runtime calls).

use std::path::Path;
use std::process::Command;

use hawq_e2e::qemu;

fn app() -> std::path::PathBuf {
    qemu::repo_root().join("examples/rust-app")
}

#[test]
fn the_committed_module_is_what_emit_rust_writes_for_its_model() {
    let src = app().join("src");
    let blob = std::fs::read(src.join("digits_model.hq")).expect("the committed model");
    hawq_runtime::Model::from_bytes(&blob)
        .expect("the template's model loads with this runtime (regenerate it with hawq compile --emit-rust)");
    let committed = std::fs::read_to_string(src.join("digits_model.rs")).expect("the committed module");
    let written = hawq_compiler::emit_rust::source("digits_model", &blob, "model.onnx").unwrap();
    assert_eq!(committed, written, "examples/rust-app/src/digits_model.rs is stale: regenerate it (README)");
}

#[test]
fn the_app_template_builds_for_the_cortex_m4() {
    let target_dir = qemu::firmware_target_dir().join("rust-app");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked", "--quiet"])
        .current_dir(app())
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "the template does not build:\n{}", String::from_utf8_lossy(&out.stderr));
    let elf = target_dir.join("thumbv7em-none-eabihf/release/hawq-rust-app");
    let sizes = qemu::elf_sizes(Path::new(&elf)).unwrap();
    let model = std::fs::metadata(app().join("src/digits_model.hq")).unwrap().len();
    assert!(sizes.image > model, "the model is not in the image");
    println!(
        "examples/rust-app: flash {} B (model {model} B, code {} B), statics {} B",
        sizes.image,
        sizes.image - model,
        sizes.statics
    );
}

#[test]
fn the_app_builds_around_any_model_at_either_opt_level() {
    // What `cargo xtask app` measures: the template around a model other than its own.
    let case = qemu::compile_cases(&qemu::ModelSpec::digits(), &[qemu::Config::Mixed], 1).unwrap().remove(0);
    let mut code = Vec::new();
    for opt in [qemu::OptLevel::Speed, qemu::OptLevel::Size] {
        let sizes = qemu::build_app(&case.blob, opt).unwrap();
        assert!(sizes.image > case.blob.len() as u64, "the model is not in the image");
        code.push(sizes.image - case.blob.len() as u64);
    }
    println!(
        "examples/rust-app around the digits model (mixed): code {} B at opt-level 3, {} B at s",
        code[0], code[1]
    );
}
