//! The kernel cases of `hawq-kernel-cases` (the QEMU kernel-check firmware's) on this machine's
//! paths: every output byte of every path against the scalar reference, every path running
//! itself. The firmware's own seed first, then random seeds.

use hawq_kernel_cases::{every_op, HostBufs, Rng, Tally};
use hawq_runtime::kernels::{self, Path};
use proptest::prelude::*;

/// Cases per operation with the firmware's seed (the firmware runs 5,000).
const CASES: u32 = 5000;

fn run_all(seed: u64, cases: u32) -> [Tally; 5] {
    let mut host = HostBufs::new();
    let mut b = host.bufs();
    let paths: Vec<Path> = kernels::available().into_iter().collect();
    let mut rng = Rng(seed | 1);
    every_op(&mut rng, &mut b, cases, &paths).unwrap_or_else(|f| panic!("seed {seed:#x}: {f}"))
}

#[test]
fn the_firmware_cases_pass_on_every_path_of_this_machine() {
    let tallies = run_all(0x9E37_79B9_7F4A_7C15, CASES);
    let paths: Vec<&str> = kernels::available().iter().map(|p| p.name()).collect();
    println!("paths {paths:?}: {tallies:?}");
    for t in tallies {
        assert_eq!(t.cases, CASES);
        assert!(t.runs >= CASES * (paths.len() as u32 - 1) / 2, "too few path runs: {t:?}");
    }
}

proptest! {
    // A failing seed is written to `kernel_cases.proptest-regressions` beside this file and run
    // first from then on (the panic names it too): a failure seen once can be replayed.
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn random_seeds_pass_on_every_path_of_this_machine(seed in any::<u64>()) {
        run_all(seed, 300);
    }
}

/// Bytes of stack a thread running the host kernels needs at most: their buffers are bounded
/// (a band of the padded image, a pass of depthwise tables, a strip of stacked columns) or
/// prepared in the interpreter's workspace, never a layer's worth on the stack. Measured:
/// about 45 KiB with this test's own frames (200–256 KiB before).
const HOST_STACK: usize = 64 * 1024;

#[test]
fn every_path_runs_in_a_thread_of_64_kib_of_stack() {
    let worker = std::thread::Builder::new().stack_size(HOST_STACK);
    // A stack overflow aborts the test process: this fails loudly, not by a panic.
    let tallies = worker.spawn(|| run_all(0x5EED_57AC, 1000)).expect("spawn").join().expect("no panic");
    assert!(tallies.iter().all(|t| t.cases == 1000), "{tallies:?}");
}
