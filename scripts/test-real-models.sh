#!/usr/bin/env bash
# The real-model suite on ../shared/fixtures (or $HAWQ_FIXTURES). Fails, never skips, when the
# fixtures are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-cross.sh  # QEMU and the cross targets for tests/tests/qemu.rs
export HAWQ_FIXTURES="${HAWQ_FIXTURES:-$(cd .. && pwd)/shared/fixtures}"
if [ ! -f "$HAWQ_FIXTURES/README.md" ]; then
  echo "FAIL: the real-model suite needs the fixtures at $HAWQ_FIXTURES (set HAWQ_FIXTURES)" >&2
  exit 1
fi
cargo test --release --locked -p hawq-e2e -- --nocapture --test-threads 1
