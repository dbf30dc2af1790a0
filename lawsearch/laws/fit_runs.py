"""The fit stage's one entry point: a runs table in, everything `lawsearch fit` reports out.

    summary = laws.fit_runs(table, "multiplicative", l_opt="empirical", n_boot=1000)
    summary.law, summary.coefficients, summary.optimum, summary.assessment, summary.noise

Seeds of one shape are averaged first (laws.noise): the law is fitted on the shape means, each
weighted by 1 / its variance (the pooled seed variance of its scale / its seeds; with the noise
unknown, by its seed count), the bootstrap resamples shapes and their seeds, and the law's MSE
is set against the noise ceiling with a lack-of-fit test.

The CLI prints a FitSummary, the replication stores it, a notebook shows its tables;
`assess(law, table)` gives the validation and residual trends of any law (the report's)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import pandas as pd

from lawsearch import inputs
from lawsearch.errors import UserError
from lawsearch.table import format_table
from lawsearch.laws.bootstrap import bootstrap
from lawsearch.laws import forms, l_opt as l_opt_lib
from lawsearch.laws.conditional import DEFAULT_R_RANGE, ConditionalLaw, prepare
from lawsearch.laws.noise import HOW_TO_MEASURE, LackOfFit, SeedNoise, lack_of_fit
from lawsearch.laws.noise import seed_noise, seed_resampling_weights
from lawsearch.laws.runs_table import RunsTable
from lawsearch.laws.validation import (CEILING_NOTE, cross_scale_validation,
                                       residual_diagnostics)


NOT_ASKED = "not asked for"  # Assessment.validation_skipped when validate=False


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
  trends. noise: the table's seeds per shape and scale; lack_of_fit: the law against that noise
  (None with `noise_note` saying why). l_opt: where L_opt came from, and its value per scale."""

  law: ConditionalLaw
  coefficients: pd.DataFrame
  optimum: tuple[float, float] | None
  no_optimum: str | None
  optimum_interval: pd.DataFrame | None
  n_boot: int
  n_failed: int
  level: float
  assessment: Assessment
  noise: SeedNoise
  lack_of_fit: LackOfFit | None
  noise_note: str | None
  l_opt: str
  l_opt_by_scale: dict[str, float]

  def noise_lines(self) -> list[str]:
    return noise_lines(self.noise, self.lack_of_fit, self.noise_note)

  def summary(self) -> str:
    """What `lawsearch fit` prints: the fit's points and quality, the noise, the coefficients
    (with their intervals), the optimum, the cross-scale validation and the residual trends."""
    info = self.law.fit_info
    r_range = info.r_range
    filt = "off" if r_range is None else f"r in [{r_range[0]:g}, {r_range[1]:g}]"
    lines = [f"{self.law.form} law on {info.n_points} shapes ({len(self.noise.runs)} runs; r "
             f"filter {filt}: {info.n_excluded} shapes excluded), L_opt {self.l_opt}: "
             + ", ".join(f"{scale} {value:.4g}" for scale, value in self.l_opt_by_scale.items()),
             f"  weighted sum of squares {info.objective:.6g}, MSE {info.mse:.4g}, "
             f"scaled gradient {info.grad_norm:.2g}", *self.noise_lines()]
    if self.no_optimum:
      lines.append(f"  {self.no_optimum}")
    if self.n_boot:
      lines.append(f"\ncoefficients with {self.level:.0%} bootstrap intervals ({self.n_boot} "
                   f"refits, {self.n_failed} failed):")
    lines.append(format_table(self.coefficients.to_dict("records"),
                              list(self.coefficients.columns)))
    if self.optimum is not None:
      lines.append(self._optimum_line())
      if beyond := self.optimum_beyond_runs():
        lines.append(f"  note: {beyond}")
    checked = self.assessment
    if checked.validation is not None:
      lines += ["\ncross-scale validation (fit on smaller scales, predict the next):",
                format_table(checked.validation.to_dict("records"),
                             list(checked.validation.columns)), CEILING_NOTE]
    elif checked.validation_skipped != NOT_ASKED:
      lines.append(f"\nvalidation skipped: {checked.validation_skipped}")
    lines.append("\nresidual trends: " + (
        ", ".join(checked.flagged) + " (|z| > 3: the form or L_opt misses something)"
        if checked.flagged else "none flagged"))
    return "\n".join(lines)

  def optimum_beyond_runs(self) -> str | None:
    """Where the optimum lies outside the d/sqrt(N) or r of the shapes the law was fitted on (an
    extrapolation, which no trained shape tests), what to do; None inside them or with none."""
    if self.optimum is None:
      return None
    means, r_range = RunsTable(self.noise.means), self.law.fit_info.r_range
    inside = np.ones(len(means), bool) if r_range is None else (
        (means.r >= r_range[0]) & (means.r <= r_range[1]))
    beyond = []
    for label, value, values in (("d/sqrt(N)*", self.optimum[0], means.x[inside]),
                                 ("r*", self.optimum[1], means.r[inside])):
      low, high = values.min(), values.max()
      if not low <= value <= high:
        beyond.append(f"{label} = {value:.3g} lies beyond the fitted shapes' {low:.3g}-{high:.3g}")
    return ("; ".join(beyond) + ": an extrapolation no trained shape tests; train shapes out "
            "there, or search within the fitted region") if beyond else None

  def _optimum_line(self) -> str:
    """The optimum (d/sqrt(N)*, r*), each with its bootstrap interval when there is one."""
    o = self.optimum_interval
    return ", ".join(
        f"{label} = {value:.4g}" + (f" [{o.loc[row, 'low']:.4g}, {o.loc[row, 'high']:.4g}]"
                                    if o is not None else "")
        for label, value, row in (("optimum: d/sqrt(N)", self.optimum[0], "x_star"),
                                  ("r", self.optimum[1], "r_star")))

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
      if beyond := self.optimum_beyond_runs():
        out["optimum"]["beyond_runs"] = beyond
    out["l_opt"] = {"source": self.l_opt, "by_scale": self.l_opt_by_scale}
    out["noise"] = {"by_scale": self.noise.by_scale.reset_index().to_dict("records"),
                    "shapes": len(self.noise.means), "runs": len(self.noise.runs)}
    if self.lack_of_fit is not None:
      out["noise"]["lack_of_fit"] = self.lack_of_fit.to_dict()
    else:
      out["noise"]["note"] = self.noise_note
    out["residual_trends"] = self.assessment.diagnostics.to_dict("records")
    if self.assessment.validation is not None:
      out["validation"] = self.assessment.validation.to_dict("records")
    else:
      out["validation_error"] = self.assessment.validation_skipped
    return out


