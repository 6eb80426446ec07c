//! AArch64 Linux program (run under qemu-user): runs the embedded model on the embedded inputs
//! and reports on stdout. qemu-user has no `-icount`, so no instruction counts (`counter=none`).
use std::io::Write;

use hawq_firmware_common::{self as fw, Platform};

mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

static MODEL: &[u8] = hawq_runtime::include_model!(concat!(env!("OUT_DIR"), "/model.hq"));
static INPUTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/inputs.bin"));

#[repr(C, align(16))]
struct Arena([u8; config::ARENA_BYTES]);
static mut ARENA: Arena = Arena([0; config::ARENA_BYTES]);

struct Linux(std::io::Stdout);

impl Platform for Linux {
    const TARGET: &'static str = "aarch64";
    fn write_str(&mut self, s: &str) {
        let _ = self.0.write_all(s.as_bytes());
    }
    fn counter(&mut self) -> Option<u32> {
        None
    }
}

fn main() {
    match config::FAULT {
        // std's panic handler prints the message and exits with 101 (fw::EXIT_PANIC).
        "panic" => panic!("injected by HAWQ_FAULT=panic"),
        // SAFETY: a permanently undefined instruction on purpose: SIGILL ends the process.
        "fault" => unsafe { std::arch::asm!("udf #0") },
        _ => {}
    }
    // SAFETY: the only reference to ARENA, taken once before anything else runs.
    let arena = unsafe { &mut (*std::ptr::addr_of_mut!(ARENA)).0 };
    let mut out = Linux(std::io::stdout());
    let code = fw::run(&mut out, MODEL, INPUTS, arena);
    let _ = out.0.flush();
    std::process::exit(code)
}
