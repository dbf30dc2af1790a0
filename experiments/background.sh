#!/usr/bin/env bash
# The long CPU experiments in the background, each from its own git worktree of HEAD (so editing
# the checkout never changes a running driver), with a loop that commits their finished records:
# replication v2 (experiments/cpu_replication_v2/train_all.sh) and the MoE law sweep
# (experiments/moe_law_cpu/train.sh). FIRST (default moe, the shorter) gets two pinned workers,
# the other one worker at lower priority beside them. Each driver resumes where the committed
# records and local checkpoints stop; logs in /tmp.
#
#   [FIRST=v2] experiments/background.sh [start] [v2] [moe]  (re)start both, or the ones named (a
#                                 running copy is stopped first: its runs resume from checkpoints)
#   experiments/background.sh stop [v2] [moe]     stop the drivers, their workers and commit loops
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=$(pwd)
ACTION=start
[[ ${1:-} == start || ${1:-} == stop ]] && ACTION=$1 && shift
NAMES=${*:-v2 moe}
declare -A ROOTS=([v2]=experiments/results/cpu_replication_v2 [moe]=experiments/results/moe_law_cpu)
declare -A DRIVERS=([v2]=cpu_replication_v2/train_all.sh [moe]=moe_law_cpu/train.sh)
for name in $NAMES; do
  [[ -n ${ROOTS[$name]:-} ]] || { echo "unknown experiment $name: give v2 and/or moe" >&2; exit 2; }
  pkill -f "${DRIVERS[$name]}|commit_finished.sh ${ROOTS[$name]}|lawsearch sweep.*${ROOTS[$name]}" \
      || true
done
[[ $ACTION == stop ]] && exit 0
make -s .venv/.installed-stamp  # a fresh clone: the environment the drivers run in
FIRST=${FIRST:-moe}
start() {  # start NAME DRIVER ROOT WHAT
  local name=$1 driver=$2 root=$3 what=$4 niceness=0 workers=2
  [[ " $NAMES " == *" $name "* ]] || return 0
  [[ $name == "$FIRST" ]] || { niceness=5; workers=1; }
  local tree=/tmp/lawsearch-$name
  git worktree remove --force "$tree" 2> /dev/null || git worktree prune
  git worktree add --detach -q "$tree" HEAD
  ln -sfn "$MAIN/.venv" "$tree/.venv"
  (cd "$tree" && env PYTHONPATH="$tree" WORKERS=$workers setsid nohup nice -n "$niceness" "$driver" \
      "$MAIN/$root" > "/tmp/$name.driver.log" 2>&1 &)
  local commit="experiments/commit_finished.sh $root '$what'"
  (setsid nohup bash -c "while true; do sleep 900; $commit; done" > "/tmp/$name.commit.log" 2>&1 &)
  echo "$name: $driver on $root (worktree $tree, log /tmp/$name.driver.log)"
}
start v2 experiments/cpu_replication_v2/train_all.sh experiments/results/cpu_replication_v2 \
    "replication v2 runs"
start moe experiments/moe_law_cpu/train.sh experiments/results/moe_law_cpu "MoE law sweep runs"
