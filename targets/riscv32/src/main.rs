//! RISC-V 32 (QEMU virt, machine mode) firmware: runs the embedded model on the embedded inputs
//! and reports over semihosting; instruction counts from `minstret` under `-icount`.
#![no_std]
#![no_main]

use hawq_firmware_common::{self as fw, counters, semihost, Platform};

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
    const TARGET: &'static str = "riscv32";
    fn write_str(&mut self, s: &str) {
        semihost::write_str(s)
    }
    fn write_bytes(&mut self, text: &[u8]) {
        semihost::write_bytes(text)
    }
    fn counter(&mut self) -> Option<u32> {
        Some(counters::minstret())
    }
    fn stack(&self) -> Option<(usize, usize)> {
        extern "C" {
            // riscv-rt's linker script: the stack grows down from __sstack to __estack.
            static __sstack: u32;
            static __estack: u32;
        }
        // Only the symbols' addresses are taken (safe since Rust 1.82).
        Some((core::ptr::addr_of!(__estack) as usize, core::ptr::addr_of!(__sstack) as usize))
    }
}

#[riscv_rt::entry]
fn main() -> ! {
    match config::FAULT {
        "panic" => panic!("injected by HAWQ_FAULT=panic"),
        // SAFETY: an illegal instruction on purpose; the trap handler below reports it.
        "fault" => unsafe { core::arch::asm!("unimp") },
        _ => {}
    }
    // SAFETY: the only reference to ARENA, taken once before anything else runs.
    let arena = unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 };
    let code = fw::run_with_kernels::<_, { config::KERNELS }>(&mut Board, MODEL, INPUTS, arena);
    semihost::exit(code)
}

/// Every exception (illegal instruction, access fault, misaligned access...) ends the run.
#[export_name = "ExceptionHandler"]
fn exception_handler(_frame: &riscv_rt::TrapFrame) -> ! {
    let cause = riscv::register::mcause::read().code();
    fw::report_fault(&mut Board, "exception, mcause", Some(cause as u32));
    semihost::exit(fw::EXIT_FAULT)
}

/// No interrupt is enabled; one arriving anyway is a fault.
#[export_name = "DefaultHandler"]
fn default_handler() -> ! {
    fw::report_fault(&mut Board, "unexpected interrupt", None);
    semihost::exit(fw::EXIT_FAULT)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fw::report_panic(&mut Board, info);
    semihost::exit(fw::EXIT_PANIC)
}
