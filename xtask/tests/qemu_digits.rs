//! The bundled example (examples/digits, the project's own model and data) on every QEMU target,
//! in the normal test suite (scripts/test.sh): bit-exact agreement with the host runtime in
//! uniform 8-bit and mixed precision, deterministic instruction counts, and the verdict path
//! (a corrupted model, a panic and a fault each end the run with a non-zero exit, not a hang).
//!
//! Needs QEMU and the cross targets: scripts/setup-cross.sh installs them. Never skips.

use std::sync::OnceLock;
use std::time::Duration;

use hawq_e2e::qemu::{self, build, compile_cases, measure, Build, Case, Config, Fault, ModelSpec, Target};

const TIMEOUT: Duration = Duration::from_secs(120);

fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        qemu::check_tools(&Target::ALL).unwrap();
        compile_cases(&ModelSpec::digits(), &Config::ALL, 6).unwrap()
    })
}

fn built(target: Target, model: &[u8], inputs: &[u8], fault: Fault) -> qemu::Firmware {
    match build(target, model, inputs, fault).unwrap() {
        Build::Built(fw) => fw,
        Build::DoesNotFit(why) => panic!("digits must fit {target}: {why}"),
    }
}

/// The kernel path a target's firmware must report, where it is fixed at compile time.
fn expected_kernels(target: Target) -> Option<&'static str> {
    match target {
        Target::CortexM4 => Some("dsp"),
        Target::CortexM0 | Target::CortexM3 | Target::Riscv32 => Some("portable"),
        Target::Aarch64Virt => Some("neon"),
        Target::Aarch64VirtDotprod => Some("neon-dotprod"),
        // Detected at run time: SDOT under qemu-aarch64 -cpu max.
        Target::Aarch64 => Some("neon-dotprod"),
    }
}

