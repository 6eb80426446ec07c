//! Runs the random cases of `hawq-kernel-cases` (conv2d, depthwise conv2d, fully connected, add)
//! through every kernel path this build has (`kernels::available()`: on the Cortex-M4 the DSP and
//! portable paths, on the Cortex-M3 the portable one), each output byte against the scalar
//! reference. Prints one summary line per operation and `ok`, and exits 0; on the first failing
//! case prints it and exits 1. The runtime's host test runs the same cases on the host's paths.
#![no_std]
#![no_main]

use core::fmt::Write;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use hawq_firmware_common::semihost;
use hawq_kernel_cases::{every_op, Bufs, Rng, INPUT, OPS, SCRATCH, TENSOR};
use hawq_runtime::kernels;

/// Cases per operation.
const CASES: u32 = 5000;

struct Host;

impl Write for Host {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        semihost::write_str(s);
        Ok(())
    }
}

/// The case buffers, in RAM (QEMU's 4 MiB).
struct Buffers {
    input: [u8; INPUT],
    weights: [u8; TENSOR],
    want: [u8; TENSOR],
    got: [u8; TENSOR],
    scratch: [u8; SCRATCH],
}

#[entry]
fn main() -> ! {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    static mut BUFS: Buffers =
        Buffers { input: [0; INPUT], weights: [0; TENSOR], want: [0; TENSOR], got: [0; TENSOR], scratch: [0; SCRATCH] };
    // SAFETY: the only reference to BUFS, taken once.
    let b = unsafe { &mut *core::ptr::addr_of_mut!(BUFS) };
    let mut bufs = Bufs {
        input: &mut b.input,
        weights: &mut b.weights,
        want: &mut b.want,
        got: &mut b.got,
        scratch: &mut b.scratch,
        prepared: &mut [],
    };
    let names = heapless_names();
    let _ = writeln!(Host, "kernel-check active={} paths={}", kernels::active().name(), names.as_str());
    match every_op(&mut rng, &mut bufs, CASES, &kernels::available()) {
        Ok(tallies) => {
            for (name, t) in OPS.iter().zip(tallies) {
                let _ = writeln!(Host, "{name} cases={} runs={} mismatches=0", t.cases, t.runs);
            }
        }
        Err(failure) => {
            let _ = writeln!(Host, "{failure}");
            semihost::exit(1)
        }
    }
    let _ = writeln!(Host, "ok");
    semihost::exit(0)
}

/// The available paths as `a,b,c`.
fn heapless_names() -> Names {
    let mut s = Names::default();
    for (i, p) in kernels::available().into_iter().enumerate() {
        if i > 0 {
            s.push(",");
        }
        s.push(p.name());
    }
    s
}

struct Names {
    buf: [u8; 64],
    len: usize,
}

impl Default for Names {
    fn default() -> Names {
        Names { buf: [0; 64], len: 0 }
    }
}

impl Names {
    fn push(&mut self, s: &str) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    // The faulting instruction and its caller, to find in the ELF's disassembly.
    let _ = writeln!(
        Host,
        "fault: HardFault pc={:#x} lr={:#x} r0={:#x} r1={:#x} r2={:#x} r3={:#x} r12={:#x}",
        frame.pc(),
        frame.lr(),
        frame.r0(),
        frame.r1(),
        frame.r2(),
        frame.r3(),
        frame.r12()
    );
    semihost::exit(3)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(Host, "panic: {info}");
    semihost::exit(101)
}
