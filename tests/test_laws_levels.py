"""L_opt per scale fitted jointly with the law (lawsearch.laws.levels): known levels recovered from
a synthetic sweep, and fit_runs(l_opt="joint") reporting them."""

import numpy as np
import pytest

from lawsearch import laws
from lawsearch.laws.levels import joint_levels
from lawsearch.laws.precision import float64

LEVELS = {"80M": 3.31, "145M": 3.12, "297M": 2.95}  # the true level of each scale


@pytest.fixture(scope="module")
def table():
  """A sweep whose loss is the paper's law at one known level per scale, with 0.1% noise."""
  law = laws.ConditionalLaw.paper("80m-297m")
  df = laws.synthetic_sweep(noise=0.0)
  level = df["scale"].map(LEVELS).to_numpy()
  with float64():
    clean = np.asarray(law.predict_xr(df["d_over_sqrt_n"].to_numpy(), df["mlp_attn_ratio"]
                                      .to_numpy(), level))
  df["loss"] = clean * (1 + 0.001 * np.random.default_rng(0).standard_normal(len(df)))
  df["clean"] = clean
  return df


def test_joint_levels_recover_the_true_levels(table):
  levels = joint_levels(table)
  fitted = table[table["mlp_attn_ratio"].between(0.5, 5)]
  # Reported normalised: the law's loss for the best trained shape of the scale.
  truth = fitted.groupby("scale")["clean"].min()
  for scale in LEVELS:
    assert levels[scale] == pytest.approx(truth[scale], rel=1e-3)
  # The empirical minimum carries the best run's noise; the joint level averages it out.
  empirical = fitted.groupby("scale")["loss"].min()
  assert (abs(levels - truth) <= abs(empirical - truth) + 1e-4).all()


def test_fit_runs_reports_the_joint_levels(table):
  summary = laws.fit_runs(table, l_opt="joint", validate=False)
  assert summary.l_opt == "joint" and set(summary.l_opt_by_scale) == set(LEVELS)
  assert summary.to_dict()["l_opt"]["by_scale"]["145M"] == pytest.approx(
      joint_levels(table)["145M"], rel=1e-9)
  np.testing.assert_allclose(summary.optimum, laws.ConditionalLaw.paper("80m-297m").optimum(),
                             rtol=0.05)


def test_committed_v1_comparison_refits():
  """experiments/results/noise/l_opt_v1.json (experiments/noise/l_opt_v1.py) against a refit of
  the joint levels on the committed v1 runs: same levels, and the joint law's MSE below the
  empirical minimum's."""
  import json  # pylint: disable=import-outside-toplevel
  from pathlib import Path  # pylint: disable=import-outside-toplevel

  import pandas as pd  # pylint: disable=import-outside-toplevel

  root = Path(__file__).resolve().parents[1] / "experiments/results"
  committed = json.loads((root / "noise/l_opt_v1.json").read_text())["sources"]
  table = pd.read_csv(root / "cpu_replication/runs.csv")
  fitting = laws.noise.seed_noise(table[table["scale"].isin(["80k", "145k", "297k"])]).means
  levels = joint_levels(fitting.assign(weight=1.0))
  for scale, level in committed["joint"]["l_opt_by_scale"].items():
    assert levels[scale] == pytest.approx(level, rel=1e-6)
  assert committed["joint"]["mse"] < 0.6 * committed["empirical"]["mse"]


def test_an_unsettled_alternation_says_how_far_the_levels_still_moved(table):
  from lawsearch.errors import UserError  # pylint: disable=import-outside-toplevel

  with pytest.raises(UserError, match=r"did not settle in 1 rounds; the levels still moved by "
                                      r"(0\.0*[1-9]|[1-9])[0-9.e-]* \(relative\)"):
    joint_levels(table, max_rounds=1, rtol=1e-15)


