#!/usr/bin/env bash
# Host latency: the hawq runtime against LiteRT (XNNPACK) on the fixtures' resnet8 and dscnn int8,
# the same inputs and thread count, runs interleaved (this kind of VM switches between a fast and
# a slow state: compare within a round), printing each round's medians and the ratio.
#
#   scripts/bench-host.sh [ROUNDS] [ITERATIONS] [THREADS]   # default 5 rounds of 2000, 1 thread
#   scripts/bench-host.sh --models-only          # only compile the models (for `cargo bench`)
#
# Needs ../shared/fixtures (or HAWQ_FIXTURES) and PyPI (ai-edge-litert in target/bench-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
FIX="${HAWQ_FIXTURES:-$(cd .. && pwd)/shared/fixtures}"
[ -f "$FIX/README.md" ] || { echo "FAIL: no fixtures at $FIX (set HAWQ_FIXTURES)" >&2; exit 1; }
OUT=target/bench-models
mkdir -p "$OUT"

cargo build --release --quiet -p hawq-compiler --bin hawq
cargo build --release --quiet -p hawq-runtime --example bench_invoke
HAWQ=target/release/hawq
BENCH=target/release/examples/bench_invoke

# name, fixture folder, compiler transform flags, scale, offset, input kind
MODELS=(
  "resnet8|resnet8-cifar10||1|0|pixels"
  "dscnn|dscnn-kws|--input-scale 0.5847 --input-offset=-48.5301|0.5847|-48.5301|mfcc"
)

VENV=target/bench-venv
if [ "${1:-}" != "--models-only" ] && ! "$VENV/bin/python" -c "import ai_edge_litert" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q ai-edge-litert numpy
fi
PY="$VENV/bin/python"
[ -x "$PY" ] || PY=python3

for m in "${MODELS[@]}"; do
  IFS='|' read -r name dir flags scale offset kind <<<"$m"
  # shellcheck disable=SC2086
  "$HAWQ" compile "$FIX/$dir/model.onnx" --calib "$FIX/$dir/calib.npz" $flags -o "$OUT/$name.hq" >/dev/null
  # The first 50 evaluation inputs, raw bytes back to back (NHWC, the fixtures' dtype).
  "$PY" -c "import numpy as np, sys; np.load(sys.argv[1])['x'][:50].tofile(sys.argv[2])" "$FIX/$dir/eval.npz" "$OUT/$name.bin"
done
[ "${1:-}" = "--models-only" ] && { echo "models in $OUT"; exit 0; }

ROUNDS="${1:-5}"
ITERS="${2:-2000}"
THREADS="${3:-1}"
echo "$THREADS thread(s)"
echo
echo "| model | round | hawq median µs | LiteRT XNNPACK median µs | hawq / LiteRT |"
echo "|---|---:|---:|---:|---:|"
for m in "${MODELS[@]}"; do
  IFS='|' read -r name dir flags scale offset kind <<<"$m"
  ratios=()
  for r in $(seq 1 "$ROUNDS"); do
    ours=$("$BENCH" "$OUT/$name.hq" "$OUT/$name.bin" "$ITERS" --threads "$THREADS" | sed -n 's/.*median_us=\([0-9.]*\).*/\1/p')
    theirs=$("$PY" scripts/bench_litert.py "$FIX/$dir/reference_int8.tflite" "$OUT/$name.bin" "$scale" "$offset" "$ITERS" "$kind" "$THREADS" 2>/dev/null \
      | sed -n 's/.*median_us=\([0-9.]*\).*/\1/p')
    ratio=$(python3 -c "print(f'{$ours / $theirs:.2f}')")
    ratios+=("$ratio")
    echo "| $name | $r | $ours | $theirs | $ratio |"
  done
  echo "| $name | median of rounds | | | $(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p") |"
done
echo
echo "hawq kernels: $("$BENCH" "$OUT/resnet8.hq" "$OUT/resnet8.bin" 10 | sed -n 's/.*kernels=\(.*\)/\1/p')"
