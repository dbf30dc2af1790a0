"""The search's picture: predicted loss against efficiency, the Pareto front, the named picks."""

from __future__ import annotations

import matplotlib.colors

from lawsearch.report.figure import save, subplots


def pareto_plot(result, path: str, named: dict | None = None, penalised=None) -> str:
  """Write a PNG of `result` (a `search.SearchResult`) to `path`; `named`: label -> ArchSpec
  of extra architectures to mark (e.g. the paper's Surefire); `penalised`: the minimisers of
  `tradeoff.penalised`, each marked with the lambdas that pick it."""
  c = result.candidates
  scored = c[c["efficiency"] > 0]
  fig, ax = subplots(figsize=(8, 5.5), dpi=120)
  points = ax.scatter(scored["efficiency"], scored["loss"], c=scored["gqa"], cmap="viridis", s=6,
                      alpha=0.5, norm=matplotlib.colors.LogNorm())
  fig.colorbar(points, ax=ax, label="GQA (query heads per KV head)")
  front = result.pareto.sort_values("efficiency")
  ax.step(front["efficiency"], front["loss"], where="post", color="black", lw=1.2,
          label="Pareto front")
  ax.axhline(result.target, color="crimson", ls="--", lw=1, label="loss target")
  marks = {"Panda": result.panda, "Surefire": result.surefire}
  if result.algorithm1 != result.surefire:
    marks["Algorithm 1's pick"] = result.algorithm1
  if result.baseline is not None:
    marks["baseline"] = result.baseline
  marks.update(named or {})
  for (label, spec), marker in zip(marks.items(), "o*sDv^<>"):
    row = result.locate(spec)
    ax.scatter([row["efficiency"]], [row["loss"]], marker=marker, s=90, edgecolor="black",
               zorder=5, label=f"{label} (d={spec.d_model}, r={row['mlp_attn_ratio']:.2f}, "
                                f"GQA {spec.gqa})")
  if penalised is not None:
    for (eff, loss), group in penalised.groupby(["efficiency", "loss"], sort=False):
      ax.scatter([eff], [loss], marker="x", s=50, color="crimson", zorder=6)
      ax.annotate("λ=" + ",".join(f"{v:g}" for v in group["lambda"]), (eff, loss), fontsize=6,
                  xytext=(4, 4), textcoords="offset points", color="crimson")
  return finish(fig, ax, result, float(c["loss"].min()),
                f"lawsearch: N = {result.n_params:.3g}, D = {result.tokens:.3g} tokens", path)


def finish(fig, ax, result, low: float, title: str, path: str) -> str:
  """Frames a loss-against-efficiency plot of `result` around its target (from the lowest
  plotted loss `low` up), labels, legend and grid; writes it to `path`."""
  span = max(result.target - low, 1e-3 * low)
  ax.set_ylim(low - 0.3 * span, result.target + 3 * span)  # the region around the target
  ax.set_xlabel(result.measure.label)
  ax.set_ylabel(f"predicted loss ({result.loss_units})")
  ax.set_title(title)
  ax.legend(fontsize=7, loc="upper right")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  return save(fig, path)
