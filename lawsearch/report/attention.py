"""The attention comparison's picture: GQA and MLA candidates, the GQA Pareto front, the target,
and the best pick of each kind with its KV cache per token and predicted throughput."""

from __future__ import annotations

import json

from lawsearch import export, paths
from lawsearch.table import format_table, json_value


def summary(comparison) -> str:
  """The best GQA and MLA shapes at the target: shape, predicted loss, KV cache, throughput."""
  gqa = comparison.best["gqa"].efficiency
  rows = [{"attention": k, "d": p.spec.d_model, "f": p.spec.ffn_dim, "heads": p.spec.n_heads,
           "kv heads / kv_lora": p.spec.kv_lora_rank if p.spec.is_mla else p.spec.n_kv_heads,
           "r": p.spec.mlp_attn_ratio, "d/sqrtN": p.spec.d_over_sqrt_n,
           "loss": f"{p.loss:.5f}", "KV KiB/token": p.kv_bytes_per_token / 1024,
           "tok/s": p.efficiency, "vs GQA": f"{p.efficiency / gqa - 1:+.1%}"}
          for k, p in comparison.best.items()]
  head = (f"\nGQA against MLA at the target {comparison.result.target:.5f} "
          f"({comparison.result.loss_units}); {len(comparison.mla_candidates)} MLA candidates; "
          f"efficiency: {comparison.result.measure.label} (MLA decodes in the absorbed form)")
  notes = "".join(f"\nnote: {n}" for n in comparison.notes)
  return head + "\n" + format_table(rows, list(rows[0])) + notes


def save(comparison, out_dir: str) -> list[str]:
  """attention.json (picks, notes, every MLA candidate), attention.png and the best MLA shape's
  files to train it from (best_mla.arch.json, best_mla.config.py) in `out_dir`."""
  out = paths.path(out_dir)
  written = [str(out / "attention.json"), str(out / "attention.png")]
  paths.write_text(written[0], json.dumps(comparison.to_dict(), indent=1, default=json_value))
  attention_plot(comparison, written[1])
  if "mla" in comparison.best:
    written += export.export(comparison.best["mla"].spec, "best_mla", out_dir, doc=(
        "the best MLA shape of `lawsearch search --attention gqa,mla`")).values()
  return written


def attention_plot(comparison, path: str) -> str:
  """Write a PNG of `comparison` (an `attention_search.AttentionComparison`) to `path`."""
  from lawsearch.report import pareto  # matplotlib, when drawing
  from lawsearch.report.figure import subplots

  result, mla = comparison.result, comparison.mla_candidates
  gqa = result.candidates[result.candidates["efficiency"] > 0]
  mla = mla[mla["efficiency"] > 0]
  fig, ax = subplots(figsize=(8, 5.5), dpi=120)
  ax.scatter(gqa["efficiency"], gqa["loss"], s=6, alpha=0.4, color="tab:blue",
             label="GQA candidates")
  ax.scatter(mla["efficiency"], mla["loss"], s=6, alpha=0.4, color="tab:orange",
             label="MLA candidates")
  front = result.pareto.sort_values("efficiency")
  ax.step(front["efficiency"], front["loss"], where="post", color="black", lw=1.2,
          label="GQA Pareto front")
  ax.axhline(result.target, color="crimson", ls="--", lw=1, label="loss target")
  for (kind, pick), marker in zip(comparison.best.items(), "*D"):
    s = pick.spec
    ax.scatter([pick.efficiency], [pick.loss], marker=marker, s=120, edgecolor="black", zorder=5,
               label=(f"best {kind.upper()}: d={s.d_model}, heads={s.n_heads}"
                      + (f", kv_lora={s.kv_lora_rank}" if s.is_mla else f", GQA {s.gqa}")
                      + f"; KV {pick.kv_bytes_per_token / 1024:.3g} KiB/token, "
                        f"{pick.efficiency:.4g} tok/s"))
  return pareto.finish(fig, ax, result, float(min(gqa["loss"].min(), mla["loss"].min())),
                       f"GQA and MLA at N = {result.n_params:.3g}, D = {result.tokens:.3g} tokens",
                       path)
