#!/usr/bin/env bash
# The project's test suite: everything that needs only this repository (no ../shared).
# Installs what it needs on a fresh machine (rustup components and targets) and fails loudly,
# never skipping, when something cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: components and cross targets"
rustup component add rustfmt clippy >/dev/null
CROSS_TARGETS=(thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imac-unknown-none-elf)
rustup target add "${CROSS_TARGETS[@]}" >/dev/null
scripts/setup-cross.sh  # QEMU, cross linkers and the remaining targets, for the firmware tests

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The runtime's ISA-specific kernels: Cortex-M4 DSP, AArch64 NEON/SDOT (run-time detection on
# Linux, compile-time on bare metal), and the portable targets.
for t in thumbv7em-none-eabihf aarch64-unknown-linux-gnu aarch64-unknown-none thumbv6m-none-eabi riscv32imac-unknown-none-elf; do
  cargo clippy -p hawq-runtime --locked --target "$t" -- -D warnings
done
# The C interface's static library on the microcontrollers (its panic handler is bare-metal only).
for t in "${CROSS_TARGETS[@]}"; do
  cargo clippy -p hawq-runtime-c --lib --locked --target "$t" -- -D warnings
done

# The API documentation as docs.rs would build it: no broken or private links.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "unit, property and integration tests"
cargo test --workspace --exclude hawq-e2e --locked

step "the kernel cases on the AArch64 paths (NEON, SDOT), under qemu-user"
# The same cases as the QEMU kernel-check firmware and the host test above, on the paths an
# x86-64 host does not have.
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max" \
  cargo run --release --locked -p hawq-kernel-cases --features std --example all_paths \
  --target aarch64-unknown-linux-gnu

step "runtime builds for microcontrollers, without alloc; the C static library for each"
for t in "${CROSS_TARGETS[@]}"; do
  cargo build -p hawq-runtime --release --locked --target "$t"
done
scripts/check-no-alloc.sh  # also builds libhawq_runtime_c.a for each target (README, "From C")

echo
echo "all tests passed"
