"""lawsearch.report.fit_plots: the U-curves and predicted-vs-measured pictures of a fitted law."""

import os

import numpy as np
import pandas as pd
import pytest

from lawsearch.laws import ConditionalLaw, synthetic_sweep
from lawsearch.laws.l_opt import for_table as resolve_l_opt
from lawsearch.report import fit_plots


@pytest.fixture(scope="module")
def fitted():
  df = synthetic_sweep(scales=("80M", "145M"), seed=1)
  return ConditionalLaw.fit(df, "multiplicative"), df


def test_u_curves_bottom_out_at_the_laws_optimum(fitted, tmp_path):
  law, df = fitted
  curves = fit_plots.u_curves(law, df, str(tmp_path / "u.png"))
  assert (tmp_path / "u.png").stat().st_size > 20_000
  # The multiplicative law separates in x and r: each curve's minimum is the law's optimum.
  x_star, r_star = law.optimum()
  assert curves["x"][np.argmin(curves["loss_x"])] == pytest.approx(x_star, rel=0.02)
  assert curves["r"][np.argmin(curves["loss_r"])] == pytest.approx(r_star, rel=0.02)


def test_predicted_vs_measured_reports_the_normalised_mse(fitted, tmp_path):
  law, df = fitted
  mse = fit_plots.predicted_vs_measured(law, df, str(tmp_path / "p.png"))
  lo = resolve_l_opt(df, None)
  expected = np.mean((law.predict(df) / lo - df["loss"].to_numpy() / lo) ** 2)
  assert mse == pytest.approx(expected, rel=1e-9) and (tmp_path / "p.png").stat().st_size > 20_000


def test_seeds_are_drawn_as_shape_means_with_their_standard_errors(fitted, tmp_path):
  law, df = fitted
  seeded = pd.concat([df.assign(seed=k, loss=df["loss"] * (1 + 0.01 * k)) for k in range(3)],
                     ignore_index=True)
  measured = seeded["loss"].to_numpy()
  shapes = fit_plots.seed_means(seeded, measured, measured, seeded["scale"].to_numpy())
  assert len(shapes) == len(df) and (shapes["seeds"] == 3).all()
  first = measured[[0, len(df), 2 * len(df)]]  # the first shape's three seeds
  assert shapes["measured"].iloc[0] == pytest.approx(first.mean(), rel=1e-12)
  assert shapes["se"].iloc[0] == pytest.approx(first.std(ddof=1) / np.sqrt(3), rel=1e-9)
  fit_plots.predicted_vs_measured(law, seeded, str(tmp_path / "p.png"))
  assert (tmp_path / "p.png").stat().st_size > 20_000


def test_contours_are_lowest_at_the_optimum_and_save_writes_all_three(fitted, tmp_path):
  law, df = fitted
  grid = fit_plots.contours(law, df, str(tmp_path / "c.png"))
  row, col = np.unravel_index(np.argmin(grid["loss"]), grid["loss"].shape)
  x_star, r_star = law.optimum()
  assert grid["x"][col] == pytest.approx(x_star, rel=0.03)
  assert grid["r"][row] == pytest.approx(r_star, rel=0.03)
  paths = fit_plots.save(law, df, str(tmp_path / "plots"))
  assert [os.path.basename(p) for p in paths] == ["u_curves.png", "contours.png",
                                                   "predicted_vs_measured.png"]
  assert all(os.path.getsize(p) > 20_000 for p in paths)


def test_plotting_leaves_matplotlibs_global_backend_alone():
  # A notebook's inline backend must survive importing and using lawsearch's plots.
  import subprocess
  import sys

  program = ("import matplotlib; matplotlib.use('svg'); "
             "from lawsearch.report import fit_plots, pareto, regimes, figure; "
             "fig, ax = figure.subplots(figsize=(2, 2)); ax.plot([1, 2]); "
             "import io; fig.savefig(io.BytesIO(), format='png'); "
             "import sys; print(matplotlib.get_backend()); "
             "print('matplotlib.pyplot' in sys.modules)")
  done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                        timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.split() == ["svg", "False"]
