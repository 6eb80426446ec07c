//! Every kernel path against the scalar reference on the device (`targets/kernel-check`), in the
//! normal suite: 5,000 random cases each of conv2d, depthwise conv2d, fully connected and add,
//! on QEMU's Cortex-M4 (the DSP path — SMLAD/SXTB16 assembly — and the portable path) and
//! Cortex-M3 (the portable path). The firmware exits non-zero on the first byte that differs.
//!
//! Needs QEMU and the cross targets: scripts/setup-cross.sh installs them. Never skips.

use std::fs::File;
use std::process::Command;

use hawq_e2e::qemu::{self, Target};

/// Builds targets/kernel-check for `triple` and runs it on `machine`/`cpu`; returns its stdout.
fn run(triple: &str, machine: &str, cpu: &str) -> String {
    qemu::check_tools(&[Target::CortexM4]).unwrap();
    let dir = qemu::repo_root().join("targets/kernel-check");
    let target_dir = qemu::firmware_target_dir();
    std::fs::create_dir_all(&target_dir).unwrap();
    // The shared firmware target directory is locked like every firmware build (tests/src/qemu.rs).
    let lock = File::create(target_dir.join("hawq-build.lock")).unwrap();
    lock.lock().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&dir).args(["build", "--release", "--quiet", "--target", triple, "--target-dir"]).arg(&target_dir);
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR"]
    {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "building kernel-check for {triple}:\n{}", String::from_utf8_lossy(&out.stderr));
    let elf = target_dir.join(triple).join("release/hawq-kernel-check");
    let copy = target_dir.join(format!("kernel-check-{triple}-{}", std::process::id()));
    std::fs::copy(&elf, &copy).unwrap();
    drop(lock);
    let out = Command::new("timeout")
        .args(["-k", "5", "300", "qemu-system-arm", "-M", machine, "-cpu", cpu])
        .args(["-display", "none", "-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native", "-kernel"])
        .arg(&copy)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&copy);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "kernel-check on {cpu} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn check_summary(stdout: &str, paths: &str, runs_per_case: u32) {
    assert!(stdout.contains(&format!("paths={paths}")), "unexpected paths:\n{stdout}");
    // The convolution and the fully connected layer run twice more, on the active path under
    // the kernel sets without one of the Cortex-M4's row forms (`hawq_kernel_cases`' `NARROWED`).
    for (op, narrowed) in [("conv2d", 2), ("depthwise_conv2d", 0), ("fully_connected", 2), ("add", 0)] {
        let line = format!("{op} cases=5000 runs={} mismatches=0", 5000 * (runs_per_case + narrowed));
        assert!(stdout.lines().any(|l| l == line), "missing `{line}`:\n{stdout}");
    }
    assert!(stdout.lines().any(|l| l == "ok"), "no `ok`:\n{stdout}");
}

#[test]
fn cortex_m4_dsp_and_portable_kernels_match_the_reference() {
    let out = run("thumbv7em-none-eabihf", "mps2-an386", "cortex-m4");
    assert!(out.contains("active=dsp"), "the Cortex-M4 build must pick the DSP path:\n{out}");
    check_summary(&out, "scalar,portable,dsp", 2);
}

#[test]
fn cortex_m3_portable_kernels_match_the_reference() {
    let out = run("thumbv7m-none-eabi", "mps2-an385", "cortex-m3");
    assert!(out.contains("active=portable"), "the Cortex-M3 build must pick the portable path:\n{out}");
    check_summary(&out, "scalar,portable", 1);
}
