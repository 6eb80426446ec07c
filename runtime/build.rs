//! Compile-time kernel selection for targets whose instruction-set extensions stable Rust does
//! not expose to `cfg(target_feature)` (Arm's `dsp` is an unstable target feature, so
//! `cfg(target_feature = "dsp")` is never true on stable even on a Cortex-M4).
//!
//! - `hawq_dsp`: the Armv7E-M DSP extension (SMLAD, SXTB16, ...): every `thumbv7em-*` target
//!   (Cortex-M4, M7). The cargo features `kernels-scalar` / `kernels-portable` still select
//!   another path at compile time (for comparisons).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(hawq_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em") {
        println!("cargo::rustc-cfg=hawq_dsp");
    }
}
