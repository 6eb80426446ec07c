//! Arbitrary bytes as a `.npz` dataset: `Dataset::load` (through a file, as it takes a path), then
//! every accessor the compiler uses on a loaded dataset.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hawq_compiler_fuzz::load_dataset(data);
});
