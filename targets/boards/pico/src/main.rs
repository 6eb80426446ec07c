//! Raspberry Pi Pico: runs the embedded model on the embedded inputs, the LED (GPIO25) lit while
//! it works, and reports over defmt (RTT) with times from the 1 MHz system timer (the
//! Cortex-M0+ has no cycle counter).
#![no_std]
#![no_main]

use defmt_rtt as _;
use embedded_hal::digital::OutputPin;
use hawq_firmware_common::{self as fw, semihost, Platform};
use rp2040_hal::{self as hal, pac, Clock};

/// The second-stage bootloader for the Pico's W25Q080 flash.
#[link_section = ".boot2"]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

const XOSC_HZ: u32 = 12_000_000;

#[allow(dead_code)] // FAULT: the fault injection is for the QEMU tests
mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

static MODEL: &[u8] = hawq_runtime::include_model!(concat!(env!("OUT_DIR"), "/model.hq"));
static INPUTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/inputs.bin"));

#[repr(C, align(16))]
struct Arena([u8; config::ARENA_BYTES]);
static mut ARENA: Arena = Arena([0; config::ARENA_BYTES]);

struct Board(Option<hal::Timer>);

impl Platform for Board {
    const TARGET: &'static str = "pico";
    const UNIT: &'static str = "microseconds";
    fn write_str(&mut self, s: &str) {
        defmt::println!("{=str}", s.trim_end_matches('\n'));
    }
    fn counter(&mut self) -> Option<u32> {
        self.0.as_ref().map(|t| t.get_counter_low())
    }
    fn stack(&self) -> Option<(usize, usize)> {
        extern "C" {
            static _stack_start: u32;
            static _stack_end: u32;
        }
        Some((core::ptr::addr_of!(_stack_end) as usize, core::ptr::addr_of!(_stack_start) as usize))
    }
}

#[hal::entry]
fn main() -> ! {
    let mut pac = pac::Peripherals::take().unwrap();
    let mut watchdog = hal::Watchdog::new(pac.WATCHDOG);
    let clocks = hal::clocks::init_clocks_and_plls(
        XOSC_HZ,
        pac.XOSC,
        pac.CLOCKS,
        pac.PLL_SYS,
        pac.PLL_USB,
        &mut pac.RESETS,
        &mut watchdog,
    )
    .ok()
    .unwrap();
    defmt::println!("system clock {} Hz", clocks.system_clock.freq().to_Hz());
    let timer = hal::Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);
    let sio = hal::Sio::new(pac.SIO);
    let pins = hal::gpio::Pins::new(pac.IO_BANK0, pac.PADS_BANK0, sio.gpio_bank0, &mut pac.RESETS);
    let mut led = pins.gpio25.into_push_pull_output();
    let _ = led.set_high();
    // SAFETY: the only reference to ARENA, taken once before anything else runs.
    let arena = unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 };
    let code = fw::run_with_kernels::<_, { config::KERNELS }>(&mut Board(Some(timer)), MODEL, INPUTS, arena);
    let _ = led.set_low();
    semihost::exit(code)
}

#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    fw::report_fault(&mut Board(None), "HardFault", None);
    semihost::exit(fw::EXIT_FAULT)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fw::report_panic(&mut Board(None), info);
    semihost::exit(fw::EXIT_PANIC)
}