def assess(law: ConditionalLaw, df: pd.DataFrame | RunsTable, l_opt=None, r_range=None,
           validate: bool = True) -> Assessment:
  """`law` on `df`: cross-scale validation of its form (with `validate`) and residual trends,
  both under `r_range` (default: the law's own fit filter, else the paper's [0.5, 5])."""
  inputs.instance(law, "law", ConditionalLaw, "a ConditionalLaw", "laws.assess")
  inputs.instance(df, "df", (pd.DataFrame, RunsTable), "a runs table (a pandas DataFrame)",
                  "laws.assess")
  df = RunsTable.of(df, "laws.assess")
  inputs.argument(r_range, "r_range", "range", "laws.assess", optional=True)
  inputs.argument(validate, "validate", "bool", "laws.assess")
  if r_range is None:
    r_range = law.fit_info.r_range if law.fit_info is not None else DEFAULT_R_RANGE
  validation, skipped = None, NOT_ASKED
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
  run), on its shapes' seed means (module doc), with `n_boot` bootstrap refits for intervals (0:
  none) and, with `validate`, the cross-scale validation; residual trends and the lack-of-fit
  test against the seed noise always."""
  f = "laws.fit_runs"
  inputs.instance(df, "df", (pd.DataFrame, RunsTable, str, os.PathLike),
                  "a runs table (a pandas DataFrame) or the path of a table file or run root", f)
  inputs.argument(form, "form", "string", f)
  inputs.argument(r_range, "r_range", "range", f, optional=True)
  inputs.argument(n_boot, "n_boot", "count", f)
  inputs.argument(level, "level", "fraction", f)
  inputs.argument(seed, "seed", "integer", f)
  inputs.argument(validate, "validate", "bool", f)
  if isinstance(df, (str, os.PathLike)):
    from lawsearch import runs  # pylint: disable=import-outside-toplevel

    df = runs.read_table(df)
  noise = seed_noise(RunsTable.of(df, "laws.fit_runs"))  # the one check of the table
  means = RunsTable(noise.means.assign(weight=noise.mean_weights()))
  source = l_opt_lib.describe(means, l_opt)
  if isinstance(l_opt, str) and l_opt == "joint":  # levels fitted with the law, then held
    from lawsearch.laws import levels  # pylint: disable=import-outside-toplevel

    found = levels.joint_levels(means, form, r_range)
    means, l_opt = means.assign(l_opt=levels.level_column(means, found)), "column"
  law = ConditionalLaw.fit(means, form, l_opt=l_opt, r_range=r_range)
  lof, note = noise_check(law, noise, means, l_opt, r_range)
  coefficients = pd.DataFrame({"coefficient": list(law.coefficients),
                               "estimate": list(law.coefficients.values())})
  try:
    optimum, no_optimum = law.optimum(), None
  except UserError as e:
    optimum, no_optimum = None, str(e)
  interval, n_failed = None, 0
  if n_boot and len(means) < len(df):  # seeds: resample shapes and their seeds (on the runs)
    lo = pd.Series(l_opt_lib.for_table(means, l_opt), index=means.frame["shape"])
    runs_ = RunsTable(noise.runs.assign(l_opt=lo.loc[noise.runs["shape"]].to_numpy()))
    boot = bootstrap(runs_, form, l_opt="column", r_range=r_range, n_boot=n_boot, level=level,
                     law=law, weights=seed_resampling_weights(noise, n_boot, seed))
  elif n_boot:
    boot = bootstrap(means, form, l_opt=l_opt, r_range=r_range, n_boot=n_boot, seed=seed,
                     level=level, law=law)
  if n_boot:
    bounds = boot.coefficients()
    coefficients["low"] = bounds.loc[coefficients["coefficient"], "low"].to_numpy()
    coefficients["high"] = bounds.loc[coefficients["coefficient"], "high"].to_numpy()
    interval = boot.optimum() if optimum is not None else None
    n_failed = boot.n_failed
  return FitSummary(law, coefficients, optimum, no_optimum, interval, n_boot, n_failed, level,
                    assess(law, means, l_opt, r_range, validate), noise, lof, note, source,
                    _by_scale(means, l_opt))


def noise_check(law: ConditionalLaw, noise: SeedNoise, means: RunsTable, l_opt,
                r_range) -> tuple[LackOfFit | None, str | None]:
  """(the lack-of-fit test of `law` on the shape means it is fitted on, None) or (None, why the
  noise cannot judge it). means: noise.means, with any columns L_opt needs (rows in r_range
  are tested)."""
  if not noise.known:
    return None, (f"scale(s) {noise.unknown_scales} have one seed per shape, so how much of the "
                  f"misfit is noise cannot be told: {HOW_TO_MEASURE}")
  keep = prepare(means, l_opt, r_range, 0)[-1]
  try:
    return lack_of_fit(law.predict(means, l_opt), noise,
                       forms.get_form(law.form).n_free, keep), None
  except UserError as e:
    return None, str(e)


def noise_lines(noise: SeedNoise, lof: LackOfFit | None, note: str | None) -> list[str]:
  """What the CLI, the report and the demo print of the noise beside a law's MSE."""
  lines = ["seed noise (pooled per scale):", noise.describe()]
  if lof is None:
    return lines + [f"noise ceiling: unknown ({note})"]
  return lines + [f"MSE on {lof.n_shapes} shape means {lof.mse:.3g} against a noise ceiling of "
                  f"{lof.ceiling:.3g} (a perfect law's): F = {lof.f:.3g} on ({lof.df_lof}, "
                  f"{lof.df_pe}) df; {lof.verdict}"]


def _by_scale(means: RunsTable, l_opt) -> dict[str, float]:
  """L_opt of each scale of a shape-means table (a Chinchilla L_opt: at the scale's median N)."""
  values = pd.Series(l_opt_lib.for_table(means, l_opt)).groupby(means.scale)
  return {str(scale): float(v.median()) for scale, v in values}
