#!/usr/bin/env bash
# Proves the runtime does not link `alloc`: a static library holding all of it, built for a
# Cortex-M target without a global allocator, must contain no object file of the alloc crate.
# The C interface's static library (runtime-c, built as the README says) is checked the same way.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
TARGETS=(thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imac-unknown-none-elf)
cd "$root/targets/no-alloc-check"
for target in "${TARGETS[@]}"; do
  cargo build --release --quiet --target "$target"
  lib="${CARGO_TARGET_DIR:-target}/$target/release/libhawq_no_alloc_check.a"
  members=$(ar t "$lib")
  if grep -q '^alloc-' <<<"$members"; then
    echo "FAIL: $lib contains the alloc crate:" >&2
    grep '^alloc-' <<<"$members" >&2
    exit 1
  fi
  grep -q '^core-' <<<"$members" || { echo "FAIL: $lib lists no core objects; the check is not looking at the right thing" >&2; exit 1; }
  echo "no alloc in $target ($(grep -c . <<<"$members") objects, core and compiler_builtins only besides the runtime)"
done

cd "$root"
for target in "${TARGETS[@]}"; do
  cargo rustc -p hawq-runtime-c --lib --profile release-c --locked --quiet --target "$target" --crate-type staticlib
  lib="${CARGO_TARGET_DIR:-target}/$target/release-c/libhawq_runtime_c.a"
  members=$(ar t "$lib")
  if grep -q '^alloc-' <<<"$members"; then
    echo "FAIL: $lib contains the alloc crate:" >&2
    grep '^alloc-' <<<"$members" >&2
    exit 1
  fi
  grep -q '^hawq_runtime_c-' <<<"$members" || { echo "FAIL: $lib lists no hawq_runtime_c object" >&2; exit 1; }
  echo "libhawq_runtime_c.a for $target: no alloc ($(stat -c %s "$lib") bytes before linking)"
done
