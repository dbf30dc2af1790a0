"""Seed noise as data (lawsearch.laws.noise): seed aggregation, pooled SD and noise ceiling on
synthetic sweeps of known noise, the weights, the lack-of-fit test (accepting the right form,
rejecting a wrong one), the F tail against scipy, seed-resampling bootstrap weights, and what
fit_runs says with one seed per shape."""

import numpy as np
import pandas as pd
import pytest

from lawsearch import laws
from lawsearch.laws import noise as noise_lib
from lawsearch.laws.conditional import ConditionalLaw

SIGMA = 0.01  # relative seed noise of the synthetic sweeps (about 0.03 nats at loss 3)


@pytest.fixture(scope="module")
def seeded():
  return laws.synthetic_sweep(noise=SIGMA, seeds=4, seed=1)


def test_seeds_are_grouped_per_shape_with_their_spread(seeded):
  noise = noise_lib.seed_noise(seeded)
  assert len(noise.means) * 4 == len(seeded) and (noise.means["n_seeds"] == 4).all()
  shape = noise.runs["shape"].to_numpy()
  for s in (0, 7, len(noise.means) - 1):
    losses = seeded["loss"].to_numpy()[shape == s]
    row = noise.means.set_index("shape").loc[s]
    assert row["loss"] == pytest.approx(losses.mean()) and row["seed_sd"] == pytest.approx(
        losses.std(ddof=1))
  assert noise.known and list(noise.by_scale.index) == ["80M", "145M", "297M"]
  # Pooled over ~30 shapes x 3 df per scale, the SD is the true one (relative SIGMA x loss) to
  # within its sampling error (about 8% at 90 df).
  for scale, row in noise.by_scale.iterrows():
    true = SIGMA * np.sqrt(np.mean(seeded.loc[seeded["scale"] == scale, "loss"] ** 2))
    assert row["pooled_sd"] == pytest.approx(true, rel=0.25) and row["df"] >= 60
  var = noise.means["var_mean"].to_numpy()
  sd = noise.by_scale["pooled_sd"].loc[noise.means["scale"]].to_numpy()
  np.testing.assert_allclose(var, sd ** 2 / 4)
  np.testing.assert_allclose(noise.mean_weights(), 1 / var)
  np.testing.assert_allclose(noise.weights(), 1 / sd[shape] ** 2)


def test_one_seed_means_unknown_noise_and_says_how_to_measure():
  table = laws.synthetic_sweep(noise=SIGMA)
  noise = noise_lib.seed_noise(table)
  assert not noise.known and noise.unknown_scales == ["80M", "145M", "297M"]
  np.testing.assert_allclose(noise.weights(), 1.0)
  summary = laws.fit_runs(table, validate=False)
  assert summary.lack_of_fit is None and "seeds=2" in summary.noise_note
  assert any("unknown" in line for line in summary.noise_lines())


def test_a_record_without_a_later_spec_field_is_the_same_shape_as_one_at_its_default():
  runs = pd.DataFrame({"d_model": [40, 40.0, 40, 40], "n_experts": [np.nan, 0.0, 8, 8],
                       "norm_topk_prob": [np.nan, True, False, np.nan],
                       "router": [np.nan, "softmax", "softmax", None]})
  np.testing.assert_array_equal(noise_lib.shape_ids(runs), [0, 0, 1, 2])


def test_duplicated_rows_are_refused_by_name():
  table = laws.synthetic_sweep(noise=SIGMA)
  with pytest.raises(ValueError, match="same run more than once"):
    laws.fit_runs(pd.concat([table, table]), validate=False)


def test_the_weighted_fit_on_runs_equals_the_fit_on_means(seeded):
  noise = noise_lib.seed_noise(seeded)
  means = noise.means.assign(weight=noise.mean_weights())
  lo = pd.Series(laws.l_opt.for_table(means, "empirical"), index=means["shape"])
  runs = noise.runs.assign(weight=noise.weights(), l_opt=lo.loc[noise.runs["shape"]].to_numpy())
  on_means = ConditionalLaw.fit(means, l_opt="empirical")
  on_runs = ConditionalLaw.fit(runs, l_opt="column")
  np.testing.assert_allclose(on_runs.optimum(), on_means.optimum(), rtol=1e-4)


