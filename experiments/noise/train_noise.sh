#!/usr/bin/env bash
# The noise measurements behind recipe v2 (analysed by experiments/noise/analyze.py): every
# training run, at the CPU recipe's shapes.
#
#   experiments/noise/train_noise.sh [ROOT] [LOGS]
#
# 1. lr_scan/: at 80k, four shapes at the cross design's extremes (d/sqrt(N) low and high at
#    r ~ 1; r low and high at d/sqrt(N) ~ 0.13), 5 multiples of the recipe's LR on a sqrt(2) grid,
#    2 seeds each, batch 32 as recipe v1 (40 runs).
# 2. batch16/, batch8/: the same four 80k shapes with the same tokens in 2x and 4x the steps
#    (batch 16 and 8 sequences instead of 32), 3 seeds each: batch 16 at the LR x0.71 and batch 8
#    at x0.5 (the square-root rule) and x1 (36 runs).
# 3. From here at batch 8, the best of the three (4x the steps of batch 32: 80k seed SD 0.007
#    nats at the recipe's LR, and 0.45 nats lower loss for the same tokens):
#    warmup20/: the four 80k shapes with 20% warmup instead of 5%, LR x1, 3 seeds (12 runs);
#    lr_scan_b8/: at 145k, four shapes as in 1 at LR multiples 0.5 to 2, 2 seeds (40 runs);
#    batch4/: the four 80k shapes at batch 4 (3,160 steps, as many as batch 8 gives at 145k),
#    20% warmup, LR x0.5 and x1, 2 seeds (16 runs).
# Two workers share each phase through claims; a repeated command skips finished runs and resumes
# interrupted ones. Commit the finished records (config.json, identity.json, metrics.jsonl,
# result.json; never checkpoints) as they arrive.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${1:-experiments/results/noise}
LOGS=${2:-/tmp/noise_logs}
mkdir -p "$LOGS"
export JAX_PLATFORMS=cpu
source experiments/two_workers.sh
SHAPES80="recipe=cpu,scales=80k,x=0.06+0.29,r=0.5+3"

# The 512-token corpus once, before two workers could both build it.
.venv/bin/lawsearch data prepare --vocab-size 512 --heldout-fraction 0.05 >> "$LOGS/data.log" 2>&1
phase lr80 "$SHAPES80,lr=0.5+0.71+1+1.41+2,seeds=2" "$ROOT/lr_scan"
phase batch16 "$SHAPES80,lr=0.71,seeds=3" "$ROOT/batch16" --override train.batch_size=16
phase batch8 "$SHAPES80,lr=0.5+1,seeds=3" "$ROOT/batch8" --override train.batch_size=8
B8=(--override train.batch_size=8)
phase warmup20 "$SHAPES80,lr=1,seeds=3" "$ROOT/warmup20" "${B8[@]}" \
    --override optimizer.warmup_steps=0.2
phase lr145b8 "recipe=cpu,scales=145k,x=0.06+0.22,r=0.5+5,lr=0.5+0.71+1+1.41+2,seeds=2" \
    "$ROOT/lr_scan_b8" "${B8[@]}"
phase batch4 "$SHAPES80,lr=0.5+1,seeds=2" "$ROOT/batch4" --override train.batch_size=4 \
    --override optimizer.warmup_steps=0.2
