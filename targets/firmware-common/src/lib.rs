//! The firmware that runs a compiled model under QEMU (or on a board) and reports to the host.
//!
//! A board crate embeds a model and a batch of raw inputs at build time (`build_support.rs`),
//! implements [`Platform`] (text output, a counter, the stack bounds), calls [`run`] and exits
//! with the code it returns. The report is line-oriented text, parsed by the host harness
//! (`tests/src/qemu.rs`):
//!
//! ```text
//! hawq target=cortex-m4 kernels=dsp model_bytes=98496 arena_bytes=54996 inputs=8 input_bytes=3072 counter=instructions
//! layer 0 conv2d 123456           (per-layer instructions of the first inference)
//! inference 0 instructions=4567890 output=0a0bff…
//! inference 1 instructions=4567890 output=…
//! stack used=1904 size=4193536 runtime=1104
//!                                 (high-water mark of the stack, bytes; `runtime`: the deepest
//!                                 the stack went below the caller of `Interpreter::invoke`)
//! ok
//! ```
//!
//! Counts are `-` when the platform has no counter (qemu-user); real boards report `cycles=` or
//! `microseconds=` instead of `instructions=` ([`Platform::UNIT`]). Counts exclude the cost of
//! reading the counter. Any runtime error prints
//! `error: <summary> (op N)` ([`Error::summary`]) and returns exit code [`EXIT_RUNTIME_ERROR`]; the
//! boards' panic and fault handlers print `panic: …` / `fault: …` and exit with [`EXIT_PANIC`] /
//! [`EXIT_FAULT`].
//!
//! Nothing here formats with `core::fmt` (its machinery is several kilobytes of flash): numbers
//! are written by [`Out::dec`] and [`Out::hex`], errors by their static summary, and a panic by
//! its message when that is a plain string and its location.
#![no_std]

use core::sync::atomic::{AtomicU32, Ordering};

use hawq_runtime::kernels::linked;
use hawq_runtime::{Error, Interpreter, Model};

/// Exit code of a run whose every inference succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit code when the model cannot be loaded or an inference fails.
pub const EXIT_RUNTIME_ERROR: i32 = 2;
/// Exit code of the boards' panic handlers.
pub const EXIT_PANIC: i32 = 101;
/// Exit code of the boards' HardFault / trap handlers.
pub const EXIT_FAULT: i32 = 3;

/// Most operations reported in the per-layer breakdown (later layers still run and count in
/// the inference's total; they only get no `layer` line). Their counter readings are a static
/// of 4 bytes each: on the 16 KiB Cortex-M0 every byte here is one the arena cannot have, and
/// the largest fixture has fewer than 30 operations.
pub const MAX_LAYERS: usize = 64;

/// What a board provides.
pub trait Platform {
    /// The target's name in the report (`cortex-m4`, `riscv32`, ...).
    const TARGET: &'static str;

    /// What [`Platform::instructions`] returns: `instructions` on QEMU (deterministic under
    /// `-icount`); a real board reports `cycles` or `microseconds`.
    const UNIT: &'static str = "instructions";

    /// Writes text to the host (semihosting stdout, or std's stdout).
    fn write_str(&mut self, s: &str);

    /// Writes text given as its UTF-8 bytes (the report is ASCII). The default checks them and
    /// calls [`Platform::write_str`]; a platform whose channel takes bytes overrides it, so that
    /// the firmware links no UTF-8 validation.
    fn write_bytes(&mut self, text: &[u8]) {
        if let Ok(s) = core::str::from_utf8(text) {
            self.write_str(s);
        }
    }

    /// A free-running counter that advances with executed instructions, or `None` when the
    /// platform has no deterministic one. Only differences are used; it may wrap at 2^32.
    fn counter(&mut self) -> Option<u32>;

    /// Converts a difference of [`Platform::counter`] readings into instructions.
    fn instructions(ticks: u32) -> u32 {
        ticks
    }

    /// The stack region `(lowest, highest)` address, for measuring its high-water mark, or
    /// `None` (std targets).
    fn stack(&self) -> Option<(usize, usize)> {
        None
    }
}

