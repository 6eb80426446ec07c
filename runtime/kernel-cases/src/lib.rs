//! Random kernel cases, each run on every kernel path a build has and compared byte for byte
//! with the scalar reference: one generator (no_std, no heap, its buffers the caller's) for the
//! QEMU kernel-check firmware (Cortex-M4 DSP and portable paths, Cortex-M3 portable), the
//! runtime's host test (AVX2, AVX-VNNI, AVX-512 VNNI, NEON, SDOT, portable) and the fuzzer.
//!
//! The generators follow runtime/tests/common (extreme zero points and values, the weight pattern
//! `−2^(b−1)`, saturating biases and multipliers, every clamp, strides, paddings, kernels larger
//! than the input), lean cases whose sums reach the bound that sizes the kernels' fast forms
//! (every product of one sign and its largest, the biases at the loader's limit), with channel counts that hit the SIMD blocks and their tails (odd counts,
//! multiples of 4, 8, 16, 32), garbage in the unused high bits of each packed weight row, in the
//! output buffers and in the scratch (exactly `kernels::*_scratch_bytes`, at an odd address now
//! and then), and layers past the old fixed buffers: receptive fields up to 3×3×512 = 4,608,
//! up to 1,024 output channels, depthwise layers of more than 128 channels and 64 taps. Every
//! run must report the path it was asked for: a fallback fails the case.
#![no_std]
// A failure ends a test run, and there is no heap to box it in.
#![allow(clippy::result_large_err)]

#[cfg(feature = "std")]
extern crate std;

use hawq_runtime::kernels::linked::{ALL, HIGH_ROWS, OFFSET_ROWS};
use hawq_runtime::kernels::{self, ActFormat, AddRequant, Layer, Path, PoolRequant, Requant, Window};
use hawq_runtime::quant::{store, Biases, Bits, Multipliers, BIAS_I32};

/// xorshift64*.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    /// One of `weights.len()` choices, with these weights.
    pub fn pick(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut r = (self.next_u64() % total as u64) as u32;
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        0
    }
}

fn act_range(bits: Bits) -> (i32, i32) {
    bits.range()
}

fn act_bits(rng: &mut Rng) -> Bits {
    if rng.next_u64().is_multiple_of(2) {
        Bits::B4
    } else {
        Bits::B8
    }
}

fn weight_bits(rng: &mut Rng) -> Bits {
    [Bits::B2, Bits::B4, Bits::B8][rng.range(0, 2) as usize]
}

/// A long row's weights: 4 or 2 bits, the widths whose sums the Cortex-M4 holds scaled (so that
/// a row of about 65,792 weights reaches its bound, `forms::sums_fit`).
fn long_row_bits(rng: &mut Rng) -> Bits {
    [Bits::B4, Bits::B2][rng.range(0, 1) as usize]
}

fn zero_point(rng: &mut Rng, bits: Bits) -> i32 {
    let (lo, hi) = act_range(bits);
    match rng.pick(&[2, 2, 1, 5]) {
        0 => lo,
        1 => hi,
        2 => 0,
        _ => rng.range(lo as i64, hi as i64) as i32,
    }
}

fn act_value(rng: &mut Rng, bits: Bits) -> i32 {
    let (lo, hi) = act_range(bits);
    match rng.pick(&[6, 1, 1]) {
        0 => rng.range(lo as i64, hi as i64) as i32,
        1 => lo,
        _ => hi,
    }
}

fn weight_value(rng: &mut Rng, bits: Bits) -> i32 {
    let m = (1i64 << (bits.get() - 1)) - 1;
    (match rng.pick(&[8, 2, 2, 1, 1]) {
        0 => rng.range(-m, m),
        1 => -m,
        2 => m,
        3 => 0,
        _ => -m - 1,
    }) as i32
}

/// Now and then a case whose products all have one sign and the largest magnitude: every weight
/// at one end of its range (mostly `−2^(b−1)`), every activation at one end of its range and the
/// zero point at the other, and every bias leaning the same way to the loader's limit. Its sums
/// reach the bound `K·2^(b−1)·(2^a − 1)` (and `2^31 − 1` with the bias) that sizes each kernel's
/// fast forms, which random values stay far below: a bound written too loose passes them.
#[derive(Clone, Copy)]
struct Lean {
    negative_weights: bool,
    high_inputs: bool,
}

impl Lean {
    fn pick(rng: &mut Rng) -> Option<Lean> {
        rng.next_u64().is_multiple_of(8).then(|| Lean::any(rng))
    }

    fn any(rng: &mut Rng) -> Lean {
        Lean { negative_weights: rng.pick(&[3, 1]) == 0, high_inputs: rng.next_u64().is_multiple_of(2) }
    }

    fn zero_point(self, bits: Bits) -> i32 {
        let (lo, hi) = act_range(bits);
        if self.high_inputs {
            lo
        } else {
            hi
        }
    }

    fn activation(self, bits: Bits) -> i32 {
        let (lo, hi) = act_range(bits);
        if self.high_inputs {
            hi
        } else {
            lo
        }
    }

    fn weight(self, bits: Bits) -> i32 {
        let half = 1 << (bits.get() - 1);
        if self.negative_weights {
            -half
        } else {
            half - 1
        }
    }

    /// The sign of every product, which the biases take.
    fn sign(self) -> i64 {
        if self.negative_weights == self.high_inputs {
            -1
        } else {
            1
        }
    }
}

fn multiplier(rng: &mut Rng) -> i32 {
    (match rng.pick(&[12, 1, 1, 1]) {
        0 => rng.range(1 << 30, i32::MAX as i64),
        1 => rng.range(0, (1 << 30) - 1),
        2 => i32::MAX as i64,
        _ => 1 << 30,
    }) as i32
}

