"""Mixtures of experts in the architecture space: ArchSpec accounting against the published totals
of four MoE models and a hand count, validation, dense run identities untouched, and the cost
model's active FLOPs, distinct-expert weight bytes (against a simulated router) and memory."""

import json
import math

import numpy as np
import pytest

from lawsearch import arch, configlib, cost, rundir
from lawsearch.hf import config as hf_config
from lawsearch.errors import UserError

# Published parameter counts (billions): total, active (model cards / technical reports; DeepSeek-V3
# without its multi-token-prediction module). Embeddings and the output head are counted in both.
PUBLISHED = {"mixtral-8x7b": (46.7, 12.9), "qwen3-30b-a3b": (30.5, 3.3),
             "olmoe-1b-7b": (6.9, 1.3), "deepseek-v3": (671.0, 37.0)}
TINY = arch.moe(arch.ArchSpec(4, 64, 4, 2, 16, 256, 512), n_experts=8, top_k=2, expert_ffn_dim=32,
                n_shared_experts=1, first_dense_layers=1)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_presets_match_their_published_counts(name):
  spec, (total, active) = arch.preset(name), PUBLISHED[name]
  # Published figures are rounded to two or three digits (3.3B and 1.3B: +-1.5%); DeepSeek's
  # "37B" is 37.55B with both embedding matrices counted (36.6B without the input embedding).
  assert spec.total_params / 1e9 == pytest.approx(total, rel=0.005)
  assert spec.active_params / 1e9 == pytest.approx(active, rel=0.02)
  assert spec.is_moe and spec.active_params < spec.total_params


def test_a_tiny_moe_counted_by_hand():
  d, attn = 64, 2 * 64 * 64 + 2 * 64 * 32  # Wq, Wo (4 heads of 16) + Wk, Wv (2 kv heads)
  dense_mlp, expert, router = 3 * d * 256, 3 * d * 32, d * 8
  assert TINY.moe_layers == 3 and TINY.expert_params == expert
  assert TINY.non_embedding_params == 4 * attn + dense_mlp + 3 * (8 * expert + expert + router)
  active_mlp = dense_mlp + 3 * (2 * expert + expert + router)
  assert TINY.active_non_embedding_params == 4 * attn + active_mlp
  assert TINY.mlp_attn_ratio == pytest.approx(active_mlp / (4 * attn))  # r on active parameters
  assert TINY.granularity == 8.0
  assert TINY.d_over_sqrt_n == pytest.approx(d / math.sqrt(TINY.non_embedding_params))
  assert TINY.d_over_sqrt_n_active == pytest.approx(d / math.sqrt(TINY.active_non_embedding_params))
  describe = TINY.describe()
  assert describe["active_params"] == TINY.active_params and describe["moe_layers"] == 3


def test_dense_specs_are_their_own_moe_limit():
  dense = arch.preset("llama3.2-1b")
  assert not dense.is_moe and dense.moe_layers == 0 and dense.granularity == 1.0
  assert dense.active_non_embedding_params == dense.non_embedding_params
  assert dense.mlp_params == dense.n_layers * dense.mlp_params_per_layer
  assert repr(dense).endswith("tie_embeddings=True)")  # the MoE defaults are not printed


@pytest.mark.parametrize("changes,match", [
    (dict(n_experts=8), "apply to mlp='moe' only"),
    (dict(router="sigmoid"), "apply to mlp='moe' only"),
    (dict(mlp="experts"), "choose one of"),
    (dict(mlp="moe", n_experts=8, top_k=9, expert_ffn_dim=32), "between 1 and n_experts=8"),
    (dict(mlp="moe", n_experts=8, top_k=0, expert_ffn_dim=32), "between 1 and n_experts"),
    (dict(mlp="moe", n_experts=0, top_k=1, expert_ffn_dim=32), "n_experts >= 1"),
    (dict(mlp="moe", n_experts=8, top_k=2, expert_ffn_dim=32, first_dense_layers=4),
     "leaves no MoE layer"),
    (dict(mlp="moe", n_experts=8, top_k=2, expert_ffn_dim=32, router="relu"), "choose one of"),
    (dict(mlp="moe", n_experts=8, top_k=2, expert_ffn_dim=-1), "non-negative integer"),
])
def test_bad_moe_fields_are_refused_by_name(changes, match):
  with pytest.raises(UserError, match=match):
    arch.ArchSpec(4, 64, 4, 2, 16, 256, 512).replace(**changes)


def test_moe_combines_with_mla_and_dense_identities_are_unchanged():
  v3 = arch.preset("deepseek-v3")
  assert v3.is_mla and v3.is_moe and v3.router == "sigmoid"
  assert arch.from_fields(v3.describe()) == v3
  config = configlib.load("configs/train.py:preset=nano,data=synthetic")
  identity = rundir.RunIdentity.of(config)
  assert not any(k.split(".")[-1] in arch.MOE_FIELDS + ("mlp", "router")
                 for k in identity.fields)  # left out at their defaults: dense names unchanged


