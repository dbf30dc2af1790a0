"""The committed noise measurements (experiments/results/noise/, made by
experiments/noise/train_noise.sh and analysed by experiments/noise/analyze.py) read back: the
summary in lr_scan.json is what the analysis gives on the committed lr_scan.csv, and the CSV is
the committed run records."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOISE = ROOT / "experiments/results/noise"


def _analyze():
  spec = importlib.util.spec_from_file_location("analyze", ROOT / "experiments/noise/analyze.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.skipif(not (NOISE / "lr_scan.json").exists(), reason="no committed LR scan")
def test_lr_scan_summary_is_the_analysis_of_its_table():
  analyze = _analyze()
  committed = json.loads((NOISE / "lr_scan.json").read_text())
  scan = pd.read_csv(NOISE / "lr_scan.csv")
  again = analyze.analyse(scan)
  assert again["runs"] == committed["runs"] == len(scan)
  for scale, summary in committed["scales"].items():
    for key in ("seed_sd_at_shared_lr", "seed_sd_all_lrs", "max_given_up"):
      assert again["scales"][scale][key] == pytest.approx(summary[key], rel=1e-9), key
  # The table is the committed records: every run directory's result.json holds its loss.
  records = {p.parent.name: json.loads(p.read_text())["loss"]
             for p in (NOISE / "lr_scan").glob("*/result.json")}
  assert records == pytest.approx(dict(zip(scan["run"], scan["loss"])))
