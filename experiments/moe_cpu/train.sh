#!/usr/bin/env bash
# A tiny mixture of experts against its dense twin on this CPU: 80k active non-embedding
# parameters (d 32, 4 layers, 5 heads of 16), the dense SwiGLU of width 104 against E = 4 and
# E = 8 experts of width 52 with top-2 routing (granularity 2; the router adds 0.6% and 1.3% active
# parameters), recipe cpu_v2 (lawsearch/recipe.py; a MoE sized by its active parameters), every
# run on the dense twin's 1,617,920 tokens, 3 seeds each. Then `lawsearch bench` of each shape at
# batch 1, 8 and 32 against the roofline, and the table (analyze.py).
#
#   experiments/moe_cpu/train.sh [ROOT]        (default experiments/results/moe_cpu)
#
# A repeated command skips finished runs and resumes interrupted ones from their checkpoints.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${1:-experiments/results/moe_cpu}
export JAX_PLATFORMS=cpu
HERE=experiments/moe_cpu
SHAPES=(dense moe-e4 moe-e8)
ARCH=$(printf "$HERE/%s.arch.json+" "${SHAPES[@]}")
.venv/bin/lawsearch data prepare --vocab-size 512 --heldout-fraction 0.05
.venv/bin/lawsearch sweep --no-progress --root "$ROOT/trained" --override train.tokens=1617920 \
    --config="configs/sweep.py:recipe=cpu_v2,arch=${ARCH%+},seeds=3"
.venv/bin/python $HERE/analyze.py --root "$ROOT" bench table
