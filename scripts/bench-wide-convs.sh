#!/usr/bin/env bash
# Instructions per MAC of wide 3×3 convolutions (128 and 256 input channels) on QEMU's Cortex-M4,
# at 8- and 4-bit weights: a random-weight PyTorch model (8×8 input, 3→128→128→256→256, ReLU,
# global average pool, linear), compiled and run with `cargo xtask run`, which also checks the
# outputs against the host runtime. Needs torch (not part of the test suite).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import sys, numpy as np, torch
out = sys.argv[1]
torch.manual_seed(0)
class Wide(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.convs = torch.nn.ModuleList(torch.nn.Conv2d(i, o, 3, padding=1) for i, o in [(3, 128), (128, 128), (128, 256), (256, 256)])
        s.fc = torch.nn.Linear(256, 10)
    def forward(s, x):
        for c in s.convs:
            x = torch.relu(c(x))
        return s.fc(x.mean((2, 3)))
m = Wide().eval()
x = torch.randn(64, 3, 8, 8)
torch.onnx.export(m, x[:1], f"{out}/wide.onnx", opset_version=13, input_names=["x"], output_names=["y"], dynamo=False)
np.savez(f"{out}/calib.npz", x=x.numpy(), y=m(x).argmax(1).numpy())
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
