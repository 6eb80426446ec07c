//! Every kernel path of this machine against the scalar reference (`kernels::reference`, the
//! oracle that `kernels.rs` holds to the naive model), byte for byte: the portable kernels, the
//! SIMD paths the CPU has (x86-64: AVX2; AArch64: NEON, and SDOT with dotprod — run under
//! qemu-aarch64 with `-cpu max` and `-cpu cortex-a53` by `xtask/tests/aarch64_kernels.rs`), and
//! the op-level dispatch. Cortex-M DSP is checked on QEMU by `targets/kernel-check`.
//!
//! The generators are those of `kernels.rs` (extreme zero points, weights and activations,
//! saturating biases and multipliers, every clamp), with wider channel counts so that the SIMD
//! blocks and their tails (odd channel counts, nibble boundaries, partial weight words) are hit,
//! and with garbage in the unused high bits of each packed weight row and in the output buffer.

mod common;
mod naive;

use common::*;
use hawq_runtime::kernels::{self, reference, ActFormat, AddRequant, Layer, Path, PoolRequant, Requant, Window};
use hawq_runtime::quant::{Biases, Multipliers};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

type ConvDyn = dyn Fn(&Window, &Layer<'_>, &[u8], &mut [u8], &mut [u8]) -> Path;
type FcDyn = dyn Fn(usize, usize, &Layer<'_>, &[u8], &mut [u8], &mut [u8]) -> Path;
type ConvFn = Box<ConvDyn>;
type FcFn = Box<FcDyn>;

/// The paths this machine runs besides the reference (`kernels::available()`), and the
/// op-level dispatch.
fn paths() -> Vec<Option<Path>> {
    let mut v: Vec<Option<Path>> = vec![None];
    v.extend(kernels::available().into_iter().filter(|&p| p != Path::Scalar).map(Some));
    v
}

fn name(p: Option<Path>) -> &'static str {
    p.map_or("dispatch", Path::name)
}

/// The path a kernel run must report: the one asked for (every path reports a fallback, and
/// must take none, whatever the shape), or for the dispatch the active path. The one exception
/// is by design: the AVX-512 VNNI convolution hands a layer outside its kernel (`in_kernel`
/// false: more than 256 output channels, more than 64 KiB of laid-out weights) to AVX-VNNI, or
/// AVX2 on a CPU without it.
fn want_path(p: Option<Path>, in_kernel: bool) -> Path {
    match p.unwrap_or_else(kernels::active) {
        Path::Avx512Vnni if !in_kernel => x86_delegate(),
        p => p,
    }
}

/// Whether the NEON depthwise kernel takes a case itself: depth multiplier 1, 8-bit input and
/// output, every channel's requantization in the fast form (the kernel's own test).
#[cfg(target_arch = "aarch64")]
fn neon_depthwise_takes(case: &ConvK) -> bool {
    kernels::aarch64::Neon.depthwise_takes(&case.g, &conv_layer(case))
}

#[cfg(not(target_arch = "aarch64"))]
fn neon_depthwise_takes(_: &ConvK) -> bool {
    false
}

/// The path the AVX-512 VNNI convolution hands the layers outside its kernel.
fn x86_delegate() -> Path {
    if kernels::available().contains(&Path::AvxVnni) {
        Path::AvxVnni
    } else {
        Path::Avx2
    }
}

/// Whether the AVX-512 VNNI kernel takes a convolution itself (it lays out its weights; its
/// depthwise kernels hand no layer on).
fn avx512_takes(case: &ConvK) -> bool {
    kernels::conv2d_prepared_bytes_on(Path::Avx512Vnni, &case.g, &conv_layer(case)) > 0
}

/// The layer of a convolution case, nothing prepared.
fn conv_layer(case: &ConvK) -> Layer<'_> {
    let fmt = ActFormat { bits: bits_of(case.in_fmt.0), zero_point: case.in_fmt.1 };
    Layer::new(fmt, &case.weights, bits_of(case.weight_bits), case.ch.requant(&case.out))
}

/// The layer of a fully connected case, nothing prepared.
fn fc_layer(c: &FcK) -> Layer<'_> {
    let fmt = ActFormat { bits: bits_of(c.in_fmt.0), zero_point: c.in_fmt.1 };
    Layer::new(fmt, &c.weights, bits_of(c.weight_bits), c.ch.requant(&c.out))
}

/// Bytes of the stack buffer in which the AVX-512 VNNI convolution lays out the weights it was
/// not given prepared, a chunk of whole groups of 16 output channels at a time.
const AVX512_CHUNK_BYTES: usize = 16 * 1024;

/// Whether the AVX-512 VNNI kernel takes a convolution without prepared weights: a layer in its
/// kernel one group of whose layout fits [`AVX512_CHUNK_BYTES`] (else it hands it on).
fn avx512_takes_unprepared(case: &ConvK) -> bool {
    let g16 = Window { out_c: case.g.out_c.min(16), ..case.g };
    let group = kernels::conv2d_prepared_bytes_on(Path::Avx512Vnni, &g16, &conv_layer(case));
    avx512_takes(case) && group <= AVX512_CHUNK_BYTES
}

/// [`avx512_takes_unprepared`] of a fully connected layer (a one-pixel convolution).
fn avx512_fc_takes_unprepared(c: &FcK) -> bool {
    let bytes = |m| kernels::fully_connected_prepared_bytes_on(Path::Avx512Vnni, c.n, m, &fc_layer(c));
    bytes(c.m) > 0 && bytes(c.m.min(16)) <= AVX512_CHUNK_BYTES
}

/// The scalar reference as a kernel of [`conv_paths`]' shape (`depthwise` selects its
/// depthwise convolution).
fn conv_reference(depthwise: bool) -> ConvFn {
    if depthwise {
        Box::new(|g, l, i, o, _| {
            reference::depthwise_conv2d(g, l, i, o);
            Path::Scalar
        })
    } else {
        Box::new(|g, l, i, o, _| {
            reference::conv2d(g, l, i, o);
            Path::Scalar
        })
    }
}

