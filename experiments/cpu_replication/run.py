"""The paper in miniature on a 2-core CPU (issue 13): from the trained runs to the paper's claims.

    JAX_PLATFORMS=cpu .venv/bin/python experiments/cpu_replication/run.py STAGE [STAGE ...]

Stages (each reads what the earlier ones wrote under --root, default
experiments/results/cpu_replication; `train_all.sh` runs them between its training phases):
  table    runs.csv: every finished run of fit/ and heldout/ (shape, N, D, seed, role, held-out
           loss and its standard error, train loss, tokens/s)
  fit      the multiplicative and additive laws on the fitting scales (law_*.json), bootstrap
           intervals of the optimum, progressive cross-scale validation beside the paper's
           figures, residual trends (fit.json, validation.csv)
  search   Algorithm 1 at the held-out scale with the multiplicative law: this CPU's measured
           roofline (hardware.json), LLaMA-3.2-shaped baseline as the target (search/)
  bench    decode throughput of the baseline, Panda and Surefire in the paper's protocol scaled
           to the recipe's context (256 in / 64 out, batches 1, 8, 32), against the roofline
           (bench.json)
  report   picks.csv (measured against predicted loss and throughput) and report/report.md with
           the fit report's plots
  downstream  the held-out picks on the paper's nine zero-shot tasks (`lawsearch eval --tasks
           all` into each run's result.json; about 8 min a run on 2 busy cores), downstream.csv, and
           accuracy_law.json (mean accuracy against loss); --every: all held-out runs
The stages are replication.py's functions (beside this file). A root trained with another recipe
than cpu (e.g. gpu_v2) is named once: `run.py --root ROOT --recipe gpu_v2 table ...` records it
in ROOT/recipe.json, which every later stage reads.
"""

import argparse
import sys

from lawsearch import hostmem
from lawsearch.errors import UserError

import replication  # beside this file: a script's own directory is on sys.path

STAGES = {"table": replication.table, "fit": replication.fit, "search": replication.search,
          "bench": replication.bench, "report": replication.report,
          "downstream": replication.downstream}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("stages", nargs="+", choices=STAGES)
  parser.add_argument("--root", default=replication.ROOT)
  parser.add_argument("--l-opt", default="empirical", choices=("empirical", "joint"),
                      help="fit: L_opt per scale, the paper's lowest loss or fitted with the law "
                           "(replication v2)")
  parser.add_argument("--every", action="store_true",
                      help="downstream: score every held-out run, not only the picks")
  parser.add_argument("--recipe", default="",
                      help="the root's training recipe, recorded in ROOT/recipe.json for every "
                           "later stage (default: the recorded one, else cpu)")
  args = parser.parse_args(argv)
  hostmem.keep_freed_memory()
  if args.recipe:
    try:
      replication.set_recipe(args.root, args.recipe)
    except UserError as e:
      sys.exit(f"run.py: {e}")
  for stage in args.stages:
    print(f"== {stage}", flush=True)
    if stage == "downstream":
      replication.downstream(args.root, every=args.every)
    elif stage == "fit":
      replication.fit(args.root, l_opt=args.l_opt)
    else:
      STAGES[stage](args.root)


if __name__ == "__main__":
  sys.exit(main())
