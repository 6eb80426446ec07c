//! Models built field by field from the fuzzer's bytes (see `src/structured.rs`), encoded with
//! `format::encode`, then loaded and run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(blob) = hawq_runtime_fuzz::structured::build(data) {
        hawq_runtime_fuzz::load_and_run(&blob);
    }
});
