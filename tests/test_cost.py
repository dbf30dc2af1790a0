"""Inference cost: FLOPs and bytes against hand-written closed forms; roofline behaviour."""

import numpy as np
import pytest

from lawsearch import arch, cost

LLAMA_1B = arch.preset("llama3.2-1b")


def test_paper_flops_closed_form_llama_1b():
  # PAPER.md: n_layers*(2*d*d_q + 4*d*d_kv + 2*d*d_q + 2*T*d_q + 6*d*f), written out by hand.
  L, d, dq, dkv, f, T = 16, 2048, 32 * 64, 8 * 64, 8192, 4096
  by_hand = L * (2 * d * dq + 4 * d * dkv + 2 * d * dq + 2 * T * dq + 6 * d * f)
  assert cost.inference_flops_per_token(LLAMA_1B, T, "paper") == by_hand


def test_physical_flops_adds_pv_and_logits():
  L, d, dq, V, T = 16, 2048, 2048, 128256, 1000
  paper = cost.inference_flops_per_token(LLAMA_1B, T, "paper")
  physical = cost.inference_flops_per_token(LLAMA_1B, T, "physical")
  assert physical - paper == 2 * L * T * dq + 2 * d * V


def test_prefill_flops_is_sum_of_per_token_flops():
  spec = arch.preset("tiny")
  S = 37
  per_token = sum(cost.inference_flops_per_token(spec, t, "physical") for t in range(1, S + 1))
  logits_all_but_last = (S - 1) * 2 * spec.d_model * spec.vocab_size
  assert np.isclose(cost.prefill_flops(spec, S, "physical"), per_token - logits_all_but_last)


def test_kv_and_weight_bytes():
  assert cost.kv_cache_bytes_per_token(LLAMA_1B, 2) == 2 * 16 * 8 * 64 * 2  # 32 KiB per token
  assert cost.weight_bytes(LLAMA_1B, 2) == 2 * 1_235_814_400
  assert cost.kv_cache_bytes_per_token(arch.preset("surefire-1b")) == 2 * 16 * 4 * 64 * 2


def test_bad_form_and_hardware():
  with pytest.raises(ValueError, match="form must be"):
    cost.inference_flops_per_token(LLAMA_1B, 10, "exact")
  with pytest.raises(ValueError, match="a100-40gb"):
    cost.hardware("a200")
  with pytest.raises(ValueError, match="batch must be"):
    cost.roofline_throughput(LLAMA_1B, "h200", 0)


def test_roofline_batch_one_is_weight_bandwidth_bound():
  hw = cost.hardware("a100-40gb")
  t = cost.roofline_throughput(LLAMA_1B, hw, 1, 4096, 1024)
  steps = np.arange(1, 1024)
  bytes_ = cost.weight_bytes_read_per_step(LLAMA_1B) + (4096 + steps) * cost.kv_cache_bytes_per_token(LLAMA_1B)
  assert np.isclose(t.decode_s, bytes_.sum() / hw.hbm_bandwidth)
  assert np.isclose(t.output_tokens_per_s, 1024 / (t.prefill_s + t.decode_s))


def _gqa_variants():
  base = arch.preset("surefire-1b")
  return [arch.with_gqa(base, g) for g in arch.exact_param_gqa_values(base)]


def test_throughput_rises_with_gqa_at_fixed_params():
  rates = [cost.roofline_throughput(s, "a100-40gb", 32).output_tokens_per_s for s in _gqa_variants()]
  assert all(b > a for a, b in zip(rates, rates[1:])), rates


def test_throughput_rises_with_r_at_fixed_params():
  specs = [arch.from_budget(970e6, n_layers=16, head_dim=64, d_model=2048, r=r, gqa=4)
           for r in (0.5, 1.0, 2.0, 4.0, 8.0)]
  # One KV group (5 heads) or one ffn step is ~2.5% of N here: the budget holds to that grain.
  assert all(abs(s.non_embedding_params / 970e6 - 1) < 0.025 for s in specs)
  rates = [cost.roofline_throughput(s, "h200", 64).output_tokens_per_s for s in specs]
  assert all(b > a for a, b in zip(rates, rates[1:])), rates


def test_kv_cache_that_cannot_fit_is_reported():
  t = cost.roofline_throughput(LLAMA_1B, "a100-40gb", 4096, 4096, 1024)
  assert not t.fits and t.output_tokens_per_s == 0.0
  # 0.9 * 40 GiB - weights, over 5120 tokens of 32 KiB each.
  expected = int((0.9 * 40 * 2**30 - 2 * 1_235_814_400) // (5120 * 32768))
  assert t.max_batch == expected
  ok = cost.roofline_throughput(LLAMA_1B, "a100-40gb", expected, 4096, 1024)
  assert ok.fits and ok.output_tokens_per_s > 0
  huge = arch.preset("qwen3-8b")
  assert cost.max_batch(huge, cost.hardware("tpu-v5e"), 5120) == 0  # 16 GiB holds no 8B bf16 weights


def test_efficiency_scales_time():
  full = cost.roofline_throughput(LLAMA_1B, "h200", 8)
  half = cost.roofline_throughput(LLAMA_1B, "h200", 8, efficiency=cost.Efficiency(0.5, 0.5))
  assert np.isclose(half.total_s, 2 * full.total_s)
  with pytest.raises(ValueError, match="fraction of peak"):
    cost.Efficiency(memory=1.5)


def test_roofline_on_stacked_and_relaxed_shapes_matches_per_spec():
  specs = [arch.preset(n) for n in ("llama3.2-1b", "panda-1b", "surefire-1b")]
  hw = cost.hardware("a100-40gb")
  prefill, decode = cost.roofline_times(arch.stack(specs), hw, 16, 512, 128)
  for i, spec in enumerate(specs):
    t = cost.roofline_throughput(spec, hw, 16, 512, 128)
    assert np.isclose(prefill[i], t.prefill_s) and np.isclose(decode[i], t.decode_s)
  # The continuous relaxation through each spec's own (x, r, gqa) gives the same times.
  x = np.array([s.d_over_sqrt_n for s in specs])
  r = np.array([s.mlp_attn_ratio for s in specs])
  g = np.array([s.gqa for s in specs])
  n = np.array([s.non_embedding_params for s in specs], np.float64)
  relaxed = arch.relaxed(n, n_layers=16, head_dim=64, x=x, r=r, gqa=g, vocab_size=128256)
  prefill_r, decode_r = cost.roofline_times(relaxed, hw, 16, 512, 128)
  np.testing.assert_allclose(prefill_r, prefill, rtol=1e-12)
  np.testing.assert_allclose(decode_r, decode, rtol=1e-12)


@pytest.mark.parametrize("kind,name", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"), ("NVIDIA H200", "h200"),
    ("NVIDIA A100-SXM4-40GB", "a100-40gb"), ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
    ("TPU v5 lite", "tpu-v5e"), ("TPU v5e", "tpu-v5e"), ("TPU v5", "tpu-v5p"),
    ("TPU v5p", "tpu-v5p"), ("TPU v6 lite", "tpu-v6e"), ("cpu", None), ("NVIDIA L4", None)])
def test_one_map_from_device_kind_to_hardware(kind, name):
  from lawsearch.train.metrics import peak_flops

  hw = cost.hardware_for_device(kind)
  assert (hw.name if hw else None) == name
  assert peak_flops(kind) == (hw.peak_flops if hw else None)
