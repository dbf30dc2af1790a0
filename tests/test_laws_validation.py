"""Cross-scale validation, Spearman, residual diagnostics and the bootstrap."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lawsearch.laws import runs_table, validation
from lawsearch.laws import (ChinchillaLaw, ConditionalLaw, bootstrap, cross_scale_validation,
                            residual_diagnostics, spearman, synthetic_sweep)


@pytest.fixture(scope="module")
def sweep():
  return synthetic_sweep(scales=("80M", "145M", "297M", "1B"), seed=2)


def test_spearman_matches_scipy_with_ties():
  rng = np.random.default_rng(0)
  a, b = rng.integers(0, 5, 30), rng.standard_normal(30)
  assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, rel=1e-12)
  assert np.isnan(spearman([1.0], [2.0]))


def test_progressive_tasks_over_the_scales_present(sweep):
  table = cross_scale_validation(sweep)
  assert list(table["task"]) == ["80M -> 145M", "80M+145M -> 297M", "80M+145M+297M -> 1B"]
  # The data follow the law up to 0.3% noise: extrapolating from one scale costs a few times the
  # noise variance, from three scales the error is at the noise floor; ranks are preserved.
  noise_var = (0.003 * sweep["loss"].mean()) ** 2
  assert (table["mse"] < 10 * noise_var).all() and table["mse"].iloc[-1] < 2 * noise_var
  assert (table["spearman"] > 0.6).all()
  held = sweep[(sweep.scale == "1B") & sweep.mlp_attn_ratio.between(0.5, 5.0)]
  assert table["n_test"].iloc[-1] == len(held)


def test_spearman_at_noise_against_scipy_and_the_two_point_closed_form():
  truth = np.array([3.0, 3.01, 3.05, 2.98, 3.2])
  draws = validation.spearman_at_noise(truth, 0.02, draws=300, seed=1)
  noisy = truth + np.random.default_rng(1).normal(size=(300, 5)) * 0.02
  np.testing.assert_allclose(draws, [stats.spearmanr(truth, row).statistic for row in noisy],
                             atol=1e-12)
  # Two points Delta apart: +1 when the noise keeps their order, P = Phi(Delta / (sd sqrt 2)).
  delta, sd = 0.02, 0.015
  expected = 2 * stats.norm.cdf(delta / (sd * np.sqrt(2))) - 1
  assert validation.spearman_at_noise([0.0, delta], sd, draws=100_000).mean() == pytest.approx(
      expected, abs=0.01)


def test_the_spearman_is_set_against_what_a_right_law_would_score_at_the_seed_noise():
  seeded = synthetic_sweep(scales=("80M", "145M", "297M", "1B"), noise=0.01, seeds=3, seed=4)
  last = cross_scale_validation(seeded).iloc[-1]
  assert 0 < last["spearman_ceiling"] < 1 and last["spearman_p"] > 0.01  # the true law
  # The 1B losses dealt out to the wrong shapes: the ranking falls below what noise explains.
  held = (seeded["scale"] == "1B").to_numpy()
  dealt = seeded["loss"].to_numpy().copy()
  dealt[held] = np.random.default_rng(0).permutation(dealt[held])
  wrong = cross_scale_validation(seeded.assign(loss=dealt)).iloc[-1]
  assert wrong["spearman"] < wrong["spearman_ceiling"] and wrong["spearman_p"] < 0.01
  # One seed per shape: the noise, and so the ceiling, is unknown.
  assert np.isnan(cross_scale_validation(synthetic_sweep(
      scales=("80M", "145M", "297M", "1B"), seed=2))[["spearman_ceiling", "spearman_p"]]).all(
          axis=None)


def test_explicit_task_and_grouping_without_a_scale_column(sweep):
  table = cross_scale_validation(sweep, tasks=[(["1B"], "297M")])
  assert list(table["task"]) == ["1B -> 297M"]
  # Without `scale`, rows group by N and tokens: the same three default tasks, each scale named
  # by its median N.
  median = sweep.groupby("scale")["n_params"].median()
  name = {s: f"{median[s] / 1e6:.3g}M" if median[s] < 1e9 else f"{median[s] / 1e9:.3g}B"
          for s in median.index}
  tasks = cross_scale_validation(sweep.drop(columns="scale"))["task"]
  assert list(tasks) == [f"{name['80M']} -> {name['145M']}",
                         f"{name['80M']}+{name['145M']} -> {name['297M']}",
                         f"{name['80M']}+{name['145M']}+{name['297M']} -> {name['1B']}"]


def test_scales_of_one_size_and_several_token_budgets_are_named_by_both():
  df = pd.DataFrame({"n_params": [80e6, 81e6, 80e6, 81e6, 300e6],
                     "tokens": [8e9, 8e9, 16e9, 16e9, 30e9]})
  assert list(runs_table.scale_labels(df)) == ["80.5M@8B tokens", "80.5M@8B tokens",
                                          "80.5M@16B tokens", "80.5M@16B tokens", "300M"]
  # The plots' and report's label of a group: billions in B, not thousands of M.
  assert runs_table.median_size(df, np.arange(5) < 4) == "N ~ 80.5M"
  assert runs_table.median_size(df.assign(n_params=1.236e9), np.ones(5, bool)) == "N ~ 1.24B"


def test_validation_needs_two_scales(sweep):
  with pytest.raises(ValueError, match="at least two scales"):
    cross_scale_validation(sweep[sweep.scale == "80M"])
  with pytest.raises(ValueError, match="unknown scale"):
    cross_scale_validation(sweep, tasks=[(["80M"], "3B")])


def test_residual_diagnostics_flag_an_interaction_but_not_a_true_law():
  kw = dict(scales=("80M", "145M", "297M"), seed=3)
  clean = synthetic_sweep(**kw)
  l_opt = clean["l_opt_true"].to_numpy()
  law = ConditionalLaw.fit(clean, l_opt=l_opt)
  assert not residual_diagnostics(law, clean, l_opt=l_opt)["flagged"].any()
  joint = ConditionalLaw("joint", (2.697, 0.0974, 0.0078, 0.387, 0.0063, 0.0065, 0.01))
  bent = synthetic_sweep(joint, **kw)
  diag = residual_diagnostics(ConditionalLaw.fit(bent, l_opt=l_opt), bent, l_opt=l_opt)
  assert diag.set_index("variable").loc["ln_x*ln_r", "flagged"]


def test_bootstrap_intervals_cover_the_truth(sweep):
  data = sweep[sweep.scale != "1B"]
  l_opt = ChinchillaLaw.epoch()
  boot = bootstrap(data, l_opt=l_opt, n_boot=200, seed=0)
  assert boot.n_failed == 0 and boot.samples.shape == (200, 6)
  opt = boot.optimum()
  x0, r0 = ConditionalLaw.paper("80m-297m").optimum()
  assert opt.loc["x_star", "low"] < x0 < opt.loc["x_star", "high"]
  assert opt.loc["r_star", "low"] < r0 < opt.loc["r_star", "high"]
  coef = boot.coefficients()
  assert (coef["low"] <= coef["estimate"]).all() and (coef["estimate"] <= coef["high"]).all()
  pred = boot.predictions(data.iloc[:3], l_opt)
  assert ((pred["low"] < pred["estimate"]) & (pred["estimate"] < pred["high"])).all()
  # Replicates are real refits: each one's gradient on its own resample vanishes, so they differ.
  assert boot.samples[:, 1].std() > 0


def test_the_papers_figures_stand_beside_the_task_with_as_many_training_scales():
  from lawsearch.laws.validation import PAPER_VALIDATION, beside_paper  # pylint: disable=import-outside-toplevel
  val = pd.DataFrame({"task": ["80k+145k -> 297k", "80k -> 145k", "a+b+c+d -> e"]})
  out = beside_paper(val)
  assert list(zip(out["paper_mse"][:2], out["paper_spearman"][:2])) == [PAPER_VALIDATION[1],
                                                                        PAPER_VALIDATION[0]]
  assert pd.isna(out["paper_mse"].iloc[2])
