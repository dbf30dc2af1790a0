"""ArchSpec arithmetic against the paper's tables and public model cards."""

import math

import pytest

from lawsearch import arch

# PAPER.md section 1: d/sqrt(N) and r as printed (LLaMA-3.2-3B's r is 3.0; the paper's 4.80 is a typo).
PAPER_TABLE = {
    "llama3.2-1b": (0.066, 4.80, 4),
    "panda-1b": (0.082, 1.07, 4),
    "surefire-1b": (0.082, 3.6, 9),
    "llama3.2-3b": (0.058, 3.0, 3),
    "panda-3b": (0.077, 1.0, 3),
    "surefire-3b": (0.077, 1.0, 7),
    "panda-3b-o": (0.076, 1.23, 3),
}


def _decimals(printed: float) -> int:
  text = repr(printed)
  return len(text.split(".")[1]) if "." in text else 0


@pytest.mark.parametrize("name", PAPER_TABLE)
def test_paper_table_reproduced(name):
  x, r, g = PAPER_TABLE[name]
  spec = arch.preset(name)
  assert round(spec.d_over_sqrt_n, 3) == x
  assert round(spec.mlp_attn_ratio, _decimals(r)) == r
  assert spec.gqa == g


def test_llama_1b_public_parameter_count():
  # Released LLaMA-3.2-1B: 1,235,814,400 parameters (tied embeddings, vocabulary 128256).
  spec = arch.preset("llama3.2-1b")
  assert spec.total_params == 1_235_814_400
  assert spec.embedding_params == 128256 * 2048


def test_accounting_by_hand():
  spec = arch.ArchSpec(n_layers=3, d_model=10, n_heads=6, n_kv_heads=2, head_dim=4, ffn_dim=7,
                       vocab_size=11, tie_embeddings=False)
  attn = 10 * 24 + 24 * 10 + 2 * 10 * 8       # Wq, Wo, Wk, Wv
  assert spec.attn_params_per_layer == attn
  assert spec.mlp_params_per_layer == 3 * 10 * 7
  assert spec.non_embedding_params == 3 * (attn + 210)
  assert spec.embedding_params == 2 * 11 * 10
  assert spec.total_params == 3 * (attn + 210) + 220 + 7 * 10
  assert spec.gqa == 3
  assert math.isclose(spec.d_over_sqrt_n, 10 / math.sqrt(3 * (attn + 210)))


@pytest.mark.parametrize("field,value", [("d_model", 0), ("n_layers", -1), ("head_dim", 2.5),
                                         ("vocab_size", True), ("ffn_dim", "64")])
def test_bad_field_names_field_and_value(field, value):
  kwargs = dict(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, head_dim=16, ffn_dim=128,
                vocab_size=256)
  kwargs[field] = value
  with pytest.raises(ValueError, match=f"{field}.*{value!r}"):
    arch.ArchSpec(**kwargs)


def test_kv_heads_must_divide_heads():
  with pytest.raises(ValueError, match=r"n_kv_heads=3 does not divide n_heads=8.*\[1, 2, 4, 8\]"):
    arch.ArchSpec(2, 64, 8, 3, 16, 128, 256)


def test_unknown_preset_lists_known():
  with pytest.raises(ValueError, match="llama3.2-1b.*panda-1b"):
    arch.preset("llama-9b")


@pytest.mark.parametrize("name,expected", [
    ("surefire-1b", [1, 3, 4, 7, 9, 19, 39]),
    ("surefire-3b", [1, 2, 3, 5, 7, 11, 15, 23, 47]),
])
def test_exact_param_gqa_sets(name, expected):
  spec = arch.preset(name)
  assert arch.exact_param_gqa_values(spec) == expected
  for g in expected:
    variant = arch.with_gqa(spec, g)
    assert variant.gqa == g
    assert variant.non_embedding_params == spec.non_embedding_params
  with pytest.raises(ValueError, match="valid gqa values"):
    arch.with_gqa(spec, 5 if name == "surefire-1b" else 4)


def test_from_budget_recovers_panda_1b():
  spec = arch.from_budget(975e6, n_layers=16, head_dim=64, d_model=2560, r=1.032, gqa=4)
  assert spec == arch.preset("panda-1b")


def test_from_budget_respects_grid_and_budget():
  spec = arch.from_budget(1e9, n_layers=16, head_dim=64, d_model=2304, r=2.0, gqa=4, ffn_step=128)
  assert spec.n_heads % 4 == 0 and spec.ffn_dim % 128 == 0
  assert abs(spec.non_embedding_params / 1e9 - 1) < 0.02
  assert abs(math.log(spec.mlp_attn_ratio / 2.0)) < 0.05


def test_enumerate_candidates_all_within_tolerance_and_contain_paper_models():
  cands = arch.enumerate_candidates(970e6, n_layers=16, head_dim=64,
                                    d_models=range(1536, 3073, 256), gqas=(4, 9), tolerance=0.01)
  assert cands, "no candidates"
  assert all(abs(c.non_embedding_params / 970e6 - 1) <= 0.01 for c in cands)
  assert all(c.ffn_dim % 256 == 0 for c in cands)
  assert arch.preset("panda-1b") in cands
  assert arch.preset("surefire-1b") in cands
  # Every (d_model, gqa) pair of the grid has at least one shape within 1% of the budget.
  assert len({(c.d_model, c.gqa) for c in cands}) == 7 * 2
