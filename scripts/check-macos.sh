#!/usr/bin/env bash
# Type-checks the whole workspace for macOS from Linux (cargo check, then
# clippy with warnings as errors), so the macOS code paths keep compiling
# where no Mac is at hand. Nothing is linked and nothing runs.
#
#   scripts/check-macos.sh [TARGET]      (default aarch64-apple-darwin)
#
# There is no macOS SDK or clang here, so:
# - ROAR_SHIM_NO_C=1 makes the shim's build script skip its C file;
# - third-party build scripts (blake3, libsqlite3-sys) compile C with cc-rs
#   for the target: they get a stand-in compiler that answers cc-rs's
#   compiler probe as clang and turns every compile into an empty object,
#   which is all a type-check needs.
# When zig is at hand (`zig` on PATH, or PyPI's `ziglang` module: `zig cc`
# ships macOS headers), the shim's src/c/interpose_macos.c is also compiled
# for the target against them, warnings as errors.
set -euo pipefail
target=${1:-aarch64-apple-darwin}
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi

# Kept at a stable path: cc-rs reruns build scripts when CC_<target> changes.
stub_dir="${CARGO_TARGET_DIR:-target}/check-macos"
mkdir -p "$stub_dir"
stub="$(cd "$stub_dir" && pwd)/cc"
cat >"$stub.new" <<'EOF'
#!/bin/sh
# Stand-in C compiler for type-checking only (see scripts/check-macos.sh).
out=""; compile=0; prev=""
for a in "$@"; do
  [ "$prev" = "-o" ] && out="$a"
  case "$a" in
    -E) echo '#pragma message "clang"'; exit 0 ;;
    -c) compile=1 ;;
  esac
  prev="$a"
done
if [ "$compile" = 1 ] && [ -n "$out" ]; then
  exec cc -c -x c /dev/null -o "$out"
fi
exit 1
EOF
chmod +x "$stub.new"
mv "$stub.new" "$stub"

var=$(echo "$target" | tr '-' '_')
export "CC_$var=$stub" "AR_$var=ar" ROAR_SHIM_NO_C=1

cargo check --target "$target" --workspace
cargo clippy --target "$target" --workspace -- -D warnings

zig=()
if command -v zig >/dev/null; then
  zig=(zig)
elif python3 -c 'import ziglang' 2>/dev/null; then
  zig=(python3 -m ziglang)
fi
if [ ${#zig[@]} -gt 0 ]; then
  zig_target=$(echo "$target" | sed -e 's/-apple-darwin$/-macos/')
  "${zig[@]}" cc -target "$zig_target" -c -Wall -Wextra -Werror \
    -o "$stub_dir/interpose_macos.o" shim/src/c/interpose_macos.c
  echo "shim/src/c/interpose_macos.c compiles for $zig_target"
else
  echo "zig not found: shim/src/c/interpose_macos.c was not compiled"
fi
echo "macOS ($target) type-check passed"
