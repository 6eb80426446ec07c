//! The AArch64 kernel paths against the scalar reference: `runtime/tests/paths.rs` (proptest)
//! cross-built for aarch64-unknown-linux-gnu and run under qemu-user twice: `-cpu max` (NEON and
//! SDOT: every path, and the dispatch picks `neon-dotprod`), and `-cpu cortex-a53` (no dotprod:
//! the run-time detection must fall back to `neon`, and the dispatch must run it bit-exactly).
//!
//! Both runs take a quarter of each property's cases (`HAWQ_PATHS_CASES_PERCENT`; 750 per
//! operation and path): scripts/test.sh runs the kernel-cases generator's 20,000 cases per
//! operation on the same paths under the same qemu (`all_paths`), so these runs are for what
//! only `paths.rs` checks: the op-level dispatch, the shapes past the old limits and the
//! prepared-weight contract (whole, `-cpu max` took 240 s of CPU; a quarter, about 70 s). The
//! second run is the detection tests and one property: the `neon` kernels it would run again are
//! the ones the first run checks, the same instructions on either CPU.
//!
//! Needs qemu-aarch64 and the cross linker: scripts/setup-cross.sh installs them. Never skips.

use std::process::Command;

use hawq_e2e::qemu::{self, Target};

/// `paths` under `qemu-aarch64 -cpu cpu`, the tests whose names contain one of `filters` (all of
/// them for none), two at a time.
fn run_paths(cpu: &str, filters: &[&str]) -> String {
    qemu::check_tools(&[Target::Aarch64]).unwrap();
    let root = qemu::repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["test", "--release", "-p", "hawq-runtime", "--test", "paths", "--target", "aarch64-unknown-linux-gnu"])
        .arg("--target-dir")
        .arg(root.join("target/aarch64-tests"))
        .arg("--")
        .args(filters)
        .args(["--nocapture", "--test-threads", "2"])
        .env("HAWQ_PATHS_CASES_PERCENT", "25")
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", "aarch64-linux-gnu-gcc")
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
            format!("timeout -k 5 900 qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu {cpu}"),
        );
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR"]
    {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let summary: Vec<&str> =
        text.lines().filter(|l| l.contains("identical to the reference") || l.contains("active kernel path")).collect();
    println!("-cpu {cpu}:\n{}", summary.join("\n"));
    assert!(out.status.success(), "paths tests under qemu-aarch64 -cpu {cpu} failed:\n{text}");
    text
}

#[test]
fn neon_and_sdot_paths_match_the_reference_under_cpu_max() {
    let out = run_paths("max", &[]);
    assert!(out.contains("active kernel path: neon-dotprod"), "{out}");
    for op in ["conv2d", "depthwise", "fully_connected", "add"] {
        let line = format!("{op}: 750 cases, each on [\"dispatch\", \"portable\", \"neon\", \"neon-dotprod\"]");
        assert!(out.contains(&line), "missing `{line}`:\n{out}");
    }
}

#[test]
fn without_dotprod_the_dispatch_falls_back_to_neon_under_cortex_a53() {
    let out = run_paths(
        "cortex-a53",
        &["the_active_path_is_reported", "every_available_path_has_its_kernel_table", "fully_connected_paths_match"],
    );
    assert!(out.contains("active kernel path: neon (available: [Scalar, Portable, Neon])"), "{out}");
    let line = "fully_connected: 750 cases, each on [\"dispatch\", \"portable\", \"neon\"]";
    assert!(out.contains(line), "missing `{line}`:\n{out}");
    assert!(out.contains("test every_available_path_has_its_kernel_table ... ok"), "{out}");
}
