#!/usr/bin/env bash
# Instructions per MAC of wide 3×3 convolutions (128 and 256 input channels) on QEMU's Cortex-M4,
# at 8- and 4-bit weights: a random-weight model (8×8 input, 3→128→128→256→256, ReLU, global
# average pool, linear) built with the onnx package, compiled and run with `cargo xtask run`,
# which also checks the outputs against the host runtime. Needs numpy, onnx and onnxruntime
# (scripts/requirements.txt; not part of the test suite).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import sys, numpy as np, onnx, onnxruntime as ort
from onnx import helper as h, numpy_helper as nh, TensorProto as TP
out = sys.argv[1]
rng = np.random.default_rng(0)
inits, nodes, x = [], [], "x"
for i, (cin, cout) in enumerate([(3, 128), (128, 128), (128, 256), (256, 256)]):
    bound = 1 / np.sqrt(cin * 9)  # PyTorch's default Conv2d initialisation
    inits += [nh.from_array(rng.uniform(-bound, bound, (cout, cin, 3, 3)).astype(np.float32), f"w{i}"),
              nh.from_array(rng.uniform(-bound, bound, cout).astype(np.float32), f"b{i}")]
    nodes += [h.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
              h.make_node("Relu", [f"c{i}"], [f"r{i}"])]
    x = f"r{i}"
bound = 1 / np.sqrt(256)
inits += [nh.from_array(rng.uniform(-bound, bound, (10, 256)).astype(np.float32), "fw"),
          nh.from_array(rng.uniform(-bound, bound, 10).astype(np.float32), "fb")]
nodes += [h.make_node("GlobalAveragePool", [x], ["g"]), h.make_node("Flatten", ["g"], ["f"]),
          h.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
graph = h.make_graph(nodes, "wide", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 10])], inits)
model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
model.ir_version = 8
onnx.save(model, f"{out}/wide.onnx")
xs = rng.standard_normal((64, 3, 8, 8)).astype(np.float32)
sess = ort.InferenceSession(f"{out}/wide.onnx")
ys = np.array([sess.run(None, {"x": xs[i:i + 1]})[0].argmax() for i in range(len(xs))])
np.savez(f"{out}/calib.npz", x=xs, y=ys)
PY
# Multiply-accumulates of the four convolutions: 8·8 pixels × 9 taps × in × out.
macs=(0 $((64 * 9 * 128 * 128)) $((64 * 9 * 128 * 256)) $((64 * 9 * 256 * 256)))
printf '| layer | input channels | weights | instructions | instructions / MAC |\n|---|---:|---:|---:|---:|\n'
for bits in 8 4; do
  cargo run -q --release -p hawq-compiler -- compile "$work/wide.onnx" --calib "$work/calib.npz" \
    --bits "$bits" --output "$work/w$bits.hq" >/dev/null
  report=$(cargo xtask run --target cortex-m4 --model "$work/w$bits.hq" --data "$work/calib.npz" --inputs 1)
  grep -q "outputs identical to the host runtime: yes" <<<"$report" || { echo "$report"; exit 1; }
  for l in 1 2 3; do
    n=$(awk -v l="$l" '$1 == "layer" && $2 == l { print $4 }' <<<"$report")
    cin=$([ "$l" = 3 ] && echo 256 || echo 128)
    printf '| %d | %d | %d-bit | %s | %s |\n' "$l" "$cin" "$bits" "$n" "$(awk -v n="$n" -v m="${macs[$l]}" 'BEGIN { printf "%.3f", n / m }')"
  done
done
