//! Kernels, one folder per instruction set (tract's layout). `reference` is the portable scalar
//! path and the oracle: every other path must produce its bytes exactly.
//!
//! The functions at this level are what the interpreter calls; each picks the best path for the
//! machine ([`active`]):
//!
//! | path | where | how it is chosen |
//! |---|---|---|
//! | [`Path::Dsp`] (`dsp`) | Cortex-M4/M7 (`thumbv7em-*`): SMLAD, SXTB16 | at compile time (the `hawq_dsp` cfg of `build.rs`) |
//! | [`Path::Avx512Vnni`] (`x86::avx512`) | x86-64 with AVX-512 F/BW/VL/VNNI: VPDPBUSD on 512 bits | at run time with the `std` feature (cached once), else the compile-time target features |
//! | [`Path::AvxVnni`] (`x86::vnni`) | x86-64 with AVX2 and AVX-VNNI: VPDPBUSD | the same |
//! | [`Path::Avx2`] (`x86`) | x86-64 with AVX2 | the same |
//! | [`Path::Neon`], [`Path::NeonDot`] (`aarch64`) | AArch64; SDOT with `dotprod` | at run time with `std`, else compile time |
//! | [`Path::Portable`] (`portable`) | everything else (Cortex-M0/M3, RISC-V) | fallback |
//! | [`Path::Scalar`] (`reference`) | the oracle | only when forced (cargo feature `kernels-scalar`) |
//!
//! The cargo features `kernels-scalar` and `kernels-portable` force a path at compile time (for
//! benchmarks). Each path's functions are also public (`portable::conv2d`, `dsp::conv2d`,
//! `x86::Avx2::conv2d`, ...) so that the tests compare every path with the reference, whatever
//! [`active`] picks. A path covers the operations where it pays (convolutions, fully
//! connected); the others run on the portable kernels.
//!
//! The convolution, depthwise and fully connected kernels take a `scratch` slice of the arena,
//! planned by the compiler per op (`*_scratch_bytes`, [`scratch`]); the microcontroller paths
//! (DSP, portable) keep every buffer there, sized from the layer, so that every layer shape runs
//! on the machine's fast path and the stack stays small, and they return the [`Path`] that ran
//! (a too-small scratch, which the loader rules out for a model, runs the reference). The host
//! paths (x86-64, AArch64) keep their convolution blocks in the same scratch (any `K` up to
//! 65,536) and fall back to the portable kernel, with the same scratch, only where it is too
//! small or `K` larger (a fully connected layer to the portable fully connected kernel, whose
//! scratch is the layer's); each reports the fallback (AVX-512 VNNI the path it hands a layer
//! outside its kernel to, NEON's depthwise kernel the portable one it hands depth multipliers
//! other than 1, 4-bit tensors and slow channels to: `aarch64::Neon::depthwise_takes`).

pub mod bytewise;
mod forms;
pub mod linked;
pub mod portable;
pub mod reference;
pub mod scratch;
mod util;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(hawq_dsp)]
pub mod dsp;
#[cfg(target_arch = "x86_64")]
pub mod x86;

pub(crate) use reference::clear_tail;
pub use reference::{ActFormat, AddRequant, ConcatInput, Hwc, Layer, PoolRequant, Requant, Window};

use crate::quant::Bits;

/// A kernel path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The scalar reference kernels (`kernels::reference`), the oracle.
    Scalar,
    /// Plain Rust without instruction-set extensions (`kernels::portable`).
    Portable,
    /// Armv7E-M DSP extension (Cortex-M4/M7): SMLAD, SXTB16 (`kernels::dsp`).
    Dsp,
    /// x86-64 AVX2: VPMADDWD (`kernels::x86`).
    Avx2,
    /// x86-64 AVX2 with AVX-VNNI: VPDPBUSD for convolutions and fully connected
    /// (`kernels::x86::vnni`), the AVX2 kernels for the rest.
    AvxVnni,
    /// x86-64 with AVX-512 VNNI: VPDPBUSD on 512-bit registers for convolutions and fully
    /// connected, 512-bit depthwise and residual add (`kernels::x86::avx512`), the AVX2 kernels
    /// for the rest.
    Avx512Vnni,
    /// AArch64 Advanced SIMD: SMLAL (`kernels::aarch64`).
    Neon,
    /// AArch64 with the dot-product extension: SDOT (`kernels::aarch64`).
    NeonDot,
}

