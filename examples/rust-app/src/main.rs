//! The smallest complete firmware on hawq-runtime: load the model once, then for each input
//! write it, invoke, read the scores. `digits_model` is the module `hawq compile --emit-rust src/`
//! writes (the bundled digits example here); replace it with your model's.
//!
//! Where the input comes from and what the result drives is the board's: here the input is a
//! buffer the firmware would fill from its sensor, and the class goes to a volatile store (an LED,
//! a GPIO or a log in a real app). Nothing here panics: every runtime call returns a `Result`.
#![no_std]
#![no_main]

// Generated (`hawq compile --emit-rust`): kept as written, so that it can be regenerated.
#[rustfmt::skip]
mod digits_model;

use cortex_m_rt::entry;

/// The arena: `ARENA_BYTES` of RAM, in a static (not on the small stack).
static mut ARENA: digits_model::Arena = digits_model::Arena::new();

/// What a sensor driver would fill: the model's raw input (here 8×8 pixels, 0–16 each).
static mut SENSOR: [u8; digits_model::INPUT_RAW_BYTES] = [0; digits_model::INPUT_RAW_BYTES];

/// Where the result goes (a stand-in for an LED or a log).
static mut CLASS: u8 = 0;

#[entry]
fn main() -> ! {
    // SAFETY: the only references to these statics, taken once; no interrupt uses them.
    let (arena, sensor, class) = unsafe {
        (&mut *core::ptr::addr_of_mut!(ARENA), &*core::ptr::addr_of!(SENSOR), core::ptr::addr_of_mut!(CLASS))
    };
    let Ok(model) = digits_model::load() else { halt() };
    let Ok(mut it) = digits_model::interpreter(&model, arena) else { halt() };
    loop {
        // A real app waits for its sensor here (an interrupt, a DMA transfer, a timer).
        if it.write_input_raw(sensor).is_err() || it.invoke().is_err() {
            halt();
        }
        let Ok(scores) = digits_model::read_output(&it) else { halt() };
        let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap_or(0);
        // SAFETY: `class` points to CLASS, which nothing else accesses.
        unsafe { core::ptr::write_volatile(class, best as u8) };
        cortex_m::asm::wfi();
    }
}

/// Stops on an error (a real app would report it: `hawq_runtime::Error::summary()`).
fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

extern "C" {
    fn DefaultHandler();
}

// cortex-m-rt's `device` feature without a device crate: the app enables no interrupt, so the
// table holds the one entry cortex-m-rt's linker script requires. A PAC provides the real one.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [DefaultHandler];

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    halt()
}