/// Stack high-water mark by painting: the free part of the stack is filled with a pattern
/// before the run and scanned after it.
mod stack {
    const PATTERN: u32 = 0x5AFE_57AC;
    /// Bytes below the current stack pointer left unpainted (the painting code's own frame).
    const MARGIN: usize = 256;

    #[inline(always)]
    pub fn sp() -> usize {
        let marker = 0u8;
        core::ptr::addr_of!(marker) as usize
    }

    /// Paints `[bottom, sp − MARGIN)`.
    #[inline(never)]
    pub fn paint(bottom: usize) {
        let end = sp().saturating_sub(MARGIN) & !3;
        let mut a = (bottom + 3) & !3;
        while a < end {
            // SAFETY: below the live stack and above every static: memory no one uses yet.
            unsafe { core::ptr::write_volatile(a as *mut u32, PATTERN) };
            a += 4;
        }
    }

    /// Bytes of `[bottom, top)` that were written since [`paint`].
    pub fn used(bottom: usize, top: usize) -> usize {
        let mut a = (bottom + 3) & !3;
        // SAFETY: reads of the painted region.
        while a < top && unsafe { core::ptr::read_volatile(a as *const u32) } == PATTERN {
            a += 4;
        }
        top - a
    }
}

/// Bytes [`Out`] buffers (a report line is shorter; a longer one goes out in pieces). It lives on
/// the stack under the model's run, so it is kept small.
const OUT_BUF: usize = 128;

/// Text output over a [`Platform`], buffered so that a line is one host call.
pub struct Out<'p, P: Platform> {
    platform: &'p mut P,
    buf: [u8; OUT_BUF],
    len: usize,
}

impl<'p, P: Platform> Out<'p, P> {
    pub fn new(platform: &'p mut P) -> Self {
        Out { platform, buf: [0; OUT_BUF], len: 0 }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            // Only whole UTF-8 strings and ASCII digits are ever pushed, and the buffer is
            // flushed before one would not fit, so the prefix is valid UTF-8.
            self.platform.write_bytes(&self.buf[..self.len]);
            self.len = 0;
        }
    }

    pub fn platform(&mut self) -> &mut P {
        self.flush();
        self.platform
    }

    /// Appends a string.
    #[inline(never)]
    pub fn push(&mut self, s: &str) {
        self.push_text(s.as_bytes());
    }

    /// Appends whole UTF-8 text as bytes.
    fn push_text(&mut self, s: &[u8]) {
        if s.len() > self.buf.len() {
            self.flush();
            self.platform.write_bytes(s);
            return;
        }
        if self.len + s.len() > self.buf.len() {
            self.flush();
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    /// Appends a number in decimal (32-bit: a 64-bit division would link its 1 KB routine).
    #[inline(never)]
    pub fn dec(&mut self, mut n: u32) {
        // Ten digits hold any u32: a bounded loop, so no index check (and its panic) is linked.
        let mut digits = [0u8; 10];
        let mut at = 9;
        for (i, d) in digits.iter_mut().enumerate().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
            at = i;
            if n == 0 {
                break;
            }
        }
        self.push_text(&digits[at..]);
    }

    /// Appends bytes as lowercase hex, two digits each.
    #[inline(never)]
    pub fn hex(&mut self, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut chunk = [0u8; 64];
        for part in bytes.chunks(32) {
            for (i, &b) in part.iter().enumerate() {
                chunk[2 * i] = DIGITS[(b >> 4) as usize];
                chunk[2 * i + 1] = DIGITS[(b & 15) as usize];
            }
            self.push_text(&chunk[..2 * part.len()]);
        }
    }
}

impl<P: Platform> Drop for Out<'_, P> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Instructions between two counter readings, minus the cost of reading the counter itself.
fn elapsed<P: Platform>(start: Option<u32>, end: Option<u32>, overhead: u32) -> Option<u32> {
    Some(P::instructions(end?.wrapping_sub(start?)).saturating_sub(overhead))
}

