//! Single-thread latency of `Interpreter::invoke` on a compiled model, for `scripts/bench-host.sh`
//! (which alternates it with LiteRT on the same inputs):
//!
//! ```text
//! cargo run --release -p hawq-runtime --example bench_invoke -- MODEL.hq INPUTS.bin [ITERATIONS] [--layers] [--no-workspace] [--threads N [--min-macs M]]
//! ```
//!
//! The interpreter is made with `Interpreter::with_workspace` (the weights prepared once, what
//! an application gets); `--no-workspace` makes it with `Interpreter::new` (laid out per call).
//! `--threads N` (N ≥ 2) times `Interpreter::invoke_threads` on a pool of N threads (the
//! `threads` feature, on for the examples), after checking it gives the one-thread bytes on every input.
//!
//! `INPUTS.bin` holds raw inputs back to back (what `write_input_raw` takes); the inputs are used
//! in turn. Prints `median_us=… mean_us=… iterations=… kernels=…` (the median of per-inference
//! wall times over the iterations, after a warm-up, and the workspace's bytes); `--layers` adds
//! each layer's median.
use std::time::Instant;

use hawq_runtime::format::{Op, Tensors};
use hawq_runtime::{Interpreter, Model};

/// Multiply-accumulates of a convolution, depthwise convolution or fully connected op (0 for
/// the others).
fn macs(op: &Op<'_>, tensors: Tensors<'_>) -> u64 {
    let elements = |t: u16| tensors.get(t as usize).map_or(0, |d| d.elements() as u64);
    let channels = |t: u16| tensors.get(t as usize).map_or(0, |d| d.shape[3] as u64);
    match op {
        Op::Conv2d(p) => elements(p.output) * p.kernel_h as u64 * p.kernel_w as u64 * channels(p.input),
        Op::DepthwiseConv2d(p) => elements(p.output) * p.kernel_h as u64 * p.kernel_w as u64,
        Op::FullyConnected(p) => elements(p.input) * elements(p.output),
        _ => 0,
    }
}

