//! The kernel cases on every path of the machine it runs on, against the scalar reference: the
//! QEMU kernel-check firmware's seed, then a few more. For paths the test machine lacks, run it
//! under QEMU's user mode (scripts/test.sh does, for AArch64's NEON and SDOT):
//!
//! ```text
//! cargo run --release -p hawq-kernel-cases --features std --example all_paths --target aarch64-unknown-linux-gnu
//! ```
//!
//! Exits 1 on the first failing case, after printing it.
use hawq_kernel_cases::{every_op, HostBufs, Rng, OPS};
use hawq_runtime::kernels::{self, Path};

const SEEDS: [u64; 4] = [0x9E37_79B9_7F4A_7C15, 0x3C6E_F372_FE94_F82A, 0xDAA6_6D2C_7DDF_743F, 0x78DD_E6E5_FD29_F054];
const CASES: u32 = 5000;

fn main() {
    let paths: Vec<Path> = kernels::available().into_iter().collect();
    let names: Vec<&str> = paths.iter().map(|p| p.name()).collect();
    let mut host = HostBufs::new();
    let mut b = host.bufs();
    for seed in SEEDS {
        match every_op(&mut Rng(seed | 1), &mut b, CASES, &paths) {
            Ok(tallies) => {
                for (op, t) in OPS.iter().zip(tallies) {
                    println!("seed {seed:#018x} {op} cases={} runs={} paths={names:?}", t.cases, t.runs);
                }
            }
            Err(failure) => {
                eprintln!("seed {seed:#018x}: {failure}");
                std::process::exit(1);
            }
        }
    }
    println!("ok");
}
