"""The penalised objective and the efficiency exponent (lawsearch.tradeoff)."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lawsearch import arch, search, tradeoff
from lawsearch.laws import ChinchillaLaw, ConditionalLaw

LAW = ConditionalLaw.paper("80m-297m")
N_1B = arch.preset("llama3.2-1b").non_embedding_params


@pytest.fixture(scope="module")
def result_1b():
  return search.search(LAW, N_1B, 1e11, 16, 64, baseline="llama3.2-1b")


def test_minimisers_find_a_known_minimiser():
  # loss = 1 + k / c on a fine grid of costs: loss + lam * c is least at c* = sqrt(k / lam).
  k = 0.04
  cost = np.linspace(0.2, 5.0, 4801)
  loss = 1 + k / cost
  lambdas = [0.0016, 0.01, 0.04, 0.25]
  picks = tradeoff.minimisers(loss, cost, lambdas)
  for lam, i in zip(lambdas, picks):
    assert cost[i] == pytest.approx(math.sqrt(k / lam), abs=1e-3)


def test_lambda_limits_and_the_front(result_1b):
  picks = tradeoff.penalised(result_1b, [0.0, 1e-9, 1e-3, 0.03, 0.1, 1e6])
  c = result_1b.candidates
  ok = c[c["admissible"] & (c["efficiency"] > 0)]
  # lambda -> 0: the lowest predicted loss there is, Panda's (Panda sits at the law's optimum).
  assert picks["loss"].iloc[1] == ok["loss"].min()
  assert picks["loss"].iloc[1] <= result_1b.locate(result_1b.panda)["loss"] + 1e-12
  # lambda -> inf: the cheapest admissible candidate.
  assert picks["efficiency"].iloc[-1] == ok["efficiency"].max()
  assert picks["pareto"].all()
  assert picks["loss"].is_monotonic_increasing
  assert picks["relative_cost"].is_monotonic_decreasing
  base = result_1b.locate(result_1b.baseline)["efficiency"]
  np.testing.assert_allclose(picks["relative_cost"], base / picks["efficiency"], rtol=1e-12)
  with pytest.raises(ValueError, match="lambda values must be finite and >= 0"):
    tradeoff.penalised(result_1b, [-1.0])


def test_cost_units():
  rate = np.array([100.0, 0.0, np.nan])
  np.testing.assert_allclose(tradeoff.InferenceCost().per_token(rate), [0.01, np.inf, np.inf])
  joules = tradeoff.InferenceCost("J/token", power_w=700).per_token(rate)
  assert joules[0] == pytest.approx(7.0)
  dollars = tradeoff.InferenceCost("$/Mtoken", price_per_hour=3.6).per_token(rate)
  assert dollars[0] == pytest.approx(3.6 / 3600 / 100 * 1e6)
  with pytest.raises(ValueError, match="needs a positive --power-w"):
    tradeoff.InferenceCost("J/token")
  with pytest.raises(ValueError, match="cost unit must be one of"):
    tradeoff.InferenceCost("W")


def test_exponents_recover_known_values():
  rng = np.random.default_rng(0)
  n = np.logspace(8, 11, 12)
  points = pd.DataFrame({"group": "a", "n_params": n,
                         "performance": 3 * n**0.3 * np.exp(0.01 * rng.standard_normal(12)),
                         "cost": 2e-9 * n**0.9 * np.exp(0.01 * rng.standard_normal(12))})
  row = tradeoff.exponents(points, n_boot=300).iloc[0]
  assert row["alpha"] == pytest.approx(0.3, abs=0.01)
  assert row["eta"] == pytest.approx(0.9, abs=0.01)
  assert row["alpha_over_eta"] == pytest.approx(1 / 3, abs=0.01)
  # The intervals hold the estimate and reach the truth within their own width.
  for key, lo, hi, truth in (("alpha", "alpha_lo", "alpha_hi", 0.3),
                             ("alpha_over_eta", "ratio_lo", "ratio_hi", 1 / 3)):
    assert row[lo] < row[key] < row[hi] and abs(row[key] - truth) < row[hi] - row[lo] < 0.05
  with pytest.raises(ValueError, match="3 or more sizes"):
    tradeoff.exponents(points.head(2), n_boot=10)


def test_family_points_on_real_searches():
  chin = ChinchillaLaw.epoch()
  results = [search.search(LAW, n, 20 * n, 8, 64, baseline=arch.from_budget(
      n, n_layers=8, head_dim=64, d_model=d, r=4.0, gqa=4, vocab_size=32000), gqas=(1, 4),
      vocab_size=32000, efficiency=search.RooflineEfficiency("h200", 64))
             for n, d in ((1e8, 768), (3e8, 1280), (1e9, 2304))]
  points = tradeoff.family_points(results, chin)
  assert set(points["group"]) >= {"GQA 1", "GQA 4"}
  for _, p in points.iterrows():
    spec = arch.ArchSpec(*(int(p[f]) for f in search.SHAPE_COLUMNS[:-1]))
    by_hand = float(LAW.predict_xr(spec.d_over_sqrt_n, spec.mlp_attn_ratio, 1.0)) * (
        chin.E + chin.A * p["n_params"] ** -chin.alpha + chin.B * (20 * p["n_params"]) ** -chin.beta)
    assert p["loss"] == pytest.approx(by_hand, rel=1e-5)
    assert p["performance"] == pytest.approx(1 / (p["loss"] - chin.E), rel=1e-12)
  table = tradeoff.exponents(points, n_boot=50)
  assert (table["alpha"] > 0).all() and (table["eta"] > 0).all()


def test_search_cli_lambda(tmp_path):
  cmd = [sys.executable, "-m", "lawsearch.cli", "search", "--params", str(N_1B), "--tokens",
         "1e11", "--layers", "16", "--head-dim", "64", "--baseline", "llama3.2-1b",
         "--out", str(tmp_path)]
  ok = subprocess.run(cmd + ["--lambda", "0,0.1,10", "--cost-unit", "J/token"],
                      capture_output=True, text=True)
  assert ok.returncode == 0, ok.stderr
  assert "penalised objective" in ok.stdout and "cost (J/token)" in ok.stdout
  written = pd.read_csv(tmp_path / "penalised.csv")
  assert list(written["lambda"]) == [0, 0.1, 10]
  bad = subprocess.run(cmd + ["--lambda", "0,x"], capture_output=True, text=True)
  assert bad.returncode == 2 and "--lambda takes comma-separated numbers" in bad.stderr
  bad = subprocess.run(cmd + ["--lambda", "1", "--cost-unit", "$/Mtoken"], capture_output=True,
                       text=True)
  assert bad.returncode == 2 and "--price-per-hour" in bad.stderr
  assert "Traceback" not in bad.stderr


def test_committed_exponents_follow_from_the_committed_points():
  import os

  root = os.path.join(os.path.dirname(__file__), "..", "experiments", "results",
                      "inference_scaling")
  if not os.path.exists(os.path.join(root, "exponents.csv")):
    pytest.skip("no committed exponents (.venv/bin/python experiments/inference_scaling.py)")
  points = pd.read_csv(os.path.join(root, "points.csv"))
  committed = pd.read_csv(os.path.join(root, "exponents.csv")).set_index("group")
  fresh = tradeoff.exponents(points, "group", min_sizes=5).set_index("group")
  for group, row in fresh.iterrows():
    for key in ("alpha", "eta", "alpha_over_eta"):
      assert row[key] == pytest.approx(committed.loc[group, key], rel=1e-4)
  # Performance is 1 / (L - E) of the Epoch Chinchilla fit.
  np.testing.assert_allclose(points["performance"], 1 / (points["loss"] - ChinchillaLaw.epoch().E),
                             rtol=1e-4)
