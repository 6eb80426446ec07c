//! Single-thread latency of `Interpreter::invoke` on a compiled model, for `scripts/bench-host.sh`
//! (which alternates it with LiteRT on the same inputs):
//!
//! ```text
//! cargo run --release -p hawq-runtime --example bench_invoke -- MODEL.hq INPUTS.bin [ITERATIONS] [--layers] [--no-workspace] [--threads N]
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

use hawq_runtime::{Interpreter, Model};

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
    let [model, inputs, rest @ ..] = args.as_slice() else {
        eprintln!("usage: bench_invoke MODEL.hq INPUTS.bin [ITERATIONS] [--layers] [--no-workspace] [--threads N]");
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
    let mut pool = (threads > 1).then(|| pool(&model, threads, &inputs));
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
    let mut per_layer: Vec<(String, Vec<f64>)> = Vec::new();
    for x in inputs.iter().cycle().take(iterations) {
        it.write_input_raw(x).expect("input");
        let t0 = Instant::now();
        if layers {
            let mut last = t0;
            it.invoke_observed(|i, op, _| {
                let now = Instant::now();
                if per_layer.len() <= i {
                    per_layer.push((op.name().to_string(), Vec::new()));
                }
                per_layer[i].1.push((now - last).as_secs_f64() * 1e6);
                last = now;
            })
            .expect("invoke");
        } else {
            invoke(&mut it);
        }
        times.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    for (i, (kind, t)) in per_layer.iter_mut().enumerate() {
        t.sort_by(f64::total_cmp);
        println!("{i:>3} {kind:<24} {:>9.2} us", t[t.len() / 2]);
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
fn pool(model: &Model<'_>, threads: usize, inputs: &[&[u8]]) -> hawq_runtime::Threads {
    let mut pool = hawq_runtime::Threads::new(model, threads).expect("start the threads");
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
