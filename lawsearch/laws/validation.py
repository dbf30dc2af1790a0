"""Cross-scale validation (the paper's progressive scheme) and residual diagnostics.

`cross_scale_validation` fits on smaller scales and predicts a larger one: with scales
s1 < s2 < ... < sk, the default tasks are s1 -> s2, s1+s2 -> s3, ..., s1..s(k-1) -> sk (PAPER.md
section 3: 80M -> 145M, 80M+145M -> 297M, 80M..297M -> 1B). Each task reports the MSE and the
Spearman rank correlation of predicted against observed loss on the held-out scale.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lawsearch.errors import UserError
from lawsearch.laws import l_opt as l_opt_lib, runs_table
from lawsearch.laws.conditional import DEFAULT_R_RANGE, ConditionalLaw, prepare


def spearman(a, b) -> float:
  """Spearman rank correlation (average ranks for ties); NaN below 2 points or with no spread."""
  a, b = pd.Series(np.asarray(a, float)).rank(), pd.Series(np.asarray(b, float)).rank()
  if len(a) < 2 or a.std() == 0 or b.std() == 0:
    return float("nan")
  return float(np.corrcoef(a, b)[0, 1])


def _name(scales) -> str:
  return "+".join(str(s) for s in scales)


def cross_scale_validation(df: pd.DataFrame, tasks: Sequence[tuple[Sequence, object]] | None = None,
                           form: str = "multiplicative", l_opt=None,
                           r_range=DEFAULT_R_RANGE, **fit_options) -> pd.DataFrame:
  """Fit on smaller scales, predict a larger one: one row per task.

  df: a results table (see `ConditionalLaw.fit`); scales come from its `scale` column, else from
  grouping n_params and tokens (`runs_table.scale_labels`). tasks: (train scales, test scale) pairs of
  scale labels; default the progressive scheme over the scales present. L_opt is resolved on the
  whole table first (the empirical L_opt of the held-out scale is its lowest observed loss, as in
  the paper). The r filter applies to training and held-out rows alike.
  Returns columns task, n_train, n_test, mse, spearman, x_star, r_star.
  """
  labels = runs_table.scale_labels(df)
  order = runs_table.scale_order(df, labels)
  if len(order) < 2:
    raise UserError(f"cross-scale validation needs at least two scales, the table has one "
                     f"({order[0] if order else 'none'}); add runs at another scale or give a "
                     "`scale` column")
  if tasks is None:
    tasks = [(order[:i], order[i]) for i in range(1, len(order))]
  table = df.assign(l_opt=l_opt_lib.for_table(df, l_opt))
  rows = []
  for train, test in tasks:
    train = list(train)
    unknown = [s for s in [*train, test] if s not in order]
    if unknown:
      raise UserError(f"unknown scale(s) {unknown} in task {train} -> {test}; known: {order}")
    try:
      law = ConditionalLaw.fit(table[np.isin(labels, train)], form, l_opt="column",
                               r_range=r_range, **fit_options)
    except ValueError as e:  # say which task could not be fitted
      raise UserError(f"task {_name(train)} -> {test}: {e}") from e
    held = table[labels == test]
    x, r, lo, loss, _, _ = prepare(held, "column", r_range, 0)
    pred = np.asarray(law.predict_xr(x, r, lo), dtype=np.float64)
    x_star, r_star = _optimum_or_nan(law)
    rows.append(dict(task=f"{_name(train)} -> {test}", n_train=law.fit_info.n_points,
                     n_test=int(loss.size), mse=float(np.mean((pred - loss) ** 2)),
                     spearman=spearman(pred, loss), x_star=x_star, r_star=r_star))
  return pd.DataFrame(rows)


def _optimum_or_nan(law: ConditionalLaw) -> tuple[float, float]:
  try:
    return law.optimum()
  except ValueError:
    return float("nan"), float("nan")


def residual_diagnostics(law: ConditionalLaw, df: pd.DataFrame, l_opt=None,
                         r_range=DEFAULT_R_RANGE, threshold: float = 3.0) -> pd.DataFrame:
  """Trends of the residuals (observed - predicted) against ln x, ln r, ln N and ln x * ln r.

  A trend against x, r or N hints that the law's shape (or L_opt) misses something; one against
  ln x * ln r hints that the separable form does not hold (an interaction). For each variable:
  the Spearman correlation rho with the residuals and z = rho * sqrt(n - 1) (about N(0, 1) with no
  trend); `flagged` when |z| > threshold.
  """
  x, r, lo, loss, _, _ = prepare(df, l_opt, r_range, 0)
  keep = np.ones(len(df), bool) if r_range is None else (
      (df["mlp_attn_ratio"].to_numpy(float) >= r_range[0])
      & (df["mlp_attn_ratio"].to_numpy(float) <= r_range[1]))
  n = df["n_params"].to_numpy(float)[keep]
  resid = loss - np.asarray(law.predict_xr(x, r, lo), dtype=np.float64)
  variables = {"ln_x": np.log(x), "ln_r": np.log(r), "ln_n": np.log(n),
               "ln_x*ln_r": (np.log(x) - np.log(x).mean()) * (np.log(r) - np.log(r).mean())}
  rows = []
  for name, v in variables.items():
    rho = spearman(v, resid)
    z = rho * np.sqrt(max(resid.size - 1, 0))
    rows.append(dict(variable=name, spearman=rho, z=z, flagged=bool(abs(z) > threshold)))
  return pd.DataFrame(rows)
