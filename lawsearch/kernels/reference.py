"""GQA decode attention in plain jnp: the XLA path and the reference the Pallas kernel is tested on.

One query token per sequence attends to the first `lengths[b]` positions of a static KV cache.

Shapes, in the model's alphabet (B batch, N query heads, K KV heads, G = N // K query heads per KV
head, M cache length, H head_dim):
    q        [B, N, H]      query of the current token; head n belongs to KV head n // G
    k_cache  [B, K, M, H]   keys, positions >= lengths[b] are ignored (may hold anything)
    v_cache  [B, K, M, H]   values, same
    lengths  [B] int32      valid positions per sequence, 1 <= lengths[b] <= M
    returns  [B, N, H]      in q's dtype
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lawsearch.errors import UserError


def check_shapes(q, k_cache, v_cache, lengths) -> tuple[int, int, int, int, int, int]:
  """Validates the decode-attention operands; returns (B, N, K, G, M, H)."""
  if q.ndim != 3:
    raise UserError(f"q must be [batch, n_heads, head_dim], got shape {q.shape}")
  if k_cache.ndim != 4 or k_cache.shape != v_cache.shape:
    raise UserError(
        f"k_cache and v_cache must both be [batch, n_kv_heads, max_len, head_dim], got shapes "
        f"{k_cache.shape} and {v_cache.shape}")
  b, n, h = q.shape
  bk, k, m, hk = k_cache.shape
  if (bk, hk) != (b, h):
    raise UserError(
        f"q {q.shape} and k_cache {k_cache.shape} disagree on batch or head_dim "
        f"(q is [batch, n_heads, head_dim], the cache [batch, n_kv_heads, max_len, head_dim])")
  if n % k:
    raise UserError(f"n_heads={n} (q.shape[1]) is not a multiple of n_kv_heads={k} "
                     f"(k_cache.shape[1])")
  if lengths.shape != (b,) or not jnp.issubdtype(lengths.dtype, jnp.integer):
    raise UserError(f"lengths must be an integer array of shape ({b},), got {lengths.dtype} "
                     f"{lengths.shape}")
  if not (q.dtype == k_cache.dtype == v_cache.dtype):
    raise UserError(f"q, k_cache and v_cache must share one dtype, got {q.dtype}, "
                     f"{k_cache.dtype}, {v_cache.dtype}")
  return b, n, k, n // k, m, h


def gqa_decode_xla(q: jax.Array, k_cache: jax.Array, v_cache: jax.Array, lengths: jax.Array, *,
                   scale: float | None = None) -> jax.Array:
  """GQA decode attention as XLA ops: products in the input dtype with f32 accumulation.

  Like the kernel: scores and softmax in f32, probabilities cast to the cache dtype for P V.
  """
  b, n, k, g, m, h = check_shapes(q, k_cache, v_cache, lengths)
  scale = h ** -0.5 if scale is None else scale
  precision = jax.lax.Precision.HIGHEST if q.dtype == jnp.float32 else None
  einsum = functools.partial(jnp.einsum, precision=precision, preferred_element_type=jnp.float32)
  s = einsum("bkgh,bkmh->bkgm", q.reshape(b, k, g, h), k_cache) * scale    # [B, K, G, M] f32
  valid = jnp.arange(m)[None, :] < lengths[:, None]                         # [B, M]
  s = jnp.where(valid[:, None, None, :], s, -jnp.inf)
  p = jax.nn.softmax(s, axis=-1)
  o = einsum("bkgm,bkmh->bkgh", p.astype(v_cache.dtype), v_cache)          # [B, K, G, H] f32
  return o.reshape(b, n, h).astype(q.dtype)


def gqa_decode_reference(q, k_cache, v_cache, lengths, *, scale: float | None = None) -> np.ndarray:
  """The float64 numpy reference (independent of the jnp path above); returns [B, N, H] float64."""
  q, k_cache, v_cache = (np.asarray(x, np.float64) for x in (q, k_cache, v_cache))
  lengths = np.asarray(lengths)
  b, n, h = q.shape
  g = n // k_cache.shape[1]
  scale = h ** -0.5 if scale is None else scale
  out = np.empty((b, n, h))
  for i in range(b):
    length = int(lengths[i])
    for j in range(n):
      keys, values = k_cache[i, j // g, :length], v_cache[i, j // g, :length]  # [length, H]
      s = keys @ q[i, j] * scale
      p = np.exp(s - s.max())
      out[i, j] = p @ values / p.sum()
  return out
