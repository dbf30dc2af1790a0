"""The fit's pictures: the measured U-curves with the fitted law through them, and predicted
against measured loss.

    u_curves(law, df, path, l_opt=...)            loss / L_opt against d/sqrt(N) and against r
    contours(law, df, path, l_opt=...)            the law's loss / L_opt over (d/sqrt(N), r)
    predicted_vs_measured(law, df, path, l_opt=...)  seed means with +- 2 SE bars where seeds exist
    save(law, df, out_dir, l_opt=...)             all three as PNGs in out_dir

Losses are divided by each run's L_opt (`lawsearch.laws.l_opt.for_table`), so the scales
share one picture; the curves are the law at the other variable's median and the median L_opt
(for the multiplicative and joint forms the normalised curve does not depend on L_opt), and a law
whose shape effect depends on N (the decaying form) at the runs' median N.
"""

from __future__ import annotations

import matplotlib.ticker
import numpy as np
import pandas as pd

from lawsearch import paths
from lawsearch.laws import l_opt as l_opt_lib, runs_table
from lawsearch.laws.noise import shape_ids
from lawsearch.laws.precision import float64
from lawsearch.laws.runs_table import RunsTable
from lawsearch.report import figure
from lawsearch.report.figure import subplots


def _plain_log_ticks(axis) -> None:
  """Ticks at 1, 2, 5 x 10^k labelled as plain numbers (0.05, 2), no minor labels."""
  axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
  axis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:g}"))
  axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _span(values: np.ndarray, n: int) -> np.ndarray:
  """n log-spaced points from a little below the runs' values to a little above."""
  return np.geomspace(values.min() * 0.8, values.max() * 1.25, n)


def _law_normalised(law, x, r, lo: np.ndarray) -> np.ndarray:
  """The law's loss / L_opt at (x, r) (broadcast), taken at the runs' median L_opt, float64."""
  lo_mid = float(np.median(lo))
  with float64():
    return np.asarray(law.predict_xr(x, r, lo_mid), dtype=np.float64) / lo_mid


def _save(fig, path: str) -> None:
  fig.tight_layout()
  figure.save(fig, path)


def _at_median_size(law, df):
  """The law at the runs' median N (itself unless its shape effect depends on N)."""
  return law.at(float(np.median(RunsTable.of(df, "plotting the fit").n)))


def _normalised(law, df, l_opt):
  """(x, r, L_opt, measured loss / L_opt, predicted loss / L_opt, scale labels, sparsity factor),
  float64 [rows]; the factor is the law's prediction over its dense part's (1 for a dense law or
  run), which the U-curves divide a mixture of experts' loss by to draw it on the dense curves."""
  table = RunsTable.of(df, "plotting the fit")
  lo = l_opt_lib.for_table(table, l_opt)
  predicted = law.predict(table, l_opt)
  with float64():
    dense = np.asarray(law.predict_xr(table.x, table.r, lo, n_params=table.n), dtype=np.float64)
  return (table.x, table.r, lo, table.column("loss", "plotting the fit") / lo, predicted / lo,
          table.scale, predicted / dense)


def u_curves(law, df, path: str, l_opt=None) -> dict[str, np.ndarray]:
  """Two panels, loss / L_opt against x = d/sqrt(N) and against r, the runs coloured by scale.

  The curves are the law at the other variable's median. Each run is drawn moved to that median
  by the law (its measured loss / L_opt times law(x, r_median) / law(x, r) in the x panel, and
  likewise in r), so a run of the r sweep does not pose as a point of the x curve: its distance
  from the curve is its residual; a mixture of experts is drawn at its loss over the law's sparsity
  factor (its dense equivalent). Returns the drawn law curves: {"x", "loss_x"} at the median r
  and {"r", "loss_r"} at the median x (loss / L_opt, float64).
  """
  law = _at_median_size(law, df)
  x, r, lo, measured, _, labels, factor = _normalised(law, df, l_opt)
  measured = measured / factor
  grid_x, grid_r = _span(x, 200), _span(r, 200)
  x_mid, r_mid = np.median(x), np.median(r)
  curve_x = _law_normalised(law, grid_x, r_mid, lo)
  curve_r = _law_normalised(law, x_mid, grid_r, lo)
  here = _law_normalised(law, x, r, lo)
  moved_x = measured * _law_normalised(law, x, r_mid, lo) / here
  moved_r = measured * _law_normalised(law, x_mid, r, lo) / here
  fig, axes = subplots(1, 2, figsize=(10, 4.2), dpi=120, sharey=True)
  for ax, values, points, grid, curve, label, fixed in (
      (axes[0], x, moved_x, grid_x, curve_x, "d / sqrt(N)", f"r = {r_mid:.3g}"),
      (axes[1], r, moved_r, grid_r, curve_r, "r (MLP-to-attention parameters)",
       f"d/sqrt(N) = {x_mid:.3g}")):
    for scale in runs_table.scale_order(df, labels):
      rows = labels == scale
      ax.scatter(values[rows], points[rows], s=14, alpha=0.75,
                 label=f"runs at {runs_table.median_size(df, rows)}")
    ax.plot(grid, curve, color="black", lw=1.3, label=f"fitted {law.form} law at {fixed}")
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel(label)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("loss / L_opt")
  axes[1].legend(fontsize=7)
  fig.suptitle(f"U-curves: {len(df)} runs, {law.form} law (each run moved by the law to the "
               "curve's value of the other variable)", fontsize=10)
  _save(fig, path)
  return {"x": grid_x, "loss_x": curve_x, "r": grid_r, "loss_r": curve_r}


