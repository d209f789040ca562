#!/bin/sh
# Runs the conformance corpus (tests/conformance/*): every case under
# strace -f and under roar run; prints per-case agreement and the total.
# Usage: scripts/conformance.sh
set -eu
cd "$(dirname "$0")/.."
cargo build --workspace -q
cargo test -q -p roar-tests --test conformance -- --nocapture 2>&1 |
  grep -E '^(agree|DIFFER) |cases agree|strace: |roar: '
