#!/usr/bin/env bash
# The whole CPU replication (issue 13): every training run, and the analysis between them.
#
#   experiments/cpu_replication/train_all.sh [ROOT] [LOGS]
#
# Each training phase is shared by two workers pinned to one core each (experiments/two_workers.sh):
#   1. the fitting sweep: 80k, 145k, 297k (34 runs)              -> run.py table fit search
#   2. at the held-out scale 600k: the LLaMA-3.2-shaped baseline, Panda and Surefire, 2 seeds each
#                                                                  -> run.py table fit bench report
#   3. one shape of r ~ 7-11 at each fitting scale (outside the fit's r filter [0.5, 5], as the
#      paper's outliers), a validation grid at 600k (9 shapes), and Surefire's GQA-1 twin (same
#      d_model and N, 3 heads each with its own K and V; 2 seeds: does GQA cost loss here?)
#                                                                  -> run.py table fit report
# A repeated command skips finished runs and resumes interrupted ones from their checkpoints;
# experiments/commit_finished.sh experiments/results/cpu_replication commits the records as they arrive.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${1:-experiments/results/cpu_replication}
LOGS=${2:-/tmp/cpu_replication_logs}
mkdir -p "$LOGS"
export JAX_PLATFORMS=cpu
PY=.venv/bin/python

source experiments/two_workers.sh

phase fit recipe=cpu "$ROOT/fit"
$PY experiments/cpu_replication/run.py --root "$ROOT" table fit search >> "$LOGS/analysis.log" 2>&1
phase picks "recipe=cpu,scales=600k,shapes=baseline,seeds=2" "$ROOT/heldout"
phase picks "recipe=cpu,arch=$ROOT/search/panda.arch.json+$ROOT/search/surefire.arch.json,seeds=2" \
    "$ROOT/heldout"
$PY experiments/cpu_replication/run.py --root "$ROOT" table fit bench report >> "$LOGS/analysis.log" 2>&1
phase fit "recipe=cpu,r=7+11" "$ROOT/fit"  # r beyond the paper's filter: the r curve's far side
phase grid "recipe=cpu,scales=600k,x=0.1+0.13+0.17+0.22+0.29,r=0.5+1.5+3+5" "$ROOT/heldout"
phase twin "recipe=cpu,arch=experiments/cpu_replication/surefire_gqa1_twin.arch.json,seeds=2" \
    "$ROOT/heldout"
$PY experiments/cpu_replication/run.py --root "$ROOT" table fit report >> "$LOGS/analysis.log" 2>&1
