"""Flash-decoding GQA attention as a Pallas kernel for TPUs (Mosaic TPU); interpret mode on CPU.

Grid (B, S, blocks per split): sequence, split, block within the split. A program takes a cache
block of all KV heads, [K, block_kv, H] (Mosaic TPU tiles the two minor block dims: block_kv a
multiple of 8, H whole), and for each KV head multiplies its G query heads against that head's
rows, so K/V are read once per group. The cache block index is clamped to the sequence's last valid
block, so blocks at or beyond its length are not copied (the pipeline skips a copy whose block
index repeats) and not computed (`pl.when`). Online softmax in f32 scratch; unnormalised partials
per split, merged by `gqa_decode_pallas.combine_splits`.

Shapes (B batch, K KV heads, G query heads per KV head, M cache length, H head_dim, S splits):
    q        [B, K, G, H]
    k, v     [B, K, M, H]    M a multiple of block_kv * num_splits
    lengths  [B] int32
    returns  acc [B, K, S, G, H] f32, m [B, K, S, G] f32 (natural log, scaled), l [B, K, S, G]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)


def partials(q, k_cache, v_cache, lengths, *, scale: float, block_kv: int, num_splits: int,
             interpret: bool = False):
  """Runs the kernel; see the module docstring for shapes."""
  b, k, g, h = q.shape
  per_split = k_cache.shape[2] // block_kv // num_splits  # M // block_kv blocks in S splits
  precision = lax.Precision.HIGHEST if q.dtype == jnp.float32 else None
  dot = lambda x, y, dims: lax.dot_general(x, y, (dims, ((), ())), precision=precision,
                                           preferred_element_type=jnp.float32)

  def kernel(len_ref, q_ref, k_ref, v_ref, acc_out, m_out, l_out, m_sc, l_sc, acc_sc):
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
      for kv in range(k):  # KV heads of the block: K/V rows [block_kv, H] shared by G queries
        s = dot(q_ref[kv], k_ref[kv], ((1,), (1,))) * scale                   # [G, block_kv]
        pos = start + lax.broadcasted_iota(jnp.int32, s.shape, 1)
        s = jnp.where(pos < length, s, -jnp.inf)
        m_prev = m_sc[kv]                                                     # [G, 1]
        m_new = jnp.maximum(m_prev, s.max(axis=1, keepdims=True))
        alpha = jnp.exp(m_prev - m_new)
        p = jnp.exp(s - m_new)
        l_sc[kv] = alpha * l_sc[kv] + p.sum(axis=1, keepdims=True)
        acc_sc[kv] = alpha * acc_sc[kv] + dot(p.astype(v_ref.dtype), v_ref[kv], ((1,), (0,)))
        m_sc[kv] = m_new

    @pl.when(j == per_split - 1)
    def _write():
      acc_out[...] = acc_sc[...]
      m_out[...] = m_sc[...]
      l_out[...] = l_sc[...]

  def kv_index(bi, si, j, len_ref):
    last = jnp.maximum(pl.cdiv(len_ref[bi], block_kv) - 1, 0)  # last block holding valid positions
    return bi, 0, jnp.minimum(si * per_split + j, last), 0

  kv_spec = pl.BlockSpec((None, k, block_kv, h), kv_index)
  part_spec = lambda *tail: pl.BlockSpec((None, None, k, g, *tail),
                                         lambda bi, si, j, _: (bi, si, 0, 0, 0))
  grid_spec = pltpu.PrefetchScalarGridSpec(
      num_scalar_prefetch=1,
      grid=(b, num_splits, per_split),
      in_specs=[pl.BlockSpec((None, k, g, h), lambda bi, si, j, _: (bi, 0, 0, 0)),
                kv_spec, kv_spec],
      out_specs=[part_spec(h), part_spec(1), part_spec(1)],
      scratch_shapes=[pltpu.VMEM((k, g, 1), jnp.float32), pltpu.VMEM((k, g, 1), jnp.float32),
                      pltpu.VMEM((k, g, h), jnp.float32)],
  )
  acc, m, l = pl.pallas_call(
      kernel,
      grid_spec=grid_spec,
      out_shape=(jax.ShapeDtypeStruct((b, num_splits, k, g, h), jnp.float32),
                 jax.ShapeDtypeStruct((b, num_splits, k, g, 1), jnp.float32),
                 jax.ShapeDtypeStruct((b, num_splits, k, g, 1), jnp.float32)),
      compiler_params=pltpu.CompilerParams(
          dimension_semantics=("parallel", "parallel", "arbitrary")),
      interpret=interpret,
  )(lengths, q, k_cache, v_cache)
  return tuple(jnp.moveaxis(x, 1, 2) for x in (acc, m[..., 0], l[..., 0]))
