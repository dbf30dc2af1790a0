"""The committed noise measurements (experiments/results/noise/, made by
experiments/noise/train_noise.sh and analysed by experiments/noise/analyze.py) read back: lr.json
and recipes.json are what the analysis gives on the committed runs.csv, and runs.csv is the
committed run records."""

import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOISE = ROOT / "experiments/results/noise"
pytestmark = pytest.mark.skipif(not (NOISE / "runs.csv").exists(), reason="no noise runs")


@pytest.fixture(scope="module")
def analyze(experiment):
  return experiment("noise/analyze.py")


@pytest.fixture(scope="module")
def table():
  return pd.read_csv(NOISE / "runs.csv")


def test_the_table_is_the_committed_records(table):
  # Every row is a run's record (experiments/noise/commit.sh commits new records and the table
  # together, so a clone holds no record the table lacks; a machine still training may).
  records = {(p.parent.parent.name, p.parent.name): json.loads(p.read_text())["loss"]
             for p in NOISE.glob("*/*/result.json")}
  rows = dict(zip(zip(table["root"], table["run"]), table["loss"]))
  assert len(rows) == len(table) and {k: records.get(k) for k in rows} == pytest.approx(rows)


def test_the_summaries_are_the_analysis_of_the_table(analyze, table):
  lr = json.loads((NOISE / "lr.json").read_text())
  again = analyze.analyse(table)
  assert again["runs"] == lr["runs"] and set(again["scans"]) == set(lr["scans"])
  for name, scan in lr["scans"].items():
    for key in ("seed_sd_at_shared_lr", "seed_sd_all_lrs", "max_given_up"):
      # NaN: a scan with no seed pairs yet at that LR
      assert again["scans"][name][key] == pytest.approx(scan[key], rel=1e-9, nan_ok=True), (
          name, key)
  recipes = json.loads((NOISE / "recipes.json").read_text())["recipes"]
  assert {k: v["seed_sd"] for k, v in analyze.recipes(table).items()} == pytest.approx(
      {k: v["seed_sd"] for k, v in recipes.items()}, nan_ok=True)


def test_the_lr_rule_is_the_fit_on_the_table(analyze, table):
  committed = json.loads((NOISE / "lr_rule.json").read_text())
  again = analyze.lr_rule(table)
  assert again["points"] == committed["points"]
  # least_squares stops where its tolerances say (to ~1e-5 of a flat optimum, varying with the
  # scipy build): the exponents agree to a thousandth of their standard errors.
  for key in ("width_exponent", "r_exponent"):
    assert again[key] == pytest.approx(committed[key], abs=1e-3 * committed[f"{key}_se"]), key
  assert again["residual_sd"] == pytest.approx(committed["residual_sd"], rel=1e-4)
  # The recipe's width rule is the fitted exponent, to the precision the scans give it.
  from lawsearch.recipe import CPU_V2  # pylint: disable=import-outside-toplevel
  assert abs(CPU_V2.lr_width_exponent - committed["width_exponent"]) <= max(
      2 * committed["width_exponent_se"], 0.25)