/// The cost of one counter reading, measured back to back (the same every run under -icount).
fn counter_overhead<P: Platform>(p: &mut P) -> u32 {
    let a = p.counter();
    let b = p.counter();
    elapsed::<P>(a, b, 0).unwrap_or(0)
}

fn write_count<P: Platform>(out: &mut Out<'_, P>, n: Option<u32>) {
    match n {
        Some(n) => out.dec(n),
        None => out.push("-"),
    }
}

/// Loads `model`, runs every input of `inputs` (concatenated raw inputs as the model takes
/// them, contract §6) and reports. Returns the exit code. Every kernel linked.
pub fn run<P: Platform>(platform: &mut P, model: &[u8], inputs: &[u8], arena: &mut [u8]) -> i32 {
    run_with_kernels::<P, { linked::ALL }>(platform, model, inputs, arena)
}

/// [`run`] with the kernel set `KERNELS` ([`linked`]; the build script's `config::KERNELS` is the
/// embedded model's): only those kernels are linked.
pub fn run_with_kernels<P: Platform, const KERNELS: u32>(
    platform: &mut P,
    model: &[u8],
    inputs: &[u8],
    arena: &mut [u8],
) -> i32 {
    let region = platform.stack();
    if let Some((bottom, _)) = region {
        stack::paint(bottom);
    }
    let mut out = Out::new(platform);
    let mut probe = StackProbe { region, used: 0, runtime: None };
    match run_inner::<P, KERNELS>(&mut out, model, inputs, arena, &mut probe) {
        Ok(()) => {
            if let Some((bottom, top)) = region {
                let used = stack::used(bottom, top).max(probe.used);
                out.push("stack used=");
                out.dec(used as u32);
                out.push(" size=");
                out.dec((top - bottom) as u32);
                if let Some(runtime) = probe.runtime {
                    out.push(" runtime=");
                    out.dec(runtime as u32);
                }
                out.push("\n");
                if used >= top - bottom {
                    out.push("error: the stack overflowed into the statics\n");
                    return EXIT_RUNTIME_ERROR;
                }
            }
            out.push("ok\n");
            EXIT_OK
        }
        Err(e) => {
            report_error(&mut out, &e);
            EXIT_RUNTIME_ERROR
        }
    }
}

/// The stack measurement: the high-water mark before the stack is painted again for the
/// runtime's own measurement, and that measurement (from the caller of `invoke_observed`).
struct StackProbe {
    region: Option<(usize, usize)>,
    used: usize,
    runtime: Option<usize>,
}

/// The counter readings of the per-layer breakdown (a static: the firmware's reporting, not the
/// runtime, should not set the stack's size).
static MARKS: [AtomicU32; MAX_LAYERS + 1] = [const { AtomicU32::new(0) }; MAX_LAYERS + 1];

#[inline(never)]
fn run_inner<P: Platform, const KERNELS: u32>(
    out: &mut Out<'_, P>,
    blob: &[u8],
    inputs: &[u8],
    arena: &mut [u8],
    probe: &mut StackProbe,
) -> Result<(), Error> {
    let model = load::<KERNELS>(blob)?;
    let input_bytes = model.input().elements() * model.raw_input().element_bytes();
    if input_bytes == 0 || !inputs.len().is_multiple_of(input_bytes) {
        return Err(Error::SizeMismatch { expected: input_bytes as u32, got: inputs.len() as u32 });
    }
    let count = inputs.len() / input_bytes;
    let overhead = counter_overhead(out.platform());
    let counted = out.platform().counter().is_some();
    report_header(out, &model, blob.len(), count, input_bytes, counted);
    let mut it = Interpreter::<KERNELS>::with_kernels(&model, arena)?;
    for (n, raw) in inputs.chunks_exact(input_bytes).enumerate() {
        if n == 0 {
            // A first pass with a counter reading after every layer, for the breakdown; the stack
            // painted again just before it, so that the runtime's own depth is measured.
            it.write_input_raw(raw)?;
            if let Some((bottom, top)) = probe.region {
                probe.used = stack::used(bottom, top);
                stack::paint(bottom);
            }
            let (ops, caller) = observed_pass(out.platform(), &mut it)?;
            if let Some((bottom, top)) = probe.region {
                let lowest = top - stack::used(bottom, top);
                probe.runtime = Some(caller.saturating_sub(lowest));
            }
            report_layers::<P, KERNELS>(out, &model, ops, overhead, counted)?;
        }
        it.write_input_raw(raw)?;
        let (start, end) = timed_pass(out.platform(), &mut it)?;
        report_inference(out, n, elapsed::<P>(start, end, overhead), it.output_bytes());
    }
    Ok(())
}

