#!/usr/bin/env bash
# The CPU replication's sweeps (issue 13), as two workers pinned to one core each (on 2 cores two
# single-threaded runs train 1.5-1.7x more tokens/s in all than one run on both cores).
#
#   experiments/cpu_replication/train_all.sh [ROOT] [LOGS]
#
# Phases, each shared by the workers with --shard: the fitting sweep (80k, 145k, 297k: 34 runs),
# the LLaMA-3.2-shaped baseline at the held-out scale 600k (2 seeds), and a validation grid at
# 600k (8 shapes). Repeating the command skips finished runs and resumes interrupted ones. The
# picks (Panda, Surefire) are trained by experiments/cpu_replication/run.py once the law is fitted.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${1:-experiments/results/cpu_replication}
LOGS=${2:-/tmp/cpu_replication_logs}
mkdir -p "$LOGS"
export JAX_PLATFORMS=cpu

worker() {  # $1: shard index (= the core it is pinned to)
  local sweep=(taskset -c "$1" .venv/bin/lawsearch sweep --shard "$1/2" --no-progress)
  "${sweep[@]}" --config=configs/sweep.py:recipe=cpu --root "$ROOT/fit"
  "${sweep[@]}" --config=configs/sweep.py:recipe=cpu,scales=600k,shapes=baseline,seeds=2 \
      --root "$ROOT/heldout"
  "${sweep[@]}" --config=configs/sweep.py:recipe=cpu,scales=600k,x=0.08+0.1+0.13+0.17+0.22,r=0.5+1.5+3 \
      --root "$ROOT/heldout"
}

worker 0 > "$LOGS/worker0.log" 2>&1 &
worker 1 > "$LOGS/worker1.log" 2>&1 &
wait
