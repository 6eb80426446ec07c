#!/usr/bin/env bash
# Every zoo model (examples/zoo) compiled with every weight at 8 and at 4 bits, and with the
# bits HAWQ-V2 chooses at 0.55× the 8-bit weight bytes (`--budget-kib`, what `cargo xtask bench`
# calls `hawq`), each run once on QEMU's Cortex-M4 with the DSP kernels: instructions per
# inference and the change from 8 bits, each output checked against the host runtime (a
# difference stops the script). The README's "zoo at 4 and 8 bits" table is this
# script's output.
set -euo pipefail
cd "$(dirname "$0")/.."
zoo=examples/zoo
out=target/zoo-bits
mkdir -p "$out"
cargo build -q --release --bin hawq
echo "| zoo model | 8-bit weights | 4-bit weights | 4 vs 8 | HAWQ at 0.55× | HAWQ vs 8 |"
echo "|---|---:|---:|---:|---:|---:|"
for dir in "$zoo"/*/; do
  name=$(basename "$dir")
  # TorchScript's export of the PyTorch models, tf2onnx's at opset 13 of the Keras ones.
  onnx="$dir/model-ts.onnx"
  [ -f "$onnx" ] || onnx="$dir/model-opset13.onnx"
  [ -f "$onnx" ] || continue
  counts=()
  for bits in 8 4 hawq; do
    if [ "$bits" = hawq ]; then
      weights=$(grep -o 'weights [0-9]* bytes' "$out/$name-8.log" | head -1 | cut -d' ' -f2)
      flags=(--budget-kib "$(python3 -c "print($weights * 0.55 / 1024)")")
    else
      flags=(--bits "$bits")
    fi
    target/release/hawq compile "$onnx" --calib "$zoo/calib.npz" --input-scale 0.0625 \
      "${flags[@]}" --allow-low-fidelity --output "$out/$name-$bits.hq" > "$out/$name-$bits.log" 2>&1
    run=$(cargo xtask run --target cortex-m4 --model "$out/$name-$bits.hq" --data "$zoo/eval.npz" --inputs 1 2>&1)
    # A count is only worth printing for outputs that are the host runtime's, byte for byte.
    if ! grep -q 'outputs identical to the host runtime: yes' <<<"$run"; then
      echo "$name at $bits: the firmware's outputs differ from the host runtime's" >&2
      exit 1
    fi
    n=$(grep -o 'instructions=[0-9]*' <<<"$run" | head -1 | cut -d= -f2)
    counts+=("$n")
  done
  python3 -c 'import sys; m, a, b, h = sys.argv[1], *map(int, sys.argv[2:]); print(f"| {m} | {a:,} | {b:,} | {(b - a) * 100 / a:+.1f}% | {h:,} | {(h - a) * 100 / a:+.1f}% |")' \
    "$name" "${counts[@]}"
done
