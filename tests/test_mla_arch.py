"""MLA in the architecture space: ArchSpec accounting against DeepSeek's published numbers and a
hand count, validation, the cost model's absorbed and naive decode FLOPs, and the sweep and train configs of MLA shapes."""

import math
from pathlib import Path

import pytest

from lawsearch import arch, configlib, cost
from lawsearch.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_deepseek_v3_attention_matches_published_counts():
  # DeepSeek-V3 technical report / config.json: 187,107,328 attention parameters per layer
  # (q_lora 1536, kv_lora 512, 128 heads of nope 128 + rope 64, v 128, d 7168) and 576 cached
  # elements per token per layer, against 2*128*128 = 32,768 for multi-head attention.
  v3 = arch.preset("deepseek-v3-dense")
  assert v3.attn_params_per_layer == 187_107_328
  assert v3.kv_cache_width == 576
  mha = arch.ArchSpec(61, 7168, 128, 128, 128, 18432, 129280, tie_embeddings=False)
  assert mha.kv_cache_width == 32_768
  assert cost.kv_cache_bytes_per_token(v3, 2) == 61 * 576 * 2


def test_v2_lite_attention_by_hand():
  # No query compression: wq 2048*16*192, wkv_a 2048*(512+64), norm 512, wkv_b 512*16*(128+128),
  # wo 16*128*2048.
  lite = arch.preset("deepseek-v2-lite-dense")
  by_hand = (2048 * 16 * 192 + 2048 * 576 + 512 + 512 * 16 * 256 + 16 * 128 * 2048)
  assert lite.attn_params_per_layer == by_hand == 13_763_072
  assert lite.mlp_attn_ratio == 3 * 2048 * 10944 / by_hand
  n = 27 * (by_hand + 3 * 2048 * 10944)
  assert lite.non_embedding_params == n and lite.d_over_sqrt_n == 2048 / math.sqrt(n)


def test_fields_are_every_field_and_reprs_leave_out_defaults():
  spec = arch.preset("llama3.2-1b")
  assert list(spec.fields()) == ["n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim",
                                 "ffn_dim", "vocab_size", "tie_embeddings", "attention",
                                 "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim",
                                 "qk_rope_head_dim", "v_head_dim", "mlp", "n_experts", "top_k",
                                 "expert_ffn_dim", "n_shared_experts", "first_dense_layers",
                                 "router", "norm_topk_prob"]
  assert "kv_lora_rank" not in repr(spec) and "kv_lora_rank=32" in repr(arch.preset("nano-mla"))
  assert "kv_cache_width" not in spec.describe()
  mla = arch.preset("nano-mla")
  assert mla.fields()["attention"] == "mla" and mla.fields()["kv_lora_rank"] == 32
  assert arch.from_fields(mla.describe()) == mla and arch.from_fields(spec.describe()) == spec


@pytest.mark.parametrize("changes,match", [
    (dict(kv_lora_rank=8), "apply to attention='mla' only"),
    (dict(attention="mqa"), "choose one of"),
    (dict(attention="mla"), "needs a positive kv_lora_rank"),
])
def test_validation_names_the_fields(changes, match):
  with pytest.raises(UserError, match=match):
    arch.ArchSpec(2, 64, 4, 4, 24, 192, 512, **changes)


def test_mla_head_dim_must_be_nope_plus_rope():
  with pytest.raises(UserError, match="head_dim = qk_nope_head_dim"):
    arch.ArchSpec(2, 64, 4, 4, 16, 192, 512, attention="mla", kv_lora_rank=32,
                  qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
  with pytest.raises(UserError, match="even qk_rope_head_dim"):
    arch.mla(2, 64, 4, 192, 512, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=7,
             v_head_dim=16)


def test_mla_sweep_config_builds_mla_shapes_with_their_rules():
  config = configlib.load(f"{ROOT}/lawsearch/configs/sweep.py:recipe=cpu,scales=80k,"
                          "attention=mla,kv_lora_rank=32,x=0.1+0.13,r=1")
  assert len(config.runs) == 2 and all("attention=mla" in r for r in config.runs)
  train = configlib.load(f"{ROOT}/lawsearch/configs/train.py:{config.runs[1]}")
  spec = arch.ArchSpec(**train.model.arch)
  assert spec.is_mla and spec.kv_lora_rank == 32 and spec.head_dim == 24
  assert abs(spec.non_embedding_params / 8e4 - 1) < 0.05
  assert ("kv_lora", None) in [tuple(r) for r in train.sharding_rules]


def test_mla_from_budget_hits_the_budget():
  dims = arch.MlaDims(kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32)
  spec = arch.mla_from_budget(20e6, n_layers=8, d_model=512, r=2.0, dims=dims, ffn_step=64)
  assert abs(spec.non_embedding_params / 20e6 - 1) < 0.02
  assert abs(math.log(spec.mlp_attn_ratio / 2.0)) < 0.05
  found = arch.enumerate_mla_candidates(20e6, n_layers=8, d_models=[512], dims=[dims],
                                        ffn_step=64, tolerance=0.01)
  assert found and all(abs(s.non_embedding_params / 20e6 - 1) <= 0.01 for s in found)


def test_decode_flops_absorbed_and_naive_by_hand():
  v3, t = arch.preset("deepseek-v3-dense"), 4096
  n, layers, heads = v3.non_embedding_params, 61, 128
  # absorbed: scores over the latent and RoPE key (512 + 64), values latent (512)
  assert cost.inference_flops_per_token(v3, t, "physical") == (
      2 * n + 2 * layers * t * heads * (576 + 512) + 2 * 7168 * 129280)
  assert cost.inference_flops_per_token(v3, t, "paper") == 2 * n + 2 * layers * t * heads * 576
  # naive: wkv_b (512 x 128 x 256) on every cached latent, then full heads (192 q.k, 128 p.v)
  wkv_b = 512 * 128 * 256
  assert cost.mla_naive_flops_per_token(v3, t, "physical") == (
      2 * (n - layers * wkv_b) + 2 * layers * t * (wkv_b + heads * 192 + heads * 128)
      + 2 * 7168 * 129280)
  assert cost.mla_naive_flops_per_token(v3, t) > 10 * cost.inference_flops_per_token(v3, t)


def test_gqa_cost_is_the_papers_formula():
  spec, t = arch.preset("llama3.2-1b"), 1000
  d_q = 32 * 64
  assert cost.inference_flops_per_token(spec, t, "physical") == (
      2 * spec.non_embedding_params + 4 * 16 * t * d_q + 2 * 2048 * 128256)
  assert cost.kv_cache_bytes_per_token(spec, 2) == 2 * 16 * 8 * 64 * 2
  stacked = arch.stack([spec, arch.preset("nano-mla")])
  assert list(stacked.mlp_attn_ratio) == [spec.mlp_attn_ratio,
                                          arch.preset("nano-mla").mlp_attn_ratio]
