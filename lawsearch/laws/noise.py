"""Seed noise as data: a runs table's seeds grouped per shape, the noise ceiling a perfect law
would reach, and the lack-of-fit test of a law against that noise.

    noise = seed_noise(table)          # SeedNoise: per-shape means, pooled seed SD per scale
    noise.means                        # one row per shape: loss = seed mean, seed_sd, n_seeds
    noise.weights()                    # per run: 1 / (pooled seed variance of its scale)
    noise.by_scale                     # per scale: pooled SD, df, equal_sd_p (one SD fits all?)
    lack_of_fit(law, noise, l_opt)     # LackOfFit: MSE on shape means, ceiling, F, p
    block_bootstrap_se(means, counts)  # the held-out sample's own error (a run's `loss_se`)

A shape is every column that decides what a run trains except its seed (SHAPE_COLUMNS, those the
table has). Seed variance is pooled per scale over the shapes with two or more seeds (a shape's
own SD from 2-3 seeds is itself very noisy); a shape mean of n seeds has variance s^2 / n. The
held-out loss's own standard error (`loss_se`) is kept apart: every run of a scale is scored on
the one held-out set, so that error moves a scale's points together rather than apart.

Weighted least squares on the runs with weight 1 / s^2 (of their scale) is the weighted fit on
the shape means with weights n / s^2: the two objectives differ by the within-shape sum of
squares, which no coefficient changes. So fits and bootstraps keep working on runs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from lawsearch import arch
from lawsearch.errors import UserError
from lawsearch.laws import runs_table

# The columns that make two runs "the same shape trained the same way" (the seed excepted).
SHAPE_COLUMNS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn_dim",
                 "vocab_size", "attention", "kv_lora_rank", "q_lora_rank", "mlp", "n_experts",
                 "top_k", "expert_ffn_dim", "n_shared_experts", "first_dense_layers", "router",
                 "norm_topk_prob", "n_params", "tokens", "batch_size", "seq_len", "peak_lr")
HOW_TO_MEASURE = ("train a second seed of some shapes at every scale (`lawsearch sweep "
                  "--config=configs/sweep.py:...,seeds=2`) to measure it")


def block_bootstrap_se(means, counts, *, resamples: int = 2000, seed: int = 0) -> float:
  """Standard error of a sample's mean by a block bootstrap: whole blocks are resampled.

  means: [n_blocks] mean of each block (e.g. the per-window losses of one 4,096-token corpus block;
  windows of a block are correlated, blocks nearly independent); counts: [n_blocks] the values
  (windows) in each, its weight in the overall mean. Draws n_blocks blocks with replacement and
  returns the std of the resampled weighted means. For a paired comparison of two runs on the same
  sample, pass the per-block differences. 0.0 for fewer than 2 blocks.
  """
  means, counts = np.asarray(means, np.float64), np.asarray(counts, np.float64)
  if len(means) < 2:
    return 0.0
  draws = np.random.default_rng(seed).integers(0, len(means), (resamples, len(means)))
  resampled = (means * counts)[draws].sum(axis=1) / counts[draws].sum(axis=1)
  return float(resampled.std(ddof=1))


@dataclasses.dataclass(frozen=True)
class SeedNoise:
  """A runs table's seeds, grouped.

  runs: the table with `shape` (an integer per shape) and `scale` columns. means: one row per
  shape (its first run's columns) with loss = the seed mean, seed_sd (NaN for one seed), n_seeds,
  and var_mean = the pooled variance of its scale / n_seeds (NaN where the scale's noise is
  unknown). by_scale: per scale, pooled_sd, df (degrees of freedom: sum of n_seeds - 1), shapes
  (shapes with two or more seeds) and equal_sd_p (`equal_variance_p`: whether one pooled SD
  fits every shape of the scale)."""

  runs: pd.DataFrame
  means: pd.DataFrame
  by_scale: pd.DataFrame

  @property
  def known(self) -> bool:
    """Whether every scale has a measured seed variance (some shape with two seeds or more)."""
    return bool((self.by_scale["df"] > 0).all())

  @property
  def unknown_scales(self) -> list:
    return self.by_scale.index[self.by_scale["df"] == 0].tolist()

  def _variance(self, scales) -> np.ndarray:
    """The pooled seed variance of each of `scales` (1 everywhere when the noise is unknown)."""
    if not self.known:
      return np.ones(len(scales))
    if not (self.by_scale["pooled_sd"] > 0).all():
      raise UserError("repeated runs of one shape gave identical losses: the table holds the same "
                      "run more than once, or the seed changed nothing; drop the copies")
    return self.by_scale["pooled_sd"].loc[scales].to_numpy(np.float64) ** 2

  def weights(self) -> np.ndarray:
    """Least-squares weight per run (float64 [runs]): 1 / the pooled seed variance of its scale,
    or 1 when the noise is unknown (every run equally noisy)."""
    return 1.0 / self._variance(self.runs["scale"])

  def mean_weights(self) -> np.ndarray:
    """Least-squares weight per shape mean (float64 [shapes]): n_seeds / the pooled seed variance
    of its scale (1 / the mean's variance), or n_seeds when the noise is unknown."""
    return self.means["n_seeds"].to_numpy(np.float64) / self._variance(self.means["scale"])

  def describe(self) -> str:
    """One line per scale: pooled seed SD, its degrees of freedom and how many shapes gave it."""
    lines = []
    for scale, row in self.by_scale.iterrows():
      equal = (f"; equal across shapes: p = {row['equal_sd_p']:.2g}"
               if np.isfinite(row["equal_sd_p"]) else "")
      lines.append(f"  {scale}: seed SD {row['pooled_sd']:.4f} nats ({int(row['shapes'])} shapes "
                   f"with seeds, {int(row['df'])} df{equal})" if row["df"] else
                   f"  {scale}: seed SD unknown (one seed per shape)")
    return "\n".join(lines)


def shape_ids(df: pd.DataFrame) -> np.ndarray:
  """An integer per row naming its shape (SHAPE_COLUMNS the table has; a missing ArchSpec field is
  its default, other NaN equals NaN)."""
  columns = [c for c in SHAPE_COLUMNS if c in df.columns]
  if not columns:
    raise UserError(f"a runs table needs some of {SHAPE_COLUMNS} to group seeds; it has "
                    f"{list(df.columns)}")
  shapes = df[columns].astype(object)
  # a record written before an ArchSpec field existed lacks it: it trained at the default
  shapes = shapes.fillna({c: v for c, v in arch.field_defaults().items() if c in columns})
  keys = shapes.map(_key).agg("|".join, axis=1)
  return pd.factorize(keys)[0]


def _key(value) -> str:
  """A shape column's value as text in which equal values read the same (8 and 8.0 alike)."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
    return str(value)
  return repr(float(value))


def seed_noise(df: pd.DataFrame | runs_table.RunsTable) -> SeedNoise:
  """The seeds of `df` (a runs table: loss, n_params, tokens or scale, shape columns) grouped per
  shape, with the pooled seed variance of each scale."""
  table = runs_table.RunsTable.of(df, "measuring seed noise")
  loss = table.column("loss", "measuring seed noise")
  runs = table.frame.copy()
  runs["scale"] = table.scale
  runs["shape"] = shape_ids(runs)
  runs["loss"] = loss
  group = runs.groupby("shape", sort=False)
  means = group.first()
  means["loss"] = group["loss"].mean()
  means["seed_sd"] = group["loss"].std(ddof=1)
  means["n_seeds"] = group["loss"].size()
  if "loss_se" in runs.columns:
    means["loss_se"] = group["loss_se"].mean()
  means["within_ss"] = group["loss"].agg(lambda v: float(((v - v.mean()) ** 2).sum()))
  per = means.groupby("scale", sort=False).agg(
      ss=("within_ss", "sum"), df=("n_seeds", lambda n: int((n - 1).sum())),
      shapes=("n_seeds", lambda n: int((n > 1).sum())))
  per["pooled_sd"] = np.where(per["df"] > 0, np.sqrt(per["ss"] / per["df"].clip(lower=1)),
                              np.nan)
  per["equal_sd_p"] = pd.Series({scale: equal_variance_p(part["loss"], part["shape"])
                                 for scale, part in runs.groupby("scale", sort=False)})
  means["var_mean"] = per["pooled_sd"].loc[means["scale"]].to_numpy() ** 2 / means["n_seeds"]
  means = means.drop(columns="within_ss").reset_index()
  order = runs_table.scale_order(means, means["scale"].to_numpy())
  by_scale = per.loc[order, ["pooled_sd", "df", "shapes", "equal_sd_p"]]
  return SeedNoise(runs, means, by_scale)


@dataclasses.dataclass(frozen=True)
class LackOfFit:
  """A law against the seed noise of the shapes it was fitted on.

  mse: the law's mean squared error on the shape means (nats^2). ceiling: the MSE a perfect law
  would get there, the mean variance of a shape mean (seed variance / n_seeds). f, df_lof, df_pe,
  p: the lack-of-fit F test: f = sum((mean - prediction)^2 / var_mean) / df_lof with df_lof =
  shapes - coefficients, against F(df_lof, df_pe), df_pe the seeds' pooled degrees of freedom; p
  is the chance of an F this large if the law were right (small p: the misfit exceeds the noise).
  """

  mse: float
  ceiling: float
  f: float
  df_lof: int
  df_pe: int
  p: float
  n_shapes: int

  @property
  def verdict(self) -> str:
    if self.p < 0.05:
      return (f"the misfit exceeds the seed noise (p = {self.p:.2g}): the law misses a term, or "
              "the noise is larger than the seeds show")
    return f"the misfit is within the seed noise (p = {self.p:.2g})"

  def to_dict(self) -> dict:
    return {**dataclasses.asdict(self), "verdict": self.verdict}


def equal_variance_p(loss: pd.Series, shape: pd.Series) -> float:
  """The Brown-Forsythe test (Levene's, about the medians) that the seed variances of the shapes
  with two or more seeds are equal: the one-way ANOVA p-value of the runs' absolute deviations
  from their shape's median loss. Small p: one pooled seed SD per scale does not fit every
  shape. NaN with fewer than two such shapes, or two seeds each (whose deviations are equal)."""
  groups = [g.to_numpy(np.float64) for _, g in loss.groupby(shape) if len(g) > 1]
  n, k = sum(len(g) for g in groups), len(groups)
  if k < 2:
    return float("nan")
  deviations = [np.abs(g - np.median(g)) for g in groups]
  grand = np.concatenate(deviations).mean()
  between = sum(len(z) * (z.mean() - grand) ** 2 for z in deviations) / (k - 1)
  within = sum(((z - z.mean()) ** 2).sum() for z in deviations) / (n - k)
  if within <= 1e-12 * grand ** 2:  # equal up to rounding: two seeds each
    return float("nan")
  return f_sf(between / within, k - 1, n - k)


def f_sf(f: float, d1: int, d2: int) -> float:
  """P(F > f) for F ~ F(d1, d2): the regularised incomplete beta I_{d2/(d2+d1 f)}(d2/2, d1/2)."""
  from jax.scipy.special import betainc  # pylint: disable=import-outside-toplevel

  from lawsearch.laws.precision import float64  # pylint: disable=import-outside-toplevel

  if f <= 0:
    return 1.0
  with float64():
    return float(betainc(d2 / 2.0, d1 / 2.0, d2 / (d2 + d1 * f)))


def lack_of_fit(predicted_means: np.ndarray, noise: SeedNoise, n_coefficients: int,
                keep: np.ndarray | None = None) -> LackOfFit:
  """The lack-of-fit test of a law's predictions at `noise.means` (float64 [shapes]; `keep`: the
  shapes it was fitted on, default all). UserError where the noise is unknown or the shapes are
  too few to test."""
  means = noise.means if keep is None else noise.means[keep]
  pred = np.asarray(predicted_means, np.float64) if keep is None else np.asarray(
      predicted_means, np.float64)[keep]
  var = means["var_mean"].to_numpy(np.float64)
  if not np.isfinite(var).all():
    raise UserError(f"the seed noise of scale(s) {noise.unknown_scales} is unknown: "
                    f"{HOW_TO_MEASURE}")
  resid = means["loss"].to_numpy(np.float64) - pred
  df_lof = len(means) - n_coefficients
  if df_lof <= 0:
    raise UserError(f"{len(means)} shapes for {n_coefficients} coefficients leave no degrees of "
                    "freedom to test the law's fit")
  used = noise.by_scale.loc[pd.unique(means["scale"])]
  df_pe = int(used["df"].sum())
  f = float(np.sum(resid ** 2 / var) / df_lof)
  return LackOfFit(mse=float(np.mean(resid ** 2)), ceiling=float(np.mean(var)), f=f,
                   df_lof=df_lof, df_pe=df_pe, p=f_sf(f, df_lof, df_pe),
                   n_shapes=len(means))


def seed_resampling_weights(noise: SeedNoise, n_boot: int, seed: int = 0) -> np.ndarray:
  """[n_boot, runs] bootstrap weights that resample shapes and, within each drawn shape, its seeds
  (both with replacement), times each run's noise weight (1 when the noise is unknown)."""
  rng = np.random.default_rng(seed)
  shape = noise.runs["shape"].to_numpy()
  n_shapes = int(shape.max()) + 1
  base = noise.weights()
  members = [np.flatnonzero(shape == s) for s in range(n_shapes)]
  out = np.zeros((n_boot, len(shape)))
  for b in range(n_boot):
    for s, count in enumerate(rng.multinomial(n_shapes, np.full(n_shapes, 1.0 / n_shapes))):
      if count:
        rows = members[s]
        out[b, rows] += rng.multinomial(count * len(rows), np.full(len(rows), 1.0 / len(rows)))
  return out * base

