"""The fit stage's one entry point: a runs table in, everything `lawsearch fit` reports out.

    summary = laws.fit_runs(table, "multiplicative", l_opt="empirical", n_boot=1000)
    summary.law, summary.coefficients, summary.optimum, summary.validation, summary.diagnostics

The CLI prints a FitSummary, the replication stores it, a notebook shows its tables;
`assess(law, table)` gives the validation and residual trends of any law (the report's)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from lawsearch.errors import UserError
from lawsearch.laws.bootstrap import bootstrap
from lawsearch.laws.conditional import DEFAULT_R_RANGE, ConditionalLaw
from lawsearch.laws.validation import cross_scale_validation, residual_diagnostics


@dataclasses.dataclass(frozen=True)
class Assessment:
  """How a law stands on a runs table: cross-scale validation (refits on the smaller scales,
  predicting the next; None with the reason when it cannot run) and residual trends."""

  validation: pd.DataFrame | None
  validation_skipped: str | None
  diagnostics: pd.DataFrame

  @property
  def flagged(self) -> list[str]:
    """Variables whose residual trend is flagged (|z| > 3)."""
    return self.diagnostics[self.diagnostics["flagged"]]["variable"].tolist()


@dataclasses.dataclass(frozen=True)
class FitSummary:
  """A law fitted on a runs table, with what is known of it.

  coefficients: one row per coefficient (estimate; low and high with a bootstrap). optimum:
  (d/sqrt(N)*, r*), or None with `no_optimum` saying why; optimum_interval: rows x_star, r_star
  (low, high) with a bootstrap. assessment: validation (unless validate=False) and residual
  trends."""

  law: ConditionalLaw
  coefficients: pd.DataFrame
  optimum: tuple[float, float] | None
  no_optimum: str | None
  optimum_interval: pd.DataFrame | None
  n_boot: int
  n_failed: int
  level: float
  assessment: Assessment

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready: coefficients, MSE, points, the optimum with its interval, validation, trends."""
    info = self.law.fit_info
    out: dict[str, Any] = {"form": self.law.form, "coefficients": self.law.coefficients,
                           "mse": info.mse, "n_points": info.n_points,
                           "n_excluded": info.n_excluded}
    if self.optimum is None:
      out["optimum"] = {"error": self.no_optimum}
    else:
      out["optimum"] = {"d_over_sqrt_n": self.optimum[0], "mlp_attn_ratio": self.optimum[1]}
      if self.optimum_interval is not None:
        bounds = self.optimum_interval
        out["optimum"].update(
            d_over_sqrt_n_95=[bounds.loc["x_star", "low"], bounds.loc["x_star", "high"]],
            mlp_attn_ratio_95=[bounds.loc["r_star", "low"], bounds.loc["r_star", "high"]],
            bootstrap_refits=self.n_boot, bootstrap_failed=self.n_failed)
    out["residual_trends"] = self.assessment.diagnostics.to_dict("records")
    if self.assessment.validation is not None:
      out["validation"] = self.assessment.validation.to_dict("records")
    else:
      out["validation_error"] = self.assessment.validation_skipped
    return out


def assess(law: ConditionalLaw, df: pd.DataFrame, l_opt=None, r_range=None,
           validate: bool = True) -> Assessment:
  """`law` on `df`: cross-scale validation of its form (with `validate`) and residual trends,
  both under `r_range` (default: the law's own fit filter, else the paper's [0.5, 5])."""
  if r_range is None:
    r_range = law.fit_info.r_range if law.fit_info is not None else DEFAULT_R_RANGE
  validation, skipped = None, "not asked for"
  if validate:
    try:
      validation = cross_scale_validation(df, form=law.form, l_opt=l_opt, r_range=r_range)
      skipped = None
    except UserError as e:  # too few scales or runs to validate; the law itself stands
      skipped = str(e)
  return Assessment(validation, skipped, residual_diagnostics(law, df, l_opt=l_opt,
                                                              r_range=r_range))


def fit_runs(df, form: str = "multiplicative", l_opt="empirical",
             r_range=DEFAULT_R_RANGE, n_boot: int = 0, level: float = 0.95, seed: int = 0,
             validate: bool = True) -> FitSummary:
  """Fit `form` on the runs table `df` (a DataFrame, or a run root or table file, local or gs://,
  as `runs.read_table` reads it; L_opt as `ConditionalLaw.fit` takes it; r_range None = every
  run), with `n_boot` bootstrap refits for intervals (0: none) and, with `validate`, the
  cross-scale validation; residual trends always."""
  if not isinstance(df, pd.DataFrame):
    from lawsearch import runs  # pylint: disable=import-outside-toplevel

    df = runs.read_table(df)
  law = ConditionalLaw.fit(df, form, l_opt=l_opt, r_range=r_range)
  coefficients = pd.DataFrame({"coefficient": list(law.coefficients),
                               "estimate": list(law.coefficients.values())})
  try:
    optimum, no_optimum = law.optimum(), None
  except UserError as e:
    optimum, no_optimum = None, str(e)
  interval, n_failed = None, 0
  if n_boot:
    boot = bootstrap(df, form, l_opt=l_opt, r_range=r_range, n_boot=n_boot, seed=seed,
                     level=level, law=law)
    bounds = boot.coefficients()
    coefficients["low"] = bounds.loc[coefficients["coefficient"], "low"].to_numpy()
    coefficients["high"] = bounds.loc[coefficients["coefficient"], "high"].to_numpy()
    interval = boot.optimum() if optimum is not None else None
    n_failed = boot.n_failed
  return FitSummary(law, coefficients, optimum, no_optimum, interval, n_boot, n_failed, level,
                    assess(law, df, l_opt, r_range, validate))
