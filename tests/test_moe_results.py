"""The committed tiny-MoE experiment (experiments/results/moe_cpu/, made by
experiments/moe_cpu/train.sh) read back: summary.json is what analyze.py gives on the committed run
records and bench sittings, the MoE twins match their dense twin in active parameters and tokens,
and the roofline's expert term is the distinct-expert count."""

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MOE = ROOT / "experiments/results/moe_cpu"
pytestmark = pytest.mark.skipif(not (MOE / "summary.json").exists(), reason="no MoE results")


@pytest.fixture(scope="module")
def analyze(experiment):
  return experiment("moe_cpu/analyze.py")


def test_summary_is_what_the_analysis_gives_on_the_committed_records(analyze, tmp_path):
  for record in MOE.glob("trained/*/*.json*"):  # the records, without checkpoints
    target = tmp_path / record.relative_to(MOE)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(record, target)
  shutil.copytree(MOE / "bench", tmp_path / "bench")
  committed = json.loads((MOE / "summary.json").read_text())
  assert analyze.table(str(tmp_path)) == committed


def test_twins_share_active_parameters_and_tokens():
  shapes = {s["shape"]: s for s in json.loads((MOE / "summary.json").read_text())["shapes"]}
  dense = shapes["dense"]
  assert dense["active_params"] == dense["total_params"] and dense["seeds"] >= 2
  for name in ("moe-e4", "moe-e8"):
    moe = shapes[name]
    assert moe["tokens"] == dense["tokens"] and moe["seeds"] == dense["seeds"]
    assert abs(moe["active_params"] / dense["active_params"] - 1) < 0.015  # the router's d*E
    assert moe["total_params"] > moe["active_params"]
    touched = [t["experts_touched"] for t in moe["throughput"]]
    e, k = moe["n_experts"], moe["top_k"]
    assert touched == pytest.approx([e * (1 - (1 - k / e) ** b) for b in (1, 8, 32)])
