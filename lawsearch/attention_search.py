"""GQA against multi-head latent attention at one loss target: the best shape of each kind.

    result = search.search(law, n_params=1e9, tokens=1e11, n_layers=16, head_dim=64,
                           baseline="llama3.2-1b")
    both = attention_search.compare(result, kv_lora_ranks=(128, 256, 512))
    both.best["gqa"], both.best["mla"], both.mla_candidates

The GQA side is the search's own recommendation (Surefire). The MLA side enumerates MLA shapes at
the same parameter budget and tolerance (`arch.enumerate_mla_candidates`: d_model over the
search's grid, kv_lora_rank over `kv_lora_ranks`, heads and ffn_dim to the budget; per-head widths
qk_nope = v = head_dim and qk_rope = head_dim / 2 unless given), scores them with the same law for
(d/sqrt(N), r) and the same efficiency measure (the roofline counts MLA's absorbed decode and its
latent KV cache, `lawsearch.cost`), and picks the most efficient that meets the target.

MLA is not in the paper's law. Without an `mla_loss` evaluator an MLA shape is assumed to have the
loss the law predicts for its (d/sqrt(N), r), as if it were a GQA shape (the result's notes say
so); `mla_loss_factor` makes an evaluator from a factor (measured MLA loss / the law's prediction,
for example fitted on a short MLA sweep at one scale: experiments/mla_sweep_compare.py).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from lawsearch import arch, cost, inputs, search
from lawsearch.errors import UserError


@dataclasses.dataclass(frozen=True)
class AttentionPick:
  """The best shape of one attention kind at the target. Units: loss as the search's,
  efficiency in its measure's units, KV cache in bytes per token over all layers (2-byte
  elements)."""

  attention: str
  spec: arch.ArchSpec
  loss: float
  efficiency: float
  kv_bytes_per_token: float
  meets_target: bool


@dataclasses.dataclass(frozen=True)
class AttentionComparison:
  """The search's GQA result, the scored MLA candidates and the best pick of each kind."""

  result: search.SearchResult
  mla_candidates: pd.DataFrame  # score columns plus the MLA fields, loss after mla_loss
  best: dict[str, AttentionPick]  # "gqa", and "mla" when an MLA candidate meets the target
  notes: list[str]

  def to_dict(self) -> dict:
    picks = {k: {**dataclasses.asdict(p), "spec": p.spec.fields()} for k, p in self.best.items()}
    return {"target": self.result.target, "loss_units": self.result.loss_units,
            "efficiency": self.result.measure.label, "best": picks, "notes": self.notes,
            "mla_candidates": self.mla_candidates.to_dict("records")}


def mla_loss_factor(result: search.SearchResult, factor: float) -> Callable[[arch.ArchSpec], float]:
  """An `mla_loss` evaluator: the law's predicted loss of the shape times `factor` (> 0)."""
  if not factor > 0:
    raise UserError(f"the MLA loss factor must be positive, got {factor!r}")
  return lambda spec: float(result.score([spec])["loss"].iloc[0]) * factor


