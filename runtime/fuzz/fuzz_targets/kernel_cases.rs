//! The kernel cases of `hawq-kernel-cases` (the QEMU kernel-check firmware's and the runtime's
//! host test's) with seeds from the fuzzer: a few cases of each op per input, every path this
//! machine has against the scalar reference. A failing case panics with its description.
#![no_main]

use hawq_kernel_cases::{every_op, HostBufs, Rng};
use hawq_runtime::kernels::{self, Path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut seed = [0u8; 8];
    for (d, s) in seed.iter_mut().zip(data) {
        *d = *s;
    }
    let mut host = HostBufs::new();
    let mut b = host.bufs();
    let paths: Vec<Path> = kernels::available().into_iter().collect();
    let mut rng = Rng(u64::from_le_bytes(seed) | 1);
    if let Err(failure) = every_op(&mut rng, &mut b, 2, &paths) {
        panic!("{failure}");
    }
});