def _decaying_runs_with_their_own_l_opt():
  """Runs of a decaying law (gamma 0.5, 3 seeds, 0.2% noise) whose L_opt is the Chinchilla loss at
  each run's own N and D = 100 N (the CPU recipes train each run on tokens in proportion to its
  N): within a scale the level moves with N."""
  from lawsearch.laws.chinchilla import ChinchillaLaw  # pylint: disable=import-outside-toplevel
  from lawsearch.laws.runs_table import RunsTable  # pylint: disable=import-outside-toplevel

  truth = laws.ConditionalLaw("decaying", (0.0, 0.06, 0.01, 0.01, 0.02, 0.5))
  df = laws.synthetic_sweep(noise=0.0, seeds=3, seed=2)
  n = df["n_params"].to_numpy(float)
  l_opt = ChinchillaLaw.epoch().predict(n, 100 * n)
  with float64():
    clean = np.asarray(truth.predict_xr(df["d_over_sqrt_n"].to_numpy(), df["mlp_attn_ratio"]
                                        .to_numpy(), l_opt, n_params=n))
  df["loss"] = clean * (1 + 0.002 * np.random.default_rng(4).standard_normal(len(df)))
  noise = laws.noise.seed_noise(RunsTable.of(df))
  return RunsTable(noise.means.assign(weight=noise.mean_weights()))


def test_levels_within_a_scale_remove_the_bias_one_level_puts_in_gamma():
  from lawsearch.laws import levels as levels_lib  # pylint: disable=import-outside-toplevel

  means = _decaying_runs_with_their_own_l_opt()
  gamma = {}
  for within, rtol in ((False, 1e-4), (True, 1e-5)):  # loose enough for gamma to 0.1: fast
    found = joint_levels(means, "decaying", within_scale=within, rtol=rtol)
    law = laws.ConditionalLaw.fit(means.assign(l_opt=levels_lib.level_column(means, found)),
                                  "decaying", l_opt="column")
    gamma[within] = law.coefficients["gamma"]
    assert (found.attrs["alpha"] > 0) == within
  assert gamma[False] > 1.0  # one level per scale: the N trend within a scale lands in gamma
  assert gamma[True] == pytest.approx(0.5, abs=0.1)


def test_committed_within_scale_comparison_refits():
  """experiments/results/noise/l_opt_within_scale.json against the decaying form refitted with
  levels within each scale on the committed v2 runs."""
  import json  # pylint: disable=import-outside-toplevel
  from pathlib import Path  # pylint: disable=import-outside-toplevel

  import pandas as pd  # pylint: disable=import-outside-toplevel
  from lawsearch.laws import levels as levels_lib  # pylint: disable=import-outside-toplevel
  from lawsearch.laws.runs_table import RunsTable  # pylint: disable=import-outside-toplevel

  root = Path(__file__).resolve().parents[1] / "experiments/results"
  committed = json.loads((root / "noise/l_opt_within_scale.json").read_text())
  row = next(f for f in committed["fits"] if f["form"] == "decaying" and f["within_scale"])
  table = pd.read_csv(root / "cpu_replication_v2/runs.csv")
  fitting = table[table["scale"].isin(list(committed["n_spread"]))]
  noise = laws.noise.seed_noise(RunsTable.of(fitting))
  means = RunsTable(noise.means.assign(weight=noise.mean_weights()))
  found = joint_levels(means, "decaying", within_scale=True)
  assert found.attrs["alpha"] == pytest.approx(row["alpha"], rel=1e-4)
  law = laws.ConditionalLaw.fit(means.assign(l_opt=levels_lib.level_column(means, found)),
                                "decaying", l_opt="column")
  assert law.coefficients["gamma"] == pytest.approx(row["gamma"], rel=1e-4)


def test_a_warm_start_reaches_the_multi_start_fit(table):
  # joint_levels starts each round from the last round's law; from a nearby law one start finds
  # what eight find.
  fitted = table.assign(l_opt=table["scale"].map(LEVELS))
  cold = laws.ConditionalLaw.fit(fitted, l_opt="column")
  near = laws.ConditionalLaw(cold.form, tuple(np.asarray(cold.params) * 1.05))
  warm = laws.ConditionalLaw.fit(fitted, l_opt="column", start=near)
  assert warm.fit_info.objective == pytest.approx(cold.fit_info.objective, rel=1e-9)
  np.testing.assert_allclose(warm.params, cold.params, rtol=1e-5)
