"""Flash-decoding attention over an MLA latent cache as a Pallas kernel for TPUs (Mosaic TPU);
interpret mode on CPU.

One KV "head" whose value is the first R columns of its key: each program copies one cache block
[block_kv, R + P] once and uses it for both products (the GQA kernel, given the cache as keys and
as values, would copy it twice). Grid (B, S, J): sequence, split, block within the split; the
block index is clamped to the sequence's last valid block (no copy, no compute beyond it), online
softmax in f32 scratch, unnormalised partials per split merged by
`gqa_decode_pallas.combine_splits`, as in `gqa_decode_tpu`.

Shapes (B batch, N heads, M cache length, R kv_lora_rank, P qk_rope_head_dim, S splits):
    q        [B, N, R + P]     [q_lat, q_rope]
    cache    [B, 1, M, R + P]  M a multiple of block_kv * num_splits
    lengths  [B] int32
    returns  acc [B, S, N, R] f32, m [B, S, N] f32 (natural log, scaled), l [B, S, N]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu


def partials(q, cache, lengths, *, rank: int, scale: float, block_kv: int, num_splits: int,
             interpret: bool = False):
  """Runs the kernel; see the module docstring for shapes."""
  b, n, width = q.shape
  t = cache.shape[2]
  per_split = t // block_kv // num_splits
  precision = lax.Precision.HIGHEST if q.dtype == jnp.float32 else None
  dot = lambda x, y, dims: lax.dot_general(x, y, (dims, ((), ())), precision=precision,
                                           preferred_element_type=jnp.float32)

  def kernel(len_ref, q_ref, c_ref, acc_out, m_out, l_out, m_sc, l_sc, acc_sc):
    bi, si, j = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    length = len_ref[bi]
    start = (si * per_split + j) * block_kv

    @pl.when(j == 0)
    def _init():
      m_sc[...] = jnp.full_like(m_sc, -jnp.inf)
      l_sc[...] = jnp.zeros_like(l_sc)
      acc_sc[...] = jnp.zeros_like(acc_sc)

    @pl.when(start < length)
    def _step():
      block = c_ref[...]                                                      # [block_kv, R + P]
      s = dot(q_ref[...], block, ((1,), (1,))) * scale                        # [N, block_kv]
      pos = start + lax.broadcasted_iota(jnp.int32, s.shape, 1)
      s = jnp.where(pos < length, s, -jnp.inf)
      m_prev = m_sc[...]                                                      # [N, 1]
      m_new = jnp.maximum(m_prev, s.max(axis=1, keepdims=True))
      alpha = jnp.exp(m_prev - m_new)
      p = jnp.exp(s - m_new)
      l_sc[...] = alpha * l_sc[...] + p.sum(axis=1, keepdims=True)
      acc_sc[...] = alpha * acc_sc[...] + dot(p.astype(block.dtype), block[:, :rank],
                                              ((1,), (0,)))                   # [N, R]
      m_sc[...] = m_new

    @pl.when(j == per_split - 1)
    def _write():
      acc_out[...] = acc_sc[...]
      m_out[...] = m_sc[...]
      l_out[...] = l_sc[...]

  def cache_index(bi, si, j, len_ref):
    last = jnp.maximum(pl.cdiv(len_ref[bi], block_kv) - 1, 0)  # last block holding valid positions
    return bi, 0, jnp.minimum(si * per_split + j, last), 0

  part_spec = lambda tail: pl.BlockSpec((None, None, n, tail), lambda bi, si, j, _: (bi, si, 0, 0))
  grid_spec = pltpu.PrefetchScalarGridSpec(
      num_scalar_prefetch=1,
      grid=(b, num_splits, per_split),
      in_specs=[pl.BlockSpec((None, n, width), lambda bi, si, j, _: (bi, 0, 0)),
                pl.BlockSpec((None, None, block_kv, width), cache_index)],
      out_specs=[part_spec(rank), part_spec(1), part_spec(1)],
      scratch_shapes=[pltpu.VMEM((n, 1), jnp.float32), pltpu.VMEM((n, 1), jnp.float32),
                      pltpu.VMEM((n, rank), jnp.float32)],
  )
  acc, m, l = pl.pallas_call(
      kernel,
      grid_spec=grid_spec,
      out_shape=(jax.ShapeDtypeStruct((b, num_splits, n, rank), jnp.float32),
                 jax.ShapeDtypeStruct((b, num_splits, n, 1), jnp.float32),
                 jax.ShapeDtypeStruct((b, num_splits, n, 1), jnp.float32)),
      compiler_params=pltpu.CompilerParams(
          dimension_semantics=("parallel", "parallel", "arbitrary")),
      interpret=interpret,
  )(lengths, q, cache)
  return acc, m[..., 0], l[..., 0]
