"""lawsearch.model.attention: the "grouped" causal attention (hand-written backward) and "xla"
against float64 autodiff of a plain reference; ragged chunking, GQA ratios, bfloat16, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lawsearch.laws.precision import float64
from lawsearch.model.attention import CHUNK, causal_attention


def _reference(q, k, v):
  """Causal attention with each KV head repeated for its query heads (jnp, any dtype)."""
  t, g = q.shape[1], q.shape[2] // k.shape[2]
  k, v = jnp.repeat(k, g, axis=2), jnp.repeat(v, g, axis=2)
  s = jnp.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
  s = jnp.where(np.tril(np.ones((t, t), bool)), s, -jnp.inf)
  return jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(s, axis=-1), v)


def _inputs(seed, t, n_heads, n_kv, head_dim=16, batch=2):
  rng = np.random.default_rng(seed)
  shapes = [(batch, t, n_heads, head_dim), (batch, t, n_kv, head_dim), (batch, t, n_kv, head_dim),
            (batch, t, n_heads, head_dim)]
  return [rng.normal(size=s) for s in shapes]  # q, k, v and the output cotangent, float64


def _value_and_grads(fn, q, k, v, do):
  out, vjp = jax.vjp(fn, q, k, v)
  return (out, *vjp(do))


@pytest.mark.parametrize("impl", ["grouped", "xla"])
@pytest.mark.parametrize("t,n_heads,n_kv", [
    (2 * CHUNK + 22, 8, 2),  # three chunks, the last one short; GQA 4
    (CHUNK, 4, 4),           # one chunk exactly; multi-head (GQA 1)
    (37, 4, 1),              # shorter than a chunk; multi-query
])
def test_matches_float64_autodiff(impl, t, n_heads, n_kv):
  q, k, v, do = _inputs(t, t, n_heads, n_kv)
  got = _value_and_grads(lambda *a: causal_attention(*a, impl), *(
      jnp.asarray(x, jnp.float32) for x in (q, k, v, do)))
  with float64():
    want = _value_and_grads(_reference, *(jnp.asarray(x, jnp.float64) for x in (q, k, v, do)))
    want = [np.asarray(w) for w in want]
  for name, g, w in zip(("out", "dq", "dk", "dv"), got, want):
    assert g.dtype == jnp.float32
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-5, err_msg=name)


def test_grouped_bfloat16_close_to_float32():
  q, k, v, do = (jnp.asarray(x, jnp.float32) for x in _inputs(7, CHUNK + 9, 4, 2))
  f32 = _value_and_grads(lambda *a: causal_attention(*a, "grouped"), q, k, v, do)
  bf16 = _value_and_grads(lambda *a: causal_attention(*a, "grouped"),
                          *(x.astype(jnp.bfloat16) for x in (q, k, v, do)))
  for name, lo, hi in zip(("out", "dq", "dk", "dv"), bf16, f32):
    assert lo.dtype == jnp.bfloat16
    scale = float(jnp.abs(hi).max())
    np.testing.assert_allclose(lo.astype(jnp.float32), hi, atol=3e-2 * scale, err_msg=name)


def test_unknown_impl_is_an_error():
  q, k, v, _ = (jnp.asarray(x, jnp.float32) for x in _inputs(0, 8, 2, 1))
  with pytest.raises(ValueError, match="grouped"):
    causal_attention(q, k, v, "flash")


def test_auto_and_the_cli_choices():
  from lawsearch.commands import args
  from lawsearch.model.attention import IMPLS, resolve_impl

  cases = [("cpu", "float32"), ("gpu", "bfloat16"), ("gpu", "float16"), ("gpu", "float32"),
           ("tpu", "bfloat16")]
  assert [resolve_impl("auto", *c) for c in cases] == ["grouped", "cudnn", "cudnn", "xla", "xla"]
  assert [resolve_impl(i, "gpu", "bfloat16") for i in IMPLS] == list(IMPLS)  # explicit: as given
  assert args.ATTENTION_IMPLS == ("auto", *IMPLS)  # the CLI's copy, kept without importing jax
