"""Where inference cost goes as models grow, and the brief's scaling-regime claims checked.

    table = regimes.breakdown_table(regimes.family(), "h200")   # one row per model and scenario
    regimes.claims(table)                                        # each claim, per scenario
    regimes.ratio_claim({"paper 80M-297M": ConditionalLaw.paper("80m-297m")})

The breakdown is `cost.decode_breakdown`: one decode step at KV length `context` for `batch`
sequences, its FLOPs, bytes and roofline time shared among attention projections, attention over
the cache (the KV cache's bytes), the MLP and the embedding/output head. The claims (the project
brief's, not the paper's):
  1. below 1B parameters attention dominates compute;
  2. from 10B to 70B the MLP dominates inference FLOPs;
  3. above 100B the KV cache and memory bandwidth dominate;
  4. an attention-to-MLP parameter split near 1 : 2.5 (r = 2.5) is optimal.
"Dominates" is read as "takes more than half" (of decode FLOPs for 1-2; for 3, the step is
memory-bound and the KV cache is more than half of the bytes it streams). Sizes are total
parameters. numpy and pandas (the laws evaluate in float64 jax).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from lawsearch import arch, cost
from lawsearch.laws import float64
from lawsearch.table import format_table

FAMILY = ("smollm-135m", "smollm-360m", "llama3.2-1b", "llama3.2-3b", "llama3.1-8b",
          "llama3.1-70b", "llama3.1-405b")
CONTEXTS = (4096, 32768, 131072)
BATCHES = (1, 64, 256)
WHATS = ("flops", "bytes", "time")


def family(names: Sequence[str] = FAMILY) -> dict[str, arch.ArchSpec]:
  """LLaMA-architecture models from 135M to 405B total parameters (arch presets)."""
  return {name: arch.preset(name) for name in names}


def breakdown_table(specs: Mapping[str, arch.ArchSpec], hw: cost.Hardware | str,
                    contexts: Sequence[int] = CONTEXTS, batches: Sequence[int] = BATCHES, *,
                    bytes_per_element: float = 2, group: str = "") -> pd.DataFrame:
  """One row per (model, context, batch): sizes, bound, step time (ms) and, per component, its
  share of the step's FLOPs, bytes and roofline time (columns "<what>:<component key>")."""
  rows = []
  for name, spec in specs.items():
    for context in contexts:
      for batch in batches:
        b = cost.decode_breakdown(spec, hw, batch, context, bytes_per_element=bytes_per_element)
        row = {"group": group, "name": name, "total_params": spec.total_params,
               "n_params": spec.non_embedding_params, "r": spec.mlp_attn_ratio, "gqa": spec.gqa,
               "context": context, "batch": batch, "bound": b.bound, "step_ms": 1e3 * b.step_s}
        for what in WHATS:
          row.update({f"{what}:{k}": v for k, v in b.shares(what).items()})
        rows.append(row)
  return pd.DataFrame(rows)


def breakdown_summary(table: pd.DataFrame, hardware: str) -> str:
  """What `lawsearch cost --breakdown` prints of a `breakdown_table`: each component's share of
  the roofline time of a decode step per row, then the brief's claims judged on the table."""
  shown = {k: label for k, label in cost.COMPONENTS.items() if f"time:{k}" in table}
  rows = [{"name": r["name"], "total(B)": r["total_params"] / 1e9, "context": r["context"],
           "batch": r["batch"], "bound": r["bound"], "step_ms": r["step_ms"],
           **{label: f"{r['time:' + k]:.0%}" for k, label in shown.items()},
           "MLP FLOPs": f"{r['flops:mlp']:.0%}"} for _, r in table.iterrows()]
  verdicts = claims(table)
  verdicts["holds"] = verdicts["holds"].map({True: "yes", False: "NO", None: "-"})
  return "\n".join([
      f"one decode step on {hardware}: share of roofline time per component (FLOP shares when "
      "compute-bound, byte shares when memory-bound); attention over the cache = reading the KV "
      "cache", format_table(rows, list(rows[0])),
      "\nthe brief's claims on these models ('dominates': more than half):",
      format_table(verdicts.to_dict("records"), ["claim", "scenario", "holds", "evidence",
                                                 "crossover"])])


