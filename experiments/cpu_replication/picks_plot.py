"""The trained picks' picture: what the law and the roofline predicted against what was measured.

    picks_plot(picks, runs, path)   left: held-out loss predicted vs measured (each seed a dot,
                                    the mean a marker, the diagonal y = x); right: roofline vs
                                    measured decode tokens/s (where measured)

`picks` is `replication.picks_table`'s frame, `runs` the runs table (its seeds).
"""

from __future__ import annotations

import numpy as np

from lawsearch.report.figure import save, subplots


def picks_plot(picks, runs, path: str) -> str:
  fig, (left, right) = subplots(1, 2, figsize=(11, 4.5), dpi=120)
  measured_any = False
  for (_, pick), marker in zip(picks.iterrows(), "sD*o^v"):
    seeds = runs[(runs["role"] == pick["pick"])]
    label = f"{pick['pick']} (d={pick['d_model']}, r={pick['r']:.2f}, GQA {pick['gqa']})"
    if len(seeds):
      left.scatter(np.full(len(seeds), pick["predicted_loss"]), seeds["loss"], s=12, alpha=0.6,
                   color="gray")
      left.errorbar([pick["predicted_loss"]], [seeds["loss"].mean()],
                    yerr=[seeds["loss_se"].mean()], marker=marker, ms=9, capsize=3, label=label)
    if pick["measured_tok_s"] is not None and np.isfinite(pick["measured_tok_s"]):
      right.scatter([pick["roofline_tok_s"]], [pick["measured_tok_s"]], marker=marker, s=90,
                    label=label)
      measured_any = True
  if measured_any:
    right.set_xscale("log")
    right.set_yscale("log")
  else:
    right.text(0.5, 0.5, "not benchmarked yet", ha="center", transform=right.transAxes)
  for ax, what in ((left, "held-out loss (nats/token)"), (right, "output tokens/s")):
    lims = np.array([*ax.get_xlim(), *ax.get_ylim()])
    lo, hi = lims.min(), lims.max()
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--", label="y = x")
    ax.set_xlabel(f"predicted {what}")
    ax.set_ylabel(f"measured {what}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  left.set_title("loss: law (L_opt = the scale's best run) vs trained seeds")
  right.set_title("decode throughput: CPU roofline vs lawsearch bench")
  fig.tight_layout()
  return save(fig, path)
