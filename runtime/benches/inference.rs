//! Criterion: single-thread latency per inference (`Interpreter::invoke`) of compiled models,
//! on the machine's kernel path (`kernels::active()`), with the weights prepared once in a
//! workspace (`Interpreter::with_workspace`); `benches/kernels.rs` compares the paths
//! op by op.
//!
//! The models are `.hq` files compiled by the `hawq` compiler with their raw inputs beside them:
//! `scripts/bench-host.sh` writes `target/bench-models/{resnet8,dscnn}.hq` and `.bin` (or set
//! `HAWQ_BENCH_MODELS=name:model.hq:inputs.bin,...`). Without them, nothing is measured:
//!
//! ```text
//! scripts/bench-host.sh --models-only && cargo bench -p hawq-runtime --bench inference
//! ```
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use hawq_runtime::{Interpreter, Model};

fn models() -> Vec<(String, PathBuf, PathBuf)> {
    if let Ok(list) = std::env::var("HAWQ_BENCH_MODELS") {
        return list
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(':');
                Some((parts.next()?.to_string(), parts.next()?.into(), parts.next()?.into()))
            })
            .collect();
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-models");
    ["resnet8", "dscnn"]
        .iter()
        .map(|n| (n.to_string(), dir.join(format!("{n}.hq")), dir.join(format!("{n}.bin"))))
        .filter(|(_, m, i)| m.is_file() && i.is_file())
        .collect()
}

fn inference(c: &mut Criterion) {
    let found = models();
    if found.is_empty() {
        eprintln!("no models: run scripts/bench-host.sh --models-only first (see the file's doc)");
    }
    for (name, model, inputs) in found {
        let blob = std::fs::read(&model).expect("model");
        let raw = std::fs::read(&inputs).expect("inputs");
        let model = Model::from_bytes(&blob).expect("load");
        let size = model.input().elements() * model.raw_input().element_bytes();
        let mut arena = vec![0u8; model.arena_bytes()];
        // The weights prepared once, as an application does (`Interpreter::with_workspace`).
        let mut workspace = vec![0u8; model.host_workspace_bytes()];
        let mut it = Interpreter::with_workspace(&model, &mut arena, &mut workspace).expect("arena and workspace");
        it.write_input_raw(&raw[..size]).expect("input");
        let path = hawq_runtime::kernels::active().name();
        c.bench_function(&format!("{name} int8 invoke ({path})"), |b| b.iter(|| it.invoke().expect("invoke")));
    }
}

criterion_group!(benches, inference);
criterion_main!(benches);
