#!/usr/bin/env bash
# Commits the noise runs that finished since the last call and the analysis of every finished run
# (runs.csv, lr.json, lr_rule.json, recipes.json), together, so that every row of the table has its committed
# record (a test checks; a record may be newer than the table, never the other way round).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=experiments/results/noise
JAX_PLATFORMS=cpu .venv/bin/python experiments/noise/analyze.py --root "$ROOT" > /dev/null
git add "$ROOT/runs.csv" "$ROOT/lr.json" "$ROOT/lr_rule.json" "$ROOT/recipes.json"
# Every record the analysis read is finished, so this commits each of them with the analysis.
experiments/commit_finished.sh "$ROOT" "noise runs and their analysis" || true
if ! git diff --cached --quiet -- "$ROOT"; then  # no new record: the analysis alone
  git commit -q -m "noise: the analysis of $(tail -n +2 "$ROOT/runs.csv" | wc -l) runs" -- \
      "$ROOT/runs.csv" "$ROOT/lr.json" "$ROOT/lr_rule.json" "$ROOT/recipes.json" && echo "committed the analysis"
fi
