"""lawsearch.model.generate: prefill + step-by-step decode against the full forward pass, greedy and
sampled decoding, end-of-sequence handling."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from lawsearch.arch import preset
from lawsearch.model import ModelConfig, build
from lawsearch.model.generate import Engine, Sampling, cache_length, sample

N_NEW = 6


@pytest.fixture(scope="module")
def model():
  return build(ModelConfig(arch=preset("nano"), max_seq_len=64), seed=0)


@pytest.fixture(scope="module")
def prompts():
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(0, preset("nano").vocab_size, (3, 9)), jnp.int32)
  return tokens, jnp.array([9, 1, 4], jnp.int32)  # ragged, right-padded, one of length 1


@pytest.fixture(scope="module")
def greedy(model, prompts):
  engine = Engine(model, max_new_tokens=N_NEW, return_logits=True, cache_multiple=8,
                  prefill_batch=1)
  return engine.generate(*prompts)


def test_prefill_and_decode_logits_equal_the_full_forward(model, prompts, greedy):
  tokens, lengths = prompts
  width = tokens.shape[1] + N_NEW  # prompt + generated, right-padded: causal, so padding is inert
  seqs = jnp.stack([jnp.pad(jnp.concatenate([tokens[b, :n], greedy.tokens[b]]),
                            (0, width - n - N_NEW)) for b, n in enumerate(map(int, lengths))])
  logits = np.asarray(jax.jit(model.__call__)(seqs), np.float64)
  for b in range(tokens.shape[0]):
    n = int(lengths[b])
    full = logits[b, n - 1:n - 1 + N_NEW]  # the full forward's logits that chose each token
    got = np.asarray(greedy.logits[b], np.float64)
    assert np.abs(got - full).max() / np.abs(full).max() < 1e-5
    # Greedy: every emitted token is the argmax of the full forward's logits before it.
    np.testing.assert_array_equal(greedy.tokens[b], full.argmax(-1))
  np.testing.assert_array_equal(greedy.num_tokens, [N_NEW] * 3)


def test_grouped_prefill_equals_xla_prefill(prompts):
  """Prefill with the CPU attention (right-padded ragged prompts) gives the xla path's logits and
  cache; the padding stays inert because each chunk's mask is causal."""
  out = {}
  for impl in ("xla", "grouped"):
    m = build(ModelConfig(arch=preset("nano"), max_seq_len=64, attention_impl=impl), seed=0)
    out[impl] = jax.jit(m.prefill, static_argnums=2)(*prompts, 16)
  (lx, cx), (lg, cg) = out["xla"], out["grouped"]
  np.testing.assert_allclose(lg, lx, rtol=1e-5, atol=1e-5 * float(jnp.abs(lx).max()))
  for a, b in zip(cx.k + cx.v, cg.k + cg.v):
    np.testing.assert_allclose(b, a, atol=1e-6)


def test_eos_stops_a_row_unless_ignored(model, prompts, greedy):
  eos = int(greedy.tokens[0, 1])  # row 0 emits it second
  first = [int(np.argmax(np.asarray(greedy.tokens[b]) == eos)) if eos in greedy.tokens[b]
           else N_NEW - 1 for b in range(3)]
  out = Engine(model, max_new_tokens=N_NEW, cache_multiple=8,
               sampling=Sampling(eos_id=eos, pad_id=-1)).generate(*prompts)
  for b in range(3):
    n = first[b] + 1
    assert int(out.num_tokens[b]) == n
    np.testing.assert_array_equal(out.tokens[b, :n], greedy.tokens[b, :n])
    assert (np.asarray(out.tokens[b, n:]) == -1).all()
  forced = Engine(model, max_new_tokens=N_NEW, cache_multiple=8,
                  sampling=Sampling(eos_id=eos, ignore_eos=True)).generate(*prompts)
  np.testing.assert_array_equal(forced.tokens, greedy.tokens)
  np.testing.assert_array_equal(forced.num_tokens, [N_NEW] * 3)


def test_a_row_stops_at_the_first_of_several_eos_ids(model, prompts, greedy):
  # An imported model may name several end-of-sequence ids (SmolLM2-Instruct: <|im_end|> and
  # <|endoftext|>): each row stops after the first token that is any of them.
  eos = (int(greedy.tokens[0, 1]), int(greedy.tokens[1, 2]))
  out = Engine(model, max_new_tokens=N_NEW, cache_multiple=8,
               sampling=Sampling(eos_id=eos, pad_id=-1)).generate(*prompts)
  for b in range(3):
    hits = np.flatnonzero(np.isin(np.asarray(greedy.tokens[b]), eos))
    n = int(hits[0]) + 1 if len(hits) else N_NEW
    assert int(out.num_tokens[b]) == n
    np.testing.assert_array_equal(out.tokens[b, :n], greedy.tokens[b, :n])
  assert int(out.num_tokens[0]) <= 2 and int(out.num_tokens[1]) <= 3


def test_sampled_tokens_stay_in_the_top_k(model, prompts):
  out = Engine(model, max_new_tokens=N_NEW, return_logits=True, cache_multiple=8,
               sampling=Sampling(temperature=2.0, top_k=3)).generate(*prompts, jax.random.key(1))
  top3 = np.argsort(np.asarray(out.logits), axis=-1)[..., -3:]           # [B, N, 3]
  assert (top3 == np.asarray(out.tokens)[..., None]).any(-1).all()


def test_sample_rules():
  logits = jnp.array([[0.0, 3.0, 1.0], [2.0, -1.0, 0.5]])
  key = jax.random.key(0)
  np.testing.assert_array_equal(sample(logits, key, Sampling()), [1, 0])
  np.testing.assert_array_equal(sample(logits, key, Sampling(temperature=1.0, top_k=1)), [1, 0])
  with pytest.raises(ValueError, match="temperature"):
    Sampling(temperature=-1.0)


def test_cache_length_and_its_limit(model, prompts):
  assert cache_length(4096, 1024) == 5120        # 4096 + 1023 rounded up to the 128-block
  assert cache_length(9, 6, multiple=8) == 16
  with pytest.raises(ValueError, match="max_seq_len"):
    Engine(model, max_new_tokens=100).generate(*prompts)


def test_model_decode_with_pallas_on_cpu_is_an_error_not_a_fallback():
  from lawsearch.model import init_cache
  cfg = ModelConfig(arch=preset("nano"), max_seq_len=64, decode_impl="pallas")
  m = build(cfg, seed=0)
  cache = init_cache(cfg, 2, 64)
  with pytest.raises(ValueError, match="interpret=True"):
    m.decode(jnp.zeros((2,), jnp.int32), cache)
