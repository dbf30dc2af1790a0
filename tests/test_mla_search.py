"""GQA against MLA at one loss target (lawsearch.attention_search, `lawsearch search --attention
gqa,mla`): the MLA candidates' budget, their roofline against lawsearch.cost computed shape by
shape, the best pick against a brute-force choice, the loss assumption and its evaluator."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from lawsearch import arch, attention_search, configlib, cost, search
from lawsearch.errors import UserError
from lawsearch.hf.config import hf_config
from lawsearch.laws import ConditionalLaw


@pytest.fixture(scope="module")
def result():
  return search.search(ConditionalLaw.paper("80m-297m"), 1e9, 1e11, 16, 64,
                       baseline="llama3.2-1b", d_models=range(1536, 3585, 128))


@pytest.fixture(scope="module")
def both(result):
  return attention_search.compare(result, kv_lora_ranks=(128, 512))


def test_mla_candidates_are_at_the_budget_and_scored_by_the_roofline(both, result):
  table = both.mla_candidates
  assert len(table) > 20 and set(table["attention"]) == {"mla"}
  assert set(table["kv_lora_rank"]) == {128, 512}
  assert (np.abs(table["n_params"] / 1e9 - 1) <= 0.01).all()
  measure = result.measure
  for _, row in table.sample(5, random_state=0).iterrows():
    spec = arch.from_fields(row)
    expected = cost.roofline_throughput(spec, measure.chip, measure.batch, measure.input_len,
                                        measure.output_len)
    assert row["efficiency"] == pytest.approx(expected.output_tokens_per_s, rel=1e-9)
    assert row["kv_bytes_per_token"] == 16 * (row["kv_lora_rank"] + 32) * 2


def test_best_mla_is_the_fastest_meeting_the_target(both, result):
  table = both.mla_candidates
  ok = table[(table["loss"] <= result.target) & (table["efficiency"] > 0)]
  best = both.best["mla"]
  assert best.efficiency == ok["efficiency"].max() and best.loss <= result.target
  assert best.spec.is_mla and both.best["gqa"].spec == result.surefire
  assert any("MLA is not in the law" in n for n in both.notes)


def test_a_loss_factor_moves_mla_losses_and_can_rule_mla_out(result):
  worse = attention_search.compare(result, kv_lora_ranks=(128,),
                                   mla_loss=attention_search.mla_loss_factor(result, 1.2))
  table = worse.mla_candidates
  np.testing.assert_allclose(table["loss"], 1.2 * table["law_loss"], rtol=1e-12)
  assert "mla" not in worse.best and any("no MLA candidate meets" in n for n in worse.notes)
  with pytest.raises(UserError, match="must be positive"):
    attention_search.mla_loss_factor(result, 0)


def test_measured_efficiencies_are_refused(result):
  # measurements are keyed by the GQA shape tuple, which an MLA shape could collide with
  measured = dataclasses.replace(result, measure=search.MeasuredEfficiency({}))
  with pytest.raises(UserError, match="drop --measured"):
    attention_search.compare(measured, kv_lora_ranks=(128,))


def test_cli_marks_both_picks(tmp_path):
  out = tmp_path / "s"
  done = subprocess.run([sys.executable, "-m", "lawsearch.cli", "search", "--params", "1e9",
                         "--tokens", "1e11", "--layers", "16", "--head-dim", "64", "--baseline",
                         "llama3.2-1b", "--attention", "gqa,mla", "--kv-lora-ranks", "256",
                         "--out", str(out)], capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  assert "GQA against MLA" in done.stdout
  doc = json.loads((out / "attention.json").read_text())
  assert set(doc["best"]) == {"gqa", "mla"} and doc["best"]["mla"]["spec"]["kv_lora_rank"] == 256
  assert (out / "attention.png").stat().st_size > 10_000
  # the MLA pick's train config loads back to the same MLA shape; no HF/MaxText file for it
  config = configlib.load(str(out / "best_mla.config.py") + ":recipe=paper")
  assert arch.ArchSpec(**config.model.arch) == arch.from_fields(doc["best"]["mla"]["spec"])
  assert not (out / "best_mla.hf_config.json").exists()
  with pytest.raises(UserError, match="MLA shape"):
    hf_config(arch.preset("nano-mla"))


def test_attention_search_imports_no_flax():
  code = ("import sys, lawsearch.attention_search\n"
          "print(sorted({m.split('.')[0] for m in sys.modules} & {'flax', 'orbax', 'grain'}))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"
