#!/bin/sh
# Builds roar in release mode and installs it under PREFIX (default ~/.local):
#   PREFIX/bin/roar, PREFIX/bin/roar-collector, PREFIX/lib/roar/libroar.so
# Usage: scripts/install.sh [PREFIX]
set -eu
prefix=${1:-${PREFIX:-$HOME/.local}}
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins --lib -q
case "$(uname -s)" in
  Darwin) shim=libroar.dylib ;;
  *) shim=libroar.so ;;
esac
mkdir -p "$prefix/bin" "$prefix/lib/roar"
install -m 0755 target/release/roar target/release/roar-collector "$prefix/bin/"
install -m 0755 "target/release/$shim" "$prefix/lib/roar/"
echo "installed roar, roar-collector in $prefix/bin and $shim in $prefix/lib/roar"
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on PATH; add it: export PATH=\"$prefix/bin:\$PATH\"" ;;
esac