/// A channel's word: a 12-bit mantissa (mostly normalised, sometimes extreme) and a shift
/// offset above the layer's base (mostly small, sometimes up to 15, never past 30).
fn channel_word(rng: &mut Rng, base: i8) -> u16 {
    let mantissa = match rng.pick(&[12, 1, 1, 1]) {
        0 => rng.range(1 << 11, (1 << 12) - 1),
        1 => rng.range(0, (1 << 11) - 1),
        2 => 0xFFF,
        _ => 1 << 11,
    } as u16;
    let offset = match rng.pick(&[8, 4, 1]) {
        0 => 0,
        1 => rng.range(0, 2),
        _ => rng.range(0, 15),
    }
    .min(30 - base as i64) as u16;
    (offset << 12) | mantissa
}

fn shift(rng: &mut Rng, lo: i64, hi: i64) -> i8 {
    (match rng.pick(&[12, 1, 1, 2]) {
        0 => rng.range(lo, hi),
        1 => -31,
        2 => 30,
        _ => rng.range(-31, 30),
    }) as i8
}

/// A bias `b` of a layer with exponent `e`: `|b·2^e| ≤ 2^31 − 1 − K·2^(b−1)·(2^a − 1)` (what the
/// loader accepts, contract §3).
fn bias(rng: &mut Rng, e: u8, k: usize, wbits: Bits, abits: Bits, lean: Option<Lean>) -> i16 {
    let limit = (1i64 << 31) - 1 - k as i64 * (1i64 << (wbits.get() - 1)) * ((1i64 << abits.get()) - 1);
    let l = (limit >> e).clamp(0, i16::MAX as i64);
    if let Some(lean) = lean {
        return (lean.sign() * l) as i16;
    }
    (match rng.pick(&[6, 2, 1, 1, 1]) {
        0 => rng.range(-4096.min(l), 4096.min(l)),
        1 => rng.range(-l, l),
        2 => l,
        3 => -l,
        _ => 0,
    }) as i16
}

/// An `i32` bias within the same bound: anywhere in it, at its ends, or small (as most of a
/// layer's channels are when a few need 32 bits: kernels that scale their sums take those on
/// their fast path and the large ones on another).
fn wide_bias(rng: &mut Rng, k: usize, wbits: Bits, abits: Bits, lean: Option<Lean>) -> i32 {
    let limit = (1i64 << 31) - 1 - k as i64 * (1i64 << (wbits.get() - 1)) * ((1i64 << abits.get()) - 1);
    if let Some(lean) = lean {
        return (lean.sign() * limit) as i32;
    }
    (match rng.pick(&[4, 1, 1, 4]) {
        0 => rng.range(-limit, limit),
        1 => limit,
        2 => -limit,
        _ => rng.range(-(1 << 20).min(limit), (1 << 20).min(limit)),
    }) as i32
}

/// A layer's bias exponent: mostly 0, sometimes any the format allows, sometimes `i32` biases.
fn bias_exponent(rng: &mut Rng) -> u8 {
    match rng.pick(&[4, 1, 1, 1]) {
        0 => 0,
        1 => rng.range(1, 16) as u8,
        2 => 16,
        _ => BIAS_I32,
    }
}

/// Output format and clamp: full range, ReLU, ReLU6-like, narrow.
fn out_q(rng: &mut Rng) -> (ActFormat, i32, i32) {
    let bits = act_bits(rng);
    let z = zero_point(rng, bits);
    let (lo, hi) = act_range(bits);
    let (min, max) = match rng.pick(&[3, 2, 1, 2]) {
        0 => (lo, hi),
        1 => (z, hi),
        2 => (z, rng.range(z as i64, hi as i64) as i32),
        _ => {
            let (a, b) = (rng.range(lo as i64, hi as i64) as i32, rng.range(lo as i64, hi as i64) as i32);
            (a.min(b), a.max(b))
        }
    };
    (ActFormat { bits, zero_point: z }, min, max)
}

/// Padding and output size along one axis (as runtime/tests/common `axis`).
fn axis(rng: &mut Rng, size: usize, k: usize, stride: usize) -> (usize, usize) {
    let mut top = rng.range(0, 255) as usize % k;
    let bottom = rng.range(0, 255) as usize % k;
    if size + top + bottom < k {
        top = k - 1;
    }
    (top, (size + top + bottom - k) / stride + 1)
}

fn in_channels(rng: &mut Rng) -> usize {
    match rng.pick(&[3, 1, 2, 2]) {
        0 => rng.range(1, 9) as usize,
        1 => 3,
        2 => [4, 8, 16, 32][rng.range(0, 3) as usize],
        _ => rng.range(10, 40) as usize,
    }
}

fn fill_garbage(rng: &mut Rng, buf: &mut [u8]) {
    for b in buf.iter_mut() {
        *b = rng.next_u64() as u8;
    }
}

/// Packs `rows` rows of `k` random weights (or the `lean` case's), each starting on a byte
/// boundary, with random bits in the unused high bits of each row's last byte; returns the bytes
/// used.
fn weights(rng: &mut Rng, buf: &mut [u8], rows: usize, k: usize, bits: Bits, lean: Option<Lean>) -> usize {
    let row_bytes = bits.packed_len(k);
    let junk = rng.next_u64() as u8;
    for r in 0..rows {
        let row = &mut buf[r * row_bytes..(r + 1) * row_bytes];
        row.fill(0);
        for i in 0..k {
            store(row, bits, i, lean.map_or_else(|| weight_value(rng, bits), |l| l.weight(bits)));
        }
        let used = (k * bits.get() as usize) % 8;
        if used != 0 {
            if let Some(last) = row.last_mut() {
                *last |= junk & !((1u8 << used) - 1);
            }
        }
    }
    rows * row_bytes
}

/// Random activations of `n` elements at `bits` (or the `lean` case's), packed (unused high
/// nibble zero).
fn activations(rng: &mut Rng, buf: &mut [u8], n: usize, bits: Bits, lean: Option<Lean>) -> usize {
    let bytes = bits.packed_len(n);
    buf[..bytes].fill(0);
    for i in 0..n {
        store(buf, bits, i, lean.map_or_else(|| act_value(rng, bits), |l| l.activation(bits)));
    }
    bytes
}