/// 512-bit VPDPBUSDs per microsecond on this core now (the best of five runs of 6 M, 12
/// independent ones per turn); `None` without AVX-512 VNNI.
#[allow(unsafe_code)] // the instruction itself, in a loop: what the floor is made of
fn vpdpbusd_per_us() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vnni")) {
            return None;
        }
        #[target_feature(enable = "avx512f,avx512vnni")]
        fn turns(n: u64) {
            // SAFETY: the CPU has AVX-512 F and VNNI (checked by the caller); only the named
            // vector registers and the counter are written.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "vpdpbusd zmm0, zmm12, zmm13", "vpdpbusd zmm1, zmm12, zmm13", "vpdpbusd zmm2, zmm12, zmm13",
                    "vpdpbusd zmm3, zmm12, zmm13", "vpdpbusd zmm4, zmm12, zmm13", "vpdpbusd zmm5, zmm12, zmm13",
                    "vpdpbusd zmm6, zmm12, zmm13", "vpdpbusd zmm7, zmm12, zmm13", "vpdpbusd zmm8, zmm12, zmm13",
                    "vpdpbusd zmm9, zmm12, zmm13", "vpdpbusd zmm10, zmm12, zmm13", "vpdpbusd zmm11, zmm12, zmm13",
                    "dec {n}",
                    "jnz 2b",
                    n = inout(reg) n => _,
                    out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _,
                    out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                    out("zmm12") _, out("zmm13") _,
                    options(nostack),
                );
            }
        }
        let mut best = 0f64;
        for _ in 0..5 {
            let n = 500_000u64;
            let t = Instant::now();
            // SAFETY: AVX-512 F and VNNI checked above.
            unsafe { turns(n) };
            best = best.max((12 * n) as f64 / (t.elapsed().as_secs_f64() * 1e6));
        }
        Some(best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let layers = args.iter().any(|a| a == "--layers");
    let workspace = !args.iter().any(|a| a == "--no-workspace");
    args.retain(|a| a != "--layers" && a != "--no-workspace");
    let threads: usize = match args.iter().position(|a| a == "--threads") {
        Some(i) if i + 1 < args.len() => {
            let n = args.remove(i + 1).parse().expect("--threads N");
            args.remove(i);
            n
        }
        Some(_) => panic!("--threads needs a number"),
        None => 1,
    };
    // `--min-macs N`: the smallest layer `invoke_threads` splits (default: the runtime's).
    let min_macs: Option<u64> = match args.iter().position(|a| a == "--min-macs") {
        Some(i) if i + 1 < args.len() => {
            let n = args.remove(i + 1).parse().expect("--min-macs N");
            args.remove(i);
            Some(n)
        }
        Some(_) => panic!("--min-macs needs a number"),
        None => None,
    };
    let [model, inputs, rest @ ..] = args.as_slice() else {
        eprintln!("usage: bench_invoke MODEL.hq INPUTS.bin [ITERATIONS] [--layers] [--no-workspace] [--threads N [--min-macs M]]");
        std::process::exit(2);
    };
    assert!(!(layers && threads > 1), "--layers times one thread");
    let iterations: usize = rest.first().map_or(2000, |s| s.parse().expect("ITERATIONS"));
    let blob = std::fs::read(model).expect("read the model");
    let raw = std::fs::read(inputs).expect("read the inputs");
    let model = Model::from_bytes(&blob).expect("load the model");
    let size = model.input().elements() * model.raw_input().element_bytes();
    assert!(
        size > 0 && raw.len() % size == 0 && !raw.is_empty(),
        "inputs: not a whole number of inputs of {size} bytes"
    );
    let mut arena = vec![0u8; model.arena_bytes()];
    // Every input once with the workspace and without: the same output bytes.
    let inputs: Vec<&[u8]> = raw.chunks_exact(size).collect();
    {
        let (mut a, mut b) = (vec![0u8; model.arena_bytes()], vec![0u8; model.arena_bytes()]);
        let mut w = vec![0u8; model.host_workspace_bytes()];
        let mut with = Interpreter::with_workspace(&model, &mut a, &mut w).expect("arena and workspace");
        let mut without = Interpreter::new(&model, &mut b).expect("arena");
        for x in &inputs {
            with.write_input_raw(x).expect("input");
            without.write_input_raw(x).expect("input");
            with.invoke().expect("invoke");
            without.invoke().expect("invoke");
            assert_eq!(with.output_bytes(), without.output_bytes(), "the workspace changed an output");
        }
    }
    let mut pool = (threads > 1).then(|| pool(&model, threads, min_macs, &inputs));
    let mut ws = vec![0u8; if workspace { model.host_workspace_bytes() } else { 0 }];
    let ws_bytes = ws.len();
    let mut it = if workspace {
        Interpreter::with_workspace(&model, &mut arena, &mut ws).expect("arena and workspace")
    } else {
        Interpreter::new(&model, &mut arena).expect("arena")
    };
    let mut invoke = |it: &mut Interpreter| match pool.as_mut() {
        Some(p) => it.invoke_threads(p).expect("invoke"),
        None => it.invoke().expect("invoke"),
    };
    for x in inputs.iter().cycle().take(200) {
        it.write_input_raw(x).expect("input");
        invoke(&mut it);
    }
    let mut times = Vec::with_capacity(iterations);
    let mut per_layer: Vec<(String, u64, Vec<f64>)> = Vec::new();
    let tensors = model.tensors();
    for x in inputs.iter().cycle().take(iterations) {
        it.write_input_raw(x).expect("input");
        let t0 = Instant::now();
        if layers {
            let mut last = t0;
            it.invoke_observed(|i, op, _| {
                let now = Instant::now();
                if per_layer.len() <= i {
                    per_layer.push((op.name().to_string(), macs(op, tensors), Vec::new()));
                }
                per_layer[i].2.push((now - last).as_secs_f64() * 1e6);
                last = now;
            })
            .expect("invoke");
        } else {
            invoke(&mut it);
        }
        times.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    if layers {
        // The floor of a layer: its multiply-accumulates at 64 per VPDPBUSD (a 512-bit register
        // of 16 sums of 4 byte products), at the rate this machine issues them now.
        let rate = vpdpbusd_per_us();
        match rate {
            Some(r) => println!("VPDPBUSD (512-bit) measured at {r:.0} per µs: floor = MACs / 64 / that"),
            None => println!("no AVX-512 VNNI: no floor column"),
        }
        println!("  # op                          median     MACs   floor  ×floor");
        for (i, (kind, macs, t)) in per_layer.iter_mut().enumerate() {
            t.sort_by(f64::total_cmp);
            let median = t[t.len() / 2];
            match rate.filter(|_| *macs > 0) {
                Some(r) => {
                    let floor = *macs as f64 / 64.0 / r;
                    println!("{i:>3} {kind:<24} {median:>9.2} us {macs:>8} {floor:>6.2} us {:>6.2}", median / floor)
                }
                None => println!("{i:>3} {kind:<24} {median:>9.2} us"),
            }
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "median_us={median:.2} mean_us={mean:.2} iterations={iterations} workspace_bytes={ws_bytes} threads={threads} kernels={}",
        hawq_runtime::kernels::active().name()
    );
}

/// A pool of `threads`, checked against one thread on every input (outputs byte for byte).
fn pool(model: &Model<'_>, threads: usize, min_macs: Option<u64>, inputs: &[&[u8]]) -> hawq_runtime::Threads {
    let mut pool = hawq_runtime::Threads::new(model, threads).expect("start the threads");
    if let Some(m) = min_macs {
        pool = pool.min_macs(m);
    }
    let (mut a, mut b) = (vec![0u8; model.arena_bytes()], vec![0u8; model.arena_bytes()]);
    let mut w = vec![0u8; model.host_workspace_bytes()];
    let mut many = Interpreter::with_workspace(model, &mut a, &mut w).expect("arena and workspace");
    let mut one = Interpreter::new(model, &mut b).expect("arena");
    for x in inputs {
        many.write_input_raw(x).expect("input");
        one.write_input_raw(x).expect("input");
        many.invoke_threads(&mut pool).expect("invoke");
        one.invoke().expect("invoke");
        assert_eq!(many.output_bytes(), one.output_bytes(), "{threads} threads changed an output");
    }
    pool
}