/// [`Model::from_bytes`], out of line: the loader's temporaries take no stack while the model
/// runs.
#[inline(never)]
fn load<const KERNELS: u32>(blob: &[u8]) -> Result<Model<'_>, Error> {
    Model::from_bytes_with_kernels::<KERNELS>(blob)
}

// The passes and the report lines are functions of their own, so that the report's formatting
// temporaries take no stack while the model runs (the stack measured is then the runtime's and
// the little the firmware keeps around it).

/// One inference with a counter reading after every layer (into [`MARKS`]); returns the number of
/// layers read and the stack pointer at the call of `Interpreter::invoke_observed`.
#[inline(never)]
fn observed_pass<P: Platform, const K: u32>(
    p: &mut P,
    it: &mut Interpreter<'_, '_, K>,
) -> Result<(usize, usize), Error> {
    let mut ops = 0usize;
    let caller = stack::sp();
    MARKS[0].store(p.counter().unwrap_or(0), Ordering::Relaxed);
    it.invoke_observed(|index, _op, _arena| {
        if index < MAX_LAYERS {
            MARKS[index + 1].store(p.counter().unwrap_or(0), Ordering::Relaxed);
            ops = index + 1;
        }
    })?;
    Ok((ops, caller))
}

/// One inference between two counter readings.
#[inline(never)]
fn timed_pass<P: Platform, const K: u32>(
    p: &mut P,
    it: &mut Interpreter<'_, '_, K>,
) -> Result<(Option<u32>, Option<u32>), Error> {
    let start = p.counter();
    it.invoke()?;
    let end = p.counter();
    Ok((start, end))
}

#[inline(never)]
fn report_header<P: Platform>(
    out: &mut Out<'_, P>,
    model: &Model<'_>,
    blob_len: usize,
    count: usize,
    input_bytes: usize,
    counted: bool,
) {
    out.push("hawq target=");
    out.push(P::TARGET);
    out.push(" kernels=");
    out.push(hawq_runtime::kernels::active().name());
    for (label, n) in [
        (" model_bytes=", blob_len),
        (" arena_bytes=", model.arena_bytes()),
        (" inputs=", count),
        (" input_bytes=", input_bytes),
    ] {
        out.push(label);
        out.dec(n as u32);
    }
    out.push(" counter=");
    out.push(if counted { P::UNIT } else { "none" });
    out.push("\n");
    out.flush();
}

#[inline(never)]
fn report_layers<P: Platform, const KERNELS: u32>(
    out: &mut Out<'_, P>,
    model: &Model<'_>,
    ops: usize,
    overhead: u32,
    counted: bool,
) -> Result<(), Error> {
    let marks = |i: usize| MARKS[i].load(Ordering::Relaxed);
    for (index, op) in model.linked_ops::<KERNELS>().enumerate().take(ops) {
        let op = op?;
        out.push("layer ");
        out.dec(index as u32);
        out.push(" ");
        out.push(op.name());
        out.push(" ");
        let n = P::instructions(marks(index + 1).wrapping_sub(marks(index))).saturating_sub(overhead);
        write_count(out, counted.then_some(n));
        out.push("\n");
    }
    Ok(())
}

#[inline(never)]
fn report_inference<P: Platform>(out: &mut Out<'_, P>, n: usize, count: Option<u32>, output: &[u8]) {
    out.push("inference ");
    out.dec(n as u32);
    out.push(" ");
    out.push(P::UNIT);
    out.push("=");
    write_count(out, count);
    out.push(" output=");
    out.hex(output);
    out.push("\n");
    out.flush();
}

