"""Uncertainty of a conditional-law fit: vmapped bootstrap refits and percentile intervals.

Each replicate resamples the fitted rows with replacement, expressed as multinomial counts used as
least-squares weights (times the rows' own `weight`), so every replicate has the same shapes and
all of them run as one vmapped jaxopt Levenberg-Marquardt solve from the full-data estimate. A
caller may give the replicates' weights instead (`laws.noise.seed_resampling_weights` resamples
shapes and their seeds). L_opt per row is held at its full-data value (the empirical minimum per
scale is not re-derived per replicate).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pandas as pd

from lawsearch.errors import UserError
from lawsearch.laws import forms, l_opt as l_opt_lib, optimum as optimum_lib
from lawsearch.laws import levenberg_marquardt as lm
from lawsearch.laws.conditional import DEFAULT_R_RANGE, ConditionalLaw, x_and_r, prepare
from lawsearch.laws.precision import float64
from lawsearch.laws.runs_table import RunsTable


@dataclasses.dataclass(frozen=True)
class Bootstrap:
  """Bootstrap of a conditional-law fit."""
  law: ConditionalLaw           # the full-data fit
  samples: np.ndarray           # [B, k] coefficients of the converged replicates
  optima: np.ndarray            # [B, 2] (x*, r*) per replicate (NaN: no interior minimum)
  n_failed: int                 # replicates that did not converge (dropped)
  level: float                  # interval coverage, e.g. 0.95

  def _interval(self, values: np.ndarray, estimate) -> pd.DataFrame:
    lo, hi = 50 * (1 - self.level), 50 * (1 + self.level)
    return pd.DataFrame({"estimate": estimate, "low": np.nanpercentile(values, lo, axis=0),
                         "high": np.nanpercentile(values, hi, axis=0)})

  def coefficients(self) -> pd.DataFrame:
    """Percentile intervals per coefficient (rows: names; columns estimate, low, high)."""
    out = self._interval(self.samples, np.asarray(self.law.params))
    out.index = list(self.law.coefficients)
    return out

  def optimum(self) -> pd.DataFrame:
    """Percentile intervals for x* = d/sqrt(N) and r* (replicates without a minimum ignored)."""
    out = self._interval(self.optima, np.asarray(self.law.optimum()))
    out.index = ["x_star", "r_star"]
    return out

  def predictions(self, df: pd.DataFrame, l_opt=None) -> pd.DataFrame:
    """Percentile intervals of the predicted loss per row of `df` (see `ConditionalLaw.predict`)."""
    table = RunsTable.of(df, "bootstrap predictions")
    x, r = x_and_r(table, "bootstrap predictions")
    lo = l_opt_lib.for_table(table, l_opt)
    with float64():  # every replicate at once: coefficients [B, 1, k] against rows [n]
      per = np.asarray(forms.FORMS[self.law.form].fn(jnp.asarray(self.samples)[:, None, :], x, r,
                                                     lo, table.sparsity, table.n),
                       dtype=np.float64)
    out = self._interval(per.reshape(len(self.samples), len(table)),
                         self.law.predict(table, l_opt))
    out.index = table.frame.index
    return out


def bootstrap(df: pd.DataFrame | RunsTable, form: str = "multiplicative", l_opt=None,
              r_range=DEFAULT_R_RANGE, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
              maxiter: int = 100, tol: float = 1e-6,
              law: ConditionalLaw | None = None, weights: np.ndarray | None = None) -> Bootstrap:
  """`n_boot` bootstrap refits of the conditional law on `df` (one vmapped LM solve).

  law: the full-data fit when already computed (else it is fitted here with the same options).
  weights: [n_boot, rows of df] each replicate's least-squares weights (default: multinomial
  resampling of the rows, times their `weight` column).
  """
  if not 0 < level < 1:
    raise UserError(f"level is a coverage in (0, 1), got {level!r}")
  if n_boot < 1:
    raise UserError(f"n_boot must be positive, got {n_boot!r}")
  spec = forms.get_form(form)
  table = RunsTable.of(df, "the bootstrap")
  law = ConditionalLaw.fit(table, form, l_opt=l_opt, r_range=r_range) if law is None else law
  x, r, lo, loss, w, keep = prepare(table, l_opt, r_range, spec.n_free)
  if weights is None:
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(loss.size, np.full(loss.size, 1.0 / loss.size), size=n_boot) * w
  elif np.shape(weights) != (n_boot, len(table)):
    raise UserError(f"bootstrap weights have shape {np.shape(weights)}; need (n_boot, rows) = "
                    f"{(n_boot, len(table))}")
  else:
    weights = np.asarray(weights, np.float64)[:, keep]
  starts = np.broadcast_to(np.asarray(law.params), (n_boot, len(spec.names)))
  theta, _, gnorm, _ = lm.solve_many(form, x, r, lo, loss, starts, weights, maxiter,
                                     sparsity=table.sparsity[keep], n_params=table.n[keep])
  ok = np.isfinite(theta).all(axis=1) & (gnorm <= tol)
  samples = theta[ok]
  return Bootstrap(law=law, samples=samples,
                   optima=np.stack(optimum_lib.optimum_batch(form, samples), axis=-1)
                   if len(samples) else np.empty((0, 2)),
                   n_failed=int((~ok).sum()), level=level)
