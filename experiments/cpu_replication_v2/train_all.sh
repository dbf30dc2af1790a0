#!/usr/bin/env bash
# Replication v2: the CPU replication again with recipe cpu_v2 (lawsearch/recipe.py: at least 1,500
# steps at every scale, 20% warmup, the LR by width; chosen from experiments/noise/) and seeds.
#
#   experiments/cpu_replication_v2/train_all.sh [ROOT] [LOGS]
#   RECIPE=gpu_v2 CORPUS=DIR_OR_GLOB experiments/cpu_replication_v2/train_all.sh [ROOT] [LOGS]
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
#
# RECIPE=gpu_v2: the same design 25x larger (2M, 3.6M, 7.4M; held out at 15M) on one accelerator,
# into experiments/results/gpu_replication_v2 by default: one worker training each shape's seeds
# as one program (`lawsearch sweep --seed-groups`), on your own text (CORPUS: a file, directory or
# glob of at least ~350 M tokens, as `lawsearch data prepare --source text --path` takes), and the
# bench in bfloat16 with the Pallas decode kernel against the chip's datasheet roofline. Built
# and tested on CPU (tests/test_cpu_replication.py), not yet run on a GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
RECIPE=${RECIPE:-cpu_v2}
PY=.venv/bin/python
read -r HELDOUT VOCAB < <($PY -c "from lawsearch.recipe import recipe
r = recipe('$RECIPE'); print(r.heldout_scale, r.vocab_size)")
DATA=(--vocab-size "$VOCAB" --heldout-fraction 0.05)
SWEEP_DATA=data=default
FLAGS=()
if [[ $RECIPE == cpu* ]]; then
  ROOT=${1:-experiments/results/cpu_replication_v2}
  export JAX_PLATFORMS=cpu
else
  ROOT=${1:-experiments/results/${RECIPE%_v2}_replication_v2}
  [[ -n ${CORPUS:-} ]] || { echo "RECIPE=$RECIPE trains on your own text: give CORPUS=PATH" >&2
                            exit 2; }
  DATA+=(--source text --path "$CORPUS")
  SWEEP_DATA=data=text
  FLAGS=(--seed-groups --override "data.path=$CORPUS")
  export WORKERS=1
fi
LOGS=${2:-/tmp/${RECIPE}_replication_logs}
mkdir -p "$LOGS"
RUN="$PY experiments/cpu_replication/run.py --root $ROOT --recipe $RECIPE --l-opt joint"

source experiments/two_workers.sh

.venv/bin/lawsearch data prepare "${DATA[@]}" >> "$LOGS/data.log" 2>&1
FIT="recipe=$RECIPE,$SWEEP_DATA,seeds=3"
phase fit "$FIT" "$ROOT/fit" "${FLAGS[@]}"
phase fit "$FIT,r=7+11" "$ROOT/fit" "${FLAGS[@]}"
$RUN table fit search >> "$LOGS/analysis.log" 2>&1
HELD="recipe=$RECIPE,$SWEEP_DATA,scales=$HELDOUT"
phase picks "$HELD,shapes=baseline,seeds=3" "$ROOT/heldout" "${FLAGS[@]}"
phase picks "recipe=$RECIPE,$SWEEP_DATA,arch=$ROOT/search/panda.arch.json+$ROOT/search/surefire.arch.json,seeds=3" \
    "$ROOT/heldout" "${FLAGS[@]}"
phase grid "$HELD,x=0.1+0.13+0.17+0.22+0.29,r=0.5+1.5+3+5,seeds=2" "$ROOT/heldout" "${FLAGS[@]}"
$RUN table >> "$LOGS/analysis.log" 2>&1
BEST=$($PY experiments/cpu_replication_v2/best_grid.py --root "$ROOT")
phase best "recipe=$RECIPE,$SWEEP_DATA,arch=$BEST,seeds=3" "$ROOT/heldout" "${FLAGS[@]}"
$RUN table fit bench report >> "$LOGS/analysis.log" 2>&1
if [[ $RECIPE == cpu_v2 ]]; then  # v1 against v2: the CPU's
  $PY experiments/cpu_replication_v2/compare.py --v2 "$ROOT" >> "$LOGS/analysis.log" 2>&1
fi
$PY experiments/cpu_replication_v2/misfit.py --root "$ROOT" >> "$LOGS/analysis.log" 2>&1
