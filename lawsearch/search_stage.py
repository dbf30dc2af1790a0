"""The search stage: Algorithm 1 at one budget, with what `lawsearch search` adds around it (the
penalised trade-off, the MLA comparison, the predicted accuracy), its files saved.

    done = search_stage.run(SearchRequest(ConditionalLaw.paper("80m-297m"), n_params=1e9,
                                          tokens=1e11, n_layers=16, head_dim=64,
                                          baseline="llama3.2-1b", out="out/search"))
    print(done.summary())
    done.result.surefire, done.penalised, done.attention, done.written

Everything but the output directory is optional beyond `search.search`'s own inputs: `lambdas`
adds `tradeoff.penalised`'s minimisers, `attention=("gqa", "mla")` the best MLA shape beside the
best GQA one (`attention_search.compare`), `accuracy` each pick's predicted mean accuracy.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import pandas as pd

from lawsearch import attention_search, inputs, moe_search, search, tradeoff
from lawsearch.laws import ConditionalLaw
from lawsearch.report import attention as attention_report, moe as moe_report, search_report


@dataclasses.dataclass(frozen=True)
class SearchRequest:
  """One search as `lawsearch search` asks for it (units: parameters, tokens, losses as the law)."""

  law: ConditionalLaw
  n_params: float                      # N, the non-embedding parameter budget
  tokens: float                        # D, training tokens
  n_layers: int
  head_dim: int
  out: str                             # directory of search.json, pareto.png and the picks' files
  loss_target: float | None = None     # absolute with l_opt, else relative to L_opt
  baseline: str | None = None          # preset whose predicted loss is the target
  efficiency: search.EfficiencyMeasure | None = None  # None: search.search's roofline
  l_opt: float | None = None           # L_opt(N, D); None: losses relative
  tolerance: float = 0.01
  max_gqa: int = 16
  vocab_size: int = 128256
  pareto_points: int = 5               # front rows the summary shows
  accuracy: object = None              # a laws.accuracy.AccuracyLaw: predicted accuracy per pick
  lambdas: Sequence[float] = ()        # penalised objective loss + lambda * relative cost
  cost_unit: str = "s/token"           # its cost: s/token, J/token or $/Mtoken
  power_w: float | None = None         # J/token: the serving system's W (default: the roofline
                                       # chip's datasheet maximum)
  price_per_hour: float | None = None  # $/Mtoken: the serving system's $ per hour
  attention: Sequence[str] = ("gqa",)  # ("gqa", "mla"): also the best MLA shape
  kv_lora_ranks: Sequence[int] | None = None  # MLA ranks; None: 2, 4 and 8 x head_dim
  q_lora_rank: int = 0
  mla_loss_factor: float | None = None  # MLA loss = the law's x this; None: loss-neutral
  mlp: Sequence[str] = ("dense",)      # ("dense", "moe"): also the best mixture of experts
  experts: Sequence[int] = (4, 8, 16)  # its expert counts E
  granularities: Sequence[int] = (1, 2, 4)  # its granularities G (top-k = G, width ffn_dim / G)


@dataclasses.dataclass(frozen=True)
class SearchOutcome:
  """What `run` found and wrote."""

  request: SearchRequest
  result: search.SearchResult
  penalised: pd.DataFrame | None        # tradeoff.penalised's rows, one per lambda
  attention: attention_search.AttentionComparison | None
  moe: moe_search.MlpComparison | None
  written: list[str]                    # paths of the files saved

  def summary(self) -> str:
    """The picks' table, then the penalised minimisers, the GQA-MLA and the dense-MoE
    comparisons, the files."""
    parts = [search_report.summary(self.result, self.request.pareto_points,
                                   self.request.accuracy)]
    if self.penalised is not None:
      parts.append(search_report.penalised_summary(self.penalised, self.result))
    if self.attention is not None:
      parts.append(attention_report.summary(self.attention))
    if self.moe is not None:
      parts.append(moe_report.summary(self.moe))
    return "\n".join(parts + ["\nwrote " + ", ".join(self.written)])


def run(request: SearchRequest) -> SearchOutcome:
  """The search stage: `search.search` on the request, the extras it asks for, the files saved
  under `request.out` (checked before any work: an output may not be a file)."""
  inputs.output_dir(request.out, "--out")
  if request.accuracy is not None:
    search_report.require_absolute(search.loss_units(request.l_opt))
  measure = search.as_efficiency(request.efficiency)
  costs = _cost(request, measure) if request.lambdas else None
  result = search.search(
      request.law, request.n_params, request.tokens, request.n_layers, request.head_dim,
      loss_target=request.loss_target, baseline=request.baseline, efficiency=measure,
      l_opt=request.l_opt, tolerance=request.tolerance, max_gqa=request.max_gqa,
      vocab_size=request.vocab_size)
  penalised = tradeoff.penalised(result, request.lambdas, costs) if costs else None
  written = search_report.save(result, request.out, penalised=penalised)
  both = None
  if "mla" in request.attention:
    both = attention_search.compare(
        result, kv_lora_ranks=request.kv_lora_ranks or [k * request.head_dim for k in (2, 4, 8)],
        q_lora_rank=request.q_lora_rank, tolerance=request.tolerance,
        mla_loss=(None if request.mla_loss_factor is None
                  else attention_search.mla_loss_factor(result, request.mla_loss_factor)))
    written += attention_report.save(both, request.out)
  moe = None
  if "moe" in request.mlp:
    moe = moe_search.compare(result, experts=request.experts,
                             granularities=request.granularities)
    written += moe_report.save(moe, request.out)
  return SearchOutcome(request, result, penalised, both, moe, written)


def _cost(request: SearchRequest, measure) -> tradeoff.InferenceCost:
  """The request's cost per token; J/token without power_w at the roofline chip's watts."""
  power = request.power_w
  if power is None and request.cost_unit == "J/token" and isinstance(
      measure, search.RooflineEfficiency):
    power = measure.chip.power_w
  return tradeoff.InferenceCost(request.cost_unit, power, request.price_per_hour)
