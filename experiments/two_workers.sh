# Sourced by the experiment drivers: `phase NAME SWEEP_ARG ROOT [SWEEP FLAGS...]` trains a sweep
# with two workers pinned to one core each (on 2 cores, two single-threaded runs train 1.2-1.5x
# the tokens/s of one run on both: bench_train_cpu_scales.py). They share the runs through claims;
# the phase ends when both do. Logs: $LOGS/NAME.worker{0,1}.log. Extra flags go to
# `lawsearch sweep` (e.g. --override train.batch_size=16). WORKERS=1: one unpinned worker instead
# (beside another experiment that holds the cores).
phase() {
  local name=$1 arg=$2 root=$3
  shift 3
  if [[ ${WORKERS:-2} == 1 ]]; then
    .venv/bin/lawsearch sweep --no-progress --config="configs/sweep.py:$arg" --root "$root" \
        "$@" >> "$LOGS/$name.worker0.log" 2>&1
    return
  fi
  for i in 0 1; do
    taskset -c "$i" .venv/bin/lawsearch sweep --no-progress \
        --config="configs/sweep.py:$arg" --root "$root" "$@" >> "$LOGS/$name.worker$i.log" 2>&1 &
  done
  wait
}
