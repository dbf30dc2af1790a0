"""Algorithm 1 against the paper (PAPER.md section 4), plus the search's own contracts."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from lawsearch import arch, cost, export, search
from lawsearch.laws import ChinchillaLaw, ConditionalLaw
from lawsearch.recipe import CPU as CPU_RECIPE

LAW = ConditionalLaw.paper("80m-297m")
CPU_BASELINE = CPU_RECIPE.baseline("600k")
N_1B = arch.preset("llama3.2-1b").non_embedding_params
N_3B = arch.preset("llama3.2-3b").non_embedding_params


@pytest.fixture(scope="module")
def result_1b():
  return search.search(LAW, N_1B, 1e11, 16, 64, baseline="llama3.2-1b")


@pytest.fixture(scope="module")
def result_3b_1b_only():
  return search.search(ConditionalLaw.paper("1b-only"), N_3B, 1e11, 28, 128,
                       baseline="llama3.2-3b", efficiency=search.RooflineEfficiency("h200", 64))


def test_panda_1b_is_the_papers(result_1b):
  assert result_1b.optimum == pytest.approx((0.080, 1.032), abs=1e-3)
  assert result_1b.panda == arch.preset("panda-1b")


def test_panda_3b_o_close_to_the_papers(result_3b_1b_only):
  x_star, r_star = result_3b_1b_only.optimum
  assert x_star == pytest.approx(0.074, abs=1e-3)
  paper = arch.preset("panda-3b-o")
  panda = result_3b_1b_only.panda
  assert abs(panda.d_model - paper.d_model) <= 256  # one step of the d_model grid
  assert abs(panda.mlp_attn_ratio - paper.mlp_attn_ratio) < 0.06
  # One KV group of 4 heads of 128 is ~4% of N at d=3840: the paper's own Panda-3B-o is 2.1% off.
  assert abs(panda.non_embedding_params / N_3B - 1) < 0.03


def test_papers_surefire_1b_meets_llama_target(result_1b):
  # Target: llama3.2-1b's predicted loss. By hand from the law: the d/sqrt(N) and r factors.
  u = lambda c0, c1, c2, z: c0 + c1 * math.log(z) + c2 / z
  a0, a1, a2, b0, b1, b2 = LAW.params
  llama = arch.preset("llama3.2-1b")
  by_hand = (u(a0, a1, a2, llama.d_over_sqrt_n) * u(b0, b1, b2, llama.mlp_attn_ratio))
  assert result_1b.target == pytest.approx(by_hand, rel=1e-12)
  spot = result_1b.locate(arch.preset("surefire-1b"))
  assert spot["meets_target"]
  assert spot["efficiency"] > result_1b.locate(llama)["efficiency"]


def test_algorithm1_pick_meets_target_and_beats_llama(result_1b):
  ours = result_1b.locate(result_1b.algorithm1)
  llama = result_1b.locate(arch.preset("llama3.2-1b"))
  assert ours["loss"] <= result_1b.target
  assert ours["efficiency"] > llama["efficiency"]
  assert abs(result_1b.algorithm1.non_embedding_params / N_1B - 1) <= 0.01
  # Step 3 only changes GQA at exact parameter count.
  start = result_1b.gqa_trace[0].spec
  assert result_1b.algorithm1_step2 == start
  assert all(s.spec.non_embedding_params == result_1b.gqa_trace[
      [t.start for t in result_1b.gqa_trace].index(s.start)].spec.non_embedding_params
             for s in result_1b.gqa_trace)


def _assert_surefire_on_the_front(result, max_gqa=16):
  """Surefire meets the target, is on the front, and no admissible candidate meeting the target
  is more efficient (brute force over the table, step 3's variants included)."""
  c = result.candidates
  spot = result.locate(result.surefire)
  assert spot["meets_target"] and not spot["dominated"]
  front = result.pareto
  assert ((front["d_model"] == result.surefire.d_model)
          & (front["ffn_dim"] == result.surefire.ffn_dim)
          & (front["n_kv_heads"] == result.surefire.n_kv_heads)).any()
  ok = c[(c["loss"] <= result.target * (1 + 1e-12)) & (c["gqa"] <= max_gqa)]
  assert spot["efficiency"] == pytest.approx(ok["efficiency"].max(), rel=1e-12)
  assert spot["efficiency"] >= result.locate(result.algorithm1)["efficiency"]
  for step in result.gqa_trace:  # every variant step 3 visited is scored in the table
    assert ((c["d_model"] == step.spec.d_model) & (c["ffn_dim"] == step.spec.ffn_dim)
            & (c["n_heads"] == step.spec.n_heads)
            & (c["n_kv_heads"] == step.spec.n_kv_heads)).any()


def test_surefire_is_on_the_front_at_1b_and_3b(result_1b, result_3b_1b_only):
  _assert_surefire_on_the_front(result_1b)
  _assert_surefire_on_the_front(result_3b_1b_only)
  # The paper's law at 3B, against LLaMA-3.2-3B, with a smaller GQA cap.
  result_3b = search.search(LAW, N_3B, 1e11, 28, 128, baseline="llama3.2-3b", max_gqa=8)
  _assert_surefire_on_the_front(result_3b, max_gqa=8)
  assert result_3b.surefire.gqa <= 8


def test_surefire_and_algorithm1_differences_are_explained(result_1b):
  if result_1b.surefire == result_1b.algorithm1:
    pytest.skip("they agree at 1B on this grid")
  [note] = [n for n in result_1b.notes if n.startswith("Surefire (")]
  assert "Algorithm 1's pick" in note and "exact parameter count" in note


def test_with_an_evaluator_surefire_keeps_to_the_verdicts():
  def gqa_loss(spec):  # GQA above 4 costs loss: only the step-2 GQA (4) is vouched for
    return 1.0 if spec.gqa <= 4 else 1.1

  result = search.search(LAW, N_1B, 1e11, 16, 64, baseline="llama3.2-1b", gqa_loss=gqa_loss)
  assert result.surefire.gqa <= 4 and result.algorithm1.gqa <= 4
  c = result.candidates
  assert not c[c["pareto"]]["gqa"].gt(4).any()
  assert result.locate(result.surefire)["meets_target"]


def test_candidates_are_exactly_scored(result_1b):
  c = result_1b.candidates
  assert (np.abs(c["n_params"] / N_1B - 1) <= 0.01).all()
  row = c.iloc[len(c) // 2]
  spec = arch.ArchSpec(*(int(row[f]) for f in search.SHAPE_COLUMNS[:-1]))
  assert row["mlp_attn_ratio"] == spec.mlp_attn_ratio
  assert row["loss"] == pytest.approx(float(LAW.predict_xr(spec.d_over_sqrt_n,
                                                           spec.mlp_attn_ratio, 1.0)), rel=1e-6)
  rate = search.RooflineEfficiency().many([spec])[0]
  assert rate == pytest.approx(cost.roofline_throughput(spec, "a100-40gb", 64).output_tokens_per_s)


def test_continuous_optimum_agrees_with_discrete_pick(result_1b):
  [cont] = [c for c in result_1b.continuous if c.gqa == result_1b.algorithm1_step2.gqa]
  assert cont.feasible
  assert cont.predicted_loss == pytest.approx(result_1b.target, rel=1e-6)  # on the boundary
  pick = result_1b.locate(result_1b.algorithm1_step2)
  # The integer pick is within grid resolution of the continuous one, and cannot beat it by much.
  assert abs(math.log(pick["d_over_sqrt_n"] / cont.x)) < 0.15
  assert pick["efficiency"] <= cont.efficiency * 1.02


def test_pareto_mask_against_brute_force():
  rng = np.random.default_rng(0)
  loss, eff = rng.random(300), rng.random(300)
  eff[:5] = 0.0  # unscored points are never on the front
  mask = search.pareto_mask(loss, eff)
  for i in range(300):
    dominated = np.any((loss <= loss[i]) & (eff >= eff[i]) & ((loss < loss[i]) | (eff > eff[i])))
    assert mask[i] == (not dominated and eff[i] > 0)


# -- Algorithm 1, one step at a time (PAPER.md section 4) -----------------------------------------
# A CPU-scale space: N = 6e5 over 4 layers of head_dim 16, step 2 at GQA 4, r within [0.5, 5].
CPU_SPACE = search.SearchSpace(6e5, 4, 16, 512, d_models=list(range(40, 200, 8)), gqa=4,
                               gqas=[1, 2, 4], ffn_step=8, tolerance=0.01, r_range=(0.5, 5.0))
CPU_TOKENS = 1.2e7


def _u(c0, c1, c2, z):
  """One factor of the multiplicative law: c0 + c1 ln z + c2 / z."""
  return c0 + c1 * np.log(z) + c2 / z


def test_step1_l_opt_at_budget():
  n, d = 1e9, 1e11
  assert search.l_opt_at_budget(None, n, d) == search.l_opt_at_budget("relative", n, d) == 1.0
  assert search.l_opt_at_budget(2.5, n, d) == 2.5
  # Epoch AI's Chinchilla fit by hand: E + A / N^alpha + B / D^beta.
  by_hand = 1.8172 + 482.01 / n**0.3478 + 2085.43 / d**0.3658
  assert search.l_opt_at_budget(ChinchillaLaw.epoch(), n, d) == pytest.approx(by_hand, rel=1e-12)
  assert search.l_opt_at_budget("epoch", n, d) == pytest.approx(by_hand, rel=1e-12)
  with pytest.raises(ValueError, match="needs a runs table"):  # fit on runs first, then pass it
    search.l_opt_at_budget("fit", n, d)


def test_step2_optimum_is_a2_over_a1_and_b2_over_b1_and_panda_is_nearest():
  a0, a1, a2, b0, b1, b2 = LAW.params
  table = search.score_candidates(LAW, search.RooflineEfficiency(), CPU_SPACE, CPU_TOKENS, 2.5)
  opt = search.law_optimum(LAW, CPU_SPACE, table, 2.5)
  assert (opt.x, opt.r) == pytest.approx((a2 / a1, b2 / b1), rel=1e-12)
  assert opt.min_loss == pytest.approx(2.5 * _u(a0, a1, a2, opt.x) * _u(b0, b1, b2, opt.r),
                                       rel=1e-12)
  assert opt.note is None and opt.min_loss <= table["loss"].min()
  # Panda: at step 2's GQA, d_model the grid's nearest to x* sqrt(N) by ratio, N and r near.
  d_star = opt.x * math.sqrt(6e5)
  assert opt.panda.gqa == 4
  assert all(abs(math.log(opt.panda.d_model / d_star)) <= abs(math.log(d / d_star))
             for d in CPU_SPACE.d_models)
  assert abs(opt.panda.non_embedding_params / 6e5 - 1) < 0.05
  assert abs(math.log(opt.panda.mlp_attn_ratio / opt.r)) < 0.2


def test_step2_without_an_interior_minimum_panda_is_the_candidates_argmin():
  law = ConditionalLaw("multiplicative", (1.0, 0.1, 0.015, 1.0, -0.002, 0.07))  # b1 < 0
  table = search.score_candidates(law, search.RooflineEfficiency(), CPU_SPACE, CPU_TOKENS)
  opt = search.law_optimum(law, CPU_SPACE, table, 1.0)
  at_gqa = table[table["gqa"] == 4]
  best = at_gqa.loc[at_gqa["loss"].idxmin()]  # brute force over step 2's GQA
  assert [getattr(opt.panda, f) for f in search.SHAPE_COLUMNS] == [best[f] for f in
                                                                   search.SHAPE_COLUMNS]
  assert (opt.x, opt.r) == (best["d_over_sqrt_n"], best["mlp_attn_ratio"])
  assert opt.min_loss == table["loss"].min()
  assert opt.note.startswith("this multiplicative law has no interior minimum")


def test_step2_scores_every_candidate_and_the_front_is_pareto_optimal():
  a0, a1, a2, b0, b1, b2 = LAW.params
  table = search.score_candidates(LAW, search.RooflineEfficiency(), CPU_SPACE, CPU_TOKENS)
  assert len(table) > 100 and set(table["gqa"]) == {1, 2, 4}
  assert (np.abs(table["n_params"] / 6e5 - 1) <= 0.01).all()
  # x and r from the shape columns, the loss from the law's two factors (relative: L_opt = 1).
  x = table["d_model"] / np.sqrt(table["n_params"])
  r = 3 * table["ffn_dim"] / (2 * table["head_dim"] * (table["n_heads"] + table["n_kv_heads"]))
  assert (table["mlp_attn_ratio"].between(0.5, 5.0)).all()
  np.testing.assert_allclose(r, table["mlp_attn_ratio"], rtol=1e-12)
  np.testing.assert_allclose(table["loss"], _u(a0, a1, a2, x) * _u(b0, b1, b2, r), rtol=1e-12)
  row = table.iloc[len(table) // 3]
  spec = arch.ArchSpec(*(int(row[f]) for f in search.SHAPE_COLUMNS[:-1]))
  assert row["efficiency"] == pytest.approx(
      cost.roofline_throughput(spec, "a100-40gb", 64).output_tokens_per_s, rel=1e-12)
  # The front over the admissible rows (GQA <= 2 here), against every pair by brute force.
  ok = (table["gqa"] <= 2).to_numpy()
  front = search.pareto_front(table, table["gqa"] <= 2)
  assert "pareto" not in table and front["admissible"].tolist() == ok.tolist()
  loss, eff = table["loss"].to_numpy(), table["efficiency"].to_numpy()
  for i in range(len(table)):
    beaten = ok & (loss <= loss[i]) & (eff >= eff[i]) & ((loss < loss[i]) | (eff > eff[i]))
    assert front["pareto"].iloc[i] == (ok[i] and eff[i] > 0 and not beaten.any())
  assert front["pareto"].sum() > 3


def test_step2_picks_are_the_most_efficient_meeting_the_target():
  table = search.score_candidates(LAW, search.RooflineEfficiency(), CPU_SPACE, CPU_TOKENS)
  target = float(table["loss"].median())
  table = table.assign(meets_target=table["loss"] <= target)
  picks = search.step2_picks(table, 4, target, 3)
  ok = table[(table["gqa"] == 4) & (table["loss"] <= target)]
  assert [p.d_model for p in picks] == ok.nlargest(3, "efficiency")["d_model"].tolist()
  assert all(p.gqa == 4 for p in picks)
  with pytest.raises(ValueError, match="no candidate at GQA 4 meets the target"):
    search.step2_picks(table.assign(meets_target=False), 4, target, 3)


def test_step3_gqa_local_search_stops_early_with_an_evaluator():
  start = arch.preset("surefire-1b").replace(n_heads=32, n_kv_heads=8)  # GQA 4, same params
  calls = []

  def gqa_loss(spec):  # loss rises past GQA 7
    calls.append(spec.gqa)
    return 2.80 if spec.gqa <= 7 else 2.81

  trace = search.gqa_local_search(start, search.RooflineEfficiency(), gqa_loss, 16)
  assert [s.gqa for s in trace] == [4, 7, 9]
  assert [s.accepted for s in trace] == [True, True, False]
  assert calls == [4, 7, 9]  # 19 and 39 never evaluated
  assert all(b.efficiency > a.efficiency for a, b in zip(trace, trace[1:]))


def test_step3_gqa_local_search_stops_at_the_first_loss_above_the_starts():
  # PAPER.md: at d = 2560, f = 6144 exact parameter count allows GQA 1, 3, 4, 7, 9, 19, 39.
  start = arch.preset("surefire-1b").replace(n_heads=32, n_kv_heads=8)
  losses = {4: 2.80, 7: 2.81, 9: 2.79, 19: 2.70, 39: 2.70}  # worse at 7, better again later
  calls = []
  evaluate = lambda spec: calls.append(spec.gqa) or losses[spec.gqa]
  trace = search.gqa_local_search(start, search.RooflineEfficiency(), evaluate, 39, index=2)
  assert [(s.gqa, s.loss, s.accepted) for s in trace] == [(4, 2.80, True), (7, 2.81, False)]
  assert calls == [4, 7] and {s.start for s in trace} == {2}
  assert all(s.spec.non_embedding_params == start.non_embedding_params for s in trace)
  # Without an evaluator GQA is loss-neutral: every value from start's up to max_gqa, accepted.
  neutral = search.gqa_local_search(start, search.RooflineEfficiency(), None, 19)
  assert [(s.gqa, s.loss, s.accepted) for s in neutral] == [(g, None, True) for g in (4, 7, 9, 19)]


def _fingerprint(result):
  """A search result as (exact fields, floats, the continuous optima's floats)."""
  shape = lambda s: tuple(getattr(s, f) for f in search.SHAPE_COLUMNS[:6])
  c = result.candidates
  exact = {
      "picks": {name: shape(spec) for name, spec in result.picks().items()},
      "trace": [(s.start, s.spec.d_model, s.gqa, s.loss, s.accepted) for s in result.gqa_trace],
      "continuous": [(o.gqa, o.feasible) for o in result.continuous],
      "notes": result.notes,
      "table": (c.shape, int(c["meets_target"].sum()), int(c["admissible"].sum()),
                int(c["pareto"].sum())),
  }
  floats = {
      "target": result.target, "optimum": result.optimum,
      "trace_efficiency": sum(s.efficiency for s in result.gqa_trace),
      "loss_sum": c["loss"].sum(), "efficiency_sum": c["efficiency"].sum(),
      "pareto_efficiency_sum": c.loc[c["pareto"], "efficiency"].sum(),
  }
  return exact, floats, [(o.x, o.r, o.predicted_loss, o.efficiency) for o in result.continuous]


# Recorded from search.search before it was split into its steps (the 127-line version), under
# conftest.py's XLA flags.
BEFORE_1B = (
    {"picks": {"baseline": (16, 2048, 32, 8, 64, 8192), "panda": (16, 2560, 72, 18, 64, 4096),
               "algorithm1_step2": (16, 3712, 20, 5, 64, 4352),
               "algorithm1": (16, 2816, 28, 2, 64, 5888),
               "surefire": (16, 2560, 32, 2, 64, 6400)},
     "trace": [(0, 3712, 4, None, True), (1, 4096, 4, None, True), (2, 4352, 4, None, True)]
              + [(i, d, g, None, True) for i, d in ((3, 2816), (4, 2944), (5, 3072), (6, 3328),
                                                    (7, 3584)) for g in (4, 5, 9, 14)],
     "continuous": [(1, True), (2, True), (4, True), (8, True), (16, True)],
     "notes": ["no L_opt given: losses are relative (L / L_opt)",
               "GQA is not in the law and no gqa_loss evaluator was given: GQA assumed "
               "loss-neutral up to max_gqa=16",
               "Surefire (d=2560, f=6400, GQA 16) is +0.5% over Algorithm 1's pick (d=2816, GQA "
               "14): step 3 varies GQA only at exact parameter count from step 2's best shapes, "
               "whose head counts allowed GQA [4, 5, 9, 14]; Surefire is the front's most "
               "efficient shape meeting the target"],
     "table": ((3770, 18), 1536, 3770, 43)},
    {"target": 1.0157219500350207, "optimum": (0.08008213552361396, 1.0317460317460316),
     "trace_efficiency": 224570.369829573, "loss_sum": 3949.406370645445,
     "efficiency_sum": 12637677.0228483, "pareto_efficiency_sum": 581565.7113045811},
    [(0.12466643430764607, 3.9228103393272113, 1.015722206155647, 4846.885529670537),
     (0.12263820055114508, 3.9971638666917646, 1.0157221762228208, 6386.290705665409),
     (0.11891420002317113, 4.133188886827835, 1.0157221359431612, 8568.416054055995),
     (0.11284504267713223, 4.351253550737123, 1.0157220892705185, 11116.938162505996),
     (0.10455599987844989, 4.632714554033583, 1.0157220471359838, 13521.446660302583)])
BEFORE_CPU = (
    {"picks": {"baseline": (4, 56, 12, 3, 16, 736), "panda": (4, 104, 4, 4, 16, 400),
               "algorithm1_step2": (4, 144, 3, 3, 16, 280),
               "algorithm1": (4, 144, 4, 2, 16, 280), "surefire": (4, 144, 4, 2, 16, 280)},
     "trace": [(i, d, g, loss, g < 5) for i, d in ((0, 144), (1, 136), (2, 152))
               for g, loss in ((1, 1.0), (2, 1.0), (5, 1.001))],
     "continuous": [(1, True), (2, True), (4, True)],
     "notes": ["no L_opt given: losses are relative (L / L_opt)",
               "the law's optimum lies outside the searched region (r = 12 is outside [0.5, 5]): "
               "Panda is the lowest predicted loss among the candidates (d/sqrt(N) = 0.134, "
               "r = 4.688)"],
     "table": ((836, 18), 245, 404, 4)},
    {"target": 0.9645074385457161, "optimum": (0.1336306209562122, 4.6875),
     "trace_efficiency": 6857748.768642526, "loss_sum": 830.677627501193,
     "efficiency_sum": 141245090.75418764, "pareto_efficiency_sum": 1920619.823073205},
    [(0.24870800168690346, 4.982142857142858, 0.9396540077342416, 631146.3970393207),
     (0.24870800168690346, 4.982142857142858, 0.9396540077342416, 930050.9389142668),
     (0.24870800168690346, 4.982142857142858, 0.9396540077342416, 1497357.6887706297)])


def _assert_same(result, before):
  exact, floats, continuous = _fingerprint(result)
  assert exact == before[0]
  for name, value in before[1].items():  # float64 sums: equal up to the order of summation
    assert np.asarray(floats[name]) == pytest.approx(np.asarray(value), rel=1e-12), name
  # jaxopt's 800 iterates move by ~4e-9 with XLA's optimisation level (recorded at conftest.py's
  # level 0); the search is identical either way, so allow for that.
  assert np.asarray(continuous) == pytest.approx(np.asarray(before[2]), rel=1e-7)


def test_search_returns_what_it_returned_before_its_steps_were_split(result_1b):
  _assert_same(result_1b, BEFORE_1B)
  # Panda from the candidates (the law's r* = 12 lies outside r_range), step 2 at GQA 1, and an
  # evaluator that rejects GQA above 2.
  law = ConditionalLaw("multiplicative", (1.0, 0.1, 0.015, 1.0, 0.005, 0.06))
  result = search.search(law, 6e5, CPU_TOKENS, 4, 16, baseline=CPU_BASELINE, gqas=(1, 2, 4),
                         ffn_step=8, vocab_size=512, r_range=(0.5, 5.0),
                         d_models=list(range(40, 200, 8)), baseline_gqa=1, gqa_starts=3,
                         gqa_loss=lambda spec: 1.0 + 0.001 * (spec.gqa > 2))
  _assert_same(result, BEFORE_CPU)


def test_measured_and_callable_efficiency():
  llama, sure = arch.preset("llama3.2-1b"), arch.preset("surefire-1b")
  records = [{**llama.describe(), "batch": 8, "output_tokens_per_s": 100.0},
             {**llama.describe(), "batch": 8, "output_tokens_per_s": 120.0},
             {**llama.describe(), "batch": 64, "output_tokens_per_s": 999.0}]
  measured = search.MeasuredEfficiency.from_records(records, batch=8)
  got = measured.many([llama, sure])
  assert got[0] == 110.0 and np.isnan(got[1])
  with pytest.raises(ValueError, match="no measurement at batch 2"):
    search.MeasuredEfficiency.from_records(records, batch=2)
  with pytest.raises(ValueError, match="lacks"):
    search.MeasuredEfficiency.from_records([{"d_model": 1}])
  assert search.as_efficiency(lambda s: s.gqa).many([sure]).tolist() == [9.0]


def test_bad_inputs_say_what_is_wrong():
  with pytest.raises(ValueError, match="below the law's minimum achievable"):
    search.search(LAW, N_1B, 1e11, 16, 64, loss_target=0.9)
  with pytest.raises(ValueError, match="no architecture within .* closest"):
    search.search(LAW, N_1B, 1e11, 16, 64, baseline="llama3.2-1b", d_models=[2000],
                  tolerance=1e-6)
  with pytest.raises(ValueError, match="per layer, less than the smallest layer"):
    search.search(LAW, 1e5, 1e11, 64, 128, baseline="llama3.2-1b")
  with pytest.raises(ValueError, match="loss_target or a baseline"):
    search.search(LAW, N_1B, 1e11, 16, 64)


def test_exports_train_config_hf_and_maxtext(tmp_path, monkeypatch):
  spec = arch.preset("surefire-1b")
  paths = export.export(spec, "surefire", str(tmp_path))
  assert arch.load_json(paths["arch"]) == spec
  hf = json.loads(open(paths["hf"]).read())
  # Parameter count from the HF config's own fields, by the LLaMA formula.
  h, i, L, hd = hf["hidden_size"], hf["intermediate_size"], hf["num_hidden_layers"], hf["head_dim"]
  q, kv = hf["num_attention_heads"] * hd, hf["num_key_value_heads"] * hd
  assert L * (2 * h * q + 2 * h * kv + 3 * h * i) == spec.non_embedding_params
  maxtext = dict(line.split(": ", 1) for line in open(paths["maxtext"]).read().splitlines()
                 if not line.startswith("#"))
  assert (int(maxtext["base_emb_dim"]), int(maxtext["base_num_query_heads"]),
          int(maxtext["base_num_kv_heads"]), int(maxtext["base_mlp_dim"]),
          int(maxtext["head_dim"])) == (2560, 36, 4, 6144, 64)
  from lawsearch import configlib
  monkeypatch.setenv("LAWSEARCH_TRAIN_CONFIG", str(
      __import__("pathlib").Path(__file__).parents[1] / "configs" / "train.py"))
  config = configlib.load(paths["config"] + ":recipe=paper")
  assert arch.ArchSpec(**config.model.arch) == spec
  assert config.train.tokens == 100 * spec.non_embedding_params  # the paper's recipe at this N


def test_cli_search_writes_results_and_bad_input_exits_2(tmp_path):
  out = tmp_path / "s"
  run = lambda *a: subprocess.run([sys.executable, "-m", "lawsearch.cli", "search", *a],
                                  capture_output=True, text=True)
  ok = run("--params", "1e9", "--tokens", "1e11", "--layers", "16", "--head-dim", "64",
           "--baseline", "llama3.2-1b", "--out", str(out))
  assert ok.returncode == 0, ok.stderr
  assert "surefire" in ok.stdout and "panda" in ok.stdout
  doc = json.loads((out / "search.json").read_text())
  assert doc["picks"]["surefire"]["meets_target"] and len(doc["candidates"]) > 100
  assert (out / "pareto.png").stat().st_size > 10_000
  assert (out / "surefire.hf_config.json").exists()
  bad = run("--params", "1e9", "--tokens", "1e11", "--layers", "16", "--head-dim", "64",
            "--target", "0.5", "--out", str(out))
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1].startswith("lawsearch: error: loss target")


def test_a_law_without_interior_minimum_still_searches():
  # b1 < 0: the r factor falls over the whole range, so the law has no optimum in r; Panda is then
  # the candidates' lowest predicted loss, at the searched region's edge in r, and said so.
  law = ConditionalLaw("multiplicative", (1.0, 0.1, 0.015, 1.0, -0.002, 0.07))
  with pytest.raises(ValueError, match="no interior minimum"):
    law.optimum()
  result = search.search(law, 6e5, 1.2e7, 4, 16, baseline=CPU_BASELINE, gqas=(1, 2, 4),
                         ffn_step=8, vocab_size=512, r_range=(0.5, 5.0),
                         d_models=list(range(40, 200, 8)))
  table = result.candidates
  best = table.loc[table["loss"].idxmin()]
  assert result.locate(result.panda)["loss"] == pytest.approx(
      table[table["gqa"] == CPU_BASELINE.gqa]["loss"].min())
  assert best["mlp_attn_ratio"] > 4  # the edge of r in [0.5, 5]
  assert any("no interior minimum" in n for n in result.notes)
  assert result.locate(result.surefire)["loss"] <= result.target * (1 + 1e-12)


def test_an_optimum_outside_the_searched_region_gives_the_regions_best_panda():
  # r* = b2 / b1 = 12 lies beyond r_range: Panda is the region's lowest predicted loss, not a shape
  # built at the law's extrapolated optimum.
  law = ConditionalLaw("multiplicative", (1.0, 0.1, 0.015, 1.0, 0.005, 0.06))
  assert law.optimum()[1] == pytest.approx(12.0)
  result = search.search(law, 6e5, 1.2e7, 4, 16, baseline=CPU_BASELINE, gqas=(1, 2, 4),
                         ffn_step=8, vocab_size=512, r_range=(0.5, 5.0),
                         d_models=list(range(40, 200, 8)))
  assert result.panda.mlp_attn_ratio <= 5.0
  assert any("outside the searched region" in n for n in result.notes)
