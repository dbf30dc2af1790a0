"""The fit's pictures: the measured U-curves with the fitted law through them, and predicted
against measured loss.

    u_curves(law, df, path, l_opt=...)            loss / L_opt against d/sqrt(N) and against r
    predicted_vs_measured(law, df, path, l_opt=...)

Losses are divided by each run's L_opt (`lawsearch.laws._data.resolve_l_opt`), so the scales
share one picture; the curves are the law at the other variable's median and the median L_opt
(for the multiplicative and joint forms the normalised curve does not depend on L_opt).
"""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from lawsearch.laws import _data  # pylint: disable=g-import-not-at-top,wrong-import-position
from lawsearch.laws.conditional import _xr  # pylint: disable=g-import-not-at-top
from lawsearch.laws.precision import float64  # pylint: disable=g-import-not-at-top


def _normalised(law, df, l_opt):
  """(x, r, L_opt, measured loss / L_opt, predicted loss / L_opt, scale labels), float64 [rows]."""
  x, r = _xr(df, "plotting the fit")
  lo = _data.resolve_l_opt(df, l_opt)
  return (x, r, lo, df["loss"].to_numpy(float) / lo, law.predict(df, l_opt) / lo,
          _data.scale_labels(df))


def u_curves(law, df, path: str, l_opt=None) -> dict[str, np.ndarray]:
  """Two panels, loss / L_opt against x = d/sqrt(N) and against r, the runs coloured by scale.

  Returns the drawn law curves: {"x", "loss_x"} at the median r and {"r", "loss_r"} at the
  median x (loss / L_opt, float64), so callers and tests can read what the picture shows.
  """
  x, r, lo, measured, _, labels = _normalised(law, df, l_opt)
  grid_x = np.geomspace(x.min() * 0.8, x.max() * 1.25, 200)
  grid_r = np.geomspace(r.min() * 0.8, r.max() * 1.25, 200)
  lo_mid = float(np.median(lo))
  with float64():
    curve_x = np.asarray(law.predict_xr(grid_x, np.median(r), lo_mid), dtype=np.float64) / lo_mid
    curve_r = np.asarray(law.predict_xr(np.median(x), grid_r, lo_mid), dtype=np.float64) / lo_mid
  fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120, sharey=True)
  for ax, values, grid, curve, label, fixed in (
      (axes[0], x, grid_x, curve_x, "d / sqrt(N)", f"r = {np.median(r):.3g}"),
      (axes[1], r, grid_r, curve_r, "r (MLP-to-attention parameters)",
       f"d/sqrt(N) = {np.median(x):.3g}")):
    for scale in _data.scale_order(df, labels):
      rows = labels == scale
      ax.scatter(values[rows], measured[rows], s=14, alpha=0.75,
                 label=f"runs at N ~ {np.median(df['n_params'][rows]) / 1e6:.3g}M")
    ax.plot(grid, curve, color="black", lw=1.3, label=f"fitted {law.form} law at {fixed}")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(label)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("loss / L_opt")
  axes[1].legend(fontsize=7)
  fig.suptitle(f"U-curves: {len(df)} runs, {law.form} law")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return {"x": grid_x, "loss_x": curve_x, "r": grid_r, "loss_r": curve_r}


def predicted_vs_measured(law, df, path: str, l_opt=None) -> float:
  """Scatter of the law's loss against the measured, coloured by scale; returns the MSE of the
  normalised losses (loss / L_opt) over all rows of `df`."""
  _, _, _, measured, predicted, labels = _normalised(law, df, l_opt)
  mse = float(np.mean((predicted - measured) ** 2))
  fig, ax = plt.subplots(figsize=(5.2, 5), dpi=120)
  for scale in _data.scale_order(df, labels):
    rows = labels == scale
    ax.scatter(measured[rows], predicted[rows], s=14, alpha=0.75,
               label=f"N ~ {np.median(df['n_params'][rows]) / 1e6:.3g}M")
  lo, hi = min(measured.min(), predicted.min()), max(measured.max(), predicted.max())
  pad = 0.05 * (hi - lo)
  ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8, label="predicted = measured")
  ax.set(xlabel="measured loss / L_opt", ylabel="predicted loss / L_opt",
         title=f"{law.form} law: MSE of loss / L_opt {mse:.2g}, {len(df)} runs")
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return mse
