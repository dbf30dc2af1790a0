#!/usr/bin/env bash
# The mixture-of-experts law on this CPU: mixtures (configs/sweep.py moe=ExG: E experts of width
# ffn_dim / G, top-k = G; arch.mixture) of dense shapes of replication v2's recipe (cpu_v2), of the
# same active size, 2 seeds each. The dense runs themselves are replication v2's (3 seeds;
# analyze.py --dense), so the fitting phases train only the mixtures (dense=0):
#   a. at 80k and 145k active: the shape x = 0.13, r = 1 at E x G = 4x1 8x1 16x1 4x2 8x2 16x2 16x4
#   b. at 80k: 8x2 at the dense sweep's extremes, x = 0.06 and 0.29 (r 1), r = 0.5 and 3 (x 0.13):
#      does the gain, and with it the optimum in d/sqrt(N) or r, move with sparsity?
# Then analyze.py fit search: the MoE forms fitted, and the preferred law's dense and MoE picks at
# the held-out scale 320k active (lawsearch search --mlp dense,moe on this CPU's roofline), and
#   c. at 320k: the shape x = 0.13, r = 1 dense and at 4x1 8x2 16x2 16x4, and both picks, 2 seeds
# then analyze.py validate picks: each form's prediction of 320k against the measured losses, and
# the picks' measured loss and CPU decode tokens/s against the predicted.
# A repeated command skips finished runs and resumes interrupted ones; runs shared by two phases
# train once (one identity, one directory). Top-1 mixtures weight their expert by the router's
# probability (Switch Transformer): the earlier top-1 runs, with the renormalised weight that is
# always 1 and so never trains the router, are kept apart in ROOT/top1_renormalised.
#
#   experiments/moe_law_cpu/train.sh [ROOT] [LOGS]     (default experiments/results/moe_law_cpu)
#   WORKERS=1 ... : one unpinned worker, e.g. beside another experiment
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${1:-experiments/results/moe_law_cpu}
LOGS=${2:-/tmp/moe_law_cpu_logs}
mkdir -p "$LOGS"
export JAX_PLATFORMS=cpu
source experiments/two_workers.sh  # WORKERS=1: one worker

.venv/bin/lawsearch data prepare --vocab-size 512 --heldout-fraction 0.05 >> "$LOGS/data.log" 2>&1
MIXTURES="moe=4x1+8x1+16x1+4x2+8x2+16x2+16x4,dense=0,seeds=2"
phase mid-80k "recipe=cpu_v2,scales=80k,x=0.13,r=1,$MIXTURES" "$ROOT/fit"
phase extremes-80k "recipe=cpu_v2,scales=80k,x=0.06+0.29,r=0.5+3,moe=8x2,dense=0,seeds=2" \
    "$ROOT/fit"
phase mid-145k "recipe=cpu_v2,scales=145k,x=0.13,r=1,$MIXTURES" "$ROOT/fit"
ANALYZE=".venv/bin/python experiments/moe_law_cpu/analyze.py --root $ROOT"
$ANALYZE fit search >> "$LOGS/analysis.log" 2>&1
phase heldout "recipe=cpu_v2,scales=320k,x=0.13,r=1,moe=4x1+8x2+16x2+16x4,seeds=2" "$ROOT/heldout"
phase picks "recipe=cpu_v2,arch=$ROOT/search/surefire.arch.json+$ROOT/search/best_moe.arch.json,seeds=2" \
    "$ROOT/heldout"
$ANALYZE validate picks >> "$LOGS/analysis.log" 2>&1