#[test]
fn digits_matches_the_host_bit_for_bit_on_every_target() {
    let mut failures = Vec::new();
    let mut aarch64_counts = Vec::new();
    // Compiled once before the lanes start, rather than by whichever lane asks first while the
    // other waits on it.
    let cases = cases();
    let by_target = qemu::per_target(&Target::ALL, |target| {
        let measure = |case: &Case| measure(target, &case.blob, &case.inputs, &case.expected);
        cases
            .iter()
            .map(|case| measure(case).unwrap_or_else(|e| panic!("digits {} on {target}: {e:#}", case.config)))
            .collect::<Vec<_>>()
    });
    for (c, case) in cases.iter().enumerate() {
        for (target, measured) in Target::ALL.into_iter().zip(&by_target) {
            let m = &measured[c];
            assert_eq!(m.kernels.as_deref(), expected_kernels(target), "{target}: the kernel path that ran");
            if matches!(target, Target::Aarch64Virt | Target::Aarch64VirtDotprod) {
                aarch64_counts.push((case.config, target, m.mean_instructions()));
            }
            println!(
                "digits {:<5} {target:<9} fits, outputs {} on {} inputs, instructions {:?}, flash {} B",
                case.config.name(),
                if m.match_host() { "identical" } else { "DIFFERENT" },
                m.inferences,
                m.mean_instructions(),
                m.flash_bytes
            );
            if m.fits.is_err() || !m.match_host() {
                failures.push(format!("{} on {target}: fits {:?}, mismatches {:?}", case.config, m.fits, m.mismatches));
            }
            if target.counts_instructions() {
                assert!(m.mean_instructions().is_some_and(|n| n > 10_000), "{target}: no plausible instruction count");
                assert_eq!(m.layers.len(), 8, "{target}: one layer line per op of digits");
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The bare-metal AArch64 firmware counts both kernel paths; SDOT (four products per lane
    // and instruction) must take fewer instructions than SMULL/SADALP on the same model.
    for config in Config::ALL {
        let count = |t: Target| aarch64_counts.iter().find(|c| c.0 == config && c.1 == t).and_then(|c| c.2);
        let (neon, dot) = (count(Target::Aarch64Virt), count(Target::Aarch64VirtDotprod));
        assert!(matches!((neon, dot), (Some(n), Some(d)) if d < n), "{config}: neon {neon:?}, neon-dotprod {dot:?}");
    }
}

#[test]
fn instruction_counts_are_identical_run_to_run() {
    let case = &cases()[0];
    let targets =
        [Target::CortexM4, Target::CortexM0, Target::Riscv32, Target::Aarch64Virt, Target::Aarch64VirtDotprod];
    qemu::per_target(&targets, |target| {
        let fw = built(target, &case.blob, &case.inputs.concat(), Fault::None);
        let a = qemu::parse(&qemu::run(&fw, TIMEOUT).unwrap().stdout).unwrap();
        let b = qemu::parse(&qemu::run(&fw, TIMEOUT).unwrap().stdout).unwrap();
        let counts = |r: &qemu::Report| r.inferences.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        assert!(counts(&a).iter().all(Option::is_some), "{target}: counts missing");
        assert_eq!(counts(&a), counts(&b), "{target}: instruction counts differ between two runs");
        assert_eq!(a.layers, b.layers, "{target}: per-layer counts differ between two runs");
    });
}

#[test]
fn a_corrupted_model_a_panic_and_a_fault_each_end_the_run_with_a_failure() {
    let case = &cases()[0];
    let inputs = case.inputs.concat();
    let mut corrupted = case.blob.clone();
    let body_byte = corrupted.len() / 2;
    corrupted[body_byte] ^= 0x5A;
    qemu::per_target(&Target::ALL, |target| {
        // A bit flip in the body: the loader's checksum catches it, exit code 2.
        let fw = built(target, &corrupted, &inputs, Fault::None);
        let run = qemu::run(&fw, TIMEOUT).unwrap();
        assert!(!run.timed_out, "{target}: corrupted model hung");
        assert_eq!(run.status, Some(2), "{target}: corrupted model\n{}", run.transcript());
        let report = qemu::parse(&run.stdout).unwrap_or_default();
        let error = report.error.unwrap_or_else(|| panic!("{target}: no error line\n{}", run.transcript()));
        assert!(error.contains("checksum"), "{target}: {error}");
        assert!(report.inferences.is_empty(), "{target}: ran inferences on a corrupted model");

        // A panic: the panic handler reports and exits 101 (std's own handler on aarch64).
        let fw = built(target, &case.blob, &inputs, Fault::Panic);
        let run = qemu::run(&fw, TIMEOUT).unwrap();
        assert_eq!(run.status, Some(101), "{target}: panic\n{}", run.transcript());
        assert!(run.stdout.contains("injected") || run.stderr.contains("injected"), "{target}: {}", run.transcript());

        // An undefined instruction: HardFault / illegal-instruction trap (exit 3) on the
        // microcontrollers, SIGILL under qemu-user.
        let fw = built(target, &case.blob, &inputs, Fault::Fault);
        let run = qemu::run(&fw, TIMEOUT).unwrap();
        assert!(!run.timed_out, "{target}: a fault hung\n{}", run.transcript());
        assert!(run.status != Some(0), "{target}: a fault exited 0\n{}", run.transcript());
        if target != Target::Aarch64 {
            assert_eq!(run.status, Some(3), "{target}: fault\n{}", run.transcript());
            assert!(run.stdout.contains("fault: "), "{target}: {}", run.transcript());
        }
    });
}

#[test]
fn the_runners_of_the_target_crates_run_qemu_with_a_timeout_and_icount() {
    for target in Target::ALL {
        let text = std::fs::read_to_string(target.crate_dir().join(".cargo/config.toml")).unwrap();
        let runner = text.lines().find(|l| l.trim_start().starts_with("runner")).unwrap();
        assert!(runner.contains("\"timeout "), "{target}: runner without a timeout: {runner}");
        assert!(text.contains(&format!("target = \"{}\"", target.triple())), "{target}: wrong build target");
        let cmd = target.qemu_command().unwrap();
        assert!(cmd[0].starts_with("qemu-"), "{target}: {cmd:?}");
        if target.counts_instructions() {
            assert!(cmd.iter().any(|w| w == "-icount"), "{target}: no -icount: {cmd:?}");
            assert!(cmd.iter().any(|w| w.contains("sleep=off")), "{target}: -icount without sleep=off: {cmd:?}");
        }
    }
}
