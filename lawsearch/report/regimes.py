"""The breakdown's picture: each component's share of a decode step against model size, one
panel per (context, batch) scenario."""

from __future__ import annotations

import numpy as np

from lawsearch import cost
from lawsearch.report.figure import save, subplots


def breakdown_plot(table, path: str, what: str = "time", title: str = "") -> str:
  """Stacked shares of `what` ("flops", "bytes" or "time") against total parameters, from a
  `regimes.breakdown_table` of one group of models; compute-bound steps marked with a dot."""
  contexts, batches = sorted(set(table["context"])), sorted(set(table["batch"]))
  fig, axes = subplots(len(contexts), len(batches), figsize=(3.4 * len(batches),
                           2.6 * len(contexts)), dpi=110, sharex=True, sharey=True,
                           squeeze=False)
  parts = {k: label for k, label in cost.COMPONENTS.items() if f"{what}:{k}" in table}
  colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#937860", "#da8bc3", "#8172b3"]
  for i, context in enumerate(contexts):
    for j, batch in enumerate(batches):
      ax = axes[i][j]
      t = table[(table["context"] == context) & (table["batch"] == batch)].sort_values(
          "total_params")
      ax.stackplot(t["total_params"], *[t[f"{what}:{k}"].fillna(0) for k in parts],
                   labels=list(parts.values()), colors=colors[:len(parts)], alpha=0.85)
      bound = t[t["bound"] == "compute"]
      ax.scatter(bound["total_params"], [1.02] * len(bound), s=12, color="black",
                 clip_on=False, label="compute-bound step")
      ax.axhline(0.5, color="white", lw=0.8, ls="--")
      ax.set_xscale("log")
      ax.set_ylim(0, 1)
      ax.set_title(f"context {context // 1024}k, batch {batch}", fontsize=8)
      if j == 0:
        ax.set_ylabel(f"share of {what}", fontsize=8)
      if i == len(contexts) - 1:
        ax.set_xlabel("total parameters", fontsize=8)
      ax.tick_params(labelsize=7)
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=7)
  fig.suptitle(title or f"decode step {what} by component ({table['name'].iloc[0]} ... "
               f"{table['name'].iloc[-1]})", fontsize=9)
  fig.tight_layout(rect=(0, 0.05, 1, 0.97))
  return save(fig, path)


def exponents_plot(points, table, path: str) -> str:
  """Performance against inference cost per token (log-log), one colour per group of
  `tradeoff.family_points`, with each group's fitted slope alpha / eta (`tradeoff.exponents`)."""
  fig, ax = subplots(figsize=(7, 5), dpi=110)
  fits = table.set_index("group")
  for name, g in points.groupby("group"):
    g = g.sort_values("n_params")
    line, = ax.plot(g["cost"], g["performance"], "o", ms=4)
    if name in fits.index:
      f = fits.loc[name]
      c = np.log(g["cost"].to_numpy())
      p = np.log(g["performance"].to_numpy())
      fitted = np.exp(p.mean() + f["alpha_over_eta"] * (c - c.mean()))
      ax.plot(g["cost"], fitted, "-", color=line.get_color(), lw=1,
              label=f"{name}: alpha {f['alpha']:.3f}, eta {f['eta']:.3f}, "
                    f"alpha/eta {f['alpha_over_eta']:.3f}")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("inference cost per output token")
  ax.set_ylabel("performance 1 / (L - E)")
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3, which="both")
  fig.tight_layout()
  return save(fig, path)
