#!/usr/bin/env bash
# Times workloads bare, under `strace -f`, and under `roar run`, in one run so
# the ratios share this machine's noise. Median of N repetitions (default 5).
# Usage: scripts/bench.sh [N]     (builds release binaries first)
set -euo pipefail
reps=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q --manifest-path "$root/Cargo.toml"
roar="$root/target/release/roar"
work=$(mktemp -d /tmp/roar-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$roar" init >/dev/null

mkdir -p in out
python3 - <<'PY'
for i in range(5000):
    with open(f"in/{i}.txt", "w") as f:
        f.write(f"row {i}\n" * 4)
PY
cat > many_files.py <<'PY'
import os
data = [open(f"in/{i}.txt").read() for i in range(5000)]
for i in range(500):
    with open(f"out/{i}.txt", "w") as f:
        f.write(data[i] * 2)
PY
echo x > f

# median wall time in ms of "$@" over $reps runs
time_ms() {
  local samples=()
  for _ in $(seq "$reps"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    samples+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

printf '%-11s %10s %10s %10s %9s %9s %10s\n' workload bare_ms strace_ms roar_ms roar/bare strace/bare roar-bare
run() {
  local name=$1; shift
  local bare st ro
  bare=$(time_ms "$@")
  st=$(time_ms strace -f -qq -o /dev/null "$@")
  ro=$(time_ms "$roar" run -q "$@")
  awk -v n="$name" -v b="$bare" -v s="$st" -v r="$ro" 'BEGIN {
    printf "%-11s %10.1f %10.1f %10.1f %9.2f %9.2f %10.1f\n", n, b, s, r, r/b, s/b, r-b }'
}
run noop true
run many-files python3 many_files.py
run many-procs sh -c 'for i in $(seq 300); do cat f; done'