def compare(result: search.SearchResult, *, kv_lora_ranks: Sequence[int],
            q_lora_rank: int = 0, qk_nope_head_dim: int = 0, qk_rope_head_dim: int = 0,
            v_head_dim: int = 0, d_models: Sequence[int] | None = None, ffn_step: int = 256,
            tolerance: float = 0.01, r_range: tuple[float, float] | None = None,
            mla_loss: Callable[[arch.ArchSpec], float] | None = None) -> AttentionComparison:
  """The best GQA shape (the search's Surefire) and the best MLA shape at `result`'s target.

  Head widths default to the search's head_dim (qk_nope, v) and half of it (qk_rope); d_models to
  the d_model values of the GQA candidates. ffn_step, tolerance and r_range (keep MLA shapes
  whose r lies inside it; None keeps all) as given to the search.
  """
  f = "attention_search.compare"
  inputs.instance(result, "result", search.SearchResult, "a SearchResult (search.search)", f)
  inputs.argument(kv_lora_ranks, "kv_lora_ranks", "integers", f)
  inputs.argument(d_models, "d_models", "integers", f, optional=True)
  inputs.argument(ffn_step, "ffn_step", "positive integer", f)
  inputs.argument(tolerance, "tolerance", "fraction", f)
  inputs.argument(r_range, "r_range", "range", f, optional=True)
  inputs.argument(mla_loss, "mla_loss", "callable", f, optional=True)
  for name, value in (("q_lora_rank", q_lora_rank), ("qk_nope_head_dim", qk_nope_head_dim),
                      ("qk_rope_head_dim", qk_rope_head_dim), ("v_head_dim", v_head_dim)):
    inputs.argument(value, name, "count", f)
  if isinstance(result.measure, search.MeasuredEfficiency):
    raise UserError("measured throughputs are looked up by GQA shape, which cannot tell an MLA "
                    "shape apart; compare attention kinds on the roofline (drop --measured)")
  if not kv_lora_ranks or any(int(r) != r or r < 1 for r in kv_lora_ranks):
    raise UserError(f"kv_lora_ranks must be positive integers, got {list(kv_lora_ranks)!r}")
  c = result.candidates
  head_dim = int(result.surefire.head_dim)
  dims = [arch.MlaDims(int(rank), qk_nope_head_dim or head_dim,
                       qk_rope_head_dim or max(2, head_dim // 2), v_head_dim or head_dim,
                       q_lora_rank) for rank in kv_lora_ranks]
  grid = sorted(set(int(d) for d in c["d_model"])) if d_models is None else list(d_models)
  specs = arch.enumerate_mla_candidates(
      result.n_params, n_layers=int(result.surefire.n_layers), d_models=grid, dims=dims,
      ffn_step=ffn_step, tolerance=tolerance, vocab_size=int(result.surefire.vocab_size))
  if r_range is not None:
    specs = [s for s in specs if r_range[0] <= s.mlp_attn_ratio <= r_range[1]]
  if not specs:
    raise UserError(f"no MLA shape within {tolerance:.1%} of {result.n_params:.4g} parameters "
                    f"with kv_lora_rank in {list(kv_lora_ranks)}"
                    + (f" and r in [{r_range[0]:g}, {r_range[1]:g}]" if r_range else "")
                    + "; widen the tolerance or change the ranks")
  table = result.score(specs)
  for field in ("attention",) + arch.MLA_FIELDS:
    table[field] = [getattr(s, field) for s in specs]
  notes = []
  if mla_loss is None:
    notes.append("MLA is not in the law and no mla_loss evaluator was given: an MLA shape is "
                 "assumed to have the law's predicted loss for its (d/sqrt(N), r)")
  else:
    table["law_loss"] = table["loss"]
    table["loss"] = np.array([float(mla_loss(s)) for s in specs], np.float64)
  table["meets_target"] = search.meets(table["loss"], result.target)
  table["kv_bytes_per_token"] = [cost.kv_cache_bytes_per_token(s) for s in specs]
  g = result.locate(result.surefire)
  best = {"gqa": AttentionPick("gqa", result.surefire, g["loss"], g["efficiency"],
                               cost.kv_cache_bytes_per_token(result.surefire),
                               g["meets_target"])}
  ok = table[table["meets_target"] & (table["efficiency"] > 0)]
  if ok.empty:
    notes.append(f"no MLA candidate meets the target {result.target:.6g} (lowest predicted loss "
                 f"{table['loss'].min():.6g})")
  else:
    i = ok.sort_values(["efficiency", "loss"], ascending=[False, True]).index[0]
    row = table.loc[i]
    best["mla"] = AttentionPick("mla", specs[i], float(row["loss"]), float(row["efficiency"]),
                                float(row["kv_bytes_per_token"]), True)
  return AttentionComparison(result, table, best, notes)
