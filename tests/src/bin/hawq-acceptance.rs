//! The HAWQ-V2 acceptance experiment on the real models (not a test: it prints measurements).
//!
//! For resnet8-cifar10 and dscnn-kws, at a weight budget of 0.55× the uniform 8-bit model: the
//! HAWQ allocation against uniform 4-bit, five random allocations of about the same size, and
//! the reversed-sensitivity allocation; the allocation from the trace form of Ω
//! (`Σ_c Tr(H_c)/n_c · ‖ΔW_c‖²`) beside the one from the exact `ΔWᵀHΔW` it estimates; then an
//! arena budget that forces 4-bit activations.
//! Every accuracy is measured with the bit-exact integer runtime.
//!
//! `cargo run --release -p hawq-e2e --bin hawq-acceptance [-- --json]`

use anyhow::{anyhow, Result};
use hawq_compiler::allocate::{
    allocate, apply_weights, frontier, select, Budget, LayerOptions, Sensitivity, WEIGHT_BITS,
};
use hawq_compiler::autodiff::TraceOptions;
use hawq_compiler::data::Dataset;
use hawq_compiler::eval::{evaluate, Runner};
use hawq_compiler::import::import;
use hawq_compiler::pipeline::{compile, compile_allocation, prepare, Prepared};
use hawq_compiler::quantize::BitConfig;
use hawq_compiler::sensitivity::{measure, LossChoice};
use hawq_e2e::{fixtures, FIXTURES};

struct Row {
    model: &'static str,
    config: String,
    weight_bytes: usize,
    arena_bytes: usize,
    value: f64,
    bits: Vec<u8>,
}

fn measure_config(
    p: &Prepared,
    eval: &Dataset,
    f: &hawq_e2e::Fixture,
    bits: &BitConfig,
) -> Result<(usize, usize, f64)> {
    let compiled = compile(p, bits)?;
    let model = hawq_runtime::Model::from_bytes(&compiled.blob).map_err(|e| anyhow!("{e}"))?;
    let value = evaluate(&Runner::Quantized { model }, eval, f.metric, 128, &indicatif::ProgressBar::hidden())?;
    Ok((compiled.weight_bytes, compiled.arena_bytes, value))
}

/// A deterministic xorshift generator: the random baselines must be reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn bytes_of(layers: &[LayerOptions], bits: &[u8]) -> usize {
    layers.iter().zip(bits).map(|(l, &b)| l.bytes[WEIGHT_BITS.iter().position(|&x| x == b).unwrap_or(2)]).sum()
}

