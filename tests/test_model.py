"""lawsearch.model: parameter accounting, forward pass against a float64 numpy reference, the KV
cache (prefill + decode) against the full forward, and configuration errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lawsearch.arch import ArchSpec, preset
from lawsearch.model import (ModelConfig, abstract_model, build, init_cache, logical_axes,
                             param_count)

NANO = ModelConfig(preset("nano"), max_seq_len=32)


build_nano = nnx.jit(lambda seed: build(NANO, seed))  # one compile for every seed


@pytest.fixture(scope="module")
def nano():
  return build_nano(jax.random.key(0))


forward = nnx.jit(lambda model, tokens: model(tokens))


@pytest.mark.parametrize("name", ["nano", "tiny", "tiny-wide", "llama3.2-1b", "panda-1b",
                                  "surefire-3b", "qwen3-8b", "s80m"])
def test_param_count_equals_archspec(name):
  # Built abstractly (no memory), the model's leaves sum to ArchSpec's accounting exactly.
  spec = preset(name)
  assert param_count(abstract_model(ModelConfig(spec))) == spec.total_params


def test_untied_and_nonsquare_attention_count():
  # attention width 6*48=288 != d_model 128, untied output head.
  spec = ArchSpec(3, 128, 6, 2, 48, 320, 1000, tie_embeddings=False)
  model = abstract_model(ModelConfig(spec))
  assert param_count(model) == spec.total_params
  assert model.lm_head.shape == (128, 1000)


def test_every_param_has_logical_axes_of_its_rank(nano):
  axes = logical_axes(nano)
  shapes = nnx.to_pure_dict(nnx.state(nano, nnx.Param))
  for names, x in zip(jax.tree.leaves(axes, is_leaf=lambda n: isinstance(n, tuple)),
                      jax.tree.leaves(shapes)):
    assert len(names) == x.ndim


def _reference_logits(params, tokens, spec: ArchSpec, theta: float, eps: float):
  """Float64 numpy LLaMA forward written from the definitions (no shared code with the model)."""
  p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
  b, t = tokens.shape
  g, hd = spec.gqa, spec.head_dim

  def norm(x, scale):
    return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * scale

  inv = theta ** (-np.arange(hd // 2) / (hd // 2))
  ang = np.arange(t)[:, None] * inv[None]  # [T, H/2]
  cos, sin = np.cos(ang)[None, :, None], np.sin(ang)[None, :, None]

  def rot(x):  # [B, T, heads, H]
    x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

  x = p["embed"][tokens]
  mask = np.tril(np.ones((t, t), bool))
  for i in range(spec.n_layers):
    layer = p[f"layer_{i}"]
    a = layer["attn"]
    h = norm(x, layer["attn_norm"]["scale"])
    q = rot(np.einsum("btd,dnh->btnh", h, a["wq"]))
    k = rot(np.einsum("btd,dkh->btkh", h, a["wk"]))
    v = np.einsum("btd,dkh->btkh", h, a["wv"])
    k, v = np.repeat(k, g, axis=2), np.repeat(v, g, axis=2)  # query head n uses kv head n // g
    s = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(hd)
    s = np.where(mask, s, -np.inf)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    o = np.einsum("bnts,bsnh->btnh", w, v)
    x = x + np.einsum("btnh,nhd->btd", o, a["wo"])
    m = layer["mlp"]
    h = norm(x, layer["mlp_norm"]["scale"])
    gate = h @ m["gate"]
    x = x + (gate / (1 + np.exp(-gate)) * (h @ m["up"])) @ m["down"]
  x = norm(x, p["final_norm"]["scale"])
  return x @ p["embed"].T


@pytest.mark.parametrize("attention_impl", ["xla", "grouped"])
def test_forward_matches_float64_reference(nano, attention_impl):
  tokens = np.asarray(jax.random.randint(jax.random.key(1), (2, 12), 0, 512))
  params = nnx.to_pure_dict(nnx.state(nano, nnx.Param))
  want = _reference_logits(params, tokens, NANO.arch, NANO.rope_theta, NANO.norm_eps)
  config = dataclasses.replace(NANO, attention_impl=attention_impl)
  model = nnx.merge(nnx.graphdef(abstract_model(config)), nnx.state(nano))
  got = forward(model, jnp.asarray(tokens))
  assert got.shape == (2, 12, 512) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)


def test_prefill_then_decode_matches_full_forward(nano):
  # Rows of different prompt lengths (5 and 8, right-padded to 8), then 3 decode steps each.
  tokens = jax.random.randint(jax.random.key(2), (2, 11), 0, 512)
  full = forward(nano, tokens)
  lengths = jnp.array([5, 8], jnp.int32)
  logits, cache = nnx.jit(lambda m, t, n: m.prefill(t, n, 16))(nano, tokens[:, :8], lengths)
  assert logits.shape == (2, 512)  # only the next-token logits of each row
  np.testing.assert_allclose(logits[0], full[0, 4], atol=1e-5)
  np.testing.assert_allclose(logits[1], full[1, 7], atol=1e-5)
  assert len(cache.k) == 2 and cache.k[0].shape == (2, 2, 16, 16)  # [B, n_kv_heads, len, H]
  decode = nnx.jit(lambda m, tok, c: m.decode(tok, c))
  for step in range(3):
    tok = jnp.stack([tokens[0, 5 + step], tokens[1, 8 + step]])
    out, cache = decode(nano, tok, cache)
    np.testing.assert_allclose(out[0], full[0, 5 + step], atol=1e-5)
    np.testing.assert_allclose(out[1], full[1, 8 + step], atol=1e-5)
  np.testing.assert_array_equal(cache.lengths, [8, 11])


def test_init_cache_is_empty():
  cache = init_cache(NANO, batch=3, max_len=7)
  assert cache.k[0].shape == (3, 2, 7, 16) and int(cache.lengths.sum()) == 0


def test_bfloat16_compute_close_to_float32(nano):
  bf16 = dataclasses.replace(NANO, dtype="bfloat16")
  bf = nnx.merge(nnx.graphdef(abstract_model(bf16)), nnx.state(nano))
  tokens = jax.random.randint(jax.random.key(3), (1, 8), 0, 512)
  np.testing.assert_allclose(forward(bf, tokens), forward(nano, tokens), atol=0.05)


def test_same_seed_same_params_other_seed_differs(nano):
  a = nnx.state(nano, nnx.Param)
  b, c = (nnx.state(build_nano(jax.random.key(s)), nnx.Param) for s in (0, 1))
  assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert not np.array_equal(a["embed"][...], c["embed"][...])


def test_bad_config_and_input_errors(nano):
  with pytest.raises(ValueError, match="attention_impl"):
    ModelConfig(preset("nano"), attention_impl="flash")
  with pytest.raises(ValueError, match="even head_dim"):
    ModelConfig(ArchSpec(1, 8, 2, 1, 3, 8, 16))
  with pytest.raises(ValueError, match="max_seq_len=32"):
    nano(jnp.zeros((1, 33), jnp.int32))
