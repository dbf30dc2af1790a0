"""Flash-decoding GQA attention for NVIDIA Hopper GPUs, in Pallas' Mosaic GPU backend.

One CUDA block per (sequence, KV head, split). It keeps the G query heads of its KV group in shared
memory (zero-padded to the 64 rows of a warpgroup matrix multiply), streams its split of the cache
in blocks of `block_kv` positions through a `num_stages`-deep ring of TMA copies, and runs an online
softmax in f32 registers: S = Q K^T and O += P V on the tensor cores (wgmma). Blocks at or beyond
the sequence's length are neither copied nor computed. Each block writes unnormalised partial
results (acc for its G real rows, running max m, running sum l); `combine_splits` merges the
splits. The grid is one-dimensional and enumerates the sequences longest first (`order`), so with
ragged lengths the long sequences' blocks start in the first wave and short ones fill the tail.

Shapes (B batch, K KV heads, G query heads per KV head, M cache length, H head_dim, S splits):
    q        [B, K, 64, H]   queries grouped by KV head, rows G..63 zero
    k, v     [B, K, M, H]    the cache, bf16 or f16 (a block's [block_kv, H] rows are contiguous)
    lengths  [B] int32
    order    [B] int32       a permutation of the sequences, longest first
    returns  acc [B, K, S, G, H] f32, m [B, K, S, 64] f32 (log2 domain, scaled), l [B, K, S, 64]
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

ROWS = 64  # rows of a Hopper warpgroup matrix multiply (wgmma M)
DTYPES = (jnp.bfloat16, jnp.float16)
LOG2E = math.log2(math.e)
SMEM_BYTES = 227 * 1024  # shared memory one Hopper thread block may use


def smem_bytes(head_dim: int, itemsize: int, block_kv: int, num_stages: int) -> int:
  """Shared memory of one block: q, the K/V ring, the f32 output tile and (m, l)."""
  return (ROWS * head_dim * itemsize + 2 * num_stages * block_kv * head_dim * itemsize
          + ROWS * head_dim * 4 + 2 * ROWS * 4)


def partials(q, k_cache, v_cache, lengths, order, *, groups: int, scale: float, block_kv: int,
             num_splits: int, num_stages: int):
  """Runs the kernel; see the module docstring for shapes (groups = G)."""
  b, kh, rows, d = q.shape
  t = k_cache.shape[2]
  n_blocks = pl.cdiv(t, block_kv)
  per_split = n_blocks // num_splits
  dtype = q.dtype

  def body(q_ref, k_ref, v_ref, len_ref, order_ref, acc_ref, m_ref, l_ref,
           q_smem, k_smem, v_smem, o_smem, ml_smem, q_bar, k_bar, v_bar):
    program = lax.axis_index("p")  # (rank, split, head), head fastest
    hi, si = lax.rem(program, kh), lax.rem(program // kh, num_splits)
    bi = order_ref[program // (kh * num_splits)]
    length = len_ref[bi]
    first = si * per_split                                      # first block of this split
    n = jnp.clip(pl.cdiv(length, block_kv) - first, 0, per_split)  # blocks to process

    def fetch(i, slot):
      window = (bi, hi, pl.ds((first + i) * block_kv, block_kv))
      plgpu.copy_gmem_to_smem(k_ref.at[window], k_smem.at[slot], k_bar.at[slot])
      plgpu.copy_gmem_to_smem(v_ref.at[window], v_smem.at[slot], v_bar.at[slot])

    plgpu.copy_gmem_to_smem(q_ref.at[bi, hi], q_smem, q_bar)
    for i in range(num_stages):
      pl.when(i < n)(lambda i=i: fetch(i, i))
    plgpu.barrier_wait(q_bar)

    def step(i, carry):
      acc, m_i, l_i = carry
      slot = lax.rem(i, num_stages)
      plgpu.barrier_wait(k_bar.at[slot])

      def qk(s_ref):
        plgpu.wgmma(s_ref, q_smem, plgpu.transpose_ref(k_smem.at[slot], (1, 0)))
        return s_ref[...]
      s = pl.run_scoped(qk, plgpu.ACC((ROWS, block_kv), jnp.float32))  # [64, block_kv]
      pos = plgpu.layout_cast(lax.broadcasted_iota(jnp.int32, (ROWS, block_kv), 1),
                              plgpu.Layout.WGMMA)
      s = jnp.where(pos + (first + i) * block_kv < length, s * (scale * LOG2E), -jnp.inf)
      m_new = jnp.maximum(m_i, s.max(axis=1))
      alpha = jnp.exp2(m_i - m_new)
      p = jnp.exp2(s - lax.broadcast_in_dim(m_new, s.shape, [0]))
      l_i = l_i * alpha + p.sum(axis=1)
      plgpu.barrier_wait(v_bar.at[slot])

      def pv(o_ref):
        plgpu.wgmma(o_ref, p.astype(dtype), v_smem.at[slot])
        return o_ref[...]
      o = pl.run_scoped(pv, plgpu.ACC((ROWS, d), jnp.float32))        # [64, H]
      acc = acc * lax.broadcast_in_dim(alpha, acc.shape, [0]) + o
      pl.when(i + num_stages < n)(lambda: fetch(i + num_stages, slot))
      return acc, m_new, l_i

    acc = plgpu.layout_cast(jnp.zeros((ROWS, d), jnp.float32), plgpu.Layout.WGMMA)
    m_i = plgpu.layout_cast(jnp.full((ROWS,), -jnp.inf, jnp.float32), plgpu.Layout.WGMMA.reduce(1))
    l_i = plgpu.layout_cast(jnp.zeros((ROWS,), jnp.float32), plgpu.Layout.WGMMA.reduce(1))
    acc, m_i, l_i = lax.fori_loop(0, n, step, (acc, m_i, l_i))

    o_smem[...] = acc
    ml_smem[0] = m_i
    ml_smem[1] = l_i
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(o_smem.at[pl.ds(0, groups)], acc_ref.at[bi, hi, si])
    plgpu.copy_smem_to_gmem(ml_smem.at[0], m_ref.at[bi, hi, si])
    plgpu.copy_smem_to_gmem(ml_smem.at[1], l_ref.at[bi, hi, si])
    plgpu.wait_smem_to_gmem(0)

  out_type = (jax.ShapeDtypeStruct((b, kh, num_splits, groups, d), jnp.float32),
              jax.ShapeDtypeStruct((b, kh, num_splits, rows), jnp.float32),
              jax.ShapeDtypeStruct((b, kh, num_splits, rows), jnp.float32))
  # 128-byte swizzled tiles, the shared-memory layout wgmma reads without bank conflicts.
  smem = lambda shape: plgpu.SMEM(shape, dtype, transforms=(
      plgpu.TilingTransform((8, 128 // jnp.dtype(dtype).itemsize)), plgpu.SwizzleTransform(128)))
  kernel = plgpu.kernel(
      body,
      out_type=out_type,
      scratch_types=(
          smem((rows, d)),
          smem((num_stages, block_kv, d)),
          smem((num_stages, block_kv, d)),
          plgpu.SMEM((rows, d), jnp.float32),
          plgpu.SMEM((2, rows), jnp.float32),
          plgpu.Barrier(num_barriers=1),
          plgpu.Barrier(num_barriers=num_stages),
          plgpu.Barrier(num_barriers=num_stages),
      ),
      grid=(b * num_splits * kh,),
      grid_names=("p",),
      compiler_params=plgpu.CompilerParams(approx_math=True),
  )
  return kernel(q, k_cache, v_cache, lengths, order)
