//! `arena_bytes (u32 LE) ++ body`: a valid header with the right length and CRC is put in front,
//! so every mutation reaches the body's readers (the meta's postcard, the op records) and the validator.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let arena = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    hawq_runtime_fuzz::load_and_run(&hawq_runtime_fuzz::with_header(&data[4..], arena));
});
