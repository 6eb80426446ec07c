#!/usr/bin/env bash
# Proves the runtime does not link `alloc`: a static library holding all of it, built for a
# Cortex-M target without a global allocator, must contain no object file of the alloc crate.
set -euo pipefail
cd "$(dirname "$0")/../targets/no-alloc-check"
for target in thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imac-unknown-none-elf; do
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
