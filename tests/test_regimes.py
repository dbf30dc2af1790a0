"""Where a decode step's cost goes (cost.decode_breakdown, lawsearch.regimes) against hand-written
closed forms, and the committed breakdown read back."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lawsearch import arch, cost, regimes
from lawsearch.laws import ConditionalLaw

RESULTS = os.path.join(os.path.dirname(__file__), "..", "experiments", "results", "inference_scaling")


def test_breakdown_of_llama_1b_by_hand():
  # LLaMA-3.2-1B: L=16, d=2048, 32 query heads and 8 KV heads of 64, f=8192, V=128256, bf16.
  L, d, dq, dkv, f, V, T, B = 16, 2048, 2048, 512, 8192, 128256, 4096, 8
  b = cost.decode_breakdown(arch.preset("llama3.2-1b"), "h200", B, T)
  assert b.flops == {"attn_proj": B * L * 2 * (2 * d * dq + 2 * d * dkv),
                     "attn_cache": B * L * 2 * 2 * T * dq,  # q.k and p.v
                     "mlp": B * L * 2 * 3 * d * f,
                     "head": B * 2 * d * V}
  assert b.bytes == {"attn_proj": 2 * L * (2 * d * dq + 2 * d * dkv),
                     "attn_cache": 2 * B * T * L * 2 * dkv,  # K and V, every layer
                     "mlp": 2 * L * 3 * d * f,
                     "head": 2 * (V * d + (2 * L + 1) * d)}  # the head and every RMSNorm scale
  hw = cost.hardware("h200")
  assert b.compute_s == pytest.approx(sum(b.flops.values()) / 989e12)
  assert b.memory_s == pytest.approx(sum(b.bytes.values()) / 4.8e12)
  assert b.bound == "memory" and b.step_s == b.memory_s
  for what in regimes.WHATS:
    assert sum(b.shares(what).values()) == pytest.approx(1.0, abs=1e-12)
  assert b.shares("time") == b.shares("bytes")
  # The totals are the roofline's decode step at the same KV length.
  spec = arch.preset("llama3.2-1b")
  assert sum(b.flops.values()) == pytest.approx(B * cost.inference_flops_per_token(
      spec, T, "physical"), rel=1e-12)
  assert sum(b.bytes.values()) == pytest.approx(cost.weight_bytes_read_per_step(spec) + B * T *
                                                cost.kv_cache_bytes_per_token(spec), rel=1e-12)
  assert hw.name == b.hardware


def test_a_compute_bound_step_shares_time_as_flops():
  b = cost.decode_breakdown(arch.preset("llama3.1-70b"), "h200", 4096, 1)
  assert b.bound == "compute" and b.shares("time") == b.shares("flops")
  with pytest.raises(ValueError, match="'flops', 'bytes' or 'time'"):
    b.shares("joules")
  with pytest.raises(ValueError, match="batch must be an integer >= 1"):
    cost.decode_breakdown(arch.preset("nano"), "h200", 0, 10)


def test_node_adds_up_chips():
  one, eight = cost.hardware("h100-sxm"), cost.node("h100-sxm", 8)
  assert (eight.peak_flops, eight.hbm_bandwidth, eight.hbm_bytes) == (
      8 * one.peak_flops, 8 * one.hbm_bandwidth, 8 * one.hbm_bytes)
  assert cost.node(one, 1) is one and eight.name == "8x h100-sxm"
  with pytest.raises(ValueError, match="chips"):
    cost.node(one, 0)


def test_crossover_interpolates_in_log_size():
  # 0.8 at 1e8, 0.2 at 1e10: 0.5 is crossed halfway in log size.
  assert regimes.crossover([1e10, 1e8], [0.2, 0.8]) == pytest.approx(1e9)
  assert regimes.crossover([1e8, 1e9, 1e10], [0.9, 0.5, 0.1]) == pytest.approx(1e9)
  assert regimes.crossover([1e8, 1e10], [0.6, 0.7]) is None


@pytest.fixture(scope="module")
def family_table():
  return regimes.breakdown_table(regimes.family(), "h200")


def test_family_sizes_are_the_published_totals(family_table):
  totals = dict(zip(family_table["name"], family_table["total_params"]))
  assert totals["llama3.1-8b"] == 8_030_261_248
  assert totals["llama3.1-70b"] == 70_553_706_496
  assert totals["llama3.1-405b"] == 405_853_388_800
  assert totals["smollm-135m"] == 134_515_008
  assert len(family_table) == len(regimes.FAMILY) * 9


def test_claims_against_hand_computed_shares(family_table):
  verdicts = regimes.claims(family_table).set_index(["claim", "scenario"])
  # Claim 3 at 4k, batch 64: the KV cache's share of the bytes LLaMA-3.1-405B streams, by hand.
  L, d, kv, f, V = 126, 16384, 8 * 128, 53248, 128256
  N = L * (2 * d * d + 2 * d * kv + 3 * d * f)  # 128 query heads of 128: d_q = d
  kv_bytes = 64 * 4096 * L * 2 * kv * 2
  weights = 2 * (N + V * d + (2 * L + 1) * d)
  share = kv_bytes / (kv_bytes + weights)
  row = verdicts.loc[("above 100B, the KV cache and memory bandwidth dominate",
                      "context 4k, batch 64")]
  assert f"KV {share:.0%} of bytes" in row["evidence"] and share < 0.5 and not row["holds"]
  # Claim 2 at 4k: MLP FLOPs of LLaMA-3.1-8B per token, by hand: 3 d f against the rest.
  L8, d8, f8, dq8, dkv8, V8 = 32, 4096, 14336, 4096, 1024, 128256
  per_token = {"mlp": L8 * 6 * d8 * f8, "proj": L8 * 2 * (2 * d8 * dq8 + 2 * d8 * dkv8),
               "cache": L8 * 4 * 4096 * dq8, "head": 2 * d8 * V8}
  mlp = per_token["mlp"] / sum(per_token.values())
  row = verdicts.loc[("10B-70B: the MLP dominates inference FLOPs", "context 4k, batch 1")]
  assert f"llama3.1-8b: {mlp:.0%}" in row["evidence"]
  # A model outside every claim's range: nothing to judge.
  tiny = regimes.claims(regimes.breakdown_table({"nano": arch.preset("nano")}, "h200", [64],
                                                [1]))
  assert tiny.set_index("claim").loc["above 100B, the KV cache and memory bandwidth dominate",
                                     "holds"] is None


def test_ratio_claim_by_hand():
  law = ConditionalLaw.paper("80m-297m")
  a0, a1, a2, b0, b1, b2 = law.params
  r_star = b2 / b1  # the r factor b0 + b1 ln r + b2 / r is least at r = b2 / b1
  factor = lambda r: b0 + b1 * math.log(r) + b2 / r
  rows = regimes.ratio_claim({"paper": law, "wide": law},
                             {"wide": (0.5, 3.0)}).set_index("law")
  assert rows.loc["paper", "r_star"] == pytest.approx(r_star, rel=1e-9)
  assert rows.loc["paper", "loss_at_claim"] == pytest.approx(factor(2.5) / factor(r_star) - 1,
                                                             rel=1e-6)
  assert not rows.loc["paper", "agrees"] and rows.loc["wide", "agrees"]
  flat = ConditionalLaw("multiplicative", (1.0, 0.1, 0.015, 1.0, -0.002, 0.07))
  row = regimes.ratio_claim({"flat": flat}).iloc[0]
  assert row["r_star"] is None and "no interior minimum" in row["note"]


def test_cost_breakdown_cli(tmp_path):
  cmd = [sys.executable, "-m", "lawsearch.cli", "cost", "--breakdown", "--preset", "llama3.2-1b",
         "--preset", "llama3.1-405b", "--hardware", "h200", "--context", "4096", "--batch", "1",
         "64"]
  ok = subprocess.run(cmd + ["--plots", str(tmp_path)], capture_output=True, text=True)
  assert ok.returncode == 0, ok.stderr
  assert "below 1B, attention dominates compute" in ok.stdout and "llama3.1-405b" in ok.stdout
  assert (tmp_path / "time.png").exists() and (tmp_path / "flops.png").exists()
  rows = json.loads(subprocess.run(cmd + ["--json"], capture_output=True, text=True).stdout)
  assert len(rows) == 4 and {r["bound"] for r in rows} <= {"memory", "compute"}


def test_committed_breakdown_matches_the_code():
  path = os.path.join(RESULTS, "breakdown.csv")
  if not os.path.exists(path):
    pytest.skip("no committed breakdown (.venv/bin/python experiments/inference_scaling.py)")
  committed = pd.read_csv(path)
  llama = committed[committed["group"] == "LLaMA family"].reset_index(drop=True)
  fresh = regimes.breakdown_table(regimes.family(), "h200")
  columns = [c for c in fresh.columns if ":" in c] + ["step_ms"]
  np.testing.assert_allclose(llama[columns].to_numpy(float), fresh[columns].to_numpy(float),
                             rtol=1e-5)
  claims = pd.read_csv(os.path.join(RESULTS, "claims.csv"))
  assert set(claims["group"]) == {"LLaMA family", "Surefire at each size"}
