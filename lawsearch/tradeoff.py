"""Beyond the constrained search: the penalised objective and the efficiency exponent.

    costs = InferenceCost("$/Mtoken", price_per_hour=2.5)
    picks = penalised(result, [0.01, 0.1, 1], costs)      # argmin Loss + lambda * cost / cost_ref
    points = family_points(results, ChinchillaLaw.epoch())
    exponents(points)                                      # alpha, eta, alpha / eta per group

The penalised objective, beside Algorithm 1's "most efficient shape meeting a loss target":
    J_lambda(P) = L(P) + lambda * c(P) / c_ref
with L the search's predicted loss (relative to L_opt, or absolute with an L_opt) and c the
inference cost per output token of the search's efficiency measure (tokens/s): seconds, joules
(with a power figure) or dollars per million tokens (with a price per hour). c_ref is the
baseline's cost (Panda's without a baseline), so lambda is in loss units per baseline cost: lambda
= 0.01 trades 0.01 of loss for the baseline's whole cost. All three units are constant multiples
of 1 / tokens/s, so once normalised they pick the same shapes; the unit sets what is reported.
Every minimiser is on the Pareto front (a point beaten on both loss and cost has a larger J);
lambda -> 0 gives the lowest loss, lambda -> inf the cheapest admissible candidate.

The efficiency exponent, per group of shapes (a GQA value; an attention kind):
    Performance = 1 / (L - E)   (inverse reducible loss: L absolute, E the Chinchilla law's
                                 irreducible loss)
    Performance ~ N^alpha,   InferenceCost ~ N^eta,   so   Performance ~ InferenceCost^(alpha/eta)
fitted by least squares in logs across model sizes, one point per size and group (the group's
most efficient shape that meets that size's target). alpha / eta is the exponent of performance
in inference cost: how much accuracy a family buys per unit of serving cost as it scales. (A
joint regression log P = a + alpha log N - eta log C across all candidates would mix two effects
of opposite sign: across sizes P and C rise together, while at one size the Pareto front trades
loss against cost.) Intervals: a case bootstrap over the sizes.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from lawsearch import inputs
from lawsearch.errors import UserError
from lawsearch.search import SHAPE_COLUMNS, SearchResult

UNITS = ("s/token", "J/token", "$/Mtoken")


@dataclasses.dataclass(frozen=True)
class InferenceCost:
  """A cost per output token from a throughput in output tokens/s of the whole serving system
  (one chip or node): seconds, joules (`power_w`, the system's watts) or dollars per million
  tokens (`price_per_hour`, the system's dollars per hour)."""

  unit: str = "s/token"
  power_w: float | None = None
  price_per_hour: float | None = None

  def __post_init__(self):
    if self.unit not in UNITS:
      raise UserError(f"cost unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
    need = {"J/token": ("power_w", "--power-w WATTS (the serving system's power)"),
            "$/Mtoken": ("price_per_hour", "--price-per-hour DOLLARS (the system's hourly "
                                           "price)")}.get(self.unit)
    if need is not None:
      value = getattr(self, need[0])
      if value is None or not np.isfinite(value) or value <= 0:
        raise UserError(f"a cost in {self.unit} needs a positive {need[1]}, got {value!r}")

  def per_token(self, tokens_per_s) -> np.ndarray:
    """Cost of one output token at `tokens_per_s`; inf where the rate is 0 or unmeasured."""
    rate = np.asarray(tokens_per_s, np.float64)
    scale = {"s/token": 1.0, "J/token": self.power_w,
             "$/Mtoken": None if self.price_per_hour is None else self.price_per_hour / 3600 * 1e6
             }[self.unit]
    with np.errstate(divide="ignore", invalid="ignore"):
      return np.where(np.isfinite(rate) & (rate > 0), scale / rate, np.inf)


def _admissible(result: SearchResult) -> pd.DataFrame:
  c = result.candidates
  return c[c["admissible"] & np.isfinite(c["efficiency"]) & (c["efficiency"] > 0)]


def minimisers(loss, cost, lambdas: Sequence[float]) -> np.ndarray:
  """Index of the minimiser of loss + lambda * cost for each lambda (ties: lower loss, then lower
  cost, so that the pick is on the front even at lambda = 0), int [len(lambdas)]; `cost` already
  normalised."""
  loss, cost = np.asarray(loss, np.float64), np.asarray(cost, np.float64)
  return np.array([np.lexsort((cost, loss, loss + lam * cost))[0] for lam in lambdas], np.int64)


def penalised(result: SearchResult, lambdas: Sequence[float],
              costs: InferenceCost = InferenceCost()) -> pd.DataFrame:
  """The minimiser of L + lambda * c / c_ref over the search's admissible candidates, one row per
  lambda (ties: lower loss, then lower cost): its shape, loss, efficiency, cost (in `costs.unit`
  and relative to the reference), objective, and whether it meets the target and is on the
  front."""
  inputs.instance(result, "result", SearchResult, "a SearchResult (search.search)",
                  "tradeoff.penalised")
  inputs.instance(costs, "costs", InferenceCost, "an InferenceCost", "tradeoff.penalised")
  if not isinstance(lambdas, (list, tuple)) or not all(
      isinstance(v, (int, float)) and not isinstance(v, bool) for v in lambdas):
    raise UserError(f"tradeoff.penalised: lambdas must be a list of numbers, got "
                    f"{lambdas!r}"[:300])
  lambdas = [float(v) for v in lambdas]
  bad = [v for v in lambdas if not (np.isfinite(v) and v >= 0)]
  if bad or not lambdas:
    raise UserError(f"lambda values must be finite and >= 0, got {bad or 'none'}")
  table = _admissible(result)
  reference = result.baseline if result.baseline is not None else result.panda
  ref_cost = float(costs.per_token([result.locate(reference)["efficiency"]])[0])
  if not np.isfinite(ref_cost):
    raise UserError(f"the reference {reference} has no efficiency to normalise the cost by "
                     "(unmeasured, or it does not fit in memory)")
  cost = costs.per_token(table["efficiency"])
  relative = cost / ref_cost
  loss = table["loss"].to_numpy(np.float64)
  rows = []
  for lam, best in zip(lambdas, minimisers(loss, relative, lambdas)):
    row = table.iloc[best]
    rows.append({"lambda": lam, **{f: row[f] for f in SHAPE_COLUMNS}, "gqa": row["gqa"],
                 "n_params": row["n_params"], "mlp_attn_ratio": row["mlp_attn_ratio"],
                 "loss": row["loss"], "efficiency": row["efficiency"],
                 f"cost ({costs.unit})": cost[best], "relative_cost": relative[best],
                 "objective": loss[best] + lam * relative[best],
                 "meets_target": bool(row["meets_target"]), "pareto": bool(row["pareto"])})
  return pd.DataFrame(rows)


def family_points(results: Sequence[SearchResult], chinchilla, tokens_per_param: float = 20,
                  costs: InferenceCost = InferenceCost()) -> pd.DataFrame:
  """One point per (search, GQA): the most efficient admissible candidate of that GQA meeting
  the search's target, with its absolute loss (the law's relative loss times the Chinchilla law's
  L_opt at N and tokens_per_param * N tokens), Performance = 1 / (L - E) and its cost per token.
  Searches must be in relative losses (no l_opt)."""
  rows = []
  for result in results:
    if result.l_opt not in (None, "relative"):
      raise UserError("family_points needs searches with relative losses (l_opt=None): the "
                       "Chinchilla law supplies L_opt at each candidate's N")
    table = _admissible(result)
    table = table[table["meets_target"]]
    for gqa, group in table.groupby("gqa"):
      row = group.sort_values(["efficiency", "loss"], ascending=[False, True]).iloc[0]
      n = float(row["n_params"])
      l_opt = float(np.asarray(chinchilla.predict(n, tokens_per_param * n)))
      loss = float(row["loss"]) * l_opt
      rows.append({"size": f"{result.n_params:.3g}", "group": f"GQA {int(gqa)}",
                   "kind": "MHA" if gqa == 1 else "GQA", "n_params": n, "loss": loss,
                   "performance": 1.0 / (loss - chinchilla.E),
                   "cost": float(costs.per_token([row["efficiency"]])[0]),
                   **{f: row[f] for f in SHAPE_COLUMNS}})
  return pd.DataFrame(rows)


def _slopes(log_n, log_p, log_c) -> tuple[float, float]:
  alpha = np.polyfit(log_n, log_p, 1)[0]
  eta = np.polyfit(log_n, log_c, 1)[0]
  return float(alpha), float(eta)


def exponents(points: pd.DataFrame, by: str = "group", n_boot: int = 1000, level: float = 0.95,
              seed: int = 0, min_sizes: int = 3) -> pd.DataFrame:
  """alpha, eta and alpha / eta per `by` group of `points` (columns n_params, performance, cost),
  with case-bootstrap intervals over the points; groups with fewer than `min_sizes` sizes (>= 3)
  are left out."""
  rng = np.random.default_rng(seed)
  rows = []
  for name, g in points.groupby(by):
    if g["n_params"].nunique() < max(3, min_sizes):
      continue
    log_n, log_p, log_c = (np.log(g[c].to_numpy(np.float64)) for c in ("n_params", "performance",
                                                                        "cost"))
    alpha, eta = _slopes(log_n, log_p, log_c)
    draws = []
    for _ in range(n_boot):
      i = rng.integers(0, len(g), len(g))
      if len(set(log_n[i])) >= 2:
        a, e = _slopes(log_n[i], log_p[i], log_c[i])
        draws.append((a, e, a / e))
    lo, hi = np.quantile(np.array(draws), [(1 - level) / 2, (1 + level) / 2], axis=0)
    rows.append({by: name, "sizes": len(g), "alpha": alpha, "eta": eta, "alpha_over_eta":
                 alpha / eta, "alpha_lo": lo[0], "alpha_hi": hi[0], "eta_lo": lo[1],
                 "eta_hi": hi[1], "ratio_lo": lo[2], "ratio_hi": hi[2]})
  if not rows:
    raise UserError(f"no {by} has points at {max(3, min_sizes)} or more sizes; search at more "
                     "budgets")
  return pd.DataFrame(rows)