/// `error: <summary>`, with ` (op N)` or ` (tensor N)` when it is about one.
#[inline(never)]
fn report_error<P: Platform>(out: &mut Out<'_, P>, e: &Error) {
    out.push("error: ");
    out.push(e.summary());
    if let Some((what, index)) = e.subject() {
        out.push(" (");
        out.push(what);
        out.push(" ");
        out.dec(index as u32);
        out.push(")");
    }
    out.push("\n");
}

/// Writes a panic report (`panic: <message> at <file>:<line>`) to the host; the board then exits
/// with [`EXIT_PANIC`]. A message with formatted arguments is not formatted (no `core::fmt`):
/// its location says where it came from.
pub fn report_panic<P: Platform>(platform: &mut P, info: &core::panic::PanicInfo<'_>) {
    let mut out = Out::new(platform);
    out.push("panic: ");
    out.push(info.message().as_str().unwrap_or("(a formatted message)"));
    if let Some(at) = info.location() {
        out.push(" at ");
        out.push(at.file());
        out.push(":");
        out.dec(at.line() as u32);
    }
    out.push("\n");
}

/// Writes a fault report (`fault: <what>`, and `<detail>` in decimal if any); the board then
/// exits with [`EXIT_FAULT`].
pub fn report_fault<P: Platform>(platform: &mut P, what: &str, detail: Option<u32>) {
    let mut out = Out::new(platform);
    out.push("fault: ");
    out.push(what);
    if let Some(d) = detail {
        out.push(" ");
        out.dec(d as u32);
    }
    out.push("\n");
}

/// Output and exit over semihosting (Arm `bkpt 0xab`, RISC-V `ebreak` sequence), which QEMU
/// serves with `-semihosting-config enable=on,target=native`.
#[cfg(feature = "semihosting")]
pub mod semihost {
    /// Writes to the host's stdout.
    pub fn write_str(s: &str) {
        write_bytes(s.as_bytes())
    }

    /// Writes bytes to the host's stdout.
    pub fn write_bytes(bytes: &[u8]) {
        use semihosting::io::Write;
        if let Ok(mut out) = semihosting::io::stdout() {
            let _ = out.write_all(bytes);
        }
    }

    /// Ends the program; QEMU exits with this status.
    pub fn exit(code: i32) -> ! {
        semihosting::process::exit(code)
    }
}

/// Deterministic instruction counters of the QEMU machines (run with `-icount shift=N,sleep=off`,
/// where one instruction is 2^N ns of virtual time).
pub mod counters {
    use core::ptr::{read_volatile, write_volatile};

    /// `-icount` shift the mps2 runners use: 128 ns per instruction, 3.2 timer ticks.
    pub const MPS2_ICOUNT_SHIFT: u32 = 7;
    /// `-icount` shift the microbit runner uses: 256 ns per instruction, 4.096 timer ticks.
    pub const MICROBIT_ICOUNT_SHIFT: u32 = 8;

    /// `round(ticks · tick_ns / insn_ns)` for a timer of `tick_ns` (as a fraction num/den).
    fn ticks_to_instructions(ticks: u32, tick_ns_num: u64, tick_ns_den: u64, shift: u32) -> u32 {
        let insn_ns = 1u64 << shift;
        let num = ticks as u64 * tick_ns_num;
        let den = tick_ns_den * insn_ns;
        ((num + den / 2) / den) as u32
    }

    /// The CMSDK APB timer 0 of the mps2 machines (0x4000_0000): 32-bit, counting down at the
    /// 25 MHz peripheral clock (40 ns per tick). The reading is inverted so that it counts up.
    pub struct Cmsdk;

    impl Cmsdk {
        const CTRL: *mut u32 = 0x4000_0000 as *mut u32;
        const VALUE: *mut u32 = 0x4000_0004 as *mut u32;
        const RELOAD: *mut u32 = 0x4000_0008 as *mut u32;

