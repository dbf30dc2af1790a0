"""Decode attention over an MLA latent cache (absorbed form), on the GQA kernels' dispatch.

    o_lat[b, n] = softmax_m( (q_lat[b, n] . c[b, m] + q_rope[b, n] . k_rope[b, m]) * scale ) c[b, m]

for positions m < lengths[b]: multi-query attention whose key is the cache entry [c, k_rope]
(width R + P) and whose value is the latent c itself (width R). The cache is one array, so this
is `gqa_decode` with one KV head and values = keys, the last P output columns dropped: impl "xla"
(jnp) or "pallas" (the flash-decoding kernel; its GPU lowering needs n_heads <= 64 and R + P a
multiple of 64, DeepSeek-V3's 512 + 64 included). Either reads the cache as keys and again as
values, not once: a dedicated kernel would halve the bytes of the attention over the cache.

Shapes (B batch, N heads, M cache length, R kv_lora_rank, P qk_rope_head_dim):
    q_lat   [B, N, R]        the queries' no-RoPE part folded through wkv_b's key half
    q_rope  [B, N, P]        the queries' RoPE part (rotated)
    cache   [B, 1, M, R + P] [c, k_rope] per position (the model's latent cache)
    lengths [B] int32        valid positions, 1 <= lengths[b] <= M
    returns [B, N, R]        in q_lat's dtype
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lawsearch.errors import UserError


def _check(q_lat, q_rope, cache) -> None:
  if q_lat.ndim != 3 or q_rope.ndim != 3 or q_lat.shape[:2] != q_rope.shape[:2]:
    raise UserError(f"q_lat [batch, n_heads, R] and q_rope [batch, n_heads, P] must agree on "
                    f"batch and heads, got {q_lat.shape} and {q_rope.shape}")
  width = q_lat.shape[2] + q_rope.shape[2]
  if cache.ndim != 4 or cache.shape[1] != 1 or cache.shape[3] != width:
    raise UserError(f"the latent cache must be [batch, 1, max_len, R + P = {width}], got "
                    f"{cache.shape}")


def mla_decode(q_lat: jax.Array, q_rope: jax.Array, cache: jax.Array, lengths: jax.Array, *,
               scale: float, impl: str = "xla", block_sizes=None, interpret: bool = False,
               backend: str | None = None) -> jax.Array:
  """Latent-cache decode attention (module docstring); impl and the Pallas options as
  `lawsearch.kernels.gqa_decode`, which raises for an unsupported backend or shape."""
  from lawsearch.kernels import gqa_decode  # pylint: disable=import-outside-toplevel

  _check(q_lat, q_rope, cache)
  q = jnp.concatenate([q_lat, q_rope], axis=-1)  # [B, N, R + P]
  extra = {} if impl == "xla" else {"block_sizes": block_sizes, "interpret": interpret,
                                    "backend": backend}
  o = gqa_decode(q, cache, cache, lengths, impl=impl, scale=scale, **extra)
  return o[..., :q_lat.shape[2]]


def mla_decode_reference(q_lat, q_rope, cache, lengths, *, scale: float) -> np.ndarray:
  """float64 numpy reference with the latent and the RoPE key kept apart; [B, N, R] float64."""
  q_lat, q_rope, cache = (np.asarray(x, np.float64) for x in (q_lat, q_rope, cache))
  rank = q_lat.shape[2]
  out = np.empty(q_lat.shape)
  for b in range(q_lat.shape[0]):
    n = int(lengths[b])
    c, k_rope = cache[b, 0, :n, :rank], cache[b, 0, :n, rank:]  # [n, R], [n, P]
    s = (q_lat[b] @ c.T + q_rope[b] @ k_rope.T) * scale  # [N, n]
    p = np.exp(s - s.max(axis=1, keepdims=True))
    out[b] = (p / p.sum(axis=1, keepdims=True)) @ c
  return out