/// Per-channel bias, multiplier, shift as the format stores them (contract §1).
struct Channels {
    bias: [u8; 4 * MAX_OC],
    bias_exponent: u8,
    multiplier: [u8; 2 * MAX_OC],
    shift_base: i8,
}

const MAX_OC: usize = 1024;

impl Channels {
    fn random(rng: &mut Rng, oc: usize, k: usize, wbits: Bits, abits: Bits, lean: Option<Lean>) -> Channels {
        let e = bias_exponent(rng);
        let base = shift(rng, -12, 0);
        let mut c = Channels { bias: [0; 4 * MAX_OC], bias_exponent: e, multiplier: [0; 2 * MAX_OC], shift_base: base };
        for i in 0..oc {
            if e == BIAS_I32 {
                let b = wide_bias(rng, k, wbits, abits, lean);
                c.bias[4 * i..4 * i + 4].copy_from_slice(&b.to_le_bytes());
            } else {
                c.bias[2 * i..2 * i + 2].copy_from_slice(&bias(rng, e, k, wbits, abits, lean).to_le_bytes());
            }
            c.multiplier[2 * i..2 * i + 2].copy_from_slice(&channel_word(rng, base).to_le_bytes());
        }
        c
    }

    fn requant(&self, oc: usize, out: (ActFormat, i32, i32)) -> Requant<'_> {
        Requant {
            bias: Biases {
                bytes: &self.bias[..Biases::bytes_per_channel(self.bias_exponent) * oc],
                exponent: self.bias_exponent,
            },
            multiplier: Multipliers { bytes: &self.multiplier[..2 * oc], shift_base: self.shift_base },
            out: out.0,
            min: out.1,
            max: out.2,
        }
    }
}

/// The buffers of one case, the caller's (a firmware's statics, a host's vectors): inputs of up
/// to `input.len()` bytes, weights of `weights.len()`, outputs of `want.len()` (`got` as long),
/// `scratch` at least [`SCRATCH`] bytes, and `prepared` for the weights a path lays out once
/// (`*_prepared_bytes_on`: AVX-512 VNNI only; [`PREPARED`] bytes on x86-64, empty elsewhere).
pub struct Bufs<'a> {
    pub input: &'a mut [u8],
    pub weights: &'a mut [u8],
    pub want: &'a mut [u8],
    pub got: &'a mut [u8],
    pub scratch: &'a mut [u8],
    pub prepared: &'a mut [u8],
}

/// Bytes of `Bufs::prepared` that hold the prepared weights of every case (the AVX-512 VNNI
/// convolution's layout is at most 70 KB, its depthwise tables 66 KB).
pub const PREPARED: usize = 1 << 17;

/// Bytes of scratch the cases need (the largest case's `*_scratch_bytes`, and one for an odd
/// start).
pub const SCRATCH: usize = 1 << 20;

/// Bytes of `Bufs::input` in the firmware and on hosts.
pub const INPUT: usize = 81920;

/// Bytes of `Bufs::weights`, `Bufs::want` and `Bufs::got` in the firmware and on hosts.
pub const TENSOR: usize = 65536;

/// The buffers of [`Bufs`] on a host, owned (the firmware's are statics): the firmware's sizes,
/// and [`PREPARED`] bytes for laid-out weights.
#[cfg(feature = "std")]
pub struct HostBufs {
    input: std::vec::Vec<u8>,
    weights: std::vec::Vec<u8>,
    want: std::vec::Vec<u8>,
    got: std::vec::Vec<u8>,
    scratch: std::vec::Vec<u8>,
    prepared: std::vec::Vec<u8>,
}

#[cfg(feature = "std")]
impl HostBufs {
    pub fn new() -> HostBufs {
        let zeros = |n: usize| std::vec![0u8; n];
        HostBufs {
            input: zeros(INPUT),
            weights: zeros(TENSOR),
            want: zeros(TENSOR),
            got: zeros(TENSOR),
            scratch: zeros(SCRATCH),
            prepared: zeros(PREPARED),
        }
    }

    pub fn bufs(&mut self) -> Bufs<'_> {
        Bufs {
            input: &mut self.input,
            weights: &mut self.weights,
            want: &mut self.want,
            got: &mut self.got,
            scratch: &mut self.scratch,
            prepared: &mut self.prepared,
        }
    }
}

#[cfg(feature = "std")]
impl Default for HostBufs {
    fn default() -> HostBufs {
        HostBufs::new()
    }
}

/// Outcome of one operation's cases.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub cases: u32,
    /// Path runs compared (cases × paths other than the reference).
    pub runs: u32,
}

/// What a failing case was.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Conv { window: Window, input: ActFormat, weights: Bits, output: (ActFormat, i32, i32) },
    FullyConnected { inputs: usize, outputs: usize, input: ActFormat, weights: Bits },
    Add { elements: usize },
    AvgPool { window: Window, input: ActFormat, output: (ActFormat, i32, i32) },
}

/// Why a case failed.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// The path ran another path (or none) than the one it should have: itself, or the one it
    /// hands such a layer to.
    Fallback { expected: Path, ran: Option<Path> },
    /// Output byte `byte` of `len` differs from the reference's.
    Mismatch { byte: usize, len: usize, reference: u8, path: u8 },
    /// The case needs more than the caller's buffers.
    TooLarge,
    /// The Cortex-M4 kernel took a row form the host's prediction does not name, or not the
    /// high-lane form it names (`kernels::rows_taken`): a firmware links the predicted forms.
    Form { predicted: u32, taken: u32 },
}

/// A failing case: the first one stops an operation's run.
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    pub op: &'static str,
    pub case: u32,
    pub path: Path,
    pub shape: Shape,
    pub fault: Fault,
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (op, case, path) = (self.op, self.case, self.path.name());
        match self.fault {
            Fault::Fallback { expected, ran } => write!(
                f,
                "FALLBACK {op} case {case}: asked for {path}, expected {}, ran {}",
                expected.name(),
                ran.map_or("none", Path::name)
            )?,
            Fault::Mismatch { byte, len, reference, path: got } => write!(
                f,
                "MISMATCH {op} case {case} path {path}: byte {byte} of {len}: reference {reference:#04x}, path {got:#04x}"
            )?,
            Fault::TooLarge => write!(f, "{op} case {case}: larger than the check's buffers")?,
            Fault::Form { predicted, taken } => write!(
                f,
                "ROW FORM {op} case {case}: the host predicts {predicted:#x}, the kernel took {taken:#x}"
            )?,
        }
        write!(f, " ({:?})", self.shape)
    }
}

