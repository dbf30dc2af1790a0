"""L_opt per scale estimated with the law: one free level per scale, fitted jointly with the
conditional law's coefficients (l_opt="joint" in `laws.fit_runs`).

The paper takes L_opt(N, D) as the lowest loss observed at each scale, so one run's noise enters
every normalised point of that scale. Here each scale's level is a parameter: the law predicts
L = law(x, r, level_s), and levels and coefficients minimise one (weighted) sum of squares. The
fit alternates: coefficients at fixed levels (Levenberg-Marquardt), then every level at fixed
coefficients (closed form: the forms are affine in L_opt), until the levels move by less than
`rtol`. The levels and the coefficients trade against each other (a multiplicative form's overall
size, the additive form's a0), so each level is carried as the law's loss at its scale for one
reference shape, the best trained shape of all scales: the quantity the paper's minimum estimates,
with every run's noise averaged in rather than one run's. One shape for every scale keeps the
predictions the least-squares ones; each scale's own best shape would move them scale by scale
and leave a misfit that no coefficient absorbs. For the same reason a form whose shape effect
depends on N (decaying) takes that shape at one size, the table's median N, at every scale. The
alternation converges linearly, slowly where levels and coefficients are strongly coupled.

One level per scale ignores how N varies within a scale (about 5-8% over replication v2's
shapes). With `within_scale`, each run's L_opt follows its own N along the levels' log-log slope
across scales, level_s (N / N_s)^-alpha (N_s the scale's median N; alpha refitted each round, 0
with one scale): `level_column` gives that column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lawsearch.errors import UserError
from lawsearch.laws import l_opt as l_opt_lib, runs_table
from lawsearch.laws.conditional import ConditionalLaw, prepare
from lawsearch.laws.precision import float64


def level_column(table: runs_table.RunsTable, levels: pd.Series) -> np.ndarray:
  """Each row's L_opt [rows] from `joint_levels`' levels: its scale's level, times
  (N / N_s)^-alpha where the levels were fitted `within_scale` (levels.attrs["alpha"])."""
  column = levels.loc[table.scale].to_numpy()
  alpha = levels.attrs.get("alpha", 0.0)
  if alpha:
    n_scale = pd.Series(table.n).groupby(table.scale).median()
    column = column * (table.n / n_scale.loc[table.scale].to_numpy()) ** -alpha
  return column


def _log_slope(levels: pd.Series, n_scale: pd.Series) -> float:
  """-d ln(level) / d ln(N) across the scales (0 with one scale)."""
  if len(levels) < 2:
    return 0.0
  return float(-np.polyfit(np.log(n_scale.loc[levels.index]), np.log(levels.to_numpy()), 1)[0])


def joint_levels(df: pd.DataFrame | runs_table.RunsTable, form: str = "multiplicative",
                 r_range=(0.5, 5.0), max_rounds: int = 3000, rtol: float = 1e-6,
                 within_scale: bool = False) -> pd.Series:
  """L_opt of each scale of `df` (a runs table, `weight` optional) fitted jointly with the law:
  a float64 Series indexed by scale label (see the module doc), with attrs["alpha"] the slope
  each run's level follows within its scale (0 unless `within_scale`; `level_column` applies
  it). UserError when a scale has no fitted row or the alternation does not settle in
  `max_rounds`."""
  table = runs_table.RunsTable.of(df, "fitting L_opt jointly")
  labels = table.scale
  levels = pd.Series(l_opt_lib.for_table(table, "empirical"), index=labels).groupby(level=0).first()
  _, _, _, loss, weight, keep = prepare(table, "empirical", r_range, 0)
  x_all, r_all, n_all = table.x, table.r, table.n
  x, r, s, n, fitted_labels = (x_all[keep], r_all[keep], table.sparsity[keep], n_all[keep],
                               labels[keep])
  n_ref = float(np.median(n_all))  # one size for the reference shape at every scale
  n_scale = pd.Series(n_all).groupby(labels).median()
  missing = set(levels.index) - set(fitted_labels)
  if missing:
    raise UserError(f"scale(s) {sorted(missing)} have no run inside the r filter {r_range}: "
                    "their level cannot be fitted")
  levels.attrs["alpha"] = 0.0
  law = None
  for _ in range(max_rounds):
    column = level_column(table, levels)
    within = column[keep] / levels.loc[fitted_labels].to_numpy()  # run's level / its scale's
    # every round after the first starts from the last round's law: the levels moved little
    law = ConditionalLaw.fit(table.assign(l_opt=column), form, l_opt="column", r_range=r_range,
                             start=law)
    with float64():  # affine in L_opt: prediction = p0 + level * p1
      p0 = np.asarray(law.predict_xr(x, r, 0.0, s, n), dtype=np.float64)
      p1 = np.asarray(law.predict_xr(x, r, 1.0, s, n), dtype=np.float64) - p0
      # the reference shape by the dense law (a MoE form's L_opt is the dense optimum's)
      best = int(np.argmin(np.asarray(law.predict_xr(x_all, r_all, 1.0, n_params=n_all))))
    new = {}
    for scale in levels.index:
      rows = fitted_labels == scale
      w, a, b = weight[rows], p1[rows] * within[rows], loss[rows] - p0[rows]
      level = float(np.sum(w * a * b) / np.sum(w * a * a))
      with float64():
        new[scale] = float(law.predict_xr(x_all[best], r_all[best], level, n_params=n_ref))
    new = pd.Series(new, name="l_opt")
    new.attrs["alpha"] = _log_slope(new, n_scale) if within_scale else 0.0
    moved = max(float(np.max(np.abs(new / levels - 1))),
                abs(new.attrs["alpha"] - levels.attrs["alpha"]))
    levels = new
    if moved < rtol:
      return levels
  raise UserError(f"the joint L_opt fit did not settle in {max_rounds} rounds; the levels still "
                  f"moved by {moved:.2g} (relative) in the last")
