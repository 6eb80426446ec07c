include!("../firmware-common/build_support.rs");

fn main() {
    hawq_build::embed();
    // The linker script (link.x: the memory map, the boot code first, the stack) from the
    // crate's folder, given here rather than in .cargo/config.toml's rustflags, so that
    // `RUSTFLAGS="-C target-feature=+dotprod"` by hand does not drop it.
    let dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    println!("cargo:rerun-if-changed={}", dir.join("link.x").display());
    println!("cargo:rustc-link-arg=-T{}", dir.join("link.x").display());
}
