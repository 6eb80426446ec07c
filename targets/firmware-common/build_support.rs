// Build-script logic shared by every board crate: `include!`d from their build.rs.
//
// Inputs (environment variables, read at build time):
// - HAWQ_MODEL: path of the compiled `.hq` model to embed (required).
// - HAWQ_INPUTS: path of a file of concatenated raw inputs (optional; none when unset).
// - HAWQ_FAULT: `panic` or `fault` to make the firmware fail on purpose at start (tests of the
//   verdict path); unset or empty for a normal run.
//
// Outputs in OUT_DIR: model.hq, inputs.bin, config.rs (ARENA_BYTES, KERNELS and FAULT), and the
// board's memory.x (when it has one) on the linker search path.
//
// KERNELS is the model's kernel set (`hawq_runtime::kernels::linked::required`, read here on the
// host with the runtime as a build-dependency): the firmware links only the kernels the model
// needs. A blob that does not load gets every kernel, and the firmware reports the load error.

#[allow(dead_code)]
mod hawq_build {
    use std::path::PathBuf;
    use std::{env, fs};

    fn out_dir() -> PathBuf {
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
    }

    /// Copies the model and inputs named by the environment into OUT_DIR and writes config.rs.
    pub fn embed() {
        let out = out_dir();
        for var in ["HAWQ_MODEL", "HAWQ_INPUTS", "HAWQ_FAULT"] {
            println!("cargo:rerun-if-env-changed={var}");
        }
        let model = env::var_os("HAWQ_MODEL").map(PathBuf::from).unwrap_or_else(|| {
            panic!(
                "set HAWQ_MODEL to the .hq model to embed (and HAWQ_INPUTS to a file of raw inputs); \
                 `cargo xtask run` does this for you"
            )
        });
        println!("cargo:rerun-if-changed={}", model.display());
        let blob = fs::read(&model).unwrap_or_else(|e| panic!("HAWQ_MODEL={}: {e}", model.display()));
        let inputs = match env::var_os("HAWQ_INPUTS").filter(|v| !v.is_empty()) {
            Some(path) => {
                let path = PathBuf::from(path);
                println!("cargo:rerun-if-changed={}", path.display());
                fs::read(&path).unwrap_or_else(|e| panic!("HAWQ_INPUTS={}: {e}", path.display()))
            }
            None => Vec::new(),
        };
        // The arena size the header announces (bytes 12..16). The runtime validates the whole
        // header later; a blob too short to have one gets a token arena and fails at load.
        let arena = blob.get(12..16).map_or(16, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).max(16);
        let fault = env::var("HAWQ_FAULT").unwrap_or_default();
        if !["", "panic", "fault"].contains(&fault.as_str()) {
            panic!("HAWQ_FAULT must be `panic`, `fault` or empty, not `{fault}`");
        }
        fs::write(out.join("model.hq"), &blob).expect("write model.hq");
        fs::write(out.join("inputs.bin"), &inputs).expect("write inputs.bin");
        use hawq_runtime::kernels::linked;
        let kernels = hawq_runtime::Model::from_bytes(&blob)
            .and_then(|model| linked::required(&model))
            .unwrap_or(linked::ALL);
        let names: Vec<&str> = linked::names(kernels).collect();
        fs::write(
            out.join("config.rs"),
            format!(
                "pub const ARENA_BYTES: usize = {arena};\n\
                 /// The model's kernels: {}.\n\
                 pub const KERNELS: u32 = {kernels:#x};\n\
                 pub const FAULT: &str = {fault:?};\n",
                names.join(", ")
            ),
        )
        .expect("write config.rs");
    }

    /// Puts the crate's memory.x on the linker search path (cortex-m-rt and riscv-rt read it).
    pub fn memory_x() {
        let out = out_dir();
        let src = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir")).join("memory.x");
        println!("cargo:rerun-if-changed={}", src.display());
        fs::copy(&src, out.join("memory.x")).expect("copy memory.x");
        // A device.x from an earlier build of this crate would shadow a device crate's
        // (`no_device_interrupts` writes it again where it belongs).
        let _ = fs::remove_file(out.join("device.x"));
        println!("cargo:rustc-link-search={}", out.display());
    }

    /// An empty `device.x` for cortex-m-rt's `device` feature in the QEMU Cortex-M firmware,
    /// which enables no interrupt (its one-entry table is in firmware-common). Not for a board:
    /// its device crate provides the real one.
    pub fn no_device_interrupts() {
        let out = out_dir();
        fs::write(out.join("device.x"), "/* no device interrupts */\n").expect("write device.x");
        println!("cargo:rustc-link-search={}", out.display());
    }
}