fn main() -> Result<()> {
    let json = std::env::args().any(|a| a == "--json");
    let root = fixtures();
    let mut rows = Vec::new();
    for f in FIXTURES.iter().filter(|f| f.name == "resnet8-cifar10" || f.name == "dscnn-kws") {
        let graph = import(&root.join(f.model))?;
        let calib = Dataset::load(&root.join(f.calib))?;
        let eval = Dataset::load(&root.join(f.eval))?;
        let p = prepare(graph, &calib, f.transform)?;
        let m = measure(&p, &calib, LossChoice::Auto, &TraceOptions::default())?;
        let perturbation = |n: usize, b: u8| p.weight_perturbation(n, b);
        let mut push = |config: String, bits: &BitConfig, layers: &[LayerOptions]| -> Result<()> {
            let (w, a, v) = measure_config(&p, &eval, f, bits)?;
            let per_layer = layers.iter().map(|l| bits.weight_bits[l.node]).collect();
            eprintln!("{:<16} {:<24} {v:.4}  weights {w:>6}  arena {a:>6}", f.name, config);
            rows.push(Row { model: f.name, config, weight_bytes: w, arena_bytes: a, value: v, bits: per_layer });
            Ok(())
        };
        let int8 = BitConfig::uniform(&p.graph, 8, 8);
        let int8_bytes = compile(&p, &int8)?.weight_bytes;
        let budget = (0.55 * int8_bytes as f64).floor() as usize;
        let hawq = allocate(
            &p.graph,
            &m.sensitivity,
            &p.calibration,
            p.raw,
            &perturbation,
            Budget { weight_bytes: Some(budget), ..Budget::default() },
            &[],
        )?;
        let layers = hawq.layers.clone();
        push("uniform int8".into(), &int8, &layers)?;
        push("uniform w4".into(), &BitConfig::uniform(&p.graph, 4, 8), &layers)?;
        push(format!("hawq ≤ {budget} B"), &hawq.bits, &layers)?;
        // Without the exact quadratic forms, Ω falls back to the per-channel trace form.
        let traces_only = Sensitivity { quadratic: Vec::new(), ..m.sensitivity.clone() };
        let by_traces = allocate(
            &p.graph,
            &traces_only,
            &p.calibration,
            p.raw,
            &perturbation,
            Budget { weight_bytes: Some(budget), ..Budget::default() },
            &[],
        )?;
        push("hawq, trace Ω".into(), &by_traces.bits, &layers)?;
        let hawq_size = bytes_of(&layers, &hawq.frontier[hawq.chosen.unwrap_or(0)].bits);

        // Reversed sensitivity: the layer ranked most sensitive gets the least sensitive's
        // sensitivity. A layer's sensitivity is the curvature along its own 2-bit perturbation,
        // Ω_i(2)/‖Q_2(W_i) − W_i‖² (for the trace form of Ω, about its average trace Tr(H_i)/n_i).
        let sensitivity: Vec<f64> = layers
            .iter()
            .map(|l| {
                let k = WEIGHT_BITS.iter().position(|&b| b == 2).unwrap_or(0);
                let norm: f64 = perturbation(l.node, 2).iter().sum();
                l.omega[k] / norm.max(f64::MIN_POSITIVE)
            })
            .collect();
        let mut order: Vec<usize> = (0..layers.len()).collect();
        order.sort_by(|&a, &b| sensitivity[a].total_cmp(&sensitivity[b]));
        let mut reversed = layers.clone();
        for (rank, &i) in order.iter().enumerate() {
            let mirror = order[order.len() - 1 - rank];
            let scale = sensitivity[mirror] / sensitivity[i].max(f64::MIN_POSITIVE);
            reversed[i].omega = layers[i].omega.iter().map(|o| o * scale).collect();
        }
        let rev_front = frontier(&reversed, |l, b| l.bytes[WEIGHT_BITS.iter().position(|&x| x == b).unwrap_or(2)]);
        let rev = select(&rev_front, budget).ok_or_else(|| anyhow!("no reversed configuration fits"))?;
        push("reversed sensitivity".into(), &apply_weights(&layers, rev, int8.clone()), &layers)?;

        // Five random allocations within 3% below the HAWQ allocation's size.
        let mut rng = Rng(0x5EED_0000 + f.name.len() as u64);
        let mut found = 0;
        for _ in 0..2_000_000 {
            if found == 5 {
                break;
            }
            let bits: Vec<u8> = layers.iter().map(|_| WEIGHT_BITS[(rng.next() % 3) as usize]).collect();
            let size = bytes_of(&layers, &bits);
            if size <= budget && size as f64 >= 0.97 * hawq_size as f64 {
                let point = hawq_compiler::allocate::FrontierPoint { size, omega: 0.0, bits };
                push(format!("random #{found}"), &apply_weights(&layers, &point, int8.clone()), &layers)?;
                found += 1;
            }
        }

        // An arena budget of 75% of the int8 arena forces some activations to 4 bits.
        let arena8 = compile(&p, &int8)?.arena_bytes;
        let arena_budget = arena8 * 3 / 4;
        let tight = allocate(
            &p.graph,
            &m.sensitivity,
            &p.calibration,
            p.raw,
            &perturbation,
            Budget { arena_bytes: Some(arena_budget), ..Budget::default() },
            &[],
        )?;
        let (_, bits) = compile_allocation(&p, &tight, Some(arena_budget))?;
        let fours = bits.act_bits.iter().filter(|&&b| b == 4).count();
        push(format!("int8 w, arena ≤ {arena_budget} B ({fours} act@4)"), &bits, &layers)?;
        eprintln!("{}: traces {:?} in {:.2} s", f.name, m.traces.estimator, m.traces.seconds);
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"model": r.model, "config": r.config, "weight_bytes": r.weight_bytes,
                    "arena_bytes": r.arena_bytes, "value": r.value, "bits": r.bits})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("| model | configuration | weight bytes | arena bytes | accuracy | weight bits per layer |");
        println!("|---|---|---:|---:|---:|---|");
        for r in &rows {
            let bits: Vec<String> = r.bits.iter().map(|b| b.to_string()).collect();
            println!(
                "| {} | {} | {} | {} | {:.2}% | {} |",
                r.model,
                r.config,
                r.weight_bytes,
                r.arena_bytes,
                100.0 * r.value,
                bits.join(" ")
            );
        }
    }
    Ok(())
}
