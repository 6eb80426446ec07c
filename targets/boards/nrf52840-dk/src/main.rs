//! nRF52840-DK: runs the embedded model on the embedded inputs, LED1 lit while it works, and
//! reports over defmt (RTT) with cycle counts from the DWT cycle counter (64 MHz core clock).
#![no_std]
#![no_main]

use cortex_m::peripheral::DWT;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use defmt_rtt as _;
use embedded_hal::digital::OutputPin;
use hawq_firmware_common::{self as fw, semihost, Platform};
use nrf52840_hal::gpio::{p0, Level};
use nrf52840_hal::pac;

#[allow(dead_code)] // FAULT: the fault injection is for the QEMU tests
mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

static MODEL: &[u8] = hawq_runtime::include_model!(concat!(env!("OUT_DIR"), "/model.hq"));
static INPUTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/inputs.bin"));

#[repr(C, align(16))]
struct Arena([u8; config::ARENA_BYTES]);
static mut ARENA: Arena = Arena([0; config::ARENA_BYTES]);

struct Board;

impl Platform for Board {
    const TARGET: &'static str = "nrf52840-dk";
    const UNIT: &'static str = "cycles";
    fn write_str(&mut self, s: &str) {
        defmt::println!("{=str}", s.trim_end_matches('\n'));
    }
    fn counter(&mut self) -> Option<u32> {
        Some(DWT::cycle_count())
    }
    fn stack(&self) -> Option<(usize, usize)> {
        extern "C" {
            static _stack_start: u32;
            static _stack_end: u32;
        }
        Some((core::ptr::addr_of!(_stack_end) as usize, core::ptr::addr_of!(_stack_start) as usize))
    }
}

#[entry]
fn main() -> ! {
    let mut core = cortex_m::Peripherals::take().unwrap();
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();
    let periph = pac::Peripherals::take().unwrap();
    let port0 = p0::Parts::new(periph.P0);
    // LED1 (P0.13) is active low: lit while the model runs.
    let mut led = port0.p0_13.into_push_pull_output(Level::High);
    let _ = led.set_low();
    // SAFETY: the only reference to ARENA, taken once before anything else runs.
    let arena = unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 };
    let code = fw::run_with_kernels::<_, { config::KERNELS }>(&mut Board, MODEL, INPUTS, arena);
    let _ = led.set_high();
    semihost::exit(code)
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    fw::report_fault(&mut Board, "HardFault", None);
    semihost::exit(fw::EXIT_FAULT)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fw::report_panic(&mut Board, info);
    semihost::exit(fw::EXIT_PANIC)
}
