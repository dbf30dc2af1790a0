"""Causal self-attention over a whole window, with the implementation chosen explicitly.

    causal_attention(q, k, v, impl)   q [B, T, N, H], k and v [B, T, K, H] -> [B, T, N, H]

impl "xla" and "cudnn" are `jax.nn.dot_product_attention`. impl "grouped" is plain jnp with a
hand-written backward, laid out for XLA:CPU, where it is about 1.5x faster than "xla" forward and
backward (tiny model, batch 8 x 256):
  - the G = N/K query heads of a KV group are stacked along the rows, so the scores of a group
    are one [G*T, T] matrix and every product is one batched matmul reading K and V once;
  - queries are taken in chunks of CHUNK positions and each chunk attends only to the keys at or
    before its last position, skipping about half of the masked score matrix;
  - the probabilities are saved for the backward (memory grows as T^2 / 2, like the "xla" path),
    so it suits CPU training and short windows, not long windows on accelerators.
Softmax and its gradient run in float32; products take the input dtype.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lawsearch.errors import UserError

IMPLS = ("xla", "cudnn", "grouped")
CHUNK = 64  # query positions per chunk of impl="grouped" (fastest of 32/64/128/256 on CPU at T=256)

# dot_general dimension numbers over [B, K, rows, cols] operands (batch dims B, K):
_BATCH = ((0, 1), (0, 1))
_ROWS_BY_ROWS = (((3,), (3,)), _BATCH)   # [.., M, H] x [.., S, H] -> [.., M, S]
_ROWS_BY_COLS = (((3,), (2,)), _BATCH)   # [.., M, S] x [.., S, H] -> [.., M, H]
_COLS_BY_COLS = (((2,), (2,)), _BATCH)   # [.., M, S] x [.., M, H] -> [.., S, H]


def resolve_impl(impl: str, platform: str, dtype: str) -> str:
  """`impl` itself, or for "auto" the implementation for a jax platform at a compute dtype:

  "grouped" on CPU; "cudnn" on GPU in bfloat16 or float16 (cuDNN's fused kernel: the s80m train
  step at 16 x 2048 ran at 4x the tokens/s of "xla" on an H100); "xla" otherwise (TPU, and GPU in
  float32, which the cuDNN kernel does not take).
  """
  if impl not in IMPLS + ("auto",):
    raise UserError(f"attention impl must be auto or one of {IMPLS}, got {impl!r}")
  if impl == "cudnn" and (platform != "gpu" or dtype not in ("bfloat16", "float16")):
    raise UserError(f"attention impl 'cudnn' (cuDNN's fused kernel) needs an NVIDIA GPU and a "
                    f"16-bit dtype; this is {platform!r} with {dtype!r}: use auto, xla or grouped")
  if impl != "auto":
    return impl
  if platform == "cpu":
    return "grouped"
  return "cudnn" if platform == "gpu" and dtype in ("bfloat16", "float16") else "xla"


def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array, impl: str) -> jax.Array:
  """Causal GQA attention with softmax scale 1/sqrt(H); query head n uses KV head n // (N/K)."""
  if impl in ("xla", "cudnn"):
    return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=impl)
  if impl == "grouped":
    t = q.shape[1]
    chunks = [_grouped(q[:, start:start + CHUNK], k[:, :start + CHUNK], v[:, :start + CHUNK], start)
              for start in range(0, t, CHUNK)]
    return jnp.concatenate(chunks, axis=1)
  raise UserError(f"attention impl must be one of {IMPLS}, got {impl!r}")


def _stack_groups(x: jax.Array, n_kv: int) -> jax.Array:
  """[B, T, K*G, H] -> [B, K, G*T, H]: row g*T + t of group k holds query head k*G + g at t."""
  b, t, n, h = x.shape
  return x.reshape(b, t, n_kv, n // n_kv, h).transpose(0, 2, 3, 1, 4).reshape(b, n_kv, -1, h)


def _unstack_groups(x: jax.Array, t: int) -> jax.Array:
  """Inverse of `_stack_groups`: [B, K, G*T, H] -> [B, T, K*G, H]."""
  b, n_kv, _, h = x.shape
  return x.reshape(b, n_kv, -1, t, h).transpose(0, 3, 1, 2, 4).reshape(b, t, -1, h)


def heads_major(x: jax.Array) -> jax.Array:  # [B, T, K, H] -> [B, K, T, H] (and back)
  return x.transpose(0, 2, 1, 3)


def _forward(q, k, v, offset):
  """Queries at positions offset..offset+T-1 attend keys 0..offset+T-1: q [B, T, N, H], k and v
  [B, offset+T, K, H] -> [B, T, N, H], and the residuals of the backward."""
  t, n_kv, h = q.shape[1], k.shape[2], k.shape[3]
  qs = _stack_groups(q, n_kv) * jnp.asarray(h ** -0.5, q.dtype)         # [B, K, G*T, H]
  kh, vh = heads_major(k), heads_major(v)                              # [B, K, T, H]
  s = jax.lax.dot_general(qs, kh, _ROWS_BY_ROWS, preferred_element_type=jnp.float32)
  rows = jax.lax.broadcasted_iota(jnp.int32, s.shape[2:], 0) % t + offset  # query position
  cols = jax.lax.broadcasted_iota(jnp.int32, s.shape[2:], 1)            # key position
  p = jax.nn.softmax(jnp.where(cols <= rows, s, -jnp.inf), axis=-1).astype(v.dtype)
  o = jax.lax.dot_general(p, vh, _ROWS_BY_COLS, preferred_element_type=jnp.float32)
  o = o.astype(q.dtype)                                                  # [B, K, G*T, H]
  return _unstack_groups(o, t), (qs, kh, vh, p, o)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _grouped(q, k, v, offset):
  return _forward(q, k, v, offset)[0]


def _backward(offset, residuals, do):
  qs, kh, vh, p, o = residuals
  t, h = do.shape[1], kh.shape[3]
  dos = _stack_groups(do, kh.shape[1])                                   # [B, K, G*T, H]
  dv = jax.lax.dot_general(p, dos, _COLS_BY_COLS, preferred_element_type=jnp.float32)
  dp = jax.lax.dot_general(dos, vh, _ROWS_BY_ROWS, preferred_element_type=jnp.float32)
  delta = jnp.sum(dos.astype(jnp.float32) * o.astype(jnp.float32), axis=-1, keepdims=True)
  ds = (p.astype(jnp.float32) * (dp - delta)).astype(qs.dtype)           # [B, K, G*T, T]
  dq = jax.lax.dot_general(ds, kh, _ROWS_BY_COLS, preferred_element_type=jnp.float32)
  dk = jax.lax.dot_general(ds, qs, _COLS_BY_COLS, preferred_element_type=jnp.float32)
  dq = _unstack_groups(dq * h ** -0.5, t).astype(qs.dtype)
  return dq, heads_major(dk).astype(kh.dtype), heads_major(dv).astype(vh.dtype)


_grouped.defvjp(_forward, _backward)
