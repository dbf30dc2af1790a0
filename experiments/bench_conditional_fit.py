"""Benchmark: a 200-point conditional-law fit and 1,000 bootstrap refits, JAX against scipy.

Data: a synthetic sweep (the paper's 80M-297M law + 0.3% noise, 80M..1B, r in [0.5, 5]) cut to
200 points. Timed after compilation, medians of --repeats:

  fit        lawsearch.laws.ConditionalLaw.fit (jaxopt Levenberg-Marquardt, 8 vmapped starts,
             float64) against scipy.optimize.least_squares(method="lm") from the same 8 starts
  bootstrap  lawsearch.laws.bootstrap, 1,000 refits in one vmapped solve, against a Python loop
             of scipy least_squares(method="lm") over the same 1,000 resamples

Targets: the fit under 50 ms, the bootstrap under 5 s on 2 cores.

    .venv/bin/python experiments/bench_conditional_fit.py [--repeats 5] [--n-boot 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # pylint: disable=g-import-not-at-top
from scipy import optimize  # pylint: disable=g-import-not-at-top

from lawsearch.laws import (  # pylint: disable=g-import-not-at-top
    ConditionalLaw, bootstrap, forms, synthetic_sweep)
from lawsearch.laws import levenberg_marquardt as lm  # pylint: disable=g-import-not-at-top
from lawsearch.laws.conditional import prepare  # pylint: disable=g-import-not-at-top


def residual_np(free, x, r, l_opt, loss, sqrt_w):
  """The multiplicative law's residuals in numpy (b0 = 1, the fit's gauge)."""
  a0, a1, a2, b1, b2 = free
  pred = (a0 + a1 * np.log(x) + a2 / x) * (1.0 + b1 * np.log(r) + b2 / r) * l_opt
  return sqrt_w * (pred - loss)


def timed(fn, repeats):
  fn()  # compile / warm up
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times), out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--n-boot", type=int, default=1000)
  args = parser.parse_args()
  df = synthetic_sweep(scales=("80M", "145M", "297M", "1B"), r_grid=np.geomspace(0.5, 5, 12),
                       seed=0)
  df = df[df["mlp_attn_ratio"].between(0.5, 5.0)].iloc[:200]
  if len(df) < 200:
    raise SystemExit(f"only {len(df)} points")
  x, r, lo, loss, _, _ = prepare(df, None, (0.5, 5.0), 5)
  free = forms.FORMS["multiplicative"].free_mask()
  starts = lm.initial_starts("multiplicative", x, r, lo, loss)
  ones = np.ones_like(loss)
  print(f"points: {len(df)}, starts: {len(starts)}, cores: {os.cpu_count()}")

  t_fit, law = timed(lambda: ConditionalLaw.fit(df), args.repeats)

  def scipy_fit():
    return min((optimize.least_squares(residual_np, s[free], method="lm",
                                       args=(x, r, lo, loss, ones)) for s in starts),
               key=lambda o: o.cost)

  t_scipy, best = timed(scipy_fit, args.repeats)
  print(f"\nfit: sum of squares jax {law.fit_info.objective:.12g}, scipy {2 * best.cost:.12g} "
        f"(relative {abs(law.fit_info.objective / (2 * best.cost) - 1):.1e})")
  print(f"  jax {t_fit * 1e3:.1f} ms (target < 50 ms), scipy {t_scipy * 1e3:.1f} ms: "
        f"{t_scipy / t_fit:.1f}x")

  boot_repeats = max(1, args.repeats // 2)
  t_boot, boot = timed(lambda: bootstrap(df, l_opt=None, n_boot=args.n_boot, seed=0, law=law),
                       boot_repeats)
  rng = np.random.default_rng(0)  # the bootstrap's own resampling, reproduced
  weights = rng.multinomial(loss.size, np.full(loss.size, 1.0 / loss.size), size=args.n_boot)
  theta0 = np.asarray(law.params)[free]

  def scipy_boot():
    return np.array([optimize.least_squares(residual_np, theta0, method="lm",
                                            args=(x, r, lo, loss, np.sqrt(w))).x
                     for w in weights])

  t = time.perf_counter()
  theirs = scipy_boot()
  t_scipy_boot = time.perf_counter() - t
  ours = boot.samples[:, free]
  print(f"\nbootstrap: {args.n_boot} refits, {boot.n_failed} failed; max |jax - scipy| coefficient "
        f"{np.max(np.abs(ours - theirs)):.1e}")
  print(f"  jax {t_boot:.3f} s (median of {boot_repeats}; target < 5 s), scipy loop "
        f"{t_scipy_boot:.2f} s: {t_scipy_boot / t_boot:.1f}x")


if __name__ == "__main__":
  main()
