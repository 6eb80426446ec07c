//! Compile-time kernel selection for targets whose instruction-set extensions stable Rust does
//! not expose to `cfg(target_feature)` (Arm's `dsp` is an unstable target feature, so
//! `cfg(target_feature = "dsp")` is never true on stable even on a Cortex-M4).
//!
//! - `hawq_dsp`: the Armv7E-M DSP extension (SMLAD, SXTB16, ...): every `thumbv7em-*` target
//!   (Cortex-M4, M7). The cargo features `kernels-scalar` / `kernels-portable` still select
//!   another path at compile time (for comparisons).
//!
//! It also warns about a build for an x86-64 operating system without the `std` feature and
//! without AVX2 among the compile-time target features: such a build can only run the portable
//! kernels (resnet8: 2.2 ms per inference on a machine where AVX-512 VNNI takes 59 µs), which
//! the C library did on hosts, unnoticed, until it enabled `std` there.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(hawq_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em") {
        println!("cargo::rustc-cfg=hawq_dsp");
    }
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let forced = std::env::var_os("CARGO_FEATURE_KERNELS_SCALAR").is_some()
        || std::env::var_os("CARGO_FEATURE_KERNELS_PORTABLE").is_some();
    if var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") != "none"
        && std::env::var_os("CARGO_FEATURE_STD").is_none()
        && !forced
        && !var("CARGO_CFG_TARGET_FEATURE").split(',').any(|f| f == "avx2")
    {
        println!(
            "cargo::warning=hawq-runtime for {target} without its `std` feature: no run-time CPU \
             detection, so only the portable kernels (AVX2 and AVX-512 are many times faster); on a \
             host, depend on it with features = [\"std\"]"
        );
    }
}
