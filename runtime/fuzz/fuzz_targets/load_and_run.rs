//! The raw blob, header and all: exercises the header checks, and the body when the fuzzer keeps
//! the CRC intact (seed models, or mutations of bytes past the body).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hawq_runtime_fuzz::load_and_run(data);
});
