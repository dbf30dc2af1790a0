"""Decode attention kernels with explicit dispatch: `gqa_decode(..., impl="pallas" | "xla")`.

impl="xla" is plain jnp (any backend). impl="pallas" is the flash-decoding Pallas kernel: Mosaic GPU
on an NVIDIA GPU, Mosaic TPU on a TPU, and on CPU only with `interpret=True` (tests). An unsupported
backend, dtype or shape raises an error; nothing falls back silently.
"""

from __future__ import annotations

import jax

from lawsearch.errors import UserError
from lawsearch.kernels.gqa_decode_pallas import BlockSizes
from lawsearch.kernels.reference import check_shapes, gqa_decode_reference, gqa_decode_xla

IMPLS = ("xla", "pallas")


def gqa_decode(q: jax.Array, k_cache: jax.Array, v_cache: jax.Array, lengths: jax.Array, *,
               impl: str = "xla", scale: float | None = None, block_sizes=None,
               interpret: bool = False, backend: str | None = None) -> jax.Array:
  """Attention of one query token per sequence over a static KV cache.

  Args:
    q: [batch, n_heads, head_dim], the current token's queries.
    k_cache, v_cache: [batch, n_kv_heads, max_len, head_dim]; position lengths[b]-1 holds the
      current token's K/V, positions >= lengths[b] are ignored (they must be finite: a block
      straddling the length multiplies them by a zero probability).
    lengths: int32 [batch], valid cache positions per sequence (1 <= lengths <= max_len).
    impl: "xla" (jnp) or "pallas" (flash-decoding kernel).
    scale: softmax scale, 1/sqrt(head_dim) by default.
    block_sizes: `BlockSizes` for impl="pallas" (defaults per backend).
    interpret: run the Pallas kernel in interpret mode (CPU tests).
    backend: "gpu" or "tpu" for impl="pallas" (default: jax.default_backend()); name it to lower
      for another device ahead of time.
  Returns:
    [batch, n_heads, head_dim] in q's dtype.
  """
  if impl == "xla":
    if block_sizes is not None or interpret or backend is not None:
      raise UserError("block_sizes, interpret and backend apply to impl='pallas' only")
    return gqa_decode_xla(q, k_cache, v_cache, lengths, scale=scale)
  if impl == "pallas":
    from lawsearch.kernels import gqa_decode_pallas  # pylint: disable=import-outside-toplevel
    return gqa_decode_pallas.gqa_decode(q, k_cache, v_cache, lengths, scale=scale,
                                        block_sizes=block_sizes, interpret=interpret,
                                        backend=backend)
  raise UserError(f"impl must be one of {IMPLS}, got {impl!r}")


__all__ = ["BlockSizes", "IMPLS", "check_shapes", "gqa_decode", "gqa_decode_reference",
           "gqa_decode_xla"]