def test_a_recipe_sizes_a_moe_run_by_its_active_parameters(tmp_path):
  from lawsearch.recipe import CPU_V2  # pylint: disable=import-outside-toplevel

  dense = arch.ArchSpec(4, 32, 5, 5, 16, 104, 512)
  moe = arch.moe(dense, n_experts=8, top_k=2, expert_ffn_dim=52)
  assert moe.non_embedding_params > 2 * moe.active_non_embedding_params  # every expert counted
  (tmp_path / "moe.arch.json").write_text(json.dumps(moe.describe()))
  config = configlib.load(f"configs/train.py:arch={tmp_path / 'moe.arch.json'},recipe=cpu_v2")
  n = moe.active_non_embedding_params
  assert config.train.tokens == CPU_V2.tokens(n)
  assert config.train.batch_size == CPU_V2.batch_size(n)
  assert config.optimizer.peak_lr == pytest.approx(CPU_V2.peak_lr(n, moe.d_model / math.sqrt(n)))


def test_moe_runs_of_a_sweep_are_named_by_their_experts():
  from lawsearch.train import sweep  # pylint: disable=import-outside-toplevel

  files = "+".join(f"experiments/moe_cpu/{n}.arch.json" for n in ("dense", "moe-e8"))
  config = configlib.load(f"configs/sweep.py:recipe=cpu_v2,arch={files},seeds=2")
  assert [name for name, _ in sweep.expand(config)] == [
      "N0.0809M-d32-f104-h5x5", "N0.0809M-d32-f104-h5x5-s1",  # dense names as before
      "N0.202M-d32-f104-h5x5-e8k2f52", "N0.202M-d32-f104-h5x5-e8k2f52-s1"]


def _simulated_touched(n_experts: int, top_k: int, batch: int, trials: int, rng) -> np.ndarray:
  """Distinct experts a batch touches, each token picking top_k distinct experts at random."""
  picks = np.argsort(rng.random((trials, batch, n_experts)), axis=-1)[..., :top_k]
  return np.array([len(np.unique(p)) for p in picks.reshape(trials, -1)])


@pytest.mark.parametrize("n_experts,top_k,batch", [(8, 2, 1), (8, 2, 4), (64, 8, 8),
                                                    (128, 8, 16), (256, 8, 32)])
def test_distinct_experts_match_a_simulated_router(n_experts, top_k, batch):
  sim = _simulated_touched(n_experts, top_k, batch, 2000, np.random.default_rng(0))
  expected = arch.experts_touched(n_experts, top_k, batch)
  assert abs(sim.mean() - expected) < 4 * sim.std() / math.sqrt(len(sim)) + 1e-9


def test_distinct_experts_limits():
  assert arch.experts_touched(64, 8, 1) == pytest.approx(8)  # B = 1: top_k
  assert arch.experts_touched(64, 8, 10_000) == pytest.approx(64)  # B -> infinity: every expert
  assert arch.experts_touched(0, 0, 32) == 0  # dense
  grows = [arch.experts_touched(64, 8, b) for b in (1, 2, 4, 8, 16, 32)]
  assert all(a < b for a, b in zip(grows, grows[1:]))


def test_a_mixtral_decode_step_by_hand():
  spec, bpe = arch.preset("mixtral-8x7b"), 2
  layers, d, vocab = 32, 4096, 32000
  attn, expert, router = 2 * d * 4096 + 2 * d * 1024, 3 * d * 14336, d * 8
  norms, head = (2 * layers + 1) * d, vocab * d
  # Batch 1 reads two experts per layer; batch 4 reads 8 * (1 - (6/8)^4) of them.
  for batch, touched in ((1, 2.0), (4, 8 * (1 - 0.75 ** 4))):
    want = (layers * (attn + router + touched * expert) + norms + head) * bpe
    assert cost.weight_bytes_read_per_step(spec, bpe, batch) == pytest.approx(want)
  # FLOPs per token: 2 * active parameters (paper form, no context), not 2 * total.
  assert cost.inference_flops_per_token(spec, 0) == pytest.approx(
      2 * layers * (attn + router + 2 * expert))
  assert cost.prefill_flops(spec, 1, form="paper") == pytest.approx(
      2 * spec.active_non_embedding_params + 2 * layers * spec.attn_width)
  # Memory holds every expert: 93 GB of bf16 weights fit no A100-40GB.
  assert cost.weight_bytes(spec) == pytest.approx(spec.total_params * 2)
  assert not cost.roofline_throughput(spec, "a100-40gb", 1).fits


def test_the_breakdown_splits_experts_and_matches_the_roofline_step():
  spec, hw = arch.preset("deepseek-v3"), cost.hardware("h200")
  step = cost.decode_breakdown(spec, hw, batch=16, context_len=4096)
  assert step.flops["experts"] == pytest.approx(2 * 16 * 58 * 8 * spec.expert_params)
  assert step.bytes["shared"] == pytest.approx(58 * spec.expert_params * 2)
  assert step.bytes["router"] == pytest.approx(58 * spec.router_params_per_layer * 2)
  assert step.bytes["mlp"] == pytest.approx(3 * spec.mlp_params_per_layer * 2)
  weights = sum(v for k, v in step.bytes.items() if k != "attn_cache")
  assert weights == pytest.approx(cost.weight_bytes_read_per_step(spec, 2, 16))
  dense = cost.decode_breakdown(arch.preset("llama3.2-1b"), hw, batch=16, context_len=4096)
  assert not set(cost.MOE_COMPONENTS) & set(dense.bytes)  # a dense step has no expert parts


