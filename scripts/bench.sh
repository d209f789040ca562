#!/usr/bin/env bash
# Times DESIGN.md's workloads bare, under `roar run` and under `strace -f`,
# interleaved in one run so the ratios share this machine's noise; prints
# medians, ratios and the collector's peak RSS.
# Usage: scripts/bench.sh [REPS]     (default 5; builds release binaries first)
set -euo pipefail
reps=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q --manifest-path "$root/Cargo.toml"
roar="$root/target/release/roar"
work=$(mktemp -d /tmp/roar-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$roar" init >/dev/null

# Workload inputs, made once.
mkdir -p in out big
python3 - <<'PY'
for i in range(5000):
    with open(f"in/{i}.txt", "w") as f:
        f.write(f"row {i}\n" * 4)
PY
cat > many_files.py <<'PY'
data = [open(f"in/{i}.txt").read() for i in range(5000)]
for i in range(500):
    with open(f"out/{i}.txt", "w") as f:
        f.write(data[i] * 2)
PY
cat > big_out.py <<'PY'
block = bytes(range(256)) * 4096          # 1 MiB
for n in range(4):
    with open(f"big/{n}.bin", "wb") as f:
        for _ in range(256):              # 256 MiB each, 1 GiB in all
            f.write(block)
PY
echo x > f

ms_now() { date +%s%N; }
# Runs "$@" once; prints wall milliseconds.
once() {
  local t0 t1
  t0=$(ms_now)
  "$@" >/dev/null 2>&1 || true
  t1=$(ms_now)
  echo $(( (t1 - t0) / 1000 ))   # microseconds
}
median() { sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'; }
last_stat() {   # a field of the last job's stats
  "$roar" log --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["step"])' |
    xargs -I{} "$roar" show @{} --json |
    python3 -c "import json,sys; print(json.load(sys.stdin)['stats']['$1'])"
}

printf '%-11s %9s %9s %9s %10s %11s %9s %9s\n' \
  workload bare_ms roar_ms strace_ms roar/bare strace/bare roar-bare rss_MiB
bench() {
  local name=$1; shift
  local b=() r=() s=()
  for _ in $(seq "$reps"); do
    b+=("$(once "$@")")
    r+=("$(once "$roar" run -q "$@")")
    s+=("$(once strace -f -qq -o /dev/null "$@")")
  done
  local bm rm sm rss
  bm=$(printf '%s\n' "${b[@]}" | median)
  rm=$(printf '%s\n' "${r[@]}" | median)
  sm=$(printf '%s\n' "${s[@]}" | median)
  rss=$(last_stat collector_peak_rss_kb)
  awk -v n="$name" -v b="$bm" -v r="$rm" -v s="$sm" -v m="$rss" 'BEGIN {
    printf "%-11s %9.1f %9.1f %9.1f %10.2f %11.2f %9.1f %9.1f\n", n, b, r, s, r/b, s/b, r-b, m/1024 }'
}

bench noop true
bench many-files python3 many_files.py
bench many-procs sh -c 'for i in $(seq 300); do cat f; done'
bench big-out python3 big_out.py

# big-out's hashing budget: b3sum of the same files.
if command -v b3sum >/dev/null; then
  t=()
  for _ in $(seq "$reps"); do t+=("$(once b3sum --num-threads 2 big/0.bin big/1.bin big/2.bin big/3.bin)"); done
  echo "b3sum --num-threads 2 of big-out's 1 GiB: $(printf '%s\n' "${t[@]}" | median) ms"
else
  echo "b3sum not installed (cargo install b3sum): no big-out hashing reference"
fi

# rerun: the same inputs again must hash nothing that was hashed before.
"$roar" run -q python3 many_files.py
echo "rerun of many-files: hashed $(last_stat hashed_files) files ($(last_stat hashed_bytes) bytes), $(last_stat cache_hits) cache hits"

# A job of a million events (1M opens over 5,000 files): what the collector
# holds must follow the files touched, not the events.
cat > million.py <<'PY'
import os
for i in range(1_000_000):
    os.close(os.open(f"in/{i % 5000}.txt", os.O_RDONLY))
PY
ms=$(once "$roar" run -q python3 million.py)
echo "million-events: $(last_stat events) events in $((ms / 1000)) ms, collector peak RSS $(( $(last_stat collector_peak_rss_kb) / 1024 )) MiB"

# Label search over 100,000 labelled artifacts (inserted directly: making
# them through the CLI would time process starts, not the search).
python3 - "$work/.roar/roar.db" <<'PY'
import json, random, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
random.seed(7)
now = time.time()
arts, versions, values = [], [], []
for i in range(100_000):
    acc = round(random.random(), 4)
    stage = random.choice(["baseline", "tuned", "ablation"])
    aid = 10_000_000 + i
    arts.append((aid, f"{i:064x}", 1, now))
    doc = {"metrics": {"accuracy": acc}, "stage": stage}
    origins = {"metrics.accuracy": "user", "stage": "user"}
    versions.append(("artifact", aid, 1, now, "user", json.dumps(doc), json.dumps(origins)))
    values.append(("artifact", aid, "metrics.accuracy", "number", acc, None))
    values.append(("artifact", aid, "stage", "string", None, stage))
db.executemany("INSERT INTO artifacts (id, hash, size, first_seen) VALUES (?,?,?,?)", arts)
db.executemany("INSERT INTO label_versions (kind, target_id, version, created_at, origin, document, origins) VALUES (?,?,?,?,?,?,?)", versions)
db.executemany("INSERT INTO label_values (kind, target_id, key, type, num, str) VALUES (?,?,?,?,?,?)", values)
db.commit()
PY
t=()
for _ in $(seq "$reps"); do
  t+=("$(once "$roar" search 'metrics.accuracy>0.9 AND stage=baseline' --json)")
done
hits=$("$roar" search 'metrics.accuracy>0.9 AND stage=baseline' --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "label search, 100,000 labelled records, two clauses: $(printf '%s\n' "${t[@]}" | median) ms ($hits hits, printed)"
t=()
for _ in $(seq "$reps"); do
  t+=("$(once "$roar" search 'metrics.accuracy>0.9 AND stage=baseline' --sort metrics.accuracy --desc --top 10 --json)")
done
echo "label leaderboard, same predicate, --sort --top 10: $(printf '%s\n' "${t[@]}" | median) ms"