/// The conv-shaped kernels of each path (`depthwise` selects the depthwise ones).
fn conv_paths(depthwise: bool) -> Vec<(Option<Path>, ConvFn)> {
    paths()
        .into_iter()
        .map(|p| {
            let f: ConvFn = match (p, depthwise) {
                (None, false) => Box::new(kernels::conv2d::<{ kernels::linked::ALL }>),
                (None, true) => Box::new(kernels::depthwise_conv2d::<{ kernels::linked::ALL }>),
                // AVX-512 VNNI runs a convolution only over weights laid out beforehand: here,
                // for each call.
                (Some(Path::Avx512Vnni), false) => Box::new(move |g, l, i, o, s| {
                    let mut prepared = vec![0u8; kernels::conv2d_prepared_bytes_on(Path::Avx512Vnni, g, l)];
                    kernels::prepare_conv2d_on(Path::Avx512Vnni, g, l, &mut prepared);
                    let l = l.with_prepared(&prepared);
                    kernels::conv2d_on(Path::Avx512Vnni, g, &l, i, o, s).expect("available")
                }),
                (Some(p), false) => {
                    Box::new(move |g, l, i, o, s| kernels::conv2d_on(p, g, l, i, o, s).expect("available"))
                }
                (Some(p), true) => {
                    Box::new(move |g, l, i, o, s| kernels::depthwise_conv2d_on(p, g, l, i, o, s).expect("available"))
                }
            };
            (p, f)
        })
        .collect()
}

fn fc_paths() -> Vec<(Option<Path>, FcFn)> {
    paths()
        .into_iter()
        .map(|p| {
            let f: FcFn = match p {
                None => Box::new(kernels::fully_connected::<{ kernels::linked::ALL }>),
                // As in [`conv_paths`].
                Some(Path::Avx512Vnni) => Box::new(move |n, m, l, i, o, s| {
                    let p = Path::Avx512Vnni;
                    let mut prepared = vec![0u8; kernels::fully_connected_prepared_bytes_on(p, n, m, l)];
                    kernels::prepare_fully_connected_on(p, n, m, l, &mut prepared);
                    let l = l.with_prepared(&prepared);
                    kernels::fully_connected_on(p, n, m, &l, i, o, s).expect("available")
                }),
                Some(p) => Box::new(move |n, m, l, i, o, s| {
                    kernels::fully_connected_on(p, n, m, l, i, o, s).expect("available")
                }),
            };
            (p, f)
        })
        .collect()
}

/// Requantization arrays of a case, owned.
#[derive(Debug, Clone)]
struct Channels {
    bias: Vec<u8>,
    bias_exponent: u8,
    multiplier: Vec<u8>,
    shift_base: i8,
}

impl Channels {
    fn requant(&self, out: &OutQ) -> Requant<'_> {
        Requant {
            bias: Biases { bytes: &self.bias, exponent: self.bias_exponent },
            multiplier: Multipliers { bytes: &self.multiplier, shift_base: self.shift_base },
            out: ActFormat { bits: bits_of(out.bits), zero_point: out.zero_point },
            min: out.min,
            max: out.max,
        }
    }
}

fn owned_channels(oc: usize, limit: i64) -> impl Strategy<Value = Channels> {
    channels(oc, limit, false).prop_map(|(c, _)| {
        let (bias, bias_exponent) = bias_bytes(&c.bias);
        let (multiplier, shift_base) = multiplier_bytes(&c.multiplier, &c.shift);
        Channels { bias, bias_exponent, multiplier, shift_base }
    })
}