impl Path {
    /// Every path, the reference first.
    pub const ALL: [Path; 8] = [
        Path::Scalar,
        Path::Portable,
        Path::Dsp,
        Path::Avx2,
        Path::AvxVnni,
        Path::Avx512Vnni,
        Path::Neon,
        Path::NeonDot,
    ];

    /// The name in reports and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Path::Scalar => "scalar",
            Path::Portable => "portable",
            Path::Dsp => "dsp",
            Path::Avx2 => "avx2",
            Path::AvxVnni => "avx-vnni",
            Path::Avx512Vnni => "avx512-vnni",
            Path::Neon => "neon",
            Path::NeonDot => "neon-dotprod",
        }
    }
}

/// The path the op-level kernels take on this machine.
#[inline]
pub fn active() -> Path {
    if cfg!(feature = "kernels-scalar") {
        return Path::Scalar;
    }
    if cfg!(feature = "kernels-portable") {
        return Path::Portable;
    }
    detected()
}

#[cfg(hawq_dsp)]
#[inline(always)]
fn detected() -> Path {
    Path::Dsp
}

#[cfg(all(not(hawq_dsp), any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detected() -> Path {
    use core::sync::atomic::{AtomicU8, Ordering};
    // 0: not detected yet; otherwise 1 + the index in `Path::ALL`.
    static CACHE: AtomicU8 = AtomicU8::new(0);
    let cached = CACHE.load(Ordering::Relaxed);
    if cached != 0 {
        return Path::ALL[(cached - 1) as usize % Path::ALL.len()];
    }
    let path = detect_simd();
    let index = Path::ALL.iter().position(|&p| p == path).unwrap_or(0);
    CACHE.store(index as u8 + 1, Ordering::Relaxed);
    path
}

#[cfg(target_arch = "x86_64")]
fn detect_simd() -> Path {
    if x86::Avx512Vnni::new().is_some() {
        Path::Avx512Vnni
    } else if x86::AvxVnni::new().is_some() {
        Path::AvxVnni
    } else if x86::Avx2::new().is_some() {
        Path::Avx2
    } else {
        Path::Portable
    }
}

#[cfg(target_arch = "aarch64")]
fn detect_simd() -> Path {
    if aarch64::NeonDot::new().is_some() {
        Path::NeonDot
    } else {
        Path::Neon
    }
}

#[cfg(all(not(hawq_dsp), not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
#[inline(always)]
fn detected() -> Path {
    Path::Portable
}

/// Every path this build can run on this machine, the reference first (for tests and benchmarks:
/// the `*_on` functions run one of them).
pub fn available() -> heapless::Vec<Path, 8> {
    Path::ALL.into_iter().filter(|&p| table(p).is_some()).collect()
}