def contours(law, df, path: str, l_opt=None) -> dict[str, np.ndarray]:
  """Filled contours of the law's loss / L_opt over log-spaced (x, r), the runs on top and the
  law's optimum starred. Returns the drawn grid {"x" [nx], "r" [nr], "loss" [nr, nx]}."""
  law = _at_median_size(law, df)
  x, r, lo, *_ = _normalised(law, df, l_opt)
  grid_x, grid_r = _span(x, 120), _span(r, 100)
  surface = _law_normalised(law, grid_x[None, :], grid_r[:, None], lo)
  fig, ax = subplots(figsize=(6.4, 5), dpi=120)
  levels = np.quantile(surface, np.linspace(0.0, 0.9, 12))
  filled = ax.contourf(grid_x, grid_r, surface, levels=levels, cmap="viridis_r", extend="max")
  fig.colorbar(filled, ax=ax, label="predicted loss / L_opt", format="%.3f")
  ax.scatter(x, r, s=10, c="white", edgecolor="black", linewidth=0.5, label=f"{len(df)} runs")
  try:
    x_star, r_star = law.optimum()
    ax.scatter([x_star], [r_star], marker="*", s=220, c="crimson", edgecolor="black",
               label=f"optimum: d/sqrt(N) {x_star:.3g}, r {r_star:.3g}")
  except ValueError:  # a law without an interior optimum: nothing to star
    pass
  ax.set(xscale="log", yscale="log", xlabel="d / sqrt(N)", ylabel="r (MLP-to-attention)",
         title=f"{law.form} law over the architecture plane")
  _plain_log_ticks(ax.xaxis)
  _plain_log_ticks(ax.yaxis)
  ax.legend(fontsize=7, loc="upper right")
  _save(fig, path)
  return {"x": grid_x, "r": grid_r, "loss": surface}


def seed_means(df, measured: np.ndarray, predicted: np.ndarray, labels) -> pd.DataFrame:
  """One row per shape of `df` (`laws.noise.shape_ids`; per-row arrays [rows] beside it):
  measured and predicted means over its seeds, its scale label, seeds, and se = the seed SD over
  sqrt(seeds) (NaN with one seed)."""
  points = pd.DataFrame({"shape": shape_ids(RunsTable.of(df, "plotting the fit").frame),
                         "measured": measured, "predicted": predicted, "scale": labels})
  return points.groupby("shape", sort=False).agg(
      measured=("measured", "mean"), predicted=("predicted", "mean"), scale=("scale", "first"),
      seeds=("measured", "size"), se=("measured", lambda v: v.std(ddof=1) / np.sqrt(len(v))))


def predicted_vs_measured(law, df, path: str, l_opt=None) -> float:
  """The law's loss against the measured, coloured by scale; returns the MSE of the normalised
  losses (loss / L_opt) over all rows of `df`. Where shapes have seeds, each shape is drawn once,
  at its seed mean with a bar of +- 2 standard errors of that mean (seed SD / sqrt(seeds)): how
  far from the diagonal the noise alone would put it."""
  _, _, _, measured, predicted, labels, _ = _normalised(law, df, l_opt)
  mse = float(np.mean((predicted - measured) ** 2))
  shapes = seed_means(df, measured, predicted, labels)
  seeds = len(shapes) < len(measured)
  fig, ax = subplots(figsize=(5.2, 5), dpi=120)
  for scale in runs_table.scale_order(df, labels):
    rows = labels == scale
    label = runs_table.median_size(df, rows)
    if seeds:
      part = shapes[shapes["scale"] == scale]
      ax.errorbar(part["measured"], part["predicted"], xerr=2 * part["se"].fillna(0.0), fmt="o",
                  ms=4, alpha=0.8, elinewidth=1, capsize=2, label=label)
    else:
      ax.scatter(measured[rows], predicted[rows], s=14, alpha=0.75, label=label)
  lo, hi = min(measured.min(), predicted.min()), max(measured.max(), predicted.max())
  pad = 0.05 * (hi - lo)
  ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8, label="predicted = measured")
  what = f"{len(df)} runs" + (f" ({len(shapes)} shapes: seed means +- 2 SE)" if seeds else "")
  ax.set(xlabel="measured loss / L_opt", ylabel="predicted loss / L_opt",
         title=f"{law.form} law: MSE of loss / L_opt {mse:.2g}\n{what}")
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  _save(fig, path)
  return mse


def save(law, df, out_dir: str, l_opt=None) -> list[str]:
  """u_curves.png, contours.png and predicted_vs_measured.png in `out_dir` (created); the paths."""
  written = [str(paths.path(out_dir) / f"{name}.png")
             for name in ("u_curves", "contours", "predicted_vs_measured")]
  table = RunsTable.of(df, "plotting the fit")
  for draw, path in zip((u_curves, contours, predicted_vs_measured), written):
    draw(law, table, path, l_opt=l_opt)
  return written


def save_fit(fitted, df, out_dir: str, l_opt=None) -> list[str]:
  """`save` for a `laws.FitSummary` fitted on `df` with `l_opt`; a "joint" L_opt is drawn at the
  levels fitted per scale."""
  df = RunsTable.of(df, "plotting the fit")
  if isinstance(l_opt, str) and l_opt == "joint":
    labels = pd.Series(df.scale)
    df, l_opt = df.assign(l_opt=labels.map(fitted.l_opt_by_scale).to_numpy()), "column"
  return save(fitted.law, df, out_dir, l_opt=l_opt)
