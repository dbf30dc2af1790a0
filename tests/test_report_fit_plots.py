"""lawsearch.report.fit_plots: the U-curves and predicted-vs-measured pictures of a fitted law."""

import numpy as np
import pytest

from lawsearch.laws import ConditionalLaw, synthetic_sweep
from lawsearch.laws._data import resolve_l_opt
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
