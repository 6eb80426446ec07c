//! ESP32-C3: runs the embedded model on the embedded inputs, GPIO8 (the DevKit's LED line) high
//! while it works, and reports over defmt (RTT) with times from esp-hal's microsecond clock.
#![no_std]
#![no_main]

use defmt_rtt as _;
use embedded_hal::digital::OutputPin;
use esp_hal::gpio::{Level, Output, OutputConfig};
use esp_hal::time::Instant;
use hawq_firmware_common::{self as fw, semihost, Platform};

esp_bootloader_esp_idf::esp_app_desc!();

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
    const TARGET: &'static str = "esp32c3";
    const UNIT: &'static str = "microseconds";
    fn write_str(&mut self, s: &str) {
        defmt::println!("{=str}", s.trim_end_matches('\n'));
    }
    fn counter(&mut self) -> Option<u32> {
        Some(Instant::now().duration_since_epoch().as_micros() as u32)
    }
}

#[esp_hal::main]
fn main() -> ! {
    let peripherals = esp_hal::init(esp_hal::Config::default());
    let mut led = Output::new(peripherals.GPIO8, Level::Low, OutputConfig::default());
    let _ = OutputPin::set_high(&mut led);
    // SAFETY: the only reference to ARENA, taken once before anything else runs.
    let arena = unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 };
    let code = fw::run_with_kernels::<_, { config::KERNELS }>(&mut Board, MODEL, INPUTS, arena);
    let _ = OutputPin::set_low(&mut led);
    semihost::exit(code)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fw::report_panic(&mut Board, info);
    semihost::exit(fw::EXIT_PANIC)
}