fn mismatch(want: &[u8], got: &[u8]) -> Option<Fault> {
    let byte = want.iter().zip(got).position(|(a, b)| a != b)?;
    Some(Fault::Mismatch { byte, len: want.len(), reference: want[byte], path: got[byte] })
}

/// After a layer ran on the Cortex-M4's DSP path: a [`Fault::Form`] if it took a row form that
/// the host's prediction (from which a firmware's build links the forms) does not name, or not
/// the high-lane form the prediction names. (The prediction may name the offset-binary form for
/// a layer that takes neither: linked and not run costs code, never speed.)
fn form_fault(path: Path, ran: Option<Path>, predicted: impl FnOnce() -> u32) -> Option<Fault> {
    if path != Path::Dsp || ran != Some(Path::Dsp) {
        return None;
    }
    let taken = kernels::rows_taken()?;
    let predicted = predicted();
    let fine = taken & !predicted == 0 && (predicted != HIGH_ROWS || taken == HIGH_ROWS);
    (!fine).then_some(Fault::Form { predicted, taken })
}

/// A scratch slice of `bytes` bytes full of garbage, starting one byte in when `odd`.
fn scratch(buf: &mut [u8], bytes: usize, seed: u64) -> &mut [u8] {
    let odd = (seed >> 7) as usize & 1;
    let s = &mut buf[odd..odd + bytes];
    fill_garbage(&mut Rng(seed | 1), s);
    s
}

