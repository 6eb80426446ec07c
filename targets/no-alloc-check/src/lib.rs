//! Exercises every public entry point of the runtime so that all of it is linked.
#![no_std]

use hawq_runtime::{Interpreter, Model};

/// Loads a model, runs it once and returns 0, or a non-zero error code.
///
/// # Safety
/// `model` and `arena` must point to `model_len` and `arena_len` valid bytes.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn hawq_run(model: *const u8, model_len: usize, arena: *mut u8, arena_len: usize) -> i32 {
    // SAFETY: the caller guarantees both regions are valid for the given lengths.
    let (blob, arena) = unsafe { (core::slice::from_raw_parts(model, model_len), core::slice::from_raw_parts_mut(arena, arena_len)) };
    let Ok(model) = Model::from_bytes(blob) else { return 1 };
    let Ok(mut it) = Interpreter::new(&model, arena) else { return 2 };
    let zeros = [0u8; 4];
    if it.write_input_raw(&zeros).is_err() && it.write_input_f32(&[0.0]).is_err() {
        return 3;
    }
    match it.invoke() {
        Ok(()) => {
            let mut out = [0f32; 4];
            let _ = it.read_output_f32(&mut out);
            0
        }
        Err(_) => 4,
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