/// Packs rows of `row` weights and sets the unused high bits of each row's last byte from
/// `junk` (the reference ignores them; so must every path).
fn pack_with_junk(values: &[i32], row: usize, bits: u32, junk: u8) -> Vec<u8> {
    let b = bits_of(bits);
    let row_bytes = b.packed_len(row);
    let mut out = pack_rows(values, row, bits);
    let used = (row * bits as usize) % 8;
    if used != 0 {
        for r in out.chunks_mut(row_bytes) {
            if let Some(last) = r.last_mut() {
                *last |= junk & !((1u8 << used) - 1);
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
struct ConvK {
    g: Window,
    in_fmt: (u32, i32),
    input: Vec<u8>,
    weight_bits: u32,
    weights: Vec<u8>,
    ch: Channels,
    out: OutQ,
    fill: u64,
}

/// Input channels: small, odd, and multiples of the SIMD blocks (4, 8, 16, 32).
fn in_channels() -> BoxedStrategy<usize> {
    prop_oneof![3 => 1..=9usize, 1 => Just(3usize), 2 => prop_oneof![Just(4usize), Just(8), Just(16), Just(32)], 2 => 10..=40usize].boxed()
}

fn conv_k(depthwise: bool) -> impl Strategy<Value = ConvK> {
    // Output channels: mostly few, sometimes past the 16-channel groups of the AVX-512 path's
    // blocks (up to five groups: a second pass).
    let out_channels = prop_oneof![4 => 1..=20usize, 1 => 21..=72usize].boxed();
    conv_k_of(depthwise, geometry(7, 5).boxed(), in_channels(), out_channels)
}

/// Cases of the given geometries and channel counts (depth multiplier 1 or 2 for depthwise).
fn conv_k_of(
    depthwise: bool,
    geometry: BoxedStrategy<(usize, usize, naive::Geom)>,
    in_channels: BoxedStrategy<usize>,
    out_channels: BoxedStrategy<usize>,
) -> impl Strategy<Value = ConvK> {
    let mult = prop_oneof![3 => Just(1usize), 1 => Just(2usize)];
    (geometry, in_channels, out_channels, mult, act_q(), out_q(), weight_bits(), any::<u8>(), any::<u64>())
        .prop_flat_map(move |((h, w, geom), ic, oc, mult, in_q, out, wbits, junk, fill)| {
            let out_c = if depthwise { ic * mult } else { oc };
            let row = geom.kernel_h * geom.kernel_w * if depthwise { 1 } else { ic };
            let limit = bias_limit(row, wbits, in_q.bits);
            (
                vec(weight_value(wbits, true), out_c * row),
                vec(act_value(in_q.bits), h * w * ic),
                owned_channels(out_c, limit),
            )
                .prop_map(move |(wv, av, ch)| ConvK {
                    g: window(h, w, ic, out_c, &geom),
                    in_fmt: (in_q.bits, in_q.zero_point),
                    input: pack_values(&av, in_q.bits),
                    weight_bits: wbits,
                    weights: pack_with_junk(&wv, row, wbits, junk),
                    ch,
                    out,
                    fill,
                })
        })
}

/// The kernels' window of an `h × w × in_c` input under `geom`.
fn window(h: usize, w: usize, in_c: usize, out_c: usize, geom: &naive::Geom) -> Window {
    Window {
        in_h: h,
        in_w: w,
        in_c,
        out_h: geom.out_h,
        out_w: geom.out_w,
        out_c,
        kernel_h: geom.kernel_h,
        kernel_w: geom.kernel_w,
        stride_h: geom.stride_h,
        stride_w: geom.stride_w,
        pad_top: geom.pad_top,
        pad_left: geom.pad_left,
    }
}

/// Runs a case with exactly the scratch the runtime asks for, full of garbage; returns the
/// output and the path that ran.
fn run_conv(case: &ConvK, depthwise: bool, f: &ConvDyn) -> (Vec<u8>, Path) {
    let n = case.g.out_h * case.g.out_w * case.g.out_c;
    let mut out = garbage(bits_of(case.out.bits).packed_len(n), case.fill);
    let fmt = ActFormat { bits: bits_of(case.in_fmt.0), zero_point: case.in_fmt.1 };
    let wbits = bits_of(case.weight_bits);
    let bytes = if depthwise {
        kernels::depthwise_conv2d_scratch_bytes(&case.g, wbits, fmt.bits)
    } else {
        kernels::conv2d_scratch_bytes(&case.g, wbits, fmt.bits)
    };
    // One byte more, and the slice starts on it: a scratch that does not start on a word.
    let mut scratch = garbage(bytes + 1, case.fill ^ 0x5c);
    let path = f(&case.g, &conv_layer(case), &case.input, &mut out, &mut scratch[1..]);
    (out, path)
}

/// `cases` scaled by `HAWQ_PATHS_CASES_PERCENT` (100 when unset), at least one. Under
/// qemu-user each case costs about 50 times a native one, and `xtask/tests/aarch64_kernels.rs`
/// runs a quarter of them: the NEON and SDOT kernels also run the `all_paths` example's 20,000
/// cases per operation there (scripts/test.sh).
fn scaled(cases: u32) -> u32 {
    let percent = match std::env::var("HAWQ_PATHS_CASES_PERCENT") {
        Ok(v) => v.parse::<u32>().unwrap_or_else(|_| panic!("HAWQ_PATHS_CASES_PERCENT={v:?}: not a whole number")),
        Err(_) => 100,
    };
    (cases * percent / 100).max(1)
}

fn check<T: std::fmt::Debug>(
    name: &str,
    cases: u32,
    strategy: impl Strategy<Value = T>,
    paths: &[&'static str],
    test: impl Fn(&T) -> Result<(), TestCaseError>,
) {
    let cases = scaled(cases);
    let mut config = Config::with_cases(cases);
    config.failure_persistence = None;
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, |c| test(&c)) {
        panic!("{name}: {e}");
    }
    eprintln!("{name}: {cases} cases, each on {paths:?}, identical to the reference");
}

fn compare(path: &str, want: &[u8], got: &[u8]) -> Result<(), TestCaseError> {
    if want != got {
        let i = want.iter().zip(got).position(|(a, b)| a != b).unwrap_or(0);
        return Err(TestCaseError::fail(format!(
            "{path}: byte {i} of {}: reference {:#04x}, path {:#04x}",
            want.len(),
            want[i],
            got[i]
        )));
    }
    Ok(())
}

/// The path that ran is the one asked for: no fallback, whatever the shape ([`want_path`]).
fn check_path(p: Option<Path>, ran: Path, in_kernel: bool) -> Result<(), TestCaseError> {
    check_ran(p, ran, want_path(p, in_kernel))
}

/// [`check_path`] for a depthwise layer: every path's own kernel, but the NEON one (the SDOT
/// path's too) hands the layers outside it (`neon_takes`) to the portable kernel.
fn check_depthwise_path(p: Option<Path>, ran: Path, neon_takes: bool) -> Result<(), TestCaseError> {
    match p.unwrap_or_else(kernels::active) {
        Path::Neon | Path::NeonDot if !neon_takes => check_ran(p, ran, Path::Portable),
        _ => check_path(p, ran, true),
    }
}

fn check_ran(p: Option<Path>, ran: Path, want: Path) -> Result<(), TestCaseError> {
    if ran != want {
        return Err(TestCaseError::fail(format!("{}: ran on the {} path, not {}", name(p), ran.name(), want.name())));
    }
    Ok(())
}

fn conv_property_of(what: &str, depthwise: bool, cases: u32, strategy: impl Strategy<Value = ConvK>) {
    let paths = conv_paths(depthwise);
    let names: Vec<_> = paths.iter().map(|p| name(p.0)).collect();
    let reference = conv_reference(depthwise);
    check(what, cases, strategy, &names, |case| {
        let (want, _) = run_conv(case, depthwise, &reference);
        for (p, f) in &paths {
            let (got, ran) = run_conv(case, depthwise, f);
            compare(name(*p), &want, &got)?;
            // The dispatch has no prepared weights.
            match (p, depthwise) {
                (_, true) => check_depthwise_path(*p, ran, neon_depthwise_takes(case))?,
                (None, false) => check_path(*p, ran, avx512_takes_unprepared(case))?,
                _ => check_path(*p, ran, avx512_takes(case))?,
            }
        }
        Ok(())
    });
}

fn conv_property(depthwise: bool, cases: u32) {
    conv_property_of(if depthwise { "depthwise" } else { "conv2d" }, depthwise, cases, conv_k(depthwise));
}

#[test]
fn conv2d_paths_match_reference() {
    conv_property(false, 3000);
}

#[test]
fn depthwise_paths_match_reference() {
    conv_property(true, 3000);
}

/// Receptive fields past every old buffer limit (the DSP path's 1,024, the portable path's
/// 4,096 / 4 = 1,024 and 768 / 4 = 192 on the Cortex-M0), up to 3×3×512 = 4,608: each path
/// identical to the reference, and none falls back.
#[test]
fn conv2d_beyond_the_old_limits_takes_the_fast_paths() {
    let geom = geometry(3, 3).boxed();
    let ic = prop_oneof![Just(512usize), 100..=512usize].boxed();
    conv_property_of("conv2d large K", false, 40, conv_k_of(false, geom, ic, (1..=6usize).boxed()));
}

/// Receptive fields past the x86-64 kernels' old stack blocks (2,048 taps, beyond which they
/// took the portable kernel and still reported their own path): 3×3×512 = 4,608, 1×1×3,000 and
/// odd sizes between 2,049 and 6,000, over several pixels and a few output channels. Each x86
/// path identical to the reference and on its own kernel with the planned scratch: AVX2 and
/// AVX-VNNI themselves, AVX-512 VNNI itself whenever its laid-out weights fit (1×1×3,000 over
/// at most 16 channels, asserted) and AVX-VNNI beyond that ([`want_path`]).
#[test]
fn conv2d_past_2048_taps_runs_on_each_x86_path() {
    let shape = prop_oneof![
        Just((3usize, 3usize, 512usize)),
        Just((1usize, 1usize, 3000usize)),
        (1..=3usize, 1..=3usize, 2049..=6000usize).prop_map(|(kh, kw, k)| (kh, kw, k.div_ceil(kh * kw) | 1)),
    ];
    let sizes = (1..=4usize, 1..=4usize, 1..=2usize, any::<[u8; 4]>(), 1..=18usize);
    let strategy = (shape, sizes).prop_flat_map(|((kh, kw, ic), (h, w, stride, pads, oc))| {
        let geom = geom_of(h + kh - 1, w + kw - 1, kh, kw, stride, stride, pads);
        conv_k_of(false, Just(geom).boxed(), Just(ic).boxed(), Just(oc).boxed())
    });
    let paths = conv_paths(false);
    let names: Vec<_> = paths.iter().map(|p| name(p.0)).collect();
    let reference = conv_reference(false);
    let avx512 = kernels::available().contains(&Path::Avx512Vnni);
    let own = std::sync::atomic::AtomicUsize::new(0);
    check("conv2d past 2,048 taps", 48, strategy, &names, |case| {
        let k = case.g.kernel_h * case.g.kernel_w * case.g.in_c;
        prop_assert!(k > 2048, "K = {k}");
        let in_kernel = avx512_takes(case);
        own.fetch_add(in_kernel as usize, std::sync::atomic::Ordering::Relaxed);
        if avx512 && k == 3000 && case.g.kernel_h == 1 && case.g.out_c <= 16 {
            prop_assert!(in_kernel, "1×1×3,000 over {} channels: outside the AVX-512 kernel", case.g.out_c);
        }
        let (want, _) = run_conv(case, false, &reference);
        for (p, f) in &paths {
            let (got, ran) = run_conv(case, false, f);
            compare(name(*p), &want, &got)?;
            // The dispatch has no prepared weights.
            check_path(*p, ran, if p.is_some() { in_kernel } else { avx512_takes_unprepared(case) })?;
        }
        Ok(())
    });
    if avx512 {
        let own = own.into_inner();
        eprintln!("conv2d past 2,048 taps: {own} cases on the AVX-512 VNNI kernel itself");
        assert!(own > 0, "no case on the AVX-512 VNNI kernel itself");
    }
}

/// Without prepared weights (`Interpreter::new`, the C API) the AVX-512 VNNI convolution lays
/// them out itself, a chunk of output channels at a time in a 16 KiB stack buffer: layers of up
/// to 256 channels (one chunk to sixteen) and receptive fields up to 500, each identical to the
/// reference and on the AVX-512 VNNI kernel itself.
#[test]
fn conv2d_without_prepared_weights_runs_avx512_in_chunks_of_channels() {
    if !kernels::available().contains(&Path::Avx512Vnni) {
        return;
    }
    let geom = geometry(4, 3).boxed();
    let ic = prop_oneof![Just(16usize), 1..=55usize].boxed();
    let oc = prop_oneof![Just(64usize), 1..=256usize].boxed();
    let strategy =
        conv_k_of(false, geom, ic, oc).prop_filter("K ≤ 500", |c| c.g.kernel_h * c.g.kernel_w * c.g.in_c <= 500);
    let unprepared: ConvFn =
        Box::new(|g, l, i, o, s| kernels::conv2d_on(Path::Avx512Vnni, g, l, i, o, s).expect("available"));
    let reference = conv_reference(false);
    check("conv2d unprepared on AVX-512", 300, strategy, &["avx512-vnni"], |case| {
        let (want, _) = run_conv(case, false, &reference);
        let (got, ran) = run_conv(case, false, &unprepared);
        compare("avx512-vnni unprepared", &want, &got)?;
        check_path(Some(Path::Avx512Vnni), ran, avx512_takes_unprepared(case))?;
        prop_assert!(avx512_takes_unprepared(case) || !avx512_takes(case), "K ≤ 500 fits a chunk");
        Ok(())
    });
}

/// Images larger than the AVX-512 VNNI convolution's 16 KiB buffer for the padded input
/// (36×36×16 and the like): it reads them in bands of output rows whose input rows fit, each
/// band's padding where the image has it (top, bottom, none), with strides of 1–3 and kernels
/// of 1–5 rows. Each path identical to the reference, AVX-512 VNNI on its own kernel whenever
/// its weights fit (asserted for most cases).
#[test]
fn conv2d_over_images_past_the_padded_buffer_matches_reference() {
    let sizes = (24..=56usize, 16..=48usize, 1..=5usize, 1..=3usize, 1..=3usize, any::<[u8; 4]>());
    let strategy = (sizes, prop_oneof![Just(16usize), 8..=48usize], 1..=40usize).prop_flat_map(
        |((h, w, kh, kw, stride, pads), ic, oc)| {
            let geom = geom_of(h, w, kh, kw, stride, stride, pads);
            conv_k_of(false, Just(geom).boxed(), Just(ic).boxed(), Just(oc).boxed())
        },
    );
    let paths = conv_paths(false);
    let names: Vec<_> = paths.iter().map(|p| name(p.0)).collect();
    let reference = conv_reference(false);
    let banded = std::sync::atomic::AtomicUsize::new(0);
    check("conv2d past the padded buffer", 200, strategy, &names, |case| {
        let g = &case.g;
        let in_kernel = avx512_takes(case);
        let padded = ((g.out_h - 1) * g.stride_h + g.kernel_h).max(g.pad_top + g.in_h)
            * ((g.out_w - 1) * g.stride_w + g.kernel_w).max(g.pad_left + g.in_w)
            * g.in_c;
        if in_kernel && padded + 4 > 16384 && case.in_fmt.0 == 8 {
            banded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let (want, _) = run_conv(case, false, &reference);
        for (p, f) in &paths {
            let (got, ran) = run_conv(case, false, f);
            compare(name(*p), &want, &got)?;
            // The dispatch has no prepared weights.
            check_path(*p, ran, if p.is_some() { in_kernel } else { avx512_takes_unprepared(case) })?;
        }
        Ok(())
    });
    if kernels::available().contains(&Path::Avx512Vnni) {
        let banded = banded.into_inner();
        eprintln!("conv2d past the padded buffer: {banded} of {} cases in bands on AVX-512 VNNI", scaled(200));
        assert!(banded > scaled(50) as usize, "only {banded} cases read in bands");
    }
}

/// Small receptive fields and few output channels, where the planned scratch is at its
/// tightest against the x86-64 kernels' blocks (rows of `K` padded to their chunks, the
/// requantization table): convolutions of one to a few pixels and fully connected layers of
/// 1–40 inputs, every weight and input width; no path falls back.
#[test]
fn small_layers_fit_the_planned_scratch() {
    let geom = geometry(3, 3).boxed();
    let ic = (1..=40usize).boxed();
    conv_property_of("conv2d small", false, 1500, conv_k_of(false, geom, ic, (1..=3usize).boxed()));
    fc_property("fully_connected small", 1500, fc_k_of((1..=40usize).boxed(), (1..=3usize).boxed()));
}

/// Up to 1,024 output channels (the DSP path precomputed at most 128 channels' requantization).
#[test]
fn conv2d_many_output_channels_takes_the_fast_paths() {
    let geom = geometry(3, 3).boxed();
    let oc = prop_oneof![Just(1024usize), 129..=1024usize].boxed();
    conv_property_of("conv2d many channels", false, 30, conv_k_of(false, geom, in_channels(), oc));
}

/// Depthwise layers with long rows, many channels (past the DSP path's pass of 128) and large
/// kernels (past its 64 taps): each path identical to the reference, and none falls back.
#[test]
fn depthwise_big_rows_and_channels_take_the_fast_paths() {
    let wide = (1..=3usize, 40..=96usize, 1..=5usize, 1..=5usize, 1..=2usize, 1..=2usize, any::<[u8; 4]>());
    let geom =
        prop_oneof![wide.prop_map(|(h, w, kh, kw, sh, sw, p)| geom_of(h, w, kh, kw, sh, sw, p)), geometry(12, 11),]
            .boxed();
    let ic = prop_oneof![1 => 4..=12usize, 2 => 129..=300usize, 1 => Just(512usize)].boxed();
    conv_property_of("depthwise large", true, 40, conv_k_of(true, geom, ic, Just(1usize).boxed()));
}

/// `(h, w, geometry)` of one layer (paddings from `p`, as [`geometry`] makes them).
fn geom_of(h: usize, w: usize, kh: usize, kw: usize, sh: usize, sw: usize, p: [u8; 4]) -> (usize, usize, naive::Geom) {
    let axis = |size: usize, k: usize, stride: usize, a: u8, b: u8| {
        let mut top = a as usize % k;
        let bottom = b as usize % k;
        if size + top + bottom < k {
            top = k - 1;
        }
        (top, (size + top + bottom - k) / stride + 1)
    };
    let (pad_top, out_h) = axis(h, kh, sh, p[0], p[1]);
    let (pad_left, out_w) = axis(w, kw, sw, p[2], p[3]);
    (h, w, naive::Geom { kernel_h: kh, kernel_w: kw, stride_h: sh, stride_w: sw, pad_top, pad_left, out_h, out_w })
}

/// A scratch slice smaller than the runtime asks for: the microcontroller paths run the
/// reference instead (the same bytes) and say so. The loader never lets a model get there.
#[test]
fn too_little_scratch_runs_the_reference_and_says_so() {
    let mut runner = TestRunner::deterministic();
    let case = conv_k(false).new_tree(&mut runner).expect("case").current();
    let reference = conv_reference(false);
    let (want, _) = run_conv(&case, false, &reference);
    let n = case.g.out_h * case.g.out_w * case.g.out_c;
    let mut out = garbage(bits_of(case.out.bits).packed_len(n), 1);
    let ran = kernels::conv2d_on(Path::Portable, &case.g, &conv_layer(&case), &case.input, &mut out, &mut [])
        .expect("portable");
    assert_eq!(ran, Path::Scalar);
    assert_eq!(out, want);
}

#[derive(Debug, Clone)]
struct FcK {
    n: usize,
    m: usize,
    in_fmt: (u32, i32),
    input: Vec<u8>,
    weight_bits: u32,
    weights: Vec<u8>,
    ch: Channels,
    out: OutQ,
    fill: u64,
}

fn fc_k() -> impl Strategy<Value = FcK> {
    let n = prop_oneof![2 => 1..=40usize, 1 => 41..=300usize].boxed();
    fc_k_of(n, prop_oneof![4 => 1..=24usize, 1 => 25..=80usize].boxed())
}

fn fc_k_of(n: BoxedStrategy<usize>, m: BoxedStrategy<usize>) -> impl Strategy<Value = FcK> {
    (n, m, act_q(), out_q(), weight_bits(), any::<u8>(), any::<u64>()).prop_flat_map(
        |(n, m, in_q, out, wbits, junk, fill)| {
            let limit = bias_limit(n, wbits, in_q.bits);
            (vec(weight_value(wbits, true), n * m), vec(act_value(in_q.bits), n), owned_channels(m, limit)).prop_map(
                move |(wv, av, ch)| FcK {
                    n,
                    m,
                    in_fmt: (in_q.bits, in_q.zero_point),
                    input: pack_values(&av, in_q.bits),
                    weight_bits: wbits,
                    weights: pack_with_junk(&wv, n, wbits, junk),
                    ch,
                    out,
                    fill,
                },
            )
        },
    )
}

fn fc_property(what: &str, cases: u32, strategy: impl Strategy<Value = FcK>) {
    let paths = fc_paths();
    let names: Vec<_> = paths.iter().map(|p| name(p.0)).collect();
    let run = |c: &FcK, f: &FcDyn| {
        let mut out = garbage(bits_of(c.out.bits).packed_len(c.m), c.fill);
        let fmt = ActFormat { bits: bits_of(c.in_fmt.0), zero_point: c.in_fmt.1 };
        let wbits = bits_of(c.weight_bits);
        let bytes = kernels::fully_connected_scratch_bytes(c.n, c.m, wbits, fmt.bits);
        let mut scratch = garbage(bytes + 2, c.fill ^ 0x5c);
        let path = f(c.n, c.m, &fc_layer(c), &c.input, &mut out, &mut scratch[2..]);
        (out, path)
    };
    let reference: FcFn = Box::new(|n, m, l, i, o, _| {
        reference::fully_connected(n, m, l, i, o);
        Path::Scalar
    });
    check(what, cases, strategy, &names, |c| {
        let (want, _) = run(c, &reference);
        let in_kernel = kernels::fully_connected_prepared_bytes_on(Path::Avx512Vnni, c.n, c.m, &fc_layer(c)) > 0;
        for (p, f) in &paths {
            let (got, ran) = run(c, f);
            compare(name(*p), &want, &got)?;
            // The dispatch has no prepared weights.
            check_path(*p, ran, if p.is_some() { in_kernel } else { avx512_fc_takes_unprepared(c) })?;
        }
        Ok(())
    });
}

#[test]
fn fully_connected_paths_match_reference() {
    fc_property("fully_connected", 3000, fc_k());
}

/// Inputs past every old buffer limit (1,024 on the DSP path), up to 4,608, and up to 1,024
/// outputs: each path identical to the reference, and none falls back.
#[test]
fn fully_connected_beyond_the_old_limits_takes_the_fast_paths() {
    let wide = (prop_oneof![Just(4608usize), 1025..=4608usize].boxed(), (1..=6usize).boxed());
    let tall = ((1..=64usize).boxed(), prop_oneof![Just(1024usize), 129..=1024usize].boxed());
    let shape = prop_oneof![wide, tall];
    let strategy = shape.prop_flat_map(|(n, m)| fc_k_of(Just(n).boxed(), Just(m).boxed()));
    fc_property("fully_connected large", 40, strategy);
}

/// Weights laid out once (`prepare_*_on`, into garbage) and read from `Layer::prepared` by the
/// kernels of each path (`*_on`) and by the op-level dispatch: identical to the reference;
/// prepared weights of the wrong length are ignored (the same bytes, from a path that needs no
/// layout: AVX-512 VNNI hands the layer on, `hands_on`, or takes its AVX2 depthwise kernel), a
/// destination of the wrong length is refused, and the paths that prepare nothing ask for 0
/// bytes. `hands_on`: the AVX-512 kernel hands the layers it prepares nothing for to another
/// path (convolution, fully connected; [`want_path`]). Returns how many cases had prepared
/// weights on some path.
#[allow(clippy::too_many_arguments)]
fn prepared_property<C: std::fmt::Debug>(
    what: &str,
    hands_on: bool,
    cases: u32,
    strategy: impl Strategy<Value = C>,
    run: impl Fn(&C, &ConvDyn) -> (Vec<u8>, Path),
    reference: ConvFn,
    bytes_on: impl Fn(&C, Path) -> usize,
    prepare_on: impl Fn(&C, Path, &mut [u8]) -> bool,
    prepared_on: impl Fn(&C, Path, &[u8]) -> ConvFn,
    dispatch: impl Fn(&C, &[u8]) -> ConvFn,
    takes_unprepared: impl Fn(&C) -> bool,
    neon_depthwise: Option<fn(&C) -> bool>,
) -> usize {
    let mut names: Vec<_> = paths().into_iter().flatten().map(Path::name).collect();
    names.push("dispatch");
    let prepared_cases = std::sync::atomic::AtomicUsize::new(0);
    check(what, cases, strategy, &names, |c| {
        let (want, _) = run(c, &*reference);
        let in_kernel = !hands_on || bytes_on(c, Path::Avx512Vnni) > 0;
        let check_path = |p, ran, takes| match neon_depthwise {
            Some(neon_takes) => check_depthwise_path(p, ran, neon_takes(c)),
            None => check_path(p, ran, takes),
        };
        let mut any = false;
        for p in paths().into_iter().flatten() {
            let n = bytes_on(c, p);
            if n > 0 && p != Path::Avx512Vnni {
                return Err(TestCaseError::fail(format!("{}: asks for {n} bytes of prepared weights", p.name())));
            }
            any |= n > 0;
            let mut prepared = garbage(n, n as u64 ^ 0xa5a5);
            if prepare_on(c, p, &mut prepared) != (n > 0) {
                return Err(TestCaseError::fail(format!("{}: prepare of {n} bytes", p.name())));
            }
            if prepare_on(c, p, &mut garbage(n + 1, 7)) || (n > 0 && prepare_on(c, p, &mut garbage(n - 1, 7))) {
                return Err(TestCaseError::fail(format!("{}: prepared into the wrong length", p.name())));
            }
            let short = &prepared[..n.saturating_sub(1)];
            for (label, w) in [("prepared", &prepared[..]), ("short", short), ("empty", &[][..])] {
                let (got, ran) = run(c, &*prepared_on(c, p, w));
                compare(&format!("{} {label}", p.name()), &want, &got)?;
                // Without the whole prepared layout AVX-512 VNNI lays the weights out itself, or
                // hands the layer on.
                let takes = if hands_on && label != "prepared" { takes_unprepared(c) } else { in_kernel };
                check_path(Some(p), ran, takes)?;
            }
        }
        let p = kernels::prepared_path();
        let n = bytes_on(c, p);
        let mut prepared = garbage(n, 11);
        prepare_on(c, p, &mut prepared);
        let (got, ran) = run(c, &*dispatch(c, &prepared));
        compare("dispatch prepared", &want, &got)?;
        check_path(None, ran, in_kernel)?;
        if any {
            prepared_cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    });
    prepared_cases.into_inner()
}

/// The convolution cases of `conv2d_paths_match_reference` with the weights prepared once.
fn conv2d_prepared_property(what: &str, cases: u32, strategy: impl Strategy<Value = ConvK>) {
    let prepared = prepared_property(
        what,
        true,
        cases,
        strategy,
        |c, f| run_conv(c, false, f),
        conv_reference(false),
        |c, p| kernels::conv2d_prepared_bytes_on(p, &c.g, &conv_layer(c)),
        |c, p, dst| kernels::prepare_conv2d_on(p, &c.g, &conv_layer(c), dst),
        |_, p, w| {
            let w = w.to_vec();
            Box::new(move |g, l, i, o, s| kernels::conv2d_on(p, g, &l.with_prepared(&w), i, o, s).expect("available"))
        },
        |_, w| {
            let w = w.to_vec();
            Box::new(move |g, l, i, o, s| kernels::conv2d::<{ kernels::linked::ALL }>(g, &l.with_prepared(&w), i, o, s))
        },
        avx512_takes_unprepared,
        None,
    );
    if kernels::available().contains(&Path::Avx512Vnni) {
        assert!(prepared as u32 > cases / 2, "{what}: only {prepared} of {cases} cases had prepared weights");
    }
}

#[test]
fn conv2d_prepared_weights_match_reference() {
    conv2d_prepared_property("conv2d prepared", 2000, conv_k(false));
}

/// Receptive fields and channel counts up to the AVX-512 kernel's limits and past them (where
/// nothing is prepared and the layer runs on AVX-VNNI or AVX2).
#[test]
fn conv2d_prepared_weights_of_large_layers_match_reference() {
    let geom = geometry(4, 3).boxed();
    let ic = prop_oneof![Just(64usize), 100..=240usize].boxed();
    let oc = prop_oneof![Just(16usize), Just(32), 60..=260usize].boxed();
    let strategy = conv_k_of(false, geom, ic, oc);
    let prepared = prepared_property(
        "conv2d prepared large",
        true,
        40,
        strategy,
        |c, f| run_conv(c, false, f),
        conv_reference(false),
        |c, p| kernels::conv2d_prepared_bytes_on(p, &c.g, &conv_layer(c)),
        |c, p, dst| kernels::prepare_conv2d_on(p, &c.g, &conv_layer(c), dst),
        |_, p, w| {
            let w = w.to_vec();
            Box::new(move |g, l, i, o, s| kernels::conv2d_on(p, g, &l.with_prepared(&w), i, o, s).expect("available"))
        },
        |_, w| {
            let w = w.to_vec();
            Box::new(move |g, l, i, o, s| kernels::conv2d::<{ kernels::linked::ALL }>(g, &l.with_prepared(&w), i, o, s))
        },
        avx512_takes_unprepared,
        None,
    );
    eprintln!("conv2d prepared large: {prepared} of {} cases with prepared weights", scaled(40));
}

/// Depthwise layers with the weight and requantization tables prepared once: the generator's
/// cases, and channel counts of whole 32-channel blocks (what the AVX-512 kernel takes).
#[test]
fn depthwise_prepared_weights_match_reference() {
    let blocks = prop_oneof![Just(32usize), Just(64), Just(96)].boxed();
    let strategy = prop_oneof![
        conv_k(true).boxed(),
        conv_k_of(true, geometry(7, 5).boxed(), blocks, Just(0usize).boxed()).boxed(),
    ];
    let prepared = prepared_property(
        "depthwise prepared",
        false,
        1500,
        strategy,
        |c, f| run_conv(c, true, f),
        conv_reference(true),
        |c, p| kernels::depthwise_conv2d_prepared_bytes_on(p, &c.g, &conv_layer(c)),
        |c, p, dst| kernels::prepare_depthwise_conv2d_on(p, &c.g, &conv_layer(c), dst),
        |_, p, w| {
            let w = w.to_vec();
            Box::new(move |g, l, i, o, s| {
                kernels::depthwise_conv2d_on(p, g, &l.with_prepared(&w), i, o, s).expect("available")
            })
        },
        |_, w| {
            let w = w.to_vec();
            Box::new(move |g, l, i, o, s| {
                kernels::depthwise_conv2d::<{ kernels::linked::ALL }>(g, &l.with_prepared(&w), i, o, s)
            })
        },
        |_| true,
        Some(neon_depthwise_takes),
    );
    eprintln!("depthwise prepared: {prepared} of {} cases with prepared tables", scaled(1500));
    if kernels::available().contains(&Path::Avx512Vnni) {
        assert!(prepared > scaled(50) as usize, "only {prepared} of {} cases had prepared tables", scaled(1500));
    }
}

#[test]
fn fully_connected_prepared_weights_match_reference() {
    // A fully connected layer as the conv-shaped closures see it: a 1×1 window.
    let run = |c: &FcK, f: &ConvDyn| {
        let mut out = garbage(bits_of(c.out.bits).packed_len(c.m), c.fill);
        let fmt = ActFormat { bits: bits_of(c.in_fmt.0), zero_point: c.in_fmt.1 };
        let wbits = bits_of(c.weight_bits);
        let bytes = kernels::fully_connected_scratch_bytes(c.n, c.m, wbits, fmt.bits);
        let mut scratch = garbage(bytes + 2, c.fill ^ 0x5c);
        let g = Window {
            in_h: 1,
            in_w: 1,
            in_c: c.n,
            out_h: 1,
            out_w: 1,
            out_c: c.m,
            kernel_h: 1,
            kernel_w: 1,
            stride_h: 1,
            stride_w: 1,
            pad_top: 0,
            pad_left: 0,
        };
        let path = f(&g, &fc_layer(c), &c.input, &mut out, &mut scratch[2..]);
        (out, path)
    };
    let prepared = prepared_property(
        "fully_connected prepared",
        true,
        2000,
        fc_k(),
        run,
        Box::new(|g, l, i, o, _| {
            reference::fully_connected(g.in_c, g.out_c, l, i, o);
            Path::Scalar
        }),
        |c, p| kernels::fully_connected_prepared_bytes_on(p, c.n, c.m, &fc_layer(c)),
        |c, p, dst| kernels::prepare_fully_connected_on(p, c.n, c.m, &fc_layer(c), dst),
        |_, p, w| {
            let w = w.to_vec();
            Box::new(move |g, l, i, o, s| {
                kernels::fully_connected_on(p, g.in_c, g.out_c, &l.with_prepared(&w), i, o, s).expect("available")
            })
        },
        |_, w| {
            let w = w.to_vec();
            Box::new(move |g, l, i, o, s| {
                kernels::fully_connected::<{ kernels::linked::ALL }>(g.in_c, g.out_c, &l.with_prepared(&w), i, o, s)
            })
        },
        avx512_fc_takes_unprepared,
        None,
    );
    if kernels::available().contains(&Path::Avx512Vnni) {
        assert!(prepared > scaled(1000) as usize, "only {prepared} of {} cases had prepared weights", scaled(2000));
    }
}

#[derive(Debug, Clone)]
struct AddK {
    n: usize,
    arena: Vec<u8>,
    a: (usize, u32, i32),
    b: (usize, u32, i32),
    out: usize,
    rq: (i32, i32, i8),
    oq: OutQ,
}

fn add_k() -> impl Strategy<Value = AddK> {
    // Layouts: disjoint, output = a, output = b, a = b = output.
    let layout = 0..4u8;
    let quant = (
        prop_oneof![3 => multiplier(), 1 => 0..(1i32 << 30)],
        prop_oneof![3 => multiplier(), 1 => 0..(1i32 << 30)],
        shift_in(-6, 4),
    );
    (1..=300usize, act_q(), act_q(), act_bits(), layout, quant, any::<u64>()).prop_flat_map(
        |(n, a_q, b_q, out_bits, layout, rq, fill)| {
            let out_bits = match layout {
                1 => a_q.bits,
                2 | 3 => b_q.bits,
                _ => out_bits,
            };
            let a_q = if layout == 3 { b_q } else { a_q };
            let out = zero_point(out_bits).prop_flat_map(move |z| out_clamp(out_bits, z));
            (vec(act_value(a_q.bits), n), vec(act_value(b_q.bits), n), out).prop_map(move |(av, bv, oq)| {
                let (pa, pb) = (pack_values(&av, a_q.bits), pack_values(&bv, b_q.bits));
                let no = bits_of(out_bits).packed_len(n);
                let (oa, ob, oo) = match layout {
                    0 => (0, pa.len() + 3, pa.len() + pb.len() + 5),
                    1 => (0, pa.len() + 1, 0),
                    2 => (0, pa.len() + 2, pa.len() + 2),
                    _ => (0, 0, 0),
                };
                let mut arena = garbage(oo.max(ob).max(oa) + no.max(pa.len()).max(pb.len()) + 7, fill);
                arena[oa..oa + pa.len()].copy_from_slice(&pa);
                if layout != 3 {
                    arena[ob..ob + pb.len()].copy_from_slice(&pb);
                }
                AddK { n, arena, a: (oa, a_q.bits, a_q.zero_point), b: (ob, b_q.bits, b_q.zero_point), out: oo, rq, oq }
            })
        },
    )
}

#[test]
fn add_paths_match_reference() {
    let run = |c: &AddK, p: Option<Path>| {
        let mut arena = c.arena.clone();
        let fa = ActFormat { bits: bits_of(c.a.1), zero_point: c.a.2 };
        let fb = ActFormat { bits: bits_of(c.b.1), zero_point: c.b.2 };
        let rq = AddRequant {
            multiplier_a: c.rq.0,
            multiplier_b: c.rq.1,
            shift: c.rq.2,
            out: ActFormat { bits: bits_of(c.oq.bits), zero_point: c.oq.zero_point },
            min: c.oq.min,
            max: c.oq.max,
        };
        match p {
            None => kernels::add::<{ kernels::linked::ALL }>(&mut arena, c.n, (c.a.0, fa), (c.b.0, fb), c.out, &rq),
            Some(p) => assert!(kernels::add_on(p, &mut arena, c.n, (c.a.0, fa), (c.b.0, fb), c.out, &rq)),
        }
        arena
    };
    let paths = paths();
    let names: Vec<_> = paths.iter().map(|&p| name(p)).collect();
    check("add", 3000, add_k(), &names, |c| {
        let want = run(c, Some(Path::Scalar));
        for &p in &paths {
            compare(name(p), &want, &run(c, p))?;
        }
        Ok(())
    });
}

#[derive(Debug, Clone)]
struct PoolK {
    g: Window,
    input: Vec<u8>,
    in_q: ActQ,
    rq: (i32, i8),
    oq: OutQ,
    fill: u64,
}

fn pool_k() -> impl Strategy<Value = PoolK> {
    let geom = prop_oneof![geometry(9, 6), global_geometry(12)];
    // Channel counts past the portable kernel's chunk of 64.
    let channels = prop_oneof![1..=9usize, 60..=140usize];
    let quant = prop_oneof![4 => (multiplier(), shift_in(-6, 4)), 1 => Just((1 << 30, 1))];
    (geom, channels, act_q(), out_q(), quant, any::<u64>()).prop_flat_map(|((h, w, geom), c, in_q, oq, rq, fill)| {
        vec(act_value(in_q.bits), h * w * c).prop_map(move |values| PoolK {
            g: window(h, w, c, c, &geom),
            input: pack_values(&values, in_q.bits),
            in_q,
            rq,
            oq,
            fill,
        })
    })
}

#[test]
fn avg_pool_paths_match_reference() {
    let run = |c: &PoolK, p: Path| {
        let n = c.g.out_h * c.g.out_w * c.g.out_c;
        let mut out = garbage(bits_of(c.oq.bits).packed_len(n), c.fill);
        let rq = PoolRequant {
            multiplier: c.rq.0,
            shift: c.rq.1,
            out: ActFormat { bits: bits_of(c.oq.bits), zero_point: c.oq.zero_point },
            min: c.oq.min,
            max: c.oq.max,
        };
        let fmt = ActFormat { bits: bits_of(c.in_q.bits), zero_point: c.in_q.zero_point };
        assert!(kernels::avg_pool_on(p, &c.g, &c.input, fmt, &rq, &mut out));
        out
    };
    let paths: Vec<Path> = kernels::available().to_vec();
    let names: Vec<_> = paths.iter().map(|&p| name(Some(p))).collect();
    check("avg_pool", 3000, pool_k(), &names, |c| {
        let want = run(c, Path::Scalar);
        for &p in &paths {
            compare(name(Some(p)), &want, &run(c, p))?;
        }
        Ok(())
    });
}

#[test]
fn the_active_path_is_reported() {
    let path = kernels::active();
    eprintln!("active kernel path: {} (available: {:?})", path.name(), kernels::available());
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::is_x86_feature_detected!("avx2");
        let vnni = avx2 && std::is_x86_feature_detected!("avxvnni");
        let avx512 = avx2
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni");
        assert_eq!(path == Path::Avx512Vnni, avx512);
        assert_eq!(path == Path::AvxVnni, vnni && !avx512);
        assert_eq!(path == Path::Avx2, avx2 && !vnni && !avx512);
    }
    #[cfg(target_arch = "aarch64")]
    assert_eq!(path == Path::NeonDot, std::arch::is_aarch64_feature_detected!("dotprod"));
    assert!(kernels::available().contains(&path));
}

/// Each available path has a kernel table that names it, and the others none: the `*_on`
/// functions run a path's table entries, so a path missing here would go untested.
#[test]
fn every_available_path_has_its_kernel_table() {
    let available = kernels::available();
    assert!(available.starts_with(&[Path::Scalar, Path::Portable]), "{available:?}");
    for p in Path::ALL {
        match kernels::table(p) {
            Some(t) => {
                assert_eq!(t.path, p);
                assert!(available.contains(&p), "{}: a table but not available", p.name());
            }
            None => assert!(!available.contains(&p), "{}: available without a table", p.name()),
        }
    }
    #[cfg(target_arch = "x86_64")]
    assert!(available.contains(&Path::Avx2) == std::is_x86_feature_detected!("avx2"));
}
