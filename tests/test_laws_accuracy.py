"""The loss -> mean accuracy law (lawsearch.laws.accuracy): exact recovery of known laws, intervals
that cover the truth, the runs-table entry point and its errors, and the JSON round trip."""

import numpy as np
import pandas as pd
import pytest

from lawsearch.errors import UserError
from lawsearch.laws import accuracy

LOSS = np.linspace(2.4, 3.4, 10)


def test_linear_law_recovers_a_line():
  law = accuracy.fit(LOSS, 0.9 - 0.2 * LOSS, "linear", n_boot=0)
  np.testing.assert_allclose(law.params, (0.9, -0.2), atol=1e-12)
  assert law.predict(3.0) == pytest.approx(0.3) and law.rmse < 1e-12


def test_sigmoid_law_recovers_its_parameters():
  # acc = c + (1 - c) / (1 + exp(k (L - L0))) with c = 0.3, k = 4, L0 = 2.6, evaluated by hand.
  acc = 0.3 + 0.7 / (1 + np.exp(4 * (LOSS - 2.6)))
  law = accuracy.fit(LOSS, acc, "sigmoid", chance=0.3, n_boot=0)
  np.testing.assert_allclose(law.params, (4.0, 2.6), rtol=1e-6)
  assert law.predict(2.6) == pytest.approx(0.65)


def test_bootstrap_interval_covers_the_true_line():
  rng = np.random.default_rng(1)
  acc = 0.9 - 0.2 * LOSS + rng.normal(0, 0.005, LOSS.shape)
  law = accuracy.fit(LOSS, acc, "linear", n_boot=400, seed=0)
  low, high = law.interval([2.5, 3.0, 3.3])
  truth = 0.9 - 0.2 * np.array([2.5, 3.0, 3.3])
  assert np.all(low < truth) and np.all(truth < high)
  assert np.all(high - low < 0.02)  # noise 0.005 on 10 points: a narrow band


def test_fit_table_uses_scored_runs_and_their_chance():
  df = pd.DataFrame({"loss": [2.5, 2.7, 2.9, 3.1], "acc_mean": [0.4, 0.36, 0.32, np.nan],
                     "acc_mean_chance": [0.3, 0.3, 0.3, np.nan]})
  law = accuracy.fit_table(df, "linear", n_boot=0)
  assert law.n_points == 3 and law.chance == pytest.approx(0.3)
  np.testing.assert_allclose(law.params, (0.9, -0.2), atol=1e-9)
  with pytest.raises(UserError, match="lawsearch eval --workdir RUN --tasks all"):
    accuracy.fit_table(df.drop(columns=["acc_mean"]))


def test_summary_gives_the_law_and_its_predictions_across_the_fitted_losses():
  law = accuracy.fit(LOSS, 0.9 - 0.2 * LOSS, "linear", n_boot=0)
  head, *table = law.summary().splitlines()
  assert head == ("linear accuracy law: acc = 0.9000 + -0.2000 * loss on 10 runs with loss in "
                  "[2.4000, 3.4000], rmse 0.0000")
  # At the lowest, middle and highest loss: 0.9 - 0.2 L by hand.
  assert [row.split() for row in table] == [["loss", "predicted", "mean", "accuracy"],
                                            ["2.4", "0.42"], ["2.9", "0.32"], ["3.4", "0.22"]]


def test_summary_with_a_bootstrap_adds_the_interval_at_its_level():
  rng = np.random.default_rng(1)
  law = accuracy.fit(LOSS, 0.9 - 0.2 * LOSS + rng.normal(0, 0.005, LOSS.shape), "linear",
                     n_boot=100, level=0.9)
  header, *rows = law.summary().splitlines()[1:]
  assert header.split() == ["loss", "predicted", "mean", "accuracy", "90%", "low", "high"]
  for row in rows:
    _, predicted, low, high = map(float, row.split())
    assert low < predicted < high


def test_too_few_runs_is_a_clear_error():
  with pytest.raises(UserError, match="at least 3 runs of different loss"):
    accuracy.fit([2.5, 2.5, 2.5], [0.3, 0.31, 0.29])


def test_json_round_trip(tmp_path):
  law = accuracy.fit(LOSS, 0.9 - 0.2 * LOSS, "linear", n_boot=20)
  law.to_json(tmp_path / "acc.json")
  again = accuracy.AccuracyLaw.from_json(tmp_path / "acc.json")
  assert again == law
  (tmp_path / "bad.json").write_text('{"form": "cubic"}')
  with pytest.raises(UserError, match="lacks 'params'"):
    accuracy.AccuracyLaw.from_json(tmp_path / "bad.json")