/// A Conv2D or depthwise Conv2D kernel: window, layer, input, output, scratch; returns the path
/// that ran.
pub type ConvKernel = fn(&Window, &Layer<'_>, &[u8], &mut [u8], &mut [u8]) -> Path;

/// A fully connected kernel: input and output features, layer, input, output, scratch; returns
/// the path that ran.
pub type FcKernel = fn(usize, usize, &Layer<'_>, &[u8], &mut [u8], &mut [u8]) -> Path;

/// The kernels of the weighted layers on one path, with the signatures every path shares. Each
/// returns the path that ran: the microcontroller and x86-64 kernels report a fallback, the
/// AArch64 ones report themselves, and AVX-VNNI's depthwise entry (AVX2's kernel, its only
/// depthwise) reports AVX-VNNI.
#[derive(Debug, Clone, Copy)]
pub struct KernelTable {
    pub path: Path,
    pub conv2d: ConvKernel,
    pub depthwise_conv2d: ConvKernel,
    pub fully_connected: FcKernel,
}

/// The kernel table of `path`; `None` when this build or this machine cannot run it. Each
/// instruction-set module makes its own (the x86-64 and AArch64 ones from the proof that the
/// CPU has the instructions, so that a table of theirs exists only where it may run).
pub fn table(path: Path) -> Option<KernelTable> {
    match path {
        Path::Scalar => Some(reference::TABLE),
        Path::Portable => Some(portable::TABLE),
        #[cfg(hawq_dsp)]
        Path::Dsp => Some(dsp::TABLE),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => x86::Avx2::new().map(x86::Avx2::table),
        #[cfg(target_arch = "x86_64")]
        Path::AvxVnni => x86::AvxVnni::new().map(x86::AvxVnni::table),
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => x86::Avx512Vnni::new().map(x86::Avx512Vnni::table),
        #[cfg(target_arch = "aarch64")]
        Path::Neon => Some(aarch64::Neon.table()),
        #[cfg(target_arch = "aarch64")]
        Path::NeonDot => aarch64::NeonDot::new().map(aarch64::NeonDot::table),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The row form ([`linked::HIGH_ROWS`], [`linked::OFFSET_ROWS`] or 0) the Cortex-M4 convolution
/// or fully connected layer last ran through its assembly, on the DSP path; `None` elsewhere.
/// The kernel cases check it against the host's prediction ([`conv_row_form`],
/// [`fc_row_form`]), from which a firmware's build links the forms.
#[cfg(feature = "rows-taken")]
pub fn rows_taken() -> Option<u32> {
    #[cfg(hawq_dsp)]
    return Some(dsp::rows_taken());
    #[cfg(not(hawq_dsp))]
    None
}

/// The row form the Cortex-M4 convolution takes for a layer ([`linked::required`]'s choice,
/// `forms::conv_rows`).
pub fn conv_row_form(g: &Window, weight_bits: Bits, in_bits: Bits, rq: &Requant<'_>) -> u32 {
    forms::conv_rows(g, weight_bits, in_bits, rq)
}

/// [`conv_row_form`] for a fully connected layer of `n` inputs (`forms::fc_rows`).
pub fn fc_row_form(n: usize, weight_bits: Bits, in_bits: Bits, rq: &Requant<'_>) -> u32 {
    forms::fc_rows(n, weight_bits, in_bits, rq)
}

/// [`conv2d`] on a given path; `None` (nothing written) when this machine cannot run it, else
/// the path that ran (as [`KernelTable`]). AVX-512 VNNI reads the weights of
/// [`Layer::prepared`] when they are its layout ([`prepare_conv2d_on`]).
pub fn conv2d_on(
    path: Path,
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Option<Path> {
    Some((table(path)?.conv2d)(g, layer, input, output, scratch))
}

/// [`depthwise_conv2d`] on a given path (paths without their own use the portable kernels);
/// `None` when this machine cannot run it, else the path that ran (as [`KernelTable`]).
pub fn depthwise_conv2d_on(
    path: Path,
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Option<Path> {
    Some((table(path)?.depthwise_conv2d)(g, layer, input, output, scratch))
}

/// [`fully_connected`] on a given path; `None` when this machine cannot run it, else the path
/// that ran (as [`KernelTable`]).
pub fn fully_connected_on(
    path: Path,
    in_features: usize,
    out_features: usize,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Option<Path> {
    Some((table(path)?.fully_connected)(in_features, out_features, layer, input, output, scratch))
}

/// Bytes of the weights of a Conv2D laid out once for `path` ([`prepare_conv2d_on`]), which
/// its kernel then reads as [`Layer::prepared`] instead of laying them out on every call: 0
/// when the path prepares nothing for this layer (every path but AVX-512 VNNI, and the layers
/// outside its kernel).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub fn conv2d_prepared_bytes_on(path: Path, g: &Window, layer: &Layer<'_>) -> usize {
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => x86::Avx512Vnni::new().map_or(0, |k| k.conv2d_prepared_bytes(g, layer)),
        _ => 0,
    }
}

/// Lays out the weights of a Conv2D and their requantization for `path` into `dst` (exactly
/// [`conv2d_prepared_bytes_on`] bytes), for the kernel to read as [`Layer::prepared`]; `false`,
/// nothing written, when the path prepares nothing for the layer or `dst` has another length.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub fn prepare_conv2d_on(path: Path, g: &Window, layer: &Layer<'_>, dst: &mut [u8]) -> bool {
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => x86::Avx512Vnni::new().is_some_and(|k| k.prepare_conv2d(g, layer, dst)),
        _ => false,
    }
}

/// Bytes of a depthwise Conv2D's tables (weights in tap pairs, requantization vectors) laid out
/// once for `path` ([`prepare_depthwise_conv2d_on`]): 0 when the path prepares nothing for the
/// layer (every path but AVX-512 VNNI, and the layers outside its kernel).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub fn depthwise_conv2d_prepared_bytes_on(path: Path, g: &Window, layer: &Layer<'_>) -> usize {
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => x86::Avx512Vnni::new().map_or(0, |k| k.depthwise_conv2d_prepared_bytes(g, layer)),
        _ => 0,
    }
}

/// Lays out a depthwise Conv2D's tables for `path` into `dst` (exactly
/// [`depthwise_conv2d_prepared_bytes_on`] bytes); `false`, nothing written, otherwise.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub fn prepare_depthwise_conv2d_on(path: Path, g: &Window, layer: &Layer<'_>, dst: &mut [u8]) -> bool {
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => x86::Avx512Vnni::new().is_some_and(|k| k.prepare_depthwise_conv2d(g, layer, dst)),
        _ => false,
    }
}

