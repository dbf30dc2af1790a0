#!/usr/bin/env bash
# Replication v2: the CPU replication again with recipe cpu_v2 (lawsearch/recipe.py: at least 1,500
# steps at every scale, 20% warmup, the LR by width; chosen from experiments/noise/) and seeds.
#
#   experiments/cpu_replication_v2/train_all.sh [ROOT] [LOGS]
#
# Each training phase is shared by two workers pinned to one core each (experiments/two_workers.sh):
#   1. the fitting sweep, 3 seeds: 80k, 145k, 297k (34 shapes), and one shape of r ~ 7-11 at each
#      fitting scale                                               -> run.py table fit search
#   2. at the held-out scale 600k: the LLaMA-3.2-shaped baseline, Panda and Surefire, 3 seeds; the
#      validation grid (9 shapes), 2 seeds; a third seed for its five best shapes
#                                                                  -> run.py table fit bench report
#   3. v1 against v2 (compare.py) and where the law misses (misfit.py), 600k included
# A repeated command skips finished runs and resumes interrupted ones from their checkpoints;
# experiments/commit_finished.sh experiments/results/cpu_replication_v2 commits the records as
# they arrive. v1 (experiments/results/cpu_replication/) stays as it is.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${1:-experiments/results/cpu_replication_v2}
LOGS=${2:-/tmp/cpu_replication_v2_logs}
mkdir -p "$LOGS"
export JAX_PLATFORMS=cpu
PY=.venv/bin/python
RUN="$PY experiments/cpu_replication/run.py --root $ROOT --l-opt joint"

source experiments/two_workers.sh

.venv/bin/lawsearch data prepare --vocab-size 512 --heldout-fraction 0.05 >> "$LOGS/data.log" 2>&1
phase fit "recipe=cpu_v2,seeds=3" "$ROOT/fit"
phase fit "recipe=cpu_v2,r=7+11,seeds=3" "$ROOT/fit"
$RUN table fit search >> "$LOGS/analysis.log" 2>&1
phase picks "recipe=cpu_v2,scales=600k,shapes=baseline,seeds=3" "$ROOT/heldout"
phase picks "recipe=cpu_v2,arch=$ROOT/search/panda.arch.json+$ROOT/search/surefire.arch.json,seeds=3" \
    "$ROOT/heldout"
phase grid "recipe=cpu_v2,scales=600k,x=0.1+0.13+0.17+0.22+0.29,r=0.5+1.5+3+5,seeds=2" \
    "$ROOT/heldout"
$RUN table >> "$LOGS/analysis.log" 2>&1
BEST=$($PY experiments/cpu_replication_v2/best_grid.py --root "$ROOT" --count 5)
phase best "recipe=cpu_v2,arch=$BEST,seeds=3" "$ROOT/heldout"
$RUN table fit bench report >> "$LOGS/analysis.log" 2>&1
$PY experiments/cpu_replication_v2/compare.py --v2 "$ROOT" >> "$LOGS/analysis.log" 2>&1
$PY experiments/cpu_replication_v2/misfit.py --root "$ROOT" >> "$LOGS/analysis.log" 2>&1
