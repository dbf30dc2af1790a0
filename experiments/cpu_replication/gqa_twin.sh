#!/usr/bin/env bash
# Does GQA cost loss at 600k? Surefire (d 184, 4 query heads on 1 KV head, GQA 4) against its
# GQA-1 twin at the same d_model and N (3 heads of 16, each with its own K and V; f 208, r 3.25),
# 2 seeds, as two pinned workers (about 25 minutes), then the table, fit and report again.
#   experiments/cpu_replication/gqa_twin.sh [ROOT] [LOGS]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${1:-experiments/results/cpu_replication}
LOGS=${2:-/tmp/cpu_replication_logs}
mkdir -p "$LOGS"
export JAX_PLATFORMS=cpu
ARG="recipe=cpu,arch=experiments/cpu_replication/surefire_gqa1_twin.arch.json,seeds=2"
for i in 0 1; do
  taskset -c "$i" .venv/bin/lawsearch sweep --shard "$i/2" --no-progress \
      --config="configs/sweep.py:$ARG" --root "$ROOT/heldout" >> "$LOGS/twin.worker$i.log" 2>&1 &
done
wait
.venv/bin/python experiments/cpu_replication/run.py --root "$ROOT" table fit report \
    >> "$LOGS/analysis.log" 2>&1
