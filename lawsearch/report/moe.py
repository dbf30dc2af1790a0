"""The dense-against-MoE comparison as text and pictures: the best pick of each kind with its
throughput at batch 1 and at the serving batch, and both picks' throughput against batch."""

from __future__ import annotations

import json

from lawsearch import export, paths
from lawsearch.table import format_table, json_value


def summary(comparison) -> str:
  """The best dense and MoE shapes at the target: shape, loss, weights, throughput at batch 1 and
  at the measure's batch, and where the two cross."""
  result, curve = comparison.result, comparison.throughput
  serving = getattr(result.measure, "batch", None)
  rows = []
  for kind, p in comparison.best.items():
    s = p.spec
    row = {"mlp": kind, "d": s.d_model, "f": s.ffn_dim, "heads": s.n_heads, "kv": s.n_kv_heads,
           "experts": f"{s.n_experts} x {s.expert_ffn_dim}, top-{s.top_k}" if s.is_moe else "-",
           "N active (M)": s.active_non_embedding_params / 1e6,
           "N total (M)": s.non_embedding_params / 1e6, "loss": f"{p.loss:.5f}",
           "weights GB": p.weight_bytes / 1e9}
    if curve is not None:
      row["tok/s b1"] = curve.loc[1, kind] if 1 in curve.index else float("nan")
    row[f"tok/s b{serving}" if serving else "efficiency"] = p.efficiency
    rows.append(row)
  head = (f"\ndense against mixture of experts at the target {result.target:.5f} "
          f"({result.loss_units}); {len(comparison.moe_candidates)} MoE candidates of the search's "
          f"active sizes; efficiency: {result.measure.label}")
  lines = [head, format_table(rows, list(rows[0]))]
  if curve is not None:
    lines.append("dense is as fast as the MoE pick from batch "
                 f"{comparison.crossover_batch}" if comparison.crossover_batch is not None else
                 f"the MoE pick stays faster up to batch {int(curve.index.max())}")
  return "\n".join(lines + [f"note: {n}" for n in comparison.notes])


def save(comparison, out_dir: str) -> list[str]:
  """moe.json (picks, throughput against batch, notes, every MoE candidate), moe_throughput.png
  (with a MoE pick on a batched measure) and the best MoE shape's files to train it from
  (best_moe.arch.json, best_moe.config.py) in `out_dir`."""
  out = paths.path(out_dir)
  written = [str(out / "moe.json")]
  paths.write_text(written[0], json.dumps(comparison.to_dict(), indent=1, default=json_value))
  if comparison.throughput is not None:
    written.append(throughput_plot(comparison, str(out / "moe_throughput.png")))
  if "moe" in comparison.best:
    written += export.export(comparison.best["moe"].spec, "best_moe", out_dir, doc=(
        "the best mixture of experts of `lawsearch search --mlp dense,moe`")).values()
  return written


def throughput_plot(comparison, path: str) -> str:
  """Both picks' throughput against batch (log-log), the serving batch and the crossover
  marked; writes the PNG to `path` and returns it."""
  from lawsearch.report import figure  # matplotlib, when drawing
  from lawsearch.report.figure import subplots

  curve, measure = comparison.throughput, comparison.result.measure
  fig, ax = subplots(figsize=(7, 4.5), dpi=120)
  for kind, marker in (("dense", "o"), ("moe", "s")):
    p = comparison.best[kind].spec
    label = (f"best MoE: {p.n_experts} experts of {p.expert_ffn_dim}, top-{p.top_k}, d={p.d_model}"
             if kind == "moe" else f"best dense: d={p.d_model}, f={p.ffn_dim}, GQA {p.gqa}")
    shown = curve[curve[kind] > 0]
    ax.plot(shown.index, shown[kind], marker=marker, ms=4, label=label)
  ax.axvline(measure.batch, color="grey", ls=":", lw=1, label=f"serving batch {measure.batch}")
  if comparison.crossover_batch is not None:
    ax.axvline(comparison.crossover_batch, color="crimson", ls="--", lw=1,
               label=f"dense as fast from batch {comparison.crossover_batch}")
  ax.set(xscale="log", yscale="log", xlabel="batch (sequences decoded together)",
         ylabel="output tokens/s (roofline)",
         title=f"dense against MoE at the loss target, {measure.chip.name}")
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7)
  fig.tight_layout()
  figure.save(fig, path)
  return path
