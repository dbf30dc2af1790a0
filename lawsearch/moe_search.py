"""Dense against mixture-of-experts MLPs at one loss target: the best shape of each kind, and
where their serving throughputs cross as the batch grows.

    result = search.search(law, n_params=1e9, tokens=1e11, n_layers=16, head_dim=64,
                           baseline="llama3.2-1b")
    both = moe_search.compare(result, experts=(4, 8, 16), granularities=(1, 2, 4))
    both.best["dense"], both.best["moe"], both.crossover_batch, both.throughput

The dense side is the search's own recommendation (Surefire). The MoE side turns every dense
candidate the search scored into mixtures of the same active size: E experts of width
ffn_dim / G with top-k = G (granularity G; one token uses G experts, as many MLP weights as the
dense shape), for each E in `experts` and G in `granularities` with G < E. Each is scored with the
same law (a MoE form prices its sparsity: `laws.forms`; a dense law gives it the dense loss, which
the notes say) at its active d/sqrt(N) and r, and with the same efficiency measure, whose
roofline reads the experts a batch touches (`arch.experts_touched`) and counts every expert's
weights in memory: a mixture that does not fit the device has efficiency 0 and is infeasible.
The best of each kind is the most efficient shape that meets the target. Their throughput is
then taken on the measure at each of `batches`: MoE's edge at batch 1 (it reads only top-k
experts) shrinks as the batch touches more of them; `crossover_batch` is the first batch at which
dense is as fast.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from lawsearch import arch, inputs, search
from lawsearch.errors import UserError
from lawsearch.laws import forms

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclasses.dataclass(frozen=True)
class MlpPick:
  """The best shape of one MLP kind at the target: loss as the search's, efficiency in its
  measure's units, weights in bytes (every expert counted)."""

  mlp: str
  spec: arch.ArchSpec
  loss: float
  efficiency: float
  weight_bytes: float


@dataclasses.dataclass(frozen=True)
class MlpComparison:
  """The search's dense result, the scored MoE candidates, the best pick of each kind and their
  throughput against batch (rows: batch; columns dense, moe, in the measure's units)."""

  result: search.SearchResult
  moe_candidates: pd.DataFrame
  best: dict[str, MlpPick]             # "dense", and "moe" when a mixture meets the target
  throughput: pd.DataFrame | None      # None without a MoE pick or with a measure not batched
  crossover_batch: int | None          # first batch where dense >= MoE (None: never in range)
  notes: list[str]

  def to_dict(self) -> dict:
    picks = {k: {**dataclasses.asdict(p), "spec": p.spec.fields()} for k, p in self.best.items()}
    return {"target": self.result.target, "loss_units": self.result.loss_units,
            "efficiency": self.result.measure.label, "best": picks, "notes": self.notes,
            "crossover_batch": self.crossover_batch,
            "throughput": (None if self.throughput is None
                           else self.throughput.reset_index().to_dict("records")),
            "moe_candidates": self.moe_candidates.to_dict("records")}


def mixtures(spec: arch.ArchSpec, experts: Sequence[int], granularities: Sequence[int]
             ) -> list[arch.ArchSpec]:
  """The mixtures of `spec`'s active size (`arch.mixture`) for each E and G that allow one: G < E,
  so that a token skips some experts, and G dividing ffn_dim."""
  return [arch.mixture(spec, e, g) for e in experts for g in granularities
          if g < e and spec.ffn_dim % g == 0]


def compare(result: search.SearchResult, *, experts: Sequence[int] = (4, 8, 16),
            granularities: Sequence[int] = (1, 2, 4),
            batches: Sequence[int] = BATCHES) -> MlpComparison:
  """The best dense shape (the search's Surefire) and the best mixture of experts at `result`'s
  target, and both picks' throughput at each of `batches` (module doc)."""
  for name, values in (("experts", experts), ("granularities", granularities),
                       ("batches", batches)):
    if not values or any(not isinstance(v, (int, np.integer)) or v < 1 for v in values):
      raise UserError(f"moe_search.compare: {name} must be positive integers, got {values!r}")
  inputs.instance(result, "result", search.SearchResult, "a search.SearchResult",
                  "moe_search.compare")
  dense = [search.spec_of_row(row) for _, row in result.candidates.iterrows()]
  specs = [m for s in dense for m in mixtures(s, experts, granularities)]
  if not specs:
    raise UserError("no mixture of experts can be built from the search's shapes with experts "
                    f"{tuple(experts)} and granularities {tuple(granularities)}: each G must "
                    "divide ffn_dim and be below E")
  table = _scored(result, specs)
  best = {"dense": _pick("dense", result.surefire, result)}
  meeting = table[table["meets_target"] & (table["efficiency"] > 0)]
  notes = []
  if not forms.get_form(result.law.form).is_moe:
    notes.append(f"the {result.law.form} law has no sparsity term: every mixture is given its "
                 "dense shape's loss; fit a MoE form (`lawsearch fit --form moe-leverage`) on "
                 "MoE runs to price sparsity")
  if meeting.empty:
    notes.append("no mixture meets the target and fits the device")
    return MlpComparison(result, table, best, None, None, notes)
  row = meeting.loc[meeting["efficiency"].idxmax()]
  best["moe"] = _pick("moe", specs[int(row.name)], result)
  throughput = _throughput(result.measure, best, batches)
  crossover = None
  if throughput is not None:
    behind = throughput.index[throughput["dense"] >= throughput["moe"]]
    crossover = int(behind[0]) if len(behind) else None
  return MlpComparison(result, table, best, throughput, crossover, notes)


def _scored(result: search.SearchResult, specs: list[arch.ArchSpec]) -> pd.DataFrame:
  """The search's score columns for `specs`, with their MoE fields, active size, weight bytes
  and whether each meets the target."""
  table = result.score(specs)
  table["n_experts"] = [s.n_experts for s in specs]
  table["top_k"] = [s.top_k for s in specs]
  table["expert_ffn_dim"] = [s.expert_ffn_dim for s in specs]
  table["n_active"] = [s.active_non_embedding_params for s in specs]
  table["weight_bytes"] = [_weight_bytes(s, result.measure) for s in specs]
  table["meets_target"] = search.meets(table["loss"], result.target)
  return table


def _weight_bytes(spec: arch.ArchSpec, measure) -> float:
  return float(spec.total_params * getattr(measure, "bytes_per_element", 2))


def _pick(kind: str, spec: arch.ArchSpec, result: search.SearchResult) -> MlpPick:
  row = result.score([spec]).iloc[0]
  return MlpPick(kind, spec, float(row["loss"]), float(row["efficiency"]),
                 _weight_bytes(spec, result.measure))


def _throughput(measure, best: dict[str, MlpPick], batches: Sequence[int]) -> pd.DataFrame | None:
  """Both picks' efficiency at each batch on a batched measure (the roofline); None otherwise."""
  if not isinstance(measure, search.RooflineEfficiency):
    return None
  rows = {b: {kind: float(dataclasses.replace(measure, batch=int(b)).many([pick.spec])[0])
              for kind, pick in best.items()} for b in sorted(set(batches))}
  return pd.DataFrame.from_dict(rows, orient="index").rename_axis("batch")
