"""Benchmark: the 4,500-start Chinchilla fit in JAX against scipy L-BFGS-B over the same grid.

The replication's objective (PAPER.md section 3) on ../shared/data/chinchilla_svg_extracted.csv
(D = C / (6N), the 5 highest losses dropped, 240 points), every start of the 4,500-point grid:

  jax          lawsearch.laws.ChinchillaLaw.fit (lockstep trust-region Newton screen on all starts,
               refine the best 128, jaxopt BFGS polish of the best 8), float64; the first call
               (trace + compile + run) and the median of --repeats calls after it
  scipy        scipy.optimize.minimize(method="L-BFGS-B") from every start in a Python loop, with
               an analytic gradient (numpy), best kept: the strong peer
  scipy-fd     the same with finite-difference gradients, as in the replication notebook; run on
               every --fd-stride-th start and extrapolated to 4,500 (label says so), or all starts
               with --fd-stride 1

Prints both objectives against the true minimum 1.018274e-3 and the speed-up ratios.

    .venv/bin/python experiments/bench_chinchilla_fit.py [--repeats 5] [--fd-stride 10]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # pylint: disable=g-import-not-at-top
import pandas as pd  # pylint: disable=g-import-not-at-top
from scipy import optimize  # pylint: disable=g-import-not-at-top

from lawsearch.laws import ChinchillaLaw  # pylint: disable=g-import-not-at-top
from lawsearch.laws.chinchilla_fit import default_grid  # pylint: disable=g-import-not-at-top
from lawsearch.laws.chinchilla_reference import huber_objective_and_grad  # pylint: disable=g-import-not-at-top

DATA = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / (
    "chinchilla_svg_extracted.csv")
MINIMUM = 1.018274e-3


def scipy_loop(starts, data, analytic: bool):
  best = None
  for s in starts:
    if analytic:
      r = optimize.minimize(huber_objective_and_grad, s, args=data, jac=True, method="L-BFGS-B")
    else:
      r = optimize.minimize(lambda th, *d: huber_objective_and_grad(th, *d)[0], s, args=data,
                            method="L-BFGS-B")  # finite-difference gradients
    if best is None or r.fun < best.fun:
      best = r
  return best


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--fd-stride", type=int, default=10,
                      help="run the finite-difference peer on every k-th start (1: all)")
  args = parser.parse_args()
  if not DATA.exists():
    raise SystemExit(f"data not found: {DATA}")
  df = pd.read_csv(DATA)
  n, c, loss = (df[k].to_numpy(float) for k in ("Model Size", "Training FLOP", "loss"))
  d = c / (6 * n)
  keep = np.sort(np.argsort(loss)[:-5])
  data = (np.log(n[keep]), np.log(d[keep]), np.log(loss[keep]))
  grid = default_grid()
  print(f"data: {keep.size} points, grid: {len(grid)} starts, cores: {os.cpu_count()}")

  t = time.perf_counter()
  law = ChinchillaLaw.fit(n, d, loss, drop_highest=5)
  jax_first = time.perf_counter() - t
  runs = []
  for _ in range(args.repeats):
    t = time.perf_counter()
    law = ChinchillaLaw.fit(n, d, loss, drop_highest=5)
    runs.append(time.perf_counter() - t)
  jax_run = statistics.median(runs)

  t = time.perf_counter()
  best = scipy_loop(grid, data, analytic=True)
  scipy_time = time.perf_counter() - t

  fd_starts = grid[::args.fd_stride]
  t = time.perf_counter()
  best_fd = scipy_loop(fd_starts, data, analytic=False)
  fd_time = (time.perf_counter() - t) * len(grid) / len(fd_starts)
  fd_label = "all starts" if args.fd_stride == 1 else (
      f"{len(fd_starts)} starts, extrapolated to {len(grid)}")

  f_jax = huber_objective_and_grad(law.log_params, *data)[0]
  print(f"\nobjective (true minimum {MINIMUM:.6e}):")
  print(f"  jax       {f_jax:.10e}  (|diff| {abs(f_jax - MINIMUM):.1e})  {law!r}")
  print(f"  scipy     {best.fun:.10e}  (|diff| {abs(best.fun - MINIMUM):.1e})")
  print(f"  scipy-fd  {best_fd.fun:.10e}  ({fd_label})")
  print(f"  jax - scipy best: {f_jax - best.fun:+.2e} (<= 1e-9 required)")
  print("\nseconds for all starts:")
  print(f"  jax after compile (median of {args.repeats}): {jax_run:.3f}   runs {np.round(runs, 3)}")
  print(f"  jax first call (trace + compile + run):     {jax_first:.3f}")
  print(f"  scipy L-BFGS-B, analytic gradient:          {scipy_time:.2f}")
  print(f"  scipy L-BFGS-B, finite differences:         {fd_time:.2f}  ({fd_label})")
  print("\nspeed-up against scipy (analytic gradient):")
  print(f"  after compile:       {scipy_time / jax_run:.1f}x  (target >= 10x)")
  print(f"  including compile:   {scipy_time / jax_first:.1f}x  (target >= 5x)")
  print(f"speed-up against scipy (finite differences): {fd_time / jax_run:.0f}x after compile, "
        f"{fd_time / jax_first:.0f}x including compile")


if __name__ == "__main__":
  main()