def crossover(sizes: Sequence[float], values: Sequence[float], level: float = 0.5
              ) -> float | None:
  """The size at which `values` (ordered by size) first crosses `level`, interpolated linearly
  in log size between the two models around it; None if it never does."""
  order = np.argsort(sizes)
  x = np.log(np.asarray(sizes, np.float64)[order])
  y = np.asarray(values, np.float64)[order] - level
  for i in range(len(x) - 1):
    if y[i] == 0:
      return float(np.exp(x[i]))
    if y[i] * y[i + 1] < 0:
      return float(np.exp(x[i] + (x[i + 1] - x[i]) * y[i] / (y[i] - y[i + 1])))
  return None


def _size(n: float | None) -> str:
  if n is None:
    return "none in range"
  return f"{n / 1e9:.3g}B" if n >= 1e9 else f"{n / 1e6:.3g}M"


def claims(table: pd.DataFrame) -> pd.DataFrame:
  """Claims 1-3 per scenario of `table` (one group of models): whether each holds on the models
  in its size range, the numbers, and where the crossover falls along the whole family."""
  rows = []
  for (context, batch), t in table.groupby(["context", "batch"]):
    t = t.sort_values("total_params")
    scenario = f"context {context // 1024}k, batch {batch}"
    attention = t["flops:attn_proj"] + t["flops:attn_cache"]
    kv_share = t["bytes:attn_cache"]

    def check(claim, test, in_range, ok, numbers, crossing):
      models = t[in_range]
      rows.append({
          "claim": claim, "scenario": scenario, "test": test,
          "holds": bool(ok[in_range].all()) if len(models) else None,
          "evidence": ", ".join(f"{n}: {v}" for n, v in zip(models["name"], numbers[in_range]))
                      or "no model in range",
          "crossover": crossing})

    check("below 1B, attention dominates compute", "attention > 50% of decode FLOPs",
          t["total_params"] <= 1.3e9, attention > 0.5, attention.map("{:.0%}".format),
          f"attention below 50% of FLOPs from {_size(crossover(t['total_params'], attention))}")
    check("10B-70B: the MLP dominates inference FLOPs", "MLP > 50% of decode FLOPs",
          t["total_params"].between(7.5e9, 75e9), t["flops:mlp"] > 0.5,
          t["flops:mlp"].map("{:.0%}".format),
          f"MLP above 50% of FLOPs from {_size(crossover(t['total_params'], t['flops:mlp']))}")
    memory = t["bound"] == "memory"
    check("above 100B, the KV cache and memory bandwidth dominate",
          "memory-bound and KV cache > 50% of bytes", t["total_params"] > 1e11,
          memory & (kv_share > 0.5),
          pd.Series([f"{b}-bound, KV {s:.0%} of bytes" for b, s in zip(t["bound"], kv_share)],
                    index=t.index),
          f"KV cache crosses 50% of bytes at {_size(crossover(t['total_params'], kv_share))}")
  return pd.DataFrame(rows)


def ratio_claim(laws: Mapping[str, object], intervals: Mapping[str, tuple] | None = None,
                r_claim: float = 2.5) -> pd.DataFrame:
  """Claim 4 against fitted laws: each law's optimum r*, its 95% interval where given, and the
  predicted loss cost of r = `r_claim` at the law's optimal d/sqrt(N) (L(x*, 2.5) / L(x*, r*) - 1).
  The claim agrees with a law when `r_claim` lies in its interval (or, without one, within 25% of
  r*). A law without an interior optimum is reported as such."""
  rows = []
  for name, law in laws.items():
    try:
      x_star, r_star = law.optimum()
    except ValueError as e:
      rows.append({"law": name, "r_star": None, "r_star_95": None, "loss_at_claim": None,
                   "agrees": None, "note": str(e).split(":")[0]})
      continue
    with float64():
      penalty = float(law.predict_xr(x_star, r_claim, 1.0) / law.predict_xr(x_star, r_star, 1.0))
    penalty -= 1
    bounds = (intervals or {}).get(name)
    if bounds is not None:
      agrees = bounds[0] <= r_claim <= bounds[1]
    else:
      agrees = abs(math.log(r_claim / r_star)) <= math.log(1.25)
    rows.append({"law": name, "r_star": r_star, "r_star_95": bounds,
                 "loss_at_claim": penalty, "agrees": bool(agrees), "note": ""})
  return pd.DataFrame(rows)
