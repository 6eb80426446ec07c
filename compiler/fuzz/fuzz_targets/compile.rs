//! Arbitrary bytes as an ONNX file: import, calibrate on a few inputs derived from the bytes,
//! compile at 8 bits and at a mixed configuration, load each model with the runtime and run one
//! inference.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hawq_compiler_fuzz::compile_and_run(data);
});
