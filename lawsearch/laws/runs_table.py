"""Runs tables as the fitters read them: a `RunsTable` is checked once, when it is built, and
every stage of the fit takes it already checked; the column and value checks name what is wrong
and how to fix it; runs are grouped into scales. L_opt sources live in `laws.l_opt`.

    table = RunsTable.of(df)        # checks every numeric column present, labels the scales
    table.x, table.r, table.loss    # float64 [rows]: d/sqrt(N), the MLP-to-attention ratio, loss
    table.sparsity                  # float64 [rows, 3]: (experts, top-k, granularity), dense 1s
    table.rows(mask)                # a checked subset, not checked again

N is the parameters a token uses: `n_active` where the table has it (a mixture of experts counts
its top-k experts; `runs.collect` writes it), else n_params (the same for a dense MLP). Scales
are grouped by that N.
"""

from __future__ import annotations

import dataclasses
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


# The numeric columns the laws read, checked positive and finite wherever a table has them.
NUMERIC = ("n_params", "n_active", "d_model", "mlp_attn_ratio", "loss", "tokens", "weight",
           "l_opt")


@dataclasses.dataclass(frozen=True, eq=False)
class RunsTable:
  """A runs table, checked: each of `NUMERIC` the frame has is positive and finite, and the rows
  carry a `scale` label when the frame has one or n_params and tokens to derive it.

  Build it with `RunsTable.of`; the bare constructor is for frames derived from a checked table
  (its rows, seed means, an added checked column). A column a stage needs but the table lacks is
  named when the stage asks for it. frame: the rows (pandas, its index kept)."""

  frame: pd.DataFrame

  @classmethod
  def of(cls, df, what: str = "a runs table") -> "RunsTable":
    """`df` checked (a RunsTable is returned as it is); UserError naming the first bad column."""
    if isinstance(df, RunsTable):
      return df
    if not isinstance(df, pd.DataFrame):
      raise UserError(f"{what} needs a pandas DataFrame, got {type(df).__name__}")
    for column in NUMERIC:
      if column in df.columns:
        check_positive_finite(df[column], column)
    if "scale" not in df.columns and {"n_params", "tokens"} <= set(df.columns):
      df = df.assign(scale=_derived_labels(_n_column(df), df["tokens"].to_numpy(np.float64)))
    return cls(df)

  def __len__(self) -> int:
    return len(self.frame)

  def column(self, name: str, needed_for: str) -> np.ndarray:
    """Column `name` as float64 [rows]; UserError naming `needed_for` when the table lacks it."""
    check_columns(self.frame, [name], needed_for)
    return self.frame[name].to_numpy(np.float64)

  @property
  def n(self) -> np.ndarray:
    """N, float64 [rows]: the parameters a token uses (module doc)."""
    check_columns(self.frame, ["n_params"], "N")
    return _n_column(self.frame)

  @property
  def x(self) -> np.ndarray:
    """d_model / sqrt(N), float64 [rows]."""
    return self.column("d_model", "d/sqrt(N)") / np.sqrt(self.n)

  @property
  def sparsity(self) -> np.ndarray:
    """(E experts, top-k, granularity G = ffn_dim / expert_ffn_dim) per row, float64 [rows, 3];
    (1, 1, 1) for a dense MLP (n_experts absent, NaN or at most 1)."""
    def col(name):
      return (self.frame[name].to_numpy(np.float64) if name in self.frame.columns
              else np.full(len(self.frame), np.nan))
    experts, top_k, width = col("n_experts"), col("top_k"), col("expert_ffn_dim")
    moe = np.nan_to_num(experts) > 1
    with np.errstate(divide="ignore", invalid="ignore"):
      granularity = np.where(moe & (np.nan_to_num(width) > 0), col("ffn_dim") / width, 1.0)
    return np.stack([np.where(moe, experts, 1.0),
                     np.where(moe & (np.nan_to_num(top_k) >= 1), top_k, 1.0), granularity], -1)

  @property
  def r(self) -> np.ndarray:
    return self.column("mlp_attn_ratio", "the MLP-to-attention ratio")

  @property
  def loss(self) -> np.ndarray:
    return self.column("loss", "a measured loss")

  @property
  def weight(self) -> np.ndarray:
    """Each row's least-squares weight (the `weight` column; ones without it)."""
    return (self.frame["weight"].to_numpy(np.float64) if "weight" in self.frame.columns
            else np.ones(len(self.frame)))

  @property
  def scale(self) -> np.ndarray:
    """Each row's scale label (object [rows]); UserError when it cannot be derived."""
    if "scale" not in self.frame.columns:
      check_columns(self.frame, ["n_params", "tokens"], "grouping rows into scales")
    return self.frame["scale"].to_numpy()

  def rows(self, mask) -> "RunsTable":
    """The rows `mask` (a boolean [rows] array) selects, still checked."""
    return RunsTable(self.frame[np.asarray(mask, bool)])

  def assign(self, **columns) -> "RunsTable":
    """The table with `columns` added or replaced (the numeric ones checked)."""
    for name, values in columns.items():
      if name in NUMERIC:
        check_positive_finite(values, name)
    return RunsTable(self.frame.assign(**columns))


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


def scale_labels(df: pd.DataFrame | RunsTable) -> np.ndarray:
  """One label per row naming its training scale (see `RunsTable.scale`, `_derived_labels`)."""
  return RunsTable.of(df, "grouping rows into scales").scale


def _n_column(df: pd.DataFrame) -> np.ndarray:
  """N of each row, float64: n_active where the table has it, else n_params (module doc)."""
  return df["n_active" if "n_active" in df.columns else "n_params"].to_numpy(np.float64)


def _derived_labels(n_params: np.ndarray, tokens: np.ndarray, gap: float = 0.1) -> np.ndarray:
  """Scale labels from N and tokens (float64 [rows], checked): rows are grouped by each, split
  where sorted values jump by more than `gap` (relative), since architectures of one nominal
  scale differ slightly in N. Such a group is named by its median N ("81.4M", "1.2B"), followed
  by its median tokens ("81.4M@8B tokens") where groups of one N differ in tokens."""
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


def median_size(df: pd.DataFrame | RunsTable, rows: np.ndarray) -> str:
  """The label "N ~ 81.4M" ("N ~ 1.2B"): the median n_params of the rows the mask `rows` selects."""
  frame = df.frame if isinstance(df, RunsTable) else df
  return f"N ~ {count(np.median(_n_column(frame)[rows]))}"


def scale_order(df: pd.DataFrame | RunsTable, labels: np.ndarray) -> list:
  """The distinct scale labels sorted by their median n_params (smallest first)."""
  n = _n_column(df.frame if isinstance(df, RunsTable) else df)
  distinct = list(pd.unique(labels))
  return sorted(distinct, key=lambda s: float(np.median(n[labels == s])))
