#!/usr/bin/env bash
# Commits the noise runs that finished since the last call and the analysis of every committed
# run (runs.csv, lr.json, recipes.json), together, so the two never disagree (a test checks).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=experiments/results/noise
experiments/commit_finished.sh "$ROOT" "noise runs" > /dev/null || true
JAX_PLATFORMS=cpu .venv/bin/python experiments/noise/analyze.py --root "$ROOT" > /dev/null
# A run that finished while the analysis ran is in its table: commit its record too.
experiments/commit_finished.sh "$ROOT" "noise runs" > /dev/null || true
git add "$ROOT/runs.csv" "$ROOT/lr.json" "$ROOT/recipes.json"
if ! git diff --cached --quiet -- "$ROOT"; then
  git commit -q -m "noise: the analysis of $(tail -n +2 "$ROOT/runs.csv" | wc -l) runs" -- \
      "$ROOT/runs.csv" "$ROOT/lr.json" "$ROOT/recipes.json" && echo "committed the analysis"
fi