def test_moe_shapes_export_as_mixtral_where_mixtral_computes_them(tmp_path):
  from lawsearch import export  # pylint: disable=import-outside-toplevel
  from lawsearch.hf import config as hf_config  # pylint: disable=import-outside-toplevel

  with pytest.raises(UserError, match="n_shared_experts=1, first_dense_layers=1\\) has no "
                     "transformers class"):
    hf_config.hf_config(TINY)
  assert set(export.export(TINY, "tiny_moe", str(tmp_path))) == {"arch", "config"}
  assert arch.load_json(str(tmp_path / "tiny_moe.arch.json")) == TINY
  # Mixtral-8x7B against its published config.json and MaxText's configs/models/mixtral-8x7b.yml
  # (RoPE theta and the vocabulary's ids are lawsearch's own: not compared).
  paths = export.export(arch.preset("mixtral-8x7b"), "mixtral", str(tmp_path))
  hf = json.loads(open(paths["hf"]).read())
  assert {k: hf[k] for k in ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
                             "num_attention_heads", "num_key_value_heads", "num_local_experts",
                             "num_experts_per_tok", "vocab_size", "tie_word_embeddings")} == {
      "model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336,
      "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
      "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000,
      "tie_word_embeddings": False}
  maxtext = dict(line.split(": ", 1) for line in open(paths["maxtext"]).read().splitlines()
                 if not line.startswith("#"))
  published = {"base_emb_dim": "4096", "base_num_query_heads": "32", "base_num_kv_heads": "8",
               "base_mlp_dim": "14336", "base_moe_mlp_dim": "14336",
               "base_num_decoder_layers": "32", "head_dim": "128", "vocab_size": "32000",
               "logits_via_embedding": "False", "num_experts": "8", "num_experts_per_tok": "2",
               "decoder_block": '"mixtral"'}
  assert {k: maxtext[k] for k in published} == published


def test_a_mixture_keeps_the_dense_shapes_active_size():
  dense = arch.ArchSpec(n_layers=4, d_model=40, n_heads=5, n_kv_heads=5, head_dim=16, ffn_dim=96,
                        vocab_size=512)
  made = arch.mixture(dense, 16, 4)
  assert (made.n_experts, made.top_k, made.expert_ffn_dim, made.granularity) == (16, 4, 24, 4.0)
  router = dense.n_layers * dense.d_model * 16
  assert made.active_non_embedding_params == dense.non_embedding_params + router
  for experts, granularity in ((4, 4), (8, 5), (1, 1)):
    with pytest.raises(UserError, match="granularity"):
      arch.mixture(dense, experts, granularity)
  # Top-1 weights its expert by the router's probability (Switch), which no Mixtral class does.
  top_1 = arch.mixture(dense, 8, 1)
  assert not top_1.norm_topk_prob and made.norm_topk_prob
  assert "norm_topk_prob=False" in hf_config.unsupported(top_1) and not hf_config.unsupported(made)
  with pytest.raises(UserError, match="norm_topk_prob=False apply to mlp='moe' only"):
    dense.replace(norm_topk_prob=False)


def test_a_sweep_trains_each_shape_also_as_its_mixtures():
  from lawsearch.configs import sweep, train  # pylint: disable=import-outside-toplevel

  runs = sweep.get_config("recipe=cpu_v2,scales=80k,x=0.13,r=1.5,moe=4x1+16x4,seeds=2").runs
  assert len(runs) % 6 == 0 and runs[0].endswith("seed=0")  # per shape: 3 MLPs x 2 seeds
  assert "experts" not in runs[1] and "experts=16,granularity=4,seed=0" in runs[4]
  dense, moe = (train.get_config(runs[i].rsplit(",seed", 1)[0]) for i in (0, 4))
  assert moe.model.arch["n_experts"] == 16 and moe.model.arch["top_k"] == 4
  n_dense = arch.from_fields(dense.model.arch).non_embedding_params
  n_active = arch.from_fields(moe.model.arch).active_non_embedding_params
  assert moe.train.tokens / dense.train.tokens == pytest.approx(n_active / n_dense, rel=0.01)
  with pytest.raises(UserError, match="experts x granularity"):
    sweep.get_config("recipe=cpu_v2,scales=80k,moe=4x4")
  only = sweep.get_config("recipe=cpu_v2,scales=80k,x=0.13,r=1.5,moe=4x1+16x4,dense=0,seeds=2")
  assert only.runs == [run for run in runs if "experts" in run]  # the same runs, less the dense
  for bad in ("dense=0", "moe=8x2,dense=2"):
    with pytest.raises(UserError, match="dense="):
      sweep.get_config(f"recipe=cpu_v2,scales=80k,{bad}")