def test_lack_of_fit_accepts_the_true_form_and_rejects_a_wrong_one(seeded):
  right = laws.fit_runs(seeded, validate=False)
  lof = right.lack_of_fit
  assert lof.p > 0.01 and "within the seed noise" in lof.verdict
  # The ceiling is the variance of a 4-seed mean over the fitted shapes (r in [0.5, 5]); the right
  # law's MSE sits near it.
  fitted = right.noise.means[right.noise.means["mlp_attn_ratio"].between(0.5, 5)]
  assert lof.ceiling == pytest.approx(np.mean(fitted["var_mean"])) and lof.n_shapes == len(fitted)
  assert 0.5 < lof.mse / lof.ceiling < 2.0
  assert lof.df_pe == int(right.noise.by_scale["df"].sum())
  # Data with a term the form lacks: an x-r interaction (up to about 0.1 nats, a few seed SDs).
  wrong = seeded.copy()
  x, r = wrong["d_over_sqrt_n"], wrong["mlp_attn_ratio"]
  wrong["loss"] += 0.1 * np.log(x / 0.08) * np.log(r)
  bad = laws.fit_runs(wrong, validate=False).lack_of_fit
  assert bad.p < 1e-6 and bad.mse > 2 * bad.ceiling and "exceeds the seed noise" in bad.verdict


def test_f_tail_matches_scipy():
  stats = pytest.importorskip("scipy.stats")
  for f, d1, d2 in [(0.3, 5, 40), (1.0, 80, 270), (2.5, 12, 9), (7.0, 3, 100)]:
    assert noise_lib.f_sf(f, d1, d2) == pytest.approx(stats.f.sf(f, d1, d2), rel=1e-8)
  assert noise_lib.f_sf(0.0, 3, 4) == 1.0


def test_equal_seed_variance_test_matches_scipys_and_flags_a_noisier_shape(seeded):
  stats = pytest.importorskip("scipy.stats")
  rng = np.random.default_rng(3)
  sizes = (3, 3, 4, 2, 5)
  loss = pd.Series(np.concatenate([rng.normal(3.0, 0.02, n) for n in sizes]))
  shape = pd.Series(np.repeat(np.arange(len(sizes)), sizes))
  want = stats.levene(*[loss[shape == s] for s in range(len(sizes))], center="median").pvalue
  assert noise_lib.equal_variance_p(loss, shape) == pytest.approx(want, rel=1e-6)
  # The synthetic sweep's seeds share one relative SD: no shape stands out at any scale...
  noise = noise_lib.seed_noise(seeded)
  assert (noise.by_scale["equal_sd_p"] > 0.01).all()
  assert "equal across shapes: p = " in noise.describe()
  # ...until a fifth of the shapes get four times the noise.
  shape_id = noise.runs["shape"].to_numpy()
  loud = np.isin(shape_id, np.unique(shape_id)[::5])
  louder = seeded.assign(loss=noise.runs["loss"] + 3 * (noise.runs["loss"] - noise.runs.groupby(
      "shape")["loss"].transform("mean")) * loud)
  assert (noise_lib.seed_noise(louder).by_scale["equal_sd_p"] < 0.01).all()
  # Undefined with one shape of seeds, or two seeds each (their deviations are equal).
  assert np.isnan(noise_lib.equal_variance_p(loss[shape == 0], shape[shape == 0]))
  two = pd.Series(np.repeat(np.arange(4), 2))
  assert np.isnan(noise_lib.equal_variance_p(pd.Series(rng.normal(size=8)), two))


def test_seed_resampling_draws_shapes_then_their_seeds(seeded):
  noise = noise_lib.seed_noise(seeded)
  w = noise_lib.seed_resampling_weights(noise, n_boot=50, seed=3)
  counts = w / noise.weights()
  assert counts.shape == (50, len(seeded)) and np.allclose(counts, np.round(counts))
  shape = noise.runs["shape"].to_numpy()
  per_shape = np.stack([np.bincount(shape, weights=c) for c in counts])
  # Each replicate draws as many shapes as there are (each drawn shape brings 4 seed draws).
  np.testing.assert_allclose(per_shape.sum(axis=1), 4 * len(noise.means))
  assert np.allclose(per_shape % 4, 0)
  # Within a drawn shape the seeds themselves are resampled: some replicate weighs seeds unevenly.
  uneven = [(c[shape == s].max() != c[shape == s].min()) for c in counts for s in range(5)
            if c[shape == s].sum()]
  assert any(uneven)


def test_fit_runs_bootstraps_seeds_and_reports_the_noise(seeded):
  summary = laws.fit_runs(seeded, n_boot=40, validate=False)
  low, high = summary.optimum_interval.loc["x_star", ["low", "high"]]
  assert low <= summary.optimum[0] <= high and summary.n_failed < 10
  record = summary.to_dict()["noise"]
  assert record["shapes"] * 4 == record["runs"] and "lack_of_fit" in record
  assert any("noise ceiling" in line for line in summary.noise_lines())