/// [`conv2d_prepared_bytes_on`] of a fully connected layer.
pub fn fully_connected_prepared_bytes_on(
    path: Path,
    in_features: usize,
    out_features: usize,
    layer: &Layer<'_>,
) -> usize {
    conv2d_prepared_bytes_on(path, &util::fc_window(in_features, out_features), layer)
}

/// [`prepare_conv2d_on`] of a fully connected layer.
pub fn prepare_fully_connected_on(
    path: Path,
    in_features: usize,
    out_features: usize,
    layer: &Layer<'_>,
    dst: &mut [u8],
) -> bool {
    prepare_conv2d_on(path, &util::fc_window(in_features, out_features), layer, dst)
}

/// The path whose prepared weights the op-level kernels read ([`conv2d`]): the path they run
/// on.
pub fn prepared_path() -> Path {
    op_path()
}

/// [`add`] on a given path; `false` when this machine cannot run it.
pub fn add_on(
    path: Path,
    arena: &mut [u8],
    n: usize,
    a: (usize, ActFormat),
    b: (usize, ActFormat),
    out: usize,
    rq: &AddRequant,
) -> bool {
    match path {
        Path::Scalar => reference::add(arena, n, a, b, out, rq),
        #[cfg(hawq_dsp)]
        Path::Dsp => dsp::add::<{ linked::ALL }>(arena, n, a, b, out, rq),
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => match x86::Avx512Vnni::new() {
            Some(k) => k.add(arena, n, a, b, out, rq),
            None => return false,
        },
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 | Path::AvxVnni => match x86::Avx2::new() {
            Some(k) if available().contains(&path) => k.add(arena, n, a, b, out, rq),
            _ => return false,
        },
        p if available().contains(&p) => portable::add(arena, n, a, b, out, rq),
        _ => return false,
    }
    true
}

/// Bytes of arena scratch a Conv2D of window `g` takes (`ConvParams::scratch` points at them):
/// the most any microcontroller path needs, the same on every target (formulas in
/// [`scratch`]'s documentation).
pub fn conv2d_scratch_bytes(g: &Window, weight_bits: Bits, in_bits: Bits) -> usize {
    scratch::conv2d_bytes(g, weight_bits, in_bits)
}

/// Bytes of arena scratch a depthwise Conv2D takes (as [`conv2d_scratch_bytes`]).
pub fn depthwise_conv2d_scratch_bytes(g: &Window, weight_bits: Bits, in_bits: Bits) -> usize {
    scratch::depthwise_conv2d_bytes(g, weight_bits, in_bits)
}

/// Bytes of arena scratch a fully connected layer takes (as [`conv2d_scratch_bytes`]).
#[inline]
pub fn fully_connected_scratch_bytes(
    in_features: usize,
    out_features: usize,
    weight_bits: Bits,
    in_bits: Bits,
) -> usize {
    scratch::fully_connected_bytes(in_features, out_features, weight_bits, in_bits)
}

/// The path [`conv2d`] and its siblings take on this machine (the first choice of [`active`]
/// where a host path falls back on the portable kernel).
fn op_path() -> Path {
    let path = active();
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 | Path::AvxVnni | Path::Avx512Vnni if !available().contains(&path) => Path::Portable,
        #[cfg(target_arch = "aarch64")]
        Path::NeonDot if !available().contains(&path) => Path::Neon,
        _ => path,
    }
}

