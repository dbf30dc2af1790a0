"""From held-out loss to mean downstream accuracy: a law fitted on a sweep's runs, beyond the paper.

Two forms in the held-out loss L (nats per token):

    linear    acc(L) = a + b * L
    sigmoid   acc(L) = c + (1 - c) / (1 + exp(k * (L - L0)))

c is the chance level of the mean accuracy (fixed, not fitted: the runs' `acc_mean_chance`), so
the sigmoid rises from chance at high loss towards 1 at low loss; k > 0 is its steepness and L0
the loss halfway between chance and 1. Intervals come from a bootstrap over runs: the law is
refitted on resampled runs and a prediction's interval is the percentile interval of the refits'
predictions. Fitted in float64 with numpy and scipy (no JAX), on the columns `loss` and
`acc_mean` that `lawsearch eval --tasks all` records.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Sequence

import numpy as np

from lawsearch.errors import UserError
from lawsearch.table import format_table

FORMS = ("linear", "sigmoid")


def _predict(form: str, params: np.ndarray, loss: np.ndarray, chance: float) -> np.ndarray:
  """acc of `form` with params [..., 2] at loss [...] (broadcast)."""
  if form == "linear":
    return params[..., 0] + params[..., 1] * loss
  k, l0 = params[..., 0], params[..., 1]
  return chance + (1 - chance) / (1 + np.exp(np.clip(k * (loss - l0), -50, 50)))


def _fit_params(form: str, loss: np.ndarray, acc: np.ndarray, chance: float) -> np.ndarray:
  """Least-squares parameters of `form`: [a, b] (linear) or [k, L0] (sigmoid)."""
  if form == "linear":
    b, a = np.polyfit(loss, acc, 1)
    return np.array([a, b])
  from scipy.optimize import least_squares  # pylint: disable=import-outside-toplevel

  # Start from the linear fit's slope at the mean: d acc / dL = -(1 - c) k / 4 at L0.
  slope = np.polyfit(loss, acc, 1)[0]
  k0 = max(-4 * slope / (1 - chance), 1e-3)
  mid = (1 + chance) / 2
  l00 = loss.mean() + (acc.mean() - mid) / min(slope, -1e-6)
  fit = least_squares(lambda p: _predict(form, p, loss, chance) - acc, [k0, l00],
                      bounds=([0, -np.inf], [np.inf, np.inf]))
  return fit.x


@dataclasses.dataclass(frozen=True)
class AccuracyLaw:
  """A fitted map from held-out loss to mean accuracy.

  params: [a, b] (linear) or [k, L0] (sigmoid); chance: the floor c; boot: bootstrap refits'
  params [n_boot, 2] (empty without a bootstrap); level: their interval coverage;
  loss_range: the (lowest, highest) loss of the fitted runs; rmse: residual root mean square.
  """

  form: str
  params: tuple[float, float]
  chance: float
  n_points: int
  loss_range: tuple[float, float]
  rmse: float
  level: float
  boot: tuple[tuple[float, float], ...] = ()

  def predict(self, loss) -> np.ndarray:
    """Predicted mean accuracy at loss [...] -> [...]."""
    return _predict(self.form, np.asarray(self.params), np.asarray(loss, np.float64), self.chance)

  def interval(self, loss) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) percentile bounds of the bootstrap refits' predictions at loss [...]."""
    if not self.boot:
      raise UserError("this accuracy law has no bootstrap refits; fit it with n_boot > 0")
    preds = _predict(self.form, np.asarray(self.boot)[:, None],
                     np.atleast_1d(np.asarray(loss, np.float64))[None], self.chance)
    tail = (1 - self.level) / 2 * 100
    low, high = np.percentile(preds, [tail, 100 - tail], axis=0)
    shape = np.shape(loss)
    return low.reshape(shape), high.reshape(shape)

  def describe(self) -> str:
    if self.form == "linear":
      text = f"acc = {self.params[0]:.4f} + {self.params[1]:.4f} * loss"
    else:
      text = (f"acc = {self.chance:.4f} + {1 - self.chance:.4f} / (1 + exp({self.params[0]:.4f}"
              f" * (loss - {self.params[1]:.4f})))")
    return (f"{text} on {self.n_points} runs with loss in [{self.loss_range[0]:.4f}, "
            f"{self.loss_range[1]:.4f}], rmse {self.rmse:.4f}")

  def summary(self) -> str:
    """What `lawsearch fit-accuracy` prints: the law, then a table of its predicted mean accuracy
    at the lowest, middle and highest loss of the fitted runs, with the bootstrap interval at
    `level` where the law has refits."""
    losses = [self.loss_range[0], sum(self.loss_range) / 2, self.loss_range[1]]
    rows = [{"loss": loss, "predicted mean accuracy": float(self.predict(loss)),
             **(dict(zip((f"{self.level:.0%} low", "high"),
                         (float(b) for b in self.interval(loss)))) if self.boot else {})}
            for loss in losses]
    return (f"{self.form} accuracy law: {self.describe()}\n"
            + format_table(rows, list(rows[0])))

  def to_json(self, path: str | os.PathLike) -> None:
    from lawsearch import paths  # pylint: disable=import-outside-toplevel

    paths.write_text(path, json.dumps(dataclasses.asdict(self), indent=1) + "\n")  # atomic

  @classmethod
  def from_json(cls, path: str | os.PathLike) -> "AccuracyLaw":
    from lawsearch import rundir  # pylint: disable=import-outside-toplevel

    doc = rundir.read_file(path, "accuracy law")
    if doc["form"] not in FORMS:
      raise UserError(f"accuracy law file {path}: form {doc['form']!r} is not one of {FORMS}")
    return cls(doc["form"], tuple(doc["params"]), doc["chance"], doc["n_points"],
               tuple(doc["loss_range"]), doc["rmse"], doc["level"],
               tuple(tuple(p) for p in doc["boot"]))


