#!/usr/bin/env bash
# Commits the record (config.json, metrics.jsonl, result.json; never checkpoints) of every finished
# run of the CPU replication that git does not hold yet, so a fresh machine continues the sweeps.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${1:-experiments/results/cpu_replication}
added=0
for result in $(find "$ROOT" -name result.json -not -path '*/checkpoints/*' | sort); do
  dir=$(dirname "$result")
  if ! git ls-files --error-unmatch "$result" > /dev/null 2>&1; then
    git add "$dir/config.json" "$dir/metrics.jsonl" "$result"
    added=$((added + 1))
  fi
done
if [ "$added" -gt 0 ]; then
  git commit -q -m "cpu replication: $added more finished run record(s)" -- "$ROOT"
  echo "committed $added run record(s)"
fi