/// Conv2D, NHWC, weights `[out_c][kh][kw][in_c]` packed per output channel (contract §2–§4), with
/// `scratch` of at least [`conv2d_scratch_bytes`] bytes (its contents on entry do not matter;
/// with less, the reference kernel runs) and the weights of [`Layer::prepared`] if they were
/// laid out for [`prepared_path`]. Returns the path that ran. `K` is the kernel set
/// ([`linked`]): the widths it leaves out are not compiled into the fast path.
pub fn conv2d<const K: u32>(
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let path = op_path();
    #[cfg(hawq_dsp)]
    if path == Path::Dsp {
        return dsp::conv2d::<K>(g, layer, input, output, scratch);
    }
    conv2d_on(path, g, layer, input, output, scratch).unwrap_or(Path::Scalar)
}

/// Depthwise Conv2D, NHWC, depth multiplier `out_c / in_c`, weights `[out_c][kh][kw]`, with
/// `scratch` of at least [`depthwise_conv2d_scratch_bytes`] bytes (prepared tables as
/// [`conv2d`]). Returns the path that ran.
pub fn depthwise_conv2d<const K: u32>(
    g: &Window,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let path = op_path();
    #[cfg(hawq_dsp)]
    if path == Path::Dsp {
        return dsp::depthwise_conv2d::<K>(g, layer, input, output, scratch);
    }
    depthwise_conv2d_on(path, g, layer, input, output, scratch).unwrap_or(Path::Scalar)
}

/// Fully connected: `out[c] = requant(bias[c] + Σ_k w[c][k]·(a[k] − z))`, weights `[out][in]`,
/// with `scratch` of at least [`fully_connected_scratch_bytes`] bytes (prepared weights as
/// [`conv2d`]). Returns the path that ran.
#[inline(always)]
pub fn fully_connected<const K: u32>(
    in_features: usize,
    out_features: usize,
    layer: &Layer<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) -> Path {
    let (n, m) = (in_features, out_features);
    let path = op_path();
    #[cfg(hawq_dsp)]
    if path == Path::Dsp {
        return dsp::fully_connected::<K>(n, m, layer, input, output, scratch);
    }
    fully_connected_on(path, n, m, layer, input, output, scratch).unwrap_or(Path::Scalar)
}

/// Average pool over the taps inside the input (contract §5): the portable kernel on every path
/// but the scalar one and the DSP one (`SXTAB16` sums), compiled for AVX2 on the x86 paths (`K`:
/// the kernel set, see [`linked`]).
pub fn avg_pool<const K: u32>(g: &Window, input: &[u8], in_fmt: ActFormat, rq: &PoolRequant, output: &mut [u8]) {
    match active() {
        Path::Scalar => reference::avg_pool(g, input, in_fmt, rq, output),
        #[cfg(hawq_dsp)]
        Path::Dsp => dsp::avg_pool::<K>(g, input, in_fmt, rq, output),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 | Path::AvxVnni | Path::Avx512Vnni => match x86::Avx2::new() {
            Some(k) => k.avg_pool::<K>(g, input, in_fmt, rq, output),
            None => portable::avg_pool_linked::<K>(g, input, in_fmt, rq, output),
        },
        _ => portable::avg_pool_linked::<K>(g, input, in_fmt, rq, output),
    }
}

/// [`avg_pool`] on a given path; `false` when this build or CPU does not have it.
pub fn avg_pool_on(
    path: Path,
    g: &Window,
    input: &[u8],
    in_fmt: ActFormat,
    rq: &PoolRequant,
    output: &mut [u8],
) -> bool {
    match path {
        Path::Scalar => reference::avg_pool(g, input, in_fmt, rq, output),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 | Path::AvxVnni | Path::Avx512Vnni if available().contains(&path) => match x86::Avx2::new() {
            Some(k) => k.avg_pool::<{ linked::ALL }>(g, input, in_fmt, rq, output),
            None => return false,
        },
        #[cfg(hawq_dsp)]
        Path::Dsp => dsp::avg_pool::<{ linked::ALL }>(g, input, in_fmt, rq, output),
        p if available().contains(&p) => portable::avg_pool(g, input, in_fmt, rq, output),
        _ => return false,
    }
    true
}

/// Max pool over the taps inside the input (contract §5): the byte loop of [`bytewise`] for
/// 8-bit tensors under the identity rescaling (every compiled max pool) on every path but the
/// scalar one, the reference kernel otherwise.
pub fn max_pool(g: &Window, input: &[u8], in_fmt: ActFormat, rq: &PoolRequant, output: &mut [u8]) {
    if active() == Path::Scalar || !bytewise::max_pool(g, input, in_fmt, rq, output) {
        reference::max_pool(g, input, in_fmt, rq, output)
    }
}