def fit(loss: Sequence[float], acc: Sequence[float], form: str = "linear", *,
        chance: float = 0.0, n_boot: int = 1000, level: float = 0.95,
        seed: int = 0) -> AccuracyLaw:
  """The law of `form` through the points (loss, acc) [n], with `n_boot` bootstrap refits over
  the points (resampled with replacement) for intervals at `level`."""
  if form not in FORMS:
    raise UserError(f"form {form!r} is not one of {FORMS}")
  loss, acc = np.asarray(loss, np.float64), np.asarray(acc, np.float64)
  if loss.shape != acc.shape or loss.ndim != 1:
    raise UserError(f"loss {loss.shape} and acc {acc.shape} must be 1-D of the same length")
  if len(loss) < 3 or np.ptp(loss) == 0:
    raise UserError(f"an accuracy law needs at least 3 runs of different loss, got {len(loss)} "
                    "(evaluate more runs with `lawsearch eval --tasks all`)")
  params = _fit_params(form, loss, acc, chance)
  rmse = float(np.sqrt(np.mean((_predict(form, params, loss, chance) - acc) ** 2)))
  rng = np.random.default_rng(seed)
  boot = []
  for _ in range(n_boot):
    pick = rng.integers(0, len(loss), len(loss))
    if np.ptp(loss[pick]) > 0:  # a resample of one distinct loss has no slope
      boot.append(tuple(float(p) for p in _fit_params(form, loss[pick], acc[pick], chance)))
  return AccuracyLaw(form, (float(params[0]), float(params[1])), float(chance), len(loss),
                     (float(loss.min()), float(loss.max())), rmse, level, tuple(boot))


def fit_table(df, form: str = "linear", **kwargs) -> AccuracyLaw:
  """The law on a runs table (`runs.collect`): its rows with `acc_mean`; chance from their
  `acc_mean_chance`."""
  import pandas as pd  # pylint: disable=import-outside-toplevel

  if not isinstance(df, pd.DataFrame):
    raise UserError(f"accuracy.fit_table: df must be a runs table (a pandas DataFrame, e.g. "
                    f"runs.read_table(ROOT)), got {type(df).__name__}")
  if "acc_mean" not in df.columns or df["acc_mean"].isna().all():
    raise UserError("no run in the table has a mean downstream accuracy (acc_mean); score the "
                    "runs first: lawsearch eval --workdir RUN --tasks all")
  done = df[df["acc_mean"].notna()]
  chance = float(done["acc_mean_chance"].mean()) if "acc_mean_chance" in done else 0.0
  if not math.isfinite(chance):
    chance = 0.0
  return fit(done["loss"].to_numpy(), done["acc_mean"].to_numpy(), form, chance=chance, **kwargs)
