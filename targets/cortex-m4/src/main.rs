//! Cortex-M4F (mps2-an386) firmware: runs the embedded model on the embedded inputs and reports
//! over semihosting; instruction counts from the CMSDK timer under `-icount shift=7`.
#![no_std]
#![no_main]

use cortex_m_rt::{entry, exception, ExceptionFrame};
use hawq_firmware_common::{self as fw, counters::Cmsdk, semihost, Platform};

mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

static MODEL: &[u8] = hawq_runtime::include_model!(concat!(env!("OUT_DIR"), "/model.hq"));
static INPUTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/inputs.bin"));

#[repr(C, align(16))]
struct Arena([u8; config::ARENA_BYTES]);
static mut ARENA: Arena = Arena([0; config::ARENA_BYTES]);

struct Board(Cmsdk);

impl Platform for Board {
    const TARGET: &'static str = "cortex-m4";
    fn write_str(&mut self, s: &str) {
        semihost::write_str(s)
    }
    fn counter(&mut self) -> Option<u32> {
        Some(self.0.read())
    }
    fn instructions(ticks: u32) -> u32 {
        Cmsdk::instructions(ticks)
    }
    fn stack(&self) -> Option<(usize, usize)> {
        extern "C" {
            // cortex-m-rt's linker script: the stack grows down from _stack_start to _stack_end.
            static _stack_start: u32;
            static _stack_end: u32;
        }
        // Only the symbols' addresses are taken (safe since Rust 1.82).
        Some((core::ptr::addr_of!(_stack_end) as usize, core::ptr::addr_of!(_stack_start) as usize))
    }
}

#[entry]
fn main() -> ! {
    let mut board = Board(Cmsdk::start());
    match config::FAULT {
        "panic" => panic!("injected by HAWQ_FAULT=panic"),
        "fault" => cortex_m::asm::udf(),
        _ => {}
    }
    // SAFETY: the only reference to ARENA, taken once before anything else runs.
    let arena = unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 };
    let code = fw::run(&mut board, MODEL, INPUTS, arena);
    semihost::exit(code)
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    fw::report_fault(&mut Board(Cmsdk), format_args!("HardFault"));
    semihost::exit(fw::EXIT_FAULT)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fw::report_panic(&mut Board(Cmsdk), info);
    semihost::exit(fw::EXIT_PANIC)
}
