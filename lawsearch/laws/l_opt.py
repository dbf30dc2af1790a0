"""L_opt(N, D), the loss of the best architecture at N parameters and D tokens, in one place.

The conditional law predicts L = L_opt(N, D) * f(d/sqrt(N), r). Every value lawsearch accepts as
an L_opt source, with its one meaning:
  "empirical"     per scale of a runs table, the scale's lowest loss (the paper's way); tables only
  "column"        a runs table's own `l_opt` column; tables only
  "relative"      1 everywhere: losses are L / L_opt (a loss target from a baseline cancels it)
  "fit"           a Chinchilla law fitted on the table's runs (Algorithm 1, step 1); tables only
  "joint"         one level per scale fitted jointly with the conditional law (`laws.levels`);
                  `laws.fit_runs` resolves it, tables only
  "epoch", "hoffmann"   the published Chinchilla fits (Besiroglu et al. 2024; Hoffmann et al. 2022)
  a ChinchillaLaw its prediction at each (N, D)
  a number > 0    that value (a per-row array for a table)
  None            the caller did not say: a table's `l_opt` column when it has one, else
                  "empirical"; "relative" where there is no table (the search's candidates)
`parse` turns the CLI's text into one of these; `for_table` gives a table's per-row values,
`at` the values at candidate sizes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lawsearch.errors import UserError
from lawsearch.laws import runs_table
from lawsearch.laws.chinchilla import ChinchillaLaw

NAMES = ("empirical", "column", "relative", "fit", "joint", "epoch", "hoffmann")
_TABLE_ONLY = ("empirical", "column", "fit", "joint")


def parse(text: str):
  """An L_opt source from text: one of NAMES (the published fits as ChinchillaLaws) or a number."""
  named = {"epoch": ChinchillaLaw.epoch, "hoffmann": ChinchillaLaw.hoffmann}
  if text in named:
    return named[text]()
  if text in NAMES:
    return text
  try:
    value = float(text)
  except ValueError:
    raise UserError(f"L_opt {text!r}: use {', '.join(NAMES)} or a number") from None
  if not (math.isfinite(value) and value > 0):
    raise UserError(f"L_opt {text!r}: a number must be positive and finite")
  return value


def _chinchilla(source) -> bool:
  return hasattr(source, "predict") and hasattr(source, "alpha")


def for_table(df: pd.DataFrame | runs_table.RunsTable, source) -> np.ndarray:
  """L_opt of each row of a runs table, float64 [rows] (see the module doc for `source`)."""
  table = runs_table.RunsTable.of(df, "L_opt")
  if source is None:
    source = "column" if "l_opt" in table.frame.columns else "empirical"
  if isinstance(source, str):
    if source == "column":
      return table.column("l_opt", "l_opt='column'")
    if source == "empirical":
      loss = table.column("loss", "l_opt='empirical'")
      return pd.Series(loss).groupby(table.scale).transform("min").to_numpy()
    if source == "relative":
      return np.ones(len(table))
    if source == "fit":
      return for_table(table, fit_chinchilla(table))
    if source == "joint":
      raise UserError("l_opt='joint' is fitted together with the law: use laws.fit_runs(..., "
                      "l_opt='joint') or `lawsearch fit --l-opt joint`")
    return for_table(table, parse(source))  # "epoch", "hoffmann", or a number as text
  if _chinchilla(source):
    runs_table.check_columns(table.frame, ["n_params", "tokens"], "L_opt from a ChinchillaLaw")
    n, d = table.column("n_params", ""), table.column("tokens", "")
    return np.asarray(source.predict(n, d), dtype=np.float64)
  values = np.broadcast_to(np.asarray(source, dtype=np.float64), (len(table),))
  return runs_table.check_positive_finite(values, "l_opt")


def at(source, n_params: np.ndarray, tokens: float) -> np.ndarray:
  """L_opt at candidate sizes `n_params` (float64 array) trained on `tokens` tokens: None or
  "relative" (1: relative losses), a ChinchillaLaw, "epoch"/"hoffmann", or a number."""
  n_params = np.asarray(n_params, np.float64)
  if source is None or source == "relative":
    return np.ones_like(n_params)
  if isinstance(source, str):
    if source in _TABLE_ONLY:
      raise UserError(f"L_opt {source!r} needs a runs table; at candidate sizes give a number, "
                      "a ChinchillaLaw, 'epoch', 'hoffmann' or 'relative'")
    source = parse(source)
  if _chinchilla(source):
    return np.asarray(source.predict(n_params, np.full_like(n_params, tokens)), np.float64)
  value = float(source) if np.ndim(source) == 0 else None
  if value is None or not (math.isfinite(value) and value > 0):
    raise UserError(f"l_opt must be a positive loss, a ChinchillaLaw or None, got {source!r}")
  return np.full_like(n_params, value)


def fit_chinchilla(df: pd.DataFrame | runs_table.RunsTable) -> ChinchillaLaw:
  """A Chinchilla law fitted on a runs table's n_params, tokens and loss ("fit")."""
  table = runs_table.RunsTable.of(df, "L_opt 'fit'")
  runs_table.check_columns(table.frame, ["n_params", "tokens", "loss"], "L_opt 'fit'")
  return ChinchillaLaw.fit(*(table.frame[c] for c in ("n_params", "tokens", "loss")))


def describe(df: pd.DataFrame | runs_table.RunsTable | None, source) -> str:
  """A short description of a source, for records and reports."""
  if isinstance(df, runs_table.RunsTable):
    df = df.frame
  if source is None:
    return ("column" if df is not None and "l_opt" in df.columns else "empirical"
            if df is not None else "relative")
  if isinstance(source, str):
    return source
  if _chinchilla(source):
    return f"chinchilla({source!r})"
  return "given"
