"""Cross-scale validation (the paper's progressive scheme) and residual diagnostics.

`cross_scale_validation` fits on smaller scales and predicts a larger one: with scales
s1 < s2 < ... < sk, the default tasks are s1 -> s2, s1+s2 -> s3, ..., s1..s(k-1) -> sk (PAPER.md
section 3: 80M -> 145M, 80M+145M -> 297M, 80M..297M -> 1B). Each task reports the MSE and the
Spearman rank correlation of predicted against observed loss on the held-out scale, the latter
beside what a law exactly right would score at that scale's seed noise (`spearman_at_noise`);
`beside_paper` puts the paper's figures for the same tasks next to them.

`paired_standard_errors` measures how finely runs scored on one held-out sample can be told apart,
and `heldout_check` asks whether a law fitted on smaller scales picks the best run of a larger one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lawsearch.errors import UserError
from lawsearch.laws import forms, l_opt as l_opt_lib, noise, runs_table
from lawsearch.laws.conditional import DEFAULT_R_RANGE, ConditionalLaw, prepare
from lawsearch.laws.runs_table import RunsTable

# The paper's progressive validation (PAPER.md section 3): (MSE, Spearman) of 80M -> 145M,
# 80M+145M -> 297M and 80M..297M -> 1B.
PAPER_VALIDATION = ((0.0002, 0.8909), (0.0001, 0.7920), (0.0001, 0.7451))
# The columns that name a dense shape in a runs table, and those a mixture of experts adds.
SHAPE = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn_dim")
MOE_SHAPE = ("n_experts", "top_k", "expert_ffn_dim")


def spearman(a, b) -> float:
  """Spearman rank correlation (average ranks for ties); NaN below 2 points or with no spread."""
  a, b = pd.Series(np.asarray(a, float)).rank(), pd.Series(np.asarray(b, float)).rank()
  if len(a) < 2 or a.std() == 0 or b.std() == 0:
    return float("nan")
  return float(np.corrcoef(a, b)[0, 1])


def spearman_at_noise(truth, sd, draws: int = 2000, seed: int = 0) -> np.ndarray:
  """[draws] Spearman correlations of `truth` [n] (a law's predicted losses, taken as exact)
  against truth + independent normal noise of SD `sd` (nats; scalar or [n]): the Spearman a law
  that is exactly right would score on runs this noisy. Its mean is the Spearman's noise ceiling."""
  truth = np.asarray(truth, np.float64)
  if truth.size < 2:
    return np.full(draws, np.nan)
  noisy = truth + np.random.default_rng(seed).normal(size=(draws, truth.size)) * sd
  ranks = noisy.argsort(axis=1).argsort(axis=1).astype(np.float64)  # continuous: no ties
  ranks -= ranks.mean(axis=1, keepdims=True)
  base = pd.Series(truth).rank().to_numpy() - (truth.size + 1) / 2
  if not base.any():
    return np.full(draws, np.nan)
  return ranks @ base / np.sqrt((ranks ** 2).sum(axis=1) * (base ** 2).sum())


CEILING_NOTE = ("spearman_ceiling: the mean Spearman a law exactly right would score at the test "
                "scale's seed noise; spearman_p: the chance it would score no higher than this "
                "one (small: the ranking misses by more than the seeds explain)")


def _name(scales) -> str:
  return "+".join(str(s) for s in scales)


MIN_TEST = 3  # rows a default task's test scale needs


def cross_scale_validation(df: pd.DataFrame | RunsTable,
                           tasks: Sequence[tuple[Sequence, object]] | None = None,
                           form: str = "multiplicative", l_opt=None, r_range=DEFAULT_R_RANGE,
                           **fit_options) -> pd.DataFrame:
  """Fit on smaller scales, predict a larger one: one row per task.

  df: a results table (see `ConditionalLaw.fit`); scales come from its `scale` column, else from
  grouping n_params and tokens (`runs_table.scale_labels`). tasks: (train scales, test scale) pairs of
  scale labels; default the progressive scheme over the scales present. L_opt is resolved on the
  whole table first (the empirical L_opt of the held-out scale is its lowest observed loss, as in
  the paper). The r filter applies to training and held-out rows alike. A default task whose
  test scale has fewer than MIN_TEST rows inside the filter is left out: a level fitted on its own
  runs (L_opt "joint") would absorb them, and a rank needs three. A form that reads N (decaying)
  trains on two scales or more: one scale leaves its gamma free.
  Returns columns task, n_train, n_test, mse, spearman, x_star, r_star, and the Spearman's noise
  ceiling at the test scale's seed SD (`spearman_at_noise` with the law's predictions as the
  truth): spearman_ceiling, its mean, what this law would score were it exactly right, and
  spearman_p, the chance it would score no higher than it did (NaN where the test scale's seed
  noise is unknown).
  """
  table = RunsTable.of(df, "cross-scale validation")
  labels = table.scale
  order = runs_table.scale_order(table.frame, labels)
  if len(order) < 2:
    raise UserError(f"cross-scale validation needs at least two scales, the table has one "
                     f"({order[0] if order else 'none'}); add runs at another scale or give a "
                     "`scale` column")
  table = table.assign(l_opt=l_opt_lib.for_table(table, l_opt))
  if tasks is None:
    inside = prepare(table, "column", r_range, 0)[-1]
    first = 2 if forms.get_form(form).sized else 1  # gamma needs two training scales
    tasks = [(order[:i], order[i]) for i in range(first, len(order))
             if np.sum(inside & (labels == order[i])) >= MIN_TEST]
    if not tasks:
      raise UserError(f"cross-scale validation of the {form} form needs a scale beyond its "
                      f"{first} smallest with at least {MIN_TEST} runs inside the r filter "
                      f"{r_range}; add runs there")
  rows = []
  for train, test in tasks:
    train = list(train)
    unknown = [s for s in [*train, test] if s not in order]
    if unknown:
      raise UserError(f"unknown scale(s) {unknown} in task {train} -> {test}; known: {order}")
    try:
      law = ConditionalLaw.fit(table.rows(np.isin(labels, train)), form, l_opt="column",
                               r_range=r_range, **fit_options)
    except ValueError as e:  # say which task could not be fitted
      raise UserError(f"task {_name(train)} -> {test}: {e}") from e
    held = table.rows(labels == test)
    _, _, _, loss, _, keep = prepare(held, "column", r_range, 0)
    pred = law.predict(held, "column")[keep]
    x_star, r_star = _optimum_or_nan(law)
    rho = spearman(pred, loss)
    sd = _point_sd(held, keep)
    at_noise = spearman_at_noise(pred, sd) if np.all(sd > 0) else np.full(1, np.nan)
    rows.append(dict(task=f"{_name(train)} -> {test}", n_train=law.fit_info.n_points,
                     n_test=int(loss.size), mse=float(np.mean((pred - loss) ** 2)),
                     spearman=rho, x_star=x_star, r_star=r_star,
                     spearman_ceiling=float(np.mean(at_noise)),
                     spearman_p=float(np.mean(at_noise <= rho)) if np.isfinite(at_noise).all()
                     else float("nan")))
  return pd.DataFrame(rows)


def _point_sd(held: RunsTable, keep: np.ndarray) -> np.ndarray:
  """[kept rows] each held-out point's seed noise (nats): a seed mean's (the var_mean column of
  `laws.fit_runs`' shape means) or a run's (its scale's pooled seed SD); NaN where unknown."""
  if "var_mean" in held.frame:
    return np.sqrt(held.frame["var_mean"].to_numpy(np.float64))[keep]
  pooled = float(noise.seed_noise(held).by_scale["pooled_sd"].iloc[0])
  return np.full(int(np.sum(keep)), pooled)


def beside_paper(validation: pd.DataFrame) -> pd.DataFrame:
  """`cross_scale_validation`'s rows with the paper's MSE and Spearman of the task with as many
  training scales (its first, second, third: one, two, three; None beyond) as paper_mse and
  paper_spearman."""
  trained = [task.split(" -> ")[0].count("+") for task in validation["task"]]
  paper = [PAPER_VALIDATION[i] if i < len(PAPER_VALIDATION) else (None, None) for i in trained]
  return validation.assign(paper_mse=[p[0] for p in paper], paper_spearman=[p[1] for p in paper])


def _optimum_or_nan(law: ConditionalLaw) -> tuple[float, float]:
  try:
    return law.optimum()
  except ValueError:
    return float("nan"), float("nan")


def residual_diagnostics(law: ConditionalLaw, df: pd.DataFrame | RunsTable, l_opt=None,
                         r_range=DEFAULT_R_RANGE, threshold: float = 3.0) -> pd.DataFrame:
  """Trends of the residuals (observed - predicted) against ln x, ln r, ln N and ln x * ln r.

  A trend against x, r or N hints that the law's shape (or L_opt) misses something; one against
  ln x * ln r hints that the separable form does not hold (an interaction). For each variable:
  the Spearman correlation rho with the residuals and z = rho * sqrt(n - 1) (about N(0, 1) with no
  trend); `flagged` when |z| > threshold.
  """
  table = RunsTable.of(df, "residual diagnostics")
  x, r, _, loss, _, keep = prepare(table, l_opt, r_range, 0)
  n = table.n[keep]
  resid = loss - law.predict(table, l_opt)[keep]
  variables = {"ln_x": np.log(x), "ln_r": np.log(r), "ln_n": np.log(n),
               "ln_x*ln_r": (np.log(x) - np.log(x).mean()) * (np.log(r) - np.log(r).mean())}
  rows = []
  for name, v in variables.items():
    rho = spearman(v, resid)
    z = rho * np.sqrt(max(resid.size - 1, 0))
    rows.append(dict(variable=name, spearman=rho, z=z, flagged=bool(abs(z) > threshold)))
  return pd.DataFrame(rows)


def paired_standard_errors(df: pd.DataFrame) -> np.ndarray:
  """[len(df)] per run, the standard error of its loss minus the loss of its scale's best run,
  both on the same held-out sample: a block bootstrap (`noise.block_bootstrap_se`) of the
  per-block differences (columns heldout_block_loss, heldout_block_windows; NaN for a run
  without them). Far below a run's own `loss_se`, since most of the sample's spread is shared by
  every model."""
  out = np.full(len(df), np.nan)
  if "heldout_block_loss" not in df:
    return out
  for _, group in df.groupby(runs_table.scale_labels(df)):
    best = group.loc[group["loss"].idxmin()]
    for i, row in group.iterrows():
      if not isinstance(row["heldout_block_loss"], list):
        continue
      diff = np.subtract(row["heldout_block_loss"], best["heldout_block_loss"])
      out[df.index.get_loc(i)] = noise.block_bootstrap_se(diff, row["heldout_block_windows"])
  return out


def heldout_check(df: pd.DataFrame, law: ConditionalLaw, scale: str
                  ) -> tuple[pd.DataFrame, dict]:
  """Does `law`, fitted on smaller scales, pick the best run at `scale`?

  df: a runs table (SHAPE columns, d_over_sqrt_n, mlp_attn_ratio, loss; optional role and
  paired_se, from `paired_standard_errors`); its rows at `scale` (`runs_table.scale_labels`) are
  checked. Returns one row per shape trained there (seeds averaged): the law's predicted loss
  relative to L_opt and absolute (L_opt: the scale's lowest measured loss) beside the measured
  one, and both ranks; and a summary: the Spearman correlation, the measured best shape, the
  law's best among the trained shapes with its measured rank and its gap to the best in paired
  standard errors (held-out sampling only) and in seed SDs, the largest difference between two
  seeds of one shape, and where the law's own optimum lies.
  """
  table = RunsTable.of(df, "the held-out check")
  checked = table.rows(table.scale == scale)
  if not len(checked):
    raise UserError(f"no run at the held-out scale {scale} yet")
  held = checked.frame
  held = held.assign(gqa=held["n_heads"] // held["n_kv_heads"],
                     role=held["role"] if "role" in held else "",
                     paired_se=held["paired_se"] if "paired_se" in held else np.nan)
  keys = list(SHAPE) + [c for c in MOE_SHAPE if c in held.columns]
  carried = [c for c in ("n_params", "n_active") if c in held.columns]
  seeds = noise.seed_noise(RunsTable.of(held))  # one row per shape: its seeds' mean loss
  by_shape = seeds.runs.groupby("shape")
  shape = seeds.means["shape"]
  shapes = seeds.means.assign(
      seeds=seeds.means["n_seeds"], paired_se=by_shape["paired_se"].max().loc[shape].to_numpy(),
      seed_range=(by_shape["loss"].max() - by_shape["loss"].min()).loc[shape].to_numpy())[
          [*keys, "role", "seeds", "d_over_sqrt_n", "mlp_attn_ratio", "gqa", "loss", "paired_se",
           "seed_range", *carried]]
  if len(shapes) < 2:
    raise UserError(f"one shape trained at the held-out scale {scale} so far: nothing to rank")
  l_opt = float(held["loss"].min())
  # relative to L_opt; a MoE form reads each shape's active size and sparsity
  shapes["predicted_rel"] = law.predict(shapes.drop(columns="loss"), l_opt=1.0)
  shapes["predicted_loss"] = shapes["predicted_rel"] * l_opt
  shapes["measured_rank"] = shapes["loss"].rank(method="min").astype(int)
  shapes["predicted_rank"] = shapes["predicted_rel"].rank(method="min").astype(int)
  shapes = shapes.sort_values("loss").reset_index(drop=True)
  best, chosen = shapes.iloc[0], shapes.loc[shapes["predicted_rel"].idxmin()]
  gap, paired = float(chosen["loss"] - best["loss"]), float(chosen["paired_se"])
  seed_sd = float(seeds.by_scale["pooled_sd"].iloc[0])  # NaN: one seed each
  summary = {
      "shapes": len(shapes), "seed_spread": float(shapes["seed_range"].max()),
      "spearman": spearman(shapes["predicted_rel"], shapes["loss"]),
      "measured_best": {"d_model": int(best["d_model"]), "ffn_dim": int(best["ffn_dim"]),
                        "gqa": int(best["gqa"]), "role": best["role"],
                        "d_over_sqrt_n": float(best["d_over_sqrt_n"]),
                        "mlp_attn_ratio": float(best["mlp_attn_ratio"]),
                        "loss": float(best["loss"])},
      "law_best_trained": {"d_model": int(chosen["d_model"]), "ffn_dim": int(chosen["ffn_dim"]),
                           "gqa": int(chosen["gqa"]), "role": chosen["role"],
                           "measured_rank": int(chosen["measured_rank"]),
                           "loss": float(chosen["loss"]), "gap_to_best": gap,
                           "gap_in_paired_se": (gap / paired if paired > 0 else
                                                0.0 if gap == 0 else float("nan")),
                           "gap_in_seed_sd": gap / seed_sd if seed_sd > 0 else float("nan")},
      "seed_sd": seed_sd}
  try:
    x_star, r_star = law.optimum()
    summary["law_optimum"] = {"d_over_sqrt_n": x_star, "mlp_attn_ratio": r_star}
  except ValueError as e:
    summary["law_optimum"] = {"error": str(e).split(":")[0]}
  return shapes, summary
