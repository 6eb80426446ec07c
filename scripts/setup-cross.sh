#!/usr/bin/env bash
# Installs what the QEMU targets need on a fresh machine: the rustup cross targets and the
# Debian packages for QEMU (qemu-system-arm also has qemu-system-aarch64), the AArch64 linker/libc, and the bare-metal Arm C compiler (the C
# example of examples/c, tests/tests/c_api.rs). Idempotent and quiet; fails loudly.
# apt is skipped when every binary it would provide is already on PATH.
set -euo pipefail

TARGETS=(thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf riscv32imac-unknown-none-elf riscv32imc-unknown-none-elf
         aarch64-unknown-linux-gnu aarch64-unknown-none)
PACKAGES=(qemu-system-arm qemu-system-misc qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-none-eabi)
BINARIES=(qemu-system-arm qemu-system-aarch64 qemu-system-riscv32 qemu-aarch64 aarch64-linux-gnu-gcc arm-none-eabi-gcc arm-none-eabi-nm)

fail() { echo "setup-cross: FAIL: $*" >&2; exit 1; }

command -v rustup >/dev/null || fail "rustup is not installed"
installed=$(rustup target list --installed)
missing=()
for t in "${TARGETS[@]}"; do
  grep -qx "$t" <<<"$installed" || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
  rustup target add "${missing[@]}" >/dev/null 2>&1 || fail "rustup target add ${missing[*]}"
fi

need_apt=0
for b in "${BINARIES[@]}"; do
  command -v "$b" >/dev/null || need_apt=1
done
[ -d /usr/aarch64-linux-gnu/lib ] || need_apt=1
if [ "$need_apt" = 1 ]; then
  command -v apt-get >/dev/null || fail "apt-get is not available; install ${PACKAGES[*]} by hand"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  log=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    fail "apt-get install ${PACKAGES[*]}"
  fi
  rm -f "$log"
fi
for b in "${BINARIES[@]}"; do
  command -v "$b" >/dev/null || fail "$b is still missing after the install"
done
command -v timeout >/dev/null || fail "timeout (coreutils) is missing"
