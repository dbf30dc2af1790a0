"""Dense against mixture of experts at one loss target (lawsearch.moe_search): mixtures keep the
dense shape's active size; a MoE law prices them by its closed form and a dense law not at all;
the picks meet the target, their throughput against batch is the roofline's at each batch, the
crossover is where that curve says; a mixture that does not fit the device is infeasible; the CLI
writes the comparison and the pick's files."""

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from lawsearch import arch, cost, moe_search, search
from lawsearch.errors import UserError
from lawsearch.laws import ConditionalLaw, float64

DENSE = ConditionalLaw.paper("80m-297m").params
MOE_LAW = ConditionalLaw("moe-leverage", DENSE + (0.02, 0.01, -0.003))
BUDGET = dict(n_params=2e8, tokens=2e10, n_layers=12, head_dim=64)


@pytest.fixture(scope="module")
def result():
  return search.search(MOE_LAW, **BUDGET, loss_target=1.03, vocab_size=32000,
                       efficiency=search.RooflineEfficiency("a100-40gb", 64, 1024, 256))


@pytest.fixture(scope="module")
def both(result):
  return moe_search.compare(result, experts=(4, 8), granularities=(1, 2))


def test_mixtures_keep_the_active_size_and_skip_some_experts():
  dense = arch.ArchSpec(n_layers=4, d_model=256, n_heads=4, n_kv_heads=2, head_dim=64,
                        ffn_dim=768, vocab_size=1000)
  made = moe_search.mixtures(dense, experts=(2, 4), granularities=(1, 2, 4))
  assert [(m.n_experts, m.top_k, m.expert_ffn_dim) for m in made] == [
      (2, 1, 768), (4, 1, 768), (4, 2, 384)]  # G < E only
  for m in made:
    router = m.n_layers * m.d_model * m.n_experts
    assert m.active_non_embedding_params == dense.non_embedding_params + router
    assert m.mlp_attn_ratio == pytest.approx(dense.mlp_attn_ratio, rel=0.02)  # router aside


def test_the_moe_pick_meets_the_target_and_its_loss_is_the_closed_form(both, result):
  moe = both.best["moe"]
  assert moe.spec.is_moe and moe.loss <= result.target * (1 + 1e-12)
  s = moe.spec
  x = s.d_model / math.sqrt(s.active_non_embedding_params)
  with float64():
    dense_part = float(ConditionalLaw("multiplicative", DENSE).predict_xr(x, s.mlp_attn_ratio, 1.0))
  e, k, g = s.n_experts, s.top_k, s.ffn_dim / s.expert_ffn_dim
  gain = 0.02 * math.log(e / k) + 0.01 * math.log(g) - 0.003 * math.log(g) ** 2
  assert moe.loss == pytest.approx(dense_part * math.exp(-gain), rel=1e-9)
  assert both.best["dense"].spec == result.surefire
  feasible = both.moe_candidates[both.moe_candidates["meets_target"]
                                 & (both.moe_candidates["efficiency"] > 0)]
  assert moe.efficiency == pytest.approx(feasible["efficiency"].max())


def test_throughput_against_batch_is_the_roofline_at_each_batch(both, result):
  curve = both.throughput
  for batch in (1, 8, 256):
    measure = dataclasses.replace(result.measure, batch=batch)
    for kind in ("dense", "moe"):
      assert curve.loc[batch, kind] == pytest.approx(measure.many([both.best[kind].spec])[0])
  behind = curve.index[curve["dense"] >= curve["moe"]]
  assert both.crossover_batch == (int(behind[0]) if len(behind) else None)
  # MoE reads only the experts a batch touches: its edge over the same weights read densely
  moe = both.best["moe"].spec
  touched = [arch.experts_touched(moe.n_experts, moe.top_k, b) for b in (1, 1024)]
  assert touched[0] == pytest.approx(moe.top_k) and touched[1] == pytest.approx(moe.n_experts)


def test_a_dense_law_gives_mixtures_their_dense_loss_and_says_so(result):
  dense_law = dataclasses.replace(result, law=ConditionalLaw("multiplicative", DENSE))
  both = moe_search.compare(dense_law, experts=(4,), granularities=(1,))
  assert any("no sparsity term" in n for n in both.notes)
  row = both.moe_candidates.iloc[0]
  base = arch.ArchSpec(**{f: row[f].item() if hasattr(row[f], "item") else row[f]
                          for f in search.SHAPE_COLUMNS})
  mix = moe_search.mixtures(base, (4,), (1,))[0]
  assert row["loss"] == pytest.approx(float(search.predict_loss(
      dense_law.law, [mix], BUDGET["tokens"])[0]))


def test_a_mixture_that_does_not_fit_the_device_is_infeasible(result):
  tiny = cost.Hardware("tiny", 1e14, 1e12, 2.5e9)  # fits the dense pick, not 8 or 16 experts
  measure = search.RooflineEfficiency(tiny, 1, 1024, 256)
  small = dataclasses.replace(result, measure=measure)
  both = moe_search.compare(small, experts=(16,), granularities=(1,))
  weights = both.moe_candidates["weight_bytes"]
  assert (both.moe_candidates.loc[weights > 2.5e9, "efficiency"] == 0).all()
  assert "moe" not in both.best or both.best["moe"].weight_bytes <= 2.5e9


def test_bad_settings_are_refused_by_name(result):
  with pytest.raises(UserError, match="experts must be positive integers"):
    moe_search.compare(result, experts=(0,))
  with pytest.raises(UserError, match="no mixture of experts can be built"):
    moe_search.compare(result, experts=(1,), granularities=(1,))


def test_cli_writes_the_comparison_and_the_picks_files(tmp_path):
  out = tmp_path / "s"
  law = tmp_path / "law.json"
  MOE_LAW.to_json(str(law))
  done = subprocess.run([sys.executable, "-m", "lawsearch.cli", "search", "--law", str(law),
                         "--params", "2e8", "--tokens", "2e10", "--layers", "12", "--head-dim",
                         "64", "--vocab-size", "32000", "--target", "1.03", "--mlp", "dense,moe",
                         "--experts", "4,8", "--granularities", "1,2", "--out", str(out)],
                        capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  assert "dense against mixture of experts" in done.stdout and "tok/s b1" in done.stdout
  doc = json.loads((out / "moe.json").read_text())
  assert set(doc["best"]) == {"dense", "moe"} and doc["best"]["moe"]["spec"]["mlp"] == "moe"
  assert (out / "moe_throughput.png").stat().st_size > 10_000
  assert arch.from_fields(json.loads((out / "best_moe.arch.json").read_text())).is_moe
