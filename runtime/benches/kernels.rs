//! Criterion: each kernel path this machine has (`kernels::available()`) on layers shaped like
//! resnet8's and dscnn-kws's (synthetic weights and activations, 8-bit and 4-bit weights), so
//! that the paths can be compared op by op:
//!
//! ```text
//! cargo bench -p hawq-runtime --features std --bench kernels
//! ```
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hawq_runtime::kernels::{self, ActFormat, AddRequant, Layer, Path, Requant, Window};
use hawq_runtime::quant::{Biases, Bits, Multipliers};

/// Deterministic bytes (a xorshift), so every path sees the same data.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn window(hw: (usize, usize), in_c: usize, out_c: usize, k: (usize, usize), stride: usize, pad: usize) -> Window {
    let out = |n: usize, kk: usize| (n + 2 * pad - kk) / stride + 1;
    Window {
        in_h: hw.0,
        in_w: hw.1,
        in_c,
        out_h: out(hw.0, k.0),
        out_w: out(hw.1, k.1),
        out_c,
        kernel_h: k.0,
        kernel_w: k.1,
        stride_h: stride,
        stride_w: stride,
        pad_top: pad,
        pad_left: pad,
    }
}

/// A layer's per-channel constants: small biases, multipliers of about 2^-8, no clamp but the
/// 8-bit range (the common case of compiled models).
struct Channels {
    bias: Vec<u8>,
    multiplier: Vec<u8>,
}

impl Channels {
    fn new(oc: usize) -> Channels {
        let bias = (0..oc).flat_map(|c| ((c as i16 * 37) % 200 - 100).to_le_bytes()).collect();
        let multiplier = (0..oc).flat_map(|c| (0x0800u16 | (c as u16 * 13 % 0x7FF)).to_le_bytes()).collect();
        Channels { bias, multiplier }
    }

    fn requant(&self) -> Requant<'_> {
        Requant {
            bias: Biases { bytes: &self.bias, exponent: 0 },
            multiplier: Multipliers { bytes: &self.multiplier, shift_base: -10 },
            out: ActFormat { bits: Bits::B8, zero_point: -128 },
            min: -128,
            max: 127,
        }
    }
}

fn paths() -> Vec<Path> {
    kernels::available().into_iter().collect()
}

fn conv(c: &mut Criterion) {
    let fmt = ActFormat { bits: Bits::B8, zero_point: -3 };
    let layers = [
        ("resnet8 3x3 16->16 32x32", window((32, 32), 16, 16, (3, 3), 1, 1)),
        ("resnet8 3x3 64->64 8x8", window((8, 8), 64, 64, (3, 3), 1, 1)),
        ("resnet8 1x1 s2 16->32 32x32", window((32, 32), 16, 32, (1, 1), 2, 0)),
        ("resnet8 3x3 3->16 32x32", window((32, 32), 3, 16, (3, 3), 1, 1)),
        ("dscnn 1x1 64->64 25x5", window((25, 5), 64, 64, (1, 1), 1, 0)),
    ];
    for (name, g) in layers {
        let mut group = c.benchmark_group(format!("conv2d {name}"));
        let k = g.kernel_h * g.kernel_w * g.in_c;
        let input = bytes(g.in_h * g.in_w * g.in_c, 1);
        let ch = Channels::new(g.out_c);
        let rq = ch.requant();
        let mut out = vec![0u8; g.out_h * g.out_w * g.out_c];
        for bits in [Bits::B8, Bits::B4] {
            let weights = bytes(g.out_c * bits.packed_len(k), 2);
            let mut scratch = vec![0u8; kernels::conv2d_scratch_bytes(&g, bits, fmt.bits)];
            for p in paths() {
                // The weights laid out once where the path does it (as the interpreter's workspace).
                let layer = Layer::new(fmt, &weights, bits, rq);
                let mut prepared = vec![0u8; kernels::conv2d_prepared_bytes_on(p, &g, &layer)];
                kernels::prepare_conv2d_on(p, &g, &layer, &mut prepared);
                let layer = layer.with_prepared(&prepared);
                let id = BenchmarkId::new(p.name(), format!("w{}", bits.get()));
                group.bench_function(id, |b| {
                    b.iter(|| kernels::conv2d_on(p, &g, &layer, &input, &mut out, &mut scratch))
                });
            }
        }
        group.finish();
    }
}

fn depthwise(c: &mut Criterion) {
    let fmt = ActFormat { bits: Bits::B8, zero_point: -3 };
    let layers = [
        ("dscnn 3x3 64 25x5", window((25, 5), 64, 64, (3, 3), 1, 1)),
        ("3x3 16 32x32", window((32, 32), 16, 16, (3, 3), 1, 1)),
        ("3x3 96 14x14", window((14, 14), 96, 96, (3, 3), 1, 1)),
        ("3x3 s2 144 28x28", window((28, 28), 144, 144, (3, 3), 2, 1)),
    ];
    for (name, g) in layers {
        let input = bytes(g.in_h * g.in_w * g.in_c, 3);
        let weights = bytes(g.out_c * 9, 4);
        let ch = Channels::new(g.out_c);
        let rq = ch.requant();
        let mut out = vec![0u8; g.out_h * g.out_w * g.out_c];
        let mut scratch = vec![0u8; kernels::depthwise_conv2d_scratch_bytes(&g, Bits::B8, fmt.bits)];
        let mut group = c.benchmark_group(format!("depthwise {name}"));
        for p in paths() {
            // The tables made once where the path does it (as the interpreter's workspace).
            let layer = Layer::new(fmt, &weights, Bits::B8, rq);
            let mut prepared = vec![0u8; kernels::depthwise_conv2d_prepared_bytes_on(p, &g, &layer)];
            kernels::prepare_depthwise_conv2d_on(p, &g, &layer, &mut prepared);
            let layer = layer.with_prepared(&prepared);
            group.bench_function(p.name(), |b| {
                b.iter(|| kernels::depthwise_conv2d_on(p, &g, &layer, &input, &mut out, &mut scratch))
            });
        }
        group.finish();
    }
}

fn add(c: &mut Criterion) {
    let n = 32 * 32 * 16;
    let arena0 = bytes(3 * n, 5);
    let fmt = ActFormat { bits: Bits::B8, zero_point: 5 };
    let rq = AddRequant {
        multiplier_a: 1_518_500_250,
        multiplier_b: 1_234_567_890,
        shift: 0,
        out: ActFormat { bits: Bits::B8, zero_point: -7 },
        min: -128,
        max: 127,
    };
    let mut group = c.benchmark_group("add resnet8 32x32x16");
    for p in paths() {
        let mut arena = arena0.clone();
        group
            .bench_function(p.name(), |b| b.iter(|| kernels::add_on(p, &mut arena, n, (0, fmt), (n, fmt), 2 * n, &rq)));
    }
    group.finish();
}

criterion_group!(benches, conv, depthwise, add);
criterion_main!(benches);