/// `cases` random convolutions (or depthwise convolutions), each run on every path of `paths`
/// but the scalar one and compared with the scalar reference byte for byte; every path must run
/// itself (the DSP depthwise kernel hands depth multipliers other than 1 and fewer than four
/// channels to the portable kernel: nothing else may leave its path).
pub fn conv_cases(
    rng: &mut Rng,
    b: &mut Bufs<'_>,
    depthwise: bool,
    cases: u32,
    paths: &[Path],
) -> Result<Tally, Failure> {
    let mut t = Tally::default();
    let name = if depthwise { "depthwise_conv2d" } else { "conv2d" };
    for case in 0..cases {
        // Now and then a layer past the old fixed buffers: a large receptive field or many
        // output channels (conv), many channels, large kernels or long rows (depthwise).
        let big = rng.pick(&[22, 1, 1, 1, 3, 2]);
        // A first layer: an image of 1–3 channels under a 3×3, 5×5 or taller kernel (the DSP
        // convolution's band of input rows), now and then one too wide for the band.
        let first = !depthwise && big == 4;
        let (mut h, mut w) = (rng.range(1, 8) as usize, rng.range(1, 8) as usize);
        let (mut kh, mut kw) = (rng.range(1, 5) as usize, rng.range(1, 5) as usize);
        let mut ic = in_channels(rng);
        let (mut pointwise_any_width, mut unit_strides, mut planes) = (false, false, false);
        // Now and then whole groups of 16 output channels (the AVX-512 kernel's 64-byte stores).
        let mut oc_conv =
            if rng.next_u64().is_multiple_of(4) { 16 * rng.range(1, 3) as usize } else { rng.range(1, 20) as usize };
        match (depthwise, big) {
            (false, 1) => {
                (h, w, kh, kw) = (rng.range(1, 3) as usize, rng.range(1, 3) as usize, 3, 3);
                ic = if rng.next_u64().is_multiple_of(4) { 512 } else { rng.range(100, 512) as usize };
                oc_conv = rng.range(1, 6) as usize;
            }
            (false, 2) => {
                (h, w, kh, kw) = (rng.range(1, 3) as usize, rng.range(1, 2) as usize, rng.range(1, 2) as usize, 1);
                ic = rng.range(1, 12) as usize;
                oc_conv = if rng.next_u64().is_multiple_of(4) { 1024 } else { rng.range(129, 1024) as usize };
            }
            (false, _) if big == 3 => {
                (kh, kw, ic) = (5, 5, 48);
            }
            // A pointwise layer over whole blocks of pixels whose 4-bit weight rows are 1–7
            // words (the DSP kernel's row loop takes each count in a form of its own), or of
            // any weight width over whole words of channels; half of them with unit strides
            // (the DSP kernel converts such a block's fields where they lie).
            (false, 5) => {
                (h, w, kh, kw) = (rng.range(4, 8) as usize, rng.range(4, 8) as usize, 1, 1);
                ic = 8 * rng.range(1, 7) as usize;
                if rng.next_u64().is_multiple_of(2) {
                    pointwise_any_width = true;
                    ic = 4 * rng.range(1, 14) as usize;
                }
                unit_strides = rng.next_u64().is_multiple_of(2);
            }
            (false, _) if first => {
                (h, w) = (rng.range(3, 20) as usize, rng.range(3, 20) as usize);
                (kh, kw) = [(3, 3), (5, 5), (3, 3), (5, 5), (10, 4), (1, 7), (7, 1)][rng.range(0, 6) as usize];
                if rng.next_u64().is_multiple_of(8) {
                    (h, w) = (rng.range(1, 6) as usize, rng.range(200, 400) as usize);
                    // (Its output within the check's 64 KiB.)
                    oc_conv = oc_conv.min(16);
                }
                ic = rng.range(1, 3) as usize;
            }
            (true, 1) => {
                (h, w) = (rng.range(1, 4) as usize, rng.range(1, 4) as usize);
                ic = rng.range(129, 300) as usize;
            }
            (true, 2) => {
                (h, w, kh, kw) = (
                    rng.range(8, 12) as usize,
                    rng.range(8, 12) as usize,
                    rng.range(8, 11) as usize,
                    rng.range(7, 11) as usize,
                );
            }
            (true, 3) => {
                (h, w) = (rng.range(1, 3) as usize, rng.range(40, 96) as usize);
                ic = rng.range(4, 40) as usize;
            }
            // A 3×3 kernel over whole groups of four channels (the DSP kernel's pixel of
            // groups in one assembly block).
            // Half of them the DSP plane kernel's layers: strides (1, 1) or (2, 2), maps up to
            // 24 along one axis or 28 along both (rows of odd and even length, bands of several
            // rows, several bands), half of those with an
            // 8-bit output and no clamp but its range (stored in place), the others any.
            (true, 5) => {
                (kh, kw) = (3, 3);
                ic = 4 * rng.range(1, 12) as usize;
                if rng.next_u64().is_multiple_of(2) {
                    planes = true;
                    (h, w) = (rng.range(1, 24) as usize, rng.range(1, 8) as usize);
                    if rng.next_u64().is_multiple_of(2) {
                        (h, w) = (w, h);
                    }
                    // Now and then both axes long: several bands of rows, whose rows in the
                    // padding are filled per band.
                    if rng.next_u64().is_multiple_of(3) {
                        (h, w) = (rng.range(10, 28) as usize, rng.range(10, 28) as usize);
                        ic = 4 * rng.range(1, 3) as usize;
                    }
                }
            }
            // Whole blocks of 64 channels (the AVX-512 stacked-rows kernel's).
            (true, 4) => ic = [64, 128, 192][rng.range(0, 2) as usize],
            _ => {}
        }
        // Now and then a pointwise layer over 65,600–66,000 channels at 4 or 2 bits, every product
        // at its largest: rows across the 65,792 weights past which the Cortex-M4 hands a
        // convolution to the portable kernel (the host paths past `K_MAX`, 65,536).
        let long = !depthwise && rng.next_u64().is_multiple_of(512);
        if long {
            (h, w, kh, kw, ic, oc_conv) = (1, 1, 1, 1, rng.range(65_600, 66_000) as usize, 1);
        }
        let (mut sh, mut sw) = (rng.range(1, 3) as usize, rng.range(1, 3) as usize);
        if unit_strides {
            (sh, sw) = (1, 1);
        }
        if planes {
            let s = rng.range(1, 2) as usize;
            (sh, sw) = (s, s);
        }
        let (pad_top, out_h) = axis(rng, h, kh, sh);
        let (pad_left, out_w) = axis(rng, w, kw, sw);
        let oc = if depthwise { ic * if rng.next_u64().is_multiple_of(4) { 2 } else { 1 } } else { oc_conv };
        let g = Window {
            in_h: h,
            in_w: w,
            in_c: ic,
            out_h,
            out_w,
            out_c: oc,
            kernel_h: kh,
            kernel_w: kw,
            stride_h: sh,
            stride_w: sw,
            pad_top,
            pad_left,
        };
        let abits = if (first && !rng.next_u64().is_multiple_of(4)) || long { Bits::B8 } else { act_bits(rng) };
        let lean = if long { Some(Lean::any(rng)) } else { Lean::pick(rng) };
        let z = lean.map_or_else(|| zero_point(rng, abits), |l| l.zero_point(abits));
        let in_fmt = ActFormat { bits: abits, zero_point: z };
        let wbits = match () {
            _ if long => long_row_bits(rng),
            _ if !depthwise && big == 5 && !pointwise_any_width => Bits::B4,
            _ => weight_bits(rng),
        };
        let k = kh * kw * if depthwise { 1 } else { ic };
        let mut out = out_q(rng);
        if planes && rng.next_u64().is_multiple_of(2) {
            let z = zero_point(rng, Bits::B8);
            out = (ActFormat { bits: Bits::B8, zero_point: z }, -128, 127);
        }
        let out_bytes = out.0.bits.packed_len(out_h * out_w * oc);
        let shape = Shape::Conv { window: g, input: in_fmt, weights: wbits, output: out };
        let fail = |path, fault| Failure { op: name, case, path, shape, fault };
        if h * w * ic > b.input.len() || oc * wbits.packed_len(k) > b.weights.len() || out_bytes > b.want.len() {
            return Err(fail(Path::Scalar, Fault::TooLarge));
        }
        let in_bytes = activations(rng, b.input, h * w * ic, abits, lean);
        let w_bytes = weights(rng, b.weights, oc, k, wbits, lean);
        let ch = Channels::random(rng, oc, k, wbits, abits, lean);
        let rq = ch.requant(oc, out);
        let seed = rng.next_u64();
        let bytes = if depthwise {
            kernels::depthwise_conv2d_scratch_bytes(&g, wbits, abits)
        } else {
            kernels::conv2d_scratch_bytes(&g, wbits, abits)
        };
        if bytes + 1 > b.scratch.len() {
            return Err(fail(Path::Scalar, Fault::TooLarge));
        }
        let (input, weights_, scratch_buf) = (&b.input[..in_bytes], &b.weights[..w_bytes], &mut *b.scratch);
        let (want, got, prepared) = (&mut *b.want, &mut *b.got, &mut *b.prepared);
        // Each path runs once with nothing prepared and, if it lays the weights out once, once
        // more with them prepared.
        let layer = Layer::new(in_fmt, weights_, wbits, rq);
        let mut run = |path: Path, dst: &mut [u8], prepared: &[u8]| {
            fill_garbage(&mut Rng(seed | 1), dst);
            let s = scratch(scratch_buf, bytes, seed);
            let layer = layer.with_prepared(prepared);
            if depthwise {
                kernels::depthwise_conv2d_on(path, &g, &layer, input, dst, s)
            } else {
                kernels::conv2d_on(path, &g, &layer, input, dst, s)
            }
        };
        run(Path::Scalar, &mut want[..out_bytes], &[]);
        for &path in paths.iter().filter(|&&p| p != Path::Scalar) {
            let n = if depthwise {
                kernels::depthwise_conv2d_prepared_bytes_on(path, &g, &layer)
            } else {
                kernels::conv2d_prepared_bytes_on(path, &g, &layer)
            };
            let made = n > 0
                && prepared.len() >= n
                && if depthwise {
                    kernels::prepare_depthwise_conv2d_on(path, &g, &layer, &mut prepared[..n])
                } else {
                    kernels::prepare_conv2d_on(path, &g, &layer, &mut prepared[..n])
                };
            for with_prepared in [false, true].into_iter().filter(|&p| !p || made) {
                let ran = run(path, &mut got[..out_bytes], if with_prepared { &prepared[..n] } else { &[] });
                let delegated = depthwise
                    && match path {
                        Path::Dsp => oc != ic || ic < 4,
                        Path::Neon | Path::NeonDot => !neon_depthwise_takes(&g, &layer),
                        _ => false,
                    };
                // The AVX-512 VNNI convolution hands a layer outside its kernel (it prepares no
                // weights for it) to AVX-VNNI, or AVX2, and without prepared weights also one
                // whose 16 channels' layout exceeds its stack buffer.
                let handed_on = path == Path::Avx512Vnni && !depthwise && (n == 0 || !with_prepared);
                let expected = match (delegated, handed_on) {
                    (true, _) => Path::Portable,
                    (_, true) => x86_delegate(paths),
                    _ => path,
                };
                let may_run_itself = handed_on && n > 0 && ran == Some(path);
                let long_to_portable = k > kernels::linked::LONG_ROW && ran == Some(Path::Portable);
                if ran != Some(expected) && !may_run_itself && !long_to_portable {
                    return Err(fail(path, Fault::Fallback { expected, ran }));
                }
                if let Some(fault) = mismatch(&want[..out_bytes], &got[..out_bytes]) {
                    return Err(fail(path, fault));
                }
                let predicted = || kernels::conv_row_form(&g, wbits, abits, &layer.rq);
                if let Some(fault) = form_fault(path, ran, predicted).filter(|_| !depthwise) {
                    return Err(fail(path, fault));
                }
                t.runs += 1;
            }
        }
        if !depthwise {
            for (op, run) in NARROW_CONV {
                fill_garbage(&mut Rng(seed | 1), &mut got[..out_bytes]);
                run(&g, &layer, input, &mut got[..out_bytes], scratch(scratch_buf, bytes, seed));
                if let Some(fault) = mismatch(&want[..out_bytes], &got[..out_bytes]) {
                    return Err(Failure { op, case, path: kernels::active(), shape, fault });
                }
                t.runs += 1;
            }
        }
        t.cases += 1;
    }
    Ok(t)
}

