"""Runs tables as the fitters read them: column and value checks (each naming what is wrong and
how to fix it) and the grouping of runs into scales. L_opt sources live in `laws.l_opt`."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from lawsearch.errors import UserError


def check_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
  """ValueError if `df` lacks any of `columns` (listing what it has)."""
  if not isinstance(df, pd.DataFrame):
    raise UserError(f"{what} needs a pandas DataFrame, got {type(df).__name__}")
  missing = [c for c in columns if c not in df.columns]
  if missing:
    raise UserError(f"{what}: missing column(s) {missing}; the table has {list(df.columns)}")


def check_positive_finite(values, name: str) -> np.ndarray:
  """float64 array of `values`; ValueError on NaN, infinite or non-positive entries."""
  try:
    arr = np.asarray(values, dtype=np.float64)
  except (TypeError, ValueError):
    raise UserError(f"{name} must be numbers (an array or a sequence of them), got "
                    f"{type(values).__name__} {values!r}"[:300]) from None
  bad = ~np.isfinite(arr) | (arr <= 0)
  if bad.any():
    idx = np.flatnonzero(bad.ravel())
    first = arr.ravel()[idx[0]]
    kind = "NaN" if np.isnan(first) else "infinite" if np.isinf(first) else "non-positive"
    raise UserError(f"{name}: {idx.size} NaN, infinite or non-positive value(s) (first at row "
                     f"{idx[0]}: {first!r}, {kind}); drop or fix those rows")
  return arr


def check_enough_points(n_points: int, n_coefficients: int, what: str) -> None:
  """ValueError when there are not more points than coefficients."""
  if n_points <= n_coefficients:
    raise UserError(f"{what}: {n_points} point(s) for {n_coefficients} coefficients; need more "
                     f"than {n_coefficients} points")


def _clusters(values: np.ndarray, gap: float) -> np.ndarray:
  """Integer labels for positive values: sorted, a new group starts after a ratio gap > 1 + gap."""
  order = np.argsort(values, kind="stable")
  sorted_values = values[order]
  starts = np.concatenate([[0], (sorted_values[1:] > sorted_values[:-1] * (1.0 + gap)).astype(int)])
  labels = np.empty(values.size, dtype=np.int64)
  labels[order] = np.cumsum(starts)
  return labels


def scale_labels(df: pd.DataFrame, gap: float = 0.1) -> np.ndarray:
  """One label per row naming its training scale.

  The `scale` column when present; otherwise rows are grouped by n_params and by tokens, each
  split where sorted values jump by more than `gap` (relative), since architectures of one nominal
  scale differ slightly in N. Such a group is named by its median N ("81.4M", "1.2B"), followed by
  its median tokens ("81.4M@8B tokens") where groups of one N differ in tokens.
  """
  if "scale" in df.columns:
    return df["scale"].to_numpy()
  check_columns(df, ["n_params", "tokens"], "grouping rows into scales")
  n_params = check_positive_finite(df["n_params"], "n_params")
  tokens = check_positive_finite(df["tokens"], "tokens")
  n, d = _clusters(n_params, gap), _clusters(tokens, gap)
  names = {}
  for group in np.unique(n):
    rows = n == group
    name, budgets = count(np.median(n_params[rows])), np.unique(d[rows])
    for budget in budgets:
      both = rows & (d == budget)
      names[group, budget] = (name if len(budgets) == 1 else
                              f"{name}@{count(np.median(tokens[both]))} tokens")
  return np.array([names[key] for key in zip(n, d)], dtype=object)


def count(value: float) -> str:
  """A count in the paper's style: 81.4M, 1.2B, 980k."""
  for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
    if value >= scale:
      return f"{value / scale:.3g}{unit}"
  return f"{value:.3g}"


def median_size(df: pd.DataFrame, rows: np.ndarray) -> str:
  """The label "N ~ 81.4M" ("N ~ 1.2B"): the median n_params of the rows the mask `rows` selects."""
  return f"N ~ {count(np.median(df['n_params'].to_numpy(np.float64)[rows]))}"


def scale_order(df: pd.DataFrame, labels: np.ndarray) -> list:
  """The distinct scale labels sorted by their median n_params (smallest first)."""
  n = np.asarray(df["n_params"], dtype=np.float64)
  distinct = list(pd.unique(labels))
  return sorted(distinct, key=lambda s: float(np.median(n[labels == s])))
