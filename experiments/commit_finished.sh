#!/usr/bin/env bash
# Commits the record (config.json, identity.json, metrics.jsonl, result.json; never checkpoints) of
# every finished run under ROOT that git does not hold yet, so a fresh machine continues the sweeps.
#
#   experiments/commit_finished.sh ROOT [WHAT]     e.g. experiments/results/noise "noise runs"
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:?give the sweep root, e.g. experiments/results/cpu_replication}
WHAT=${2:-$(basename "$ROOT")}
added=0
for result in $(find "$ROOT" -name result.json -not -path '*/checkpoints/*' | sort); do
  dir=$(dirname "$result")
  if ! git ls-files --error-unmatch "$result" > /dev/null 2>&1; then
    for f in config.json identity.json metrics.jsonl result.json; do
      [ -e "$dir/$f" ] && git add "$dir/$f"
    done
    added=$((added + 1))
  fi
done
if [ "$added" -gt 0 ]; then
  git commit -q -m "$WHAT: $added more finished run record(s)" -- "$ROOT"
  echo "committed $added run record(s)"
fi