/// The kernel sets without one of the Cortex-M4's row forms of 4- and 2-bit weights
/// (`linked::HIGH_ROWS`, `linked::OFFSET_ROWS`), each on the active path: the layers that would
/// take the form left out run the kernel's Rust rows, to the same bytes (every other path
/// ignores the two bits).
const NARROWED: [(&str, &str, u32); 2] = [
    ("conv2d without high_rows", "fully_connected without high_rows", ALL & !HIGH_ROWS),
    ("conv2d without offset_rows", "fully_connected without offset_rows", ALL & !OFFSET_ROWS),
];

type ConvFn = fn(&Window, &Layer<'_>, &[u8], &mut [u8], &mut [u8]) -> Path;
type FcFn = fn(usize, usize, &Layer<'_>, &[u8], &mut [u8], &mut [u8]) -> Path;

const NARROW_CONV: [(&str, ConvFn); 2] =
    [(NARROWED[0].0, kernels::conv2d::<{ NARROWED[0].2 }>), (NARROWED[1].0, kernels::conv2d::<{ NARROWED[1].2 }>)];

const NARROW_FC: [(&str, FcFn); 2] = [
    (NARROWED[0].1, kernels::fully_connected::<{ NARROWED[0].2 }>),
    (NARROWED[1].1, kernels::fully_connected::<{ NARROWED[1].2 }>),
];

/// Whether the NEON depthwise kernel (the SDOT path's too) takes a layer itself, else the
/// portable kernel does.
#[cfg(target_arch = "aarch64")]
fn neon_depthwise_takes(g: &Window, layer: &Layer<'_>) -> bool {
    kernels::aarch64::Neon.depthwise_takes(g, layer)
}

#[cfg(not(target_arch = "aarch64"))]
fn neon_depthwise_takes(_: &Window, _: &Layer<'_>) -> bool {
    false
}

/// The path the AVX-512 VNNI convolution hands the layers outside its kernel: AVX-VNNI where
/// the CPU has it (it is in `paths`), else AVX2.
fn x86_delegate(paths: &[Path]) -> Path {
    if paths.contains(&Path::AvxVnni) {
        Path::AvxVnni
    } else {
        Path::Avx2
    }
}

/// `cases` random fully connected layers on every path of `paths`, as [`conv_cases`].
pub fn fc_cases(rng: &mut Rng, b: &mut Bufs<'_>, cases: u32, paths: &[Path]) -> Result<Tally, Failure> {
    let mut t = Tally::default();
    for case in 0..cases {
        let n = match rng.pick(&[2, 1, 0]) {
            0 => rng.range(1, 40),
            1 => rng.range(41, 300),
            _ => 0,
        } as usize;
        let mut m = rng.range(1, 24) as usize;
        // Now and then more inputs than the old fixed buffers took (1,024), up to 4,608, or
        // more than 128 outputs.
        let n = match rng.pick(&[38, 1, 1]) {
            1 => rng.range(1025, 4608) as usize,
            2 => {
                m = rng.range(129, 1024) as usize;
                rng.range(1, 48) as usize
            }
            _ => n,
        };
        // Now and then rows past `linked::LONG_ROW` at 4 or 2 bits over an 8-bit input, every
        // product at its largest: about 65,792 weights, past which a Cortex-M4's 32-bit sums no
        // longer hold them scaled and it hands the layer to the portable kernel.
        let long = rng.next_u64().is_multiple_of(256);
        let (n, abits, lean, wbits) = if long {
            (rng.range(65_600, 66_000) as usize, Bits::B8, Some(Lean::any(rng)), long_row_bits(rng))
        } else {
            let abits = act_bits(rng);
            (n, abits, Lean::pick(rng), weight_bits(rng))
        };
        let z = lean.map_or_else(|| zero_point(rng, abits), |l| l.zero_point(abits));
        let in_fmt = ActFormat { bits: abits, zero_point: z };
        let m = m.min(b.weights.len() / wbits.packed_len(n).max(1));
        let in_bytes = activations(rng, b.input, n, abits, lean);
        let w_bytes = weights(rng, b.weights, m, n, wbits, lean);
        let ch = Channels::random(rng, m, n, wbits, abits, lean);
        let out = out_q(rng);
        let rq = ch.requant(m, out);
        let out_bytes = out.0.bits.packed_len(m);
        let seed = rng.next_u64();
        let bytes = kernels::fully_connected_scratch_bytes(n, m, wbits, abits);
        let shape = Shape::FullyConnected { inputs: n, outputs: m, input: in_fmt, weights: wbits };
        let fail = |path, fault| Failure { op: "fully_connected", case, path, shape, fault };
        if bytes + 1 > b.scratch.len() || out_bytes > b.want.len() {
            return Err(fail(Path::Scalar, Fault::TooLarge));
        }
        let (input, weights_, scratch_buf) = (&b.input[..in_bytes], &b.weights[..w_bytes], &mut *b.scratch);
        let (want, got, prepared) = (&mut *b.want, &mut *b.got, &mut *b.prepared);
        // As in [`conv_cases`]: once with nothing prepared, once with prepared weights.
        let layer = Layer::new(in_fmt, weights_, wbits, rq);
        let mut run = |path: Path, dst: &mut [u8], prepared: &[u8]| {
            fill_garbage(&mut Rng(seed | 1), dst);
            let s = scratch(scratch_buf, bytes, seed);
            kernels::fully_connected_on(path, n, m, &layer.with_prepared(prepared), input, dst, s)
        };
        run(Path::Scalar, &mut want[..out_bytes], &[]);
        for &path in paths.iter().filter(|&&p| p != Path::Scalar) {
            let bytes = kernels::fully_connected_prepared_bytes_on(path, n, m, &layer);
            let made = bytes > 0
                && prepared.len() >= bytes
                && kernels::prepare_fully_connected_on(path, n, m, &layer, &mut prepared[..bytes]);
            for with_prepared in [false, true].into_iter().filter(|&p| !p || made) {
                let ran = run(path, &mut got[..out_bytes], if with_prepared { &prepared[..bytes] } else { &[] });
                let handed_on = path == Path::Avx512Vnni && (bytes == 0 || !with_prepared);
                let expected = if handed_on { x86_delegate(paths) } else { path };
                let may_run_itself = handed_on && bytes > 0 && ran == Some(path);
                let long_to_portable = n > kernels::linked::LONG_ROW && ran == Some(Path::Portable);
                if ran != Some(expected) && !may_run_itself && !long_to_portable && n > 0 {
                    return Err(fail(path, Fault::Fallback { expected, ran }));
                }
                if let Some(fault) = mismatch(&want[..out_bytes], &got[..out_bytes]) {
                    return Err(fail(path, fault));
                }
                if let Some(fault) = form_fault(path, ran, || kernels::fc_row_form(n, wbits, abits, &layer.rq)) {
                    return Err(fail(path, fault));
                }
                t.runs += 1;
            }
        }
        for (op, run) in NARROW_FC {
            fill_garbage(&mut Rng(seed | 1), &mut got[..out_bytes]);
            run(n, m, &layer, input, &mut got[..out_bytes], scratch(scratch_buf, bytes, seed));
            if let Some(fault) = mismatch(&want[..out_bytes], &got[..out_bytes]) {
                return Err(Failure { op, case, path: kernels::active(), shape, fault });
            }
            t.runs += 1;
        }
        t.cases += 1;
    }
    Ok(t)
}

/// `cases` random residual adds (separate, aliased and in-place layouts) on every path of
/// `paths`, as [`conv_cases`] (a path may decline a layout: it then runs nothing).
pub fn add_cases(rng: &mut Rng, b: &mut Bufs<'_>, cases: u32, paths: &[Path]) -> Result<Tally, Failure> {
    let mut t = Tally::default();
    for case in 0..cases {
        let n = rng.range(1, 300) as usize;
        let layout = rng.range(0, 3);
        let (ba, bb) = (act_bits(rng), act_bits(rng));
        let ba = if layout == 3 { bb } else { ba };
        let out = out_q(rng);
        let obits = match layout {
            1 => ba,
            2 | 3 => bb,
            _ => out.0.bits,
        };
        let (lo, hi) = act_range(obits);
        let out = (
            ActFormat { bits: obits, zero_point: out.0.zero_point.clamp(lo, hi) },
            out.1.clamp(lo, hi),
            out.2.clamp(lo, hi),
        );
        let fa = ActFormat { bits: ba, zero_point: zero_point(rng, ba) };
        let fb = ActFormat { bits: bb, zero_point: zero_point(rng, bb) };
        let (la, lb, lo_) = (ba.packed_len(n), bb.packed_len(n), obits.packed_len(n));
        let (oa, ob, oo) = match layout {
            0 => (0, la + 3, la + lb + 5),
            1 => (0, la + 1, 0),
            2 => (0, la + 2, la + 2),
            _ => (0, 0, 0),
        };
        let len = oo.max(ob).max(oa) + lo_.max(la).max(lb) + 7;
        let shift = shift(rng, -6, 4);
        // Sometimes multiples of `2^(r − 3)` (`r = 31 − shift`), or a little under them, so that
        // an eighth of the sums lands on a rounding tie or just under one (random multipliers
        // almost never do: a rounding term off by one went unnoticed).
        let ties = (3..=33).contains(&(31 - shift as i64)) && rng.next_u64().is_multiple_of(4);
        let mut m = || {
            if ties {
                let unit = 1i64 << (28 - shift as i64);
                let under = rng.range(0, 2);
                (rng.range(1, (i32::MAX as i64 / unit).min(15)) * unit - under).max(0) as i32
            } else if rng.next_u64().is_multiple_of(4) {
                rng.range(0, (1 << 30) - 1) as i32
            } else {
                multiplier(rng)
            }
        };
        let (multiplier_a, multiplier_b) = (m(), m());
        let rq = AddRequant { multiplier_a, multiplier_b, shift, out: out.0, min: out.1, max: out.2 };
        let mut arena = [0u8; 2048];
        fill_garbage(rng, &mut arena[..len]);
        activations(rng, b.input, n, ba, None);
        arena[oa..oa + la].copy_from_slice(&b.input[..la]);
        if layout != 3 {
            activations(rng, b.input, n, bb, None);
            arena[ob..ob + lb].copy_from_slice(&b.input[..lb]);
        }
        let mut want = arena;
        kernels::add_on(Path::Scalar, &mut want[..len], n, (oa, fa), (ob, fb), oo, &rq);
        for &path in paths.iter().filter(|&&p| p != Path::Scalar) {
            let mut got = arena;
            if kernels::add_on(path, &mut got[..len], n, (oa, fa), (ob, fb), oo, &rq) {
                if let Some(fault) = mismatch(&want[..len], &got[..len]) {
                    let shape = Shape::Add { elements: n };
                    return Err(Failure { op: "add", case, path, shape, fault });
                }
                t.runs += 1;
            }
        }
        t.cases += 1;
    }
    Ok(t)
}

/// `cases` random average pools: windows of 1–8 taps a side with strides and padding (the
/// count is the taps inside the input), global pools of up to 1,024 pixels (runs past the DSP
/// kernel's 255), 1–70 channels, 8- and 4-bit tensors, every clamp; each path against the
/// reference.
pub fn avg_pool_cases(rng: &mut Rng, b: &mut Bufs<'_>, cases: u32, paths: &[Path]) -> Result<Tally, Failure> {
    let mut t = Tally::default();
    for case in 0..cases {
        let c =
            if rng.next_u64().is_multiple_of(2) { 4 * rng.range(1, 16) as usize } else { rng.range(1, 70) as usize };
        let global = rng.next_u64().is_multiple_of(3);
        let (h, w, kh, kw) = if global {
            // Within the input buffer: up to 1,024 pixels of 16 channels.
            let most = (b.input.len() / c).clamp(1, 1024);
            let h = rng.range(1, most.min(32) as i64) as usize;
            let w = rng.range(1, (most / h).min(32) as i64) as usize;
            (h, w, h, w)
        } else {
            (rng.range(1, 12) as usize, rng.range(1, 12) as usize, rng.range(1, 8) as usize, rng.range(1, 8) as usize)
        };
        let (sh, sw) = if global { (1, 1) } else { (rng.range(1, 3) as usize, rng.range(1, 3) as usize) };
        let (pad_top, out_h) = if global { (0, 1) } else { axis(rng, h, kh, sh) };
        let (pad_left, out_w) = if global { (0, 1) } else { axis(rng, w, kw, sw) };
        let g = Window {
            in_h: h,
            in_w: w,
            in_c: c,
            out_h,
            out_w,
            out_c: c,
            kernel_h: kh,
            kernel_w: kw,
            stride_h: sh,
            stride_w: sw,
            pad_top,
            pad_left,
        };
        let abits = act_bits(rng);
        let lean = Lean::pick(rng);
        let z = lean.map_or_else(|| zero_point(rng, abits), |l| l.zero_point(abits));
        let in_fmt = ActFormat { bits: abits, zero_point: z };
        let out = out_q(rng);
        let rq =
            PoolRequant { multiplier: multiplier(rng), shift: shift(rng, -4, 4), out: out.0, min: out.1, max: out.2 };
        let out_bytes = out.0.bits.packed_len(out_h * out_w * c);
        let shape = Shape::AvgPool { window: g, input: in_fmt, output: out };
        if h * w * c > b.input.len() || out_bytes > b.want.len() {
            return Err(Failure { op: "avg_pool", case, path: Path::Scalar, shape, fault: Fault::TooLarge });
        }
        let in_bytes = activations(rng, b.input, h * w * c, abits, lean);
        // Now and then every input at the bottom of its range: the largest sums a window has.
        if global && rng.next_u64().is_multiple_of(3) {
            b.input[..in_bytes].fill(0x80);
        }
        let seed = rng.next_u64();
        let input = &b.input[..in_bytes];
        fill_garbage(&mut Rng(seed | 1), &mut b.want[..out_bytes]);
        kernels::avg_pool_on(Path::Scalar, &g, input, in_fmt, &rq, &mut b.want[..out_bytes]);
        for &path in paths.iter().filter(|&&p| p != Path::Scalar) {
            fill_garbage(&mut Rng(seed | 1), &mut b.got[..out_bytes]);
            if kernels::avg_pool_on(path, &g, input, in_fmt, &rq, &mut b.got[..out_bytes]) {
                if let Some(fault) = mismatch(&b.want[..out_bytes], &b.got[..out_bytes]) {
                    return Err(Failure { op: "avg_pool", case, path, shape, fault });
                }
                t.runs += 1;
            }
        }
        t.cases += 1;
    }
    Ok(t)
}

/// The operations [`every_op`] checks, in its order.
pub const OPS: [&str; 5] = ["conv2d", "depthwise_conv2d", "fully_connected", "add", "avg_pool"];

/// `cases` of each operation of [`OPS`] in turn from one generator: their tallies, or the first
/// failing case (what the kernel-check firmware, the host test, the AArch64 example and the
/// fuzzer run).
pub fn every_op(rng: &mut Rng, b: &mut Bufs<'_>, cases: u32, paths: &[Path]) -> Result<[Tally; 5], Failure> {
    Ok([
        conv_cases(rng, b, false, cases, paths)?,
        conv_cases(rng, b, true, cases, paths)?,
        fc_cases(rng, b, cases, paths)?,
        add_cases(rng, b, cases, paths)?,
        avg_pool_cases(rng, b, cases, paths)?,
    ])
}