/// Residual add of `n` elements at byte offsets of the arena (contract §5); the output may alias
/// an input exactly (`K`: the kernel set, see [`linked`]).
pub fn add<const K: u32>(
    arena: &mut [u8],
    n: usize,
    a: (usize, ActFormat),
    b: (usize, ActFormat),
    out: usize,
    rq: &AddRequant,
) {
    match active() {
        Path::Scalar => reference::add(arena, n, a, b, out, rq),
        #[cfg(hawq_dsp)]
        Path::Dsp => dsp::add::<K>(arena, n, a, b, out, rq),
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => match x86::Avx512Vnni::new() {
            Some(k) => k.add(arena, n, a, b, out, rq),
            None => portable::add(arena, n, a, b, out, rq),
        },
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 | Path::AvxVnni => match x86::Avx2::new() {
            Some(k) => k.add(arena, n, a, b, out, rq),
            None => portable::add(arena, n, a, b, out, rq),
        },
        _ => portable::add(arena, n, a, b, out, rq),
    }
}

/// Softmax over rows into little-endian f32 (contract §5).
pub fn softmax(input: &[u8], fmt: ActFormat, scale: f32, row: usize, output: &mut [u8]) {
    reference::softmax(input, fmt, scale, row, output)
}

/// Log-softmax over rows into little-endian f32 (contract §5).
pub fn log_softmax(input: &[u8], fmt: ActFormat, scale: f32, row: usize, output: &mut [u8]) {
    reference::log_softmax(input, fmt, scale, row, output)
}

/// `y = s · (q − z)` into little-endian f32.
pub fn dequantize(input: &[u8], fmt: ActFormat, scale: f32, output: &mut [u8]) {
    reference::dequantize(input, fmt, scale, output)
}

/// Table lookup (contract §5): the byte loop of [`bytewise`] for 8-bit tensors on every path but
/// the scalar one.
pub fn lut(input: (&[u8], ActFormat), table: &[u8], n: (usize, usize), output: (&mut [u8], ActFormat)) {
    match active() {
        Path::Scalar => reference::lut(input, table, n, output),
        _ => bytewise::lut(input, table, n, output),
    }
}

/// Elementwise product at byte offsets of the arena (contract §5); the output may alias `a`.
pub fn mul(
    arena: &mut [u8],
    n: usize,
    a: (usize, ActFormat),
    b: (usize, ActFormat, usize),
    out: usize,
    rq: &AddRequant,
) {
    match active() {
        Path::Scalar => reference::mul(arena, n, a, b, out, rq),
        _ => bytewise::mul(arena, n, a, b, out, rq),
    }
}

/// One input of a channel concatenation, requantized into the output (contract §5).
pub fn concat_part(
    arena: &mut [u8],
    positions: usize,
    part: &ConcatInput,
    out: (usize, ActFormat, usize),
    first_channel: usize,
) {
    match active() {
        Path::Scalar => reference::concat_part(arena, positions, part, out, first_channel),
        _ => bytewise::concat_part(arena, positions, part, out, first_channel),
    }
}

/// Strided slice (contract §5).
pub fn slice(
    input: &[u8],
    in_shape: Hwc,
    fmt: ActFormat,
    begin: [usize; 3],
    step: [usize; 3],
    out_shape: Hwc,
    output: &mut [u8],
) {
    match active() {
        Path::Scalar => reference::slice(input, in_shape, fmt, begin, step, out_shape, output),
        _ => bytewise::slice(input, in_shape, fmt, begin, step, out_shape, output),
    }
}

/// Nearest-neighbour upsampling by integer factors (contract §5).
pub fn resize_nearest(input: &[u8], in_shape: Hwc, fmt: ActFormat, factors: (usize, usize), output: &mut [u8]) {
    match active() {
        Path::Scalar => reference::resize_nearest(input, in_shape, fmt, factors, output),
        _ => bytewise::resize_nearest(input, in_shape, fmt, factors, output),
    }
}

/// Depth-to-space, DCR order (contract §5).
pub fn depth_to_space(input: &[u8], in_shape: Hwc, fmt: ActFormat, block: usize, output: &mut [u8]) {
    match active() {
        Path::Scalar => reference::depth_to_space(input, in_shape, fmt, block, output),
        _ => bytewise::depth_to_space(input, in_shape, fmt, block, output),
    }
}
