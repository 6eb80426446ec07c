//! Arbitrary bytes as an ONNX file: import, and when the graph imports and is small, the float
//! reference on one input derived from the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hawq_compiler_fuzz::import_and_run(data);
});
