"""Decode attention over an MLA latent cache (absorbed form), on the GQA kernels' dispatch.

    o_lat[b, n] = softmax_m( (q_lat[b, n] . c[b, m] + q_rope[b, n] . k_rope[b, m]) * scale ) c[b, m]

for positions m < lengths[b]: multi-query attention whose key is the cache entry [c, k_rope]
(width R + P) and whose value is the latent c itself (width R). impl, chosen explicitly:
  "xla"     `gqa_decode`'s jnp path with one KV head and values = keys (last P columns dropped);
  "pallas"  on a TPU (and in interpret mode on CPU) the latent-cache kernel `mla_decode_tpu`,
            which copies each cache block once for both products; on an NVIDIA GPU the Mosaic
            GPU GQA kernel given the cache as keys and as values (n_heads <= 64, R + P a multiple
            of 64 whose blocks fit its shared memory: R + P = 256 at block_kv 64 does, DeepSeek-
            V3's 576 does not and is refused), which copies the cache twice: a latent kernel for
            Mosaic GPU is not written.
An unsupported backend, dtype or shape raises an error; nothing falls back silently.

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
  rank = q_lat.shape[2]
  q = jnp.concatenate([q_lat, q_rope], axis=-1)  # [B, N, R + P]
  if impl == "pallas":
    backend = backend or ("tpu" if interpret else jax.default_backend())
    if backend == "tpu":
      return _pallas_tpu(q, cache, lengths, rank, scale, block_sizes, interpret)
  extra = {} if impl == "xla" else {"block_sizes": block_sizes, "interpret": interpret,
                                    "backend": backend}
  return gqa_decode(q, cache, cache, lengths, impl=impl, scale=scale, **extra)[..., :rank]


def _pallas_tpu(q, cache, lengths, rank, scale, block_sizes, interpret):
  """The latent-cache kernel (`mla_decode_tpu`) with the GQA kernel's checks and combine."""
  # pylint: disable=import-outside-toplevel
  from lawsearch.kernels import gqa_decode_pallas as gp
  from lawsearch.kernels import mla_decode_tpu

  if interpret and jax.default_backend() != "cpu":
    raise UserError("interpret=True is for tests on CPU; on an accelerator call the kernel itself")
  gp._backend_check("tpu", q.dtype, interpret)  # pylint: disable=protected-access
  bs = block_sizes or gp.BlockSizes()
  t = cache.shape[2]
  if t % bs.block_kv or bs.block_kv % 8:
    raise UserError(f"max_len={t} (cache.shape[2]) must be a multiple of block_kv={bs.block_kv}, "
                    "itself a multiple of 8; pad the cache or pass BlockSizes(block_kv=...)")
  n_blocks = t // bs.block_kv
  splits = bs.num_splits or gp.default_num_splits(q.shape[0], n_blocks, "tpu")
  if n_blocks % splits:
    raise UserError(f"num_splits={splits} must divide the {n_blocks} blocks of the cache "
                    f"(max_len={t} / block_kv={bs.block_kv})")
  lengths = jnp.minimum(lengths.astype(jnp.int32), t)
  acc, m, l = mla_decode_tpu.partials(q, cache, lengths, rank=rank, scale=float(scale),
                                      block_kv=bs.block_kv, num_splits=splits,
                                      interpret=interpret)
  return gp.combine_splits(acc, m, l).astype(q.dtype)  # [B, N, R]


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