        /// Starts the timer free-running from 0xFFFF_FFFF.
        pub fn start() -> Cmsdk {
            // SAFETY: the timer's documented registers on these machines.
            unsafe {
                write_volatile(Self::CTRL, 0);
                write_volatile(Self::RELOAD, u32::MAX);
                write_volatile(Self::VALUE, u32::MAX);
                write_volatile(Self::CTRL, 1);
            }
            Cmsdk
        }

        #[inline(always)]
        pub fn read(&self) -> u32 {
            // SAFETY: VALUE register of the timer started above.
            !unsafe { read_volatile(Self::VALUE) }
        }

        pub fn instructions(ticks: u32) -> u32 {
            ticks_to_instructions(ticks, 40, 1, MPS2_ICOUNT_SHIFT)
        }
    }

    /// TIMER0 of the nRF51 (QEMU `microbit`, 0x4000_8000): 32-bit, 16 MHz (62.5 ns per tick),
    /// read through capture register 0.
    pub struct Nrf51Timer;

    impl Nrf51Timer {
        const TASKS_START: *mut u32 = 0x4000_8000 as *mut u32;
        const TASKS_STOP: *mut u32 = 0x4000_8004 as *mut u32;
        const TASKS_CLEAR: *mut u32 = 0x4000_800C as *mut u32;
        const TASKS_CAPTURE0: *mut u32 = 0x4000_8040 as *mut u32;
        const MODE: *mut u32 = 0x4000_8504 as *mut u32;
        const BITMODE: *mut u32 = 0x4000_8508 as *mut u32;
        const PRESCALER: *mut u32 = 0x4000_8510 as *mut u32;
        const CC0: *mut u32 = 0x4000_8540 as *mut u32;

        pub fn start() -> Nrf51Timer {
            // SAFETY: the timer's documented registers.
            unsafe {
                write_volatile(Self::TASKS_STOP, 1);
                write_volatile(Self::MODE, 0); // timer, not counter
                write_volatile(Self::BITMODE, 3); // 32 bits
                write_volatile(Self::PRESCALER, 0); // 16 MHz
                write_volatile(Self::TASKS_CLEAR, 1);
                write_volatile(Self::TASKS_START, 1);
            }
            Nrf51Timer
        }

        #[inline(always)]
        pub fn read(&self) -> u32 {
            // SAFETY: capture, then read the capture register of the timer started above.
            unsafe {
                write_volatile(Self::TASKS_CAPTURE0, 1);
                read_volatile(Self::CC0)
            }
        }

        pub fn instructions(ticks: u32) -> u32 {
            ticks_to_instructions(ticks, 125, 2, MICROBIT_ICOUNT_SHIFT)
        }
    }

    /// The RISC-V `minstret` CSR (low 32 bits): exactly the retired instructions under
    /// `-icount`. Machine mode only.
    #[cfg(any(target_arch = "riscv32", target_arch = "riscv64"))]
    #[inline(always)]
    pub fn minstret() -> u32 {
        let v: usize;
        // SAFETY: reading a counter CSR has no side effect.
        unsafe { core::arch::asm!("csrr {0}, minstret", out(reg) v) };
        v as u32
    }

    /// PMU event counter 0 of an AArch64 CPU counting the architectural event INST_RETIRED
    /// (0x08), which QEMU implements, under `-icount` only, as its instruction count: exact
    /// whatever the `-icount` shift and the generic timer's frequency. Low 32 bits. EL1.
    #[cfg(target_arch = "aarch64")]
    pub struct Pmu;

    #[cfg(target_arch = "aarch64")]
    impl Pmu {
        /// INST_RETIRED: instructions architecturally executed.
        const INST_RETIRED: u64 = 0x08;

