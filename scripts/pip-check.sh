#!/usr/bin/env bash
# Builds roar's wheel, installs it into a fresh venv and runs the example
# pipeline through the installed `roar`, with nothing else of roar on PATH.
#   scripts/pip-check.sh [PREBUILT_DIR]   (default: cargo builds release)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/roar-pip.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ $# -gt 0 ]; then
  export ROAR_PREBUILT=$(cd "$1" && pwd)
fi
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$root"
cp -r "$root/examples/pipeline" "$work/pipeline"
rm -rf "$work/pipeline/.roar"
# Only the venv and the system: no cargo target dir, no ~/.local.
PATH="$work/venv/bin:/usr/bin:/bin" ROAR_NO_TELEMETRY=1 "$work/pipeline/run.sh" > "$work/out.txt"
grep -q "@3" "$work/out.txt" || { cat "$work/out.txt"; echo "pip-check: the pipeline did not record three steps" >&2; exit 1; }
n=$(cd "$work/pipeline" && PATH="$work/venv/bin:/usr/bin:/bin" roar log --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 3 ] || { echo "pip-check: $n jobs recorded, not 3" >&2; exit 1; }
echo "pip-check: wheel installed into a fresh venv; the example pipeline recorded 3 jobs through $(PATH="$work/venv/bin" command -v roar)"
