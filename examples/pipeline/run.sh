#!/bin/sh
# Runs the example pipeline under roar, one job per step, then shows the graph.
# Usage: examples/pipeline/run.sh   (uses `roar` from PATH, or $ROAR)
set -e
ROAR=${ROAR:-roar}
cd "$(dirname "$0")"
[ -d .roar ] || "$ROAR" init
"$ROAR" run python3 prepare.py
"$ROAR" run python3 train.py
"$ROAR" run python3 evaluate.py
"$ROAR" dag