        /// Sets event counter 0 to INST_RETIRED (at EL1 and EL0), enables it and the PMU, and
        /// resets the event counters; `None` when the CPU does not implement the event
        /// (PMCEID0_EL0 bit 8; QEMU sets it only under `-icount`).
        pub fn start() -> Option<Pmu> {
            let events: u64;
            // SAFETY: reading the PMU's common-event identification register (EL1 may).
            unsafe {
                core::arch::asm!("mrs {0}, pmceid0_el0", out(reg) events, options(nomem, nostack, preserves_flags))
            };
            if events & (1 << Self::INST_RETIRED) == 0 {
                return None;
            }
            // SAFETY: PMU configuration registers, accessible at EL1 (no EL2 traps them here);
            // they touch no memory. PMCR_EL0: E (bit 0) enables, P (bit 1) resets the counters.
            unsafe {
                core::arch::asm!(
                    "msr pmevtyper0_el0, {event}",
                    "msr pmcntenset_el0, {counter0}",
                    "msr pmcr_el0, {control}",
                    "isb",
                    event = in(reg) Self::INST_RETIRED,
                    counter0 = in(reg) 1u64,
                    control = in(reg) 0b11u64,
                    options(nomem, nostack, preserves_flags)
                )
            };
            Some(Pmu)
        }

        #[inline(always)]
        pub fn read(&self) -> u32 {
            let v: u64;
            // SAFETY: reading an event counter has no side effect.
            unsafe { core::arch::asm!("mrs {0}, pmevcntr0_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
            v as u32
        }
    }
}

/// The whole `main.rs` of a QEMU Cortex-M firmware (semihosting output, `cortex-m-rt` entry,
/// HardFault and panic handlers that exit non-zero), parameterised by the target's name and its
/// instruction counter. The calling crate depends on `cortex-m`, `cortex-m-rt` and `hawq-runtime`
/// and has the build script that writes `config.rs`, `model.hq` and `inputs.bin` to `OUT_DIR`.
#[macro_export]
macro_rules! cortex_m_qemu_firmware {
    ($target:literal, $counter:ident) => {
        use cortex_m_rt::{entry, exception, ExceptionFrame};
        use $crate::{counters::$counter, semihost, Platform};

        mod config {
            include!(concat!(env!("OUT_DIR"), "/config.rs"));
        }

        static MODEL: &[u8] = hawq_runtime::include_model!(concat!(env!("OUT_DIR"), "/model.hq"));
        static INPUTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/inputs.bin"));

        #[repr(C, align(16))]
        struct Arena([u8; config::ARENA_BYTES]);
        static mut ARENA: Arena = Arena([0; config::ARENA_BYTES]);

        struct Board($counter);

        impl Platform for Board {
            const TARGET: &'static str = $target;
            fn write_str(&mut self, s: &str) {
                semihost::write_str(s)
            }
            fn write_bytes(&mut self, text: &[u8]) {
                semihost::write_bytes(text)
            }
            fn counter(&mut self) -> Option<u32> {
                Some(self.0.read())
            }
            fn instructions(ticks: u32) -> u32 {
                $counter::instructions(ticks)
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
            let mut board = Board($counter::start());
            match config::FAULT {
                "panic" => panic!("injected by HAWQ_FAULT=panic"),
                "fault" => cortex_m::asm::udf(),
                _ => {}
            }
            // SAFETY: the only reference to ARENA, taken once before anything else runs.
            let arena = unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 };
            let code = $crate::run_with_kernels::<_, { config::KERNELS }>(&mut board, MODEL, INPUTS, arena);
            semihost::exit(code)
        }

        extern "C" {
            fn DefaultHandler();
        }

        // cortex-m-rt's `device` feature, with no device crate: the firmware enables no
        // interrupt, so its table holds the one entry cortex-m-rt's linker script requires,
        // not the 240 (Armv7-M) or 32 (Armv6-M) it reserves otherwise (956 bytes of flash).
        #[link_section = ".vector_table.interrupts"]
        #[no_mangle]
        static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [DefaultHandler];

        #[exception]
        unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
            $crate::report_fault(&mut Board($counter), "HardFault", None);
            semihost::exit($crate::EXIT_FAULT)
        }

        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
            $crate::report_panic(&mut Board($counter), info);
            semihost::exit($crate::EXIT_PANIC)
        }
    };
}
