"""The decaying form: a shape effect that shrinks with N, fitted, validated and searched with."""

import numpy as np
import pytest

from lawsearch import laws, search
from lawsearch.errors import UserError
from lawsearch.laws import ConditionalLaw, float64

# The effect at N_REF = 1M; at 80M-1B it is 1/9-1/32 of that (gamma 0.5), as on lawsearch's
# CPU replication, where the shape's effect shrinks about as N^-0.5.
TRUTH = ConditionalLaw("decaying", (0.0, 0.3, 0.025, 0.05, 0.06, 0.5))
SCALES = ("80M", "145M", "297M", "1B")


@pytest.fixture(scope="module")
def runs():
  """Three seeds a shape, relative noise 0.001, at the paper's fitting scales and 1B, with one
  L_opt per scale (column l_opt)."""
  runs_ = laws.synthetic_sweep(TRUTH, scales=SCALES, noise=0.0, seeds=3, seed=5)
  level = runs_.groupby("scale")["l_opt_true"].transform("median").to_numpy()
  noise = 1 + 0.001 * np.random.default_rng(6).standard_normal(len(runs_))
  return runs_.assign(l_opt=level, loss=runs_["loss"] / runs_["l_opt_true"] * level * noise)


def test_at_one_size_is_an_n_free_law_with_the_same_optimum():
  x, r = np.geomspace(0.03, 0.3, 7), np.geomspace(0.5, 8, 7)
  for n in (8e7, 1e9):
    fixed = TRUTH.at(n)
    assert fixed.coefficients["gamma"] == 0 and fixed.form == "decaying"
    with float64():
      np.testing.assert_allclose(fixed.predict_xr(x, r, 2.5),
                                 TRUTH.predict_xr(x, r, 2.5, n_params=n), rtol=1e-12)
    np.testing.assert_allclose(fixed.optimum(), (0.025 / 0.3, 0.06 / 0.05), rtol=1e-12)
  assert ConditionalLaw.paper("80m-297m").at(1e9) == ConditionalLaw.paper("80m-297m")
  with pytest.raises(UserError, match="depends on N: give n_params"):
    TRUTH.predict_xr(0.1, 1.0, 2.5)


def test_the_decaying_fit_passes_the_noise_test_where_the_scale_free_law_fails(runs):
  fitting = runs[runs["scale"] != "1B"]
  fitting = fitting.drop(columns="l_opt")
  decaying = laws.fit_runs(fitting, "decaying", l_opt="joint", n_boot=50, validate=False)
  fixed = laws.fit_runs(fitting, "multiplicative", l_opt="joint", validate=False)
  assert decaying.law.coefficients["gamma"] == pytest.approx(0.5, abs=0.1)
  assert decaying.lack_of_fit.p > 1e-3 > 1e-6 > fixed.lack_of_fit.p
  x_star, r_star = decaying.law.optimum()
  assert x_star == pytest.approx(0.025 / 0.3, rel=0.1) and r_star == pytest.approx(1.2, rel=0.1)
  interval = decaying.optimum_interval  # bootstrap refits over seeds
  assert interval.loc["x_star", "low"] < 0.025 / 0.3 < interval.loc["x_star", "high"]
  assert interval.loc["r_star", "low"] < 1.2 < interval.loc["r_star", "high"]


def test_cross_scale_validation_predicts_the_larger_scale_better_than_the_scale_free_law(runs):
  val = {form: laws.cross_scale_validation(runs, form=form, l_opt="column").iloc[-1]
         for form in ("decaying", "multiplicative")}
  assert val["decaying"]["task"] == "80M+145M+297M -> 1B"
  noise_var = (0.001 * runs["loss"].mean()) ** 2
  assert val["decaying"]["mse"] < 2 * noise_var < val["multiplicative"]["mse"]


def test_the_search_takes_the_law_at_its_budget():
  result = search.search(TRUTH, 1e9, 1e11, 16, 64, baseline="llama3.2-1b",
                         d_models=range(1536, 3073, 256), gqas=(4,), gqa_starts=1)
  scored = result.candidates
  with float64():
    expected = np.asarray(TRUTH.predict_xr(scored["d_over_sqrt_n"], scored["mlp_attn_ratio"],
                                           1.0, n_params=1e9))
  np.testing.assert_allclose(scored["loss"], expected, rtol=1e-9)
  np.testing.assert_allclose(result.optimum, (0.025 / 0.3, 0.06 / 0.05), rtol=1e-9)


def test_the_cli_offers_every_form():
  from lawsearch import cli  # pylint: disable=import-outside-toplevel
  fit = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices["fit"]._actions
             if a.dest == "form")
  assert set(fit.choices) == set(laws.FORMS)


def test_one_scale_cannot_tell_gamma(runs):
  one = runs[runs["scale"] == "80M"]
  with pytest.raises(UserError, match="needs runs at two or more scales"):
    ConditionalLaw.fit(one, "decaying", l_opt="column")
  tasks = laws.cross_scale_validation(runs, form="decaying", l_opt="column")["task"]
  assert list(tasks) == ["80M+145M -> 297M", "80M+145M+297M -> 1B"]
