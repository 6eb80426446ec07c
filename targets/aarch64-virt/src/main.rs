//! AArch64 (QEMU virt, EL1, bare metal) firmware: runs the embedded model on the embedded inputs
//! and reports over semihosting (`HLT #0xF000`); instruction counts from the PMU's INST_RETIRED
//! event under `-icount`. The kernels are the runtime's AArch64 ones chosen at compile time: NEON
//! (SMULL/SADALP), or SDOT when built with `-C target-feature=+dotprod`.
#![no_std]
#![no_main]

use hawq_firmware_common::{self as fw, counters::Pmu, semihost, Platform};

core::arch::global_asm!(include_str!("boot.s"));

mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

static MODEL: &[u8] = hawq_runtime::include_model!(concat!(env!("OUT_DIR"), "/model.hq"));
static INPUTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/inputs.bin"));

#[repr(C, align(16))]
struct Arena([u8; config::ARENA_BYTES]);
static mut ARENA: Arena = Arena([0; config::ARENA_BYTES]);

/// The semihosting channel and the instruction counter (`None` without `-icount`).
struct Board(Option<Pmu>);

impl Platform for Board {
    const TARGET: &'static str = "aarch64-virt";
    fn write_str(&mut self, s: &str) {
        semihost::write_str(s)
    }
    fn write_bytes(&mut self, text: &[u8]) {
        semihost::write_bytes(text)
    }
    fn counter(&mut self) -> Option<u32> {
        self.0.as_ref().map(Pmu::read)
    }
    fn stack(&self) -> Option<(usize, usize)> {
        extern "C" {
            // link.x: the stack grows down from __stack_top to __stack_bottom.
            static __stack_bottom: u8;
            static __stack_top: u8;
        }
        // Only the symbols' addresses are taken (safe since Rust 1.82).
        Some((core::ptr::addr_of!(__stack_bottom) as usize, core::ptr::addr_of!(__stack_top) as usize))
    }
}

/// Called by the boot code (boot.s) with the stack, FP/SIMD, the vectors and the MMU set up.
#[no_mangle]
extern "C" fn hawq_main() -> ! {
    let mut board = Board(Pmu::start());
    match config::FAULT {
        "panic" => panic!("injected by HAWQ_FAULT=panic"),
        // SAFETY: a permanently undefined instruction on purpose; the vectors report it.
        "fault" => unsafe { core::arch::asm!("udf #0") },
        _ => {}
    }
    // SAFETY: the only reference to ARENA, taken once before anything else runs.
    let arena = unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 };
    let code = fw::run_with_kernels::<_, { config::KERNELS }>(&mut board, MODEL, INPUTS, arena);
    semihost::exit(code)
}

/// Every exception ends the run (boot.s's vectors): `index` is the vector (0-3 current EL on
/// SP_EL0, 4-7 on SP_EL1, then lower ELs; synchronous, IRQ, FIQ, SError in each group of four).
#[no_mangle]
extern "C" fn hawq_exception(index: u64, esr: u64, _elr: u64) -> ! {
    let what = match index % 4 {
        0 => "synchronous exception, ESR_EL1.EC",
        1 => "unexpected IRQ",
        2 => "unexpected FIQ",
        _ => "SError, ESR_EL1.EC",
    };
    let class = matches!(index % 4, 0 | 3).then_some((esr >> 26) as u32 & 0x3F);
    fw::report_fault(&mut Board(None), what, class);
    semihost::exit(fw::EXIT_FAULT)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fw::report_panic(&mut Board(None), info);
    semihost::exit(fw::EXIT_PANIC)
}
